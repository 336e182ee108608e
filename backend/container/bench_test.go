package container

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/snapinvoker/snapinvoker/backend"
	"github.com/snapinvoker/snapinvoker/runtimes"
)

// The benchmarks measure, per kind, the three ways an activation can start on this driver
// (cold: container start + /init + /run; prewarm: /init + /run on a started stem cell; warm:
// /run only), next to the same steps on a plain host process running the same launcher over
// the same framing (the baseline: no container, no HTTP). Each iteration measures both, so the
// ratio compares runs under the same machine load. Reported: medians in ms and their ratio.
//
//	go test -run XXX -bench . -benchtime 20x ./backend/container/

type phase int

const (
	cold phase = iota
	prewarm
	warm
)

func median(d []time.Duration) float64 {
	s := slices.Clone(d)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return float64(s[len(s)/2]) / float64(time.Millisecond)
}

func BenchmarkStart(b *testing.B) {
	for _, k := range kinds {
		echo := readSample(b, k.dir, "echo"+k.ext)
		for _, ph := range []struct {
			name string
			p    phase
		}{{"cold", cold}, {"prewarm", prewarm}, {"warm", warm}} {
			b.Run(k.dir+"/"+ph.name, func(b *testing.B) {
				// user-memory = the container's memory gives it upstream's full 1024 CPU
				// shares, the weight of the host process it is compared with.
				d := newRuncDriver(b, map[string]string{"user-memory": fmt.Sprint(256 << 20)})
				h := newHostRunner(b, k.kind)
				var ctr, host []time.Duration
				var warmIn backend.Instance
				var warmProc *runtimes.Process
				if ph.p == warm {
					warmIn = start(b, d, k.kind, 256<<20)
					mustInit(b, warmIn, echo, "main")
					warmProc = h.start(b)
					h.init(b, warmProc, echo)
				}
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					switch ph.p {
					case cold:
						t0 := time.Now()
						in := start(b, d, k.kind, 256<<20)
						mustInit(b, in, echo, "main")
						doRun(b, in, map[string]any{"i": i}, time.Minute, 1<<20, 0)
						ctr = append(ctr, time.Since(t0))
						b.StopTimer()
						in.Destroy(context.Background())
						b.StartTimer()
						t0 = time.Now()
						p := h.start(b)
						h.init(b, p, echo)
						h.run(b, p)
						host = append(host, time.Since(t0))
						b.StopTimer()
						p.Close()
						b.StartTimer()
					case prewarm:
						b.StopTimer()
						in := start(b, d, k.kind, 256<<20) // returns once the runtime has booted
						p := h.start(b)
						if err := p.WaitIdle(context.Background()); err != nil {
							b.Fatal(err)
						}
						b.StartTimer()
						t0 := time.Now()
						mustInit(b, in, echo, "main")
						doRun(b, in, map[string]any{"i": i}, time.Minute, 1<<20, 0)
						ctr = append(ctr, time.Since(t0))
						t0 = time.Now()
						h.init(b, p, echo)
						h.run(b, p)
						host = append(host, time.Since(t0))
						b.StopTimer()
						in.Destroy(context.Background())
						p.Close()
						b.StartTimer()
					case warm:
						t0 := time.Now()
						doRun(b, warmIn, map[string]any{"i": i}, time.Minute, 1<<20, 0)
						ctr = append(ctr, time.Since(t0))
						t0 = time.Now()
						h.run(b, warmProc)
						host = append(host, time.Since(t0))
					}
				}
				b.StopTimer()
				if warmProc != nil {
					warmProc.Close()
				}
				c, hm := median(ctr), median(host)
				b.ReportMetric(c, "container-p50-ms")
				b.ReportMetric(hm, "host-p50-ms")
				if hm > 0 {
					b.ReportMetric(c/hm, "ratio")
				}
			})
		}
	}
}

// hostRunner is the baseline: the launcher as a plain host process over the framing.
type hostRunner struct {
	argv []string
	dir  string
}

func newHostRunner(b testing.TB, kind string) *hostRunner {
	name, script := runtimes.Launcher(kind)
	dir := b.TempDir()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, script, 0o644); err != nil {
		b.Fatal(err)
	}
	argv, err := runtimes.Interpreters{}.Command(kind, path)
	if err != nil {
		b.Fatal(err)
	}
	return &hostRunner{argv: argv, dir: dir}
}

func (h *hostRunner) start(b testing.TB) *runtimes.Process {
	p, err := runtimes.Start(context.Background(), runtimes.Options{Argv: h.argv, Dir: h.dir, Env: []string{"TMPDIR=" + h.dir, "PATH=/usr/bin:/bin"}})
	if err != nil {
		b.Fatal(err)
	}
	return p
}

func (h *hostRunner) init(b testing.TB, p *runtimes.Process, code string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var msg struct {
		Value []byte
	}
	_ = msg
	body := initBody(code, "main", false)
	// The framing's init line is the /init "value".
	value := body[len(`{"value":`) : len(body)-1]
	r, err := p.Init(ctx, value, 1<<20)
	if err != nil || r.Status != 200 {
		b.Fatalf("host init: %v %d %s", err, r.Status, r.Body)
	}
}

func (h *hostRunner) run(b testing.TB, p *runtimes.Process) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r, err := p.Run(ctx, runBody(map[string]any{"x": 1}), 1<<20)
	if err != nil || r.Status != 200 {
		b.Fatalf("host run: %v %d %s", err, r.Status, r.Body)
	}
}
