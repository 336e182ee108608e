package e2e

import (
	"context"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/snapinvoker/snapinvoker/e2e/owclient"
)

// Benchmarks of the whole standalone path. Run them with
//
//	go test -run XXX -bench . -benchtime 2000x ./e2e/
//
// Each reports the median and p99 of one operation and, as the baseline measured in the same
// run against the same server, the round trip of an authenticated GET /api/v1/namespaces
// (HTTP and auth: no Kafka, no driver); "x-baseline" is the ratio of the medians.

// benchAction creates a warm nodejs echo action (128 MB, so the pool can hold more
// instances) and returns its client.
func benchAction(b *testing.B) (*instance, *owclient.Client) {
	b.Helper()
	in := startTWith(b, true)
	ctx := context.Background()
	code := sample(b, "nodejs/echo.js")
	c := in.guest
	if _, err := c.PutAction(ctx, "echo", owclient.Action{Exec: &owclient.Exec{Kind: "nodejs:default", Code: &code},
		Limits: &owclient.Limits{Memory: 128}}, false); err != nil {
		b.Fatal(err)
	}
	// Warm it: the first invoke starts the instance.
	for i := 0; i < 3; i++ {
		if inv, err := c.Invoke(ctx, "echo", map[string]any{"warm": i}, owclient.InvokeOptions{Blocking: true, Result: true}); err != nil || inv.Status != 200 {
			b.Fatalf("warm-up invoke: %v %v", inv, err)
		}
	}
	return in, c
}

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

// baseline measures n authenticated GETs of the namespaces.
func baseline(b *testing.B, c *owclient.Client, n int) []time.Duration {
	ctx := context.Background()
	out := make([]time.Duration, 0, n)
	for i := 0; i < n; i++ {
		t0 := time.Now()
		if _, err := c.Namespaces(ctx); err != nil {
			b.Fatal(err)
		}
		out = append(out, time.Since(t0))
	}
	return out
}

// BenchmarkBlockingInvokeWarm: one client, blocking invokes of a warm action, HTTP → Kafka →
// invoker → driver → Kafka → HTTP.
func BenchmarkBlockingInvokeWarm(b *testing.B) {
	_, c := benchAction(b)
	ctx := context.Background()
	measureBlockingInvokes(ctx, b, c)
}

// BenchmarkBlockingInvoke64Clients: 64 concurrent clients doing blocking invokes of one warm
// action; reports invokes per second and the latency the clients saw.
func BenchmarkBlockingInvoke64Clients(b *testing.B) {
	const clients = 64
	_, c := benchAction(b)
	ctx := context.Background()
	var (
		next   atomic.Int64
		mu     sync.Mutex
		lat    = make([]time.Duration, 0, b.N)
		failed atomic.Int64
		wg     sync.WaitGroup
	)
	b.ResetTimer()
	start := time.Now()
	for w := 0; w < clients; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				t0 := time.Now()
				inv, err := c.Invoke(ctx, "echo", map[string]any{"x": 1}, owclient.InvokeOptions{Blocking: true, Result: true})
				d := time.Since(t0)
				if err != nil || inv.Status != http.StatusOK {
					failed.Add(1)
					continue
				}
				mu.Lock()
				lat = append(lat, d)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d of %d invokes failed", n, b.N)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "invokes/s")
	b.ReportMetric(float64(percentile(lat, 0.5).Microseconds())/1000, "median-ms")
	b.ReportMetric(float64(percentile(lat, 0.99).Microseconds())/1000, "p99-ms")
	// The baseline: the same 64 clients doing authenticated GETs of the namespaces.
	var bn atomic.Int64
	bstart := time.Now()
	total := int64(max(b.N, 1000))
	for w := 0; w < clients; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for bn.Add(1) <= total {
				if _, err := c.Namespaces(ctx); err != nil {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	gets := float64(total) / time.Since(bstart).Seconds()
	b.ReportMetric(gets, "baseline-gets/s")
	b.ReportMetric(float64(b.N)/elapsed.Seconds()/gets, "x-baseline")
}

// BenchmarkBlockingInvokeWarmNative: the same round trip for a static actionloop executable
// (blackbox), which the standalone runs on the unikernel driver first.
func BenchmarkBlockingInvokeWarmNative(b *testing.B) {
	in := startTWith(b, true)
	requireKVM(b, in)
	c := in.guest
	ctx := context.Background()
	code := nativeEcho(b)
	if _, err := c.PutAction(ctx, "echo", owclient.Action{Exec: &owclient.Exec{Kind: "blackbox", Image: "openwhisk/dockerskeleton", Code: &code},
		Limits: &owclient.Limits{Memory: 128}}, false); err != nil {
		b.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if inv, err := c.Invoke(ctx, "echo", map[string]any{"warm": i}, owclient.InvokeOptions{Blocking: true, Result: true}); err != nil || inv.Status != 200 {
			b.Fatalf("warm-up invoke: %v %v", inv, err)
		}
	}
	measureBlockingInvokes(ctx, b, c)
}

// measureBlockingInvokes times b.N blocking invokes of the warm action "echo", one at a time,
// and reports their median and p99 with the authenticated-GET baseline measured in the same run.
func measureBlockingInvokes(ctx context.Context, b *testing.B, c *owclient.Client) {
	b.Helper()
	base := baseline(b, c, max(b.N, 200))
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		inv, err := c.Invoke(ctx, "echo", map[string]any{"i": i}, owclient.InvokeOptions{Blocking: true, Result: true})
		if err != nil || inv.Status != http.StatusOK {
			b.Fatalf("invoke %d: %v %v", i, inv, err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	med := percentile(lat, 0.5)
	b.ReportMetric(float64(med.Microseconds())/1000, "median-ms")
	b.ReportMetric(float64(percentile(lat, 0.99).Microseconds())/1000, "p99-ms")
	bm := percentile(base, 0.5)
	b.ReportMetric(float64(bm.Microseconds())/1000, "baseline-median-ms")
	b.ReportMetric(float64(med)/float64(bm), "x-baseline")
}
