package activation

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every decoding or validation failure in this package is a *FieldError that
// wraps exactly one of the first four (which kind of document was bad) and, where it applies,
// one of the others (what was wrong), so callers can branch with errors.Is.
var (
	// ErrInvalidMessage: a Kafka record (ActivationMessage, acknowledgement, ping, user event,
	// instance id) could not be read.
	ErrInvalidMessage = errors.New("invalid message")
	// ErrInvalidRecord: an activation record (WhiskActivation) could not be read.
	ErrInvalidRecord = errors.New("invalid activation record")
	// ErrInvalidAction: an action document could not be read or does not fit the runtimes manifest.
	ErrInvalidAction = errors.New("invalid action document")
	// ErrInvalidManifest: the runtimes manifest (RUNTIMES_MANIFEST) is invalid; the invoker must not start.
	ErrInvalidManifest = errors.New("invalid runtimes manifest")

	// ErrTooLarge: the input is larger than the protocol allows (MaxActivationLimit for Kafka records).
	ErrTooLarge = errors.New("too large")
	// ErrInvalidActivationID: an activation id is not 32 lower-case hex characters (or a 32-digit number).
	ErrInvalidActivationID = errors.New("invalid activation id")
	// ErrInvalidByteSize: a ByteSize string is not "<digits> B|K[B]|M[B]|G[B]".
	ErrInvalidByteSize = errors.New("invalid byte size")
	// ErrDecrypt: an encrypted parameter could not be decrypted (unknown scheme, missing key,
	// malformed ciphertext or failed authentication).
	ErrDecrypt = errors.New("cannot decrypt parameter")
	// ErrLimits: an action's limits lie outside what the system or the namespace allows.
	ErrLimits = errors.New("action limits not allowed")
	// ErrNotRunnable: the action or message cannot be turned into a runtime request (a sequence,
	// a scalar content, code that must be fetched first).
	ErrNotRunnable = errors.New("not runnable")
)

// FieldError says which field of which document was wrong and why.
//
// Field is a dotted path from the document root ("user.subject", "exec.kind",
// "runtimes.nodejs[1].stemCells[0].memory"); it is empty when the document as a whole is bad
// (not JSON, not an object). Kind is the sentinel for the document type (ErrInvalidMessage, …);
// Err is an optional more specific cause (ErrTooLarge, ErrInvalidActivationID, a JSON syntax
// error, …). errors.Is matches both.
type FieldError struct {
	Doc    string // what was being read: "ActivationMessage", "action document", …
	Field  string
	Reason string
	Kind   error
	Err    error
}

func (e *FieldError) Error() string {
	where := e.Doc
	if e.Field != "" {
		where += " field " + e.Field
	}
	return fmt.Sprintf("activation: %s: %s: %s", kindText(e.Kind), where, e.Reason)
}

func kindText(k error) string {
	if k == nil {
		return "invalid input"
	}
	return k.Error()
}

// Unwrap returns the document-kind sentinel and the specific cause, if any.
func (e *FieldError) Unwrap() []error {
	errs := make([]error, 0, 2)
	if e.Kind != nil {
		errs = append(errs, e.Kind)
	}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}
