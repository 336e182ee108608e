package activation

import "time"

// RuntimeFailure says how a /init or /run ended when it did not end with a response from the
// action's runtime. The zero value means the runtime answered (see RuntimeOutcome.Status).
type RuntimeFailure int

const (
	// NoFailure: the runtime answered with a status and a body.
	NoFailure RuntimeFailure = iota
	// FailureTimeout: the deadline (the action's limits.timeout) passed before the runtime answered.
	FailureTimeout
	// FailureExited: the runtime went away (connection dropped, process or guest exited) before
	// answering.
	FailureExited
	// FailureOOM: the runtime was killed because it exceeded its memory limit.
	FailureOOM
	// FailureNoResponse: an answer came but carried no usable length (missing or negative
	// Content-Length in HTTP terms).
	FailureNoResponse
)

func (f RuntimeFailure) String() string {
	switch f {
	case NoFailure:
		return "none"
	case FailureTimeout:
		return "timeout"
	case FailureExited:
		return "exited"
	case FailureOOM:
		return "oom"
	case FailureNoResponse:
		return "no-response"
	}
	return "unknown"
}

// RuntimeOutcome is what a driver observed from one /init or /run call on an action's runtime,
// before any OpenWhisk interpretation. The pure rules in this package (ClassifyInit, ClassifyRun)
// turn it into an ActivationResponse with the exact texts of the protocol.
//
// Drivers fill it; they never decide success or failure themselves.
type RuntimeOutcome struct {
	// Failure is NoFailure when the runtime answered.
	Failure RuntimeFailure
	// Status is the HTTP status code the runtime answered with (200 on success). Drivers that
	// do not speak HTTP internally use 200 for a result line and 502 for an error they map
	// the way the managed runtimes do.
	Status int
	// Body holds at most the truncation limit's bytes of the response body.
	Body []byte
	// Length is the full length in bytes of the response body, which may exceed len(Body)
	// when the driver stopped reading at the truncation limit.
	Length int
	// Start and End bound the call as the driver measured it.
	Start, End time.Time
}

// Elapsed is the duration of the call.
func (o RuntimeOutcome) Elapsed() time.Duration { return o.End.Sub(o.Start) }

// LogLine is one line an action wrote during one activation, before formatting.
type LogLine struct {
	Time time.Time
	// Stream is "stdout" or "stderr".
	Stream string
	// Text is the line without its trailing newline.
	Text string
}
