package unikernel

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/snapinvoker/snapinvoker/backend"
	"github.com/snapinvoker/snapinvoker/backend/backendtest"
	"github.com/snapinvoker/snapinvoker/backend/container"
)

// requireKVM fails the test when /dev/kvm cannot be used: these tests need real KVM.
func requireKVM(t testing.TB) {
	t.Helper()
	if err := Probe(context.Background(), backend.Config{}); err != nil {
		t.Fatalf("the unikernel driver needs a usable /dev/kvm (run on a KVM host as a user with access to it): %v", err)
	}
}

var (
	buildMu  sync.Mutex
	builtDir string
	built    = map[string][]byte{}
)

// testProgram compiles testdata/NAME.c with gcc -static once per test binary and returns the bytes.
func testProgram(t testing.TB, name string) []byte {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if b, ok := built[name]; ok {
		return b
	}
	if builtDir == "" {
		d, err := os.MkdirTemp("", "unikernel-test-")
		if err != nil {
			t.Fatal(err)
		}
		builtDir = d
	}
	out := filepath.Join(builtDir, name)
	msg, err := exec.Command("gcc", "-static", "-O2", "-o", out, filepath.Join("testdata", name+".c")).CombinedOutput()
	if err != nil {
		t.Fatalf("gcc -static testdata/%s.c (install gcc and libc6-dev: scripts/install-deps.sh): %v\n%s", name, err, msg)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	built[name] = b
	return b
}

// code is a native program as a binary action's /init code.
func code(t testing.TB, name string) backendtest.Code {
	return backendtest.Code{Code: base64.StdEncoding.EncodeToString(testProgram(t, name)), Binary: true}
}

// TestMain also lets the test binary act as `snapinvoker proxy` inside the containers the
// container driver starts (the Python benchmark's baseline (e) runs it): that driver bind-mounts
// the running binary and starts it with "proxy" as its first argument.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "proxy" {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
		defer stop()
		if err := container.ProxyMain(ctx, os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "proxy:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	code := m.Run()
	if builtDir != "" {
		os.RemoveAll(builtDir)
	}
	os.Exit(code)
}

// newDriver opens a driver on a fresh data directory (dir when given).
func newDriver(t testing.TB, dir string, opts map[string]string) *Driver {
	t.Helper()
	requireKVM(t)
	if dir == "" {
		dir = t.TempDir()
	}
	d, err := New(context.Background(), backend.Config{Logger: zaptest.NewLogger(t), DataDir: dir, Options: opts})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return d
}
