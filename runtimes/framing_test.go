package runtimes

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/snapinvoker/snapinvoker/internal/testprog"
)

// kindsUnderTest are the managed families, each with the sample directory and extension.
var kindsUnderTest = []struct{ kind, dir, ext string }{
	{"nodejs:20", "nodejs", ".js"},
	{"python:3.11", "python", ".py"},
}

func requireExec(t testing.TB, path string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("%s is required (scripts/install-deps.sh installs it): %v", path, err)
	}
}

// startLauncher writes kind's launcher into a temp dir and starts it.
func startLauncher(t testing.TB, kind string, env ...string) *Process {
	t.Helper()
	name, script := Launcher(kind)
	if name == "" {
		t.Fatalf("no launcher for %s", kind)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, script, 0o644); err != nil {
		t.Fatal(err)
	}
	argv, err := Interpreters{}.Command(kind, path)
	if err != nil {
		t.Fatal(err)
	}
	requireExec(t, argv[0])
	p, err := Start(context.Background(), Options{Argv: argv, Dir: dir, Env: append([]string{"TMPDIR=" + dir}, env...)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func sample(t testing.TB, dir, file string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", dir, file))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func initValue(code, main string, binary bool, env map[string]string) []byte {
	b, _ := json.Marshal(map[string]any{"name": "a", "main": main, "binary": binary, "code": code, "env": env})
	return b
}

func runBody(value any) []byte {
	b, _ := json.Marshal(map[string]any{"value": value, "namespace": "guest", "action_name": "/guest/a",
		"activation_id": "0123456789abcdef0123456789abcdef", "transaction_id": "tid1", "deadline": "1717171777301",
		"api_key": "uuid:key", "action_version": nil})
	return b
}

func ctxFor(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func mustInit(t *testing.T, p *Process, code, main string, binary bool) Reply {
	t.Helper()
	r, err := p.Init(ctxFor(t, 20*time.Second), initValue(code, main, binary, map[string]string{"__OW_API_HOST": "http://h:1", "INITPARAM": "v"}), 1<<20)
	if err != nil {
		t.Fatalf("init: %v", err)
	}
	if r.Status != 200 {
		t.Fatalf("init: status %d body %s logs %v", r.Status, r.Body, r.Logs)
	}
	return r
}

func mustRun(t *testing.T, p *Process, value any) Reply {
	t.Helper()
	r, err := p.Run(ctxFor(t, 20*time.Second), runBody(value), 1<<20)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	return r
}

func jsonEq(t *testing.T, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("reply %q is not JSON: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatal(err)
	}
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	if !bytes.Equal(gb, wb) {
		t.Fatalf("reply %s, want %s", gb, wb)
	}
}

func logTexts(r Reply) []string {
	var out []string
	for _, l := range r.Logs {
		out = append(out, l.Stream+":"+l.Text)
	}
	return out
}

func TestSamples(t *testing.T) {
	for _, k := range kindsUnderTest {
		t.Run(k.dir, func(t *testing.T) {
			t.Run("hello", func(t *testing.T) {
				p := startLauncher(t, k.kind)
				mustInit(t, p, sample(t, k.dir, "hello"+k.ext), "main", false)
				r := mustRun(t, p, map[string]any{"name": "World"})
				if r.Status != 200 {
					t.Fatalf("status %d", r.Status)
				}
				jsonEq(t, r.Body, `{"greeting":"Hello, World!"}`)
				if got := logTexts(r); len(got) != 1 || got[0] != "stdout:hello called for World" {
					t.Fatalf("logs %q", got)
				}
				// The instance is reusable and logs stay per activation.
				r = mustRun(t, p, map[string]any{})
				jsonEq(t, r.Body, `{"greeting":"Hello, stranger!"}`)
				if got := logTexts(r); len(got) != 1 || got[0] != "stdout:hello called for stranger" {
					t.Fatalf("second run logs %q", got)
				}
			})
			t.Run("echo-array-apperror-unicode", func(t *testing.T) {
				for _, c := range []struct{ file, params, want string }{
					{"echo", `{"a":1,"b":[true,null]}`, `{"a":1,"b":[true,null]}`},
					{"echo", `{}`, `{}`},
					{"array", `{}`, `[1,2,3]`},
					{"apperror", `{}`, `{"error":"bad input"}`},
					{"unicode", `{"delimiter":"❄"}`, `{"winter":"❄ ☃ ❄"}`},
				} {
					p := startLauncher(t, k.kind)
					mustInit(t, p, sample(t, k.dir, c.file+k.ext), "main", false)
					r := mustRun(t, p, json.RawMessage(c.params))
					if r.Status != 200 {
						t.Fatalf("%s: status %d body %s", c.file, r.Status, r.Body)
					}
					jsonEq(t, r.Body, c.want)
				}
			})
			t.Run("context", func(t *testing.T) {
				p := startLauncher(t, k.kind)
				mustInit(t, p, sample(t, k.dir, "context"+k.ext), "main", false)
				r := mustRun(t, p, map[string]any{})
				jsonEq(t, r.Body, `{"api_host":"http://h:1","api_key":"uuid:key","namespace":"guest","action_name":"/guest/a",
					"activation_id":"0123456789abcdef0123456789abcdef","deadline":"1717171777301","transaction_id":"tid1"}`)
			})
			t.Run("initfail", func(t *testing.T) {
				p := startLauncher(t, k.kind)
				r, err := p.Init(ctxFor(t, 20*time.Second), initValue(sample(t, k.dir, "initfail"+k.ext), "main", false, nil), 1<<20)
				if err != nil {
					t.Fatal(err)
				}
				var body struct{ Error string }
				if r.Status != 502 || json.Unmarshal(r.Body, &body) != nil || !strings.Contains(body.Error, "SyntaxError") {
					t.Fatalf("status %d body %s", r.Status, r.Body)
				}
				if _, err := p.Run(ctxFor(t, time.Second), runBody(nil), 0); !errors.Is(err, ErrState) {
					t.Fatalf("run after failed init: %v", err)
				}
			})
			t.Run("missing-main", func(t *testing.T) {
				p := startLauncher(t, k.kind)
				r, err := p.Init(ctxFor(t, 20*time.Second), initValue(sample(t, k.dir, "echo"+k.ext), "nothere", false, nil), 1<<20)
				if err != nil || r.Status != 502 || !bytes.Contains(r.Body, []byte("nothere")) {
					t.Fatalf("status %d body %s err %v", r.Status, r.Body, err)
				}
			})
			t.Run("exit", func(t *testing.T) {
				p := startLauncher(t, k.kind)
				mustInit(t, p, sample(t, k.dir, "exit"+k.ext), "main", false)
				r, err := p.Run(ctxFor(t, 20*time.Second), runBody(nil), 1<<20)
				if !errors.Is(err, ErrExited) || !strings.Contains(err.Error(), "exit status 3") {
					t.Fatalf("err %v, reply %d %s", err, r.Status, r.Body)
				}
			})
			t.Run("deadline", func(t *testing.T) {
				p := startLauncher(t, k.kind)
				mustInit(t, p, sample(t, k.dir, "sleep"+k.ext), "main", false)
				ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
				defer cancel()
				_, err := p.Run(ctx, runBody(map[string]any{"ms": 60000}), 1<<20)
				if !errors.Is(err, ErrTimeout) {
					t.Fatalf("err %v", err)
				}
			})
			t.Run("logflood-limit", func(t *testing.T) {
				p := startLauncher(t, k.kind)
				mustInit(t, p, sample(t, k.dir, "logflood"+k.ext), "main", false)
				r, err := p.Run(ctxFor(t, 20*time.Second), runBody(map[string]any{"lines": 2000}), 1000)
				if err != nil || r.Status != 200 {
					t.Fatalf("err %v status %d", err, r.Status)
				}
				if len(r.Logs) != 10 || !r.LogsTruncated {
					t.Fatalf("kept %d lines (truncated %v), want 10 of 99 bytes under a 1000-byte limit", len(r.Logs), r.LogsTruncated)
				}
				// A flood larger than the pipe buffer arrives whole and in its own activation
				// (node queues pipe writes once the pipe is full; the markers must queue behind).
				r, err = p.Run(ctxFor(t, 20*time.Second), runBody(map[string]any{"lines": 5000}), 1<<20)
				if err != nil || len(r.Logs) != 5000 || r.LogsTruncated {
					t.Fatalf("flood: err %v, %d lines, truncated %v", err, len(r.Logs), r.LogsTruncated)
				}
				// The flood of the previous run does not leak into this one.
				r = mustRun(t, p, map[string]any{"lines": 3})
				if len(r.Logs) != 3 || r.LogsTruncated {
					t.Fatalf("next run kept %d lines, truncated %v", len(r.Logs), r.LogsTruncated)
				}
			})
		})
	}
}

func TestNodeSpecifics(t *testing.T) {
	cases := []struct {
		name, code, main, params string
		status                   int
		want                     string
	}{
		{"exports.main", `exports.main = (p) => ({via: 'exports', x: p.x});`, "main", `{"x":1}`, 200, `{"via":"exports","x":1}`},
		{"module.exports.main", `module.exports.main = async function (p) { return {via: 'module'}; };`, "main", `{}`, 200, `{"via":"module"}`},
		{"custom main", `function niam() { return {greetings: 'Hello from a non-standard entrypoint.'}; }`, "niam", `{}`, 200, `{"greetings":"Hello from a non-standard entrypoint."}`},
		{"throws", `function main() { throw new Error('thrown on purpose'); }`, "main", `{}`, 502, `{"error":"An error has occurred: Error: thrown on purpose"}`},
		{"reject", `function main() { return Promise.reject({reason: 'no'}); }`, "main", `{}`, 200, `{"error":{"reason":"no"}}`},
		{"undefined", `function main() { }`, "main", `{}`, 200, `{}`},
		{"scalar", `function main() { return 42; }`, "main", `{}`, 502, `{"error":"The action did not return a dictionary."}`},
		{"promise", `async function main(p) { await new Promise(r => setTimeout(r, 5)); return {done: true}; }`, "main", `{}`, 200, `{"done":true}`},
		{"init env", `function main() { return {p: process.env.INITPARAM}; }`, "main", `{}`, 200, `{"p":"v"}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := startLauncher(t, "nodejs:20")
			mustInit(t, p, c.code, c.main, false)
			r := mustRun(t, p, json.RawMessage(c.params))
			if r.Status != c.status {
				t.Fatalf("status %d body %s", r.Status, r.Body)
			}
			jsonEq(t, r.Body, c.want)
		})
	}
	t.Run("rejected Error is serialized", func(t *testing.T) {
		p := startLauncher(t, "nodejs:20")
		mustInit(t, p, `async function main() { throw new TypeError('bad'); }`, "main", false)
		r := mustRun(t, p, map[string]any{})
		var body struct {
			Error struct{ Name, Message, Stack string }
		}
		if r.Status != 200 || json.Unmarshal(r.Body, &body) != nil || body.Error.Name != "TypeError" || body.Error.Message != "bad" || body.Error.Stack == "" {
			t.Fatalf("status %d body %s", r.Status, r.Body)
		}
	})
	zipCases := []struct {
		name  string
		files map[string]string
		main  string
		want  string
	}{
		{"package.json", map[string]string{"package.json": `{"main":"lib/act.js"}`, "lib/act.js": `exports.main = () => ({zip: 'package'});`}, "main", `{"zip":"package"}`},
		{"index.js", map[string]string{"index.js": `const h = require('./helper'); exports.main = () => ({zip: h()});`, "helper.js": `module.exports = () => 'index';`}, "main", `{"zip":"index"}`},
		{"file.fn", map[string]string{"handlers.js": `exports.go = () => ({zip: 'file.fn'});`}, "handlers.go", `{"zip":"file.fn"}`},
	}
	for _, c := range zipCases {
		t.Run("zip "+c.name, func(t *testing.T) {
			p := startLauncher(t, "nodejs:20")
			mustInit(t, p, testprog.ZipBase64(t, c.files), c.main, true)
			r := mustRun(t, p, map[string]any{})
			if r.Status != 200 {
				t.Fatalf("status %d body %s", r.Status, r.Body)
			}
			jsonEq(t, r.Body, c.want)
		})
	}
	t.Run("zip without entry point", func(t *testing.T) {
		p := startLauncher(t, "nodejs:20")
		r, err := p.Init(ctxFor(t, 20*time.Second), initValue(testprog.ZipBase64(t, map[string]string{"x.js": "1"}), "main", true, nil), 1<<20)
		if err != nil || r.Status != 502 || !bytes.Contains(r.Body, []byte("package.json or index.js")) {
			t.Fatalf("status %d body %s err %v", r.Status, r.Body, err)
		}
	})
}

func TestPythonSpecifics(t *testing.T) {
	t.Run("zip with __main__.py", func(t *testing.T) {
		files := map[string]string{}
		for _, f := range []string{"__main__.py", "helper.py"} {
			files[f] = sample(t, "python", "zipaction/"+f)
		}
		p := startLauncher(t, "python:3.11")
		mustInit(t, p, testprog.ZipBase64(t, files), "main", true)
		r := mustRun(t, p, map[string]any{"text": "hey"})
		jsonEq(t, r.Body, `{"shout":"HEY!"}`)
	})
	t.Run("zip with a virtualenv", func(t *testing.T) {
		p := startLauncher(t, "python:3.11")
		mustInit(t, p, testprog.ZipBase64(t, map[string]string{
			"__main__.py": "import vendored\ndef main(a):\n    return {'v': vendored.VALUE}\n",
			"virtualenv/lib/python3.11/site-packages/vendored.py": "VALUE = 'from the virtualenv'\n",
		}), "main", true)
		r := mustRun(t, p, map[string]any{})
		jsonEq(t, r.Body, `{"v":"from the virtualenv"}`)
	})
	t.Run("custom main and exception", func(t *testing.T) {
		p := startLauncher(t, "python:3.11")
		mustInit(t, p, "def niam(a):\n    if a.get('boom'):\n        raise ValueError('thrown on purpose')\n    return {'greetings': 'Hello from a non-standard entrypoint.'}\n", "niam", false)
		r := mustRun(t, p, map[string]any{"boom": true})
		if r.Status != 200 {
			t.Fatalf("status %d", r.Status)
		}
		jsonEq(t, r.Body, `{"error":"thrown on purpose"}`)
		if len(r.Logs) == 0 || r.Logs[len(r.Logs)-1].Stream != "stderr" || !strings.Contains(r.Logs[len(r.Logs)-1].Text, "ValueError") {
			t.Fatalf("traceback missing from logs: %q", logTexts(r))
		}
		r = mustRun(t, p, map[string]any{})
		jsonEq(t, r.Body, `{"greetings":"Hello from a non-standard entrypoint."}`)
	})
	t.Run("scalar result", func(t *testing.T) {
		p := startLauncher(t, "python:3.11")
		mustInit(t, p, "def main(a):\n    return 'text'\n", "main", false)
		r := mustRun(t, p, map[string]any{})
		if r.Status != 502 {
			t.Fatalf("status %d", r.Status)
		}
		jsonEq(t, r.Body, `{"error":"The action did not return a dictionary or array."}`)
	})
	t.Run("zip without __main__.py", func(t *testing.T) {
		p := startLauncher(t, "python:3.11")
		r, err := p.Init(ctxFor(t, 20*time.Second), initValue(testprog.ZipBase64(t, map[string]string{"x.py": "1"}), "main", true, nil), 1<<20)
		if err != nil || r.Status != 502 || !bytes.Contains(r.Body, []byte("__main__.py")) {
			t.Fatalf("status %d body %s err %v", r.Status, r.Body, err)
		}
	})
	t.Run("output without newline before the marker", func(t *testing.T) {
		p := startLauncher(t, "python:3.11")
		mustInit(t, p, "import sys\ndef main(a):\n    sys.stdout.write('partial')\n    return {}\n", "main", false)
		r := mustRun(t, p, map[string]any{})
		if got := logTexts(r); len(got) != 1 || got[0] != "stdout:partial" {
			t.Fatalf("logs %q", got)
		}
	})
}

func TestNativeEcho(t *testing.T) {
	bin := testprog.Build(t, "echo")
	p, err := Start(context.Background(), Options{Argv: []string{bin}, Native: true})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	r, err := p.Init(ctxFor(t, 10*time.Second), nil, 1<<20)
	if err != nil || r.Status != 200 {
		t.Fatalf("init: %v %d %s", err, r.Status, r.Body)
	}
	r = mustRun(t, p, map[string]any{"x": 1})
	var got struct{ Echo map[string]any }
	if r.Status != 200 || json.Unmarshal(r.Body, &got) != nil || got.Echo["value"].(map[string]any)["x"] != 1.0 {
		t.Fatalf("status %d body %s", r.Status, r.Body)
	}
}

func TestBadInput(t *testing.T) {
	p := startLauncher(t, "python:3.11")
	if _, err := p.Init(ctxFor(t, time.Second), []byte(`{"code": `), 0); err == nil || !strings.Contains(err.Error(), "init value is not valid JSON") {
		t.Fatalf("err %v", err)
	}
	if _, err := p.Run(ctxFor(t, time.Second), []byte(`{}`), 0); !errors.Is(err, ErrState) {
		t.Fatalf("run before init: %v", err)
	}
	if _, err := Start(context.Background(), Options{}); err == nil {
		t.Fatal("empty argv accepted")
	}
	if _, err := FamilyOf("swift:5.7"); !errors.Is(err, ErrUnknownKind) {
		t.Fatalf("FamilyOf(swift) = %v", err)
	}
	for _, bad := range []string{"#50 {}", "#abc {}", "#999 {}"} {
		if _, _, err := parseReply([]byte(bad)); !errors.Is(err, ErrProtocol) {
			t.Fatalf("parseReply(%q) = %v", bad, err)
		}
	}
}

// FuzzParseReply: any fd-3 line either parses to a status in 100..599 or is ErrProtocol.
func FuzzParseReply(f *testing.F) {
	for _, s := range []string{`{"ok":true}`, `#502 {"error":"x"}`, `#50 {}`, `#`, `[1,2]`, "#200 ", "\r"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		status, body, err := parseReply(line)
		if err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("error %v is not ErrProtocol", err)
			}
			return
		}
		if status < 100 || status > 599 || len(body) > len(line) {
			t.Fatalf("status %d body %q from %q", status, body, line)
		}
	})
}

func TestWaitIdle(t *testing.T) {
	for _, k := range kindsUnderTest {
		t.Run(k.dir, func(t *testing.T) {
			p := startLauncher(t, k.kind)
			if err := p.WaitIdle(ctxFor(t, 30*time.Second)); err != nil {
				t.Fatalf("a booting launcher never became idle: %v", err)
			}
			mustInit(t, p, sample(t, k.dir, "echo"+k.ext), "main", false)
			if err := p.WaitIdle(ctxFor(t, 30*time.Second)); err != nil {
				t.Fatalf("an initialised launcher is not idle: %v", err)
			}
		})
	}
	t.Run("busy process", func(t *testing.T) {
		p, err := Start(context.Background(), Options{Argv: []string{"/usr/bin/python3", "-c", "while True: pass"}})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		if err := p.WaitIdle(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("a spinning process reported idle: %v", err)
		}
	})
	t.Run("exited process", func(t *testing.T) {
		p, err := Start(context.Background(), Options{Argv: []string{"/usr/bin/python3", "-c", "pass"}})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		if err := p.WaitIdle(ctxFor(t, 30*time.Second)); !errors.Is(err, ErrExited) {
			t.Fatalf("an exited process: %v", err)
		}
	})
}
