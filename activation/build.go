package activation

import (
	"time"
)

// Interval is the span of one /init or /run call as the invoker measured it.
type Interval struct{ Start, End time.Time }

// Duration is End − Start.
func (i Interval) Duration() time.Duration { return i.End.Sub(i.Start) }

// RecordInput is everything an activation record is built from.
type RecordInput struct {
	Msg    *ActivationMessage
	Action *ActionDocument
	Sys    SystemLimits
	// Response is the classified outcome.
	Response ActivationResponse
	// Init is the /init call; nil for a warm start (then there is no initTime annotation).
	Init *Interval
	// Run is the /run call; nil when /init failed or the activation never reached a runtime.
	Run *Interval
	// TimedOut is the "timeout" annotation (Classification.TimedOut).
	TimedOut bool
	// Now is the time used when neither call happened (container start failure, aborted run).
	Now time.Time
	// Logs are the formatted log lines (nil for none).
	Logs []string
}

func millis(t time.Time) int64 { return t.UnixMilli() }

// BuildActivation makes the activation record (ContainerProxy.constructWhiskActivation):
//
//   - cold start that ran: start = run start − init duration, end = run end, initTime = init
//     duration, waitTime = init start − transid start;
//   - warm start: start/end of /run, waitTime = run start − transid start, no initTime;
//   - failed /init: start/end of /init, initTime = duration = init duration;
//   - neither call (container start failure, aborted buffered run): start = end = Now,
//     duration 0, waitTime = Now − transid start.
//
// duration = end − start; annotations in upstream order: limits, path, kind, timeout,
// causedBy (if the message has a cause), initTime, waitTime, binding (if invoked through one).
// namespace and subject are the invoking identity's; name and version the action's.
func BuildActivation(in RecordInput) WhiskActivation {
	var start, end, waitFrom time.Time
	var initTime *int64
	switch {
	case in.Run != nil && in.Init != nil:
		d := in.Init.Duration().Milliseconds()
		initTime = &d
		start = in.Run.Start.Add(-time.Duration(d) * time.Millisecond)
		end, waitFrom = in.Run.End, in.Init.Start
	case in.Run != nil:
		start, end, waitFrom = in.Run.Start, in.Run.End, in.Run.Start
	case in.Init != nil:
		d := in.Init.Duration().Milliseconds()
		initTime = &d
		start, end, waitFrom = in.Init.Start, in.Init.End, in.Init.Start
	default:
		start, end, waitFrom = in.Now, in.Now, in.Now
	}
	duration := end.Sub(start).Milliseconds()
	wait := millis(waitFrom) - in.Msg.TransID.Start

	ann := Parameters{
		{Key: AnnotationLimits, Value: in.Action.Limits.Annotation(in.Sys)},
		{Key: AnnotationPath, Value: mustJSON(in.Action.FullyQualifiedName().String())},
		{Key: AnnotationKind, Value: mustJSON(in.Action.Exec.Kind)},
		{Key: AnnotationTimeout, Value: mustJSON(in.TimedOut)},
	}
	if in.Msg.CausedBySequence() {
		ann = append(ann, Parameter{Key: AnnotationCausedBy, Value: mustJSON(KindSequence)})
	}
	if initTime != nil {
		ann = append(ann, Parameter{Key: AnnotationInitTime, Value: mustJSON(*initTime)})
	}
	ann = append(ann, Parameter{Key: AnnotationWaitTime, Value: mustJSON(wait)})
	if in.Msg.Action.Binding != "" {
		ann = append(ann, Parameter{Key: AnnotationBinding, Value: mustJSON(in.Msg.Action.Binding)})
	}
	logs := in.Logs
	if logs == nil {
		logs = []string{}
	}
	return WhiskActivation{
		Namespace:    in.Msg.User.Namespace.Name,
		Name:         in.Action.Name,
		Subject:      in.Msg.User.Subject,
		ActivationID: in.Msg.ActivationID,
		Start:        millis(start),
		End:          millis(end),
		Cause:        in.Msg.Cause,
		Response:     in.Response,
		Logs:         logs,
		Version:      in.Action.Version,
		Annotations:  ann,
		Duration:     &duration,
	}
}

// FallbackActivation is the record of an activation that never reached a runtime because of
// a pre-execution failure (InvokerReactive.generateFallbackActivation): start = end = now,
// duration 0, annotations path (the message's action without version), kind "unknown" and
// causedBy if the message has a cause; version is the message's or 0.0.1.
func FallbackActivation(msg *ActivationMessage, resp ActivationResponse, now time.Time) WhiskActivation {
	zero := int64(0)
	v := DefaultVersion
	if msg.Action.Version != nil {
		v = *msg.Action.Version
	}
	ann := Parameters{
		{Key: AnnotationPath, Value: mustJSON(msg.Action.String())},
		{Key: AnnotationKind, Value: mustJSON(KindUnknown)},
	}
	if msg.CausedBySequence() {
		ann = append(ann, Parameter{Key: AnnotationCausedBy, Value: mustJSON(KindSequence)})
	}
	return WhiskActivation{
		Namespace:    msg.User.Namespace.Name,
		Name:         msg.Action.Name,
		Subject:      msg.User.Subject,
		ActivationID: msg.ActivationID,
		Start:        millis(now),
		End:          millis(now),
		Cause:        msg.Cause,
		Response:     resp,
		Logs:         []string{},
		Version:      v,
		Annotations:  ann,
		Duration:     &zero,
	}
}
