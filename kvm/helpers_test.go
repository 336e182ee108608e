package kvm

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
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
