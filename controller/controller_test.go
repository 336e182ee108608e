package controller

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/snapinvoker/snapinvoker/activation"
	"github.com/snapinvoker/snapinvoker/store"
)

// scriptedInvoker plays the invoker's part of the Kafka protocol for controller tests (the
// real invoker is exercised by the e2e tests): it consumes invoker0, answers each activation
// according to the action's name, writes the activation record to the store and acks on
// completed0 the way the protocol says (blocking: one Combined ack with the record;
// non-blocking: a Completion).
//
//	echo*       success, result = the content
//	apperror*   application error {"error":"bad input"}
//	deverror*   developer error
//	whiskerror* whisk internal error
//	array*      success with [1,2,3]
//	shrunk*     success, but the ack is shrunk (record only in the store)
//	hang*       never answers
type scriptedInvoker struct {
	st     *store.Store
	reader *kafka.Reader
	writer *kafka.Writer
	wg     sync.WaitGroup
	mu     sync.Mutex
	seen   []*activation.ActivationMessage
}

func startScriptedInvoker(t testing.TB, brokers []string, st *store.Store) *scriptedInvoker {
	si := &scriptedInvoker{
		st: st,
		reader: kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: "invoker0", MinBytes: 1, MaxBytes: 8 << 20,
			MaxWait: 100 * time.Millisecond, ReadBackoffMin: time.Millisecond, ReadBackoffMax: 10 * time.Millisecond}),
		writer: &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: "completed0", BatchTimeout: time.Millisecond, BatchSize: 1, RequiredAcks: kafka.RequireOne},
	}
	ctx, cancel := context.WithCancel(context.Background())
	si.wg.Add(1)
	go func() {
		defer si.wg.Done()
		for {
			m, err := si.reader.ReadMessage(ctx)
			if err != nil {
				return
			}
			msg, err := activation.DecodeActivationMessage(m.Value)
			if err != nil {
				t.Errorf("controller published an unreadable ActivationMessage: %v: %s", err, m.Value)
				continue
			}
			si.mu.Lock()
			si.seen = append(si.seen, msg)
			si.mu.Unlock()
			si.answer(ctx, t, msg)
		}
	}()
	t.Cleanup(func() {
		cancel()
		si.reader.Close()
		si.wg.Wait()
		si.writer.Close()
	})
	return si
}

func (si *scriptedInvoker) answer(ctx context.Context, t testing.TB, msg *activation.ActivationMessage) {
	name := msg.Action.Name
	var resp activation.ActivationResponse
	content := msg.Content
	if content == nil {
		content = json.RawMessage(`{}`)
	}
	switch {
	case strings.HasPrefix(name, "hang"):
		return
	case strings.HasPrefix(name, "apperror"):
		resp = activation.ApplicationError("bad input")
	case strings.HasPrefix(name, "deverror"):
		resp = activation.DeveloperError("The action did not produce a valid response and exited unexpectedly.")
	case strings.HasPrefix(name, "whiskerror"):
		resp = activation.WhiskError("Failed to provision resources to run the action.")
	case strings.HasPrefix(name, "array"):
		resp = activation.SuccessResponse(json.RawMessage(`[1,2,3]`), nil)
	default:
		n := len(content)
		resp = activation.SuccessResponse(content, &n)
	}
	now := time.Now().UnixMilli()
	d := int64(1)
	ann := activation.Parameters{
		{Key: "path", Value: json.RawMessage(`"` + msg.Action.String() + `"`)},
		{Key: "kind", Value: json.RawMessage(`"nodejs:20"`)},
		{Key: "limits", Value: json.RawMessage(`{"concurrency":1,"logs":10,"memory":256,"timeout":60000}`)},
		{Key: "timeout", Value: json.RawMessage(`false`)},
	}
	if msg.Cause != "" {
		ann = append(ann, activation.Parameter{Key: "causedBy", Value: json.RawMessage(`"sequence"`)})
	}
	ver := activation.DefaultVersion
	if msg.Action.Version != nil {
		ver = *msg.Action.Version
	}
	rec := &activation.WhiskActivation{
		Namespace: msg.User.Namespace.Name, Name: name, Subject: msg.User.Subject, ActivationID: msg.ActivationID,
		Start: now - 1, End: now, Cause: msg.Cause, Response: resp, Logs: []string{"2026-01-01T00:00:00.000000000Z  stdout: hello"},
		Version: ver, Annotations: ann, Duration: &d,
	}
	body, _ := json.Marshal(rec.Stored(now))
	if _, err := si.st.Activations.Put(rec.DocID(), "", body); err != nil {
		t.Errorf("store activation: %v", err)
	}
	inst := activation.InvokerInstanceID{Instance: 0, UniqueName: "0", UserMemory: activation.SizeMB(2048)}
	var ack activation.Ack
	switch {
	case !msg.Blocking:
		ack = activation.NewAck(activation.CompletionAck, msg.TransID, rec, inst)
	case strings.HasPrefix(name, "shrunk"):
		ack = activation.NewAck(activation.CombinedAck, msg.TransID, rec, inst).Shrink()
	default:
		ack = activation.NewAck(activation.CombinedAck, msg.TransID, ptr(rec.WithoutLogs()), inst)
	}
	b, err := ack.MarshalJSON()
	if err != nil {
		t.Errorf("encode ack: %v", err)
		return
	}
	if err := si.writer.WriteMessages(ctx, kafka.Message{Value: b}); err != nil && ctx.Err() == nil {
		t.Errorf("write ack: %v", err)
	}
}

type harness struct {
	srv     *Server
	st      *store.Store
	base    string
	invoker *scriptedInvoker
}

func newHarness(t testing.TB, dir string, withInvoker bool) *harness {
	t.Helper()
	st, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	h := &harness{st: st}
	var lb Balancer
	if withInvoker {
		cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "invoker0", "completed0", "health"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cluster.Close)
		kb, err := NewKafkaBalancer(context.Background(), KafkaConfig{Brokers: cluster.ListenAddrs()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { kb.Close() })
		lb = kb
		h.invoker = startScriptedInvoker(t, cluster.ListenAddrs(), st)
	}
	users := DefaultUsers()
	users["other.ns"] = otherKey
	limits := DefaultLimits()
	limits.MaxWait = 5 * time.Second
	// A clock that advances a millisecond per reading keeps "newest first" orders exact.
	var clockMu sync.Mutex
	clock := time.UnixMilli(1_800_000_000_000)
	now := func() time.Time {
		clockMu.Lock()
		defer clockMu.Unlock()
		clock = clock.Add(time.Millisecond)
		return clock
	}
	srv, err := New(Config{Store: st, Balancer: lb, Users: users, Limits: limits, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	h.srv = srv
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	h.base = ts.URL
	return h
}

func TestScripts(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.txt")
	if len(files) == 0 {
		t.Fatal("no scripts in testdata")
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txt"), func(t *testing.T) {
			h := newHarness(t, t.TempDir(), strings.Contains(f, "invoke"))
			runScript(t, h.base, f)
		})
	}
}

func ptr[T any](v T) *T { return &v }
