package kvm

import (
	"encoding/binary"
	"math"
	"time"

	"golang.org/x/sys/unix"
)

// clockState is the guest's view of time. CLOCK_REALTIME is the host's; the guest's monotonic
// clock is the host's plus MonoOffset, which a restore raises so the guest's monotonic time never
// runs backwards across a snapshot taken on another host.
type clockState struct {
	MonoOffset int64
	cal        calibration // host-specific: never part of a snapshot
}

func (c *clockState) init() {}

func hostClock(id int32) int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(id, &ts); err != nil {
		return 0
	}
	return ts.Nano()
}

// now returns the guest's time in nanoseconds on clock id, and false for an unknown clock.
func (c *clockState) now(id uint64) (int64, bool) {
	switch id {
	case unix.CLOCK_REALTIME, unix.CLOCK_REALTIME_COARSE, unix.CLOCK_TAI:
		return hostClock(unix.CLOCK_REALTIME), true
	case unix.CLOCK_MONOTONIC, unix.CLOCK_MONOTONIC_COARSE, unix.CLOCK_MONOTONIC_RAW, unix.CLOCK_BOOTTIME:
		return hostClock(unix.CLOCK_MONOTONIC) + c.MonoOffset, true
	case unix.CLOCK_PROCESS_CPUTIME_ID, unix.CLOCK_THREAD_CPUTIME_ID:
		return hostClock(unix.CLOCK_THREAD_CPUTIME_ID), true
	}
	return 0, false
}

func (k *kernel) putTimespec(addr uint64, ns int64) uint64 {
	b, err := k.mem.user(addr, 16, true)
	if err != nil {
		return errnoOf(err)
	}
	binary.LittleEndian.PutUint64(b, uint64(ns/1e9))
	binary.LittleEndian.PutUint64(b[8:], uint64(ns%1e9))
	return 0
}

func sysClockGettime(k *kernel, a *sysArgs) uint64 {
	k.publishClock(false) // from now on the vDSO answers without an exit
	ns, ok := k.clock.now(a[0])
	if !ok {
		return errno(unix.EINVAL)
	}
	return k.putTimespec(a[1], ns)
}

func sysClockGetres(k *kernel, a *sysArgs) uint64 {
	if _, ok := k.clock.now(a[0]); !ok {
		return errno(unix.EINVAL)
	}
	if a[1] == 0 {
		return 0
	}
	return k.putTimespec(a[1], 1)
}

func sysGettimeofday(k *kernel, a *sysArgs) uint64 {
	k.publishClock(false)
	if a[0] != 0 {
		ns, _ := k.clock.now(unix.CLOCK_REALTIME)
		b, err := k.mem.user(a[0], 16, true)
		if err != nil {
			return errnoOf(err)
		}
		binary.LittleEndian.PutUint64(b, uint64(ns/1e9))
		binary.LittleEndian.PutUint64(b[8:], uint64(ns%1e9/1e3))
	}
	if a[1] != 0 {
		if err := k.mem.writeUser(a[1], make([]byte, 8)); err != nil {
			return errnoOf(err)
		}
	}
	return 0
}

func sysTime(k *kernel, a *sysArgs) uint64 {
	k.publishClock(false)
	ns, _ := k.clock.now(unix.CLOCK_REALTIME)
	s := uint64(ns / 1e9)
	if a[0] != 0 {
		if err := k.mem.putU64(a[0], s); err != nil {
			return errnoOf(err)
		}
	}
	return s
}

// Timed waits
//
// nanosleep and clock_nanosleep, a timed futex wait and a poll's timeout wait the whole time
// asked, on the host, in the vCPU's thread: the guest has one thread, so nothing else could run
// meanwhile, and nothing it waits for can happen (a poll that stdin data could end parks like a
// read instead, sys_sock.go). A stop request (the run's Timeout, its context) ends such a wait
// early without completing the call: the guest stays parked at it (Guest.pending, as at a
// blocked read), Run returns Deadline, and the next Run re-serves the call, which finds resume
// and waits until the end the first call computed. That is what Linux does when a stop signal
// (SIGSTOP, then SIGCONT) interrupts these calls: they restart transparently with their original
// expiry, and the program never sees EINTR, which it would only see after running a signal
// handler. EINTR with the remaining time in rem would show the guest an interruption it cannot
// get on Linux, and most programs do not retry (sleep(3) returns the unslept seconds and callers
// ignore them). The guest's registers and memory are left exactly as at the call; only resume,
// in the VMM, knows the wait's end, so a guest parked in a timed wait cannot be snapshotted
// (ErrNotParked) and Reset forgets the wait with the rest of the kernel's state.

// sleepResume is a timed wait a stop request cut short: system call nr waits on clock until end
// (the guest's time on that clock, in nanoseconds).
type sleepResume struct {
	nr, clock uint64
	end       int64
}

const (
	sysNrPoll           = 7
	sysNrNanosleep      = 35
	sysNrFutex          = 202
	sysNrClockNanosleep = 230
	sysNrPpoll          = 271
	timerAbstime        = 1
)

func sysNanosleep(k *kernel, a *sysArgs) uint64 {
	return k.nanosleep(sysNrNanosleep, unix.CLOCK_MONOTONIC, false, a[0])
}

func sysClockNanosleep(k *kernel, a *sysArgs) uint64 {
	return k.nanosleep(sysNrClockNanosleep, a[0], a[1]&timerAbstime != 0, a[2])
}

// nanosleep serves system call nr: a sleep on clock for the timespec at req, or until it when
// abs is set. Errors are Linux's, in its order: EINVAL for an unknown clock, EOPNOTSUPP for one
// it cannot sleep on, EFAULT for a timespec outside the program's memory, EINVAL for a negative
// or non-normalised one.
func (k *kernel) nanosleep(nr, clock uint64, abs bool, req uint64) uint64 {
	if r := k.takeResume(nr); r != nil {
		k.waitUntil(*r)
		return 0
	}
	switch clock {
	case unix.CLOCK_REALTIME, unix.CLOCK_MONOTONIC, unix.CLOCK_BOOTTIME, unix.CLOCK_TAI:
	case unix.CLOCK_REALTIME_COARSE, unix.CLOCK_MONOTONIC_COARSE, unix.CLOCK_MONOTONIC_RAW:
		return errno(unix.EOPNOTSUPP) // Linux cannot sleep on these either
	case unix.CLOCK_PROCESS_CPUTIME_ID:
		// The process's only thread would sleep until its own CPU time grew: never. Linux
		// would hang there; answered as a clock one cannot sleep on instead.
		return errno(unix.EOPNOTSUPP)
	default:
		return errno(unix.EINVAL) // CLOCK_THREAD_CPUTIME_ID too, as on Linux
	}
	ns, e := k.timespecAt(req)
	if e != 0 {
		return errno(e)
	}
	k.waitFor(nr, clock, abs, ns)
	return 0
}

// timespecAt reads the timespec at addr in nanoseconds, saturated beyond 292 years (as good as
// forever): EFAULT outside the program's memory, EINVAL for a negative or non-normalised one.
func (k *kernel) timespecAt(addr uint64) (int64, unix.Errno) {
	b, err := k.mem.user(addr, 16, false)
	if err != nil {
		if e, ok := err.(unix.Errno); ok {
			return 0, e
		}
		return 0, unix.EFAULT
	}
	sec, nsec := int64(binary.LittleEndian.Uint64(b)), int64(binary.LittleEndian.Uint64(b[8:]))
	if sec < 0 || nsec < 0 || nsec >= 1e9 {
		return 0, unix.EINVAL
	}
	if sec >= math.MaxInt64/int64(time.Second)-1 {
		return math.MaxInt64, 0
	}
	return sec*1e9 + nsec, 0
}

// takeResume returns the wait a stop request cut short if call nr is the one re-served, and
// forgets it either way: the guest was parked at that call, so the next call served is it.
func (k *kernel) takeResume(nr uint64) *sleepResume {
	r := k.resume
	k.resume = nil
	if r == nil || r.nr != nr {
		return nil
	}
	return r
}

// waitFor is the timed wait of system call nr: ns nanoseconds on clock, or until time ns on
// it when abs is set. It reports whether the wait reached its end; when a stop request cut it
// short, the call is left parked to resume (its return value is then never seen by the guest).
func (k *kernel) waitFor(nr, clock uint64, abs bool, ns int64) bool {
	now, _ := k.clock.now(clock)
	end := ns
	if !abs {
		end = now + ns
		if end < now {
			end = math.MaxInt64
		}
	}
	return k.waitFrom(sleepResume{nr: nr, clock: clock, end: end}, now)
}

// waitUntil resumes r, a wait a stop request cut short; see waitFor.
func (k *kernel) waitUntil(r sleepResume) bool {
	now, _ := k.clock.now(r.clock)
	return k.waitFrom(r, now)
}

// waitFrom waits from now, the guest's time on r.clock, until r.end. A relative wait measures
// from the now its end was computed from, so it waits exactly the time asked.
func (k *kernel) waitFrom(r sleepResume, now int64) bool {
	if now >= r.end {
		return true
	}
	if k.wait(time.Duration(r.end - now)) {
		return true
	}
	k.resume, k.cutShort = &r, true
	return false
}

// wait sleeps d, through the vCPU (interruptible) when the kernel serves a Guest, and reports
// whether it slept the whole time.
func (k *kernel) wait(d time.Duration) bool {
	if k.nap != nil {
		return k.nap(d)
	}
	k.sleep(d)
	return true
}
