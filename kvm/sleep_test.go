package kvm

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestSleepSleepsTheWholeTime: every kind of sleep lasts at least what the guest asked, as the
// guest itself measures it on CLOCK_MONOTONIC (the program exits with the number of short ones).
// A sleep of 1.5 s also outlasts what nanosleep used to be capped at (1 s).
func TestSleepSleepsTheWholeTime(t *testing.T) {
	h := openHost(t)
	ex, out := runProgram(t, h, "sleep", Config{Memory: 32 << 20,
		Args: []string{"sleep", "rel:1500", "abs:40", "libc:40", "absreal:40", "rel:0"}})
	t.Logf("%s", out.stdout.String())
	if ex.Reason != Exited || ex.Code != 0 {
		t.Fatalf("exit = %v code %d (%v), want Exited 0: a sleep ended early; stdout:\n%s", ex.Reason, ex.Code, ex.Err, out.stdout.String())
	}
	for _, kind := range []string{"slept rel 1500", "slept abs 40", "slept libc 40", "slept absreal 40", "slept rel 0"} {
		if !strings.Contains(out.stdout.String(), kind) {
			t.Errorf("no %q in stdout", kind)
		}
	}
	if ex.Syscalls[sysNrNanosleep] != 2 || ex.Syscalls[sysNrClockNanosleep] != 3 {
		t.Errorf("nanosleep %d, clock_nanosleep %d calls; want 2 and 3", ex.Syscalls[sysNrNanosleep], ex.Syscalls[sysNrClockNanosleep])
	}
}

// TestSleepCutShortByDeadlineResumes: a sleep longer than the run's Timeout stops the run at the
// deadline, with the guest parked at the call (not completed: RAX still holds its number); a
// cancelled context does the same; the next Run goes on sleeping to the original end, and the
// guest sees one uninterrupted sleep of at least its length.
func TestSleepCutShortByDeadlineResumes(t *testing.T) {
	h := openHost(t)
	var c captured
	g, err := h.New(context.Background(), c.config(Config{Memory: 32 << 20, Timeout: 200 * time.Millisecond,
		Args: []string{"sleep", "rel:1000"}}), build(t, "sleep"))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	parkedInSleep := func(what string, ex Exit, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if ex.Reason != Deadline || ex.Regs.RAX != sysNrNanosleep {
			t.Fatalf("%s: %v with rax %d, want Deadline parked at nanosleep (%d)", what, ex.Reason, ex.Regs.RAX, sysNrNanosleep)
		}
		if got := c.stdout.String(); got != "start rel 1000\n" {
			t.Fatalf("%s: stdout %q: the sleep completed", what, got)
		}
		if n := ex.Syscalls[sysNrNanosleep]; n != 0 {
			t.Fatalf("%s: nanosleep counted %d times, want 0 (a parked call counts when it completes)", what, n)
		}
	}
	ex, err := g.Run(context.Background())
	parkedInSleep("run with a 200 ms Timeout", ex, err)
	if _, err := g.Checkpoint(); !errors.Is(err, ErrNotParked) {
		t.Fatalf("Checkpoint of a guest parked in a sleep: %v, want ErrNotParked", err)
	}

	g.cfg.Timeout = 0
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(100 * time.Millisecond); cancel() }()
	ex, err = g.Run(ctx)
	parkedInSleep("cancelled run", ex, err)

	ex, err = g.Run(context.Background())
	if err != nil || ex.Reason != Exited || ex.Code != 0 {
		t.Fatalf("last run: %v code %d (%v) %v; stdout %q", ex.Reason, ex.Code, ex.Err, err, c.stdout.String())
	}
	if !strings.Contains(c.stdout.String(), "slept rel 1000") {
		t.Fatalf("stdout %q", c.stdout.String())
	}
	if n := ex.Syscalls[sysNrNanosleep]; n != 1 {
		t.Fatalf("nanosleep counted %d times, want once", n)
	}
}

// TestSleepBadArguments: hostile timespec pointers get EFAULT, malformed ones and clocks EINVAL,
// clocks Linux cannot sleep on EOPNOTSUPP, as on Linux; nothing sleeps long and nothing crashes.
func TestSleepBadArguments(t *testing.T) {
	h := openHost(t)
	ex, out := runProgram(t, h, "sleep", Config{Memory: 32 << 20, Args: []string{"sleep", "bad"}})
	if ex.Reason != Exited || ex.Code != 0 {
		t.Fatalf("exit = %v code %d (%v)", ex.Reason, ex.Code, ex.Err)
	}
	want := map[string]unix.Errno{
		"nanosleep_null": unix.EFAULT, "nanosleep_vmm": unix.EFAULT, "nanosleep_wrap": unix.EFAULT,
		"nanosleep_nsec_1e9": unix.EINVAL, "nanosleep_nsec_neg": unix.EINVAL, "nanosleep_sec_neg": unix.EINVAL,
		"nanosleep_bad_rem": 0, "clock_bad_clock": unix.EINVAL, "clock_thread_cpu": unix.EINVAL,
		"clock_process_cpu": unix.EOPNOTSUPP, "clock_coarse": unix.EOPNOTSUPP, "clock_null": unix.EFAULT,
		"clock_abs_null": unix.EFAULT, "clock_abs_nsec_1e9": unix.EINVAL, "clock_abs_past": 0,
		"clock_abs_past_real": 0, "clock_zero": 0,
	}
	got := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(out.stdout.String()), "\n") {
		k, v, _ := strings.Cut(l, "=")
		got[k] = v
	}
	for name, e := range want {
		w := "0"
		if e != 0 {
			w = "-" + strconv.Itoa(int(e))
		}
		if got[name] != w {
			t.Errorf("%s = %s, want %s (%v)", name, got[name], w, e)
		}
	}
}

// TestSleepResumeKeepsTheOriginalEnd drives the library OS alone, its vCPU wait injected: a cut
// short sleep parks the call; re-served, it waits only what is left until the end computed the
// first time (not the whole time again), whatever time passed in between; a sleep of the
// largest timespec saturates instead of overflowing.
func TestSleepResumeKeepsTheOriginalEnd(t *testing.T) {
	mem, err := newAnonMemory(8 << 20)
	if err != nil {
		t.Fatal(err)
	}
	defer mem.close()
	cfg := Config{}
	if err := cfg.normalize(); err != nil {
		t.Fatal(err)
	}
	k := newKernel(mem, nil, &cfg)
	var asked []time.Duration
	full := false
	k.nap = func(d time.Duration) bool { asked = append(asked, d); return full }
	const req = 0x200000
	put := func(sec, nsec int64) {
		binary.LittleEndian.PutUint64(mem.b[req:], uint64(sec))
		binary.LittleEndian.PutUint64(mem.b[req+8:], uint64(nsec))
	}
	put(5, 0)
	a := sysArgs{req}
	if r := k.dispatch(sysNrNanosleep, &a); r != 0 || !k.cutShort || k.resume == nil {
		t.Fatalf("cut short: ret %d cutShort %v resume %v", int64(r), k.cutShort, k.resume)
	}
	k.cutShort = false // what Guest.serve does when it parks the guest
	time.Sleep(20 * time.Millisecond)
	full = true
	if r := k.dispatch(sysNrNanosleep, &a); r != 0 || k.cutShort || k.resume != nil {
		t.Fatalf("resumed: ret %d cutShort %v resume %v", int64(r), k.cutShort, k.resume)
	}
	if len(asked) != 2 || asked[0] > 5*time.Second || asked[1] > asked[0]-20*time.Millisecond || asked[1] <= 0 {
		t.Fatalf("waits %v: the resumed sleep must wait what is left of the first (at most 5 s - 20 ms)", asked)
	}
	// Served again, the same call is a new sleep of the whole time.
	k.dispatch(sysNrNanosleep, &a)
	if asked[2] < asked[1] {
		t.Fatalf("a new sleep waited %v, less than the resumed one (%v)", asked[2], asked[1])
	}

	put(math.MaxInt64, 999999999)
	for _, call := range []struct {
		nr   uint64
		args sysArgs
	}{{sysNrNanosleep, sysArgs{req}}, {sysNrClockNanosleep, sysArgs{unix.CLOCK_MONOTONIC, 0, req}}, {sysNrClockNanosleep, sysArgs{unix.CLOCK_REALTIME, timerAbstime, req}}} {
		asked = asked[:0]
		if r := k.dispatch(call.nr, &call.args); r != 0 || len(asked) != 1 || asked[0] < 100*365*24*time.Hour {
			t.Fatalf("%d %v with the largest timespec: ret %d, waits %v", call.nr, call.args[:3], int64(r), asked)
		}
	}
}
