package kvm

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// debianPython is Debian's CPython 3.11 (dynamically linked, stdlib and lib-dynload extension
// modules from /usr/lib/python3.11): NOT a python3 found on PATH, which may be another build.
const debianPython = "/usr/bin/python3.11"

// pythonTree is what Debian's python3 needs: the interpreter, its standard library and
// extension modules, the C libraries (through the /lib and /lib64 links of merged /usr), the
// loader cache and the C.UTF-8 locale.
func pythonTree(files map[string][]byte) *FileTree {
	return &FileTree{
		Host: []string{"/usr/bin/python3", "/usr/bin/python3.11", "/usr/lib/python3.11", "/lib", "/lib64", "/usr/lib64",
			"/usr/lib/x86_64-linux-gnu", "/etc/ld.so.cache", "/usr/lib/locale/C.utf8"},
		Files: files,
	}
}

func readPython(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile(debianPython)
	if err != nil {
		t.Fatalf("this test needs Debian's python3 at %s (apt-get install python3: scripts/install-deps.sh): %v", debianPython, err)
	}
	return b
}

func pythonConfig(args ...string) Config {
	return Config{
		Memory: 128 << 20, ExePath: debianPython, Files: pythonTree(nil),
		Args: append([]string{"/usr/bin/python3", "-I", "-S", "-B"}, args...),
	}
}

func TestPythonPrint(t *testing.T) {
	h := openHost(t)
	var c captured
	cfg := c.config(pythonConfig("-c", `import sys, json, asyncio, contextvars, decimal
print("hi", json.dumps({"a": decimal.Decimal("1.5").as_integer_ratio()}), sys.prefix)
import _asyncio, _contextvars, _decimal, _json
import re, base64, zipfile, tempfile, io, traceback, datetime, hashlib, random, ssl, sqlite3, zlib
assert hashlib.sha256(b"x").hexdigest().startswith("2d711642")
ba = bytearray(300000)
for _ in range(20):
    ba.extend(bytes(150000))
assert len(ba) == 3300000
async def f(): return contextvars.ContextVar("v", default=7).get()
try:
    f().send(None)
except StopIteration as stop:
    print(stop.value, asyncio.Future.__module__)`))
	g, err := h.New(context.Background(), cfg, readPython(t))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	defer g.Close()
	ex, err := g.Run(context.Background())
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	t.Logf("syscalls %v\nENOSYS %v", ex.Syscalls, ex.ENOSYS)
	for nr := range ex.ENOSYS {
		switch SyscallName(nr) {
		case "rseq", "epoll_create1", "poll": // glibc and asyncio's selector probe carry on without them
		default:
			t.Errorf("refused %s (%d): PYTHON_SYSCALLS.md lists what Python may be refused", SyscallName(nr), nr)
		}
	}
	if ex.Reason != Exited || ex.Code != 0 {
		t.Fatalf("exit %v code %d: %v\nstdout %q\nstderr %s", ex.Reason, ex.Code, ex.Err, c.stdout.String(), c.stderr.String())
	}
	if got := c.stdout.String(); !strings.HasPrefix(got, "hi {\"a\": [3, 2]} /usr\n7 _asyncio\n") {
		t.Fatalf("stdout %q", got)
	}
}

// launcherConfig runs Debian's python3 with the project's Python launcher (package runtimes);
// c, when set, captures its streams.
func launcherConfig(t testing.TB, c *captured) Config {
	t.Helper()
	launcher, err := os.ReadFile("../runtimes/launchers/launcher.py")
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Memory: 128 << 20, ExePath: debianPython,
		Files: pythonTree(map[string][]byte{"/launcher/launcher.py": launcher}),
		Args:  []string{"/usr/bin/python3", "-I", "-S", "-B", "/launcher/launcher.py"},
	}
	if c != nil {
		cfg = c.config(cfg)
	}
	return cfg
}

func initLine(t testing.TB, action string) []byte {
	t.Helper()
	code, err := os.ReadFile("testdata/python/" + action)
	if err != nil {
		t.Fatal(err)
	}
	js, _ := json.Marshal(map[string]any{"name": "hello", "main": "main", "binary": false, "code": string(code),
		"env": map[string]string{"__OW_NAMESPACE": "guest"}})
	return append(js, '\n')
}

// runTo runs g and fails unless it stops with want.
func runTo(t testing.TB, g *Guest, c *captured, want Reason) Exit {
	t.Helper()
	ex, err := g.Run(context.Background())
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if ex.Reason != want {
		t.Fatalf("stopped %v (code %d, %v), want %v\nENOSYS %v\nstdout %q\nstderr %s", ex.Reason, ex.Code, ex.Err, want, ex.ENOSYS, c.stdout.String(), c.stderr.String())
	}
	return ex
}

func TestPythonLauncherSnapshots(t *testing.T) {
	h := openHost(t)
	var c captured
	g := launcherGuest(t, h, &c)
	rs := snapshotOf(t, h, g, "runtime.snap")
	g.Close()

	c = captured{}
	g = restored(t, h, rs, launcherConfig(t, &c))
	g.Feed(initLine(t, "hello.py"))
	runTo(t, g, &c, BlockedOnRead)
	if got := c.result.String(); got != "{\"ok\":true}\n" {
		t.Fatalf("init reply %q, want {\"ok\":true}\nstderr %s", got, c.stderr.String())
	}
	fs := snapshotOf(t, h, g, "function.snap")

	c = captured{}
	f := restored(t, h, fs, launcherConfig(t, &c))
	for i, name := range []string{"Ada", "Grace", "Ada"} {
		c.result.Reset()
		c.stdout.Reset()
		f.Feed([]byte(`{"value":{"name":"` + name + `"},"activation_id":"a` + name + `"}` + "\n"))
		runTo(t, f, &c, BlockedOnRead)
		want := `{"greeting":"Hello, ` + name + `!"}` + "\n"
		if got := c.result.String(); got != want {
			t.Fatalf("activation %d: result %q, want %q\nstderr %s", i, got, want, c.stderr.String())
		}
		if got := c.stdout.String(); !strings.Contains(got, "hello called for "+name+"\n") {
			t.Fatalf("activation %d: stdout %q", i, got)
		}
		if err := f.Reset(); err != nil {
			t.Fatalf("Reset: %v", err)
		}
	}
}

// A function snapshot remembers its file tree: a restore without Config.Files still imports
// modules lazily; /tmp is private and writable; the host outside the tree stays invisible.
func TestPythonRestoreKeepsTree(t *testing.T) {
	h := openHost(t)
	var c captured
	snap := functionSnapshot(t, h, &c, "lazy.py")
	c = captured{}
	f := restored(t, h, snap, c.config(Config{}))
	for i := 0; i < 2; i++ {
		c.result.Reset()
		f.Feed([]byte(`{"value":{}}` + "\n"))
		runTo(t, f, &c, BlockedOnRead)
		want := `{"short":"hello [...]","tmp":"scratch","hidden":true}` + "\n"
		if got := c.result.String(); got != want {
			t.Fatalf("activation %d: %q, want %q\nstderr %s", i, got, want, c.stderr.String())
		}
		if err := f.Reset(); err != nil {
			t.Fatal(err)
		}
	}
}

// asyncio's event loop runs in the guest: a socketpair wakes it, poll waits (epoll is refused,
// so selectors picks poll), timers sleep.
func TestPythonAsyncio(t *testing.T) {
	h := openHost(t)
	var c captured
	cfg := c.config(pythonConfig("-c", `import asyncio, contextvars, socket
v = contextvars.ContextVar("v", default=0)
async def work(i):
    v.set(i)
    await asyncio.sleep(0.001 * i)
    return v.get() * 10
async def main():
    return await asyncio.gather(*(work(i) for i in range(3)))
print(asyncio.run(main()), type(asyncio.get_event_loop_policy().new_event_loop()._selector).__name__)
a, b = socket.socketpair()
a.sendall(b"ping")
print(b.recv(16), repr(a.getsockname()))
b.close()
print(a.recv(16))`))
	g, err := h.New(context.Background(), cfg, readPython(t))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	defer g.Close()
	ex := runTo(t, g, &c, Exited)
	want := "[0, 10, 20] PollSelector\nb'ping' ''\nb''\n"
	if got := c.stdout.String(); got != want || ex.Code != 0 {
		t.Fatalf("stdout %q (exit %d), want %q\nstderr %s\nENOSYS %v", got, ex.Code, want, c.stderr.String(), ex.ENOSYS)
	}
}

// Reset keeps hot pages writable across activations (dirty_hot.go): whatever pages each
// activation writes, every one starts from the function snapshot, past the hot set's relearn
// period, and the memory after a Reset equals the snapshot's.
func TestPythonResetManyActivations(t *testing.T) {
	h := openHost(t)
	var c captured
	snap := functionSnapshot(t, h, &c, "counter.py")
	c = captured{}
	f := restored(t, h, snap, c.config(Config{}))
	t0 := time.Now()
	for i := 0; i < hotRelearn+10; i++ {
		c.result.Reset()
		f.Feed([]byte(fmt.Sprintf(`{"value":{"i":%d}}`+"\n", i)))
		runTo(t, f, &c, BlockedOnRead)
		want := fmt.Sprintf(`{"n":1,"len":%d}`+"\n", 2000*(i%7))
		if got := c.result.String(); got != want {
			t.Fatalf("activation %d: %q, want %q", i, got, want)
		}
		if err := f.Reset(); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("activations %v", time.Since(t0))
	if end := f.mapped; !bytes.Equal(f.mem.b[userLo:end], snap.image[userLo:end]) {
		for p := uint64(userLo); p < end; p += pageSize {
			if !bytes.Equal(f.mem.b[p:p+pageSize], snap.image[p:p+pageSize]) {
				t.Fatalf("after Reset, page %#x differs from the snapshot", p)
			}
		}
	}
}
