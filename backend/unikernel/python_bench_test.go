package unikernel

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/snapinvoker/snapinvoker/backend"
	"github.com/snapinvoker/snapinvoker/backend/backendtest"
	"github.com/snapinvoker/snapinvoker/backend/container"
	"github.com/snapinvoker/snapinvoker/runtimes"
)

// BenchmarkPythonHello measures python/hello.py five ways in one interleaved run and reports
// medians and ratios against (d):
//
//	a  pooled: Run on a live instance, reset to the function snapshot afterwards (included)
//	b  restore: Start (fresh restore of the function snapshot, no ready guest) + Init + Run
//	c  runtime snapshot + /init: a function never seen: restore the runtime snapshot, feed the
//	   init line, checkpoint and store the function snapshot (a page diff), restore it, Run
//	d  cold python3: Debian's python3 process running the same launcher, to its first result
//	e  container: the container driver (runc) cold: Start + Init + Run
//
// go test -bench PythonHello -benchtime 30x ./backend/unikernel
func BenchmarkPythonHello(b *testing.B) {
	requireKVM(b)
	requirePython(b)
	ctx := context.Background()
	s := pySample(b, "hello")
	d, err := New(ctx, backend.Config{Logger: zap.NewNop(), DataDir: b.TempDir(), Options: map[string]string{"ready-per-function": "0"}})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	cd, err := container.New(ctx, backend.Config{Logger: zap.NewNop(), DataDir: b.TempDir()})
	if err != nil {
		b.Fatalf("container driver: %v", err)
	}
	defer cd.Close()
	name, script := runtimes.Launcher("python:3")
	launcher := filepath.Join(b.TempDir(), name)
	if err := os.WriteFile(launcher, script, 0o600); err != nil {
		b.Fatal(err)
	}
	argv, err := runtimes.Interpreters{}.Command("python:3.11", launcher)
	if err != nil {
		b.Fatal(err)
	}
	initBody := backendtest.InitBody("hello", s.code, nil)
	value := []byte(`{"name":"hello","main":"main","binary":false,"code":` + fmt.Sprintf("%q", s.code.Code) + `,"env":{}}`)

	pooled := start(b, d, s)
	mustInit(b, pooled, s)
	check := func(res backend.Result, err error, what string) {
		if err != nil || res.Outcome.Status != 200 {
			b.Fatalf("%s: %v %+v", what, err, res.Outcome)
		}
	}
	fresh := func(inst backend.Instance, a backend.Action) {
		res, err := inst.Init(ctx, backend.InitRequest{Action: a, Body: initBody, Deadline: time.Now().Add(time.Minute)})
		check(res, err, "init")
		id := backendtest.NewActivationID()
		res, err = inst.Run(ctx, backend.RunRequest{ActivationID: id, Body: backendtest.RunBody(a, map[string]any{"name": "bench"}, id, time.Now().Add(time.Minute)),
			Deadline: time.Now().Add(time.Minute), LogLimit: 1 << 20, MaxResponse: 1 << 20})
		check(res, err, "run")
	}
	var ta, tb, tc, td, te []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		res, err := run(b, pooled, s, map[string]any{"name": "bench"})
		check(res, err, "pooled run")
		ta = append(ta, time.Since(t0))

		t0 = time.Now()
		inst, err := d.Start(ctx, s.spec())
		if err != nil || !inst.(backend.Restorer).Restored() {
			b.Fatalf("(b) Start: %v", err)
		}
		fresh(inst, s.action)
		tb = append(tb, time.Since(t0))
		inst.Destroy(ctx)

		first := s
		first.action.CodeDigest = fmt.Sprintf("bench-first-%d", i)
		t0 = time.Now()
		inst, err = d.Start(ctx, first.spec())
		if err != nil {
			b.Fatal(err)
		}
		fresh(inst, first.action)
		tc = append(tc, time.Since(t0))
		inst.Destroy(ctx)

		t0 = time.Now()
		p, err := runtimes.Start(ctx, runtimes.Options{Argv: argv, Env: []string{"LANG=C.UTF-8", "PATH=/usr/bin:/bin"}})
		if err != nil {
			b.Fatal(err)
		}
		if r, err := p.Init(ctx, value, 1<<20); err != nil || r.Status != 200 {
			b.Fatalf("python3 init: %v %+v", err, r)
		}
		if r, err := p.Run(ctx, []byte(`{"value":{"name":"bench"}}`), 1<<20); err != nil || r.Status != 200 {
			b.Fatalf("python3 run: %v %+v", err, r)
		}
		td = append(td, time.Since(t0))
		p.Close()

		ca := s.action
		ca.CodeDigest = fmt.Sprintf("bench-container-%d", i)
		t0 = time.Now()
		ci, err := cd.Start(ctx, backend.StartSpec{Kind: ca.Kind, Memory: ca.Memory, Action: &ca})
		if err != nil {
			b.Fatalf("container Start: %v", err)
		}
		fresh(ci, ca)
		te = append(te, time.Since(t0))
		ci.Destroy(ctx)
	}
	b.StopTimer()
	if used, err := pooled.(backend.MemoryReporter).MemoryUsed(); err == nil {
		b.ReportMetric(float64(used)/1024, "a-idle-KiB")
	}
	ma, mb, mc, md, me := median(ta), median(tb), median(tc), median(td), median(te)
	b.ReportMetric(us(ma), "a-pooled-µs")
	b.ReportMetric(us(mb), "b-restore-µs")
	b.ReportMetric(us(mc), "c-runtime+init-µs")
	b.ReportMetric(us(md), "d-python3-µs")
	b.ReportMetric(us(me), "e-container-µs")
	b.ReportMetric(float64(md)/float64(ma), "d/a")
	b.ReportMetric(float64(md)/float64(mb), "d/b")
	b.ReportMetric(float64(md)/float64(mc), "d/c")
	b.ReportMetric(float64(me)/float64(ma), "e/a")
	b.ReportMetric(0, "ns/op")
}
