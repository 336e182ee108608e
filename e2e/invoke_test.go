package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/snapinvoker/snapinvoker/controller"
	"github.com/snapinvoker/snapinvoker/controller/standalone"
	"github.com/snapinvoker/snapinvoker/e2e/owclient"
)

// expectation is what one invoke of a sample action must produce (testdata/actions/README.md).
type expectation struct {
	action string // file under testdata/actions
	params map[string]any
	limits *owclient.Limits
	// status is the blocking HTTP status; apiStatus the record's response.status.
	status    int
	apiStatus string
	// result, when set, must equal the result JSON; contains, when set, must be in it.
	result   string
	contains string
	// log, when set, must be in the record's logs.
	log string
}

func expectations(lang, ext string) []expectation {
	throwsStatus := "action developer error"
	if lang == "python" {
		// The python launcher turns an exception into {"error": …}, an application error.
		throwsStatus = "application error"
	}
	return []expectation{
		{action: lang + "/hello." + ext, params: map[string]any{"name": "e2e"}, status: 200, apiStatus: "success",
			result: `{"greeting":"Hello, e2e!"}`, log: "hello called for e2e"},
		{action: lang + "/echo." + ext, params: map[string]any{"a": 1.5, "b": []any{"x"}}, status: 200, apiStatus: "success",
			result: `{"a":1.5,"b":["x"]}`},
		{action: lang + "/apperror." + ext, status: 502, apiStatus: "application error", result: `{"error":"bad input"}`},
		{action: lang + "/array." + ext, status: 200, apiStatus: "success", result: `[1,2,3]`},
		{action: lang + "/unicode." + ext, params: map[string]any{"delimiter": "❄"}, status: 200, apiStatus: "success",
			result: `{"winter":"❄ ☃ ❄"}`, log: "❄ ☃ ❄"},
		{action: lang + "/context." + ext, status: 200, apiStatus: "success", contains: `"namespace":"guest"`},
		{action: lang + "/sleep." + ext, params: map[string]any{"ms": 20}, status: 200, apiStatus: "success", result: `{"slept":20}`},
		{action: lang + "/sleep." + ext, params: map[string]any{"ms": 3000}, limits: &owclient.Limits{Timeout: 300},
			status: 502, apiStatus: "action developer error", contains: "The action exceeded its time limits of 300 milliseconds"},
		{action: lang + "/throws." + ext, status: 502, apiStatus: throwsStatus, contains: "thrown on purpose"},
		{action: lang + "/exit." + ext, status: 502, apiStatus: "action developer error"},
		{action: lang + "/initfail." + ext, status: 502, apiStatus: "action developer error"},
	}
}

func compact(t testing.TB, raw []byte) string {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		t.Fatalf("not JSON: %v: %s", err, raw)
	}
	return b.String()
}

func (e expectation) check(t *testing.T, where string, a *owclient.Activation) {
	t.Helper()
	if a.Response.Status != e.apiStatus || a.Response.Success != (e.apiStatus == "success") {
		t.Errorf("%s: status %q success %v, want %q; result %s", where, a.Response.Status, a.Response.Success, e.apiStatus, a.Response.Result)
	}
	got := compact(t, a.Response.Result)
	if e.result != "" && got != e.result {
		t.Errorf("%s: result %s, want %s", where, got, e.result)
	}
	if e.contains != "" && !strings.Contains(got, e.contains) {
		t.Errorf("%s: result %s lacks %s", where, got, e.contains)
	}
}

// TestInvokeSampleActions creates every sample action of both languages and invokes each
// blocking and non-blocking through HTTP → Kafka → invoker → driver → Kafka → HTTP.
func TestInvokeSampleActions(t *testing.T) {
	in := startTWith(t, true)
	ctx := ctxT(t)
	c := in.guest
	for _, lang := range []struct{ dir, ext, kind string }{{"nodejs", "js", "nodejs:default"}, {"python", "py", "python:default"}} {
		for i, e := range expectations(lang.dir, lang.ext) {
			name := fmt.Sprintf("%s-%d", actionName(e.action), i)
			code := sample(t, e.action)
			if _, err := c.PutAction(ctx, name, owclient.Action{Exec: &owclient.Exec{Kind: lang.kind, Code: &code}, Limits: e.limits}, false); err != nil {
				t.Fatalf("create %s: %v", name, err)
			}
			// Blocking, full record.
			inv, err := c.Invoke(ctx, name, e.params, owclient.InvokeOptions{Blocking: true})
			if err != nil {
				t.Fatalf("invoke %s: %v", name, err)
			}
			where := name + " blocking"
			if inv.Status != e.status || len(inv.ActivationID) != 32 {
				t.Errorf("%s: HTTP %d (activation id %q), want %d: %s", where, inv.Status, inv.ActivationID, e.status, inv.Body)
				continue
			}
			if e.result == "[1,2,3]" {
				if compact(t, inv.Body) != e.result {
					t.Errorf("%s: an array result must come bare, got %s", where, inv.Body)
				}
			} else {
				if inv.Activation == nil || inv.Activation.ActivationID != inv.ActivationID {
					t.Fatalf("%s: no record in the answer: %s", where, inv.Body)
				}
				e.check(t, where, inv.Activation)
				if name == "" || inv.Activation.Namespace != "guest" || inv.Activation.Subject != "guest" {
					t.Errorf("%s: record namespace/subject %q/%q", where, inv.Activation.Namespace, inv.Activation.Subject)
				}
			}
			// The stored record has the logs.
			stored, err := c.WaitActivation(ctx, inv.ActivationID)
			if err != nil {
				t.Fatalf("%s: %v", where, err)
			}
			e.check(t, where+" (stored)", stored)
			if e.log != "" {
				logs, err := c.ActivationLogs(ctx, inv.ActivationID)
				if err != nil || !strings.Contains(strings.Join(logs, "\n"), e.log) {
					t.Errorf("%s: logs %q (err %v) lack %q", where, logs, err, e.log)
				}
				for _, l := range logs {
					// "<timestamp padded to 30> stdout: text"
					if len(l) < 32 || !strings.Contains(l[30:], "stdout: ") && !strings.Contains(l[30:], "stderr: ") {
						t.Errorf("%s: log line %q is not in OpenWhisk's format", where, l)
					}
				}
			}
			if strings.Contains(e.action, "context") {
				var ctxRes map[string]string
				json.Unmarshal(stored.Response.Result, &ctxRes)
				if ctxRes["action_name"] != "/guest/"+name || ctxRes["activation_id"] != inv.ActivationID {
					t.Errorf("%s: context %v", where, ctxRes)
				}
				if _, has := ctxRes["api_key"]; has {
					t.Errorf("%s: a new action must not get the API key (provide-api-key false): %v", where, ctxRes)
				}
			}
			// result=true: only the result.
			if e.status == 200 && e.result != "" {
				inv, err = c.Invoke(ctx, name, e.params, owclient.InvokeOptions{Blocking: true, Result: true})
				if err != nil || inv.Status != 200 || compact(t, inv.Body) != e.result {
					t.Errorf("%s result=true: %v %v", name, inv, err)
				}
			}
			// Non-blocking: 202 with the id, then the record.
			inv, err = c.Invoke(ctx, name, e.params, owclient.InvokeOptions{})
			if err != nil || inv.Status != http.StatusAccepted {
				t.Fatalf("%s non-blocking: %v %v", name, inv, err)
			}
			var body struct{ ActivationID string }
			if json.Unmarshal(inv.Body, &body) != nil || body.ActivationID != inv.ActivationID {
				t.Errorf("%s non-blocking body %s, header id %s", name, inv.Body, inv.ActivationID)
			}
			a, err := c.WaitActivation(ctx, inv.ActivationID)
			if err != nil {
				t.Fatal(err)
			}
			e.check(t, name+" non-blocking", a)
		}
	}
	// Another namespace does not see these activations.
	if n, err := in.other.CountActivations(ctx, owclient.ActivationQuery{}); err != nil || n != 0 {
		t.Errorf("other namespace counts %d activations (%v), want 0", n, err)
	}
	if n, err := c.CountActivations(ctx, owclient.ActivationQuery{Name: actionName("nodejs/hello.js") + "-0"}); err != nil || n != 3 {
		t.Errorf("count by name = %d (%v), want 3", n, err)
	}
}

// TestBlockingWaitExpires: a blocking invoke that outlasts ?timeout answers 202 with the id;
// the activation completes and is stored.
func TestBlockingWaitExpires(t *testing.T) {
	in := startTWith(t, true)
	ctx := ctxT(t)
	code := sample(t, "python/sleep.py")
	if _, err := in.guest.PutAction(ctx, "slow", owclient.Action{Exec: &owclient.Exec{Kind: "python:default", Code: &code}}, false); err != nil {
		t.Fatal(err)
	}
	inv, err := in.guest.Invoke(ctx, "slow", map[string]any{"ms": 1500}, owclient.InvokeOptions{Blocking: true, Timeout: 200 * time.Millisecond})
	if err != nil || inv.Status != http.StatusAccepted || len(inv.ActivationID) != 32 {
		t.Fatalf("invoke: %v %v, want 202", inv, err)
	}
	a, err := in.guest.WaitActivation(ctx, inv.ActivationID)
	if err != nil || !a.Response.Success || compact(t, a.Response.Result) != `{"slept":1500}` {
		t.Fatalf("record after the wait expired: %+v %v", a, err)
	}
}

// TestSequenceRunsComponentsThroughTheInvoker: a sequence of real actions, with cause and
// causedBy on the components.
func TestSequenceRunsComponentsThroughTheInvoker(t *testing.T) {
	in := startTWith(t, true)
	ctx := ctxT(t)
	c := in.guest
	echo, hello := sample(t, "nodejs/echo.js"), sample(t, "python/hello.py")
	for name, a := range map[string]owclient.Action{
		"echo":  {Exec: &owclient.Exec{Kind: "nodejs:default", Code: &echo}, Parameters: []owclient.KeyValue{{Key: "name", Value: "seq"}}},
		"hello": {Exec: &owclient.Exec{Kind: "python:default", Code: &hello}},
	} {
		if _, err := c.PutAction(ctx, name, a, false); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.PutAction(ctx, "pipeline", owclient.Action{Exec: &owclient.Exec{Kind: "sequence", Components: []string{"/_/echo", "/_/hello"}}}, false); err != nil {
		t.Fatal(err)
	}
	inv, err := c.Invoke(ctx, "pipeline", nil, owclient.InvokeOptions{Blocking: true})
	if err != nil || inv.Status != 200 || inv.Activation == nil {
		t.Fatalf("invoke sequence: %v %v", err, string(inv.Body))
	}
	seq := inv.Activation
	if compact(t, seq.Response.Result) != `{"greeting":"Hello, seq!"}` || len(seq.Logs) != 2 {
		t.Fatalf("sequence record: %+v", seq)
	}
	for _, id := range seq.Logs {
		comp, err := c.WaitActivation(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if comp.Cause != seq.ActivationID {
			t.Errorf("component %s cause %q, want %s", comp.Name, comp.Cause, seq.ActivationID)
		}
		if v, _ := comp.Annotation("causedBy"); v != "sequence" {
			t.Errorf("component %s causedBy %v", comp.Name, v)
		}
	}
}

// TestActivationsSurviveRestart: records written before a restart are read back after it.
func TestActivationsSurviveRestart(t *testing.T) {
	dir := shortTempDir(t)
	ctx := ctxT(t)
	in := startWith(t, dir, false, true)
	code := sample(t, "nodejs/hello.js")
	if _, err := in.guest.PutAction(ctx, "hello", owclient.Action{Exec: &owclient.Exec{Kind: "nodejs:default", Code: &code}}, false); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := 0; i < 3; i++ {
		inv, err := in.guest.Invoke(ctx, "hello", map[string]any{"name": fmt.Sprint(i)}, owclient.InvokeOptions{Blocking: true})
		if err != nil || inv.Status != 200 {
			t.Fatalf("invoke: %v %v", inv, err)
		}
		ids = append(ids, inv.ActivationID)
		if _, err := in.guest.WaitActivation(ctx, inv.ActivationID); err != nil {
			t.Fatal(err)
		}
	}
	if err := in.Close(); err != nil {
		t.Fatal(err)
	}
	in = startWith(t, dir, false, true)
	defer in.Close()
	list, err := in.guest.ListActivations(ctx, owclient.ActivationQuery{Name: "hello"})
	if err != nil || len(list) != 3 {
		t.Fatalf("after restart: %d activations (%v), want 3", len(list), err)
	}
	for i, a := range list {
		if a.ActivationID != ids[2-i] { // newest first
			t.Errorf("list[%d] = %s, want %s", i, a.ActivationID, ids[2-i])
		}
	}
	a, err := in.guest.GetActivation(ctx, ids[1])
	if err != nil || compact(t, a.Response.Result) != `{"greeting":"Hello, 1!"}` {
		t.Fatalf("activation after restart: %+v %v", a, err)
	}
	if logs, err := in.guest.ActivationLogs(ctx, ids[0]); err != nil || len(logs) != 1 {
		t.Fatalf("logs after restart: %v %v", logs, err)
	}
	// And the restarted invoker still runs the action.
	inv, err := in.guest.Invoke(ctx, "hello", nil, owclient.InvokeOptions{Blocking: true, Result: true})
	if err != nil || compact(t, inv.Body) != `{"greeting":"Hello, stranger!"}` {
		t.Fatalf("invoke after restart: %v %v", inv, err)
	}
}

// TestInvokersReportHealth: the invoker's pings reach the controller.
func TestInvokersReportHealth(t *testing.T) {
	in := startTWith(t, true)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		r, err := in.guest.Do(ctx, "GET", "/invokers/healthy/count", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if string(r.Body) == "1" {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no healthy invoker reported: %s", r.Body)
		case <-time.After(100 * time.Millisecond):
		}
	}
	r, _ := in.guest.Do(ctx, "GET", "/invokers", nil, nil)
	if !strings.Contains(string(r.Body), `"invoker0`) || !strings.Contains(string(r.Body), `"up"`) {
		t.Fatalf("/invokers = %s", r.Body)
	}
}

// TestExternalKafka: --kafka HOST:PORT uses that broker instead of the embedded one (here a
// kfake cluster the test runs, without seeded topics: the standalone creates them).
func TestExternalKafka(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	ctx := ctxT(t)
	s, err := standalone.Start(ctx, standalone.Options{Port: 0, DataDir: shortTempDir(t), Kafka: cluster.ListenAddrs()[0],
		StartInvoker: invokerStarter})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Embedded || s.Brokers[0] != cluster.ListenAddrs()[0] {
		t.Fatalf("brokers %v embedded %v, want the external %s", s.Brokers, s.Embedded, cluster.ListenAddrs()[0])
	}
	c := owclient.New(s.APIHost, controller.GuestKey)
	code := sample(t, "python/echo.py")
	if _, err := c.PutAction(ctx, "echo", owclient.Action{Exec: &owclient.Exec{Kind: "python:default", Code: &code}}, false); err != nil {
		t.Fatal(err)
	}
	inv, err := c.Invoke(ctx, "echo", map[string]any{"via": "external"}, owclient.InvokeOptions{Blocking: true, Result: true})
	if err != nil || inv.Status != 200 || compact(t, inv.Body) != `{"via":"external"}` {
		t.Fatalf("invoke over the external broker: %v %v", inv, err)
	}
}
