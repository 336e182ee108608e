package controller

import (
	"bytes"
	"encoding/base64"
	"net/http"
	"sort"
	"testing"
	"time"
)

// BenchmarkInvokeOverKafka measures the controller's share of a blocking invoke: HTTP, auth,
// action read, publish on invoker0, the scripted invoker's answer on completed0, HTTP answer.
// No driver runs. The baseline in the same run is GET /api/v1/namespaces (HTTP and auth).
func BenchmarkInvokeOverKafka(b *testing.B) {
	h := newHarness(b, b.TempDir(), true)
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte(GuestKey))
	do := func(method, path, body string) int {
		req, _ := http.NewRequest(method, h.base+path, bytes.NewBufferString(body))
		req.Header.Set("Authorization", auth)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if st := do("PUT", "/api/v1/namespaces/_/actions/echo", `{"exec":{"kind":"nodejs:default","code":"x"}}`); st != 200 {
		b.Fatalf("create: %d", st)
	}
	measure := func(n int, f func()) []time.Duration {
		out := make([]time.Duration, n)
		for i := range out {
			t0 := time.Now()
			f()
			out[i] = time.Since(t0)
		}
		sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
		return out
	}
	base := measure(max(b.N, 200), func() { do("GET", "/api/v1/namespaces", "") })
	b.ResetTimer()
	lat := measure(b.N, func() {
		if st := do("POST", "/api/v1/namespaces/_/actions/echo?blocking=true&result=true", `{"a":1}`); st != 200 {
			b.Fatalf("invoke: %d", st)
		}
	})
	b.StopTimer()
	med, bm := lat[len(lat)/2], base[len(base)/2]
	b.ReportMetric(float64(med.Microseconds())/1000, "median-ms")
	b.ReportMetric(float64(lat[min(len(lat)-1, len(lat)*99/100)].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(bm.Microseconds())/1000, "baseline-median-ms")
	b.ReportMetric(float64(med)/float64(bm), "x-baseline")
}
