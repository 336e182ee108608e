package unikernel

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/snapinvoker/snapinvoker/activation"
	"github.com/snapinvoker/snapinvoker/backend"
	"github.com/snapinvoker/snapinvoker/backend/backendtest"
	"github.com/snapinvoker/snapinvoker/internal/testprog"
	"github.com/snapinvoker/snapinvoker/runtimes"
)

// requirePython fails the test when Debian's python3 is missing: the Python kind runs it.
func requirePython(t testing.TB) {
	t.Helper()
	if _, err := os.Stat(runtimes.DefaultPython3); err != nil {
		t.Fatalf("the python:3 kind runs Debian's python3 (%s; scripts/install-deps.sh): %v", runtimes.DefaultPython3, err)
	}
}

// pyCode is a Python sample action of testdata/python.
func pyCode(t testing.TB, name string) backendtest.Code {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "python", name+".py"))
	if err != nil {
		t.Fatal(err)
	}
	return backendtest.Code{Code: string(b)}
}

func pySample(t testing.TB, name string) sample {
	s := newSample(t, "echo", 128<<20) // only for its shape; code and names follow
	s.action.Kind, s.action.Image, s.action.Native = "python:3.11", "", false
	s.action.Name, s.action.DocID, s.action.CodeDigest = "guest/py-"+name, "guest/py-"+name, "py-"+name
	s.code = pyCode(t, name)
	return s
}

// TestConformancePython runs the shared driver suite with Python actions: Debian's python3 and
// the runtimes launcher as KVM guests, from runtime and function snapshots.
func TestConformancePython(t *testing.T) {
	requireKVM(t)
	requirePython(t)
	dir := t.TempDir() // shared by the cases: the runtime snapshot is built once
	backendtest.Run(t, func(t *testing.T) backend.Driver {
		d, err := New(context.Background(), backend.Config{Logger: zaptest.NewLogger(t), DataDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}, backendtest.Actions{
		Kind:        "python:3.11",
		Memory:      128 << 20,
		Echo:        pyCode(t, "echo"),
		InitFail:    pyCode(t, "initfail"),
		Sleep:       pyCode(t, "sleep"),
		LogFlood:    pyCode(t, "logflood"),
		NonJSON:     pyCode(t, "nonjson"),
		NonJSONBody: notDictionary,
	})
}

// TestPythonActions: hello logs and greets, every activation starts from the function snapshot,
// an exception is the launcher's {"error"} answer, the __OW_* context reaches the action, a
// later Start restores without /init work, and fork moves the action to the next driver.
func TestPythonActions(t *testing.T) {
	requirePython(t)
	d := newDriver(t, "", nil)
	defer d.Close()

	hello := pySample(t, "hello")
	inst := start(t, d, hello)
	mustInit(t, inst, hello)
	res := mustRun(t, inst, hello, map[string]any{"name": "Ada"})
	if res.Outcome.Status != 200 || string(res.Outcome.Body) != `{"greeting":"Hello, Ada!"}` {
		t.Fatalf("hello: %d %q", res.Outcome.Status, res.Outcome.Body)
	}
	if len(res.Logs) != 1 || res.Logs[0].Text != "hello called for Ada" || res.Logs[0].Stream != "stdout" {
		t.Fatalf("hello logs: %+v (want one stdout line, no end markers)", res.Logs)
	}

	counter := pySample(t, "counter")
	c := start(t, d, counter)
	mustInit(t, c, counter)
	for i := 0; i < 3; i++ {
		if res := mustRun(t, c, counter, nil); string(res.Outcome.Body) != `{"count":1}` {
			t.Fatalf("activation %d: %q: module state leaked from an earlier activation", i, res.Outcome.Body)
		}
	}

	throws := pySample(t, "throws")
	th := start(t, d, throws)
	mustInit(t, th, throws)
	res = mustRun(t, th, throws, nil)
	if res.Outcome.Status != 200 || string(res.Outcome.Body) != `{"error":"thrown on purpose"}` {
		t.Fatalf("throws: %d %q", res.Outcome.Status, res.Outcome.Body)
	}

	ctxs := pySample(t, "context")
	cx := start(t, d, ctxs)
	mustInit(t, cx, ctxs)
	res = mustRun(t, cx, ctxs, nil)
	var seen map[string]any
	if err := json.Unmarshal(res.Outcome.Body, &seen); err != nil || !strings.Contains(string(res.Outcome.Body), "/guest/py-context") {
		t.Fatalf("context: %q (%v), want the action name among the __OW_* values", res.Outcome.Body, err)
	}

	if err := inst.Destroy(context.Background()); err != nil {
		t.Fatal(err)
	}
	again := start(t, d, hello)
	if !again.(backend.Restorer).Restored() {
		t.Fatal("a second hello instance was not restored from the function snapshot")
	}
	mustInit(t, again, hello)
	if res := mustRun(t, again, hello, map[string]any{"name": "Grace"}); string(res.Outcome.Body) != `{"greeting":"Hello, Grace!"}` {
		t.Fatalf("restored hello: %q", res.Outcome.Body)
	}
	if st := d.Stats(); st.RuntimeBuilds != 1 || st.Builds != 4 {
		t.Errorf("RuntimeBuilds=%d Builds=%d; want one runtime snapshot shared by 4 function snapshots", st.RuntimeBuilds, st.Builds)
	}
	if cs := d.Stats().Cache; cs.BytesShared <= 0 {
		t.Errorf("function snapshots share no bytes with their runtime snapshot: %+v", cs)
	}

	forks := pySample(t, "forks")
	f := start(t, d, forks)
	mustInit(t, f, forks)
	if _, err := run(t, f, forks, nil); !errors.Is(err, backend.ErrUnsupported) {
		t.Fatalf("fork in a Python action: %v, want ErrUnsupported", err)
	}
}

// TestPythonRuntimeBootIsNotTheActionsTime: the first Python action of a driver has a tiny
// limits.timeout; booting the runtime (once, for every Python action) is not charged to it: the
// runtime snapshot is built, and the action's own /init is what times out.
func TestPythonRuntimeBootIsNotTheActionsTime(t *testing.T) {
	requirePython(t)
	d := newDriver(t, "", nil)
	defer d.Close()
	s := pySample(t, "hello")
	inst := start(t, d, s)
	res, err := inst.Init(context.Background(), backend.InitRequest{Action: s.action,
		Body: backendtest.InitBody("hello", s.code, nil), Deadline: time.Now().Add(time.Millisecond)})
	if err != nil {
		t.Fatalf("Init: %v", err)
	}
	if res.Outcome.Failure != activation.FailureTimeout {
		t.Fatalf("Init past its deadline: %+v, want FailureTimeout", res.Outcome)
	}
	if st := d.Stats(); st.RuntimeBuilds != 1 {
		t.Fatalf("RuntimeBuilds = %d: the runtime snapshot was not built under its own deadline", st.RuntimeBuilds)
	}
	again := start(t, d, s)
	mustInit(t, again, s)
	if res := mustRun(t, again, s, map[string]any{"name": "Ada"}); res.Outcome.Status != 200 {
		t.Fatalf("after the timed-out init: %+v", res.Outcome)
	}
}

// TestPythonZipAndUnicode: a zip action (extracted into the guest's private /tmp, importing a
// helper module next to __main__.py) and a non-ASCII round trip through params, result and logs.
func TestPythonZipAndUnicode(t *testing.T) {
	requirePython(t)
	d := newDriver(t, "", nil)
	defer d.Close()
	files := map[string]string{}
	for _, name := range []string{"__main__.py", "helper.py"} {
		b, err := os.ReadFile(filepath.Join("testdata", "python", "zipaction", name))
		if err != nil {
			t.Fatal(err)
		}
		files[name] = string(b)
	}
	z := pySample(t, "hello")
	z.action.Name, z.action.DocID, z.action.CodeDigest = "guest/py-zip", "guest/py-zip", "py-zip"
	z.code = backendtest.Code{Code: testprog.ZipBase64(t, files), Binary: true}
	inst := start(t, d, z)
	mustInit(t, inst, z)
	if res := mustRun(t, inst, z, map[string]any{"text": "zipped"}); string(res.Outcome.Body) != `{"shout":"ZIPPED!"}` {
		t.Fatalf("zip action: %d %q", res.Outcome.Status, res.Outcome.Body)
	}

	u := pySample(t, "unicode")
	ui := start(t, d, u)
	mustInit(t, ui, u)
	res := mustRun(t, ui, u, map[string]any{"delimiter": "❄"})
	if string(res.Outcome.Body) != `{"winter":"❄ ☃ ❄"}` || len(res.Logs) != 1 || res.Logs[0].Text != "❄ ☃ ❄" {
		t.Fatalf("unicode: %q logs %+v", res.Outcome.Body, res.Logs)
	}
}
