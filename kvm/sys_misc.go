package kvm

import (
	"encoding/binary"
	"fmt"
	"io"

	"golang.org/x/sys/unix"
)

// guestPID is the guest's pid and tid: it is alone in its world.
const guestPID = 1

func sysGetpid(k *kernel, a *sysArgs) uint64 { return guestPID }

func sysExit(k *kernel, a *sysArgs) uint64 {
	k.stop = &Exit{Reason: Exited, Code: int(a[0] & 0xff)}
	return 0
}

// signal handles a signal the program sends itself: 0 probes, ignorable signals are ignored, and
// any other ends the guest as Linux's default action would.
func (k *kernel) signal(pid, sig uint64) uint64 {
	if pid != guestPID && pid != 0 {
		return errno(unix.ESRCH)
	}
	if sig > 64 {
		return errno(unix.EINVAL)
	}
	switch unix.Signal(sig) {
	case 0, unix.SIGCHLD, unix.SIGURG, unix.SIGWINCH, unix.SIGCONT:
		return 0
	}
	k.stop = &Exit{Reason: Fault, Signal: int(sig), Code: 128 + int(sig),
		Err: fmt.Errorf("%w: the program killed itself with signal %d (%v)", ErrFault, sig, unix.Signal(sig))}
	return 0
}

func sysKill(k *kernel, a *sysArgs) uint64   { return k.signal(a[0], a[1]) }
func sysTkill(k *kernel, a *sysArgs) uint64  { return k.signal(a[0], a[1]) }
func sysTgkill(k *kernel, a *sysArgs) uint64 { return k.signal(a[1], a[2]) }

// Signal handlers are accepted and never called: no signal is ever delivered to the guest.
func sysRtSigaction(k *kernel, a *sysArgs) uint64 {
	if a[3] != 8 {
		return errno(unix.EINVAL)
	}
	if a[2] != 0 {
		if err := k.mem.writeUser(a[2], make([]byte, 32)); err != nil {
			return errnoOf(err)
		}
	}
	return 0
}

func sysRtSigprocmask(k *kernel, a *sysArgs) uint64 {
	if a[3] != 8 {
		return errno(unix.EINVAL)
	}
	if a[2] != 0 {
		if err := k.mem.putU64(a[2], 0); err != nil {
			return errnoOf(err)
		}
	}
	return 0
}

func sysSigaltstack(k *kernel, a *sysArgs) uint64 {
	if a[1] != 0 {
		b := make([]byte, 24)
		binary.LittleEndian.PutUint32(b[8:], 2) // SS_DISABLE
		if err := k.mem.writeUser(a[1], b); err != nil {
			return errnoOf(err)
		}
	}
	return 0
}

func sysUname(k *kernel, a *sysArgs) uint64 {
	b, err := k.mem.user(a[0], 6*65, true)
	if err != nil {
		return errnoOf(err)
	}
	clear(b)
	for i, s := range []string{"Linux", "snapinvoker", "6.1.0", "#1 SMP", "x86_64", "(none)"} {
		copy(b[i*65:], s)
	}
	return 0
}

const (
	archSetGS = 0x1001
	archSetFS = 0x1002
	archGetFS = 0x1003
	archGetGS = 0x1004
)

func sysArchPrctl(k *kernel, a *sysArgs) uint64 {
	switch a[0] {
	case archSetFS:
		// A non-canonical base would make the VM entry fail: refuse it as Linux does.
		if a[1] >= 1<<47 {
			return errno(unix.EPERM)
		}
		if err := k.cpu.setFSBase(a[1]); err != nil {
			return errno(unix.EINVAL)
		}
		k.fsBase = a[1]
		return 0
	case archGetFS:
		if err := k.mem.putU64(a[1], k.fsBase); err != nil {
			return errnoOf(err)
		}
		return 0
	case archGetGS:
		if err := k.mem.putU64(a[1], 0); err != nil {
			return errnoOf(err)
		}
		return 0
	}
	return errno(unix.EINVAL)
}

// rlimit answers the limits a program sizes itself by: the stack and address space are the
// guest's; everything else is unlimited.
func (k *kernel) rlimit(resource uint64) (cur, max uint64) {
	const inf = ^uint64(0)
	switch resource {
	case unix.RLIMIT_STACK:
		s := k.stackHi - k.stackLo
		return s, s
	case unix.RLIMIT_AS, unix.RLIMIT_DATA:
		return k.mem.size(), k.mem.size()
	case unix.RLIMIT_NOFILE:
		return maxFDs, maxFDs
	}
	return inf, inf
}

func (k *kernel) putRlimit(addr, resource uint64) uint64 {
	if resource >= 16 {
		return errno(unix.EINVAL)
	}
	cur, max := k.rlimit(resource)
	b, err := k.mem.user(addr, 16, true)
	if err != nil {
		return errnoOf(err)
	}
	binary.LittleEndian.PutUint64(b, cur)
	binary.LittleEndian.PutUint64(b[8:], max)
	return 0
}

func sysGetrlimit(k *kernel, a *sysArgs) uint64 { return k.putRlimit(a[1], a[0]) }

// sysPrlimit64 reports limits and accepts (and ignores) new ones: the real limits are the VMM's.
func sysPrlimit64(k *kernel, a *sysArgs) uint64 {
	if a[0] != 0 && a[0] != guestPID {
		return errno(unix.ESRCH)
	}
	if a[1] >= 16 {
		return errno(unix.EINVAL)
	}
	if a[3] != 0 {
		return k.putRlimit(a[3], a[1])
	}
	return 0
}

const maxRandom = 1 << 16

func sysGetrandom(k *kernel, a *sysArgs) uint64 {
	b, err := k.mem.user(a[0], min(a[1], maxRandom), true)
	if err != nil {
		return errnoOf(err)
	}
	if _, err := io.ReadFull(k.random, b); err != nil {
		return errno(unix.EIO)
	}
	return uint64(len(b))
}

func sysSchedGetaffinity(k *kernel, a *sysArgs) uint64 {
	if a[1] < 8 {
		return errno(unix.EINVAL)
	}
	if err := k.mem.putU64(a[2], 1); err != nil {
		return errnoOf(err)
	}
	return 8
}

func sysGetcpu(k *kernel, a *sysArgs) uint64 {
	for _, p := range []uint64{a[0], a[1]} {
		if p != 0 {
			b, err := k.mem.user(p, 4, true)
			if err != nil {
				return errnoOf(err)
			}
			clear(b)
		}
	}
	return 0
}

func sysUmask(k *kernel, a *sysArgs) uint64 { return 0o022 }
