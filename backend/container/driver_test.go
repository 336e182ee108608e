package container

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/snapinvoker/snapinvoker/activation"
	"github.com/snapinvoker/snapinvoker/backend"
	"github.com/snapinvoker/snapinvoker/internal/testprog"
)

// samples are OpenWhisk-style sample actions shared with package runtimes.
const samples = "../../runtimes/testdata"

var kinds = []struct{ kind, dir, ext string }{
	{"nodejs:20", "nodejs", ".js"},
	{"python:3.11", "python", ".py"},
}

// requireRunc fails (never skips) when the host cannot run the runc engine.
func requireRunc(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatalf("the runc engine tests need root (uid %d)", os.Geteuid())
	}
	if _, err := exec.LookPath("runc"); err != nil {
		t.Fatalf("runc is required: run scripts/install-deps.sh (%v)", err)
	}
	for _, p := range []string{"/usr/bin/node", "/usr/bin/python3"} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s is required: run scripts/install-deps.sh (%v)", p, err)
		}
	}
}

func newRuncDriver(t testing.TB, opts map[string]string) *Driver {
	t.Helper()
	requireRunc(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	o := map[string]string{"proxy": self, "api-host": "https://api.example:443"}
	for k, v := range opts {
		o[k] = v
	}
	d, err := New(context.Background(), backend.Config{DataDir: t.TempDir(), Options: o})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func readSample(t testing.TB, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(samples, dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// initBody is the /init body of protocol spec §6.
func initBody(code, main string, binary bool) []byte {
	b, _ := json.Marshal(map[string]any{"value": map[string]any{
		"name": "sample", "main": main, "binary": binary, "code": code,
		"env": map[string]string{"__OW_NAMESPACE": "guest", "__OW_ACTION_NAME": "/guest/sample", "__OW_API_KEY": "uuid:key"},
	}})
	return b
}

// runBody is the /run body of protocol spec §6.
func runBody(value any) []byte {
	b, _ := json.Marshal(map[string]any{"value": value, "api_key": "uuid:key", "namespace": "guest",
		"action_name": "/guest/sample", "action_version": "0.0.1", "activation_id": "c5a6e53a9e5c4f6ba6e53a9e5c2f6b11",
		"transaction_id": "Qh4mkwSdfjYbEDaP9CHz8vLy1TuoN2xR", "deadline": "1717171777301"})
	return b
}

func start(t testing.TB, d *Driver, kind string, memory int64) backend.Instance {
	t.Helper()
	in, err := d.Start(context.Background(), backend.StartSpec{Kind: kind, Memory: memory})
	if err != nil {
		t.Fatalf("start %s: %v", kind, err)
	}
	t.Cleanup(func() { in.Destroy(context.Background()) })
	return in
}

func doInit(t testing.TB, in backend.Instance, code, main string, binary bool, timeout time.Duration) backend.Result {
	t.Helper()
	r, err := in.Init(context.Background(), backend.InitRequest{
		Action: backend.Action{LogLimit: 10 << 20}, Body: initBody(code, main, binary), Deadline: time.Now().Add(timeout)})
	if err != nil {
		t.Fatalf("init: %v", err)
	}
	return r
}

func mustInit(t testing.TB, in backend.Instance, code, main string) {
	t.Helper()
	r := doInit(t, in, code, main, false, 30*time.Second)
	if r.Outcome.Failure != activation.NoFailure || r.Outcome.Status != 200 {
		t.Fatalf("init: %v %d %s", r.Outcome.Failure, r.Outcome.Status, r.Outcome.Body)
	}
}

func doRun(t testing.TB, in backend.Instance, value any, timeout time.Duration, logLimit, maxResponse int64) backend.Result {
	t.Helper()
	r, err := in.Run(context.Background(), backend.RunRequest{ActivationID: "c5a6e53a9e5c4f6ba6e53a9e5c2f6b11",
		Body: runBody(value), Deadline: time.Now().Add(timeout), LogLimit: logLimit, MaxResponse: maxResponse})
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	return r
}

func wantJSON(t testing.TB, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("body %q is not JSON: %v", got, err)
	}
	json.Unmarshal([]byte(want), &w)
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	if !bytes.Equal(gb, wb) {
		t.Fatalf("body %s, want %s", gb, wb)
	}
}

// wantResponse classifies an outcome with the activation rules and checks the response the
// activation would get: its status code (0 success, 1 application, 2 developer error) and result.
func wantResponse(t testing.TB, r backend.Result, init bool, timeout time.Duration, code int, result string) {
	t.Helper()
	l := activation.ResponseLimits{Timeout: timeout, MaxPayload: 1 << 20, Truncation: 1 << 20}
	var c activation.Classification
	if init {
		c = activation.ClassifyInit(r.Outcome, l)
	} else {
		c = activation.ClassifyRun(r.Outcome, l)
	}
	if c.Response.StatusCode != code {
		t.Fatalf("status code %d result %s, want %d %s", c.Response.StatusCode, c.Response.Result, code, result)
	}
	if strings.HasSuffix(result, "…") {
		if !bytes.HasPrefix(c.Response.Result, []byte(strings.TrimSuffix(result, "…"))) {
			t.Fatalf("result %.200s, want prefix %s", c.Response.Result, result)
		}
		return
	}
	wantJSON(t, c.Response.Result, result)
}

func texts(r backend.Result) []string {
	var s []string
	for _, l := range r.Logs {
		s = append(s, l.Stream+":"+l.Text)
	}
	return s
}

func TestRuncSamples(t *testing.T) {
	d := newRuncDriver(t, nil)
	for _, k := range kinds {
		t.Run(k.dir, func(t *testing.T) {
			t.Parallel()
			t.Run("hello, then warm reuse with per-activation logs", func(t *testing.T) {
				in := start(t, d, k.kind, 256<<20)
				mustInit(t, in, readSample(t, k.dir, "hello"+k.ext), "main")
				for _, name := range []string{"World", "Again"} {
					r := doRun(t, in, map[string]any{"name": name}, 30*time.Second, 1<<20, 0)
					if r.Outcome.Failure != activation.NoFailure || r.Outcome.Status != 200 {
						t.Fatalf("%v %d %s", r.Outcome.Failure, r.Outcome.Status, r.Outcome.Body)
					}
					wantJSON(t, r.Outcome.Body, fmt.Sprintf(`{"greeting":"Hello, %s!"}`, name))
					if got := texts(r); len(got) != 1 || got[0] != "stdout:hello called for "+name {
						t.Fatalf("logs %q", got)
					}
				}
			})
			t.Run("results", func(t *testing.T) {
				for _, c := range []struct{ file, params, want string }{
					{"echo", `{"a":[1,"two",null],"b":{"c":true}}`, `{"a":[1,"two",null],"b":{"c":true}}`},
					{"array", `{}`, `[1,2,3]`},
					{"apperror", `{}`, `{"error":"bad input"}`},
					{"unicode", `{"delimiter":"❄"}`, `{"winter":"❄ ☃ ❄"}`},
				} {
					in := start(t, d, k.kind, 128<<20)
					mustInit(t, in, readSample(t, k.dir, c.file+k.ext), "main")
					r := doRun(t, in, json.RawMessage(c.params), 30*time.Second, 1<<20, 0)
					if r.Outcome.Status != 200 {
						t.Fatalf("%s: status %d", c.file, r.Outcome.Status)
					}
					wantJSON(t, r.Outcome.Body, c.want)
					if c.file == "unicode" {
						if got := texts(r); len(got) != 1 || got[0] != "stdout:❄ ☃ ❄" {
							t.Fatalf("unicode logs %q", got)
						}
					}
				}
			})
			t.Run("throws", func(t *testing.T) {
				in := start(t, d, k.kind, 128<<20)
				mustInit(t, in, readSample(t, k.dir, "throws"+k.ext), "main")
				r := doRun(t, in, map[string]any{}, 30*time.Second, 1<<20, 0)
				if k.dir == "nodejs" { // the nodejs runtime answers 502: a developer error
					wantResponse(t, r, false, time.Minute, 2, `{"error":"An error has occurred: Error: thrown on purpose"}`)
				} else { // the python launcher answers {"error": str(e)}: an application error
					wantResponse(t, r, false, time.Minute, 1, `{"error":"thrown on purpose"}`)
				}
			})
			t.Run("context environment", func(t *testing.T) {
				in := start(t, d, k.kind, 128<<20)
				mustInit(t, in, readSample(t, k.dir, "context"+k.ext), "main")
				r := doRun(t, in, map[string]any{}, 30*time.Second, 1<<20, 0)
				wantJSON(t, r.Outcome.Body, `{"api_host":"https://api.example:443","api_key":"uuid:key","namespace":"guest",
					"action_name":"/guest/sample","action_version":"0.0.1","activation_id":"c5a6e53a9e5c4f6ba6e53a9e5c2f6b11",
					"deadline":"1717171777301","transaction_id":"Qh4mkwSdfjYbEDaP9CHz8vLy1TuoN2xR"}`)
			})
			t.Run("sleep past the deadline", func(t *testing.T) {
				in := start(t, d, k.kind, 128<<20)
				mustInit(t, in, readSample(t, k.dir, "sleep"+k.ext), "main")
				r := doRun(t, in, map[string]any{"ms": 60000}, 500*time.Millisecond, 1<<20, 0)
				if r.Outcome.Failure != activation.FailureTimeout {
					t.Fatalf("failure %v, want timeout", r.Outcome.Failure)
				}
				wantResponse(t, r, false, 500*time.Millisecond, 2, `{"error":"The action exceeded its time limits of 500 milliseconds."}`)
			})
			t.Run("init failure", func(t *testing.T) {
				in := start(t, d, k.kind, 128<<20)
				r := doInit(t, in, readSample(t, k.dir, "initfail"+k.ext), "main", false, 30*time.Second)
				var body struct{ Error string }
				if r.Outcome.Failure != activation.NoFailure || r.Outcome.Status != 502 || json.Unmarshal(r.Outcome.Body, &body) != nil || !strings.Contains(body.Error, "SyntaxError") {
					t.Fatalf("%v %d %s", r.Outcome.Failure, r.Outcome.Status, r.Outcome.Body)
				}
				if !strings.Contains(strings.Join(texts(r), "\n"), "SyntaxError") {
					t.Fatalf("init failure logs %q lack the error", texts(r))
				}
				prefix := map[string]string{"nodejs": `{"error":"Initialization has failed due to: SyntaxError`, "python": `{"error":"SyntaxError: `}[k.dir]
				wantResponse(t, r, true, time.Minute, 2, prefix+"…")
			})
			t.Run("init that never finishes", func(t *testing.T) {
				in := start(t, d, k.kind, 128<<20)
				r := doInit(t, in, readSample(t, k.dir, "initforever"+k.ext), "main", false, 700*time.Millisecond)
				if r.Outcome.Failure != activation.FailureTimeout {
					t.Fatalf("failure %v, want timeout", r.Outcome.Failure)
				}
				wantResponse(t, r, true, 700*time.Millisecond, 2, `{"error":"The action exceeded its time limits of 700 milliseconds during initialization."}`)
			})
			t.Run("exit during run", func(t *testing.T) {
				in := start(t, d, k.kind, 128<<20)
				mustInit(t, in, readSample(t, k.dir, "exit"+k.ext), "main")
				r := doRun(t, in, map[string]any{}, 30*time.Second, 1<<20, 0)
				if r.Outcome.Failure != activation.FailureExited {
					t.Fatalf("failure %v status %d, want exited", r.Outcome.Failure, r.Outcome.Status)
				}
				wantResponse(t, r, false, time.Minute, 2, `{"error":"The action did not produce a valid response and exited unexpectedly."}`)
			})
			t.Run("oversized result is truncated", func(t *testing.T) {
				in := start(t, d, k.kind, 256<<20)
				mustInit(t, in, readSample(t, k.dir, "bigresult"+k.ext), "main")
				size := (1 << 20) + 4096
				r := doRun(t, in, map[string]any{"size": size}, 30*time.Second, 1<<20, 1<<20)
				if r.Outcome.Status != 200 || len(r.Outcome.Body) != 1<<20 || r.Outcome.Length != size+len(`{"s":""}`) {
					t.Fatalf("status %d kept %d of %d", r.Outcome.Status, len(r.Outcome.Body), r.Outcome.Length)
				}
				if !bytes.HasPrefix(r.Outcome.Body, []byte(`{"s":"xxxx`)) {
					t.Fatalf("prefix %q", r.Outcome.Body[:16])
				}
				wantResponse(t, r, false, time.Minute, 1, fmt.Sprintf(`{"error":"The action produced a response that exceeded the allowed length: %d > %d bytes. The truncated response was: {\"s\":\"xxx…`, size+8, 1<<20))
			})
			t.Run("log flood past the limit", func(t *testing.T) {
				in := start(t, d, k.kind, 128<<20)
				mustInit(t, in, readSample(t, k.dir, "logflood"+k.ext), "main")
				r := doRun(t, in, map[string]any{"lines": 3000}, 30*time.Second, 10_000, 0)
				if r.Outcome.Status != 200 || !r.LogsTruncated || len(r.Logs) != 101 {
					t.Fatalf("status %d truncated %v lines %d; want 101 lines of 99 bytes under 10000", r.Outcome.Status, r.LogsTruncated, len(r.Logs))
				}
				r = doRun(t, in, map[string]any{"lines": 2}, 30*time.Second, 10_000, 0)
				if r.LogsTruncated || len(r.Logs) != 2 {
					t.Fatalf("next activation: truncated %v lines %d: %v %d %s", r.LogsTruncated, len(r.Logs), r.Outcome.Failure, r.Outcome.Status, r.Outcome.Body)
				}
			})
			t.Run("memory limit", func(t *testing.T) {
				in := start(t, d, k.kind, 128<<20)
				mustInit(t, in, readSample(t, k.dir, "memhog"+k.ext), "main")
				r := doRun(t, in, map[string]any{"mb": 8}, 30*time.Second, 1<<20, 0)
				wantJSON(t, r.Outcome.Body, `{"allocated":8}`)
				r = doRun(t, in, map[string]any{"mb": 400}, 60*time.Second, 1<<20, 0)
				if r.Outcome.Failure != activation.FailureOOM {
					t.Fatalf("failure %v status %d body %s, want oom", r.Outcome.Failure, r.Outcome.Status, r.Outcome.Body)
				}
				wantResponse(t, r, false, time.Minute, 2, `{"error":"The action exhausted its memory and was aborted."}`)
			})
		})
	}
}

func TestRuncPrewarmPauseResume(t *testing.T) {
	d := newRuncDriver(t, nil)
	in := start(t, d, "python:3.11", 128<<20)
	p := in.(backend.Pauser)
	if err := p.Pause(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := p.Resume(context.Background()); err != nil {
		t.Fatal(err)
	}
	mustInit(t, in, readSample(t, "python", "echo.py"), "main")
	if err := p.Pause(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := p.Resume(context.Background()); err != nil {
		t.Fatal(err)
	}
	r := doRun(t, in, map[string]any{"x": 1}, 30*time.Second, 1<<20, 0)
	wantJSON(t, r.Outcome.Body, `{"x":1}`)
	used, err := in.(backend.MemoryReporter).MemoryUsed()
	if err != nil || used <= 0 || used > 128<<20 {
		t.Fatalf("memory used %d, %v", used, err)
	}
	// A second /init is refused as the runtimes do.
	r = doInit(t, in, readSample(t, "python", "echo.py"), "main", false, 10*time.Second)
	if r.Outcome.Status != 403 {
		t.Fatalf("second init: status %d", r.Outcome.Status)
	}
	// A paused instance can be destroyed.
	if err := p.Pause(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := in.Destroy(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := in.Destroy(context.Background()); err != nil {
		t.Fatalf("second destroy: %v", err)
	}
	if _, err := in.Run(context.Background(), backend.RunRequest{Body: runBody(nil), Deadline: time.Now().Add(time.Second)}); !errors.Is(err, backend.ErrPlatform) {
		t.Fatalf("run after destroy: %v", err)
	}
}

func TestRuncDestroyDuringRun(t *testing.T) {
	d := newRuncDriver(t, nil)
	in := start(t, d, "nodejs:20", 128<<20)
	mustInit(t, in, readSample(t, "nodejs", "sleep.js"), "main")
	var wg sync.WaitGroup
	var r backend.Result
	wg.Add(1)
	go func() {
		defer wg.Done()
		r = doRun(t, in, map[string]any{"ms": 60000}, 60*time.Second, 1<<20, 0)
	}()
	time.Sleep(200 * time.Millisecond) // let the run reach the action; not an assertion
	if err := in.Destroy(context.Background()); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if r.Outcome.Failure != activation.FailureExited {
		t.Fatalf("failure %v, want exited", r.Outcome.Failure)
	}
}

// TestRuncIsolation checks what the action sees: its user, its limits, the host's secrets, the
// network of each mode.
func TestRuncIsolation(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	code := fmt.Sprintf(`
import os, resource, socket
def main(args):
    out = {"uid": os.getuid(), "nofile": list(resource.getrlimit(resource.RLIMIT_NOFILE))}
    try:
        open("/etc/shadow").read(1)
        out["shadow"] = "readable"
    except OSError:
        out["shadow"] = "unreadable"
    try:
        open("/usr/evil", "w")
        out["usr"] = "writable"
    except OSError:
        out["usr"] = "read-only"
    s = socket.socket()
    s.settimeout(2)
    try:
        s.connect(("127.0.0.1", %d))
        out["host"] = "reached"
    except OSError as e:
        out["host"] = "unreachable"
    return out
`, port)
	for _, c := range []struct{ network, host string }{{NetworkLoopback, "unreachable"}, {NetworkHost, "reached"}} {
		t.Run(c.network, func(t *testing.T) {
			d := newRuncDriver(t, map[string]string{"network": c.network})
			in := start(t, d, "python:3.11", 128<<20)
			mustInit(t, in, code, "main")
			r := doRun(t, in, map[string]any{}, 30*time.Second, 1<<20, 0)
			wantJSON(t, r.Outcome.Body, fmt.Sprintf(`{"uid":65534,"nofile":[1024,1024],"shadow":"unreadable","usr":"read-only","host":%q}`, c.host))
		})
	}
}

func TestRuncNativeAndZip(t *testing.T) {
	exe, err := os.ReadFile(testprog.Build(t, "echo"))
	if err != nil {
		t.Fatal(err)
	}
	d := newRuncDriver(t, nil)
	t.Run("native executable", func(t *testing.T) {
		in := start(t, d, "blackbox", 128<<20)
		r := doInit(t, in, base64.StdEncoding.EncodeToString(exe), "main", true, 30*time.Second)
		if r.Outcome.Status != 200 {
			t.Fatalf("init %d %s", r.Outcome.Status, r.Outcome.Body)
		}
		r = doRun(t, in, map[string]any{"x": 1}, 30*time.Second, 1<<20, 0)
		var got struct {
			Echo struct{ Value map[string]any }
		}
		if r.Outcome.Status != 200 || json.Unmarshal(r.Outcome.Body, &got) != nil || got.Echo.Value["x"] != 1.0 {
			t.Fatalf("run %d %s", r.Outcome.Status, r.Outcome.Body)
		}
	})
	t.Run("python zip", func(t *testing.T) {
		in := start(t, d, "python:3.11", 128<<20)
		zipped := testprog.ZipBase64(t, map[string]string{
			"__main__.py": readSample(t, "python", "zipaction/__main__.py"),
			"helper.py":   readSample(t, "python", "zipaction/helper.py"),
		})
		r := doInit(t, in, zipped, "main", true, 30*time.Second)
		if r.Outcome.Status != 200 {
			t.Fatalf("init %d %s", r.Outcome.Status, r.Outcome.Body)
		}
		r = doRun(t, in, map[string]any{"text": "zip"}, 30*time.Second, 1<<20, 0)
		wantJSON(t, r.Outcome.Body, `{"shout":"ZIP!"}`)
	})
	t.Run("missing code", func(t *testing.T) {
		in := start(t, d, "nodejs:20", 128<<20)
		r := doInit(t, in, "", "main", false, 30*time.Second)
		wantJSON(t, r.Outcome.Body, `{"error":"Missing main/no code to execute."}`)
		if r.Outcome.Status != 403 {
			t.Fatalf("status %d", r.Outcome.Status)
		}
	})
}

func TestBadSpecAndOptions(t *testing.T) {
	d := newRuncDriver(t, nil)
	if _, err := d.Start(context.Background(), backend.StartSpec{Kind: "swift:5.7", Memory: 1 << 20}); !errors.Is(err, backend.ErrUnsupported) {
		t.Fatalf("unknown kind: %v", err)
	}
	if _, err := d.Start(context.Background(), backend.StartSpec{Kind: "nodejs:20"}); !errors.Is(err, backend.ErrPlatform) || !strings.Contains(err.Error(), "Memory") {
		t.Fatalf("no memory: %v", err)
	}
	for k, v := range map[string]string{"network": "bridge", "nosuch": "1", "user-memory": "-1", "engine": "lxc", "cpus": "x", "node": "node"} {
		_, err := parseOptions(map[string]string{k: v})
		if !errors.Is(err, ErrBadOption) || !strings.Contains(err.Error(), k) {
			t.Fatalf("option %s=%s: %v", k, v, err)
		}
	}
}

// TestRuncReapsOrphans: processes an action abandons (double fork) are re-parented to the proxy,
// PID 1 of the container, which reaps them instead of letting zombies pile up against pids.max.
func TestRuncReapsOrphans(t *testing.T) {
	d := newRuncDriver(t, nil)
	in := start(t, d, "python:3.11", 128<<20)
	mustInit(t, in, `
import os, time
def zombies():
    n = 0
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                stat = open("/proc/%s/stat" % pid).read()
            except OSError:
                continue
            if stat[stat.rindex(")") + 2] == "Z":
                n += 1
    return n
def main(args):
    if args.get("fork"):
        for _ in range(20):
            a = os.fork()
            if a == 0:
                if os.fork() == 0:
                    os._exit(0)
                os._exit(0)
            os.waitpid(a, 0)
        return {"forked": 20}
    for _ in range(100):
        if zombies() == 0:
            break
        time.sleep(0.05)
    return {"zombies": zombies()}
`, "main")
	r := doRun(t, in, map[string]any{"fork": true}, 30*time.Second, 1<<20, 0)
	wantJSON(t, r.Outcome.Body, `{"forked":20}`)
	r = doRun(t, in, map[string]any{}, 30*time.Second, 1<<20, 0)
	wantJSON(t, r.Outcome.Body, `{"zombies":0}`)
}

// TestRuncLimits reads back, from the host's cgroup files, the limits runc applied.
func TestRuncLimits(t *testing.T) {
	d := newRuncDriver(t, map[string]string{"user-memory": fmt.Sprint(1 << 30), "cpus": "0.5"})
	in := start(t, d, "python:3.11", 128<<20)
	cg, err := detectCgroups("/sys/fs/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	path := cgroupParent + "/" + in.ID()
	read := func(controller, file string) string {
		dir := filepath.Join(cg.root, controller, path)
		if cg.v2 {
			dir = filepath.Join(cg.root, path)
		}
		b, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	want := map[string]string{}
	if cg.v2 {
		want["memory.max"] = fmt.Sprint(128 << 20)
		want["pids.max"] = "1024"
		want["cpu.max"] = "50000 100000"
		for k, v := range want {
			if got := read("", k); got != v {
				t.Errorf("%s = %q, want %q", k, got, v)
			}
		}
		return
	}
	for _, c := range []struct{ controller, file, want string }{
		{"memory", "memory.limit_in_bytes", fmt.Sprint(128 << 20)},
		{"memory", "memory.memsw.limit_in_bytes", fmt.Sprint(128 << 20)},
		{"pids", "pids.max", "1024"},
		{"cpu", "cpu.shares", "128"}, // max(2, 1024 * 128 MiB / 1 GiB)
		{"cpu", "cpu.cfs_quota_us", "50000"},
	} {
		if got := read(c.controller, c.file); got != c.want {
			t.Errorf("%s/%s = %q, want %q", c.controller, c.file, got, c.want)
		}
	}
}

// TestRuncChattyInit: output no collection is waiting for (a module load printing far more than
// any pipe holds) neither stalls /init nor Destroy; the first activation gets it, bounded.
func TestRuncChattyInit(t *testing.T) {
	d := newRuncDriver(t, nil)
	in := start(t, d, "python:3.11", 128<<20)
	mustInit(t, in, "for i in range(20000):\n    print('chatty module load', i)\ndef main(a):\n    return a\n", "main")
	r := doRun(t, in, map[string]any{"k": 1}, time.Minute, 10_000, 0)
	if r.Outcome.Status != 200 || !r.LogsTruncated || len(r.Logs) == 0 || r.Logs[0].Text != "chatty module load 0" {
		t.Fatalf("first run: status %d truncated %v lines %d", r.Outcome.Status, r.LogsTruncated, len(r.Logs))
	}
	r = doRun(t, in, map[string]any{"k": 2}, time.Minute, 10_000, 0)
	if r.LogsTruncated || len(r.Logs) != 0 {
		t.Fatalf("second run: truncated %v lines %d", r.LogsTruncated, len(r.Logs))
	}
	done := make(chan error, 1)
	go func() { done <- in.Destroy(context.Background()) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Destroy did not finish while uncollected logs filled the readers")
	}
}

// TestRuncInterpreterOption: the python3 option reaches the proxy inside the container.
func TestRuncInterpreterOption(t *testing.T) {
	d := newRuncDriver(t, map[string]string{"python3": "/usr/bin/python3.11"})
	in := start(t, d, "python:3.11", 128<<20)
	mustInit(t, in, "import sys\ndef main(a):\n    return {'exe': sys.executable}\n", "main")
	r := doRun(t, in, map[string]any{}, 30*time.Second, 1<<20, 0)
	wantJSON(t, r.Outcome.Body, `{"exe":"/usr/bin/python3.11"}`)
}
