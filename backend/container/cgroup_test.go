package container

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/snapinvoker/snapinvoker/backend"
)

func writeFile(t *testing.T, path, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestCgroupLayouts reads OOM kills and usage from both layouts, laid out as the kernel does.
func TestCgroupLayouts(t *testing.T) {
	v2 := t.TempDir()
	writeFile(t, filepath.Join(v2, "cgroup.controllers"), "cpu memory pids\n")
	writeFile(t, filepath.Join(v2, "snapinvoker/a/memory.events"), "low 0\nhigh 0\nmax 12\noom 2\noom_kill 1\noom_group_kill 0\n")
	writeFile(t, filepath.Join(v2, "snapinvoker/a/memory.current"), "1048576\n")

	v1 := t.TempDir()
	writeFile(t, filepath.Join(v1, "memory/memory.limit_in_bytes"), "9223372036854771712\n")
	writeFile(t, filepath.Join(v1, "memory/snapinvoker/a/memory.oom_control"), "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n")
	writeFile(t, filepath.Join(v1, "memory/snapinvoker/a/memory.usage_in_bytes"), "2097152\n")
	// The hybrid layout (v1 controllers plus a v2 hierarchy at unified/) is driven as v1.
	writeFile(t, filepath.Join(v1, "unified/cgroup.controllers"), "hugetlb\n")

	for _, c := range []struct {
		root        string
		v2          bool
		kills, used int64
	}{{v2, true, 1, 1 << 20}, {v1, false, 3, 2 << 20}} {
		cg, err := detectCgroups(c.root)
		if err != nil || cg.v2 != c.v2 {
			t.Fatalf("%s: v2 %v err %v", c.root, cg.v2, err)
		}
		if n, err := cg.oomKills("/snapinvoker/a"); err != nil || n != c.kills {
			t.Fatalf("%s: oom kills %d %v", cg, n, err)
		}
		if n, err := cg.memoryUsage("/snapinvoker/a"); err != nil || n != c.used {
			t.Fatalf("%s: usage %d %v", cg, n, err)
		}
		if _, err := cg.oomKills("/snapinvoker/gone"); err == nil {
			t.Fatalf("%s: a missing cgroup reads as no OOM without an error", cg)
		}
	}
	if _, err := detectCgroups(t.TempDir()); !errors.Is(err, ErrNoCgroups) {
		t.Fatalf("empty root: %v", err)
	}
}

func TestRegistered(t *testing.T) {
	reg, ok := backend.DefaultRegistry().Lookup(DriverName)
	if !ok {
		t.Fatal("driver not registered")
	}
	for _, k := range []string{"nodejs:20", "python:3.11", "blackbox"} {
		found := false
		for _, p := range reg.Kinds {
			found = found || backend.MatchKind(p, k)
		}
		if !found {
			t.Fatalf("kind %s not covered by %v", k, reg.Kinds)
		}
	}
	requireRunc(t)
	if err := reg.Probe(context.Background(), backend.Config{}); err != nil {
		t.Fatalf("probe on this host: %v", err)
	}
	if err := reg.Probe(context.Background(), backend.Config{Options: map[string]string{"engine": "docker", "docker-host": "unix://" + filepath.Join(t.TempDir(), "none.sock")}}); err == nil {
		t.Fatal("docker probe without an engine succeeded")
	}
}
