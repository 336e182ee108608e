package invoker

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/snapinvoker/snapinvoker/activation"
	"github.com/snapinvoker/snapinvoker/invoker/kafkafeed"
)

// answer sends the acks of out.plan in order (each after the previous one was sent, which also
// orders a Completion after its Result), with a user event beside every slot-freeing ack. It
// reports false when the invoker was aborted before everything went out.
func (inv *Invoker) answer(ctx context.Context, log *zap.Logger, msg *activation.ActivationMessage, out outcome) bool {
	topic := inv.d.TopicPrefix + msg.RootControllerIndex.Topic()
	acks := activation.BuildAcks(out.plan, msg.TransID, &out.record, inv.d.Instance)
	for i, ack := range acks {
		step := out.plan.Steps[i]
		if !inv.sendAck(ctx, log, topic, ack, step.Shrink) {
			return false
		}
		if ack.FreesSlot() {
			inv.d.Metrics.AckLatency(inv.d.Now().Sub(out.readAt))
			inv.d.Metrics.Activation(statusLabel(out.record.Response.StatusCode), out.start)
		}
		if step.Event && inv.d.UserEventsTopic != "" {
			inv.sendEvent(ctx, log, msg, &out.record)
		}
	}
	return true
}

// sendAck publishes one ack, re-sending it shrunk if Kafka refuses it as too large, and
// retrying while Kafka is unreachable until the invoker is aborted.
func (inv *Invoker) sendAck(ctx context.Context, log *zap.Logger, topic string, ack activation.Ack, shrunk bool) bool {
	backoff := 100 * time.Millisecond
	for {
		if inv.dead.Load() {
			return false
		}
		body, err := json.Marshal(ack)
		if err != nil {
			log.Error("ack cannot be encoded; sending it shrunk", zap.Error(err))
			ack, shrunk = ack.Shrink(), true
			continue
		}
		err = inv.d.Acks.Send(ctx, topic, body)
		if err == nil {
			inv.d.Metrics.Ack(ack.Kind.String(), shrunk)
			return true
		}
		if errors.Is(err, kafkafeed.ErrTooLarge) && !shrunk {
			log.Warn("ack too large for Kafka; sending it shrunk (the controller reads the record from the database)", zap.Int("bytes", len(body)))
			ack, shrunk = ack.Shrink(), true
			continue
		}
		if ctx.Err() != nil {
			return false
		}
		log.Warn("ack not sent; retrying", zap.String("topic", topic), zap.Error(err))
		select {
		case <-ctx.Done():
			return false
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// sendEvent publishes the user event of a completed activation; a lost event is logged only.
func (inv *Invoker) sendEvent(ctx context.Context, log *zap.Logger, msg *activation.ActivationMessage, rec *activation.WhiskActivation) {
	ev, ok := activation.ActivationEventFrom(rec, inv.d.Instance.Source(), msg.User.Namespace.UUID, inv.d.Now().UnixMilli())
	if !ok {
		return
	}
	body, err := json.Marshal(ev)
	if err == nil {
		err = inv.d.Acks.Send(ctx, inv.d.UserEventsTopic, body)
	}
	if err != nil {
		log.Warn("user event not sent", zap.Error(err))
	}
}

// statusLabel is the metrics label of a response status.
func statusLabel(code int) string {
	switch code {
	case activation.StatusSuccess:
		return "success"
	case activation.StatusApplicationError:
		return "application_error"
	case activation.StatusDeveloperError:
		return "action_developer_error"
	case activation.StatusWhiskError:
		return "whisk_internal_error"
	}
	return "unknown"
}
