package kvm

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Benchmarks report ns/op (mean) and p50-µs (median of the iterations). Ratios between them are
// meaningful only within one run on one machine: BenchmarkNativeForkExec is the baseline.

// timings collects per-iteration durations and reports their median.
type timings []time.Duration

func (ts timings) report(b *testing.B) {
	if len(ts) > 0 {
		b.ReportMetric(ts.median(), "p50-µs")
	}
}

// median in microseconds.
func (ts timings) median() float64 {
	s := append(timings(nil), ts...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return float64(s[len(s)/2].Nanoseconds()) / 1e3
}

const benchLine = `{"value":{"name":"bench"},"activation_id":"0123456789abcdef"}`

func BenchmarkColdStartToFirstRead(b *testing.B) {
	h := openHost(b)
	prog := build(b, "echo")
	var ts timings
	for b.Loop() {
		t0 := time.Now()
		g, err := h.New(context.Background(), Config{Memory: 64 << 20}, prog)
		if err != nil {
			b.Fatal(err)
		}
		ex, err := g.Run(context.Background())
		if err != nil || ex.Reason != BlockedOnRead {
			b.Fatalf("%v %v", ex.Reason, err)
		}
		ts = append(ts, time.Since(t0))
		g.Close()
	}
	ts.report(b)
}

// benchRestore measures restore→result and reports where the time goes: setup (VM, memory,
// vCPU state) and run (the activation, dominated on kvm-pvm by first-touch page faults).
func benchRestore(b *testing.B, restore func(context.Context, *Snapshot, Config) (*Guest, error), snap *Snapshot) {
	var ts, setup, run timings
	var c captured
	for b.Loop() {
		c.result.Reset()
		t0 := time.Now()
		g, err := restore(context.Background(), snap, c.config(Config{}))
		if err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		g.Feed([]byte(benchLine + "\n"))
		ex, err := g.Run(context.Background())
		if err != nil || ex.Reason != BlockedOnRead || c.result.Len() == 0 {
			b.Fatalf("%v %v %q", ex.Reason, err, c.result.String())
		}
		t2 := time.Now()
		ts, setup, run = append(ts, t2.Sub(t0)), append(setup, t1.Sub(t0)), append(run, t2.Sub(t1))
		b.StopTimer()
		g.Close()
		b.StartTimer()
	}
	ts.report(b)
	b.ReportMetric(setup.median(), "setup-p50-µs")
	b.ReportMetric(run.median(), "run-p50-µs")
}

func BenchmarkRestoreToResult(b *testing.B) {
	h := openHost(b)
	snap := echoSnapshot(b, h)
	b.Run("fresh-vm", func(b *testing.B) { benchRestore(b, h.Restore, snap) })
	b.Run("pooled-vm", func(b *testing.B) {
		pool := h.NewPool(context.Background(), 8, snap)
		defer pool.Close()
		time.Sleep(50 * time.Millisecond) // let the pool fill
		benchRestore(b, pool.Restore, snap)
	})
}

// restoredEcho restores echo and runs one activation so the instance is warm.
func restoredEcho(b *testing.B, h *Host, snap *Snapshot, c *captured) *Guest {
	g, err := h.Restore(context.Background(), snap, c.config(Config{}))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { g.Close() })
	activate(b, g, c, benchLine)
	return g
}

func BenchmarkResetActivation(b *testing.B) {
	h := openHost(b)
	snap := echoSnapshot(b, h)
	var c captured
	g := restoredEcho(b, h, snap, &c)
	var ts timings
	for b.Loop() {
		t0 := time.Now()
		if err := g.Reset(); err != nil {
			b.Fatal(err)
		}
		if activate(b, g, &c, benchLine) == "" {
			b.Fatal("no result")
		}
		ts = append(ts, time.Since(t0))
	}
	ts.report(b)
}

func BenchmarkWarmActivation(b *testing.B) {
	h := openHost(b)
	snap := echoSnapshot(b, h)
	var c captured
	g := restoredEcho(b, h, snap, &c)
	var ts timings
	for b.Loop() {
		t0 := time.Now()
		if activate(b, g, &c, benchLine) == "" {
			b.Fatal("no result")
		}
		ts = append(ts, time.Since(t0))
	}
	ts.report(b)
}

// BenchmarkNativeForkExec is the baseline: fork+exec of the same static echo natively, until its
// first activation's result line arrives on fd 3.
func BenchmarkNativeForkExec(b *testing.B) {
	prog := build(b, "echo")
	path := filepath.Join(b.TempDir(), "echo")
	if err := os.WriteFile(path, prog, 0o755); err != nil {
		b.Fatal(err)
	}
	var ts timings
	for b.Loop() {
		t0 := time.Now()
		r3, w3, err := os.Pipe()
		if err != nil {
			b.Fatal(err)
		}
		cmd := exec.Command(path)
		cmd.ExtraFiles = []*os.File{w3}
		stdin, _ := cmd.StdinPipe()
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		w3.Close()
		io := bufio.NewReader(r3)
		if _, err := io.ReadString('\n'); err != nil { // init ack
			b.Fatal(err)
		}
		fmt.Fprintln(stdin, benchLine)
		if _, err := io.ReadString('\n'); err != nil {
			b.Fatal(err)
		}
		ts = append(ts, time.Since(t0))
		b.StopTimer()
		stdin.Close()
		cmd.Wait()
		r3.Close()
		b.StartTimer()
	}
	ts.report(b)
}

// memAvailable reads MemAvailable from /proc/meminfo in KiB: the median of five readings 20 ms
// apart, because other processes on the machine move it too.
func memAvailable(b *testing.B) int64 {
	var vs []int64
	for i := 0; i < 5; i++ {
		if i > 0 {
			time.Sleep(20 * time.Millisecond)
		}
		vs = append(vs, memAvailableOnce(b))
	}
	sort.Slice(vs, func(i, j int) bool { return vs[i] < vs[j] })
	return vs[2]
}

func memAvailableOnce(b *testing.B) int64 {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemAvailable:" {
			v, _ := strconv.ParseInt(f[1], 10, 64)
			return v
		}
	}
	b.Fatal("no MemAvailable")
	return 0
}

// BenchmarkDensity keeps b.N restored echo instances alive, each having served one activation,
// and reports the host memory each costs, counting the kernel's share (MemAvailable drop).
func BenchmarkDensity(b *testing.B) {
	h := openHost(b)
	snap := echoSnapshot(b, h)
	n := max(b.N, 50)
	var guests []*Guest
	defer func() {
		for _, g := range guests {
			g.Close()
		}
	}()
	before := memAvailable(b)
	var c captured
	for i := 0; i < n; i++ {
		g, err := h.Restore(context.Background(), snap, c.config(Config{}))
		if err != nil {
			b.Fatalf("instance %d: %v", i, err)
		}
		guests = append(guests, g)
		activate(b, g, &c, benchLine)
	}
	time.Sleep(200 * time.Millisecond) // let deferred kernel work settle before measuring
	after := memAvailable(b)
	b.ReportMetric(float64(before-after)/float64(n), "KiB/instance")
	b.ReportMetric(float64(n), "instances")
}

func benchLoop(b *testing.B, mode string) {
	h := openHost(b)
	prog := build(b, "loop")
	run := func(n int) time.Duration {
		g, err := h.New(context.Background(), Config{Memory: 16 << 20, Args: []string{"loop", mode, strconv.Itoa(n)}}, prog)
		if err != nil {
			b.Fatal(err)
		}
		defer g.Close()
		t0 := time.Now()
		ex, err := g.Run(context.Background())
		if err != nil || ex.Reason != Exited || ex.Code != 0 {
			b.Fatalf("%v %v %v", ex.Reason, ex.Err, err)
		}
		return time.Since(t0)
	}
	base := run(0)
	b.ResetTimer()
	d := run(b.N)
	b.StopTimer()
	b.ReportMetric(float64((d-base).Nanoseconds())/float64(b.N), "ns/call")
}

func BenchmarkSyscallRoundTrip(b *testing.B) { benchLoop(b, "sys") }
func BenchmarkVDSOClockRead(b *testing.B)    { benchLoop(b, "clock") }
