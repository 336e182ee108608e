package health

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/snapinvoker/snapinvoker/activation"
)

type recorder struct {
	mu    sync.Mutex
	pings []activation.PingMessage
	fail  bool
}

func (r *recorder) send(_ context.Context, v []byte) error {
	p, err := activation.DecodePing(v)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail {
		return errors.New("broker down")
	}
	r.pings = append(r.pings, *p)
	return nil
}

func (r *recorder) states() []bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	var s []bool
	for _, p := range r.pings {
		s = append(s, p.Enabled())
	}
	return s
}

func TestPingerEnableDisable(t *testing.T) {
	id := activation.InvokerInstanceID{Instance: 3, UniqueName: "3", UserMemory: activation.SizeBytes(2 << 30)}
	rec := &recorder{}
	p := New(id, rec.send, time.Second, nil)
	ticks := make(chan time.Time)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.RunTicks(ctx, ticks); close(done) }()
	// Each tick is received only after the previous iteration's ping was sent, so two ticks
	// guarantee the first one's ping is recorded.
	tick := func() { ticks <- time.Time{} }
	tick()
	tick()
	if got := rec.states(); len(got) < 2 || !got[0] || !got[1] {
		t.Fatalf("pings while enabled = %v, want enabled pings", got)
	}
	if changed, err := p.Disable(ctx); !changed || err != nil {
		t.Fatalf("Disable = %v, %v", changed, err)
	}
	n := len(rec.states())
	tick()
	tick()
	got := rec.states()
	if len(got) != n || got[n-1] {
		t.Fatalf("after Disable pings = %v, want exactly one more, disabled, and then none", got)
	}
	if changed, _ := p.Disable(ctx); changed {
		t.Fatal("second Disable reported a change")
	}
	if !p.Enable() || p.Enable() {
		t.Fatal("Enable should change the state once")
	}
	tick()
	tick()
	if got := rec.states(); !got[len(got)-1] || len(got) < n+2 {
		t.Fatalf("after Enable pings = %v, want enabled pings again", got)
	}
	// The pinger names the instance under "name".
	rec.mu.Lock()
	if rec.pings[0].Instance.Instance != 3 || rec.pings[0].Instance.UserMemory.Bytes() != 2<<30 {
		t.Errorf("ping instance = %+v", rec.pings[0].Instance)
	}
	rec.mu.Unlock()
	// A failing broker does not stop the pinger.
	rec.mu.Lock()
	rec.fail = true
	rec.mu.Unlock()
	tick()
	rec.mu.Lock()
	rec.fail = false
	rec.mu.Unlock()
	before := len(rec.states())
	tick()
	tick()
	if len(rec.states()) <= before {
		t.Fatal("pinger stopped after a failed send")
	}
	cancel()
	<-done
}
