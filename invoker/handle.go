package invoker

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/snapinvoker/snapinvoker/activation"
	"github.com/snapinvoker/snapinvoker/backend"
	"github.com/snapinvoker/snapinvoker/invoker/couch"
	"github.com/snapinvoker/snapinvoker/invoker/kafkafeed"
)

// outcome is everything needed to answer one activation.
type outcome struct {
	record    activation.WhiskActivation
	plan      activation.AckPlan
	start     string // start kind for metrics ("none" when no runtime was reached)
	readAt    time.Time
	blocking  bool
	storeable bool
}

// handle processes one Kafka record to the end: decoded, run (or refused), acked, stored, and
// its offset released for commit.
func (inv *Invoker) handle(ctx context.Context, m *kafkafeed.Message) {
	readAt := inv.d.Now()
	msg, err := activation.DecodeActivationMessage(m.Value)
	if err != nil {
		// Nothing can be answered without a decodable activation id and controller: upstream
		// also drops such records. The offset is committed so the record is not read again.
		inv.d.Metrics.Malformed()
		inv.log.Error("malformed activation message skipped", zap.Int64("offset", m.Offset), zap.Int("bytes", len(m.Value)), zap.Error(err))
		m.Done()
		return
	}
	log := inv.log.With(zap.String("activation_id", string(msg.ActivationID)),
		zap.String("transaction_id", msg.TransID.ID), zap.String("action", msg.Action.String()))

	if m.Offset < inv.d.RedeliveryBound {
		if done := inv.alreadyDone(ctx, log, msg); done {
			inv.d.Metrics.Skipped()
			log.Info("activation delivered again after a restart was already completed; skipped", zap.Int64("offset", m.Offset))
			m.Done()
			return
		}
	}

	out := inv.process(ctx, log, msg, readAt, m.Release)
	if inv.dead.Load() {
		return
	}
	out.readAt = readAt
	if !inv.answer(ctx, log, msg, out) {
		return // aborted: no ack went out, nothing is committed
	}
	if !out.storeable {
		m.Done()
		return
	}
	doc, err := json.Marshal(out.record.Stored(inv.d.Now().UnixMilli()))
	if err != nil {
		log.Error("activation record cannot be encoded; not stored", zap.Error(err))
		m.Done()
		return
	}
	inv.d.Records.Put(out.record.DocID(), doc, func(err error) {
		if inv.dead.Load() {
			return
		}
		if err != nil && !errors.Is(err, couch.ErrConflict) {
			log.Error("activation record not stored", zap.Error(err))
			if inv.work.Err() != nil {
				return // shutting down: leave the offset uncommitted so the record is retried
			}
		}
		m.Done()
	})
}

// alreadyDone reports whether the activation's record exists (it was acked by an earlier
// process). While the store cannot answer it keeps asking; it gives up (false) only when the
// invoker stops.
func (inv *Invoker) alreadyDone(ctx context.Context, log *zap.Logger, msg *activation.ActivationMessage) bool {
	chk, ok := inv.d.Records.(RecordChecker)
	if !ok {
		return false
	}
	id := msg.User.Namespace.Name + "/" + string(msg.ActivationID)
	backoff := 100 * time.Millisecond
	for {
		exists, err := chk.Exists(ctx, id)
		if err == nil {
			return exists
		}
		log.Warn("cannot tell whether a redelivered activation was completed; retrying", zap.Error(err))
		select {
		case <-ctx.Done():
			return false
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// process turns a message into its record and ack plan. release is called as soon as the
// activation holds no capacity any more.
func (inv *Invoker) process(ctx context.Context, log *zap.Logger, msg *activation.ActivationMessage, readAt time.Time, release func()) outcome {
	fail := func(s activation.AckSituation, resp activation.ActivationResponse) outcome {
		release()
		rec := activation.FallbackActivation(msg, resp, inv.d.Now())
		plan := activation.ChooseAcks(s, msg.Blocking, false)
		return outcome{record: rec, plan: plan, start: "none", blocking: msg.Blocking,
			storeable: plan.Store && activation.ShouldStore(msg, resp, inv.d.StoreBlocking, inv.d.StoreNonBlocking)}
	}

	if inv.d.Blacklist.Blocked(msg.User.Namespace.Name) {
		log.Info("activation of a blacklisted namespace refused")
		return fail(activation.Blacklisted, activation.ApplicationError(activation.MsgNamespaceBlocked))
	}
	doc, err := inv.fetch(ctx, msg)
	if err != nil {
		if errors.Is(err, couch.ErrNotFound) {
			log.Info("action not found", zap.Error(err))
			return fail(activation.PreExecutionFailure, activation.ApplicationError(activation.MsgActionRemoved))
		}
		log.Error("action fetch failed", zap.Error(err))
		return fail(activation.PreExecutionFailure, activation.WhiskError(activation.MsgActionFetchError))
	}
	prep, err := inv.prepared.get(doc, inv.d.Manifest)
	if err != nil {
		log.Error("action document is not executable", zap.String("rev", doc.Rev), zap.Error(err))
		return fail(activation.PreExecutionFailure, activation.WhiskError(activation.MsgActionMismatch))
	}
	action := prep.action
	if action.EntityType != "" && action.EntityType != "action" {
		log.Error("document is not an action", zap.String("entityType", action.EntityType))
		return fail(activation.PreExecutionFailure, activation.WhiskError(activation.MsgActionMismatch))
	}
	if action.Exec.Kind == activation.KindSequence {
		log.Error("a sequence was sent to the invoker")
		return fail(activation.PreExecutionFailure, activation.WhiskError(activation.MsgActionFetchError))
	}
	if err := activation.CheckLimits(action.Limits, msg.User.Limits, inv.d.Sys); err != nil {
		var le *activation.LimitError
		if errors.As(err, &le) {
			log.Info("action limits not allowed for the namespace", zap.String("field", le.Field))
			return fail(activation.PreExecutionFailure, activation.ApplicationError(le.Message))
		}
		return fail(activation.PreExecutionFailure, activation.ApplicationError(err.Error()))
	}

	rl := activation.ResponseLimitsFor(action.Limits, msg.User.Limits, inv.d.Sys)
	logLimit := action.Limits.LogsMB(inv.d.Sys.StdLogs) << 20
	timeout := time.Duration(action.Limits.Timeout) * time.Millisecond
	now := inv.d.Now()
	inv1 := activation.Invocation{Msg: msg, Action: action, Keys: inv.d.Keys, Code: doc.Attachment,
		Deadline: now.Add(timeout).UnixMilli()}
	// Building the /run body checks the arguments (decryption, content shape) that /init
	// shares; the code itself was checked when the document was decoded.
	if _, err := activation.BuildRun(inv1); err != nil {
		// Undecryptable parameters, a scalar content: the invocation cannot be formed.
		log.Error("runtime request cannot be built", zap.Error(err))
		if errors.Is(err, activation.ErrNotRunnable) {
			return fail(activation.PreExecutionFailure, activation.DeveloperError(err.Error()))
		}
		return fail(activation.PreExecutionFailure, activation.WhiskError(activation.MsgActionFetchError))
	}
	// The bodies are built again when sent, with that moment's deadline; the arguments were
	// checked above, so only the deadline changes.
	body := func(build func(activation.Invocation) (any, error)) func(time.Time) []byte {
		return func(at time.Time) []byte {
			in := inv1
			in.Deadline = at.Add(timeout).UnixMilli()
			v, err := build(in)
			if err != nil {
				log.Error("runtime request cannot be built", zap.Error(err))
			}
			b, _ := json.Marshal(v)
			return b
		}
	}
	exe := Execution{
		ActivationID:  string(msg.ActivationID),
		TransactionID: msg.TransID.ID,
		Action:        backendAction(inv.d.Manifest, msg, action, prep.codeDigest, logLimit),
		Digest:        hashJSON(prep.digest, msg.Action.Binding),
		MakeInit:      body(func(in activation.Invocation) (any, error) { return activation.BuildInit(in) }),
		MakeRun:       body(func(in activation.Invocation) (any, error) { return activation.BuildRun(in) }),
		LogLimit:      logLimit,
		MaxResponse:   rl.Truncation,
		Keep: func(run backend.Result) bool {
			return !run.LogsTruncated && activation.ClassifyRun(run.Outcome, rl).KeepContainer()
		},
	}
	res, err := inv.d.Executor.Execute(ctx, exe)
	release()
	if err != nil {
		if inv.dead.Load() {
			return outcome{}
		}
		resp := activation.WhiskError(activation.MsgResourceProvision)
		if errors.Is(err, backend.ErrActionFailed) {
			resp = activation.DeveloperError(err.Error())
		}
		log.Error("no instance could be provided", zap.Error(err))
		rec := activation.BuildActivation(activation.RecordInput{Msg: msg, Action: action, Sys: inv.d.Sys, Response: resp, Now: inv.d.Now()})
		plan := activation.ChooseAcks(activation.ContainerStartFailure, msg.Blocking, false)
		return outcome{record: rec, plan: plan, start: "none", blocking: msg.Blocking,
			storeable: plan.Store && activation.ShouldStore(msg, resp, inv.d.StoreBlocking, inv.d.StoreNonBlocking)}
	}
	if res.Driver != "" {
		if res.Init != nil {
			inv.d.Metrics.Driver(res.Driver, "init", res.Init.Outcome.Elapsed())
		}
		if res.Run != nil {
			inv.d.Metrics.Driver(res.Driver, "run", res.Run.Outcome.Elapsed())
		}
		if res.StartLatency > 0 {
			inv.d.Metrics.Driver(res.Driver, "start", res.StartLatency)
		}
	}
	rec := inv.buildRecord(msg, action, rl, logLimit, res)
	situation := activation.AfterRun
	if res.Aborted {
		situation = activation.AbortedBuffered
	}
	plan := activation.ChooseAcks(situation, msg.Blocking, activation.LogsCollected(action.Limits, inv.d.Sys))
	log.Debug("activation ran", zap.String("start", res.Start), zap.String("driver", res.Driver), zap.Int("status", rec.Response.StatusCode))
	return outcome{record: rec, plan: plan, start: startLabel(res.Start), blocking: msg.Blocking,
		storeable: plan.Store && activation.ShouldStore(msg, rec.Response, inv.d.StoreBlocking, inv.d.StoreNonBlocking)}
}

// fetch reads the action, retrying for a while when CouchDB is unreachable.
func (inv *Invoker) fetch(ctx context.Context, msg *activation.ActivationMessage) (*couch.ActionDoc, error) {
	deadline := inv.d.Now().Add(inv.d.FetchRetry)
	backoff := 50 * time.Millisecond
	for {
		doc, err := inv.d.Actions.Get(ctx, msg.Action.DocID(), msg.Revision)
		if err == nil || !errors.Is(err, couch.ErrUnavailable) || !inv.d.Now().Before(deadline) || ctx.Err() != nil {
			return doc, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, time.Second)
	}
}

// buildRecord classifies the runtime outcome and makes the activation record.
func (inv *Invoker) buildRecord(msg *activation.ActivationMessage, action *activation.ActionDocument, rl activation.ResponseLimits, logLimit int64, res Executed) activation.WhiskActivation {
	in := activation.RecordInput{Msg: msg, Action: action, Sys: inv.d.Sys, Now: inv.d.Now()}
	collector := activation.NewLogCollector(logLimit)
	driverTruncated := false
	collect := func(r *backend.Result) {
		for _, l := range r.Logs {
			collector.Add(l)
		}
		driverTruncated = driverTruncated || r.LogsTruncated
	}
	initFailed := false
	if res.Init != nil {
		o := res.Init.Outcome
		in.Init = &activation.Interval{Start: o.Start, End: o.End}
		collect(res.Init)
		if cls := activation.ClassifyInit(o, rl); !cls.Initialized {
			in.Response, in.TimedOut, initFailed = cls.Response, cls.TimedOut, true
		}
	}
	if res.Run != nil && !initFailed {
		o := res.Run.Outcome
		in.Run = &activation.Interval{Start: o.Start, End: o.End}
		collect(res.Run)
		cls := activation.ClassifyRun(o, rl)
		in.Response, in.TimedOut = cls.Response, cls.TimedOut
	}
	if res.Run == nil && !initFailed {
		in.Response = activation.WhiskError(activation.MsgResourceProvision)
	}
	if logLimit > 0 {
		logs, _ := collector.Finish(in.Now, activation.LogOutcome{DeveloperError: in.Response.IsDeveloperError()})
		if driverTruncated && !collector.Truncated() {
			// The driver stopped at the limit before the collector saw the excess.
			note := activation.InvokerLogLine(in.Now, activation.MsgLogsTruncated(logLimit))
			at := len(logs)
			if in.Response.IsDeveloperError() && at > 0 {
				at--
			}
			logs = append(logs[:at], append([]string{note}, logs[at:]...)...)
		}
		in.Logs = logs
	}
	return activation.BuildActivation(in)
}

// backendAction describes the action to the drivers.
func backendAction(m *activation.Manifest, msg *activation.ActivationMessage, a *activation.ActionDocument, codeDigest string, logLimit int64) backend.Action {
	return backend.Action{
		Kind:        a.Exec.Kind,
		Image:       a.Exec.Image,
		Native:      a.Exec.Kind == activation.KindBlackbox && m.IsNativeBlackbox(a.Exec.Image),
		Namespace:   msg.User.Namespace.Name,
		Name:        a.FullyQualifiedName().String(),
		DocID:       a.ID,
		Revision:    a.Rev,
		Version:     a.Version.String(),
		CodeDigest:  codeDigest,
		Memory:      a.Limits.Memory << 20,
		Timeout:     time.Duration(a.Limits.Timeout) * time.Millisecond,
		LogLimit:    logLimit,
		Concurrency: int(max(1, a.Limits.MaxConcurrent(1))),
	}
}

func startLabel(s string) string {
	switch s {
	case "cold", "recreated":
		return "cold"
	case "prewarmed", "recreatedPrewarm":
		return "prewarm"
	case "warmed", "warming", "warmingCold":
		return "warm"
	case "restored":
		return "restored"
	}
	return "none"
}
