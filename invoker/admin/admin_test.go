package admin

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/snapinvoker/snapinvoker/activation"
	"github.com/snapinvoker/snapinvoker/invoker/health"
	"github.com/snapinvoker/snapinvoker/invoker/metrics"
)

func TestAdminAPI(t *testing.T) {
	var mu sync.Mutex
	var pings []bool
	send := func(_ context.Context, v []byte) error {
		p, err := activation.DecodePing(v)
		if err != nil {
			return err
		}
		mu.Lock()
		pings = append(pings, p.Enabled())
		mu.Unlock()
		return nil
	}
	p := health.New(activation.InvokerInstanceID{UserMemory: activation.SizeMB(1024)}, send, 1, nil)
	m := metrics.New(metrics.Gauges{QueueLength: func() float64 { return 7 }})
	m.Activation("success", "warm")
	srv := httptest.NewServer(Handler(Config{Name: "invoker0", Username: "invoker.user", Password: "invoker.pass", Switch: p, Registry: m.Registry}))
	defer srv.Close()

	do := func(method, path string, auth bool) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		if auth {
			req.SetBasicAuth("invoker.user", "invoker.pass")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := do("GET", "/ping", false); code != 200 || body != "pong" {
		t.Fatalf("/ping = %d %q", code, body)
	}
	code, body := do("GET", "/metrics", false)
	if code != 200 || !strings.Contains(body, `snapinvoker_activations_total{start="warm",status="success"} 1`) || !strings.Contains(body, "snapinvoker_queue_length 7") {
		t.Fatalf("/metrics = %d, missing activation counter or queue gauge:\n%s", code, body)
	}
	for _, path := range []string{"/enable", "/disable"} {
		if code, _ := do("POST", path, false); code != http.StatusUnauthorized {
			t.Fatalf("%s without auth = %d, want 401", path, code)
		}
	}
	req, _ := http.NewRequest("GET", srv.URL+"/isEnabled", nil)
	req.SetBasicAuth("invoker.user", "wrong")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("/isEnabled with a wrong password = %v, %v; want 401", resp.StatusCode, err)
	}
	isEnabled := func() bool {
		code, body := do("GET", "/isEnabled", true)
		var v struct {
			Enabled *bool `json:"enabled"`
		}
		if code != 200 || json.Unmarshal([]byte(body), &v) != nil || v.Enabled == nil {
			t.Fatalf("/isEnabled = %d %q", code, body)
		}
		return *v.Enabled
	}
	if !isEnabled() {
		t.Fatal("a new invoker is not enabled")
	}
	if code, body := do("POST", "/disable", true); code != 200 || body != "invoker0 is now disabled." {
		t.Fatalf("/disable = %d %q", code, body)
	}
	mu.Lock()
	if len(pings) != 1 || pings[0] {
		t.Fatalf("pings after /disable = %v, want one isEnabled:false", pings)
	}
	mu.Unlock()
	if isEnabled() {
		t.Fatal("/isEnabled after /disable = true")
	}
	if code, body := do("POST", "/disable", true); code != 200 || body != "invoker0 is already disabled." {
		t.Fatalf("second /disable = %d %q", code, body)
	}
	if code, body := do("POST", "/enable", true); code != 200 || body != "invoker0 is now enabled." {
		t.Fatalf("/enable = %d %q", code, body)
	}
	if !isEnabled() {
		t.Fatal("/isEnabled after /enable = false")
	}
}
