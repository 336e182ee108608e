package controller

import (
	"bytes"
	"context"
	"encoding/json"
	"time"

	"go.uber.org/zap"

	"github.com/snapinvoker/snapinvoker/activation"
)

// invokeSequence runs a sequence the way OpenWhisk's controller does: each component is an
// activation of its own (cause = the sequence's activation id, annotated causedBy: sequence by
// the invoker), the result of one is the input of the next, the first failure ends it, and the
// sequence gets its own activation record whose logs are the components' activation ids.
//
// The sequence runs to its end even when the caller stops waiting (202) or did not wait.
func (s *Server) invokeSequence(ctx context.Context, t tx, user Identity, seq *actionDoc, payload json.RawMessage,
	blocking bool, wait time.Duration, cause activation.ActivationID, depth int) (invokeOutcome, error) {
	id := activation.NewActivationID()
	done := make(chan *activation.WhiskActivation, 1)
	go func() {
		// Detached from the request: the sequence outlives a 202.
		done <- s.runSequence(context.Background(), t, user, seq, payload, id, cause, depth)
	}()
	if !blocking {
		return invokeOutcome{id: id}, nil
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case a := <-done:
		return invokeOutcome{id: id, activation: a}, nil
	case <-timer.C:
		return invokeOutcome{id: id}, nil
	case <-ctx.Done():
		return invokeOutcome{id: id}, nil
	}
}

func (s *Server) runSequence(ctx context.Context, t tx, user Identity, seq *actionDoc, payload json.RawMessage,
	id, cause activation.ActivationID, depth int) *activation.WhiskActivation {
	log := s.log.With(zap.String("activationId", string(id)), zap.String("tid", t.ID),
		zap.String("action", seq.Namespace+"/"+seq.Name))
	start := s.now()
	var (
		logs     []string
		response = activation.SuccessResponse(json.RawMessage(`{}`), nil)
		duration int64
		input    = payload
	)
	fail := func(msg string) {
		response = activation.WhiskError(msg)
	}
	for _, comp := range seq.Exec.Components {
		_, docID, err := resolveComponent(seq.Namespace, comp)
		if err != nil {
			fail(msgSequenceFailed)
			break
		}
		a, rev, err := s.loadAction(docID)
		if err != nil {
			// A component deleted after the sequence was created.
			response = activation.ApplicationError(msgSequenceMissing)
			break
		}
		// A component may run for its whole time limit; wait that long plus a minute, as
		// upstream does.
		compWait := time.Duration(a.Limits.Timeout)*time.Millisecond + time.Minute
		var out invokeOutcome
		if a.Exec.Kind == "sequence" {
			if depth+1 > s.limits.MaxSequence {
				fail(msgSequenceTooLong)
				break
			}
			out, err = s.invokeSequence(ctx, t, user, a, input, true, compWait, id, depth+1)
		} else {
			out, err = s.invokeSimple(ctx, t, user, a, rev, input, true, compWait, id)
		}
		if err != nil || out.activation == nil {
			log.Error("sequence component did not complete", zap.String("component", docID), zap.Error(err))
			if out.id != "" {
				logs = append(logs, string(out.id))
			}
			fail(msgSequenceFailed)
			break
		}
		logs = append(logs, string(out.id))
		r := out.activation.Response
		if out.activation.Duration != nil {
			duration += *out.activation.Duration
		} else if out.activation.End != 0 {
			duration += out.activation.End - out.activation.Start
		}
		response = r
		if !r.IsSuccess() {
			break
		}
		input = r.Result
		if t := bytes.TrimSpace(input); len(t) == 0 || (t[0] != '{' && t[0] != '[') {
			input = json.RawMessage(`{}`)
		}
	}
	end := s.now()
	ver, err := activation.ParseSemVer(seq.Version)
	if err != nil {
		ver = activation.DefaultVersion
	}
	limits, _ := json.Marshal(seq.Limits)
	ann := activation.Parameters{
		{Key: "topmost", Value: json.RawMessage(`true`)},
		{Key: activation.AnnotationPath, Value: mustMarshal(seq.Namespace + "/" + seq.Name)},
		{Key: activation.AnnotationKind, Value: json.RawMessage(`"sequence"`)},
		{Key: activation.AnnotationLimits, Value: limits},
	}
	if cause != "" {
		ann = append(ann[1:], activation.Parameter{Key: activation.AnnotationCausedBy, Value: json.RawMessage(`"sequence"`)})
	}
	if w := start.Sub(t.Start).Milliseconds(); w >= 0 {
		ann = append(ann, activation.Parameter{Key: activation.AnnotationWaitTime, Value: mustMarshal(w)})
	}
	rec := &activation.WhiskActivation{
		Namespace: user.Namespace, Name: seq.Name, Subject: user.Subject, ActivationID: id,
		Start: start.UnixMilli(), End: end.UnixMilli(), Cause: cause, Response: response,
		Logs: logs, Version: ver, Publish: seq.Publish, Annotations: ann, Duration: &duration,
	}
	if err := s.storeActivation(rec); err != nil {
		log.Error("storing the sequence's activation failed", zap.Error(err))
	}
	return rec
}

func mustMarshal(v any) json.RawMessage {
	b, _ := json.Marshal(v)
	return b
}
