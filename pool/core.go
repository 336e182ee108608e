package pool

import (
	"container/list"
	"iter"
	"time"
)

// state is where an instance is in its life.
type state uint8

const (
	stStarting    state = iota // stem cell being started
	stPrewarmed                // stem cell started, no action yet
	stWarming                  // stem cell taken, being initialised by its first run
	stWarmingCold              // started cold for its first run, being started and initialised
	stWarm                     // initialised (its first run kept it)
)

// rank orders warm-reuse preference: warmed > warming > warmingCold.
func (s state) rank() int {
	switch s {
	case stWarm:
		return 3
	case stWarming:
		return 2
	case stWarmingCold:
		return 1
	}
	return 0
}

// warmKey is what warm reuse matches. Kind and memory repeat what the digest should already
// cover, so a sloppy digest cannot put a 512 MB action on a 128 MB instance.
type warmKey struct {
	key    ActionKey
	driver string
	kind   string
	memory int64
}

type cellKey struct {
	kind   string
	memory int64
	driver string
}

type instance struct {
	id       InstanceID
	st       state
	wk       warmKey
	cell     cellKey
	charge   int64
	active   int
	capacity int // runs at once for its action: min(limits.concurrency, driver's maximum)
	maxConc  int // the instance's own maximum, 0 until it has started
	conc     int // the action's limits.concurrency
	started  time.Time
	lastUsed time.Time
	pausable bool
	paused   bool
	doomed   bool // destroy when its last run ends
	indexed  bool // present in Core.warm

	freeElem *list.Element // in its warmSet's list for its state while it has spare capacity
	freeList *list.List

	idleElem     *list.Element // in Core.idle while warm with no run
	unpausedElem *list.Element // in Core.unpaused while idle, pausable and not paused
	prewarmElem  *list.Element // in the cell's prewarmed list while stPrewarmed
}

// warmSet holds the instances of one warmKey that have spare capacity, one list per state
// rank, most recently used first, so choosing an instance is O(1) however many there are.
type warmSet struct {
	byRank [4]list.List
	n      int // instances indexed under the key, with capacity or not
}

type cell struct {
	cfg        StemCell
	key        cellKey
	desired    int
	count      int // stem cells starting or started, not yet taken
	prewarmed  *list.List
	coldStarts int
}

type buffered struct {
	job  Job
	elem *list.Element
}

// Core is OpenWhisk's ContainerPool policy as a deterministic state machine. Every method
// takes the current time and returns the decisions it made, in the order they must be carried
// out. A Core is not safe for concurrent use; the Pool serialises calls.
//
// The returned slice is reused by the next call: copy it to keep it.
type Core struct {
	cfg       Config
	insts     map[InstanceID]*instance
	next      InstanceID
	inUse     int64
	running   int
	warm      map[warmKey]*warmSet
	idle      *list.List // of *instance, least recently used first
	unpaused  *list.List // of *instance
	cells     []*cell
	cellIndex map[cellKey]*cell
	buffer    *list.List // of Job
	queued    map[JobID]*list.Element
	jobs      map[JobID]*instance
	nextCheck time.Time
	out       []Decision
}

// NewCore returns a Core at time now with its start-up decisions (the initial stem cells).
func NewCore(cfg Config, now time.Time) (*Core, []Decision, error) {
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = defaultIdleTimeout
	}
	if cfg.PrewarmCheckInterval <= 0 {
		cfg.PrewarmCheckInterval = defaultPrewarmCheck
	}
	c := &Core{
		cfg:       cfg,
		insts:     map[InstanceID]*instance{},
		warm:      map[warmKey]*warmSet{},
		idle:      list.New(),
		unpaused:  list.New(),
		cellIndex: map[cellKey]*cell{},
		buffer:    list.New(),
		queued:    map[JobID]*list.Element{},
		jobs:      map[JobID]*instance{},
		nextCheck: now.Add(cfg.PrewarmCheckInterval),
	}
	for _, sc := range cfg.StemCells {
		k := cellKey{sc.Kind, sc.Memory, sc.Driver}
		if prev, dup := c.cellIndex[k]; dup {
			// Two manifest entries for one kind and memory: their counts add up.
			prev.desired += sc.InitialCount
			continue
		}
		ce := &cell{cfg: sc, key: k, desired: sc.InitialCount, prewarmed: list.New()}
		c.cells = append(c.cells, ce)
		c.cellIndex[k] = ce
	}
	c.out = c.out[:0]
	for _, ce := range c.cells {
		c.topUp(now, ce)
	}
	return c, c.out, nil
}

// Stats returns the current accounting.
func (c *Core) Stats() Stats {
	s := Stats{UserMemory: c.cfg.UserMemory, InUse: c.inUse, Running: c.running, Buffered: c.buffer.Len(),
		Instances: len(c.insts), Idle: c.idle.Len()}
	for _, ce := range c.cells {
		s.Prewarmed += ce.count
		s.Starting += ce.count - ce.prewarmed.Len()
	}
	return s
}

// Submit places a run (spec §7, in order): behind a non-empty run buffer; on a warm instance
// of the same action with spare capacity; on a stem cell of the same kind and memory; on a new
// instance if memory allows; on a new instance after evicting idle warm instances, oldest
// first, if that frees enough; otherwise into the run buffer.
func (c *Core) Submit(now time.Time, j Job) []Decision {
	c.out = c.out[:0]
	switch {
	case j.Kind == "" || j.Memory <= 0 || j.Driver == "" || j.Charge < 0:
		c.emit(Decision{Op: OpReject, Job: j.ID, Reason: "invalid"})
		return c.out
	case c.jobs[j.ID] != nil || c.queued[j.ID] != nil:
		c.emit(Decision{Op: OpReject, Job: j.ID, Reason: "duplicate"})
		return c.out
	case j.charge() > c.cfg.UserMemory:
		c.emit(Decision{Op: OpReject, Job: j.ID, Reason: "too-big"})
		return c.out
	}
	if (c.buffer.Len() == 0 || j.Retry) && c.place(now, j) {
		return c.out
	}
	c.enqueue(j)
	c.retry(now) // places it after all if only stem cells stood in the way
	return c.out
}

// Started reports that instance id finished starting: a stem cell is now ready, or a cold
// instance can take more runs up to maxConcurrency. pausable says the instance implements
// backend.Pauser.
func (c *Core) Started(now time.Time, id InstanceID, maxConcurrency int, pausable bool) []Decision {
	c.out = c.out[:0]
	in := c.insts[id]
	if in == nil {
		return c.out
	}
	in.maxConc = max(1, maxConcurrency)
	in.pausable = pausable
	switch in.st {
	case stStarting:
		in.st = stPrewarmed
		in.started = now
		in.prewarmElem = c.cellIndex[in.cell].prewarmed.PushBack(in)
	case stWarming, stWarmingCold, stWarm:
		in.capacity = min(in.conc, in.maxConc)
		c.refresh(in)
	}
	c.retry(now)
	return c.out
}

// StartFailed reports that stem cell id could not be started. Its memory is freed; it is not
// replaced until the next prewarm check, so a broken driver cannot make the pool spin. (A cold
// start that fails is reported with Done(keep=false) for its runs instead.)
func (c *Core) StartFailed(now time.Time, id InstanceID) []Decision {
	c.out = c.out[:0]
	if in := c.insts[id]; in != nil && in.st == stStarting {
		c.remove(in, "failed")
		c.retry(now)
	}
	return c.out
}

// Done reports that run j ended. keep=false means its instance must not be reused (the run
// failed in a way that spoils it, or the instance failed to start or initialise): it is
// destroyed once its other runs end.
func (c *Core) Done(now time.Time, j JobID, keep bool) []Decision {
	c.out = c.out[:0]
	in := c.jobs[j]
	if in == nil {
		return c.out
	}
	delete(c.jobs, j)
	c.running--
	in.active--
	in.lastUsed = now
	if !keep {
		in.doomed = true
		c.unindex(in)
	} else {
		if in.st == stWarming || in.st == stWarmingCold {
			in.st = stWarm
		}
		c.refresh(in)
	}
	if in.active == 0 {
		if in.doomed {
			c.remove(in, "failed")
		} else {
			c.makeIdle(in)
		}
	}
	c.retry(now)
	return c.out
}

// Cancel takes a buffered run out of the buffer; it reports false when the run is not
// buffered (already placed, done, or unknown).
func (c *Core) Cancel(now time.Time, j JobID) (bool, []Decision) {
	c.out = c.out[:0]
	e := c.queued[j]
	if e == nil {
		return false, c.out
	}
	head := e == c.buffer.Front()
	c.buffer.Remove(e)
	delete(c.queued, j)
	if head {
		c.retry(now)
	}
	return true, c.out
}

// due yields, oldest first, the instances of l (kept in order of stamp) whose stamp is at least
// age before now, stopping at the first younger one. It steps past each instance before
// yielding it, so the caller may unlink it from l.
func due(l *list.List, now time.Time, age time.Duration, stamp func(*instance) time.Time) iter.Seq[*instance] {
	return func(yield func(*instance) bool) {
		for e := l.Front(); e != nil; {
			in := e.Value.(*instance)
			if now.Sub(stamp(in)) < age {
				return
			}
			e = e.Next()
			if !yield(in) {
				return
			}
		}
	}
}

func lastUsedAt(in *instance) time.Time { return in.lastUsed }
func startedAt(in *instance) time.Time  { return in.started }

// Tick advances the clock: idle warm instances past IdleTimeout are removed, those past
// PauseGrace paused, and at every prewarm check interval stem cells are expired and topped up.
func (c *Core) Tick(now time.Time) []Decision {
	c.out = c.out[:0]
	freed := false
	if c.cfg.IdleTimeout > 0 {
		for in := range due(c.idle, now, c.cfg.IdleTimeout, lastUsedAt) {
			c.remove(in, "idle")
			freed = true
		}
	}
	if c.cfg.PauseGrace > 0 {
		for in := range due(c.unpaused, now, c.cfg.PauseGrace, lastUsedAt) {
			c.unpaused.Remove(in.unpausedElem)
			in.unpausedElem = nil
			in.paused = true
			c.emit(Decision{Op: OpPause, Inst: in.id})
		}
	}
	if !now.Before(c.nextCheck) {
		c.nextCheck = now.Add(c.cfg.PrewarmCheckInterval)
		expired := 0
		for _, ce := range c.cells {
			r := ce.cfg.Reactive
			if r == nil {
				continue
			}
			for in := range due(ce.prewarmed, now, r.TTL, startedAt) {
				if expired >= maxExpiredPerCycle {
					break
				}
				c.remove(in, "expired")
				expired++
				freed = true
			}
			ce.desired = min(r.MaxCount, max(r.MinCount, ce.coldStarts/r.Threshold*r.Increment))
			ce.coldStarts = 0
		}
		for _, ce := range c.cells {
			c.topUp(now, ce)
		}
	}
	if freed {
		c.retry(now)
	}
	return c.out
}

// Buffered returns the buffered runs in order (for Close and for tests).
func (c *Core) Buffered() []JobID {
	ids := make([]JobID, 0, c.buffer.Len())
	for e := c.buffer.Front(); e != nil; e = e.Next() {
		ids = append(ids, e.Value.(Job).ID)
	}
	return ids
}

// --- placement ------------------------------------------------------------------------------

func (c *Core) emit(d Decision) { c.out = append(c.out, d) }

func (c *Core) enqueue(j Job) {
	var e *list.Element
	if j.Retry {
		e = c.buffer.PushFront(j)
	} else {
		e = c.buffer.PushBack(j)
	}
	c.queued[j.ID] = e
	c.emit(Decision{Op: OpBuffer, Job: j.ID})
}

// retry places buffered runs from the head while they fit: the head blocks the rest, so the
// buffer keeps its order.
func (c *Core) retry(now time.Time) {
	for e := c.buffer.Front(); e != nil; e = c.buffer.Front() {
		j := e.Value.(Job)
		if !c.place(now, j) && !(c.unstarve() && c.place(now, j)) {
			return
		}
		c.buffer.Remove(e)
		delete(c.queued, j.ID)
	}
}

// place tries rules 2–5 for j and reports whether it was placed.
func (c *Core) place(now time.Time, j Job) bool {
	wk := warmKey{j.Key, j.Driver, j.Kind, j.Memory}
	if in := c.bestWarm(wk); in != nil {
		kind := Warm
		switch in.st {
		case stWarming:
			kind = Warming
		case stWarmingCold:
			kind = WarmingCold
		}
		resume := in.paused
		in.paused = false
		c.assign(now, in, j)
		c.emit(Decision{Op: OpRun, Job: j.ID, Inst: in.id, Start: kind, Resume: resume})
		return true
	}
	ck := cellKey{j.Kind, j.Memory, j.Driver}
	if c.takePrewarm(now, ck, j, Prewarmed) {
		return true
	}
	if c.inUse+j.charge() <= c.cfg.UserMemory {
		c.cold(now, j, Cold)
		return true
	}
	if !c.evictFor(j.charge()) {
		return false
	}
	// No second look at the stem cells (OpenWhisk's recreatedPrewarm): eviction removes only
	// warm instances, so the stem cells are the ones rule 3 just found none among.
	c.cold(now, j, Recreated)
	return true
}

// bestWarm returns the preferred instance for wk with spare capacity: warmed over warming over
// warmingCold, then the most recently used (so rarely used ones go idle and are reclaimed).
func (c *Core) bestWarm(wk warmKey) *instance {
	ws := c.warm[wk]
	if ws == nil {
		return nil
	}
	for r := len(ws.byRank) - 1; r > 0; r-- {
		if e := ws.byRank[r].Front(); e != nil {
			return e.Value.(*instance)
		}
	}
	return nil
}

func (c *Core) assign(now time.Time, in *instance, j Job) {
	if in.idleElem != nil {
		c.idle.Remove(in.idleElem)
		in.idleElem = nil
	}
	if in.unpausedElem != nil {
		c.unpaused.Remove(in.unpausedElem)
		in.unpausedElem = nil
	}
	in.active++
	in.lastUsed = now
	c.running++
	c.jobs[j.ID] = in
	c.refresh(in)
}

// takePrewarm takes the earliest-expiring stem cell of ck for j. No memory check: the stem
// cell's memory is already charged. A replacement is started when memory allows.
func (c *Core) takePrewarm(now time.Time, ck cellKey, j Job, kind StartKind) bool {
	ce := c.cellIndex[ck]
	if ce == nil || ce.prewarmed.Len() == 0 {
		return false
	}
	in := ce.prewarmed.Remove(ce.prewarmed.Front()).(*instance)
	in.prewarmElem = nil
	ce.count--
	in.st = stWarming
	in.wk = warmKey{j.Key, j.Driver, j.Kind, j.Memory}
	in.conc = j.concurrency()
	in.capacity = min(in.conc, in.maxConc)
	c.index(in)
	c.assign(now, in, j)
	c.emit(Decision{Op: OpRun, Job: j.ID, Inst: in.id, Start: kind})
	c.topUp(now, ce)
	return true
}

// cold starts a new instance for j; memory was checked by the caller.
func (c *Core) cold(now time.Time, j Job, kind StartKind) {
	c.next++
	in := &instance{
		id: c.next, st: stWarmingCold, wk: warmKey{j.Key, j.Driver, j.Kind, j.Memory},
		cell:   cellKey{j.Kind, j.Memory, j.Driver},
		charge: j.charge(), conc: j.concurrency(), capacity: 1, lastUsed: now,
	}
	c.insts[in.id] = in
	c.inUse += in.charge
	c.index(in)
	c.assign(now, in, j)
	if ce := c.cellIndex[in.cell]; ce != nil {
		ce.coldStarts++
	}
	c.emit(Decision{Op: OpRun, Job: j.ID, Inst: in.id, Start: kind,
		Kind: j.Kind, Memory: j.Memory, Charge: in.charge, Driver: j.Driver})
}

// evictFor removes idle warm instances, least recently used first, until need fits; it
// removes nothing when even all of them would not be enough. Stem cells are never evicted.
func (c *Core) evictFor(need int64) bool {
	short := c.inUse + need - c.cfg.UserMemory
	var freeable int64
	e := c.idle.Front()
	for ; e != nil && freeable < short; e = e.Next() {
		freeable += e.Value.(*instance).charge
	}
	if freeable < short {
		return false
	}
	for f := c.idle.Front(); f != e; {
		in := f.Value.(*instance)
		f = f.Next()
		c.remove(in, "evict")
	}
	return true
}

// unstarve keeps the pool live. Stem cells are never evicted for space, so a buffered run of
// another kind could wait forever behind them when nothing else can free memory: no run in
// progress and no stem cell starting (either would retry the buffer when it ends). Only then
// are stem cells removed, oldest first, until the buffer's head fits: a deviation from
// OpenWhisk, which would hang. It reports whether it removed any.
func (c *Core) unstarve() bool {
	e := c.buffer.Front()
	if e == nil || c.running > 0 {
		return false
	}
	for _, ce := range c.cells {
		if ce.count > ce.prewarmed.Len() {
			return false
		}
	}
	need := e.Value.(Job).charge()
	removed := false
	for _, ce := range c.cells {
		for ce.prewarmed.Len() > 0 && c.inUse+need > c.cfg.UserMemory {
			c.remove(ce.prewarmed.Front().Value.(*instance), "starved")
			removed = true
		}
	}
	return removed
}

// topUp starts stem cells of ce up to its desired count while memory allows and no run is
// waiting (a waiting run has the better claim on memory).
func (c *Core) topUp(now time.Time, ce *cell) {
	charge := ce.cfg.Charge
	if charge <= 0 {
		charge = ce.cfg.Memory
	}
	for ce.count < ce.desired && c.buffer.Len() == 0 && c.inUse+charge <= c.cfg.UserMemory {
		c.next++
		in := &instance{id: c.next, st: stStarting, cell: ce.key, charge: charge, lastUsed: now, started: now}
		c.insts[in.id] = in
		c.inUse += charge
		ce.count++
		c.emit(Decision{Op: OpPrewarm, Inst: in.id, Kind: ce.key.kind, Memory: ce.key.memory, Charge: charge, Driver: ce.key.driver})
	}
}

// --- bookkeeping ----------------------------------------------------------------------------

func (c *Core) index(in *instance) {
	ws := c.warm[in.wk]
	if ws == nil {
		ws = &warmSet{}
		c.warm[in.wk] = ws
	}
	ws.n++
	in.indexed = true
	c.refresh(in)
}

// refresh puts an indexed instance at the front of its warm list when it has spare capacity
// (it was just used), and takes it out when it has none.
func (c *Core) refresh(in *instance) {
	if in.freeElem != nil {
		in.freeList.Remove(in.freeElem)
		in.freeElem, in.freeList = nil, nil
	}
	if !in.indexed || in.doomed || in.active >= in.capacity {
		return
	}
	l := &c.warm[in.wk].byRank[in.st.rank()]
	in.freeElem, in.freeList = l.PushFront(in), l
}

func (c *Core) unindex(in *instance) {
	if !in.indexed {
		return
	}
	if in.freeElem != nil {
		in.freeList.Remove(in.freeElem)
		in.freeElem, in.freeList = nil, nil
	}
	in.indexed = false
	if ws := c.warm[in.wk]; ws != nil {
		if ws.n--; ws.n == 0 {
			delete(c.warm, in.wk)
		}
	}
}

func (c *Core) makeIdle(in *instance) {
	in.idleElem = c.idle.PushBack(in)
	if in.pausable && !in.paused {
		in.unpausedElem = c.unpaused.PushBack(in)
	}
}

// remove forgets an instance, frees its memory and tells the loop to destroy it.
func (c *Core) remove(in *instance, reason string) {
	if in.idleElem != nil {
		c.idle.Remove(in.idleElem)
		in.idleElem = nil
	}
	if in.unpausedElem != nil {
		c.unpaused.Remove(in.unpausedElem)
		in.unpausedElem = nil
	}
	if in.st == stStarting || in.st == stPrewarmed {
		if ce := c.cellIndex[in.cell]; ce != nil {
			ce.count--
			if in.prewarmElem != nil {
				ce.prewarmed.Remove(in.prewarmElem)
				in.prewarmElem = nil
			}
		}
	}
	c.unindex(in)
	delete(c.insts, in.id)
	c.inUse -= in.charge
	c.emit(Decision{Op: OpRemove, Inst: in.id, Reason: reason})
}
