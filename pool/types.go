// Package pool is the invoker's scheduler: OpenWhisk's ContainerPool policy (protocol spec §7)
// over backend drivers. It has two layers:
//
//   - Core, a deterministic state machine with time injected. Events go in (a run submitted, an
//     instance started, a run done, a clock tick); Decisions come out (run this job on that
//     instance and how it starts, start a stem cell, remove, pause, buffer). It does no I/O and
//     never calls a driver, so scripts in testdata/ drive it line by line.
//   - Pool, the I/O loop around a Core: it turns decisions into driver calls in goroutines and
//     feeds their completions back, and offers Run(ctx, request) to the invoker.
//
// The pool knows nothing about OpenWhisk records: it reports what happened (the start kind,
// the /init and /run results with their times) and the invoker builds the activation.
package pool

import (
	"errors"
	"fmt"
	"time"
)

// Errors.
var (
	// ErrInvalidRequest: a Request or Job with a missing or malformed field (named in the text).
	ErrInvalidRequest = errors.New("invalid pool request")
	// ErrTooBig: the run needs more memory than the pool has in total; it can never run here.
	ErrTooBig = errors.New("action needs more memory than the pool has")
	// ErrClosed: the pool is closed.
	ErrClosed = errors.New("pool closed")
	// ErrInvalidConfig: a Config field out of range (named in the text).
	ErrInvalidConfig = errors.New("invalid pool configuration")
)

// InstanceID names an instance inside the pool; the Core assigns them in order from 1.
type InstanceID uint64

func (i InstanceID) String() string { return fmt.Sprintf("i%d", uint64(i)) }

// JobID names a run inside the pool; its submitter chooses it and keeps it unique among runs
// not yet done.
type JobID uint64

// ActionKey is what warm reuse compares: two runs may share an initialised instance only when
// their keys are equal (and they run on the same driver). It mirrors OpenWhisk: same invocation
// namespace and an equal action, where the document revision is not compared but the version is.
type ActionKey struct {
	// Namespace is the invocation namespace (the invoking user's), not the action's own.
	Namespace string
	// Action is the fully qualified action name, ns[/pkg]/name.
	Action string
	// Version is the action's semantic version.
	Version string
	// Digest stands for everything else OpenWhisk's action equality covers: exec (kind, code,
	// main, binary, image), parameters, limits, annotations and binding. The invoker computes it
	// (e.g. a hash); it must not include the revision.
	Digest string
}

// Job is one run as the Core sees it.
type Job struct {
	ID  JobID
	Key ActionKey
	// Kind and Memory (limits.memory, bytes) select stem cells: a prewarm is taken only for the
	// same kind and exactly the same memory.
	Kind   string
	Memory int64
	// Charge is what a new instance for this job costs against user memory: the driver's
	// answer (backend.Charger) or Memory. Zero means Memory.
	Charge int64
	// Concurrency is limits.concurrency; below 1 means 1.
	Concurrency int
	// Driver is the name of the driver the job must run on (the Selector's pick).
	Driver string
	// Retry marks a re-run after a driver fallback: it is placed before the run buffer and,
	// when it must wait, at the buffer's head, since it already waited its turn once.
	Retry bool
}

func (j Job) charge() int64 {
	if j.Charge > 0 {
		return j.Charge
	}
	return j.Memory
}

func (j Job) concurrency() int { return max(1, j.Concurrency) }

// StartKind says how a run found its instance. The names are OpenWhisk's container start
// labels (INVOKER_CONTAINER_START), plus Restored.
type StartKind string

const (
	// Cold: a new instance was started for the run and initialised by it.
	Cold StartKind = "cold"
	// Prewarmed: a stem cell of the run's kind and memory was taken and initialised by it.
	Prewarmed StartKind = "prewarmed"
	// Warm: an initialised instance of the same action was reused; no /init.
	Warm StartKind = "warmed"
	// Warming: joined a taken stem cell while another run initialised it; no /init of its own.
	Warming StartKind = "warming"
	// WarmingCold: joined a cold instance while another run started and initialised it.
	WarmingCold StartKind = "warmingCold"
	// Recreated: idle instances were evicted to make room, then a cold start.
	Recreated StartKind = "recreated"
	// RecreatedPrewarm is OpenWhisk's label for "evicted, then took a stem cell". This Core
	// takes stem cells before it evicts anything (spec §7 rule 3 before rule 5), so it never
	// decides it; the label is kept so log readers find OpenWhisk's full set.
	RecreatedPrewarm StartKind = "recreatedPrewarm"
	// Restored: a cold start whose driver restored the instance from a snapshot already
	// initialised (backend.Restorer); the Pool reports it, the Core never decides it.
	Restored StartKind = "restored"
)

// NeedsStart reports whether the run's instance must be started first (cold starts).
func (k StartKind) NeedsStart() bool { return k == Cold || k == Recreated }

// NeedsInit reports whether the run sends the instance's /init.
func (k StartKind) NeedsInit() bool {
	return k == Cold || k == Recreated || k == Prewarmed || k == RecreatedPrewarm
}

// Op is the kind of a Decision.
type Op uint8

const (
	// OpRun: run Job on Inst, starting as Start says (NeedsStart, NeedsInit); Resume asks to
	// resume the paused instance first. For a cold start, Kind, Memory, Charge and Driver
	// describe the new instance.
	OpRun Op = iota + 1
	// OpPrewarm: start stem cell Inst of Kind and Memory on Driver, with no action yet.
	OpPrewarm
	// OpRemove: destroy Inst; Reason says why (evict, idle, expired, failed, starved). Its memory
	// is already free in the Core.
	OpRemove
	// OpPause: pause the idle Inst (backend.Pauser).
	OpPause
	// OpBuffer: Job waits in the run buffer.
	OpBuffer
	// OpReject: Job can never run here (Reason: too-big, invalid, duplicate).
	OpReject
)

// Decision is one command from the Core to the I/O loop.
type Decision struct {
	Op     Op
	Job    JobID
	Inst   InstanceID
	Start  StartKind
	Resume bool
	Kind   string
	Memory int64
	Charge int64
	Driver string
	Reason string
}

// Config is the pool policy (spec §7 and §8 defaults noted per field).
type Config struct {
	// UserMemory is the memory all instances together may be charged (whisk.container-pool
	// user-memory). Required.
	UserMemory int64
	// IdleTimeout removes a warm instance unused for this long (container-proxy
	// idle-container, 10 minutes when zero; negative: never).
	IdleTimeout time.Duration
	// PauseGrace pauses a warm instance idle for this long, when its driver can pause
	// (container-proxy pause-grace, OpenWhisk uses 10 s). Zero: never pause.
	PauseGrace time.Duration
	// PrewarmCheckInterval is how often stem cells are expired and their reactive count
	// adjusted (prewarm-expiration-check-interval; 10 minutes when zero). The first check is
	// one interval after start. OpenWhisk adds up to 10 s of random jitter; the Core does not,
	// to stay deterministic.
	PrewarmCheckInterval time.Duration
	// StemCells are the prewarm configurations (manifest stemCells).
	StemCells []StemCell
}

// StemCell is one prewarm configuration: keep instances of Kind and Memory started on Driver.
type StemCell struct {
	Kind   string
	Memory int64
	// Driver runs the stem cells; the Pool fills it with the first driver for Kind when empty.
	Driver string
	// Charge is a stem cell's cost against user memory; zero means Memory.
	Charge int64
	// InitialCount stem cells are started at start-up (manifest initialCount).
	InitialCount int
	// Reactive, when set, makes the count follow demand.
	Reactive *Reactive
}

// Reactive is the manifest's reactive block: at every check, expired stem cells (older than
// TTL) are removed and the count becomes min(MaxCount, max(MinCount, coldStarts/Threshold ×
// Increment)), where coldStarts counts cold starts of the cell's kind and memory since the
// previous check.
type Reactive struct {
	MinCount, MaxCount int
	TTL                time.Duration
	Threshold          int
	Increment          int
}

const (
	defaultIdleTimeout  = 10 * time.Minute
	defaultPrewarmCheck = 10 * time.Minute
	maxExpiredPerCycle  = 100
)

// Validate checks the configuration; the error wraps ErrInvalidConfig and names the field.
func (c Config) Validate() error {
	if c.UserMemory <= 0 {
		return fmt.Errorf("pool: UserMemory %d: must be positive: %w", c.UserMemory, ErrInvalidConfig)
	}
	for i, s := range c.StemCells {
		switch {
		case s.Kind == "":
			return fmt.Errorf("pool: StemCells[%d].Kind is empty: %w", i, ErrInvalidConfig)
		case s.Memory <= 0:
			return fmt.Errorf("pool: StemCells[%d].Memory %d: must be positive: %w", i, s.Memory, ErrInvalidConfig)
		case s.InitialCount < 0:
			return fmt.Errorf("pool: StemCells[%d].InitialCount %d: negative: %w", i, s.InitialCount, ErrInvalidConfig)
		case s.Charge < 0:
			return fmt.Errorf("pool: StemCells[%d].Charge %d: negative: %w", i, s.Charge, ErrInvalidConfig)
		}
		if r := s.Reactive; r != nil {
			switch {
			case r.MinCount < 0 || r.MaxCount < r.MinCount:
				return fmt.Errorf("pool: StemCells[%d].Reactive: minCount %d, maxCount %d: need 0 ≤ min ≤ max: %w", i, r.MinCount, r.MaxCount, ErrInvalidConfig)
			case r.TTL <= 0:
				return fmt.Errorf("pool: StemCells[%d].Reactive.TTL %v: must be positive: %w", i, r.TTL, ErrInvalidConfig)
			case r.Threshold <= 0 || r.Increment <= 0:
				return fmt.Errorf("pool: StemCells[%d].Reactive: threshold %d, increment %d: must be positive: %w", i, r.Threshold, r.Increment, ErrInvalidConfig)
			}
		}
	}
	return nil
}

// Stats is the Core's accounting at one moment; the Pool reports it as capacity.
type Stats struct {
	// UserMemory is the configured total; InUse is charged to live instances (always ≤
	// UserMemory).
	UserMemory, InUse int64
	// Running counts runs placed on an instance and not yet done; Buffered counts runs waiting.
	Running, Buffered int
	// Instances counts live instances: Prewarmed of them are stem cells (started or starting,
	// Starting of those still starting), Idle are warm with no run.
	Instances, Prewarmed, Starting, Idle int
}

// Free is the user memory not charged.
func (s Stats) Free() int64 { return s.UserMemory - s.InUse }
