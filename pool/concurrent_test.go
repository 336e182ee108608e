package pool_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/snapinvoker/snapinvoker/activation"
	"github.com/snapinvoker/snapinvoker/backend"
	"github.com/snapinvoker/snapinvoker/backend/backendtest"
	"github.com/snapinvoker/snapinvoker/pool"
)

// gateDriver is a small in-process driver whose instances accept four runs at once
// (backend.Concurrent), which no real driver here offers yet. Its /init parses the body and
// waits for the test to open the gate; a code of "fail" fails the init. /run answers the run
// body's value.
type gateDriver struct {
	gate   chan struct{}
	starts atomic.Int32
	inits  atomic.Int32
	mu     sync.Mutex
	active map[string]int // runs in progress per instance
	peak   int
}

func (d *gateDriver) Name() string { return "gate" }
func (d *gateDriver) Close() error { return nil }
func (d *gateDriver) Start(_ context.Context, spec backend.StartSpec) (backend.Instance, error) {
	n := d.starts.Add(1)
	return &gateInstance{d: d, id: fmt.Sprintf("gate-%d", n)}, nil
}

type gateInstance struct {
	d         *gateDriver
	id        string
	destroyed atomic.Bool
}

func (i *gateInstance) ID() string          { return i.id }
func (i *gateInstance) MaxConcurrency() int { return 4 }
func (i *gateInstance) Destroy(context.Context) error {
	i.destroyed.Store(true)
	return nil
}

func (i *gateInstance) Init(ctx context.Context, req backend.InitRequest) (backend.Result, error) {
	start := time.Now()
	i.d.inits.Add(1)
	select {
	case <-i.d.gate:
	case <-ctx.Done():
		return backend.Result{}, fmt.Errorf("gate: %w: %w", backend.ErrPlatform, ctx.Err())
	}
	var body struct {
		Value struct {
			Code string `json:"code"`
		} `json:"value"`
	}
	if err := json.Unmarshal(req.Body, &body); err != nil || body.Value.Code == "fail" {
		b := []byte(`{"error":"init failed"}`)
		return backend.Result{Outcome: activation.RuntimeOutcome{Status: 502, Body: b, Length: len(b), Start: start, End: time.Now()}}, nil
	}
	b := []byte(`{"ok":true}`)
	return backend.Result{Outcome: activation.RuntimeOutcome{Status: 200, Body: b, Length: len(b), Start: start, End: time.Now()}}, nil
}

func (i *gateInstance) Run(ctx context.Context, req backend.RunRequest) (backend.Result, error) {
	start := time.Now()
	if i.destroyed.Load() {
		return backend.Result{}, fmt.Errorf("gate: %s destroyed: %w", i.id, backend.ErrPlatform)
	}
	i.d.mu.Lock()
	i.d.active[i.id]++
	i.d.peak = max(i.d.peak, i.d.active[i.id])
	i.d.mu.Unlock()
	defer func() {
		i.d.mu.Lock()
		i.d.active[i.id]--
		i.d.mu.Unlock()
	}()
	var body struct {
		Value json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(req.Body, &body); err != nil {
		return backend.Result{}, fmt.Errorf("gate: run body: %w: %w", backend.ErrPlatform, err)
	}
	return backend.Result{Outcome: activation.RuntimeOutcome{Status: 200, Body: body.Value, Length: len(body.Value), Start: start, End: time.Now()}}, nil
}

func newGatePool(t *testing.T) (*pool.Pool, *gateDriver, *env) {
	t.Helper()
	d := &gateDriver{gate: make(chan struct{}), active: map[string]int{}}
	reg := backend.NewRegistry()
	if err := reg.Register("gate", backend.Registration{Kinds: []string{"*"},
		New: func(context.Context, backend.Config) (backend.Driver, error) { return d, nil }}); err != nil {
		t.Fatal(err)
	}
	set, err := backend.OpenSet(context.Background(), backend.SetConfig{Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, change: make(chan struct{}, 1)}
	p, err := pool.New(pool.Config{UserMemory: 512 * mb}, pool.Options{Selector: set, Logger: zaptest.NewLogger(t), OnCapacity: e.onCapacity})
	if err != nil {
		t.Fatal(err)
	}
	e.pool = p
	t.Cleanup(func() {
		// A failed test may leave an /init waiting on the gate, which Destroy does not end.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = p.Close(ctx)
	})
	return p, d, e
}

func gateRequest(code string, conc int, value string) pool.Request {
	r := request("conc", backendtest.Code{Code: code}, map[string]any{"v": value}, time.Minute)
	r.Action.Kind = "nodejs:20"
	r.Action.Concurrency = conc
	return r
}

type outcome struct {
	res pool.Result
	err error
}

func runAsync(p *pool.Pool, r pool.Request) chan outcome {
	ch := make(chan outcome, 1)
	go func() {
		res, err := p.Run(context.Background(), r)
		ch <- outcome{res, err}
	}()
	return ch
}

// Runs of an action with concurrency 4 join its instance while the first run initialises it
// (warmingCold), then share it: one instance, one /init, memory charged once.
func TestPoolConcurrentInstanceShared(t *testing.T) {
	p, d, e := newGatePool(t)
	first := runAsync(p, gateRequest("ok", 4, "r0"))
	e.waitFor("the first /init to begin", func(pool.Stats) bool { return d.inits.Load() == 1 })
	var rest []chan outcome
	for i := 1; i < 4; i++ {
		rest = append(rest, runAsync(p, gateRequest("ok", 4, fmt.Sprint("r", i))))
	}
	e.waitFor("three runs to join", func(s pool.Stats) bool { return s.Running == 4 })
	close(d.gate)
	o := <-first
	if o.err != nil || o.res.Start != pool.Cold || o.res.Init == nil || string(o.res.Run.Outcome.Body) != `{"v":"r0"}` {
		t.Fatalf("first run: %v %+v", o.err, o.res)
	}
	for i, ch := range rest {
		o := <-ch
		if o.err != nil || o.res.Start != pool.WarmingCold || o.res.Init != nil || string(o.res.Run.Outcome.Body) != fmt.Sprintf(`{"v":"r%d"}`, i+1) {
			t.Fatalf("joined run %d: %v start %s init %v run %+v", i+1, o.err, o.res.Start, o.res.Init, o.res.Run)
		}
	}
	if n := d.starts.Load(); n != 1 {
		t.Errorf("%d instances started, want 1", n)
	}
	if st := p.Stats(); st.InUse != 256*mb || st.Instances != 1 {
		t.Errorf("stats: %+v, want one instance charged once", st)
	}
	// Eight more at once: at most four on the instance at a time, the others on a second
	// instance (memory allows two).
	var chs []chan outcome
	for i := 0; i < 8; i++ {
		chs = append(chs, runAsync(p, gateRequest("ok", 4, fmt.Sprint("s", i))))
	}
	for _, ch := range chs {
		if o := <-ch; o.err != nil || o.res.Run == nil || o.res.Run.Outcome.Status != 200 {
			t.Fatalf("run: %v %+v", o.err, o.res)
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.peak > 4 {
		t.Errorf("an instance ran %d runs at once, its maximum is 4", d.peak)
	}
}

// When the shared /init fails, the runs that joined the instance end with that same init
// result and no run, and the instance is destroyed.
func TestPoolConcurrentInitFailureAbortsJoined(t *testing.T) {
	p, d, e := newGatePool(t)
	first := runAsync(p, gateRequest("fail", 4, "r0"))
	e.waitFor("the first /init to begin", func(pool.Stats) bool { return d.inits.Load() == 1 })
	second := runAsync(p, gateRequest("fail", 4, "r1"))
	e.waitFor("the second run to join", func(s pool.Stats) bool { return s.Running == 2 })
	close(d.gate)
	for i, ch := range []chan outcome{first, second} {
		o := <-ch
		if o.err != nil || o.res.Init == nil || o.res.Init.Outcome.Status != 502 || o.res.Run != nil {
			t.Fatalf("run %d: %v init %+v run %+v; want the failed init and no run", i, o.err, o.res.Init, o.res.Run)
		}
	}
	e.waitFor("the instance to be removed", func(s pool.Stats) bool { return s.Instances == 0 && s.InUse == 0 })
	if n := d.inits.Load(); n != 1 {
		t.Errorf("%d /init calls, want 1", n)
	}
}
