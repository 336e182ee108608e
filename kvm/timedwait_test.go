package kvm

import (
	"context"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestTimedWaitsWaitTheWholeTime: a timed futex wait and a poll's timeout on what nothing can
// make ready last at least what the guest asked, as the guest itself measures it on
// CLOCK_MONOTONIC, and end as on Linux (ETIMEDOUT, nothing ready). 1.2 s outlasts what they
// used to be capped at (1 s); the program exits with the number of waits that were short or
// answered something else.
func TestTimedWaitsWaitTheWholeTime(t *testing.T) {
	h := openHost(t)
	steps := []string{"futex:1200", "poll:1200", "futexabs:40", "ppoll:40"}
	ex, out := runProgram(t, h, "timedwait", Config{Memory: 32 << 20, Args: append([]string{"timedwait"}, steps...)})
	t.Logf("%s", out.stdout.String())
	if ex.Reason != Exited || ex.Code != 0 {
		t.Fatalf("exit = %v code %d (%v), want Exited 0: a wait ended early or wrongly; stdout:\n%s", ex.Reason, ex.Code, ex.Err, out.stdout.String())
	}
	for _, s := range steps {
		kind, ms, _ := strings.Cut(s, ":")
		if w := "waited " + kind + " " + ms + " "; !strings.Contains(out.stdout.String(), w) {
			t.Errorf("no %q in stdout", w)
		}
	}
	if ex.Syscalls[sysNrFutex] < 2 || ex.Syscalls[sysNrPoll] != 1 || ex.Syscalls[sysNrPpoll] != 1 {
		t.Errorf("futex %d, poll %d, ppoll %d calls; want at least 2, 1 and 1", ex.Syscalls[sysNrFutex], ex.Syscalls[sysNrPoll], ex.Syscalls[sysNrPpoll])
	}
}

// TestTimedWaitCutShortByDeadlineResumes: a timed futex wait and a poll longer than the run's
// Timeout stop the run at the deadline with the guest parked at the call (RAX still holds its
// number, nothing printed after it, no snapshot possible); the next Run waits to the original
// end, and the guest sees one uninterrupted wait of at least its length with Linux's result.
func TestTimedWaitCutShortByDeadlineResumes(t *testing.T) {
	h := openHost(t)
	for _, tc := range []struct {
		step string
		nr   uint64
	}{{"futex:1200", sysNrFutex}, {"poll:1200", sysNrPoll}} {
		t.Run(tc.step, func(t *testing.T) {
			var c captured
			g, err := h.New(context.Background(), c.config(Config{Memory: 32 << 20, Timeout: 200 * time.Millisecond,
				Args: []string{"timedwait", tc.step}}), build(t, "timedwait"))
			if err != nil {
				t.Fatal(err)
			}
			defer g.Close()
			kind, ms, _ := strings.Cut(tc.step, ":")
			ex, err := g.Run(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if ex.Reason != Deadline || ex.Regs.RAX != tc.nr {
				t.Fatalf("%v with rax %d, want Deadline parked at %s (%d)", ex.Reason, ex.Regs.RAX, kind, tc.nr)
			}
			if got, want := c.stdout.String(), "start "+kind+" "+ms+"\n"; got != want {
				t.Fatalf("stdout %q, want %q: the wait completed", got, want)
			}
			if n := ex.Syscalls[tc.nr]; n != 0 {
				t.Fatalf("%s counted %d times, want 0 (a parked call counts when it completes)", kind, n)
			}
			if _, err := g.Checkpoint(); !errors.Is(err, ErrNotParked) {
				t.Fatalf("Checkpoint of a guest parked in a timed wait: %v, want ErrNotParked", err)
			}

			g.cfg.Timeout = 0
			ex, err = g.Run(context.Background())
			if err != nil || ex.Reason != Exited || ex.Code != 0 {
				t.Fatalf("second run: %v code %d (%v) %v; stdout %q", ex.Reason, ex.Code, ex.Err, err, c.stdout.String())
			}
			if w := "waited " + kind + " " + ms + " "; !strings.Contains(c.stdout.String(), w) {
				t.Fatalf("no %q in stdout %q", w, c.stdout.String())
			}
			if n := ex.Syscalls[tc.nr]; n != 1 {
				t.Fatalf("%s counted %d times, want once", kind, n)
			}
		})
	}
}

// TestTimedWaitsResumeKeepTheOriginalEnd drives the library OS alone, its vCPU wait injected:
// a futex wait and a poll cut short park the call; re-served, they wait only what is left of
// the first wait and then answer ETIMEDOUT and 0. A poll of an empty stdin parks like a read,
// with a timeout too, and waits for nothing; a poll of no descriptor is a sleep.
func TestTimedWaitsResumeKeepTheOriginalEnd(t *testing.T) {
	f := newFSKernel(t)
	var asked []time.Duration
	full := false
	f.k.nap = func(d time.Duration) bool { asked = append(asked, d); return full }
	le := binary.LittleEndian
	const word, ts, sv, pfd = 0x300000, 0x300010, 0x300020, 0x300030
	le.PutUint32(f.mem.b[word:], 7)
	le.PutUint64(f.mem.b[ts:], 5)
	le.PutUint64(f.mem.b[ts+8:], 0)
	f.want("socketpair", f.call("socketpair", unix.AF_UNIX, 1, 0, sv), 0)
	le.PutUint32(f.mem.b[pfd:], le.Uint32(f.mem.b[sv:]))
	le.PutUint16(f.mem.b[pfd+4:], pollIn)

	for _, c := range []struct {
		name string
		args []uint64
		want int64
	}{
		{"futex", []uint64{word, 0, 7, ts, 0, 0}, neg(unix.ETIMEDOUT)},
		{"poll", []uint64{pfd, 1, 5000}, 0},
		{"ppoll", []uint64{pfd, 1, ts, 0, 8}, 0},
	} {
		asked, full = asked[:0], false
		f.call(c.name, c.args...)
		if !f.k.cutShort || f.k.resume == nil {
			t.Fatalf("%s cut short: cutShort %v resume %v", c.name, f.k.cutShort, f.k.resume)
		}
		f.k.cutShort = false // what Guest.serve does when it parks the guest
		time.Sleep(20 * time.Millisecond)
		full = true
		f.want(c.name+" resumed", f.call(c.name, c.args...), c.want)
		if f.k.cutShort || f.k.resume != nil {
			t.Fatalf("%s resumed: cutShort %v resume %v", c.name, f.k.cutShort, f.k.resume)
		}
		if len(asked) != 2 || asked[0] != 5*time.Second || asked[1] > asked[0]-20*time.Millisecond || asked[1] <= 0 {
			t.Fatalf("%s waits %v: 5 s, then what is left of it (at most 5 s - 20 ms)", c.name, asked)
		}
	}

	asked = asked[:0]
	le.PutUint32(f.mem.b[pfd:], 0) // stdin, empty, fed by the host
	f.want("timed poll of stdin", f.call("poll", pfd, 1, 5000), 0)
	if !f.k.blocked || len(asked) != 0 {
		t.Fatalf("a timed poll of an empty stdin: blocked %v, waits %v; want parked like a read, no wait", f.k.blocked, asked)
	}
	f.k.blocked = false
	f.want("poll of nothing", f.call("poll", 0, 0, 30), 0)
	if len(asked) != 1 || asked[0] != 30*time.Millisecond {
		t.Fatalf("poll of no descriptor for 30 ms waited %v", asked)
	}
}
