package invoker

import (
	"context"
	"time"

	"github.com/snapinvoker/snapinvoker/backend"
)

// Executor runs one activation's code: it finds or starts an instance for the action (the
// pool's decision), sends /init when the instance needs it, then /run, and reports what it
// observed. It knows nothing about OpenWhisk records; the invoker builds them from Executed.
//
// Execute returns a non-nil error only when no instance could be provided: the error wraps
// backend.ErrActionFailed (the action's fault, e.g. a user image that does not exist: a
// developer error with the error's text) or anything else (a whisk error, "Failed to provision
// resources to run the action."). Failures of the action itself are in Executed.Init/Run.
type Executor interface {
	Execute(ctx context.Context, e Execution) (Executed, error)
}

// Execution is one activation as an Executor sees it.
type Execution struct {
	ActivationID string
	// Action describes the action to the drivers.
	Action backend.Action
	// Digest stands for everything OpenWhisk's warm-reuse equality compares besides the
	// namespace, name and version (exec, parameters, limits, annotations, binding).
	Digest string
	// TransactionID is for log lines.
	TransactionID string
	// MakeInit and MakeRun build the runtime protocol bodies at the moment they are sent, so
	// that __OW_DEADLINE / deadline are that moment plus the timeout (/init is sent only on a
	// start that needs it).
	MakeInit, MakeRun func(now time.Time) []byte
	// LogLimit bounds the log bytes collected; MaxResponse the response bytes kept.
	LogLimit, MaxResponse int64
	// Keep says whether the instance may serve further activations after this /run: not
	// after a developer error or truncated logs.
	Keep func(run backend.Result) bool
}

// Executed is what happened to an Execution.
type Executed struct {
	// Start is the pool's start kind: "cold", "prewarmed", "warmed", "warming", "warmingCold",
	// "recreated", "recreatedPrewarm" or "restored".
	Start string
	// Driver is the name of the driver that ran it.
	Driver string
	// Init is this activation's /init, nil when the instance was already initialised (warm).
	Init *backend.Result
	// Run is the /run, nil when /init failed.
	Run *backend.Result
	// Aborted: the activation waited on an instance another activation was initialising, and
	// that /init failed; Init is that shared result (acked as an aborted buffered run).
	Aborted bool
	// Latency of the phases, for metrics (zero when not measured).
	StartLatency time.Duration
}
