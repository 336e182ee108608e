package invoker

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/snapinvoker/snapinvoker/activation"
	"github.com/snapinvoker/snapinvoker/backend"
	"github.com/snapinvoker/snapinvoker/backend/backendtest/procdriver"
	"github.com/snapinvoker/snapinvoker/internal/testprog"
	"github.com/snapinvoker/snapinvoker/invoker/config"
	"github.com/snapinvoker/snapinvoker/invoker/couch"
	"github.com/snapinvoker/snapinvoker/invoker/internal/testenv"
	"github.com/snapinvoker/snapinvoker/invoker/kafkafeed"
)

// The test "controller": real Kafka (kfake), real CouchDB API (pouchdb-server), real actions
// (static actionloop executables run by the process driver). It publishes ActivationMessages
// built from the wire fixtures and reads acks, records, pings and events.

const (
	entityDB     = "test_whisks"
	activationDB = "test_activations"
	authDB       = "test_subjects"
)

// blockedNamespacesView is the upstream subjects database's view the invoker's blacklist reads.
const blockedNamespacesView = `function (doc) {
  if (doc._id.indexOf("/limits") >= 0) {
    if (doc.invocationsPerMinute === 0 || doc.concurrentInvocations === 0) {
      emit(doc._id.replace("/limits", ""), 1);
    }
  } else if (doc.subject && doc.namespaces && doc.blocked) {
    doc.namespaces.forEach(function (ns) { emit(ns.name, 1); });
  }
}`

// blockNamespace installs the view and blocks ns with a limits document.
func (w *world) blockNamespace(ns string) {
	w.t.Helper()
	ddoc, _ := json.Marshal(map[string]any{"views": map[string]any{"blockedNamespaces": map[string]any{"map": blockedNamespacesView}}})
	req, _ := http.NewRequest(http.MethodPut, w.couch.URL+"/"+authDB+"/_design/namespaceThrottlings", bytes.NewReader(ddoc))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		w.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		w.t.Fatalf("design document: HTTP %d", resp.StatusCode)
	}
	if _, err := w.db.PutDoc(context.Background(), authDB, ns+"/limits", []byte(`{"invocationsPerMinute":0}`)); err != nil {
		w.t.Fatal(err)
	}
}

type world struct {
	t        testing.TB
	kafka    *testenv.Kafka
	couch    *testenv.Couch
	db       *couch.Client
	environ  []string
	revs     map[string]string // docid -> rev
	pub      *kafkafeed.Producer
	acks     *topicReader
	pings    *topicReader
	events   *topicReader
	registry *backend.Registry
	log      *zap.Logger
}

// newWorld starts Kafka and CouchDB, compiles the sample actions and stores their documents.
func newWorld(t testing.TB, persistentCouch bool) *world {
	t.Helper()
	level := zap.InfoLevel
	if _, bench := t.(*testing.B); bench {
		level = zap.WarnLevel
	}
	w := &world{t: t, revs: map[string]string{}, log: zaptest.NewLogger(t, zaptest.Level(level))}
	w.kafka = testenv.StartKafka(t, "completed0", "health", "events")
	w.couch = testenv.StartCouch(t, persistentCouch)
	var err error
	if w.db, err = couch.New(w.couch.URL, "", ""); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, db := range []string{entityDB, activationDB, authDB} {
		if err := w.db.CreateDB(ctx, db); err != nil {
			t.Fatal(err)
		}
	}
	w.blockNamespace("blockedns")
	manifest, err := os.ReadFile("testdata/runtimes-manifest.json")
	if err != nil {
		t.Fatal(err)
	}
	w.environ = []string{
		"KAFKA_HOSTS=" + strings.Join(w.kafka.Brokers, ","),
		"RUNTIMES_MANIFEST=" + string(manifest),
		"WHISK_API_HOST_NAME=localhost",
		"CONFIG_whisk_couchdb_protocol=http",
		"CONFIG_whisk_couchdb_host=127.0.0.1",
		"CONFIG_whisk_couchdb_port=" + w.couch.URL[strings.LastIndexByte(w.couch.URL, ':')+1:],
		"CONFIG_whisk_couchdb_databases_WhiskEntity=" + entityDB,
		"CONFIG_whisk_couchdb_databases_WhiskActivation=" + activationDB,
		"CONFIG_whisk_couchdb_databases_WhiskAuth=" + authDB,
		"CONFIG_whisk_userEvents_enabled=true",
		"CONFIG_whisk_containerPool_userMemory=2048m",
	}
	// The process driver runs native actionloop executables (kind blackbox) as host processes.
	w.registry = backend.NewRegistry()
	if err := w.registry.Register(procdriver.Name, procdriver.Registration()); err != nil {
		t.Fatal(err)
	}
	w.environ = append(w.environ, "SNAPINVOKER_STATE_DIR="+t.TempDir())

	// The shared programs come from internal/testprog; apperror and gate are this package's own.
	build := func(name string) []byte {
		var exe string
		if name == "apperror" || name == "gate" {
			exe = testprog.BuildFile(t, "testdata/"+name+".c")
		} else {
			exe = testprog.Build(t, name)
		}
		b, err := os.ReadFile(exe)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	echo := build("echo")
	// echo's code is a CouchDB attachment (couch:<uuid>), the others are inline base64 strings.
	w.putAction("echo", map[string]any{"kind": "blackbox", "image": "openwhisk/dockerskeleton:nightly", "binary": true,
		"code": map[string]any{"attachmentName": "couch:5f0e5c2a-echo", "attachmentType": "application/octet-stream"}}, nil)
	rev, err := w.db.PutAttachment(ctx, entityDB, "guest/echo", w.revs["guest/echo"], "5f0e5c2a-echo", "application/octet-stream", echo)
	if err != nil {
		t.Fatal(err)
	}
	w.revs["guest/echo"] = rev
	w.putAction("echonologs", map[string]any{"kind": "blackbox", "image": "openwhisk/dockerskeleton:nightly", "binary": true,
		"code": base64.StdEncoding.EncodeToString(echo)}, map[string]any{"logs": 0})
	for _, name := range []string{"sleep", "apperror", "initfail", "nonjson", "gate"} {
		w.putAction(name, map[string]any{"kind": "blackbox", "image": "openwhisk/dockerskeleton:nightly", "binary": true,
			"code": base64.StdEncoding.EncodeToString(build(name))}, nil)
	}
	// A Node.js action: no driver here runs nodejs, so it cannot be provisioned (a whisk error).
	w.putAction("hellonode", map[string]any{"kind": "nodejs:20", "code": "function main(p) { return p }"}, nil)
	health, err := os.ReadFile("testdata/action-doc-health-test-action.json")
	if err != nil {
		t.Fatal(err)
	}
	var hd map[string]any
	json.Unmarshal(health, &hd)
	delete(hd, "_rev")
	hb, _ := json.Marshal(hd)
	if w.revs[hd["_id"].(string)], err = w.db.PutDoc(ctx, entityDB, hd["_id"].(string), hb); err != nil {
		t.Fatal(err)
	}

	w.pub = kafkafeed.NewProducer(w.kafka.Brokers, activation.MaxActivationLimit)
	t.Cleanup(func() { w.pub.Close() })
	w.acks = readTopic(t, w.kafka.Brokers, "completed0")
	w.pings = readTopic(t, w.kafka.Brokers, "health")
	w.events = readTopic(t, w.kafka.Brokers, "events")
	return w
}

func (w *world) putAction(name string, exec map[string]any, limits map[string]any) {
	w.t.Helper()
	l := map[string]any{"timeout": 60000, "memory": 256, "logs": 10, "concurrency": 1}
	for k, v := range limits {
		l[k] = v
	}
	doc := map[string]any{"_id": "guest/" + name, "entityType": "action", "namespace": "guest", "name": name,
		"version": "0.0.1", "publish": false, "updated": 1717170000000, "exec": exec, "parameters": []any{},
		"limits": l, "annotations": []any{map[string]any{"key": "exec", "value": exec["kind"]}}}
	b, _ := json.Marshal(doc)
	rev, err := w.db.PutDoc(context.Background(), entityDB, "guest/"+name, b)
	if err != nil {
		w.t.Fatal(err)
	}
	w.revs["guest/"+name] = rev
}

// process starts an invoker with the world's configuration, the pool and the process driver.
func (w *world) process(extraEnv ...string) *Process {
	w.t.Helper()
	return w.processWith(Options{}, extraEnv...)
}

func (w *world) processWith(o Options, extraEnv ...string) *Process {
	w.t.Helper()
	cfg, err := config.Load(append(append([]string(nil), w.environ...), extraEnv...), []string{"--id", "0"})
	if err != nil {
		w.t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		w.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	o.Config, o.Logger, o.Listener, o.PingInterval = cfg, w.log, l, 50*time.Millisecond
	o.NewExecutor = func(ctx context.Context, ep ExecutorParams) (Executor, error) {
		return NewPoolExecutor(ctx, ep, w.registry)
	}
	p, err := Start(ctx, o)
	if err != nil {
		w.t.Fatal(err)
	}
	return p
}

// run runs p until the returned stop is called; stop waits for Run to return and gives its error.
func run(p *Process) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	return func() error { cancel(); return <-done }
}

// message builds an ActivationMessage from a wire fixture with the given changes (nil deletes).
func (w *world) message(fixture string, id string, set map[string]any) []byte {
	w.t.Helper()
	b, err := os.ReadFile("testdata/" + fixture)
	if err != nil {
		w.t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		w.t.Fatal(err)
	}
	if id != "" {
		m["activationId"] = id
	}
	for k, v := range set {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	out, _ := json.Marshal(m)
	return out
}

// invoke publishes a message for guest/<action> at its current revision.
func (w *world) invoke(action, id string, blocking bool, content any, extra map[string]any) {
	w.t.Helper()
	set := map[string]any{
		"action":   map[string]any{"path": "guest", "name": action, "version": "0.0.1"},
		"revision": w.revs["guest/"+action],
		"blocking": blocking,
		"content":  content,
	}
	for k, v := range extra {
		set[k] = v
	}
	w.publish(w.message("activation-message-blocking.json", id, set))
}

func (w *world) publish(value []byte) {
	w.t.Helper()
	if err := w.pub.Send(context.Background(), "invoker0", value); err != nil {
		w.t.Fatal(err)
	}
}

// record reads a stored activation record, waiting for it to appear.
func (w *world) record(id string) *activation.StoredActivation {
	w.t.Helper()
	return w.recordIn("guest", id)
}

// recordIn reads the record of activation id invoked in namespace ns.
func (w *world) recordIn(ns, id string) *activation.StoredActivation {
	w.t.Helper()
	for i := 0; ; i++ {
		b, err := w.db.GetDoc(context.Background(), activationDB, ns+"/"+id, "")
		if err == nil {
			r, err := activation.DecodeStoredActivation(b)
			if err != nil {
				w.t.Fatalf("stored record of %s does not decode: %v\n%s", id, err, b)
			}
			return r
		}
		if i > 600 {
			w.t.Fatalf("record of %s never stored: %v", id, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (w *world) hasRecord(id string) bool {
	ok, err := w.db.Exists(context.Background(), activationDB, "guest/"+id)
	if err != nil {
		w.t.Fatal(err)
	}
	return ok
}

// topicReader collects every record of a topic from the beginning.
type topicReader struct {
	mu   sync.Mutex
	recs [][]byte
	cond *sync.Cond
}

func readTopic(t testing.TB, brokers []string, topic string) *topicReader {
	tr := &topicReader{}
	tr.cond = sync.NewCond(&tr.mu)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		var offset int64
		for ctx.Err() == nil {
			// A reader per connection attempt: the broker may be restarted under it.
			r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topic, Partition: 0, MinBytes: 1, MaxWait: 20 * time.Millisecond, MaxBytes: 4 << 20, ReadBackoffMin: time.Millisecond})
			r.SetOffset(offset)
			for {
				m, err := r.ReadMessage(ctx)
				if err != nil {
					break
				}
				offset = m.Offset + 1
				tr.mu.Lock()
				tr.recs = append(tr.recs, m.Value)
				tr.cond.Broadcast()
				tr.mu.Unlock()
			}
			r.Close()
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return tr
}

// all returns a copy of the records so far.
func (tr *topicReader) all() [][]byte {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return append([][]byte(nil), tr.recs...)
}

// waitFor waits until pred holds for the records, failing after a minute.
func (tr *topicReader) waitFor(t testing.TB, what string, pred func([][]byte) bool) [][]byte {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		recs := tr.all()
		if pred(recs) {
			return recs
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; have %d records", what, len(recs))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// acksFor decodes the acks about activation id.
func acksFor(t testing.TB, recs [][]byte, id string) []*activation.Ack {
	var out []*activation.Ack
	for _, r := range recs {
		a, err := activation.DecodeAck(r)
		if err != nil {
			t.Fatalf("ack does not decode: %v\n%s", err, r)
		}
		if string(a.ID()) == id {
			out = append(out, a)
		}
	}
	return out
}

// waitAcks waits for n acks about id and returns them (and the raw records).
func (w *world) waitAcks(id string, n int) []*activation.Ack {
	w.t.Helper()
	recs := w.acks.waitFor(w.t, fmt.Sprintf("%d acks of %s", n, id), func(r [][]byte) bool { return len(acksFor(w.t, r, id)) >= n })
	return acksFor(w.t, recs, id)
}

var _ = errors.New
