package kvm

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/snapinvoker/snapinvoker/internal/testprog"
)

// openHost opens /dev/kvm or fails the test: these tests need real KVM, never a stand-in.
func openHost(t testing.TB) *Host {
	t.Helper()
	if err := checkLayout(); err != nil {
		t.Fatal(err)
	}
	h, err := Open()
	if err != nil {
		t.Fatalf("this test needs a usable /dev/kvm: %v", err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

var (
	buildMu    sync.Mutex
	buildCache = map[string][]byte{}
	buildDir   string
)

// build compiles testdata/progs/NAME.c (or the shared program NAME of internal/testprog) with gcc -static -O2 once per test
// binary run and returns the executable's bytes.
func build(t testing.TB, name string) []byte {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if b, ok := buildCache[name]; ok {
		return b
	}
	if buildDir == "" {
		d, err := os.MkdirTemp("", "kvmtest")
		if err != nil {
			t.Fatal(err)
		}
		buildDir = d
	}
	src := filepath.Join("testdata", "progs", name+".c")
	if _, err := os.Stat(src); err != nil {
		// Not one of this package's own guests: a shared program of internal/testprog (echo).
		b, err := os.ReadFile(testprog.Build(t, name))
		if err != nil {
			t.Fatal(err)
		}
		buildCache[name] = b
		return b
	}
	out := filepath.Join(buildDir, name)
	cmd := exec.Command("gcc", "-static", "-O2", "-o", out, src)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gcc -static %s (install gcc and libc6-dev: scripts/install-deps.sh): %v\n%s", src, err, msg)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	buildCache[name] = b
	return b
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// captured is a guest's three output streams.
type captured struct{ stdout, stderr, result bytes.Buffer }

func (c *captured) config(cfg Config) Config {
	cfg.Stdout, cfg.Stderr, cfg.Result = &c.stdout, &c.stderr, &c.result
	return cfg
}

// runProgram boots name and runs it to its first stop.
func runProgram(t *testing.T, h *Host, name string, cfg Config) (Exit, *captured) {
	t.Helper()
	var c captured
	g, err := h.New(context.Background(), c.config(cfg), build(t, name))
	if err != nil {
		t.Fatalf("New(%s): %v", name, err)
	}
	defer g.Close()
	ex, err := g.Run(context.Background())
	if err != nil {
		t.Fatalf("Run(%s): %v", name, err)
	}
	return ex, &c
}

// snapshotOf writes the snapshot of g, parked in a read, to a file name in the test's temporary
// directory and opens it; the snapshot is closed when the test ends.
func snapshotOf(t testing.TB, h *Host, g *Guest, name string) *Snapshot {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := g.WriteSnapshot(path); err != nil {
		t.Fatalf("snapshot %s: %v", name, err)
	}
	snap, err := h.OpenSnapshot(path)
	if err != nil {
		t.Fatalf("open snapshot %s: %v", name, err)
	}
	t.Cleanup(func() { snap.Close() })
	return snap
}

// restored restores snap into a new VM with cfg; the guest is closed when the test ends.
func restored(t testing.TB, h *Host, snap *Snapshot, cfg Config) *Guest {
	t.Helper()
	g, err := h.Restore(context.Background(), snap, cfg)
	if err != nil {
		t.Fatalf("Restore: %v", err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

// launcherGuest boots Debian's python3 running the project's Python launcher, its streams in c,
// to its first blocking read (the init line); the guest is closed when the test ends.
func launcherGuest(t testing.TB, h *Host, c *captured) *Guest {
	t.Helper()
	g, err := h.New(context.Background(), launcherConfig(t, c), readPython(t))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { g.Close() })
	runTo(t, g, c, BlockedOnRead)
	return g
}

// functionSnapshot is the snapshot of a launcher guest initialised with testdata/python/ACTION:
// parked in the read of its first activation.
func functionSnapshot(t testing.TB, h *Host, c *captured, action string) *Snapshot {
	t.Helper()
	g := launcherGuest(t, h, c)
	g.Feed(initLine(t, action))
	runTo(t, g, c, BlockedOnRead)
	return snapshotOf(t, h, g, strings.TrimSuffix(action, ".py")+".snap")
}
