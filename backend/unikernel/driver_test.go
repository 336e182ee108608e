package unikernel

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/snapinvoker/snapinvoker/activation"
	"github.com/snapinvoker/snapinvoker/backend"
	"github.com/snapinvoker/snapinvoker/backend/backendtest"
	"github.com/snapinvoker/snapinvoker/internal/testprog"
)

// sample is one test action: its backend.Action and its /init code.
type sample struct {
	action backend.Action
	code   backendtest.Code
}

func newSample(t testing.TB, name string, memory int64) sample {
	return sample{
		action: backend.Action{Kind: "blackbox", Image: "openwhisk/dockerskeleton", Native: true,
			Namespace: "guest", Name: "guest/" + name, DocID: "guest/" + name, Revision: "1-test", Version: "0.0.1",
			CodeDigest: "test-" + name, Memory: memory, Timeout: time.Minute, LogLimit: 1 << 20, Concurrency: 1},
		code: code(t, name),
	}
}

func (s sample) spec() backend.StartSpec {
	a := s.action
	return backend.StartSpec{Kind: a.Kind, Memory: a.Memory, Action: &a}
}

func start(t testing.TB, d *Driver, s sample) backend.Instance {
	t.Helper()
	inst, err := d.Start(context.Background(), s.spec())
	if err != nil {
		t.Fatalf("Start(%s): %v", s.action.Name, err)
	}
	t.Cleanup(func() { inst.Destroy(context.Background()) })
	return inst
}

func initInst(t testing.TB, inst backend.Instance, s sample) backend.Result {
	t.Helper()
	res, err := inst.Init(context.Background(), backend.InitRequest{Action: s.action,
		Body: backendtest.InitBody(s.action.Name, s.code, nil), Deadline: time.Now().Add(time.Minute)})
	if err != nil {
		t.Fatalf("Init(%s): %v", s.action.Name, err)
	}
	return res
}

func mustInit(t testing.TB, inst backend.Instance, s sample) {
	t.Helper()
	if res := initInst(t, inst, s); !backendtest.Initialized(res.Outcome) {
		t.Fatalf("Init(%s): not initialised: %+v", s.action.Name, res.Outcome)
	}
}

func run(t testing.TB, inst backend.Instance, s sample, value any) (backend.Result, error) {
	t.Helper()
	id := backendtest.NewActivationID()
	deadline := time.Now().Add(time.Minute)
	return inst.Run(context.Background(), backend.RunRequest{ActivationID: id,
		Body: backendtest.RunBody(s.action, value, id, deadline), Deadline: deadline, LogLimit: 1 << 20, MaxResponse: 1 << 20})
}

func mustRun(t testing.TB, inst backend.Instance, s sample, value any) backend.Result {
	t.Helper()
	res, err := run(t, inst, s, value)
	if err != nil {
		t.Fatalf("Run(%s): %v", s.action.Name, err)
	}
	return res
}

// TestEveryActivationStartsFresh: the counter keeps a global count of activations; after each
// activation the guest is reset to the function snapshot, so every answer is 1, on the same
// instance and on instances restored later.
func TestEveryActivationStartsFresh(t *testing.T) {
	d := newDriver(t, "", nil)
	defer d.Close()
	s := newSample(t, "counter", 64<<20)
	inst := start(t, d, s)
	mustInit(t, inst, s)
	for i := 0; i < 3; i++ {
		res := mustRun(t, inst, s, map[string]any{"i": i})
		if string(res.Outcome.Body) != `{"count":1}` {
			t.Fatalf("activation %d: body %q, want {\"count\":1}: state leaked from an earlier activation", i, res.Outcome.Body)
		}
	}
	if st := d.Stats(); st.Resets != 3 {
		t.Errorf("Resets = %d, want 3", st.Resets)
	}
}

// TestRestoreAndReadyGuests: the first instance builds the snapshot in /init; later Starts of the
// same action are restored there (Restorer, /init a no-op), the first from the guest the
// destroyed instance gave back, a concurrent one from a fresh restore.
func TestRestoreAndReadyGuests(t *testing.T) {
	d := newDriver(t, "", nil)
	defer d.Close()
	s := newSample(t, "echo", 64<<20)
	first := start(t, d, s)
	if first.(backend.Restorer).Restored() {
		t.Fatal("the first instance claims to be restored before any snapshot exists")
	}
	mustInit(t, first, s)
	requireEcho(t, mustRun(t, first, s, map[string]any{"n": "first"}), "first")
	if err := first.Destroy(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := d.Stats(); st.Builds != 1 || st.ReadyGuests != 1 {
		t.Fatalf("after one instance: Builds=%d ReadyGuests=%d, want 1 and 1", st.Builds, st.ReadyGuests)
	}
	second := start(t, d, s)
	third := start(t, d, s)
	for _, inst := range []backend.Instance{second, third} {
		if !inst.(backend.Restorer).Restored() {
			t.Fatalf("%s: not restored though the function snapshot is cached", inst.ID())
		}
		res := initInst(t, inst, s)
		if !backendtest.Initialized(res.Outcome) || string(res.Outcome.Body) != `{"ok":true}` {
			t.Fatalf("%s: Init of a restored instance: %+v", inst.ID(), res.Outcome)
		}
		requireEcho(t, mustRun(t, inst, s, map[string]any{"n": inst.ID()}), inst.ID())
	}
	st := d.Stats()
	if st.Builds != 1 || st.ReadyHits != 1 || st.Restores < 2 {
		t.Errorf("Builds=%d ReadyHits=%d Restores=%d; want 1 build, 1 ready hit, ≥ 2 restores", st.Builds, st.ReadyHits, st.Restores)
	}
	if st.Cache.Builds != 1 {
		t.Errorf("snapshot cache ran %d builds, want 1", st.Cache.Builds)
	}
}

func requireEcho(t testing.TB, res backend.Result, m string) {
	t.Helper()
	o := res.Outcome
	if o.Failure != activation.NoFailure || o.Status != 200 || !json.Valid(o.Body) || !bytes.Contains(o.Body, []byte(m)) {
		t.Fatalf("echo: want 200 with a JSON body holding %q, got failure=%s status=%d body=%q", m, o.Failure, o.Status, o.Body)
	}
}

// TestSingleFlightBuild: many instances initialised at once build the function snapshot once.
func TestSingleFlightBuild(t *testing.T) {
	d := newDriver(t, "", nil)
	defer d.Close()
	s := newSample(t, "echo", 64<<20)
	const n = 8
	insts := make([]backend.Instance, n)
	for i := range insts {
		insts[i] = start(t, d, s)
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i, inst := range insts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := inst.Init(context.Background(), backend.InitRequest{Action: s.action,
				Body: backendtest.InitBody("echo", s.code, nil), Deadline: time.Now().Add(time.Minute)})
			if err == nil && !backendtest.Initialized(res.Outcome) {
				err = fmt.Errorf("not initialised: %+v", res.Outcome)
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("instance %d: %v", i, err)
		}
	}
	if st := d.Stats(); st.Builds != 1 {
		t.Fatalf("%d concurrent first inits built %d snapshots, want 1", n, st.Builds)
	}
	for i, inst := range insts {
		requireEcho(t, mustRun(t, inst, s, map[string]any{"i": fmt.Sprint("inst-", i)}), fmt.Sprint("inst-", i))
	}
}

// TestSnapshotsSurviveRestart: a new driver on the same data directory restores from the
// snapshot the previous one built, without booting the executable again.
func TestSnapshotsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	s := newSample(t, "echo", 64<<20)
	d1 := newDriver(t, dir, nil)
	inst := start(t, d1, s)
	mustInit(t, inst, s)
	if err := d1.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	d2 := newDriver(t, dir, nil)
	defer d2.Close()
	inst = start(t, d2, s)
	if !inst.(backend.Restorer).Restored() {
		t.Fatal("after a restart the instance was not restored from the persisted snapshot")
	}
	mustInit(t, inst, s)
	requireEcho(t, mustRun(t, inst, s, map[string]any{"again": "restarted"}), "restarted")
	if st := d2.Stats(); st.Builds != 0 {
		t.Errorf("the restarted driver built %d snapshots, want 0", st.Builds)
	}
}

// TestUnsupportedSyscallFallsBack: fork needs a real kernel: Run answers ErrUnsupported (the
// activation moves to the next driver) and the cause is counted.
func TestUnsupportedSyscallFallsBack(t *testing.T) {
	d := newDriver(t, "", nil)
	defer d.Close()
	s := newSample(t, "unsupported", 64<<20)
	inst := start(t, d, s)
	mustInit(t, inst, s)
	_, err := run(t, inst, s, nil)
	if !errors.Is(err, backend.ErrUnsupported) {
		t.Fatalf("Run of a forking action: error %v, want one wrapping backend.ErrUnsupported", err)
	}
	if !strings.Contains(err.Error(), "fork") && !strings.Contains(err.Error(), "clone") {
		t.Errorf("error %q does not name the system call", err)
	}
	st := d.Stats()
	if st.Unsupported != 1 || st.UnsupportedBy["fork"]+st.UnsupportedBy["clone"] != 1 {
		t.Errorf("Unsupported=%d by %v; want one, counted under fork or clone", st.Unsupported, st.UnsupportedBy)
	}
}

// TestGuestFailures: out of memory, a crash and an exit are outcomes, not errors, and the
// instance answers the next activation the same way (it was reset, not left broken).
func TestGuestFailures(t *testing.T) {
	d := newDriver(t, "", nil)
	defer d.Close()
	for _, c := range []struct {
		name string
		want activation.RuntimeFailure
	}{
		{"oom", activation.FailureOOM},
		{"crash", activation.FailureExited},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newSample(t, c.name, 32<<20)
			inst := start(t, d, s)
			mustInit(t, inst, s)
			for i := 0; i < 2; i++ {
				res, err := run(t, inst, s, nil)
				if err != nil {
					t.Fatalf("activation %d: %v", i, err)
				}
				if res.Outcome.Failure != c.want {
					t.Fatalf("activation %d: failure %s, want %s", i, res.Outcome.Failure, c.want)
				}
			}
		})
	}
}

// TestDockerskeleton: an executable that takes its parameters in argv[1] and prints its result
// as the last stdout line runs once per activation.
func TestDockerskeleton(t *testing.T) {
	d := newDriver(t, "", nil)
	defer d.Close()
	s := newSample(t, "skeleton", 64<<20)
	inst := start(t, d, s)
	mustInit(t, inst, s)
	for _, name := range []string{"ada", "bob"} {
		res := mustRun(t, inst, s, map[string]any{"name": name})
		want := fmt.Sprintf(`{"params":{"name":%q}}`, name)
		if res.Outcome.Status != 200 || string(res.Outcome.Body) != want {
			t.Fatalf("skeleton: status %d body %q, want 200 %s", res.Outcome.Status, res.Outcome.Body, want)
		}
		var texts []string
		for _, l := range res.Logs {
			texts = append(texts, l.Stream+": "+l.Text)
		}
		got := strings.Join(texts, "\n")
		if !strings.Contains(got, "stdout: skeleton: got") || !strings.Contains(got, "stderr: skeleton: a line on stderr") || strings.Contains(got, "params") {
			t.Fatalf("skeleton logs: %q; want its stdout and stderr lines without the result line", got)
		}
	}
	if st := d.Stats(); st.Builds != 0 {
		t.Errorf("a dockerskeleton executable has no snapshot, yet Builds = %d", st.Builds)
	}
}

// TestNativeZip: `wsk action create --native exec.zip` sends a zip holding exec.
func TestNativeZip(t *testing.T) {
	d := newDriver(t, "", nil)
	defer d.Close()
	s := newSample(t, "echo", 64<<20)
	s.action.CodeDigest = "zip"
	s.code = backendtest.Code{Code: testprog.ZipBase64(t, map[string]string{"exec": string(testProgram(t, "echo"))}), Binary: true}
	inst := start(t, d, s)
	mustInit(t, inst, s)
	requireEcho(t, mustRun(t, inst, s, map[string]any{"zip": "zipped-echo"}), "zipped-echo")
}

// TestInitRefusals: bad /init bodies are answered as the proxy answers them; code that is not a
// static executable goes to the next driver.
func TestInitRefusals(t *testing.T) {
	d := newDriver(t, "", nil)
	defer d.Close()
	s := newSample(t, "echo", 64<<20)
	for _, c := range []struct {
		name        string
		body        string
		status      int
		unsupported bool
	}{
		{"not json", `{"value":`, 400, false},
		{"no value", `{}`, 400, false},
		{"no code", `{"value":{"name":"x","main":"main","binary":false}}`, 403, false},
		{"bad base64", `{"value":{"name":"x","main":"main","binary":true,"code":"!!!"}}`, 502, false},
		{"not an executable", `{"value":{"name":"x","main":"main","binary":true,"code":"` + base64.StdEncoding.EncodeToString([]byte("hello")) + `"}}`, 502, false},
		{"script", `{"value":{"name":"x","main":"main","binary":false,"code":"#!/bin/bash\necho '{}'"}}`, 0, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			inst := start(t, d, s)
			res, err := inst.Init(context.Background(), backend.InitRequest{Action: s.action, Body: []byte(c.body), Deadline: time.Now().Add(time.Minute)})
			if c.unsupported {
				if !errors.Is(err, backend.ErrUnsupported) {
					t.Fatalf("want an error wrapping ErrUnsupported, got %v %+v", err, res.Outcome)
				}
				return
			}
			if err != nil || res.Outcome.Status != c.status || !json.Valid(res.Outcome.Body) {
				t.Fatalf("want status %d with a JSON body, got %v %d %q", c.status, err, res.Outcome.Status, res.Outcome.Body)
			}
		})
	}
}

// TestUserImageIsNotOurs: a blackbox action with a user image runs in a container.
func TestUserImageIsNotOurs(t *testing.T) {
	d := newDriver(t, "", nil)
	defer d.Close()
	s := newSample(t, "echo", 64<<20)
	s.action.Native, s.action.Image = false, "someone/custom:latest"
	if _, err := d.Start(context.Background(), s.spec()); !errors.Is(err, backend.ErrUnsupported) {
		t.Fatalf("Start with a user image: %v, want ErrUnsupported", err)
	}
	spec := s.spec()
	spec.Kind, spec.Action = "nodejs:20", nil
	if _, err := d.Start(context.Background(), spec); !errors.Is(err, backend.ErrUnsupported) {
		t.Fatalf("Start of nodejs:20 (node needs threads kvm does not serve): %v, want ErrUnsupported", err)
	}
}

// TestMemoryAccounting: an instance reports its private pages, and the charge for a measured
// function follows them, not limits.memory.
func TestMemoryAccounting(t *testing.T) {
	d := newDriver(t, "", nil)
	defer d.Close()
	s := newSample(t, "echo", 256<<20)
	if got := d.MemoryCharge(s.spec()); got != defaultCharge {
		t.Errorf("charge of an unknown function = %d, want the default %d", got, defaultCharge)
	}
	inst := start(t, d, s)
	mustInit(t, inst, s)
	mustRun(t, inst, s, map[string]any{"x": strings.Repeat("y", 100000)})
	used, err := inst.(backend.MemoryReporter).MemoryUsed()
	if err != nil {
		t.Fatal(err)
	}
	if used <= vmOverhead || used >= s.action.Memory {
		t.Fatalf("MemoryUsed = %d; want above KVM's overhead %d and below limits.memory %d", used, vmOverhead, s.action.Memory)
	}
	if err := inst.Destroy(context.Background()); err != nil {
		t.Fatal(err)
	}
	charge := d.MemoryCharge(s.spec())
	if charge < used || charge >= s.action.Memory {
		t.Fatalf("charge after measuring = %d; want at least the measured %d and below limits.memory %d", charge, used, s.action.Memory)
	}
}

func TestRegistered(t *testing.T) {
	reg, ok := backend.DefaultRegistry().Lookup(Name)
	if !ok {
		t.Fatal("the unikernel driver is not in the default registry")
	}
	if strings.Join(reg.Kinds, ",") != "blackbox,python:3*" {
		t.Errorf("Kinds = %v, want [blackbox python:3*]", reg.Kinds)
	}
	requireKVM(t)
	set, err := backend.OpenSet(context.Background(), backend.SetConfig{Drivers: []string{Name}, DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer set.Close()
	if got := set.Available(); len(got) != 1 || got[0] != Name {
		t.Fatalf("Available = %v, unavailable %v", got, set.Unavailable())
	}
}
