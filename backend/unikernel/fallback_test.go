package unikernel

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/snapinvoker/snapinvoker/backend"
	"github.com/snapinvoker/snapinvoker/backend/backendtest"
	"github.com/snapinvoker/snapinvoker/backend/backendtest/procdriver"
)

// TestContainerlessFallback: an action that needs what the guest lacks is answered with
// ErrUnsupported by the unikernel driver, re-run on the next driver of the set (here the
// process driver, a real host-process driver standing where the container driver would), and
// remembered for it.
func TestContainerlessFallback(t *testing.T) {
	requireKVM(t)
	reg := backend.NewRegistry()
	if err := reg.Register(Name, Registration()); err != nil {
		t.Fatal(err)
	}
	if err := reg.Register(procdriver.Name, procdriver.Registration()); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	set, err := backend.OpenSet(ctx, backend.SetConfig{Registry: reg, Logger: zaptest.NewLogger(t), DataDir: t.TempDir(),
		Order: map[string][]string{"blackbox": {Name, procdriver.Name}}})
	if err != nil {
		t.Fatal(err)
	}
	defer set.Close()
	for _, c := range []struct {
		program, cause string
		atInit         bool
	}{
		// glibc's fork is the clone system call; socket (41) is refused with ENOSYS.
		{"forkinit", "clone", true},
		{"unsupported", "clone", false},
		{"socket", "enosys:", false},
	} {
		t.Run(c.program, func(t *testing.T) {
			s := newSample(t, c.program, 64<<20)
			uk, _ := set.Driver(Name)
			before := uk.(*Driver).Stats()
			d, err := set.Pick(s.action)
			if err != nil || d.Name() != Name {
				t.Fatalf("Pick: %v %v, want the unikernel driver first", d, err)
			}
			res, err := activate(t, d, s)
			if !errors.Is(err, backend.ErrUnsupported) {
				t.Fatalf("unikernel: %v %+v, want ErrUnsupported", err, res.Outcome)
			}
			if atInit := strings.Contains(err.Error(), "init of"); atInit != c.atInit {
				t.Errorf("refused at init = %v, want %v: %v", atInit, c.atInit, err)
			}
			next, err := set.Fallback(s.action, Name, err)
			if err != nil || next.Name() != procdriver.Name {
				t.Fatalf("Fallback: %v %v", next, err)
			}
			res, err = activate(t, next, s)
			if err != nil || res.Outcome.Status != 200 {
				t.Fatalf("re-run on %s: %v %+v", next.Name(), err, res.Outcome)
			}
			if again, _ := set.Pick(s.action); again.Name() != procdriver.Name {
				t.Errorf("the action is not remembered for %s after the fallback", procdriver.Name)
			}
			after := uk.(*Driver).Stats()
			counted := int64(0)
			for cause, n := range after.UnsupportedBy {
				if strings.HasPrefix(cause, c.cause) {
					counted += n - before.UnsupportedBy[cause]
				}
			}
			if after.Unsupported-before.Unsupported != 1 || counted != 1 {
				t.Errorf("counted %d unsupported, %d of them under %q (all: %v); want 1 and 1",
					after.Unsupported-before.Unsupported, counted, c.cause, after.UnsupportedBy)
			}
		})
	}
}

// activate starts, initialises and runs s once on d.
func activate(t *testing.T, d backend.Driver, s sample) (backend.Result, error) {
	ctx := context.Background()
	inst, err := d.Start(ctx, s.spec())
	if err != nil {
		return backend.Result{}, err
	}
	defer inst.Destroy(ctx)
	res, err := inst.Init(ctx, backend.InitRequest{Action: s.action, Body: backendtest.InitBody(s.action.Name, s.code, nil), Deadline: time.Now().Add(time.Minute)})
	if err != nil || !backendtest.Initialized(res.Outcome) {
		return res, err
	}
	return run(t, inst, s, map[string]any{})
}

// TestReadyGuestsExpire: a ready guest unused for the TTL is closed, and with it the function's
// open snapshot.
func TestReadyGuestsExpire(t *testing.T) {
	d := newDriver(t, "", map[string]string{"ready-ttl": "1m"})
	defer d.Close()
	now := time.Now()
	d.mu.Lock()
	d.now = func() time.Time { return now }
	d.mu.Unlock()
	s := newSample(t, "echo", 64<<20)
	inst := start(t, d, s)
	mustInit(t, inst, s)
	inst.Destroy(context.Background())
	if st := d.Stats(); st.ReadyGuests != 1 || st.ReadyBytes <= 0 || st.Functions != 1 {
		t.Fatalf("after Destroy: %d ready guests of %d bytes, %d functions; want 1, > 0, 1", st.ReadyGuests, st.ReadyBytes, st.Functions)
	}
	d.expireReady()
	if st := d.Stats(); st.ReadyGuests != 1 {
		t.Fatalf("expired a ready guest before its TTL")
	}
	d.mu.Lock()
	d.now = func() time.Time { return now.Add(time.Minute) }
	d.mu.Unlock()
	d.expireReady()
	if st := d.Stats(); st.ReadyGuests != 0 || st.ReadyBytes != 0 || st.Functions != 0 {
		t.Fatalf("after the TTL: %d ready guests of %d bytes, %d functions; want none", st.ReadyGuests, st.ReadyBytes, st.Functions)
	}
	// The snapshot is still cached: the next Start restores it.
	if again := start(t, d, s); !again.(backend.Restorer).Restored() {
		t.Fatal("the function snapshot was lost with its ready guests")
	}
}
