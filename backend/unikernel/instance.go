package unikernel

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/snapinvoker/snapinvoker/activation"
	"github.com/snapinvoker/snapinvoker/backend"
	"github.com/snapinvoker/snapinvoker/kvm"
	"github.com/snapinvoker/snapinvoker/snapshotcache"
)

// DefaultMaxResponse is the body bytes kept when a RunRequest gives no MaxResponse (the payload
// truncation limit of spec §1).
const DefaultMaxResponse = 1 << 20

// instance is one guest of one action. Init, Run and the release half of Destroy hold call, so
// the guest is used by one goroutine at a time; Destroy interrupts a call in progress through
// interrupt first.
type instance struct {
	d      *Driver
	id     string
	memory int64

	call sync.Mutex
	// Guarded by call.
	fn          *function
	g           *kvm.Guest
	fromReady   bool
	initialised bool
	skeleton    *program // the dockerskeleton convention: no guest between activations
	// skeletonProg is the decoded executable while /init finds out its convention.
	skeletonProg *program
	managed      bool  // a launcher of package runtimes: "#NNN" reply lines
	broken       error // a reset failed: the guest is unusable
	action       backend.Action

	destroyed atomic.Bool
	// restored: the guest came from a cached function snapshot at Start (set before the
	// instance is shared, read without call so the pool never waits on a running /init).
	restored atomic.Bool
	// lastUsed is the last MemoryUsed answer, given while a call holds the guest.
	lastUsed  atomic.Int64
	intMu     sync.Mutex
	interrupt context.CancelFunc // ends the guest run in progress, if any
}

var (
	_ backend.Instance       = (*instance)(nil)
	_ backend.Restorer       = (*instance)(nil)
	_ backend.MemoryReporter = (*instance)(nil)
)

func (i *instance) ID() string { return i.id }

// Restored implements backend.Restorer: the instance was restored at Start from the action's
// function snapshot, so its /init already happened when the snapshot was taken.
func (i *instance) Restored() bool { return i.restored.Load() }

// SavedInit is how long the /init that the function snapshot holds took when it was built: what
// a restored instance did not pay. Zero when unknown (built by an earlier process) or not
// restored.
func (i *instance) SavedInit() time.Duration {
	i.call.Lock()
	defer i.call.Unlock()
	if !i.restored.Load() || i.fn == nil {
		return 0
	}
	return i.d.initTime(i.fn.key)
}

// answer is an outcome the driver gives itself, shaped like the actionloop proxy's replies.
func answer(start, end time.Time, status int, body []byte) backend.Result {
	return backend.Result{Outcome: activation.RuntimeOutcome{Status: status, Body: body, Length: len(body), Start: start, End: end}}
}

var okBody = []byte(`{"ok":true}`)

// begin runs a call's guest run under a context that Destroy can cancel.
func (i *instance) begin(ctx context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancel(ctx)
	i.intMu.Lock()
	i.interrupt = cancel
	i.intMu.Unlock()
	if i.destroyed.Load() {
		cancel()
	}
	return ctx, func() {
		i.intMu.Lock()
		i.interrupt = nil
		i.intMu.Unlock()
		cancel()
	}
}

// Init implements backend.Instance. On a restored instance it is a no-op; otherwise it finds or
// builds the function snapshot and restores a guest from it.
func (i *instance) Init(ctx context.Context, req backend.InitRequest) (backend.Result, error) {
	start := i.d.now()
	i.call.Lock()
	defer i.call.Unlock()
	if i.destroyed.Load() {
		return backend.Result{}, fmt.Errorf("unikernel: %s: init: instance destroyed: %w", i.id, backend.ErrPlatform)
	}
	if i.initialised {
		return answer(start, i.d.now(), 403, errorBody("Cannot initialize the action more than once.")), nil
	}
	a := req.Action
	if i.g != nil && i.restored.Load() {
		i.initialised, i.action = true, a
		if ce := i.d.log.Check(zap.DebugLevel, "init skipped: restored from the function snapshot"); ce != nil {
			ce.Write(zap.String("instance", i.id), zap.String("action", a.Name), zap.Bool("ready", i.fromReady),
				zap.Duration("saved", i.d.initTime(i.fn.key)))
		}
		return answer(start, i.d.now(), 200, okBody), nil
	}
	log := i.d.log.With(zap.String("instance", i.id), zap.String("action", a.Name))
	if err := checkAction(&a); err != nil {
		return backend.Result{}, fmt.Errorf("unikernel: %s: init: %w", i.id, err)
	}
	ks, _ := lookupKind(a.Kind)
	memory := guestMemory(max(a.Memory, i.memory))
	logLimit := max(a.LogLimit, 0)
	var key snapshotcache.Key
	var build func(context.Context) (*snapshotcache.Image, *dryRun, error)
	var ref *refusal
	if ks.runtimeSnapshot {
		line, digest, err := initLine(req.Body)
		if errors.As(err, &ref) {
			return answer(start, i.d.now(), ref.status, errorBody(ref.msg)), nil
		}
		rt, err := i.d.pythonRuntime()
		if err != nil {
			i.d.countUnsupported("runtime")
			return backend.Result{}, fmt.Errorf("unikernel: %s: init of %s: %w", i.id, a.Name, err)
		}
		key = functionKey(&a, digest)
		build = func(bctx context.Context) (*snapshotcache.Image, *dryRun, error) {
			return i.d.buildManagedFunction(bctx, "python:3", rt, key, line, memory, logLimit, req.Deadline)
		}
	} else {
		prog, err := decodeInit(req.Body)
		switch {
		case errors.As(err, &ref):
			return answer(start, i.d.now(), ref.status, errorBody(ref.msg)), nil
		case err != nil:
			i.d.countUnsupported("code")
			return backend.Result{}, fmt.Errorf("unikernel: %s: init of %s: %w", i.id, a.Name, err)
		}
		key = functionKey(&a, prog.digest)
		build = func(bctx context.Context) (*snapshotcache.Image, *dryRun, error) {
			return i.d.buildSnapshot(bctx, key, prog, memory, logLimit, req.Deadline)
		}
		i.skeletonProg = prog
	}
	i.initialised, i.action, i.managed = true, a, ks.runtimeSnapshot
	if err := key.Validate(); err != nil {
		return backend.Result{}, fmt.Errorf("unikernel: %s: init of %s: %w: %w", i.id, a.Name, backend.ErrPlatform, err)
	}
	ctx, done := i.begin(ctx)
	defer done()
	var mine *dryRun
	fn, err := i.d.openFunction(ctx, key, func(bctx context.Context) (*snapshotcache.Image, error) {
		img, r, err := build(bctx)
		mine = r
		return img, err
	})
	prog := i.skeletonProg
	i.skeletonProg = nil // only a dockerskeleton instance keeps its executable
	if mine != nil && mine.done != nil {
		mine.done() // the cache has read its memory by now
	}
	var failed *initFailed
	var unsup *unsupportedError
	switch {
	case err == nil:
	case errors.As(err, &failed):
		res := failed.res
		if mine == nil { // another instance ran the build: its logs are not ours
			res.Logs, res.LogsTruncated = nil, false
		}
		res.Outcome.Start = start
		if res.Outcome.End.Before(start) {
			res.Outcome.End = i.d.now()
		}
		return res, nil
	case errors.Is(err, errSkeleton):
		i.skeleton = prog
		return answer(start, i.d.now(), 200, okBody), nil
	case errors.As(err, &unsup):
		i.d.countUnsupported(unsup.cause)
		log.Info("action needs what the unikernel does not provide", zap.Error(err))
		return backend.Result{}, fmt.Errorf("unikernel: %s: init of %s: %w", i.id, a.Name, err)
	case i.destroyed.Load():
		return backend.Result{Outcome: activation.RuntimeOutcome{Failure: activation.FailureExited, Start: start, End: i.d.now()}}, nil
	case errors.Is(err, backend.ErrPlatform), errors.Is(err, backend.ErrUnsupported):
		return backend.Result{}, fmt.Errorf("unikernel: %s: init of %s: %w", i.id, a.Name, err)
	default:
		return backend.Result{}, fmt.Errorf("unikernel: %s: init of %s: %w: %w", i.id, a.Name, backend.ErrPlatform, err)
	}
	g, ready, err := i.d.takeGuest(ctx, fn)
	if err != nil {
		i.d.releaseFunction(fn)
		return backend.Result{}, fmt.Errorf("unikernel: %s: init of %s: %w", i.id, a.Name, err)
	}
	i.fn, i.g, i.fromReady = fn, g, ready
	res := answer(start, i.d.now(), 200, okBody)
	if mine != nil {
		res.Logs, res.LogsTruncated = mine.logs.lines, mine.logs.truncated
	}
	return res, nil
}

// Run implements backend.Instance.
func (i *instance) Run(ctx context.Context, req backend.RunRequest) (backend.Result, error) {
	start := i.d.now()
	i.call.Lock()
	defer i.call.Unlock()
	if i.destroyed.Load() {
		return backend.Result{}, fmt.Errorf("unikernel: %s: run %s: instance destroyed: %w", i.id, req.ActivationID, backend.ErrPlatform)
	}
	if i.broken != nil {
		return backend.Result{}, fmt.Errorf("unikernel: %s: run %s: %w: %w", i.id, req.ActivationID, backend.ErrPlatform, i.broken)
	}
	if !i.initialised || (i.g == nil && i.skeleton == nil) {
		return answer(start, i.d.now(), 500, errorBody("no action defined yet")), nil
	}
	maxResp := req.MaxResponse
	if maxResp <= 0 {
		maxResp = DefaultMaxResponse
	}
	ctx, done := i.begin(ctx)
	defer done()
	var res backend.Result
	var ex kvm.Exit
	var err error
	if i.skeleton != nil {
		res, ex, err = i.runSkeleton(ctx, req, maxResp, start)
	} else {
		res, ex, err = i.runActionloop(ctx, req, maxResp, start)
	}
	i.d.mu.Lock()
	i.d.st.Activations++
	i.d.mu.Unlock()
	var unsup *unsupportedError
	if errors.As(err, &unsup) {
		i.d.countUnsupported(unsup.cause)
		i.d.log.Info("activation needs what the unikernel does not provide; re-run elsewhere",
			zap.String("activation_id", req.ActivationID), zap.String("transaction_id", transactionID(req.Body)),
			zap.String("action", i.action.Name), zap.String("instance", i.id), zap.Error(err))
	} else if res.Outcome.Failure != activation.NoFailure && ex.Err != nil {
		i.d.log.Info("activation failed in the guest",
			zap.String("activation_id", req.ActivationID), zap.String("transaction_id", transactionID(req.Body)),
			zap.String("action", i.action.Name), zap.String("instance", i.id),
			zap.Stringer("failure", res.Outcome.Failure), zap.Error(ex.Err))
	}
	return res, err
}

// runActionloop feeds the /run body as one line and runs the guest until it has answered on fd 3
// or stopped, then resets it to the function snapshot.
func (i *instance) runActionloop(ctx context.Context, req backend.RunRequest, maxResp int64, start time.Time) (backend.Result, kvm.Exit, error) {
	g := i.g
	logs := newLogCollector(req.LogLimit, i.d.now)
	rctx, cancel := context.WithDeadline(ctx, req.Deadline)
	defer cancel()
	// The guest runs on after its reply line until it blocks for the next one (what an
	// actionloop executable does right away). Stopping it at the reply would save nothing for
	// such programs and would cancel the run's context while kvm still runs it.
	result := &resultSink{max: maxResp}
	g.SetOutput(logs.stream(0), logs.stream(1), result)
	g.Feed(append(bytes.ReplaceAll(req.Body, []byte("\n"), nil), '\n'))
	ex, err := g.Run(rctx)
	end := i.d.now()
	logs.flush()
	res := backend.Result{Logs: logs.lines, LogsTruncated: logs.truncated,
		Outcome: activation.RuntimeOutcome{Start: start, End: end}}
	if err != nil {
		i.broken = err
		return backend.Result{}, ex, fmt.Errorf("unikernel: %s: run %s: %w: %w", i.id, req.ActivationID, backend.ErrPlatform, err)
	}
	// Every activation starts from the function snapshot: put the guest back right away, so the
	// next Run (or a ready Start) finds it clean. See "Fresh state" in the package doc.
	defer func() {
		if err := g.Reset(); err != nil {
			i.broken = fmt.Errorf("reset to the function snapshot: %w", err)
		}
		i.d.mu.Lock()
		i.d.st.Resets++
		i.d.mu.Unlock()
	}()
	return i.classify(ctx, req, res, ex, result, logs)
}

// classify turns how a guest stopped into the step's outcome, an ErrUnsupported or an
// ErrPlatform error.
func (i *instance) classify(ctx context.Context, req backend.RunRequest, res backend.Result, ex kvm.Exit, result *resultSink, logs *logCollector) (backend.Result, kvm.Exit, error) {
	o := &res.Outcome
	if result.done {
		o.Status, o.Body, o.Length = 200, result.line(), result.length
		if len(o.Body) < len(result.body) && o.Length == len(result.body) {
			o.Length = len(o.Body) // a trailing carriage return is not part of the reply
		}
		if i.managed {
			// A launcher's reply may carry a status ("#502 {...}"); a plain reply that is not
			// an object or an array gets the actionloop proxy's 502 (runtimes package doc).
			status, body, err := parseReply(o.Body)
			switch {
			case err != nil:
				o.Status, o.Body = 502, notDictionary
			case status == 200 && !isJSONObjectOrArray(body) && o.Length == len(o.Body):
				o.Status, o.Body = 502, notDictionary
			default:
				o.Status, o.Length = status, o.Length-(len(o.Body)-len(body))
				o.Body = body
			}
			if o.Status == 502 && bytes.Equal(o.Body, notDictionary) {
				o.Length = len(o.Body)
			}
		}
		return res, ex, nil
	}
	switch ex.Reason {
	case kvm.BlockedOnRead:
		// It read the activation and wants more input without answering: the proxy would wait
		// for a line that never comes until the deadline.
		o.Failure = activation.FailureTimeout
	case kvm.Deadline:
		switch {
		case i.destroyed.Load():
			o.Failure = activation.FailureExited
		case ctx.Err() != nil:
			return backend.Result{}, ex, fmt.Errorf("unikernel: %s: run %s: %w: %w", i.id, req.ActivationID, backend.ErrPlatform, ctx.Err())
		default:
			o.Failure = activation.FailureTimeout
		}
	case kvm.MemoryLimit:
		o.Failure = activation.FailureOOM
	case kvm.Unsupported:
		return backend.Result{}, ex, &unsupportedError{unsupportedCause(ex), unsupportedName(ex)}
	default: // Exited, Fault
		if err := unsupportedCause(ex); err != nil {
			return backend.Result{}, ex, &unsupportedError{err, unsupportedName(ex)}
		}
		o.Failure = activation.FailureExited
	}
	return res, ex, nil
}

// runSkeleton runs a dockerskeleton executable once: a fresh guest with the parameters as JSON
// in argv[1] and the activation's context as __OW_* variables; the last line of its stdout is
// the response body, the rest its logs.
func (i *instance) runSkeleton(ctx context.Context, req backend.RunRequest, maxResp int64, start time.Time) (backend.Result, kvm.Exit, error) {
	var body map[string]json.RawMessage
	if err := json.Unmarshal(req.Body, &body); err != nil {
		return answer(start, i.d.now(), 400, errorBody(fmt.Sprintf("run body: not a JSON object: %v", err))), kvm.Exit{}, nil
	}
	params := []byte("{}")
	if v, ok := body["value"]; ok && !bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
		var buf bytes.Buffer
		if err := json.Compact(&buf, v); err == nil {
			params = buf.Bytes()
		}
	}
	prog := *i.skeleton
	prog.env = runEnv(prog.env, body)
	r, err := i.d.boot(ctx, &prog, guestMemory(max(i.action.Memory, i.memory)), []string{exePath, string(params)}, req.LogLimit, req.Deadline, true)
	if err != nil {
		return backend.Result{}, kvm.Exit{}, fmt.Errorf("unikernel: %s: run %s: %w", i.id, req.ActivationID, err)
	}
	if r.g != nil {
		defer r.g.Close()
	}
	res := backend.Result{Outcome: activation.RuntimeOutcome{Start: start, End: r.end}}
	if r.ex.Reason == kvm.Exited || r.ex.Reason == kvm.Fault {
		if line, ok := r.logs.takeLastStdout(); ok && (r.ex.Reason == kvm.Exited || isJSONObjectOrArray(line)) {
			res.Logs, res.LogsTruncated = r.logs.lines, r.logs.truncated
			o := &res.Outcome
			o.Status, o.Length = 200, len(line)
			o.Body = append([]byte(nil), line[:min(int64(len(line)), maxResp)]...)
			return res, r.ex, nil
		}
	}
	res.Logs, res.LogsTruncated = r.logs.lines, r.logs.truncated
	return i.classify(ctx, req, res, r.ex, &resultSink{}, r.logs)
}

// runEnv adds the /run body's context keys as __OW_<KEY> variables (string values only), as the
// actionloop launchers do, to the init environment.
func runEnv(env []string, body map[string]json.RawMessage) []string {
	vars := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	for k, raw := range body {
		if k == "value" {
			continue
		}
		var s string
		if json.Unmarshal(raw, &s) == nil && !strings.ContainsRune(s, 0) {
			vars["__OW_"+strings.ToUpper(k)] = s
		}
	}
	keys := make([]string, 0, len(vars))
	for k := range vars {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, k+"="+vars[k])
	}
	return out
}

// transactionID digs the transaction id out of a /run body for log lines.
func transactionID(body []byte) string {
	var b struct {
		TransactionID string `json:"transaction_id"`
	}
	_ = json.Unmarshal(body, &b)
	return b.TransactionID
}

// MemoryUsed implements backend.MemoryReporter: the guest's private pages plus KVM's memory for
// the VM; 0 when the instance holds no guest (not initialised, destroyed), the executable's size
// for a dockerskeleton instance between activations. While an /init or /run holds the guest it
// answers the last measurement instead of waiting for the call.
func (i *instance) MemoryUsed() (int64, error) {
	if i.destroyed.Load() {
		return 0, nil
	}
	if !i.call.TryLock() {
		return i.lastUsed.Load(), nil
	}
	defer i.call.Unlock()
	if i.g == nil {
		if i.skeleton != nil {
			return int64(len(i.skeleton.exe)), nil
		}
		return 0, nil
	}
	b, err := i.g.PrivateBytes()
	if err != nil {
		return 0, fmt.Errorf("unikernel: %s: memory: %w: %w", i.id, backend.ErrPlatform, err)
	}
	i.lastUsed.Store(b + vmOverhead)
	return b + vmOverhead, nil
}

// Destroy implements backend.Instance: it stops a call in progress, then gives the guest back
// to its function (ready for the next Start, or closed). Safe to repeat.
func (i *instance) Destroy(ctx context.Context) error {
	if i.destroyed.Swap(true) {
		return nil
	}
	i.intMu.Lock()
	if i.interrupt != nil {
		i.interrupt()
	}
	i.intMu.Unlock()
	i.call.Lock()
	g, fn, healthy := i.g, i.fn, i.broken == nil
	i.g, i.fn, i.skeleton = nil, nil, nil
	i.call.Unlock()
	if g != nil {
		i.d.giveBack(fn, g, healthy)
	}
	i.d.mu.Lock()
	delete(i.d.live, i)
	i.d.mu.Unlock()
	return nil
}
