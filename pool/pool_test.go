package pool_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/snapinvoker/snapinvoker/activation"
	"github.com/snapinvoker/snapinvoker/backend"
	"github.com/snapinvoker/snapinvoker/backend/backendtest"
	"github.com/snapinvoker/snapinvoker/backend/backendtest/procdriver"
	"github.com/snapinvoker/snapinvoker/pool"
)

// These tests drive a Pool over a real driver: procdriver runs native actionloop executables
// built from C with gcc as host processes.

const mb = 1 << 20

var (
	buildOnce sync.Once
	built     map[string]backendtest.Code
	buildErr  error
)

func sample(t *testing.T, name string) backendtest.Code {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := mkdirTemp()
		if err != nil {
			buildErr = err
			return
		}
		built = map[string]backendtest.Code{}
		for _, n := range []string{"echo", "initfail", "sleep"} {
			exe, err := procdriver.BuildSample(dir, n)
			if err != nil {
				buildErr = err
				return
			}
			code, err := procdriver.EncodeExecutable(exe)
			if err != nil {
				buildErr = err
				return
			}
			built[n] = backendtest.Code{Code: code, Binary: true}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return built[name]
}

// refuser is a driver that runs nothing: every Start says ErrUnsupported, as a fast-path
// driver does for an action it cannot run.
type refuser struct{ starts int }

func (r *refuser) Name() string { return "refuser" }
func (r *refuser) Start(_ context.Context, spec backend.StartSpec) (backend.Instance, error) {
	r.starts++
	return nil, fmt.Errorf("refuser: kind %s: %w", spec.Kind, backend.ErrUnsupported)
}
func (r *refuser) Close() error { return nil }

type env struct {
	t    *testing.T
	set  *backend.Set
	pool *pool.Pool
	ref  *refuser

	mu     sync.Mutex
	stats  []pool.Stats
	change chan struct{}
	clock  time.Time
}

type setup struct {
	cfg      pool.Config
	refuser  bool // order blackbox: refuser, process
	fakeTime bool // the test moves the clock and calls Tick
}

func newEnv(t *testing.T, s setup) *env {
	t.Helper()
	e := &env{t: t, ref: &refuser{}, change: make(chan struct{}, 1), clock: time.Unix(1e9, 0)}
	reg := backend.NewRegistry()
	if err := reg.Register(procdriver.Name, procdriver.Registration()); err != nil {
		t.Fatal(err)
	}
	if err := reg.Register("refuser", backend.Registration{Kinds: []string{"blackbox"},
		New: func(context.Context, backend.Config) (backend.Driver, error) { return e.ref, nil }}); err != nil {
		t.Fatal(err)
	}
	order := map[string][]string{"blackbox": {procdriver.Name}}
	if s.refuser {
		order["blackbox"] = []string{"refuser", procdriver.Name}
	}
	set, err := backend.OpenSet(context.Background(), backend.SetConfig{Registry: reg, Order: order,
		Logger: zaptest.NewLogger(t), DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	e.set = set
	opts := pool.Options{Selector: set, Logger: zaptest.NewLogger(t), OnCapacity: e.onCapacity}
	if s.fakeTime {
		opts.Now = e.now
		opts.TickEvery = -1
	}
	p, err := pool.New(s.cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	e.pool = p
	t.Cleanup(func() {
		if err := p.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
		_ = set.Close()
	})
	return e
}

func (e *env) now() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.clock
}

func (e *env) advance(d time.Duration) {
	e.mu.Lock()
	e.clock = e.clock.Add(d)
	e.mu.Unlock()
}

func (e *env) onCapacity(s pool.Stats) {
	e.mu.Lock()
	e.stats = append(e.stats, s)
	e.mu.Unlock()
	select {
	case e.change <- struct{}{}:
	default:
	}
}

// waitFor blocks until cond holds, checking at every capacity change and every few
// milliseconds (cond may watch a driver, which reports nothing); after a minute it fails.
func (e *env) waitFor(what string, cond func(pool.Stats) bool) {
	e.t.Helper()
	poll := time.NewTicker(5 * time.Millisecond)
	defer poll.Stop()
	limit := time.After(time.Minute)
	for !cond(e.pool.Stats()) {
		select {
		case <-e.change:
		case <-poll.C:
		case <-limit:
			e.t.Fatalf("waiting for %s: stats %+v", what, e.pool.Stats())
		}
	}
}

func request(name string, code backendtest.Code, value map[string]any, timeout time.Duration) pool.Request {
	a := backend.Action{Kind: "blackbox", Native: true, Namespace: "guest", Name: "guest/" + name,
		DocID: "guest/" + name, Revision: "1-a", Version: "0.0.1", Memory: 256 * mb, Timeout: timeout,
		LogLimit: 1 << 20, Concurrency: 1}
	id := backendtest.NewActivationID()
	return pool.Request{
		Key:    pool.ActionKey{Namespace: "guest", Action: a.Name, Version: a.Version, Digest: name},
		Action: a,
		MakeInit: func(now time.Time) backend.InitRequest {
			// Deadlines are wall-clock even when the test moves the pool's clock.
			return backend.InitRequest{Action: a, Deadline: time.Now().Add(time.Minute),
				Body: backendtest.InitBody(name, code, map[string]string{"__OW_ACTIVATION_ID": id})}
		},
		MakeRun: func(now time.Time) backend.RunRequest {
			d := time.Now().Add(timeout)
			return backend.RunRequest{ActivationID: id, Body: backendtest.RunBody(a, value, id, d), Deadline: d,
				LogLimit: a.LogLimit, MaxResponse: 1 << 20}
		},
		ActivationID: id, TransactionID: "tid-" + id[:8],
	}
}

func mustEcho(t *testing.T, res pool.Result, err error, marker string) {
	t.Helper()
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if res.Run == nil || res.Run.Outcome.Status != 200 || !bytes.Contains(res.Run.Outcome.Body, []byte(marker)) {
		t.Fatalf("want an echo of %s, got %+v", marker, res.Run)
	}
}

func TestPoolColdThenWarm(t *testing.T) {
	e := newEnv(t, setup{cfg: pool.Config{UserMemory: 1024 * mb}})
	ctx := context.Background()
	res, err := e.pool.Run(ctx, request("echo", sample(t, "echo"), map[string]any{"n": "first"}, time.Minute))
	mustEcho(t, res, err, "first")
	if res.Start != pool.Cold || res.Init == nil || !backendtest.Initialized(res.Init.Outcome) {
		t.Fatalf("first run: start %s, init %+v; want cold with a successful init", res.Start, res.Init)
	}
	if res.Driver != procdriver.Name || res.Instance == "" || res.Dispatched.Before(res.Submitted) {
		t.Errorf("first run: driver %q instance %q submitted %v dispatched %v", res.Driver, res.Instance, res.Submitted, res.Dispatched)
	}
	first := res.Instance
	res, err = e.pool.Run(ctx, request("echo", sample(t, "echo"), map[string]any{"n": "second"}, time.Minute))
	mustEcho(t, res, err, "second")
	if res.Start != pool.Warm || res.Init != nil || res.Instance != first {
		t.Fatalf("second run: start %s on %s (init %v); want warm on %s without init", res.Start, res.Instance, res.Init, first)
	}
	if st := e.pool.Stats(); st.Instances != 1 || st.Idle != 1 || st.InUse != 256*mb || st.Running != 0 {
		t.Errorf("stats after two runs: %+v", st)
	}
}

func TestPoolConcurrentRunsBufferedUnderMemory(t *testing.T) {
	// Room for two instances; eight runs of two actions at once: all complete, memory in use
	// never exceeds the limit, and no run is lost or answered twice.
	e := newEnv(t, setup{cfg: pool.Config{UserMemory: 512 * mb}})
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := fmt.Sprintf("run-%d-%s", i, backendtest.NewActivationID()[:6])
			res, err := e.pool.Run(context.Background(), request(fmt.Sprintf("echo%d", i%3), sample(t, "echo"), map[string]any{"m": m}, time.Minute))
			if err == nil && (res.Run == nil || !bytes.Contains(res.Run.Outcome.Body, []byte(m))) {
				err = fmt.Errorf("run %d: answer %+v does not carry %s", i, res.Run, m)
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	buffered := false
	for _, s := range e.stats {
		if s.InUse > 512*mb {
			t.Errorf("memory in use %d above the limit", s.InUse)
		}
		buffered = buffered || s.Buffered > 0
	}
	if !buffered {
		t.Errorf("eight runs of three actions in room for two instances never waited in the buffer")
	}
}

func TestPoolInitFailureDestroysInstance(t *testing.T) {
	e := newEnv(t, setup{cfg: pool.Config{UserMemory: 1024 * mb}})
	res, err := e.pool.Run(context.Background(), request("initfail", sample(t, "initfail"), nil, time.Minute))
	if err != nil {
		t.Fatalf("an action failing in init is an outcome, not an error: %v", err)
	}
	if res.Init == nil || backendtest.Initialized(res.Init.Outcome) || res.Run != nil {
		t.Fatalf("want a failed init and no run, got init %+v run %+v", res.Init, res.Run)
	}
	e.waitFor("the failed instance to be removed", func(s pool.Stats) bool { return s.Instances == 0 && s.InUse == 0 })
}

func TestPoolTimeoutDestroysInstance(t *testing.T) {
	e := newEnv(t, setup{cfg: pool.Config{UserMemory: 1024 * mb}})
	res, err := e.pool.Run(context.Background(), request("sleep", sample(t, "sleep"), map[string]any{"ms": 600000}, time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if res.Run == nil || res.Run.Outcome.Failure != activation.FailureTimeout {
		t.Fatalf("want a timeout, got %+v", res.Run)
	}
	e.waitFor("the timed-out instance to be removed", func(s pool.Stats) bool { return s.Instances == 0 })
	// The next run of the action starts fresh.
	res, err = e.pool.Run(context.Background(), request("sleep", sample(t, "sleep"), map[string]any{"ms": 1}, time.Minute))
	if err != nil || res.Start != pool.Cold || res.Run == nil || res.Run.Outcome.Status != 200 {
		t.Fatalf("run after a timeout: %v %+v", err, res)
	}
}

func TestPoolFallback(t *testing.T) {
	e := newEnv(t, setup{cfg: pool.Config{UserMemory: 1024 * mb}, refuser: true})
	res, err := e.pool.Run(context.Background(), request("echo", sample(t, "echo"), map[string]any{"x": "fb"}, time.Minute))
	mustEcho(t, res, err, "fb")
	if res.Driver != procdriver.Name || res.Fallbacks != 1 || e.set.Fallbacks() != 1 || e.ref.starts != 1 {
		t.Fatalf("want one fallback to %s, got driver %s fallbacks %d (set %d, refuser starts %d)",
			procdriver.Name, res.Driver, res.Fallbacks, e.set.Fallbacks(), e.ref.starts)
	}
	// The action is remembered for the process driver: no second refusal.
	res, err = e.pool.Run(context.Background(), request("echo", sample(t, "echo"), map[string]any{"x": "again"}, time.Minute))
	mustEcho(t, res, err, "again")
	if res.Fallbacks != 0 || e.ref.starts != 1 || res.Start != pool.Warm {
		t.Fatalf("second run: fallbacks %d, refuser starts %d, start %s", res.Fallbacks, e.ref.starts, res.Start)
	}
}

func TestPoolNoDriverLeft(t *testing.T) {
	e := newEnv(t, setup{cfg: pool.Config{UserMemory: 1024 * mb}})
	req := request("echo", sample(t, "echo"), nil, time.Minute)
	req.Action.Kind = "python:3.11" // only blackbox drivers exist
	if _, err := e.pool.Run(context.Background(), req); !errors.Is(err, backend.ErrNoDriver) {
		t.Fatalf("err = %v, want ErrNoDriver", err)
	}
}

func TestPoolPrewarm(t *testing.T) {
	e := newEnv(t, setup{cfg: pool.Config{UserMemory: 1024 * mb,
		StemCells: []pool.StemCell{{Kind: "blackbox", Memory: 256 * mb, InitialCount: 1}}}})
	e.waitFor("the stem cell to start", func(s pool.Stats) bool { return s.Prewarmed == 1 && s.Starting == 0 })
	res, err := e.pool.Run(context.Background(), request("echo", sample(t, "echo"), map[string]any{"p": "stemcell"}, time.Minute))
	mustEcho(t, res, err, "stemcell")
	if res.Start != pool.Prewarmed || res.Init == nil {
		t.Fatalf("want a prewarmed start with init, got %s", res.Start)
	}
	// A replacement stem cell was started.
	e.waitFor("a replacement stem cell", func(s pool.Stats) bool { return s.Prewarmed == 1 && s.Starting == 0 && s.Instances == 2 })
}

func TestPoolCancelWhileBuffered(t *testing.T) {
	e := newEnv(t, setup{cfg: pool.Config{UserMemory: 256 * mb}})
	slow := make(chan error, 1)
	go func() {
		res, err := e.pool.Run(context.Background(), request("sleep", sample(t, "sleep"), map[string]any{"ms": 600000}, 2*time.Second))
		if err == nil && (res.Run == nil || res.Run.Outcome.Failure != activation.FailureTimeout) {
			err = fmt.Errorf("want a timeout, got %+v", res.Run)
		}
		slow <- err
	}()
	e.waitFor("the sleeper to run", func(s pool.Stats) bool { return s.Running == 1 })
	ctx, cancel := context.WithCancel(context.Background())
	waited := make(chan error, 1)
	go func() {
		_, err := e.pool.Run(ctx, request("echo", sample(t, "echo"), nil, time.Minute))
		waited <- err
	}()
	e.waitFor("the echo to be buffered", func(s pool.Stats) bool { return s.Buffered == 1 })
	cancel()
	if err := <-waited; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled buffered run: err = %v, want context.Canceled", err)
	}
	if st := e.pool.Stats(); st.Buffered != 0 {
		t.Errorf("buffer after cancel: %+v", st)
	}
	if err := <-slow; err != nil {
		t.Fatal(err)
	}
}

func TestPoolIdleReclaimAndPause(t *testing.T) {
	e := newEnv(t, setup{fakeTime: true, cfg: pool.Config{UserMemory: 1024 * mb, PauseGrace: 10 * time.Second, IdleTimeout: 10 * time.Minute}})
	res, err := e.pool.Run(context.Background(), request("echo", sample(t, "echo"), map[string]any{"a": "one"}, time.Minute))
	mustEcho(t, res, err, "one")
	e.advance(11 * time.Second)
	e.pool.Tick() // pauses the idle instance (SIGSTOP)
	// A paused instance does not answer; the warm run must resume it first.
	res, err = e.pool.Run(context.Background(), request("echo", sample(t, "echo"), map[string]any{"a": "two"}, 30*time.Second))
	mustEcho(t, res, err, "two")
	if res.Start != pool.Warm {
		t.Fatalf("run after pause: start %s, want warm", res.Start)
	}
	e.advance(11 * time.Minute)
	e.pool.Tick()
	if st := e.pool.Stats(); st.Instances != 0 || st.InUse != 0 {
		t.Fatalf("after the idle timeout: %+v, want no instances", st)
	}
}

func TestPoolRejects(t *testing.T) {
	e := newEnv(t, setup{cfg: pool.Config{UserMemory: 512 * mb}})
	big := request("echo", sample(t, "echo"), nil, time.Minute)
	big.Action.Memory = 1024 * mb
	if _, err := e.pool.Run(context.Background(), big); !errors.Is(err, pool.ErrTooBig) {
		t.Errorf("1 GB action in a 512 MB pool: err = %v, want ErrTooBig", err)
	}
	for field, mut := range map[string]func(*pool.Request){
		"Action.Kind":   func(r *pool.Request) { r.Action.Kind = "" },
		"Action.Memory": func(r *pool.Request) { r.Action.Memory = 0 },
		"Key.Action":    func(r *pool.Request) { r.Key.Action = "" },
		"MakeInit":      func(r *pool.Request) { r.MakeInit = nil },
	} {
		r := request("echo", sample(t, "echo"), nil, time.Minute)
		mut(&r)
		if _, err := e.pool.Run(context.Background(), r); !errors.Is(err, pool.ErrInvalidRequest) || !strings.Contains(err.Error(), field) {
			t.Errorf("bad %s: err = %v, want ErrInvalidRequest naming it", field, err)
		}
	}
	if err := e.pool.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := e.pool.Run(context.Background(), request("echo", sample(t, "echo"), nil, time.Minute)); !errors.Is(err, pool.ErrClosed) {
		t.Errorf("Run after Close: err = %v, want ErrClosed", err)
	}
}
