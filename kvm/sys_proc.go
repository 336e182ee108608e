package kvm

// System calls runtimes ask for besides files: sysinfo and the single-thread futex.

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"
)

// sysSysinfo reports the guest's memory as its RAM: glibc sizes caches (qsort) by it.
func sysSysinfo(k *kernel, a *sysArgs) uint64 {
	b, err := k.mem.user(a[0], 112, true)
	if err != nil {
		return errnoOf(err)
	}
	clear(b)
	le := binary.LittleEndian
	le.PutUint64(b[0:], uint64(hostClock(unix.CLOCK_MONOTONIC)+k.clock.MonoOffset)/1e9) // uptime
	used := pageUp(k.brk)
	for _, r := range k.maps {
		used += r.End - r.Start
	}
	le.PutUint64(b[32:], k.mem.size())                         // totalram
	le.PutUint64(b[40:], k.mem.size()-min(used, k.mem.size())) // freeram
	le.PutUint16(b[80:], 1)                                    // procs
	le.PutUint32(b[104:], 1)                                   // mem_unit
	return 0
}

// sysFutex serves the one-thread case: a wake finds no waiter; a wait whose value differs
// returns EAGAIN; a timed wait nobody can end waits its whole time (interruptible by the run's
// deadline, sys_time.go) and returns ETIMEDOUT; a wait that would block forever (nobody else can
// wake it) stops the guest as Unsupported, because it means the program relies on a thread this
// VMM does not run.
func sysFutex(k *kernel, a *sysArgs) uint64 {
	const (
		futexWait          = 0
		futexWake          = 1
		futexWaitBitset    = 9
		futexWakeBitset    = 10
		futexCmdMask       = 0x7f // without FUTEX_PRIVATE_FLAG and FUTEX_CLOCK_REALTIME
		futexClockRealtime = 256
	)
	switch op := a[1] & futexCmdMask; op {
	case futexWake, futexWakeBitset:
		return 0
	case futexWait, futexWaitBitset:
		// The word cannot have changed while the guest was parked in the wait: it has one
		// thread and the host never writes its memory.
		if r := k.takeResume(sysNrFutex); r != nil {
			k.waitUntil(*r)
			return errno(unix.ETIMEDOUT)
		}
		var timeout int64
		if a[3] != 0 {
			// Linux checks the timeout before it looks at the word.
			var e unix.Errno
			if timeout, e = k.timespecAt(a[3]); e != 0 {
				return errno(e)
			}
		}
		v, err := k.mem.user(a[0], 4, false)
		if err != nil {
			return errnoOf(err)
		}
		if binary.LittleEndian.Uint32(v) != uint32(a[2]) {
			return errno(unix.EAGAIN)
		}
		if a[3] != 0 {
			// FUTEX_WAIT's timeout is relative, on CLOCK_MONOTONIC; FUTEX_WAIT_BITSET's is an
			// absolute time on CLOCK_MONOTONIC, or CLOCK_REALTIME when asked.
			clock := uint64(unix.CLOCK_MONOTONIC)
			if op == futexWaitBitset && a[1]&futexClockRealtime != 0 {
				clock = unix.CLOCK_REALTIME
			}
			k.waitFor(sysNrFutex, clock, op == futexWaitBitset, timeout)
			return errno(unix.ETIMEDOUT) // unseen when the wait was cut short
		}
		k.stop = &Exit{Reason: Unsupported, Syscall: sysNrFutex,
			Err: fmt.Errorf("%w 202 (futex): FUTEX_WAIT on %#x would block forever in a single-threaded guest", ErrUnsupported, a[0])}
		return errno(unix.ENOSYS)
	}
	return errno(unix.ENOSYS)
}
