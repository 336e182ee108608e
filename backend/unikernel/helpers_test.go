package unikernel

import (
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/snapinvoker/snapinvoker/backend"
	"github.com/snapinvoker/snapinvoker/backend/backendtest"
	"github.com/snapinvoker/snapinvoker/backend/container"
	"github.com/snapinvoker/snapinvoker/internal/testprog"
)

// requireKVM fails the test when /dev/kvm cannot be used: these tests need real KVM.
func requireKVM(t testing.TB) {
	t.Helper()
	if err := Probe(context.Background(), backend.Config{}); err != nil {
		t.Fatalf("the unikernel driver needs a usable /dev/kvm (run on a KVM host as a user with access to it): %v", err)
	}
}

// testProgram returns the bytes of a native test program built with gcc -static: this
// package's own testdata/NAME.c, else the shared program NAME of internal/testprog.
func testProgram(t testing.TB, name string) []byte {
	t.Helper()
	var exe string
	if src := filepath.Join("testdata", name+".c"); fileExists(src) {
		exe = testprog.BuildFile(t, src)
	} else {
		exe = testprog.Build(t, name)
	}
	b, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// code is a native program as a binary action's /init code.
func code(t testing.TB, name string) backendtest.Code {
	return backendtest.Code{Code: base64.StdEncoding.EncodeToString(testProgram(t, name)), Binary: true}
}

// TestMain also lets the test binary act as `snapinvoker proxy` inside the containers the
// container driver starts (the Python benchmark's baseline (e) runs it).
func TestMain(m *testing.M) { os.Exit(testprog.Main(m, container.ProxyMain)) }

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
