package activation

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// OpenWhisk's texts for runtime failures (http/ErrorResponse.scala, Messages).
const (
	MsgAbnormalInit      = "The action did not initialize and exited unexpectedly."
	MsgAbnormalRun       = "The action did not produce a valid response and exited unexpectedly."
	MsgMemoryExhausted   = "The action exhausted its memory and was aborted."
	MsgActionRemoved     = "Action could not be found or may have been deleted."
	MsgActionMismatch    = "Action version is not compatible and cannot be invoked."
	MsgActionFetchError  = "Action could not be fetched."
	MsgNamespaceBlocked  = "The action was not invoked due to a blacklisted namespace."
	MsgResourceProvision = "Failed to provision resources to run the action."
)

// MsgImagePull is the developer error for a blackbox image that could not be pulled.
func MsgImagePull(image string) string {
	return fmt.Sprintf("Failed to pull container image '%s'.", image)
}

// MsgTimedOut is the developer error of an /init (init=true) or /run past the action's timeout.
func MsgTimedOut(timeout time.Duration, init bool) string {
	s := fmt.Sprintf("The action exceeded its time limits of %d milliseconds", timeout.Milliseconds())
	if init {
		return s + " during initialization."
	}
	return s + "."
}

// MsgInvalidInitResponse is the developer error for an /init answer without an "error" member.
func MsgInvalidInitResponse(body string) string {
	if body == "" {
		return "The action failed during initialization."
	}
	return "The action failed during initialization: " + body
}

// MsgInvalidRunResponse is the developer error for a /run answer that is not a JSON object or array.
func MsgInvalidRunResponse(body string) string {
	if body == "" {
		return "The action did not produce a valid JSON or JSON Array response."
	}
	return "The action did not produce a valid JSON or JSON Array response: " + body
}

// MsgTruncated is the error for a response longer than the allowed payload; trunk is the part kept.
func MsgTruncated(trunk string, length, max int64) string {
	return fmt.Sprintf("The action produced a response that exceeded the allowed length: %d > %d bytes. The truncated response was: %s", length, max, trunk)
}

// Classification is the interpretation of one /init or /run outcome.
type Classification struct {
	// Response is the activation's response. For a successful /init it is the zero value.
	Response ActivationResponse
	// Initialized is true when an /init succeeded (ClassifyInit only).
	Initialized bool
	// TimedOut is the record's "timeout" annotation: the call ran into the action's time limit.
	TimedOut bool
}

// KeepContainer reports whether the instance may be reused afterwards: only after success or
// an application error; developer and whisk errors destroy it.
func (c Classification) KeepContainer() bool {
	if c.Initialized {
		return true
	}
	return c.Response.IsSuccess() || c.Response.IsApplicationError()
}

// UTF16Length is the length of s as Java's String.length() counts it (the "size" of a response).
func UTF16Length(b []byte) int {
	n := 0
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		if r >= 0x10000 {
			n += 2
		} else {
			n++
		}
		b = b[size:]
	}
	return n
}

func bodyText(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}

func timedOut(o RuntimeOutcome, l ResponseLimits) bool {
	return o.Failure == FailureTimeout || (l.Timeout > 0 && o.Elapsed() >= l.Timeout)
}

func truncated(o RuntimeOutcome, l ResponseLimits) (trunk []byte, length int64, yes bool) {
	length = int64(o.Length)
	if length < int64(len(o.Body)) {
		length = int64(len(o.Body))
	}
	if l.MaxPayload <= 0 || length <= l.MaxPayload {
		return nil, length, false
	}
	trunk = o.Body
	if l.Truncation >= 0 && int64(len(trunk)) > l.Truncation {
		trunk = trunk[:l.Truncation]
	}
	return trunk, length, true
}

// ClassifyInit interprets an /init call (protocol §6): a 200 answer that was not truncated
// initializes; otherwise, in this order, running into the timeout is "exceeded its time
// limits … during initialization", OOM is "exhausted its memory", no answer is "did not
// initialize and exited unexpectedly", a truncated answer is the truncation text, a JSON
// object answer gives its "error" member (or "failed during initialization: <body>") and any
// other answer "failed during initialization: <body>" — all developer errors, with size = the
// answer's length when there was one.
func ClassifyInit(o RuntimeOutcome, l ResponseLimits) Classification {
	trunk, length, isTrunc := truncated(o, l)
	if o.Failure == NoFailure && o.Status == 200 && !isTrunc {
		return Classification{Initialized: true}
	}
	if timedOut(o, l) {
		return Classification{Response: DeveloperError(MsgTimedOut(l.Timeout, true)), TimedOut: true}
	}
	switch o.Failure {
	case FailureOOM:
		return Classification{Response: DeveloperError(MsgMemoryExhausted)}
	case FailureExited, FailureNoResponse, FailureTimeout:
		return Classification{Response: DeveloperError(MsgAbnormalInit)}
	}
	if isTrunc {
		r := DeveloperError(MsgTruncated(bodyText(trunk), length, l.MaxPayload))
		r.Size = intPtr(int(length))
		return Classification{Response: r}
	}
	size := intPtr(UTF16Length(o.Body))
	if jsonType(o.Body) == "object" {
		var m map[string]json.RawMessage
		if json.Unmarshal(o.Body, &m) == nil {
			if e, ok := m["error"]; ok {
				return Classification{Response: errorResponse(StatusDeveloperError, compact(e), size)}
			}
		}
	}
	r := DeveloperError(MsgInvalidInitResponse(bodyText(o.Body)))
	r.Size = size
	return Classification{Response: r}
}

// ClassifyRun interprets a /run call (protocol §6 and ActivationResponse.processRunResponseContent):
//
//	elapsed ≥ timeout (or FailureTimeout)  → developer error "exceeded its time limits of <ms> milliseconds.", TimedOut
//	FailureOOM                              → developer error "exhausted its memory and was aborted."
//	FailureExited / FailureNoResponse       → developer error "did not produce a valid response and exited unexpectedly."
//	answer longer than MaxPayload           → application error with the truncation text, size = full length
//	200 + JSON object without "error"       → success, result = the object
//	200 + JSON object with "error"          → application error {"error": that value}
//	200 + JSON array                        → success, result = the array
//	non-200 + JSON object                   → developer error with its "error" (or the invalid-response text)
//	anything else                           → developer error "did not produce a valid JSON or JSON Array response: <body>"
//
// Every answered case carries size = the answer's length in UTF-16 code units.
func ClassifyRun(o RuntimeOutcome, l ResponseLimits) Classification {
	if timedOut(o, l) {
		return Classification{Response: DeveloperError(MsgTimedOut(l.Timeout, false)), TimedOut: true}
	}
	switch o.Failure {
	case FailureOOM:
		return Classification{Response: DeveloperError(MsgMemoryExhausted)}
	case FailureExited, FailureNoResponse:
		return Classification{Response: DeveloperError(MsgAbnormalRun)}
	}
	if trunk, length, isTrunc := truncated(o, l); isTrunc {
		r := ApplicationError(MsgTruncated(bodyText(trunk), length, l.MaxPayload))
		r.Size = intPtr(int(length))
		return Classification{Response: r}
	}
	size := intPtr(UTF16Length(o.Body))
	invalid := func() Classification {
		r := DeveloperError(MsgInvalidRunResponse(bodyText(o.Body)))
		r.Size = size
		return Classification{Response: r}
	}
	switch jsonType(o.Body) {
	case "object":
		var m map[string]json.RawMessage
		if json.Unmarshal(o.Body, &m) != nil {
			return invalid()
		}
		e, hasErr := m["error"]
		switch {
		case o.Status == 200 && hasErr:
			return Classification{Response: errorResponse(StatusApplicationError, compact(e), size)}
		case o.Status == 200:
			return Classification{Response: SuccessResponse(compact(o.Body), size)}
		case hasErr:
			return Classification{Response: errorResponse(StatusDeveloperError, compact(e), size)}
		}
		return invalid()
	case "array":
		if o.Status == 200 && json.Valid(o.Body) {
			return Classification{Response: SuccessResponse(compact(o.Body), size)}
		}
	}
	return invalid()
}
