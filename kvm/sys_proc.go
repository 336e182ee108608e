package kvm

// System calls runtimes ask for besides files: sysinfo and the single-thread futex.

import (
	"encoding/binary"
	"fmt"
	"time"

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
// returns EAGAIN; a wait that would block forever (nobody else can wake it) stops the guest as
// Unsupported, because it means the program relies on a thread this VMM does not run.
func sysFutex(k *kernel, a *sysArgs) uint64 {
	const (
		futexWait       = 0
		futexWake       = 1
		futexWaitBitset = 9
		futexWakeBitset = 10
	)
	switch a[1] & 0x7f {
	case futexWake, futexWakeBitset:
		return 0
	case futexWait, futexWaitBitset:
		v, err := k.mem.user(a[0], 4, false)
		if err != nil {
			return errnoOf(err)
		}
		if binary.LittleEndian.Uint32(v) != uint32(a[2]) {
			return errno(unix.EAGAIN)
		}
		if a[3] != 0 {
			// A timed wait nobody can end: it times out, after its time (bounded like a sleep).
			ts, err := k.mem.user(a[3], 16, false)
			if err != nil {
				return errnoOf(err)
			}
			sec, nsec := int64(binary.LittleEndian.Uint64(ts)), int64(binary.LittleEndian.Uint64(ts[8:]))
			if sec < 0 || nsec < 0 || nsec >= 1e9 {
				return errno(unix.EINVAL)
			}
			d := time.Duration(min(sec, 1<<20))*time.Second + time.Duration(nsec)
			if a[1]&0x7f == futexWaitBitset { // an absolute time on CLOCK_MONOTONIC or CLOCK_REALTIME
				clock := uint64(unix.CLOCK_MONOTONIC)
				if a[1]&256 != 0 {
					clock = unix.CLOCK_REALTIME
				}
				now, _ := k.clock.now(clock)
				d = time.Duration(min(sec, 1<<20)*1e9+nsec-now) * time.Nanosecond
			}
			if d > 0 {
				k.sleep(min(d, maxSleep))
			}
			return errno(unix.ETIMEDOUT)
		}
		k.stop = &Exit{Reason: Unsupported, Syscall: 202,
			Err: fmt.Errorf("%w 202 (futex): FUTEX_WAIT on %#x would block forever in a single-threaded guest", ErrUnsupported, a[0])}
		return errno(unix.ENOSYS)
	}
	return errno(unix.ENOSYS)
}
