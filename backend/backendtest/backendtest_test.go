package backendtest_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/snapinvoker/snapinvoker/activation"
	"github.com/snapinvoker/snapinvoker/backend"
	"github.com/snapinvoker/snapinvoker/backend/backendtest"
	"github.com/snapinvoker/snapinvoker/backend/backendtest/procdriver"
)

// The suite must be able to fail. Each breakage below wraps the real process driver with one
// contract violation; TestSuiteCatchesBrokenDrivers runs the suite's matching case on it in a
// child test process and requires that case to fail.
var breakages = map[string]struct {
	suiteCase string
	wrap      func(res backend.Result, err error, call string, destroyed bool) (backend.Result, error)
}{
	// Reports every /init as a success.
	"init-always-ok": {"InitFailure", func(res backend.Result, err error, call string, _ bool) (backend.Result, error) {
		if call == "init" {
			res.Outcome.Failure, res.Outcome.Status = activation.NoFailure, 200
		}
		return res, err
	}},
	// Forgets to say that logs were dropped.
	"no-truncation-flag": {"LogLimit", func(res backend.Result, err error, _ string, _ bool) (backend.Result, error) {
		res.LogsTruncated = false
		return res, err
	}},
	// Reports a timeout as the runtime exiting.
	"timeout-as-exit": {"RunPastDeadline", func(res backend.Result, err error, _ string, _ bool) (backend.Result, error) {
		if res.Outcome.Failure == activation.FailureTimeout {
			res.Outcome.Failure = activation.FailureExited
		}
		return res, err
	}},
	// Answers runs on a destroyed instance as if it were alive.
	"zombie": {"Destroy", func(res backend.Result, err error, call string, destroyed bool) (backend.Result, error) {
		if call == "run" && destroyed {
			return backend.Result{Outcome: activation.RuntimeOutcome{Status: 200, Body: []byte(`{}`), Length: 2}}, nil
		}
		return res, err
	}},
}

type brokenDriver struct {
	backend.Driver
	wrap func(backend.Result, error, string, bool) (backend.Result, error)
}

func (d brokenDriver) Start(ctx context.Context, spec backend.StartSpec) (backend.Instance, error) {
	inst, err := d.Driver.Start(ctx, spec)
	if err != nil {
		return nil, err
	}
	return &brokenInstance{Instance: inst, wrap: d.wrap}, nil
}

type brokenInstance struct {
	backend.Instance
	wrap      func(backend.Result, error, string, bool) (backend.Result, error)
	destroyed bool
}

func (i *brokenInstance) Init(ctx context.Context, req backend.InitRequest) (backend.Result, error) {
	res, err := i.Instance.Init(ctx, req)
	return i.wrap(res, err, "init", i.destroyed)
}

func (i *brokenInstance) Run(ctx context.Context, req backend.RunRequest) (backend.Result, error) {
	res, err := i.Instance.Run(ctx, req)
	return i.wrap(res, err, "run", i.destroyed)
}

func (i *brokenInstance) Destroy(ctx context.Context) error {
	i.destroyed = true
	return i.Instance.Destroy(ctx)
}

// samples builds the native samples, or reuses those the parent test built (BACKENDTEST_SAMPLES)
// so each child process does not run gcc again.
func samples(t *testing.T) backendtest.Actions {
	dir := os.Getenv("BACKENDTEST_SAMPLES")
	prebuilt := dir != ""
	if !prebuilt {
		dir = t.TempDir()
	}
	code := func(name string) backendtest.Code {
		exe := filepath.Join(dir, name)
		var err error
		if !prebuilt {
			exe, err = procdriver.BuildSample(dir, name)
		}
		if err != nil {
			t.Fatal(err)
		}
		c, err := procdriver.EncodeExecutable(exe)
		if err != nil {
			t.Fatal(err)
		}
		return backendtest.Code{Code: c, Binary: true}
	}
	return backendtest.Actions{Kind: "blackbox", Native: true, Echo: code("echo"), InitFail: code("initfail"),
		Sleep: code("sleep"), LogFlood: code("logflood"), NonJSON: code("nonjson")}
}

// TestBrokenDriver is the child half of TestSuiteCatchesBrokenDrivers; it does nothing unless
// BACKENDTEST_BREAKAGE names a breakage.
func TestBrokenDriver(t *testing.T) {
	b, ok := breakages[os.Getenv("BACKENDTEST_BREAKAGE")]
	if !ok {
		return
	}
	backendtest.Run(t, func(t *testing.T) backend.Driver {
		d, err := procdriver.New(backend.Config{DataDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		return brokenDriver{Driver: d, wrap: b.wrap}
	}, samples(t))
}

func TestSuiteCatchesBrokenDrivers(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"echo", "initfail", "sleep", "logflood", "nonjson"} {
		if _, err := procdriver.BuildSample(dir, n); err != nil {
			t.Fatal(err)
		}
	}
	for name, b := range breakages {
		t.Run(name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestBrokenDriver$/^"+b.suiteCase+"$", "-test.count=1")
			cmd.Env = append(os.Environ(), "BACKENDTEST_BREAKAGE="+name, "BACKENDTEST_SAMPLES="+dir)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("the suite passed a driver with breakage %q:\n%s", name, out)
			}
			if want := "--- FAIL: TestBrokenDriver/" + b.suiteCase; !strings.Contains(string(out), want) {
				t.Fatalf("want %q in the child's output:\n%s", want, out)
			}
		})
	}
}
