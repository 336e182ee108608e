package activation

import (
	"fmt"
	"time"
)

// SystemLimits are the deployment's whisk.* limits (they must match the controller's).
// Memory and logs are MB, timeouts milliseconds, payload sizes bytes.
type SystemLimits struct {
	MinMemory, MaxMemory, StdMemory                int64
	MinTimeout, MaxTimeout, StdTimeout             int64
	MinLogs, MaxLogs, StdLogs                      int64
	MinConcurrency, MaxConcurrency, StdConcurrency int64
	// MaxPayload is whisk.activation.payload.max: a response longer than this is truncated.
	MaxPayload int64
	// Truncation is whisk.activation.payload.truncation: how much of an oversized response is kept.
	Truncation int64
}

// DefaultSystemLimits are OpenWhisk's shipped defaults: memory 128–512 (256) MB, timeout
// 100 ms–5 min (1 min), logs 0–10 (10) MB, concurrency 1–1 (1), payload and truncation 1 MiB.
func DefaultSystemLimits() SystemLimits {
	return SystemLimits{
		MinMemory: 128, MaxMemory: 512, StdMemory: 256,
		MinTimeout: 100, MaxTimeout: 300000, StdTimeout: 60000,
		MinLogs: 0, MaxLogs: 10, StdLogs: 10,
		MinConcurrency: 1, MaxConcurrency: 1, StdConcurrency: 1,
		MaxPayload: 1 << 20, Truncation: 1 << 20,
	}
}

// LimitError is an action limit outside the allowed range. Message is the exact text
// OpenWhisk puts into the fallback activation's application error.
type LimitError struct {
	Field   string // "timeout", "memory", "concurrency" or "logs"
	Message string
}

func (e *LimitError) Error() string { return "activation: action limits: " + e.Message }

// Unwrap makes errors.Is(err, ErrLimits) true.
func (e *LimitError) Unwrap() error { return ErrLimits }

// allowed narrows the namespace's override to the system range.
func allowedMax(user *int64, sys int64) int64 {
	if user != nil && *user < sys {
		return *user
	}
	return sys
}

func allowedMin(user *int64, sys int64) int64 {
	if user != nil && *user > sys {
		return *user
	}
	return sys
}

// CheckLimits checks an action's limits against the namespace's (UserLimits, narrowed to the
// system range) in OpenWhisk's order — timeout, memory, concurrency, logs; maximum before
// minimum — and returns the first violation as a *LimitError (wrapping ErrLimits).
func CheckLimits(l ActionLimits, u UserLimits, sys SystemLimits) error {
	const req = "requirement failed: " // Scala's require() prefixes its message with this
	if max := allowedMax(u.MaxActionTimeout, sys.MaxTimeout); l.Timeout > max {
		return &LimitError{"timeout", fmt.Sprintf(req+"duration %d milliseconds exceeds allowed threshold of %d milliseconds", l.Timeout, max)}
	}
	if min := allowedMin(u.MinActionTimeout, sys.MinTimeout); l.Timeout < min {
		return &LimitError{"timeout", fmt.Sprintf(req+"duration %d milliseconds below allowed threshold of %d milliseconds", l.Timeout, min)}
	}
	if max := allowedMax(u.MaxActionMemory, sys.MaxMemory); l.Memory > max {
		return &LimitError{"memory", fmt.Sprintf(req+"memory size %d MB exceeds allowed threshold of %d MB", l.Memory, max)}
	}
	if min := allowedMin(u.MinActionMemory, sys.MinMemory); l.Memory < min {
		return &LimitError{"memory", fmt.Sprintf(req+"memory size %d MB below allowed threshold of %d MB", l.Memory, min)}
	}
	conc := l.MaxConcurrent(sys.StdConcurrency)
	if max := allowedMax(u.MaxActionConcurrency, sys.MaxConcurrency); conc > max {
		return &LimitError{"concurrency", fmt.Sprintf(req+"concurrency %d exceeds allowed threshold of %d", conc, max)}
	}
	if min := allowedMin(u.MinActionConcurrency, sys.MinConcurrency); conc < min {
		return &LimitError{"concurrency", fmt.Sprintf(req+"concurrency %d below allowed threshold of %d", conc, min)}
	}
	logs := l.LogsMB(sys.StdLogs)
	if max := allowedMax(u.MaxActionLogs, sys.MaxLogs); logs > max {
		return &LimitError{"logs", fmt.Sprintf(req+"log size %d MB exceeds allowed threshold of %d MB", logs, max)}
	}
	if min := allowedMin(u.MinActionLogs, sys.MinLogs); logs < min {
		return &LimitError{"logs", fmt.Sprintf(req+"log size %d MB below allowed threshold of %d MB", logs, min)}
	}
	return nil
}

// ResponseLimits bound how a runtime's answer is interpreted (see ClassifyRun).
type ResponseLimits struct {
	// Timeout is the action's limits.timeout.
	Timeout time.Duration
	// MaxPayload is the namespace's allowed maximum response size in bytes.
	MaxPayload int64
	// Truncation is how many bytes of an oversized response are kept.
	Truncation int64
}

// ResponseLimitsFor derives the limits for one activation: the action's timeout and the
// namespace's payload/truncation sizes narrowed to the system's.
func ResponseLimitsFor(l ActionLimits, u UserLimits, sys SystemLimits) ResponseLimits {
	rl := ResponseLimits{Timeout: time.Duration(l.Timeout) * time.Millisecond, MaxPayload: sys.MaxPayload, Truncation: sys.Truncation}
	if u.MaxPayloadSize != nil && u.MaxPayloadSize.Bytes() < rl.MaxPayload {
		rl.MaxPayload = u.MaxPayloadSize.Bytes()
	}
	if u.TruncationSize != nil && u.TruncationSize.Bytes() < rl.Truncation {
		rl.Truncation = u.TruncationSize.Bytes()
	}
	return rl
}
