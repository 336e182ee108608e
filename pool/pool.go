package pool

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/snapinvoker/snapinvoker/activation"
	"github.com/snapinvoker/snapinvoker/backend"
)

// Request is one run the invoker asks the pool for.
type Request struct {
	// Key decides warm reuse (see ActionKey).
	Key ActionKey
	// Action is what the driver learns about the action; Kind, Memory (> 0) and Name are
	// required. Concurrency is limits.concurrency.
	Action backend.Action
	// MakeInit builds the /init request at the moment it is sent, so its deadline and
	// __OW_DEADLINE are that moment plus the timeout (spec errata 3). Called at most once.
	MakeInit func(now time.Time) backend.InitRequest
	// MakeRun builds the /run request at the moment it is sent. Called at most once per
	// driver tried.
	MakeRun func(now time.Time) backend.RunRequest
	// Keep says whether the instance may serve more runs after this one; nil means
	// KeepDefault. The invoker passes a rule that also destroys the instance after a developer
	// error (which needs the activation rules' classification).
	Keep func(run backend.Result) bool
	// ActivationID and TransactionID are for log lines only.
	ActivationID, TransactionID string
}

// KeepDefault keeps an instance whose run was answered with status 200 and whose logs were
// complete (spec §6: truncated logs, timeouts, exits and errors destroy the container).
func KeepDefault(run backend.Result) bool {
	return run.Outcome.Failure == activation.NoFailure && run.Outcome.Status == 200 && !run.LogsTruncated
}

// Result is what happened to one run.
type Result struct {
	// Start says how the run found its instance: the invoker reports initTime only for Cold,
	// Prewarmed, Recreated, RecreatedPrewarm and Restored, which carry Init.
	Start StartKind
	// Driver and Instance name where it ran.
	Driver, Instance string
	// Init is the /init this run sent, or, when the run joined an instance whose /init failed,
	// that shared /init result (the run is aborted with it, Run is nil). Nil for warm runs.
	Init *backend.Result
	// Run is the /run result; nil when /init failed or the run never reached /run.
	Run *backend.Result
	// Submitted is when Run was called; Dispatched when the pool placed it on an instance
	// (the difference is time spent in the run buffer).
	Submitted, Dispatched time.Time
	// Fallbacks counts drivers that refused the action (ErrUnsupported) before this one.
	Fallbacks int
}

// Options wire a Pool to the rest of the process.
type Options struct {
	// Selector picks drivers and applies the fallback rule. Required.
	Selector backend.Selector
	// Logger gets one line per decision at debug level and failures at warn; nil: none.
	Logger *zap.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// TickEvery is how often the clock ticks into the Core (idle reclaim, pause, stem cell
	// checks); zero means one second, negative means never (tests call Tick).
	TickEvery time.Duration
	// OnCapacity is called with the new Stats whenever they change, from inside the pool's
	// lock: it must return quickly and must not call the Pool. The invoker's Kafka feed uses
	// it for back-pressure.
	OnCapacity func(Stats)
}

// Pool runs requests on instances the Core places them on, driving the drivers in goroutines.
// It is safe for concurrent use.
type Pool struct {
	opts Options
	log  *zap.Logger
	now  func() time.Time

	base    context.Context // for stem cell starts; cancelled by Close
	cancel  context.CancelFunc
	stop    chan struct{}
	wg      sync.WaitGroup
	drivers map[string]backend.Driver // stem cells' drivers by name

	mu      sync.Mutex
	core    *Core
	insts   map[InstanceID]*pinst
	jobs    map[JobID]*pjob
	nextJob JobID
	closed  bool
	last    Stats
}

// pinst is the I/O side of one instance.
type pinst struct {
	id  InstanceID
	drv backend.Driver

	started  chan struct{} // closed when Start returned; bi is set (nil if it failed)
	bi       backend.Instance
	restored bool
	initDone chan struct{} // closed when the first /init returned
	initRes  *backend.Result
	initErr  error
	tail     chan struct{} // end of the last control op (pause, resume, destroy); guarded by Pool.mu
	paused   bool          // touched only by control ops, which the tail chain serialises
}

// pjob is the I/O side of one request.
type pjob struct {
	id        JobID
	ctx       context.Context
	req       Request
	drv       backend.Driver
	start     StartKind
	submitted time.Time
	dispatch  time.Time
	fallbacks int
	done      chan struct{}
	res       Result
	err       error
}

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// New builds a Pool and starts its initial stem cells. A stem cell whose kind no driver runs
// is left out with a log line.
func New(cfg Config, opts Options) (*Pool, error) {
	if opts.Selector == nil {
		return nil, fmt.Errorf("pool: Options.Selector is nil: %w", ErrInvalidConfig)
	}
	p := &Pool{opts: opts, log: opts.Logger, now: opts.Now, stop: make(chan struct{}),
		drivers: map[string]backend.Driver{}, insts: map[InstanceID]*pinst{}, jobs: map[JobID]*pjob{}}
	if p.log == nil {
		p.log = zap.NewNop()
	}
	if p.now == nil {
		p.now = time.Now
	}
	cells := cfg.StemCells[:0:0]
	for _, sc := range cfg.StemCells {
		var drv backend.Driver
		for _, d := range opts.Selector.ForKind(sc.Kind) {
			if sc.Driver == "" || d.Name() == sc.Driver {
				drv = d
				break
			}
		}
		if drv == nil {
			p.log.Warn("stem cell left out: no available driver runs its kind",
				zap.String("kind", sc.Kind), zap.String("driver", sc.Driver))
			continue
		}
		sc.Driver = drv.Name()
		p.drivers[sc.Driver] = drv
		if sc.Charge == 0 {
			sc.Charge = charge(drv, backend.StartSpec{Kind: sc.Kind, Memory: sc.Memory})
		}
		cells = append(cells, sc)
	}
	cfg.StemCells = cells
	core, ds, err := NewCore(cfg, p.now())
	if err != nil {
		return nil, err
	}
	p.core = core
	p.base, p.cancel = context.WithCancel(context.Background())
	p.mu.Lock()
	p.exec(ds)
	p.report()
	p.mu.Unlock()
	every := opts.TickEvery
	if every == 0 {
		every = time.Second
	}
	if every > 0 {
		go p.ticker(every)
	}
	return p, nil
}

// charge asks a driver what an instance costs (backend.Charger), else limits.memory.
func charge(d backend.Driver, spec backend.StartSpec) int64 {
	if c, ok := d.(backend.Charger); ok {
		if v := c.MemoryCharge(spec); v > 0 {
			return v
		}
	}
	return spec.Memory
}

func (p *Pool) ticker(every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.Tick()
		}
	}
}

// Tick feeds the clock to the Core now (idle reclaim, pause, stem cell checks).
func (p *Pool) Tick() {
	p.event(func(now time.Time) []Decision { return p.core.Tick(now) })
}

// Stats returns the current accounting.
func (p *Pool) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.core.Stats()
}

// event runs one Core event and carries out its decisions under the lock.
func (p *Pool) event(fn func(now time.Time) []Decision) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.exec(fn(p.now()))
	p.report()
}

func (p *Pool) report() {
	st := p.core.Stats()
	if st != p.last {
		p.last = st
		if p.opts.OnCapacity != nil {
			p.opts.OnCapacity(st)
		}
	}
}

// validate checks a request; the error names the field.
func validate(req Request) error {
	switch {
	case req.Action.Kind == "":
		return fmt.Errorf("pool: request %s: Action.Kind is empty: %w", req.ActivationID, ErrInvalidRequest)
	case req.Action.Memory <= 0:
		return fmt.Errorf("pool: request %s: Action.Memory %d is not positive: %w", req.ActivationID, req.Action.Memory, ErrInvalidRequest)
	case req.Key.Action == "":
		return fmt.Errorf("pool: request %s: Key.Action is empty: %w", req.ActivationID, ErrInvalidRequest)
	case req.MakeInit == nil || req.MakeRun == nil:
		return fmt.Errorf("pool: request %s: MakeInit and MakeRun are required: %w", req.ActivationID, ErrInvalidRequest)
	case req.Action.Concurrency < 0:
		return fmt.Errorf("pool: request %s: Action.Concurrency %d is negative: %w", req.ActivationID, req.Action.Concurrency, ErrInvalidRequest)
	}
	return nil
}

// Run places the request, runs it and returns what happened. An action's own failure (init
// failure, timeout, bad response) is reported in Result with a nil error; the error is for
// requests that could not run: ErrInvalidRequest, ErrTooBig, ErrClosed, backend.ErrNoDriver,
// a driver error wrapping backend.ErrPlatform, or ctx's error when ctx ended while the run
// was still buffered (once on an instance, a run is finished, with ctx passed to the driver).
func (p *Pool) Run(ctx context.Context, req Request) (Result, error) {
	if err := validate(req); err != nil {
		return Result{}, err
	}
	drv, err := p.opts.Selector.Pick(req.Action)
	if err != nil {
		return Result{}, fmt.Errorf("pool: %s: %w", req.Action.Name, err)
	}
	pj := &pjob{ctx: ctx, req: req, drv: drv, submitted: p.now(), done: make(chan struct{})}
	p.mu.Lock()
	p.nextJob++
	pj.id = p.nextJob
	p.mu.Unlock()
	p.submit(pj, false)
	select {
	case <-pj.done:
	case <-ctx.Done():
		var cancelled bool
		p.event(func(now time.Time) []Decision {
			ok, ds := p.core.Cancel(now, pj.id)
			if ok {
				cancelled = true
				delete(p.jobs, pj.id)
			}
			return ds
		})
		if cancelled {
			return Result{Submitted: pj.submitted}, fmt.Errorf("pool: %s: activation %s: waiting for capacity: %w",
				req.Action.Name, req.ActivationID, ctx.Err())
		}
		<-pj.done
	}
	return pj.res, pj.err
}

// submit hands a job to the Core (again, with retry, after a fallback).
func (p *Pool) submit(pj *pjob, retry bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		p.finishLocked(pj, Result{}, fmt.Errorf("pool: %s: %w", pj.req.Action.Name, ErrClosed))
		return
	}
	a := pj.req.Action
	p.jobs[pj.id] = pj
	job := Job{
		ID: pj.id, Key: pj.req.Key, Kind: a.Kind, Memory: a.Memory,
		Charge:      charge(pj.drv, backend.StartSpec{Kind: a.Kind, Memory: a.Memory, Action: &a}),
		Concurrency: a.Concurrency, Driver: pj.drv.Name(), Retry: retry,
	}
	p.exec(p.core.Submit(p.now(), job))
	p.report()
}

// logFor returns the logger for lines about a job's activation.
func (p *Pool) logFor(pj *pjob) *zap.Logger {
	return p.log.With(zap.String("activationId", pj.req.ActivationID),
		zap.String("transactionId", pj.req.TransactionID), zap.String("action", pj.req.Action.Name))
}

// chain appends a control op to an instance's op chain: it returns the end of the previous
// op to wait for and the channel to close when this one ends. Called with p.mu held, so ops
// run in decision order.
func (p *Pool) chain(pi *pinst) (prev, mine chan struct{}) {
	prev, mine = pi.tail, make(chan struct{})
	pi.tail = mine
	return prev, mine
}

// exec carries out decisions; called with p.mu held. It never blocks: driver calls run in
// goroutines.
func (p *Pool) exec(ds []Decision) {
	now := p.now()
	for _, d := range ds {
		switch d.Op {
		case OpPrewarm:
			if p.closed {
				continue
			}
			pi := &pinst{id: d.Inst, drv: p.drivers[d.Driver], started: make(chan struct{}),
				initDone: make(chan struct{}), tail: closedChan}
			p.insts[d.Inst] = pi
			p.log.Debug("start stem cell", zap.Stringer("instance", d.Inst), zap.String("kind", d.Kind),
				zap.Int64("memory", d.Memory), zap.String("driver", d.Driver))
			p.wg.Add(1)
			go p.startStemCell(pi, d)
		case OpRun:
			pj := p.jobs[d.Job]
			if pj == nil {
				continue
			}
			pj.start, pj.dispatch = d.Start, now
			p.logFor(pj).Debug("run placed", zap.String("start", string(d.Start)), zap.Stringer("instance", d.Inst),
				zap.String("driver", pj.drv.Name()), zap.Bool("resume", d.Resume))
			if d.Start.NeedsStart() {
				pi := &pinst{id: d.Inst, drv: pj.drv, started: make(chan struct{}), initDone: make(chan struct{}), tail: closedChan}
				p.insts[d.Inst] = pi
				p.wg.Add(1)
				go p.coldRun(pj, pi)
				continue
			}
			pi := p.insts[d.Inst]
			if pi == nil {
				// The Core and this map change together under p.mu; only Close empties the map
				// early, and nothing is placed after Close. Fail the run rather than panic.
				p.finishLocked(pj, Result{}, fmt.Errorf("pool: %s: instance %s is gone: %w", pj.req.Action.Name, d.Inst, backend.ErrPlatform))
				id := pj.id
				p.wg.Add(1)
				go func() {
					defer p.wg.Done()
					p.event(func(now time.Time) []Decision { return p.core.Done(now, id, false) })
				}()
				continue
			}
			prev, mine := p.chain(pi)
			p.wg.Add(1)
			go p.runOn(pj, pi, prev, mine)
		case OpRemove:
			pi := p.insts[d.Inst]
			if pi == nil {
				continue
			}
			delete(p.insts, d.Inst)
			p.log.Debug("remove instance", zap.Stringer("instance", d.Inst), zap.String("reason", d.Reason))
			prev, mine := p.chain(pi)
			p.wg.Add(1)
			go p.destroy(pi, prev, mine)
		case OpPause:
			if pi := p.insts[d.Inst]; pi != nil {
				prev, mine := p.chain(pi)
				p.wg.Add(1)
				go p.pause(pi, prev, mine)
			}
		case OpBuffer:
			if pj := p.jobs[d.Job]; pj != nil {
				p.logFor(pj).Debug("run buffered")
			}
		case OpReject:
			if pj := p.jobs[d.Job]; pj != nil {
				err := fmt.Errorf("pool: %s: needs %d bytes, the pool has %d: %w", pj.req.Action.Name,
					pj.req.Action.Memory, p.core.cfg.UserMemory, ErrTooBig)
				if d.Reason != "too-big" {
					err = fmt.Errorf("pool: %s: rejected (%s): %w", pj.req.Action.Name, d.Reason, ErrInvalidRequest)
				}
				p.finishLocked(pj, Result{}, err)
			}
		}
	}
}

func (p *Pool) startStemCell(pi *pinst, d Decision) {
	defer p.wg.Done()
	bi, err := pi.drv.Start(p.base, backend.StartSpec{Kind: d.Kind, Memory: d.Memory})
	pi.bi = bi
	close(pi.started)
	if err != nil {
		p.log.Warn("stem cell failed to start", zap.Stringer("instance", pi.id), zap.String("kind", d.Kind),
			zap.String("driver", pi.drv.Name()), zap.Error(err))
		p.event(func(now time.Time) []Decision { return p.core.StartFailed(now, pi.id) })
		return
	}
	p.event(func(now time.Time) []Decision { return p.core.Started(now, pi.id, maxConc(bi), pausable(bi)) })
}

func maxConc(bi backend.Instance) int {
	if c, ok := bi.(backend.Concurrent); ok {
		return max(1, c.MaxConcurrency())
	}
	return 1
}

func pausable(bi backend.Instance) bool {
	_, ok := bi.(backend.Pauser)
	return ok
}

// coldRun starts an instance for pj, then initialises it and runs pj.
func (p *Pool) coldRun(pj *pjob, pi *pinst) {
	defer p.wg.Done()
	a := pj.req.Action
	bi, err := pi.drv.Start(pj.ctx, backend.StartSpec{Kind: a.Kind, Memory: a.Memory, Action: &a})
	if err == nil && bi == nil {
		err = fmt.Errorf("pool: driver %s returned no instance: %w", pi.drv.Name(), backend.ErrPlatform)
	}
	pi.bi = bi
	if err != nil {
		pi.initErr = err
		close(pi.started)
		close(pi.initDone)
		p.finish(pj, pi, false, Result{}, fmt.Errorf("pool: start on %s: %w", pi.drv.Name(), err))
		return
	}
	if r, ok := bi.(backend.Restorer); ok && r.Restored() {
		pi.restored = true
	}
	close(pi.started)
	p.event(func(now time.Time) []Decision { return p.core.Started(now, pi.id, maxConc(bi), pausable(bi)) })
	p.initAndRun(pj, pi)
}

// runOn runs pj on an instance that exists already, after the instance's earlier control ops
// and a resume if it is paused.
func (p *Pool) runOn(pj *pjob, pi *pinst, prev, mine chan struct{}) {
	defer p.wg.Done()
	<-prev
	<-pi.started
	var err error
	if pi.paused && pi.bi != nil {
		if err = pi.bi.(backend.Pauser).Resume(pj.ctx); err == nil {
			pi.paused = false
		}
	}
	close(mine)
	if err != nil {
		p.finish(pj, pi, false, Result{}, fmt.Errorf("pool: resume %s: %w: %w", pi.id, backend.ErrPlatform, err))
		return
	}
	switch pj.start {
	case Prewarmed, RecreatedPrewarm:
		p.initAndRun(pj, pi)
	case Warming, WarmingCold:
		<-pi.initDone
		if pi.initErr != nil || pi.initRes == nil || !initialized(*pi.initRes) {
			// Runs buffered on an instance whose /init failed end with that result.
			p.finish(pj, pi, false, Result{Init: pi.initRes}, pi.initErr)
			return
		}
		p.run(pj, pi, nil)
	default:
		p.run(pj, pi, nil)
	}
}

func initialized(r backend.Result) bool {
	return r.Outcome.Failure == activation.NoFailure && r.Outcome.Status == 200
}

func (p *Pool) initAndRun(pj *pjob, pi *pinst) {
	res, err := pi.bi.Init(pj.ctx, pj.req.MakeInit(p.now()))
	pi.initRes, pi.initErr = &res, err
	close(pi.initDone)
	if err != nil || !initialized(res) {
		if err != nil {
			err = fmt.Errorf("pool: init on %s: %w", pi.drv.Name(), err)
		}
		p.finish(pj, pi, false, Result{Init: &res}, err)
		return
	}
	p.run(pj, pi, &res)
}

func (p *Pool) run(pj *pjob, pi *pinst, init *backend.Result) {
	res, err := pi.bi.Run(pj.ctx, pj.req.MakeRun(p.now()))
	keep := KeepDefault
	if pj.req.Keep != nil {
		keep = pj.req.Keep
	}
	if err != nil {
		err = fmt.Errorf("pool: run on %s: %w", pi.drv.Name(), err)
	}
	p.finish(pj, pi, err == nil && keep(res), Result{Init: init, Run: &res}, err)
}

// finish reports a run's end to the Core and answers the caller, or, when the driver refused
// the action (ErrUnsupported), moves the run to the next driver.
func (p *Pool) finish(pj *pjob, pi *pinst, keep bool, res Result, err error) {
	p.event(func(now time.Time) []Decision { return p.core.Done(now, pj.id, keep) })
	if errors.Is(err, backend.ErrUnsupported) {
		next, ferr := p.opts.Selector.Fallback(pj.req.Action, pj.drv.Name(), err)
		if ferr == nil {
			p.logFor(pj).Info("driver refused the action; running it on the next driver",
				zap.String("from", pj.drv.Name()), zap.String("to", next.Name()), zap.Error(err))
			pj.drv = next
			pj.fallbacks++
			p.submit(pj, true)
			return
		}
		err = ferr
	}
	res.Start = pj.start
	if pj.start.NeedsStart() && pi.restored {
		res.Start = Restored
	}
	res.Driver, res.Instance = pi.drv.Name(), ""
	if pi.bi != nil {
		res.Instance = pi.bi.ID()
	}
	if err != nil {
		p.logFor(pj).Warn("run failed", zap.String("driver", pi.drv.Name()), zap.Error(err))
	}
	p.mu.Lock()
	p.finishLocked(pj, res, err)
	p.mu.Unlock()
}

// finishLocked answers the caller; called with p.mu held.
func (p *Pool) finishLocked(pj *pjob, res Result, err error) {
	res.Submitted, res.Dispatched, res.Fallbacks = pj.submitted, pj.dispatch, pj.fallbacks
	pj.res, pj.err = res, err
	delete(p.jobs, pj.id)
	close(pj.done)
}

func (p *Pool) destroy(pi *pinst, prev, mine chan struct{}) {
	defer p.wg.Done()
	defer close(mine)
	<-prev
	<-pi.started
	if pi.bi == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := pi.bi.Destroy(ctx); err != nil {
		p.log.Warn("destroy failed", zap.Stringer("instance", pi.id), zap.String("driver", pi.drv.Name()), zap.Error(err))
	}
}

func (p *Pool) pause(pi *pinst, prev, mine chan struct{}) {
	defer p.wg.Done()
	defer close(mine)
	<-prev
	<-pi.started
	pz, ok := pi.bi.(backend.Pauser)
	if !ok || pi.paused {
		return
	}
	if err := pz.Pause(p.base); err != nil {
		p.log.Warn("pause failed; the instance stays running", zap.Stringer("instance", pi.id), zap.Error(err))
		return
	}
	pi.paused = true
}

// Close fails buffered runs with ErrClosed, destroys every instance (runs in progress end
// with the driver's answer to a destroyed instance) and waits for the pool's goroutines, or
// for ctx.
func (p *Pool) Close(ctx context.Context) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	now := p.now()
	for _, id := range p.core.Buffered() {
		p.core.Cancel(now, id)
		if pj := p.jobs[id]; pj != nil {
			p.finishLocked(pj, Result{}, fmt.Errorf("pool: %s: %w", pj.req.Action.Name, ErrClosed))
		}
	}
	p.mu.Unlock()
	close(p.stop)
	p.cancel()
	destroyAll := func() {
		p.mu.Lock()
		insts := make([]*pinst, 0, len(p.insts))
		for id, pi := range p.insts {
			insts = append(insts, pi)
			delete(p.insts, id)
		}
		p.mu.Unlock()
		var wg sync.WaitGroup
		for _, pi := range insts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				select {
				case <-pi.started:
				case <-ctx.Done():
					return
				}
				if pi.bi != nil {
					_ = pi.bi.Destroy(ctx)
				}
			}()
		}
		wg.Wait()
	}
	destroyAll()
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("pool: close: %w", ctx.Err())
	}
	destroyAll() // instances that runs in flight started after the first pass
	return nil
}
