package activation

// AckSituation is why acks are being sent for an activation (protocol §3 table).
type AckSituation int

// The situations of the ack table.
const (
	// AfterRun: the activation reached a runtime (it ran, or its /init failed).
	AfterRun AckSituation = iota + 1
	// PreExecutionFailure: the action document was missing, unreadable or mismatched, the fetch
	// failed, or its limits violate the namespace's; a fallback activation is acked and stored.
	PreExecutionFailure
	// Blacklisted: the namespace is blocked; the fallback activation is acked shrunk, not stored.
	Blacklisted
	// ContainerStartFailure: the instance for a cold start could not be created.
	ContainerStartFailure
	// AbortedBuffered: an activation waiting on an instance whose init or cold start failed.
	AbortedBuffered
)

// AckStep is one ack to send.
type AckStep struct {
	Kind AckKind
	// Shrink: send the response as the activation id only (every ack of a non-blocking activation).
	Shrink bool
	// AfterLogs: send only after log collection finished and the previous step's send completed.
	AfterLogs bool
	// Event: emit the user event alongside (the ack frees the controller's slot).
	Event bool
}

// AckPlan is the acks to send, in order, and whether the activation record is stored.
type AckPlan struct {
	Steps []AckStep
	Store bool
}

// ChooseAcks applies the ack table of protocol §3. logsCollected is whether logs are
// collected for this action (limits.logs ≠ 0, see LogsCollected); it matters only AfterRun.
//
//	AfterRun, blocking, logs collected   → Result (full, logs []) now; Completion after logs
//	AfterRun, blocking, log limit 0      → Combined
//	AfterRun, non-blocking               → Completion (after logs when collected)
//	PreExecutionFailure                  → Combined (shrunk if non-blocking); stored
//	Blacklisted                          → Combined, always shrunk; not stored
//	ContainerStartFailure                → Combined (shrunk if non-blocking); stored
//	AbortedBuffered                      → blocking: Combined; non-blocking: Completion; stored
//
// If a send is refused as too large, the caller re-sends that ack shrunk (Ack.Shrink).
func ChooseAcks(s AckSituation, blocking, logsCollected bool) AckPlan {
	step := func(k AckKind, afterLogs bool) AckStep {
		return AckStep{Kind: k, Shrink: !blocking && k != CompletionAck, AfterLogs: afterLogs, Event: k != ResultAck}
	}
	switch s {
	case AfterRun:
		switch {
		case blocking && logsCollected:
			return AckPlan{Steps: []AckStep{step(ResultAck, false), step(CompletionAck, true)}, Store: true}
		case blocking:
			return AckPlan{Steps: []AckStep{step(CombinedAck, false)}, Store: true}
		}
		return AckPlan{Steps: []AckStep{step(CompletionAck, logsCollected)}, Store: true}
	case Blacklisted:
		st := step(CombinedAck, false)
		st.Shrink = true
		return AckPlan{Steps: []AckStep{st}, Store: false}
	case PreExecutionFailure, ContainerStartFailure:
		return AckPlan{Steps: []AckStep{step(CombinedAck, false)}, Store: true}
	case AbortedBuffered:
		if blocking {
			return AckPlan{Steps: []AckStep{step(CombinedAck, false)}, Store: true}
		}
		return AckPlan{Steps: []AckStep{step(CompletionAck, false)}, Store: true}
	}
	return AckPlan{}
}

// LogsCollected is upstream's logsToBeCollected: logs are collected unless limits.logs is 0.
func LogsCollected(l ActionLimits, sys SystemLimits) bool { return l.LogsMB(sys.StdLogs) != 0 }

// BuildAcks turns a plan into the messages to send for activation a (not nil), applying Shrink.
func BuildAcks(p AckPlan, tid TransactionID, a *WhiskActivation, instance InvokerInstanceID) []Ack {
	out := make([]Ack, 0, len(p.Steps))
	for _, st := range p.Steps {
		ack := NewAck(st.Kind, tid, a, instance)
		if st.Kind == ResultAck && a != nil {
			// A Result goes out before log collection: its activation has no logs yet.
			wl := a.WithoutLogs()
			ack.Response.Activation = &wl
		}
		if st.Shrink {
			ack = ack.Shrink()
		}
		out = append(out, ack)
	}
	return out
}
