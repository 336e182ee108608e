package kvm

import (
	"encoding/binary"
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

// maxSleep bounds one sleep; the run's deadline still applies around it.
const maxSleep = time.Second

func (k *kernel) sleepFor(req uint64) uint64 {
	b, err := k.mem.user(req, 16, false)
	if err != nil {
		return errnoOf(err)
	}
	sec, nsec := int64(binary.LittleEndian.Uint64(b)), int64(binary.LittleEndian.Uint64(b[8:]))
	if sec < 0 || nsec < 0 || nsec >= 1e9 {
		return errno(unix.EINVAL)
	}
	d := maxSleep
	if sec < int64(maxSleep/time.Second) {
		d = min(maxSleep, time.Duration(sec)*time.Second+time.Duration(nsec))
	}
	k.sleep(d)
	return 0
}

func sysNanosleep(k *kernel, a *sysArgs) uint64 { return k.sleepFor(a[0]) }

func sysClockNanosleep(k *kernel, a *sysArgs) uint64 {
	const timerAbstime = 1
	if a[1]&timerAbstime != 0 {
		b, err := k.mem.user(a[2], 16, false)
		if err != nil {
			return errnoOf(err)
		}
		now, ok := k.clock.now(a[0])
		if !ok {
			return errno(unix.EINVAL)
		}
		at := int64(binary.LittleEndian.Uint64(b))*1e9 + int64(binary.LittleEndian.Uint64(b[8:]))
		if at > now {
			k.sleep(min(maxSleep, time.Duration(at-now)))
		}
		return 0
	}
	return k.sleepFor(a[2])
}
