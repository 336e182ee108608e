package invoker

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/snapinvoker/snapinvoker/activation"
)

// waitInFlight waits until the invoker holds at least n activations.
func waitInFlight(t *testing.T, p *Process, n int) {
	t.Helper()
	for i := 0; p.Invoker.InFlight() < n; i++ {
		if i > 6000 {
			t.Fatalf("in flight = %d, want %d", p.Invoker.InFlight(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func exactlyOneAck(t *testing.T, w *world, ids ...string) {
	t.Helper()
	recs := w.acks.all()
	for _, id := range ids {
		if n := len(acksFor(t, recs, id)); n != 1 {
			t.Errorf("activation %s acked %d times, want exactly once", id, n)
		}
	}
}

// TestKilledMidFlightAndRestarted: an invoker dies with activations running (earlier offsets)
// and others finished (later offsets, so not yet committable). Its successor runs the
// unfinished ones and skips the finished ones by their stored records: every activation is
// acked exactly once.
func TestKilledMidFlightAndRestarted(t *testing.T) {
	w := newWorld(t, false)
	gate := filepath.Join(t.TempDir(), "open")
	p1 := w.process()
	stop1 := run(p1)

	slow := []string{aid(100), aid(101), aid(102)}
	quick := []string{aid(103), aid(104), aid(105)}
	for _, id := range slow {
		w.invoke("gate", id, false, map[string]any{"gate": gate}, nil)
	}
	for _, id := range quick {
		w.invoke("echo", id, false, map[string]any{"n": 1}, nil)
	}
	for _, id := range quick {
		w.waitAcks(id, 1)
		w.record(id)
	}
	waitInFlight(t, p1, 3)
	p1.Abort()
	if err := stop1(); !errors.Is(err, ErrStopped) {
		t.Fatalf("aborted Run = %v, want ErrStopped", err)
	}
	for _, id := range slow {
		if n := len(acksFor(t, w.acks.all(), id)); n != 0 {
			t.Fatalf("slow activation %s acked before the crash", id)
		}
	}

	if err := os.WriteFile(gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	p2 := w.process()
	stop2 := run(p2)
	for _, id := range slow {
		w.waitAcks(id, 1)
		w.record(id)
	}
	// A later activation proves p2 has passed the redelivered quick ones.
	marker := aid(106)
	w.invoke("echo", marker, true, nil, nil)
	w.waitAcks(marker, 2)
	// Redelivered records are handled concurrently with the marker: wait for the 3 skips.
	for i := 0; ; i++ {
		body := get(t, "http://"+p2.Addr()+"/metrics")
		if strings.Contains(body, "snapinvoker_redelivered_skipped_total 3") {
			break
		}
		if i > 1000 {
			t.Fatalf("want 3 redelivered activations skipped:\n%s", grep(body, "redelivered"))
		}
		time.Sleep(10 * time.Millisecond)
	}
	exactlyOneAck(t, w, append(slow, quick...)...)
	if err := stop2(); err != nil {
		t.Fatal(err)
	}
}

// TestCouchDBOutage: while CouchDB is down, cached actions still run and are acked, their
// records wait; an uncached action's fetch is retried; once CouchDB is back nothing is lost.
func TestCouchDBOutage(t *testing.T) {
	w := newWorld(t, true)
	// The uncached fetch must outlast pouchdb-server's restart on a loaded machine.
	p := w.processWith(Options{FetchRetry: 2 * time.Minute})
	stop := run(p)
	warm := aid(200)
	w.invoke("echo", warm, true, nil, nil)
	w.record(warm)

	w.couch.Stop()
	during := []string{aid(201), aid(202), aid(203)}
	for _, id := range during {
		w.invoke("echo", id, false, nil, nil) // the (docid, rev) is cached: no CouchDB needed
	}
	for _, id := range during {
		w.waitAcks(id, 1)
	}
	uncached := aid(204)
	w.invoke("apperror", uncached, false, nil, nil)
	waitInFlight(t, p, 1)
	w.couch.Start()
	for _, id := range append(during, uncached) {
		rec := w.record(id).WhiskActivation
		want := activation.StatusSuccess
		if id == uncached {
			want = activation.StatusApplicationError
		}
		if rec.Response.StatusCode != want {
			t.Errorf("%s: status %d, want %d (%s)", id, rec.Response.StatusCode, want, rec.Response.Result)
		}
	}
	exactlyOneAck(t, w, append(during, uncached)...)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// TestKafkaBrokerRestart: the broker restarts while an activation runs; its ack goes out once
// the broker is back, and consumption resumes without redoing anything.
func TestKafkaBrokerRestart(t *testing.T) {
	w := newWorld(t, false)
	gate := filepath.Join(t.TempDir(), "open")
	p := w.process()
	stop := run(p)
	before := aid(300)
	w.invoke("echo", before, true, nil, nil)
	w.waitAcks(before, 2)

	held := aid(301)
	w.invoke("gate", held, false, map[string]any{"gate": gate}, nil)
	waitInFlight(t, p, 1)
	w.kafka.Restart()
	if err := os.WriteFile(gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	w.waitAcks(held, 1)
	after := aid(302)
	w.invoke("echo", after, true, nil, nil)
	w.waitAcks(after, 2)
	w.record(held)
	w.record(after)
	// A ResultMessage and a CompletionMessage for the blocking ones, one Completion for held.
	recs := w.acks.all()
	for id, n := range map[string]int{before: 2, held: 1, after: 2} {
		if got := len(acksFor(t, recs, id)); got != n {
			t.Errorf("activation %s: %d acks, want %d", id, got, n)
		}
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// TestTooLargeAckIsResentShrunk: Kafka refuses an ack as too large; it is sent again with the
// response reduced to the activation id (the controller then reads the record from CouchDB).
func TestTooLargeAckIsResentShrunk(t *testing.T) {
	w := newWorld(t, false)
	p := w.processWith(Options{AckMaxBytes: 4000})
	stop := run(p)
	id := aid(400)
	w.invoke("echo", id, true, map[string]any{"big": strings.Repeat("x", 5000)}, nil)
	acks := w.waitAcks(id, 2)
	if acks[0].Kind != activation.ResultAck || acks[0].Response.Activation != nil || string(acks[0].Response.ID) != id {
		t.Fatalf("result ack = %+v; want it shrunk to the activation id", acks[0])
	}
	if acks[1].Kind != activation.CompletionAck {
		t.Fatalf("second ack = %v, want completion", acks[1].Kind)
	}
	rec := w.record(id).WhiskActivation
	if !strings.Contains(string(rec.Response.Result), strings.Repeat("x", 5000)) {
		t.Fatal("the stored record lacks the full result")
	}
	if body := get(t, "http://"+p.Addr()+"/metrics"); !strings.Contains(body, `snapinvoker_acks_total{kind="result",shrunk="true"} 1`) {
		t.Fatalf("metrics do not count the shrunk result ack:\n%s", grep(body, "acks_total"))
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}
