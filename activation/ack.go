package activation

import ()

// AckKind tells the three acknowledgement messages apart.
type AckKind int

// The acknowledgement kinds (protocol §3).
const (
	// ResultAck carries the result for a blocking caller and does not free the controller slot.
	ResultAck AckKind = iota + 1
	// CompletionAck frees the slot and never carries the result.
	CompletionAck
	// CombinedAck does both.
	CombinedAck
)

func (k AckKind) String() string {
	switch k {
	case ResultAck:
		return "result"
	case CompletionAck:
		return "completion"
	case CombinedAck:
		return "combined"
	}
	return "unknown"
}

// Ack is one acknowledgement (CompletionMessage, ResultMessage or
// CombinedCompletionAndResultMessage) as sent on completed<C>.
//
// Which members it carries depends on Kind: Completion has ActivationID, IsSystemError and
// Instance; Result has Response; Combined has Response, IsSystemError and Instance. A
// Response is either the full activation or, when shrunk, only its id.
type Ack struct {
	Kind    AckKind
	TransID TransactionID
	// Response is set for ResultAck and CombinedAck.
	Response AckResponse
	// ActivationID is set for CompletionAck (for the others use ID()).
	ActivationID ActivationID
	// IsSystemError is nil when absent on read (it is always written by NewAck).
	IsSystemError *bool
	// Instance is set for CompletionAck and CombinedAck.
	Instance InvokerInstanceID
}

// AckResponse is the `response` of a Result or Combined ack: a full activation, or only the
// activation id (the shrunk form).
type AckResponse struct {
	Activation *WhiskActivation // nil when shrunk
	ID         ActivationID
}

// MarshalJSON writes the activation, or the id string when shrunk.
func (r AckResponse) MarshalJSON() ([]byte, error) {
	if r.Activation != nil {
		return r.Activation.appendJSON(make([]byte, 0, 1024)), nil
	}
	return appendString(nil, string(r.ID)), nil
}

// NewAck builds an ack of the given kind for activation a (not nil). IsSystemError is the activation's
// response.statusCode == 3, as upstream sets it.
func NewAck(kind AckKind, tid TransactionID, a *WhiskActivation, instance InvokerInstanceID) Ack {
	sys := a.Response.IsWhiskError()
	ack := Ack{Kind: kind, TransID: tid, Instance: instance}
	switch kind {
	case CompletionAck:
		ack.ActivationID = a.ActivationID
		ack.IsSystemError = &sys
	case ResultAck:
		ack.Response = AckResponse{Activation: a, ID: a.ActivationID}
	case CombinedAck:
		ack.Response = AckResponse{Activation: a, ID: a.ActivationID}
		ack.IsSystemError = &sys
	}
	return ack
}

// ID is the activation id the ack is about.
func (a Ack) ID() ActivationID {
	if a.Kind == CompletionAck {
		return a.ActivationID
	}
	return a.Response.ID
}

// FreesSlot reports whether the ack frees the controller's slot (Completion or Combined);
// a user event accompanies every such ack.
func (a Ack) FreesSlot() bool { return a.Kind == CompletionAck || a.Kind == CombinedAck }

// Shrink returns the ack with its response reduced to the activation id: every ack of a
// non-blocking activation is sent shrunk, and an ack refused as too large is re-sent shrunk.
// A Completion is returned unchanged.
func (a Ack) Shrink() Ack {
	if a.Kind != CompletionAck {
		a.Response = AckResponse{ID: a.Response.ID}
	}
	return a
}

// MarshalJSON writes the message for its kind.
func (a Ack) MarshalJSON() ([]byte, error) { return a.appendJSON(make([]byte, 0, 1024)), nil }

// DecodeAck reads an acknowledgement and tells the kinds apart the way the controller does:
// "instance" and "response" ⇒ Combined; "instance" only ⇒ Completion; otherwise Result.
// Errors are *FieldError wrapping ErrInvalidMessage.
func DecodeAck(data []byte) (*Ack, error) {
	r := reader{doc: "AcknowledgementMessage", kind: ErrInvalidMessage}
	if len(data) > MaxActivationLimit {
		return nil, r.fail(largestMember(data), ErrTooLarge, "message is %d bytes, above MAX_ACTIVATION_LIMIT (%d bytes)", len(data), MaxActivationLimit)
	}
	o, err := r.parseObject(data, "")
	if err != nil {
		return nil, err
	}
	a := &Ack{}
	hasInstance, hasResponse := o.present("instance"), o.present("response")
	switch {
	case hasInstance && hasResponse:
		a.Kind = CombinedAck
	case hasInstance:
		a.Kind = CompletionAck
	default:
		a.Kind = ResultAck
	}
	tid, ok := o.m["transid"]
	if !ok {
		return nil, o.missing("transid")
	}
	if err := a.TransID.UnmarshalJSON(tid); err != nil {
		return nil, r.fail("transid", nil, "%v", err)
	}
	if a.Kind == CompletionAck {
		if a.ActivationID, err = o.activationID("activationId", true); err != nil {
			return nil, err
		}
	} else {
		v, ok := o.get("response")
		if !ok {
			if a.Kind == ResultAck {
				return nil, r.fail("response", nil, "is required but missing (an acknowledgement has 'response' (ResultMessage), 'instance' (CompletionMessage) or both (CombinedCompletionAndResultMessage))")
			}
			return nil, o.missing("response")
		}
		switch jsonType(v) {
		case "string":
			if a.Response.ID, err = o.activationID("response", true); err != nil {
				return nil, err
			}
		case "object":
			sub := reader{doc: r.doc, kind: r.kind}
			ro, err := sub.parseObject(v, "response")
			if err != nil {
				return nil, err
			}
			act, err := ro.activation(false)
			if err != nil {
				return nil, err
			}
			a.Response = AckResponse{Activation: act, ID: act.ActivationID}
		default:
			return nil, r.fail("response", nil, "must be an activation id string or a WhiskActivation object, got %s", jsonType(v))
		}
	}
	if a.Kind != ResultAck {
		if a.IsSystemError, err = o.optBool("isSystemError"); err != nil {
			return nil, err
		}
		if a.Instance, err = o.invokerIDField("instance"); err != nil {
			return nil, err
		}
	}
	return a, nil
}
