package invoker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/snapinvoker/snapinvoker/activation"
	"github.com/snapinvoker/snapinvoker/invoker/config"
	"github.com/snapinvoker/snapinvoker/invoker/kafkafeed"
)

func aid(n int) string { return fmt.Sprintf("a1b2c3d4%024x", n) }

func annotation(t *testing.T, a activation.WhiskActivation, key string) (json.RawMessage, bool) {
	t.Helper()
	return a.Annotations.Get(key)
}

// TestInvokerEndToEnd runs one invoker against the test controller and checks every answer
// path of protocol §3/§5 with real actions.
func TestInvokerEndToEnd(t *testing.T) {
	w := newWorld(t, false)
	p := w.process()
	stop := run(p)

	t.Run("blocking success with logs: Result then Completion", func(t *testing.T) {
		id := aid(1)
		w.invoke("echo", id, true, map[string]any{"name": "World"}, nil)
		acks := w.waitAcks(id, 2)
		if acks[0].Kind != activation.ResultAck || acks[1].Kind != activation.CompletionAck {
			t.Fatalf("acks = %v, %v; want result then completion", acks[0].Kind, acks[1].Kind)
		}
		res := acks[0].Response.Activation
		if res == nil || res.Response.StatusCode != 0 || len(res.Logs) != 0 {
			t.Fatalf("result ack activation = %+v; want success with logs []", res)
		}
		var result struct {
			Echo struct {
				Value        map[string]any `json:"value"`
				ActivationID string         `json:"activation_id"`
				Namespace    string         `json:"namespace"`
			} `json:"echo"`
		}
		if err := json.Unmarshal(res.Response.Result, &result); err != nil || result.Echo.Value["name"] != "World" || result.Echo.ActivationID != id || result.Echo.Namespace != "guest" {
			t.Fatalf("result = %s (%v); want the /run body echoed", res.Response.Result, err)
		}
		if *acks[1].IsSystemError || acks[1].Instance.Instance != 0 || acks[1].Instance.UserMemory.Bytes() != 2048<<20 {
			t.Fatalf("completion = %+v", acks[1])
		}
		rec := w.record(id)
		a := rec.WhiskActivation
		if a.Response.StatusCode != 0 || a.Name != "echo" || a.Namespace != "guest" || a.Subject != "guest" {
			t.Fatalf("record = %+v", a)
		}
		for _, key := range []string{"limits", "path", "kind", "timeout", "initTime", "waitTime"} {
			if _, ok := annotation(t, a, key); !ok {
				t.Errorf("annotation %s missing from %+v", key, a.Annotations)
			}
		}
		if kind, _ := a.Annotations.GetString("kind"); kind != "blackbox" {
			t.Errorf("kind annotation = %q", kind)
		}
		if path, _ := a.Annotations.GetString("path"); path != "guest/echo" {
			t.Errorf("path annotation = %q", path)
		}
		// duration is the interval truncated to milliseconds, start and end are each truncated
		// (as upstream's Duration.toMillis and Instant.toEpochMilli): they may differ by one.
		if d := *a.Duration - (a.End - a.Start); d < -1 || d > 1 {
			t.Errorf("duration %d, end - start %d", *a.Duration, a.End-a.Start)
		}
		// The user event for the slot-freeing ack.
		w.events.waitFor(t, "user event", func(recs [][]byte) bool {
			for _, r := range recs {
				if ev, err := activation.DecodeEvent(r); err == nil && ev.Activation != nil && ev.Activation.ActivationID == id {
					return ev.Source == "invoker0" && ev.Activation.Name == "guest/echo" && ev.Activation.Memory == 256
				}
			}
			return false
		})
	})

	t.Run("warm start: no initTime", func(t *testing.T) {
		id := aid(12)
		w.invoke("echo", id, true, map[string]any{"again": true}, nil)
		a := w.record(id).WhiskActivation
		if _, ok := a.Annotations.Get("initTime"); ok {
			t.Fatalf("warm activation has initTime: %+v", a.Annotations)
		}
		if _, ok := a.Annotations.Get("waitTime"); !ok || a.Response.StatusCode != 0 {
			t.Fatalf("warm activation = %+v", a)
		}
		body := get(t, "http://"+p.Addr()+"/metrics")
		if !strings.Contains(body, `snapinvoker_activations_total{start="warm",status="success"} 1`) {
			t.Fatalf("metrics do not count the warm start:\n%s", grep(body, "activations_total"))
		}
	})

	t.Run("non-blocking: one Completion", func(t *testing.T) {
		id := aid(2)
		w.publish(w.message("activation-message-nonblocking.json", id, map[string]any{
			"action":   map[string]any{"path": "guest", "name": "echo", "version": "0.0.1"},
			"revision": w.revs["guest/echo"]}))
		w.record(id)
		acks := w.waitAcks(id, 1)
		if len(acks) != 1 || acks[0].Kind != activation.CompletionAck || *acks[0].IsSystemError {
			t.Fatalf("acks = %+v; want one completion", acks)
		}
	})

	t.Run("blocking with log limit 0: one Combined", func(t *testing.T) {
		id := aid(3)
		w.invoke("echonologs", id, true, map[string]any{"x": 1}, nil)
		rec := w.record(id)
		acks := w.waitAcks(id, 1)
		if len(acks) != 1 || acks[0].Kind != activation.CombinedAck || acks[0].Response.Activation == nil {
			t.Fatalf("acks = %+v; want one full combined", acks)
		}
		if len(rec.WhiskActivation.Logs) != 0 {
			t.Fatalf("logs collected with limit 0: %q", rec.WhiskActivation.Logs)
		}
	})

	t.Run("application error", func(t *testing.T) {
		id := aid(4)
		w.invoke("apperror", id, true, nil, nil)
		acks := w.waitAcks(id, 2)
		a := acks[0].Response.Activation
		if a.Response.StatusCode != activation.StatusApplicationError || string(a.Response.Result) != `{"error":{"statusCode":422,"message":"bad input"}}` {
			t.Fatalf("response = %d %s", a.Response.StatusCode, a.Response.Result)
		}
		if *acks[1].IsSystemError {
			t.Fatal("application error flagged as system error")
		}
		logs := w.record(id).WhiskActivation.Logs
		if len(logs) != 1 || !strings.Contains(logs[0], "stdout: about to fail") {
			t.Fatalf("record logs = %q; want the action's stdout line", logs)
		}
		if _, stream, text, ok := activation.ParseLogLine(logs[0]); !ok || stream != "stdout" || text != "about to fail" {
			t.Fatalf("log line %q is not in OpenWhisk's format", logs[0])
		}
		w.events.waitFor(t, "user event with userDefinedStatusCode", func(recs [][]byte) bool {
			for _, r := range recs {
				if ev, err := activation.DecodeEvent(r); err == nil && ev.Activation != nil && ev.Activation.ActivationID == id {
					return ev.Activation.UserDefinedStatusCode != nil && *ev.Activation.UserDefinedStatusCode == 422
				}
			}
			return false
		})
	})

	t.Run("developer error at init", func(t *testing.T) {
		id := aid(5)
		w.invoke("initfail", id, true, nil, nil)
		rec := w.record(id).WhiskActivation
		if rec.Response.StatusCode != activation.StatusDeveloperError {
			t.Fatalf("status = %d %s", rec.Response.StatusCode, rec.Response.Result)
		}
		it, ok := rec.Annotations.GetInt("initTime")
		if !ok || it != *rec.Duration {
			t.Fatalf("initTime %d (present %v), duration %d; want equal", it, ok, *rec.Duration)
		}
		if n := len(rec.Logs); n == 0 || !strings.Contains(rec.Logs[n-1], activation.MsgLogDeveloperError) {
			t.Fatalf("logs = %q; want the developer-error warning last", rec.Logs)
		}
		w.waitAcks(id, 2)
	})

	t.Run("developer error at run", func(t *testing.T) {
		id := aid(6)
		w.invoke("nonjson", id, false, nil, nil)
		rec := w.record(id).WhiskActivation
		if rec.Response.StatusCode != activation.StatusDeveloperError || !strings.Contains(string(rec.Response.Result), "did not produce a valid JSON") {
			t.Fatalf("response = %d %s", rec.Response.StatusCode, rec.Response.Result)
		}
		acks := w.waitAcks(id, 1)
		if acks[0].Kind != activation.CompletionAck || *acks[0].IsSystemError {
			t.Fatalf("ack = %+v", acks[0])
		}
	})

	t.Run("whisk error: no driver can provision", func(t *testing.T) {
		id := aid(7)
		w.invoke("hellonode", id, true, nil, nil)
		acks := w.waitAcks(id, 1)
		if len(acks) != 1 || acks[0].Kind != activation.CombinedAck || !*acks[0].IsSystemError {
			t.Fatalf("acks = %+v; want one combined system error", acks)
		}
		a := acks[0].Response.Activation
		if string(a.Response.Result) != `{"error":"`+activation.MsgResourceProvision+`"}` || a.Response.StatusCode != activation.StatusWhiskError {
			t.Fatalf("response = %d %s", a.Response.StatusCode, a.Response.Result)
		}
		w.record(id)
	})

	t.Run("missing action: fallback record", func(t *testing.T) {
		raw := w.message("activation-message-missing-action.json", "", nil)
		var m struct {
			ActivationID string `json:"activationId"`
		}
		json.Unmarshal(raw, &m)
		w.publish(raw)
		acks := w.waitAcks(m.ActivationID, 1)
		a := acks[0].Response.Activation
		if acks[0].Kind != activation.CombinedAck || a == nil || *acks[0].IsSystemError {
			t.Fatalf("ack = %+v", acks[0])
		}
		if string(a.Response.Result) != `{"error":"`+activation.MsgActionRemoved+`"}` || a.Response.StatusCode != activation.StatusApplicationError {
			t.Fatalf("response = %d %s", a.Response.StatusCode, a.Response.Result)
		}
		if kind, _ := a.Annotations.GetString("kind"); kind != "unknown" || *a.Duration != 0 || a.Start != a.End {
			t.Fatalf("fallback activation = %+v", a)
		}
		w.record(m.ActivationID)
	})

	t.Run("bad revision", func(t *testing.T) {
		id := aid(8)
		w.invoke("echo", id, true, nil, map[string]any{"revision": "9-0123456789abcdef0123456789abcdef"})
		acks := w.waitAcks(id, 1)
		a := acks[0].Response.Activation
		if acks[0].Kind != activation.CombinedAck || string(a.Response.Result) != `{"error":"`+activation.MsgActionRemoved+`"}` {
			t.Fatalf("ack = %+v %s", acks[0], a.Response.Result)
		}
	})

	t.Run("malformed message is skipped", func(t *testing.T) {
		w.publish([]byte(`{"this is": "not an activation"`))
		w.publish([]byte(`{"transid":["x",1],"action":{"path":"guest","name":"echo"}}`))
		id := aid(9)
		w.invoke("echo", id, false, nil, nil)
		w.waitAcks(id, 1)
		// The records are handled concurrently: the count may trail the later ack briefly.
		for i := 0; ; i++ {
			body := get(t, "http://"+p.Addr()+"/metrics")
			if strings.Contains(body, "snapinvoker_malformed_messages_total 2") {
				break
			}
			if i > 500 {
				t.Fatalf("metrics do not count the 2 malformed messages:\n%s", grep(body, "malformed"))
			}
			time.Sleep(10 * time.Millisecond)
		}
	})

	t.Run("health test action: transid echoed byte for byte", func(t *testing.T) {
		raw, err := os.ReadFile("testdata/activation-message-health.json")
		if err != nil {
			t.Fatal(err)
		}
		var m struct {
			TransID      json.RawMessage `json:"transid"`
			ActivationID string          `json:"activationId"`
		}
		json.Unmarshal(raw, &m)
		w.publish(raw) // pretty-printed as in the fixture: the transid must still match
		acks := w.waitAcks(m.ActivationID, 1)
		var buf bytes.Buffer
		json.Compact(&buf, m.TransID)
		got, _ := json.Marshal(acks[0].TransID)
		if string(got) != buf.String() {
			t.Fatalf("health ack transid %s, want %s", got, buf.String())
		}
		// No driver here runs nodejs, so the health action cannot be provisioned: a shrunk
		// Combined (non-blocking) with isSystemError. With a Node.js driver it is a Completion.
		if acks[0].Kind != activation.CombinedAck || acks[0].Response.Activation != nil || !*acks[0].IsSystemError {
			t.Fatalf("health ack = %+v; want a shrunk combined system error", acks[0])
		}
	})

	t.Run("storeActivations false: no record", func(t *testing.T) {
		id := aid(10)
		b := w.message("activation-message-blocking.json", id, map[string]any{
			"action":   map[string]any{"path": "guest", "name": "echonologs", "version": "0.0.1"},
			"revision": w.revs["guest/echonologs"]})
		b = bytes.Replace(b, []byte(`"limits":{}`), []byte(`"limits":{"storeActivations":false}`), 1)
		w.publish(b)
		w.waitAcks(id, 1)
		// A later activation's record proves the store has caught up.
		id2 := aid(11)
		w.invoke("echonologs", id2, true, nil, nil)
		w.record(id2)
		if w.hasRecord(id) {
			t.Fatal("record stored although the namespace sets storeActivations false")
		}
	})

	t.Run("blacklisted namespace: refused, acked shrunk, not stored", func(t *testing.T) {
		id := aid(13)
		b := w.message("activation-message-blocking.json", id, map[string]any{
			"action":   map[string]any{"path": "guest", "name": "echo", "version": "0.0.1"},
			"revision": w.revs["guest/echo"]})
		b = bytes.Replace(b, []byte(`"name":"guest","uuid"`), []byte(`"name":"blockedns","uuid"`), 1)
		if !bytes.Contains(b, []byte(`"blockedns"`)) {
			t.Fatalf("fixture changed: %s", b)
		}
		w.publish(b)
		acks := w.waitAcks(id, 1)
		if acks[0].Kind != activation.CombinedAck || acks[0].Response.Activation != nil || *acks[0].IsSystemError {
			t.Fatalf("ack = %+v; want a shrunk combined, no system error", acks[0])
		}
		id2 := aid(14)
		w.invoke("echonologs", id2, true, nil, nil)
		w.record(id2)
		if ok, _ := w.db.Exists(context.Background(), activationDB, "blockedns/"+id); ok {
			t.Fatal("the record of a blacklisted activation was stored")
		}
	})

	t.Run("health pings and disable", func(t *testing.T) {
		w.pings.waitFor(t, "enabled pings", func(recs [][]byte) bool { return len(recs) >= 2 })
		req, _ := http.NewRequest("POST", "http://"+p.Addr()+"/disable", nil)
		req.SetBasicAuth("invoker.user", "invoker.pass")
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("/disable = %v, %v", resp, err)
		}
		w.pings.waitFor(t, "disabled ping", func(recs [][]byte) bool {
			for _, r := range recs {
				if pm, err := activation.DecodePing(r); err == nil && !pm.Enabled() {
					return pm.Instance.Instance == 0
				}
			}
			return false
		})
		req, _ = http.NewRequest("POST", "http://"+p.Addr()+"/enable", nil)
		req.SetBasicAuth("invoker.user", "invoker.pass")
		if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
			t.Fatalf("/enable = %v, %v", resp, err)
		}
	})

	t.Run("every offset committed, malformed ones included", func(t *testing.T) {
		end, err := kafkafeed.EndOffset(context.Background(), w.kafka.Brokers, "invoker0")
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; p.Committed() != end; i++ {
			if i > 3000 {
				t.Fatalf("committed offset %d, want the end offset %d", p.Committed(), end)
			}
			time.Sleep(10 * time.Millisecond)
		}
	})

	if err := stop(); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
}

func TestStartRefusesInvalidManifest(t *testing.T) {
	cfg, err := config.Load([]string{"KAFKA_HOSTS=127.0.0.1:1", `RUNTIMES_MANIFEST={"runtimes":{"nodejs":[{"kind":"nodejs:20"}]},"blackboxes":5}`,
		"WHISK_API_HOST_NAME=x", "CONFIG_whisk_couchdb_host=h", "CONFIG_whisk_couchdb_databases_WhiskEntity=a",
		"CONFIG_whisk_couchdb_databases_WhiskActivation=b"}, []string{"--id", "0"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Start(context.Background(), Options{Config: cfg})
	if err == nil || !strings.HasPrefix(err.Error(), "RUNTIMES_MANIFEST: ") || !errors.Is(err, activation.ErrInvalidManifest) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("Start with an invalid manifest = %v; want one line naming RUNTIMES_MANIFEST", err)
	}
}

func get(t testing.TB, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
