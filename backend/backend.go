// Package backend defines the contract between the invoker's scheduler and the drivers that run
// action code: unikernel VMs, JVM funclets and containers. A driver is found by name in a
// registry; an instance is one isolated place where one action's code runs.
//
// Division of labour: drivers report what they observed (activation.RuntimeOutcome, log lines);
// the pure rules in package activation decide what that means for the activation record.
//
// Drivers add themselves to the registry with Register (registry.go), giving kind patterns, a
// Probe and a constructor. OpenSet (set.go) probes and opens them at start-up and answers, as a
// Selector, which drivers run a kind in the configured order, and the fallback rule: a driver
// answering ErrUnsupported hands the action to the next one, which then keeps it. Every driver
// passes the conformance suite in backend/backendtest.
package backend

import (
	"context"
	"errors"
	"time"

	"github.com/snapinvoker/snapinvoker/activation"
)

// Sentinel errors. Every error a driver returns wraps exactly one of them, with context.
var (
	// ErrActionFailed: the action's own fault (a developer error), e.g. a user image that does
	// not exist. The activation is answered with the error's text as a developer error.
	ErrActionFailed = errors.New("action failed")
	// ErrPlatform: our fault (a whisk error). The instance, if any, must be destroyed.
	ErrPlatform = errors.New("platform failure")
	// ErrUnsupported: this driver cannot run this action (a refused syscall the action needs,
	// a missing feature or kind). The activation is re-run on the next driver configured for
	// the kind, and the action is remembered for that driver (the Containerless rule).
	ErrUnsupported = errors.New("unsupported by driver")
)

// Action is what a driver needs to know about the action an instance runs. It is a plain value,
// decoded and validated by the invoker before it reaches a driver.
type Action struct {
	// Kind is the exec kind with family:default already resolved, e.g. "python:3.11",
	// "nodejs:20" or "blackbox".
	Kind string
	// Image is the container image of a blackbox action; empty for managed kinds.
	Image string
	// Native is true for a blackbox image that speaks the actionloop protocol itself (listed in
	// the manifest's blackboxes), such as the dockerskeleton image of `wsk action create --native`.
	Native bool
	// Namespace is the invocation namespace; Name is the fully qualified path ns[/pkg]/name.
	Namespace, Name string
	// DocID and Revision identify the action document; Version is its semantic version.
	DocID, Revision, Version string
	// CodeDigest identifies the action's code, main and binary flag, so a snapshot taken after
	// /init can be keyed by it.
	CodeDigest string
	// Memory is limits.memory in bytes; Timeout is limits.timeout.
	Memory  int64
	Timeout time.Duration
	// LogLimit is limits.logs in bytes; 0 means no log collection.
	LogLimit int64
	// Concurrency is limits.concurrency (1 unless the action allows more).
	Concurrency int
}

// StartSpec asks a driver for a new instance.
type StartSpec struct {
	// Kind and Memory are always set. For a prewarm (stem cell) instance they are all the driver
	// learns before Init.
	Kind   string
	Memory int64
	// Action is nil for a prewarm instance; otherwise the instance is started for this action
	// (which lets a snapshot driver restore straight from the action's function snapshot).
	Action *Action
}

// InitRequest is one /init.
type InitRequest struct {
	Action Action
	// Body is the /init body of the runtime protocol (protocol spec §6): {"value":{...}}.
	Body []byte
	// Deadline bounds the call; past it the outcome is activation.FailureTimeout.
	Deadline time.Time
}

// RunRequest is one /run.
type RunRequest struct {
	// ActivationID is for logs and log attribution only; the driver does not interpret it.
	ActivationID string
	// Body is the /run body of the runtime protocol (protocol spec §6).
	Body []byte
	// Deadline bounds the call; past it the outcome is activation.FailureTimeout.
	Deadline time.Time
	// LogLimit bounds the bytes of log text returned (0: collect none).
	LogLimit int64
	// MaxResponse is the truncation limit: at most this many body bytes are kept in the outcome.
	MaxResponse int64
}

// Result is what one Init or Run observed.
type Result struct {
	Outcome activation.RuntimeOutcome
	// Logs are the lines of this call only, stdout and stderr interleaved in the order they
	// were written, with any sentinel lines already removed, bounded by the log limit.
	Logs []activation.LogLine
	// LogsTruncated is true when lines were dropped at the log limit. The driver does not append
	// the truncation message; the activation rules do.
	LogsTruncated bool
}

// Driver creates instances of one kind of isolation.
//
// A Driver is safe for concurrent use. Close releases everything the driver holds; instances
// still alive are destroyed.
type Driver interface {
	// Name is the name the driver registered under.
	Name() string
	// Start creates an instance, ready for Init when Start returns. Errors wrap ErrPlatform,
	// ErrActionFailed or ErrUnsupported.
	Start(ctx context.Context, spec StartSpec) (Instance, error)
	Close() error
}

// Instance is one isolated place where one action's code runs.
//
// Init must be called once, before the first Run (a prewarm instance learns its action there).
// Run may be called again after it returns, and concurrently only when the instance implements
// Concurrent. An action's failure (timeout, exit, out of memory, a bad response) is not an error:
// it is reported in Result.Outcome with a nil error. A non-nil error wraps ErrPlatform (the
// instance is unusable; the caller destroys it) or ErrUnsupported (re-run on the next driver).
// Destroy releases every host resource; it is safe to call more than once and concurrently
// with a Run, which then ends with activation.FailureExited.
type Instance interface {
	ID() string
	Init(ctx context.Context, req InitRequest) (Result, error)
	Run(ctx context.Context, req RunRequest) (Result, error)
	Destroy(ctx context.Context) error
}

// Concurrent is implemented by instances that accept up to MaxConcurrency simultaneous Runs.
type Concurrent interface {
	MaxConcurrency() int
}

// Pauser is implemented by instances that can be frozen while idle and thawed before a Run.
type Pauser interface {
	Pause(ctx context.Context) error
	Resume(ctx context.Context) error
}

// MemoryReporter is implemented by instances that can say how much host memory they hold
// privately (pages not shared with a snapshot or with other instances).
type MemoryReporter interface {
	MemoryUsed() (int64, error)
}

// Restorer is implemented by instances started from a snapshot that already holds the state
// after /init; the pool reports such a start as "restored" rather than cold.
type Restorer interface {
	Restored() bool
}

// Charger is implemented by drivers whose instances cost the host less than the action's
// limits.memory (a restored snapshot shares most of its pages). The pool charges the answer
// against user memory instead of spec.Memory.
type Charger interface {
	MemoryCharge(spec StartSpec) int64
}
