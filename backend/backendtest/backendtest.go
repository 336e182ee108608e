// Package backendtest is the conformance suite every backend driver runs, in the manner of
// containerd's snapshotter suite. A driver's own test calls Run with a constructor and the code
// of a few sample actions written for that driver's kind:
//
//	func TestConformance(t *testing.T) {
//		backendtest.Run(t, func(t *testing.T) backend.Driver {
//			d, err := unikernel.New(ctx, backend.Config{Logger: zaptest.NewLogger(t), DataDir: t.TempDir()})
//			if err != nil {
//				t.Fatal(err)
//			}
//			return d
//		}, backendtest.Actions{
//			Kind:     "python:3.11",
//			Echo:     backendtest.Code{Code: readFile(t, "echo.py")},
//			InitFail: backendtest.Code{Code: readFile(t, "initfail.py")},
//			Sleep:    backendtest.Code{Code: readFile(t, "sleep.py")},
//			LogFlood: backendtest.Code{Code: readFile(t, "logflood.py")},
//			NonJSON:  backendtest.Code{Code: readFile(t, "nonjson.py")},
//		})
//	}
//
// Each case gets a fresh driver from newDriver and closes it when the case ends; newDriver must
// not register its own Close. The /init and /run bodies are built exactly as the invoker builds
// them (protocol spec §6), with InitBody and RunBody, which drivers' own tests may reuse.
//
// The suite asserts behaviour only, never timing: deadlines it sets are generous or far past,
// and a driver that hangs fails through the case's context deadline instead of hanging CI.
package backendtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/snapinvoker/snapinvoker/activation"
	"github.com/snapinvoker/snapinvoker/backend"
)

// Code is an action's code in the form the driver's /init expects (the "value" of spec §6).
type Code struct {
	// Main is the entry point; empty means "main".
	Main string
	// Code is the source text, or base64 of the bytes (an executable, a zip) when Binary.
	Code string
	// Binary says Code is base64.
	Binary bool
}

// Actions are the sample actions the suite runs, written for the driver's kind. Their contracts
// follow /work/shared/testdata/actions (echo.*, sleep.*, logflood.*, initfail.*).
type Actions struct {
	// Kind is the exec kind given in StartSpec and Action, e.g. "python:3.11" or "blackbox".
	Kind string
	// Image and Native are copied into backend.Action for blackbox kinds.
	Image  string
	Native bool
	// Memory is limits.memory for every instance; zero means 256 MiB.
	Memory int64
	// Echo answers a JSON object or array whose text contains every string value of the /run
	// "value" (returning the params unchanged, or wrapping the whole input line, both qualify).
	Echo Code
	// InitFail fails during /init: a syntax error, an exception or an exit while loading.
	InitFail Code
	// Sleep sleeps for the run parameter "ms" milliseconds, then answers {"slept": ms}.
	Sleep Code
	// LogFlood writes the run parameter "lines" lines of 100 bytes to stdout, then answers.
	LogFlood Code
	// NonJSON answers with a line that is not JSON.
	NonJSON Code
	// NonJSONBody, when set, is the exact body the driver must report for NonJSON (a driver
	// behind the Go actionloop proxy reports the proxy's 502 body). When nil the suite only
	// requires an answered outcome (no RuntimeFailure) whose body is not a JSON object.
	NonJSONBody []byte
	// InitTimeout bounds each /init; zero means 60 s (a container may boot slowly).
	InitTimeout time.Duration
}

func (a Actions) memory() int64 {
	if a.Memory > 0 {
		return a.Memory
	}
	return 256 << 20
}

func (a Actions) initTimeout() time.Duration {
	if a.InitTimeout > 0 {
		return a.InitTimeout
	}
	return 60 * time.Second
}

// caseTimeout bounds one case: far above any sane driver, low enough that a hang fails CI
// with a message instead of stalling it.
const caseTimeout = 3 * time.Minute

// Run runs every conformance case as a subtest of t.
func Run(t *testing.T, newDriver func(t *testing.T) backend.Driver, actions Actions) {
	t.Helper()
	if actions.Kind == "" {
		t.Fatal("backendtest: Actions.Kind is empty")
	}
	for _, c := range []struct {
		name string
		fn   func(*testing.T, *suite)
	}{
		{"EchoInitRun", testEcho},
		{"PrewarmThenInit", testPrewarm},
		{"RunAgain", testRunAgain},
		{"InitFailure", testInitFailure},
		{"RunPastDeadline", testDeadline},
		{"LogLimit", testLogLimit},
		{"NonJSONResult", testNonJSON},
		{"ConcurrentInstances", testConcurrentInstances},
		{"ConcurrentRuns", testConcurrentRuns},
		{"PauseResume", testPauseResume},
		{"Destroy", testDestroy},
		{"DestroyDuringRun", testDestroyDuringRun},
		{"BadStartSpec", testBadStartSpec},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), caseTimeout)
			defer cancel()
			d := newDriver(t)
			if d == nil {
				t.Fatal("backendtest: newDriver returned nil")
			}
			s := &suite{t: t, ctx: ctx, d: d, a: actions}
			defer func() {
				if err := d.Close(); err != nil {
					t.Errorf("driver Close: %v", err)
				}
			}()
			c.fn(t, s)
		})
	}
}

type suite struct {
	t   *testing.T
	ctx context.Context
	d   backend.Driver
	a   Actions
}

// action returns the backend.Action of a sample.
func (s *suite) action(name string) backend.Action {
	return backend.Action{
		Kind:        s.a.Kind,
		Image:       s.a.Image,
		Native:      s.a.Native,
		Namespace:   "guest",
		Name:        "guest/" + name,
		DocID:       "guest/" + name,
		Revision:    "1-conformance",
		Version:     "0.0.1",
		CodeDigest:  "conformance-" + name,
		Memory:      s.a.memory(),
		Timeout:     60 * time.Second,
		LogLimit:    10 << 20,
		Concurrency: 1,
	}
}

// start starts an instance for a sample (prewarm: a stem cell with no action) and destroys it
// when the test ends.
func (s *suite) start(name string, prewarm bool) backend.Instance {
	s.t.Helper()
	spec := backend.StartSpec{Kind: s.a.Kind, Memory: s.a.memory()}
	if !prewarm {
		a := s.action(name)
		spec.Action = &a
	}
	inst, err := s.d.Start(s.ctx, spec)
	if err != nil {
		s.t.Fatalf("Start(%s): %v", name, err)
	}
	if inst == nil {
		s.t.Fatalf("Start(%s) returned a nil instance and no error", name)
	}
	if inst.ID() == "" {
		s.t.Errorf("Start(%s): instance has an empty ID", name)
	}
	s.t.Cleanup(func() { _ = inst.Destroy(context.Background()) })
	return inst
}

// init sends /init with the sample's code and returns what the driver observed.
func (s *suite) init(inst backend.Instance, name string, c Code) (backend.Result, error) {
	s.t.Helper()
	a := s.action(name)
	deadline := time.Now().Add(s.a.initTimeout())
	return inst.Init(s.ctx, backend.InitRequest{
		Action:   a,
		Body:     InitBody(name, c, initEnv(a, NewActivationID(), deadline)),
		Deadline: deadline,
	})
}

// mustInit is init that requires success.
func (s *suite) mustInit(inst backend.Instance, name string, c Code) {
	s.t.Helper()
	res, err := s.init(inst, name, c)
	if err != nil {
		s.t.Fatalf("Init(%s): %v", name, err)
	}
	if !Initialized(res.Outcome) {
		s.t.Fatalf("Init(%s): not initialized: %s", name, describe(res))
	}
}

// run sends /run with value and the given time to the deadline.
func (s *suite) run(inst backend.Instance, name string, value map[string]any, timeout time.Duration, logLimit int64) (backend.Result, error) {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	id := NewActivationID()
	return inst.Run(s.ctx, backend.RunRequest{
		ActivationID: id,
		Body:         RunBody(s.action(name), value, id, deadline),
		Deadline:     deadline,
		LogLimit:     logLimit,
		MaxResponse:  1 << 20,
	})
}

// Initialized reports whether an /init outcome means the action is ready: the runtime
// answered 200 (spec §6).
func Initialized(o activation.RuntimeOutcome) bool {
	return o.Failure == activation.NoFailure && o.Status == 200
}

// describe renders a result for failure messages.
func describe(r backend.Result) string {
	var logs []string
	for _, l := range r.Logs {
		logs = append(logs, l.Stream+": "+l.Text)
		if len(logs) == 5 {
			logs = append(logs, "…")
			break
		}
	}
	return fmt.Sprintf("failure=%s status=%d body=%.300q logs=%q", r.Outcome.Failure, r.Outcome.Status, r.Outcome.Body, logs)
}

// marker returns a value unlikely to appear in a body by chance.
func marker(tag string) string { return tag + "-" + NewActivationID()[:12] }

func testEcho(t *testing.T, s *suite) {
	inst := s.start("echo", false)
	s.mustInit(inst, "echo", s.a.Echo)
	m := marker("echo")
	res, err := s.run(inst, "echo", map[string]any{"name": m}, time.Minute, 1<<20)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	requireEcho(t, res, m)
	for _, l := range res.Logs {
		if l.Stream != "stdout" && l.Stream != "stderr" {
			t.Errorf("log line %q has stream %q, want stdout or stderr", l.Text, l.Stream)
		}
		if strings.Contains(l.Text, "XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX") {
			t.Errorf("log sentinel leaked to the caller: %q", l.Text)
		}
	}
}

// requireEcho checks an echo answer.
func requireEcho(t *testing.T, res backend.Result, m string) {
	t.Helper()
	o := res.Outcome
	if o.Failure != activation.NoFailure || o.Status != 200 {
		t.Fatalf("echo: want an answer with status 200, got %s", describe(res))
	}
	if !json.Valid(o.Body) {
		t.Fatalf("echo: body is not JSON: %q", o.Body)
	}
	if !bytes.Contains(o.Body, []byte(m)) {
		t.Fatalf("echo: body %q does not contain the run's value %q", o.Body, m)
	}
	if o.Length != len(o.Body) {
		t.Errorf("echo: Length = %d, len(Body) = %d for an untruncated body", o.Length, len(o.Body))
	}
	if o.Start.IsZero() || o.End.Before(o.Start) {
		t.Errorf("echo: Start %v / End %v do not bound the call", o.Start, o.End)
	}
}

func testPrewarm(t *testing.T, s *suite) {
	inst := s.start("echo", true)
	s.mustInit(inst, "echo", s.a.Echo)
	m := marker("prewarm")
	res, err := s.run(inst, "echo", map[string]any{"name": m}, time.Minute, 1<<20)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	requireEcho(t, res, m)
}

func testRunAgain(t *testing.T, s *suite) {
	inst := s.start("echo", false)
	s.mustInit(inst, "echo", s.a.Echo)
	for i := 0; i < 3; i++ {
		m := marker(fmt.Sprintf("again%d", i))
		res, err := s.run(inst, "echo", map[string]any{"name": m}, time.Minute, 1<<20)
		if err != nil {
			t.Fatalf("Run %d: %v", i, err)
		}
		requireEcho(t, res, m)
	}
}

func testInitFailure(t *testing.T, s *suite) {
	inst := s.start("initfail", false)
	res, err := s.init(inst, "initfail", s.a.InitFail)
	if err != nil {
		// An action that fails to load is the action's fault: an outcome, not an error.
		t.Fatalf("Init of a failing action returned an error (want an outcome): %v", err)
	}
	if Initialized(res.Outcome) {
		t.Fatalf("Init of a failing action reported success: %s", describe(res))
	}
}

func testDeadline(t *testing.T, s *suite) {
	inst := s.start("sleep", false)
	s.mustInit(inst, "sleep", s.a.Sleep)
	// Ten minutes of sleep against a one-second deadline: only a driver that ignores the
	// deadline lets the action answer; the case context ends a hang.
	res, err := s.run(inst, "sleep", map[string]any{"ms": 600000}, time.Second, 1<<20)
	if err != nil {
		t.Fatalf("Run past the deadline returned an error (want an outcome): %v", err)
	}
	if res.Outcome.Failure != activation.FailureTimeout {
		t.Fatalf("Run past the deadline: want FailureTimeout, got %s", describe(res))
	}
}

func testLogLimit(t *testing.T, s *suite) {
	inst := s.start("logflood", false)
	s.mustInit(inst, "logflood", s.a.LogFlood)
	const limit = 2048
	res, err := s.run(inst, "logflood", map[string]any{"lines": 200}, time.Minute, limit)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if res.Outcome.Failure != activation.NoFailure {
		t.Fatalf("logflood: want an answer, got %s", describe(res))
	}
	if !res.LogsTruncated {
		t.Errorf("20000 bytes of logs against a %d-byte limit: LogsTruncated is false", limit)
	}
	total := 0
	for _, l := range res.Logs {
		total += len(l.Text)
	}
	if total > limit {
		t.Errorf("logs hold %d bytes of text, above the %d-byte limit", total, limit)
	}
	if len(res.Logs) == 0 {
		t.Errorf("logs are empty; want the lines up to the limit")
	}
	for _, l := range res.Logs {
		if strings.Contains(l.Text, "truncated") {
			t.Errorf("driver appended a truncation message %q; the activation rules do that", l.Text)
		}
	}
	// Without a limit, nothing is collected.
	res, err = s.run(inst, "logflood", map[string]any{"lines": 3}, time.Minute, 0)
	if err != nil {
		t.Fatalf("Run with log limit 0: %v", err)
	}
	if len(res.Logs) != 0 {
		t.Errorf("log limit 0: got %d log lines, want none", len(res.Logs))
	}
}

func testNonJSON(t *testing.T, s *suite) {
	inst := s.start("nonjson", false)
	s.mustInit(inst, "nonjson", s.a.NonJSON)
	res, err := s.run(inst, "nonjson", map[string]any{}, time.Minute, 1<<20)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	o := res.Outcome
	if o.Failure != activation.NoFailure {
		t.Fatalf("non-JSON result: want an answered outcome (classification is not the driver's job), got %s", describe(res))
	}
	if s.a.NonJSONBody != nil {
		if !bytes.Equal(o.Body, s.a.NonJSONBody) {
			t.Fatalf("non-JSON result: body %q, want %q", o.Body, s.a.NonJSONBody)
		}
		return
	}
	var obj map[string]any
	if len(o.Body) == 0 || json.Unmarshal(o.Body, &obj) == nil {
		t.Fatalf("non-JSON result: want the action's non-JSON body, got %q", o.Body)
	}
}

func testConcurrentInstances(t *testing.T, s *suite) {
	const n = 3
	insts := make([]backend.Instance, n)
	ids := map[string]bool{}
	for i := range insts {
		insts[i] = s.start("echo", false)
		if ids[insts[i].ID()] {
			t.Fatalf("two instances share the ID %q", insts[i].ID())
		}
		ids[insts[i].ID()] = true
	}
	var wg sync.WaitGroup
	errs := make([]string, n)
	for i, inst := range insts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := s.action("echo")
			deadline := time.Now().Add(s.a.initTimeout())
			res, err := inst.Init(s.ctx, backend.InitRequest{Action: a, Body: InitBody("echo", s.a.Echo, initEnv(a, NewActivationID(), deadline)), Deadline: deadline})
			if err != nil || !Initialized(res.Outcome) {
				errs[i] = fmt.Sprintf("instance %d: Init: %v %s", i, err, describe(res))
				return
			}
			m := marker(fmt.Sprintf("inst%d", i))
			deadline = time.Now().Add(time.Minute)
			id := NewActivationID()
			res, err = inst.Run(s.ctx, backend.RunRequest{ActivationID: id, Body: RunBody(a, map[string]any{"name": m}, id, deadline), Deadline: deadline, LogLimit: 1 << 20, MaxResponse: 1 << 20})
			if err != nil || res.Outcome.Status != 200 || !bytes.Contains(res.Outcome.Body, []byte(m)) {
				errs[i] = fmt.Sprintf("instance %d: Run: %v %s (want %s)", i, err, describe(res), m)
				return
			}
			for j := 0; j < n; j++ {
				if j != i && bytes.Contains(res.Outcome.Body, []byte(fmt.Sprintf("inst%d-", j))) {
					errs[i] = fmt.Sprintf("instance %d answered instance %d's value: %q", i, j, res.Outcome.Body)
				}
			}
		}()
	}
	wg.Wait()
	for _, e := range errs {
		if e != "" {
			t.Error(e)
		}
	}
}

// testConcurrentRuns exercises backend.Concurrent: an instance that claims MaxConcurrency > 1
// must serve that many simultaneous Runs, each with its own answer.
func testConcurrentRuns(t *testing.T, s *suite) {
	inst := s.start("echo", false)
	c, ok := inst.(backend.Concurrent)
	if !ok || c.MaxConcurrency() <= 1 {
		t.Log("instance does not implement backend.Concurrent with MaxConcurrency > 1; one Run at a time is the contract")
		return
	}
	s.mustInit(inst, "echo", s.a.Echo)
	n := min(c.MaxConcurrency(), 8)
	var wg sync.WaitGroup
	errs := make([]string, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := marker(fmt.Sprintf("conc%d", i))
			res, err := s.run(inst, "echo", map[string]any{"name": m}, time.Minute, 1<<20)
			if err != nil || res.Outcome.Status != 200 || !bytes.Contains(res.Outcome.Body, []byte(m)) {
				errs[i] = fmt.Sprintf("run %d: %v %s (want %s)", i, err, describe(res), m)
			}
		}()
	}
	wg.Wait()
	for _, e := range errs {
		if e != "" {
			t.Error(e)
		}
	}
}

func testPauseResume(t *testing.T, s *suite) {
	inst := s.start("echo", false)
	p, ok := inst.(backend.Pauser)
	if !ok {
		t.Log("instance does not implement backend.Pauser")
		return
	}
	s.mustInit(inst, "echo", s.a.Echo)
	if err := p.Pause(s.ctx); err != nil {
		t.Fatalf("Pause: %v", err)
	}
	if err := p.Resume(s.ctx); err != nil {
		t.Fatalf("Resume: %v", err)
	}
	m := marker("resumed")
	res, err := s.run(inst, "echo", map[string]any{"name": m}, time.Minute, 1<<20)
	if err != nil {
		t.Fatalf("Run after Resume: %v", err)
	}
	requireEcho(t, res, m)
}

func testDestroy(t *testing.T, s *suite) {
	inst := s.start("echo", false)
	s.mustInit(inst, "echo", s.a.Echo)
	m := marker("destroy")
	if res, err := s.run(inst, "echo", map[string]any{"name": m}, time.Minute, 1<<20); err != nil {
		t.Fatalf("Run: %v", err)
	} else {
		requireEcho(t, res, m)
	}
	mr, reports := inst.(backend.MemoryReporter)
	if reports {
		used, err := mr.MemoryUsed()
		if err != nil {
			t.Fatalf("MemoryUsed of a live instance: %v", err)
		}
		if used <= 0 {
			t.Errorf("MemoryUsed of a live, initialised instance = %d, want > 0", used)
		}
	}
	if err := inst.Destroy(s.ctx); err != nil {
		t.Fatalf("Destroy: %v", err)
	}
	if reports {
		if used, err := mr.MemoryUsed(); err == nil && used != 0 {
			t.Errorf("MemoryUsed after Destroy = %d, want 0 (or an error)", used)
		}
	}
	if err := inst.Destroy(s.ctx); err != nil {
		t.Errorf("second Destroy: %v (must be safe to call more than once)", err)
	}
	res, err := s.run(inst, "echo", map[string]any{"name": m}, time.Minute, 1<<20)
	requireFailedCleanly(t, "Run after Destroy", res, err)
}

// requireFailedCleanly accepts an error wrapping ErrPlatform, or an outcome that is not an
// answer; anything reporting success is wrong.
func requireFailedCleanly(t *testing.T, what string, res backend.Result, err error) {
	t.Helper()
	if err != nil {
		if !errors.Is(err, backend.ErrPlatform) {
			t.Errorf("%s: error %v does not wrap backend.ErrPlatform", what, err)
		}
		return
	}
	if res.Outcome.Failure == activation.NoFailure {
		t.Errorf("%s: reported an answer: %s", what, describe(res))
	}
}

func testDestroyDuringRun(t *testing.T, s *suite) {
	inst := s.start("sleep", false)
	s.mustInit(inst, "sleep", s.a.Sleep)
	type out struct {
		res backend.Result
		err error
	}
	done := make(chan out, 1)
	go func() {
		res, err := s.run(inst, "sleep", map[string]any{"ms": 600000}, 10*time.Minute, 1<<20)
		done <- out{res, err}
	}()
	// Whether Destroy lands before or during the Run, the Run must end and not succeed.
	if err := inst.Destroy(s.ctx); err != nil {
		t.Fatalf("Destroy during Run: %v", err)
	}
	select {
	case o := <-done:
		requireFailedCleanly(t, "Run ended by Destroy", o.res, o.err)
	case <-s.ctx.Done():
		t.Fatal("Run did not end after Destroy")
	}
}

func testBadStartSpec(t *testing.T, s *suite) {
	for _, spec := range []backend.StartSpec{
		{Kind: "", Memory: s.a.memory()},
		{Kind: s.a.Kind, Memory: 0},
		{Kind: s.a.Kind, Memory: -1},
	} {
		inst, err := s.d.Start(s.ctx, spec)
		if err == nil {
			_ = inst.Destroy(s.ctx)
			t.Errorf("Start(%+v) succeeded; want an error naming the field", spec)
			continue
		}
		if !errors.Is(err, backend.ErrPlatform) && !errors.Is(err, backend.ErrUnsupported) {
			t.Errorf("Start(%+v): %v wraps neither ErrPlatform nor ErrUnsupported", spec, err)
		}
	}
}

// NewActivationID returns 32 random hex digits, the shape of an OpenWhisk activation id.
func NewActivationID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// initEnv is the __OW_* context of spec §6 for a first activation.
func initEnv(a backend.Action, activationID string, deadline time.Time) map[string]string {
	return map[string]string{
		"__OW_NAMESPACE":      a.Namespace,
		"__OW_ACTION_NAME":    "/" + a.Name,
		"__OW_ACTION_VERSION": a.Version,
		"__OW_ACTIVATION_ID":  activationID,
		"__OW_TRANSACTION_ID": "conformance" + activationID[:21],
		"__OW_DEADLINE":       strconv.FormatInt(deadline.UnixMilli(), 10),
	}
}

// InitBody builds the /init body of spec §6: {"value":{"name","main","binary","code","env"}}.
// name is the action's name without namespace; env holds the init parameters and __OW_* keys.
func InitBody(name string, c Code, env map[string]string) []byte {
	type value struct {
		Name   string            `json:"name"`
		Main   string            `json:"main"`
		Binary bool              `json:"binary"`
		Code   string            `json:"code,omitempty"`
		Env    map[string]string `json:"env"`
	}
	main := c.Main
	if main == "" {
		main = "main"
	}
	if env == nil {
		env = map[string]string{}
	}
	b, err := json.Marshal(struct {
		Value value `json:"value"`
	}{value{Name: name, Main: main, Binary: c.Binary, Code: c.Code, Env: env}})
	if err != nil {
		panic(err) // strings and a map of strings always marshal
	}
	return b
}

// RunBody builds the /run body of spec §6 for action a: the value plus the context keys,
// with deadline as a string of epoch milliseconds.
func RunBody(a backend.Action, value any, activationID string, deadline time.Time) []byte {
	if value == nil {
		value = map[string]any{}
	}
	var version any
	if a.Version != "" {
		version = a.Version
	}
	b, err := json.Marshal(map[string]any{
		"value":          value,
		"namespace":      a.Namespace,
		"action_name":    "/" + a.Name,
		"action_version": version,
		"activation_id":  activationID,
		"transaction_id": "conformance" + activationID[:min(21, len(activationID))],
		"deadline":       strconv.FormatInt(deadline.UnixMilli(), 10),
	})
	if err != nil {
		panic(fmt.Sprintf("backendtest: RunBody: value does not marshal: %v", err))
	}
	return b
}
