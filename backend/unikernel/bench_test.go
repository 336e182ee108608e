package unikernel

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/snapinvoker/snapinvoker/backend"
	"github.com/snapinvoker/snapinvoker/backend/backendtest"
	"github.com/snapinvoker/snapinvoker/kvm"
)

// BenchmarkNativeEcho measures one echo activation (the shared native echo.c) four ways in the
// same run, interleaved so that machine noise hits all of them alike, and reports medians and
// ratios against the baseline (d):
//
//	a  pooled: Run on a live instance; the guest is reset to the function snapshot afterwards
//	   (included: the reset is part of Run)
//	b  restore: Start (a fresh restore of the function snapshot, no ready guest) + Init + Run
//	c  cold boot: boot the static binary in a new VM, run it to its ack, feed the line, read
//	   the result (no snapshot at all)
//	d  fork+exec: the same binary as a host process over pipes, to its first result
//	e  first activation through the driver: Start + Init that builds the function snapshot (boot,
//	   checkpoint, store, compose, restore) + Run, for a function never seen before
//
// go test -bench NativeEcho -benchtime 200x ./backend/unikernel
func BenchmarkNativeEcho(b *testing.B) {
	requireKVM(b)
	ctx := context.Background()
	s := newSample(b, "echo", 64<<20)
	exe := filepath.Join(b.TempDir(), "echo")
	if err := os.WriteFile(exe, testProgram(b, "echo"), 0o700); err != nil {
		b.Fatal(err)
	}
	// Fresh restores for (b): no ready guests, so every Start restores.
	d, err := New(ctx, backend.Config{Logger: zap.NewNop(), DataDir: b.TempDir(), Options: map[string]string{"ready-per-function": "0"}})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	pooled := start(b, d, s)
	mustInit(b, pooled, s)
	host, err := kvm.Open()
	if err != nil {
		b.Fatal(err)
	}
	defer host.Close()
	// The /init body holds the executable in base64 (about 1 MiB); build it once, as the invoker
	// would not build it again per activation either.
	initBody := backendtest.InitBody("echo", s.code, nil)
	line := []byte(`{"value":{"name":"bench"}}` + "\n")

	var ta, tb, tc, td, te, tbStart, tbRun []time.Duration
	runOnce := func(inst backend.Instance) {
		res := mustRun(b, inst, s, map[string]any{"name": "bench"})
		if res.Outcome.Status != 200 {
			b.Fatalf("echo: %+v", res.Outcome)
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		runOnce(pooled)
		ta = append(ta, time.Since(t0))

		t0 = time.Now()
		inst, err := d.Start(ctx, s.spec())
		if err != nil {
			b.Fatal(err)
		}
		if !inst.(backend.Restorer).Restored() {
			b.Fatal("(b) was not restored")
		}
		if res, err := inst.Init(ctx, backend.InitRequest{Action: s.action, Body: initBody, Deadline: time.Now().Add(time.Minute)}); err != nil || res.Outcome.Status != 200 {
			b.Fatalf("Init of a restored instance: %v %+v", err, res.Outcome)
		}
		t1 := time.Now()
		runOnce(inst)
		tb = append(tb, time.Since(t0))
		tbStart, tbRun = append(tbStart, t1.Sub(t0)), append(tbRun, time.Since(t1))
		inst.Destroy(ctx)

		t0 = time.Now()
		coldBoot(b, host, s, line)
		tc = append(tc, time.Since(t0))

		t0 = time.Now()
		forkExec(b, exe, line)
		td = append(td, time.Since(t0))

		fresh := s
		fresh.action.CodeDigest = fmt.Sprintf("bench-first-%d", i)
		t0 = time.Now()
		inst, err = d.Start(ctx, fresh.spec())
		if err != nil {
			b.Fatal(err)
		}
		if res, err := inst.Init(ctx, backend.InitRequest{Action: fresh.action, Body: initBody, Deadline: time.Now().Add(time.Minute)}); err != nil || res.Outcome.Status != 200 {
			b.Fatalf("Init building a snapshot: %v %+v", err, res.Outcome)
		}
		runOnce(inst)
		te = append(te, time.Since(t0))
		inst.Destroy(ctx)
	}
	b.StopTimer()
	// Host memory of the idle pooled instance: its private pages (written since the restore and
	// kept across resets) plus KVM's per-VM memory.
	if used, err := pooled.(backend.MemoryReporter).MemoryUsed(); err == nil {
		b.ReportMetric(float64(used)/1024, "a-idle-KiB")
	}
	ma, mb, mc, md := median(ta), median(tb), median(tc), median(td)
	b.ReportMetric(us(ma), "a-pooled-µs")
	b.ReportMetric(us(mb), "b-restore-µs")
	b.ReportMetric(us(median(tbStart)), "b1-start+init-µs")
	b.ReportMetric(us(median(tbRun)), "b2-first-run-µs")
	b.ReportMetric(us(mc), "c-coldboot-µs")
	b.ReportMetric(us(md), "d-forkexec-µs")
	b.ReportMetric(us(median(te)), "e-first-activation-µs")
	b.ReportMetric(float64(md)/float64(ma), "d/a")
	b.ReportMetric(float64(md)/float64(mb), "d/b")
	b.ReportMetric(float64(md)/float64(mc), "d/c")
	b.ReportMetric(0, "ns/op") // the medians above are the result, not the loop's mean
}

// coldBoot boots echo in a new VM with no snapshot and runs it to its first result.
func coldBoot(b *testing.B, host *kvm.Host, s sample, line []byte) {
	var res resultSink
	res.max = 1 << 20
	g, err := host.New(context.Background(), kvm.Config{Memory: uint64(s.action.Memory), Args: []string{exePath},
		ExePath: exePath, Env: []string{"__OW_WAIT_FOR_ACK=1"}, Result: &res}, testProgram(b, "echo"))
	if err != nil {
		b.Fatal(err)
	}
	defer g.Close()
	if ex, err := g.Run(context.Background()); err != nil || ex.Reason != kvm.BlockedOnRead {
		b.Fatalf("cold boot: %v %v", ex.Reason, err)
	}
	res = resultSink{max: 1 << 20}
	g.SetOutput(nil, nil, &res)
	g.Feed(line)
	if ex, err := g.Run(context.Background()); err != nil || ex.Reason != kvm.BlockedOnRead || !res.done {
		b.Fatalf("cold boot run: %v %v %q", ex.Reason, err, res.body)
	}
}

// forkExec runs echo as a host process and reads its first result.
func forkExec(b *testing.B, exe string, line []byte) {
	r3, w3, err := os.Pipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(exe)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.ExtraFiles = []*os.File{w3}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	w3.Close()
	rd := bufio.NewReader(r3)
	if ack, err := rd.ReadString('\n'); err != nil || ack != "{\"ok\":true}\n" {
		b.Fatalf("fork+exec ack %q %v", ack, err)
	}
	stdin.Write(line)
	if _, err := rd.ReadString('\n'); err != nil {
		b.Fatalf("fork+exec result: %v", err)
	}
	stdin.Close()
	cmd.Wait()
	r3.Close()
}

func median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
