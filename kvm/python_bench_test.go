package kvm

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// pythonSnapshots boots the Python launcher to its init read (runtime snapshot), feeds it
// hello.py's init line and parks it at its first activation read (function snapshot).
func pythonSnapshots(b *testing.B, h *Host) (runtime, function *Snapshot) {
	b.Helper()
	dir := b.TempDir()
	var c captured
	g, err := h.New(context.Background(), launcherConfig(b, &c), readPython(b))
	if err != nil {
		b.Fatal(err)
	}
	defer g.Close()
	runTo(b, g, &c, BlockedOnRead)
	if err := g.WriteSnapshot(filepath.Join(dir, "runtime")); err != nil {
		b.Fatal(err)
	}
	g.Feed(initLine(b, "hello.py"))
	runTo(b, g, &c, BlockedOnRead)
	if err := g.WriteSnapshot(filepath.Join(dir, "function")); err != nil {
		b.Fatal(err)
	}
	if runtime, err = h.OpenSnapshot(filepath.Join(dir, "runtime")); err != nil {
		b.Fatal(err)
	}
	if function, err = h.OpenSnapshot(filepath.Join(dir, "function")); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { runtime.Close(); function.Close() })
	return runtime, function
}

const pyLine = `{"value":{"name":"bench"},"activation_id":"0123456789abcdef"}` + "\n"

// pyActivate feeds one activation and runs to the next read; it returns the result line.
func pyActivate(b *testing.B, g *Guest, c *captured) {
	c.result.Reset()
	g.Feed([]byte(pyLine))
	runTo(b, g, c, BlockedOnRead)
	if c.result.Len() == 0 {
		b.Fatalf("no result; stderr %s", c.stderr.String())
	}
}

// coldPython is the baseline (d): a host process of Debian's python3 running the same launcher,
// from exec to the first activation's result on fd 3.
type coldPython struct{ launcher string }

func (p coldPython) run(b *testing.B, init []byte) {
	r3, w3, err := os.Pipe()
	if err != nil {
		b.Fatal(err)
	}
	defer r3.Close()
	cmd := exec.Command(debianPython, "-I", "-S", "-B", p.launcher)
	cmd.ExtraFiles = []*os.File{w3}
	stdin, _ := cmd.StdinPipe()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	w3.Close()
	rd := bufio.NewReader(r3)
	stdin.Write(init)
	if line, err := rd.ReadString('\n'); err != nil || line != "{\"ok\":true}\n" {
		b.Fatalf("cold python init: %q %v", line, err)
	}
	stdin.Write([]byte(pyLine))
	if _, err := rd.ReadString('\n'); err != nil {
		b.Fatal(err)
	}
	stdin.Close()
	cmd.Wait()
}

// BenchmarkPythonHello measures python/hello.py four ways in the same iterations, so their
// ratios hold on a loaded machine: (a) a pooled instance reset after each activation, (b) a
// fresh restore of the function snapshot (new VM, and a VM from a Pool), (c) the runtime snapshot
// plus the init line, (d) a cold host python3 process running the same launcher.
func BenchmarkPythonHello(b *testing.B) {
	h := openHost(b)
	rt, fn := pythonSnapshots(b, h)
	init := initLine(b, "hello.py")
	launcher := filepath.Join(b.TempDir(), "launcher.py")
	src, err := os.ReadFile("../runtimes/launchers/launcher.py")
	if err != nil {
		b.Fatal(err)
	}
	os.WriteFile(launcher, src, 0o644)
	cold := coldPython{launcher}

	var c captured
	warm, err := h.Restore(context.Background(), fn, c.config(Config{Files: pythonTree(nil)}))
	if err != nil {
		b.Fatal(err)
	}
	defer warm.Close()
	pyActivate(b, warm, &c)
	warm.Reset()
	pool := h.NewPool(context.Background(), 4, fn)
	defer pool.Close()
	// As the driver uses it: the first pooled guest is reset after its activation, which teaches
	// the pool the working set to prefault (prefault.go); the VMs prepared before are used up.
	for i := 0; i < 5; i++ {
		g, err := pool.Restore(context.Background(), fn, c.config(Config{}))
		if err != nil {
			b.Fatal(err)
		}
		pyActivate(b, g, &c)
		g.Reset()
		g.Close()
	}
	// The same for the runtime snapshot: its guests are closed after /init, which teaches too.
	rtPool := h.NewPool(context.Background(), 2, rt)
	defer rtPool.Close()
	for i := 0; i < 3; i++ {
		g, err := rtPool.Restore(context.Background(), rt, c.config(Config{}))
		if err != nil {
			b.Fatal(err)
		}
		g.Feed(init)
		runTo(b, g, &c, BlockedOnRead)
		g.Close()
	}
	time.Sleep(300 * time.Millisecond) // let the pools prepare prefaulted VMs

	var ta, tbFresh, tbPool, tc, tcPool, td timings
	tree := pythonTree(nil)
	for b.Loop() {
		// (a) pooled instance: activation, then reset for the next one.
		t0 := time.Now()
		pyActivate(b, warm, &c)
		if err := warm.Reset(); err != nil {
			b.Fatal(err)
		}
		ta = append(ta, time.Since(t0))

		// (b) fresh restore of the function snapshot.
		for _, v := range []struct {
			restore func(context.Context, *Snapshot, Config) (*Guest, error)
			ts      *timings
		}{{h.Restore, &tbFresh}, {pool.Restore, &tbPool}} {
			t0 = time.Now()
			g, err := v.restore(context.Background(), fn, c.config(Config{Files: tree}))
			if err != nil {
				b.Fatal(err)
			}
			pyActivate(b, g, &c)
			*v.ts = append(*v.ts, time.Since(t0))
			g.Close()
		}

		// (c) runtime snapshot plus /init, in a new VM and in a prefaulted one from a pool.
		for _, v := range []struct {
			restore func(context.Context, *Snapshot, Config) (*Guest, error)
			ts      *timings
		}{{h.Restore, &tc}, {rtPool.Restore, &tcPool}} {
			t0 = time.Now()
			g, err := v.restore(context.Background(), rt, c.config(Config{Files: tree}))
			if err != nil {
				b.Fatal(err)
			}
			g.Feed(init)
			runTo(b, g, &c, BlockedOnRead)
			pyActivate(b, g, &c)
			*v.ts = append(*v.ts, time.Since(t0))
			g.Close()
		}

		// (d) cold host process.
		t0 = time.Now()
		cold.run(b, init)
		td = append(td, time.Since(t0))
	}
	b.ReportMetric(ta.median(), "a-pooled-reset-p50-µs")
	b.ReportMetric(tbFresh.median(), "b-restore-p50-µs")
	b.ReportMetric(tbPool.median(), "b-pool-restore-p50-µs")
	b.ReportMetric(tc.median(), "c-runtime+init-p50-µs")
	b.ReportMetric(tcPool.median(), "c-pool-runtime+init-p50-µs")
	b.ReportMetric(td.median(), "d-cold-process-p50-µs")
	b.ReportMetric(td.median()/ta.median(), "d/a")
	b.ReportMetric(td.median()/tbPool.median(), "d/b-pool")
	b.ReportMetric(td.median()/tc.median(), "d/c")
	b.ReportMetric(td.median()/tcPool.median(), "d/c-pool")
}

// BenchmarkPythonDensity keeps restored python/hello.py instances alive, each having served
// one activation and been reset (idle in a pool), and reports the host memory each costs,
// kernel included (MemAvailable drop).
func BenchmarkPythonDensity(b *testing.B) {
	h := openHost(b)
	_, fn := pythonSnapshots(b, h)
	n := max(b.N, 50)
	var guests []*Guest
	defer func() {
		for _, g := range guests {
			g.Close()
		}
	}()
	tree := pythonTree(nil)
	time.Sleep(200 * time.Millisecond)
	before := memAvailable(b)
	var c captured
	for i := 0; i < n; i++ {
		g, err := h.Restore(context.Background(), fn, c.config(Config{Files: tree}))
		if err != nil {
			b.Fatalf("instance %d: %v", i, err)
		}
		guests = append(guests, g)
		pyActivate(b, g, &c)
		if err := g.Reset(); err != nil {
			b.Fatal(err)
		}
	}
	time.Sleep(200 * time.Millisecond)
	after := memAvailable(b)
	var private int64
	for _, g := range guests {
		p, _ := g.PrivateBytes()
		private += p
	}
	// Other processes move MemAvailable too: the drop when creating and the rise when closing
	// are two samples of the same cost.
	for _, g := range guests {
		g.Close()
	}
	guests = nil
	time.Sleep(200 * time.Millisecond)
	released := memAvailable(b)
	b.ReportMetric(float64(before-after)/float64(n), "KiB/instance")
	b.ReportMetric(float64(released-after)/float64(n), "released-KiB/instance")
	b.ReportMetric(float64(private)/float64(n)/1024, "private-KiB/instance")
	b.ReportMetric(float64(n), "instances")
}
