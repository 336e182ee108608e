package container

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/snapinvoker/snapinvoker/activation"
	"github.com/snapinvoker/snapinvoker/backend"
)

// longDataDir returns a fresh data directory whose path is about n bytes long, far past the
// 108-byte sun_path of a unix socket address.
func longDataDir(t testing.TB, n int) string {
	t.Helper()
	dir := t.TempDir()
	for len(dir) < n {
		dir = filepath.Join(dir, strings.Repeat("d", min(100, max(1, n-len(dir)-1))))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestRuncLongDataDir: a data directory whose socket paths cannot fit in a sockaddr_un still
// runs actions end to end, and Destroy leaves no socket directory behind.
func TestRuncLongDataDir(t *testing.T) {
	requireRunc(t)
	dataDir := longDataDir(t, 200)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(context.Background(), backend.Config{DataDir: dataDir, Options: map[string]string{"proxy": self}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	in, err := d.Start(context.Background(), backend.StartSpec{Kind: "python:3.11", Memory: 128 << 20})
	if err != nil {
		t.Fatalf("start with a %d-byte data directory: %v", len(dataDir), err)
	}
	mustInit(t, in, readSample(t, "python", "echo.py"), "main")
	r := doRun(t, in, map[string]any{"long": strings.Repeat("x", 10)}, 30*time.Second, 1<<20, 0)
	if r.Outcome.Failure != activation.NoFailure || r.Outcome.Status != 200 {
		t.Fatalf("run: %v %d %s", r.Outcome.Failure, r.Outcome.Status, r.Outcome.Body)
	}
	wantJSON(t, r.Outcome.Body, `{"long":"xxxxxxxxxx"}`)
	root := d.eng.(*runcEngine).sockRoot
	if ents, err := os.ReadDir(root); err != nil || len(ents) != 1 {
		t.Fatalf("socket root %s of a live container: %v %v", root, ents, err)
	}
	if err := in.Destroy(context.Background()); err != nil {
		t.Fatal(err)
	}
	if ents, err := os.ReadDir(root); err != nil || len(ents) != 0 {
		t.Fatalf("socket root %s after Destroy: %v %v", root, ents, err)
	}
	if ents, err := os.ReadDir(filepath.Join(dataDir, "bundles")); err != nil || len(ents) != 0 {
		t.Fatalf("bundles after Destroy: %v %v", ents, err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(root); !os.IsNotExist(err) {
		t.Fatalf("socket root %s after Close: %v", root, err)
	}
}

// TestRuncSocketRoot: leftovers of an earlier run in the driver's socket root are removed at
// start, and a run-dir too long for a socket address fails Start with a platform error naming
// the limit instead of an action that "exited" during /init.
func TestRuncSocketRoot(t *testing.T) {
	requireRunc(t)
	dataDir := t.TempDir()
	runDir := longDataDir(t, 120)
	root, err := socketRoot(runDir, dataDir)
	if err != nil {
		t.Fatal(err)
	}
	leftover := filepath.Join(root, "7")
	if err := os.MkdirAll(leftover, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(leftover, socketName), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := New(context.Background(), backend.Config{DataDir: dataDir, Options: map[string]string{"run-dir": runDir}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	if _, err := os.Stat(leftover); !os.IsNotExist(err) {
		t.Fatalf("leftover socket directory after New: %v", err)
	}
	if fi, err := os.Stat(root); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("socket root %v %v, want mode 0700", fi, err)
	}
	_, err = d.Start(context.Background(), backend.StartSpec{Kind: "python:3.11", Memory: 128 << 20})
	if !errors.Is(err, backend.ErrPlatform) || !strings.Contains(err.Error(), "run-dir") || !strings.Contains(err.Error(), "107") {
		t.Fatalf("start with a %d-byte run-dir: %v", len(runDir), err)
	}
	if ents, err := os.ReadDir(root); err != nil || len(ents) != 0 {
		t.Fatalf("socket root after a refused start: %v %v", ents, err)
	}
	if ents, err := os.ReadDir(filepath.Join(dataDir, "bundles")); err != nil || len(ents) != 0 {
		t.Fatalf("bundles after a refused start: %v %v", ents, err)
	}
	if _, err := parseOptions(map[string]string{"run-dir": "run"}); !errors.Is(err, ErrBadOption) || !strings.Contains(err.Error(), "run-dir") {
		t.Fatalf("relative run-dir: %v", err)
	}
}
