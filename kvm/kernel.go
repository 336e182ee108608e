package kvm

import (
	"crypto/rand"
	"fmt"
	"io"
	"time"

	"golang.org/x/sys/unix"
)

// cpuControl is what the library OS may change in the vCPU besides the general registers.
type cpuControl interface {
	setFSBase(v uint64) error
	// readTSC reads the guest's time-stamp counter and its frequency in kHz.
	readTSC() (tsc, khz uint64, err error)
}

// kernel is the library OS of one guest: the VMM-side state of the program (its heap, mappings,
// descriptors, clocks) and the system calls that act on it. It never touches the vCPU except
// through cpu, and guest memory only through mem's bounds-checked accessors, so it can be driven
// (and fuzzed) on memory alone.
type kernel struct {
	mem *memory
	cpu cpuControl

	exePath string
	random  io.Reader
	// sleep waits out timed waits (sleeps, futex and poll timeouts) when nap is nil; injected
	// so tests and fuzzing do not wait.
	sleep func(time.Duration)
	// nap, set for a kernel that serves a Guest, is its vCPU's wait (vcpu.wait): it sleeps
	// unless the run is asked to stop first, and reports whether it slept the whole time.
	nap func(time.Duration) bool

	// Address space, packed low so the VM's memory slots (whose KVM bookkeeping costs host memory
	// per guest page) cover only what is used: ELF image, stack [stackLo, stackHi), heap
	// [brkStart, brk), then mmap regions first-fit above the heap. maps holds every user mapping
	// but the heap, sorted and disjoint.
	brkStart, brk uint64
	maps          regionList
	stackLo       uint64
	stackHi       uint64
	// grow makes guest memory up to end usable (installs memory slots); nil when the kernel runs
	// on memory alone (tests, fuzzing). See Guest.grow.
	grow         func(end uint64) error
	memExhausted bool // a brk or mmap failed for lack of memory
	fsBase       uint64

	fds   fdTable
	fs    guestFS // files behind kindFile descriptors, the current directory, /tmp (sys_fs.go)
	stdin stdinState
	out   outputs
	clock clockState

	counts, enosys map[uint64]uint64
	ringMask       uint64 // descriptor mask last published to the output ring

	// Set by a system call that ends the run.
	stop    *Exit
	blocked bool // the call must wait for stdin data: re-issue it after Feed
	// cutShort: a stop request (deadline, cancellation) ended the call before it was done; the
	// guest stays parked at it and Run again re-issues it, which then finds resume (a timed
	// wait's end, sys_time.go).
	cutShort bool
	resume   *sleepResume
}

func newKernel(m *memory, cpu cpuControl, cfg *Config) *kernel {
	k := &kernel{
		mem: m, cpu: cpu, exePath: cfg.ExePath, random: cfg.Random,
		counts: map[uint64]uint64{}, enosys: map[uint64]uint64{}, sleep: time.Sleep,
	}
	if k.random == nil {
		k.random = rand.Reader
	}
	k.fds = standardFDs()
	k.fs.init(cfg.Files)
	k.ringMask = ringNoMask
	k.stdin.src = cfg.Stdin
	k.setOutputs(cfg.Stdout, cfg.Stderr, cfg.Result, cfg.OutputLimit)
	k.clock.init()
	return k
}

// dispatch serves system call nr. It never panics on any input: every pointer goes through
// k.mem's bounds checks, every length is capped.
func (k *kernel) dispatch(nr uint64, a *sysArgs) uint64 {
	k.counts[nr]++
	e, ok := sysTable[nr]
	if ok && e.fn != nil {
		return e.fn(k, a)
	}
	if sysFatal[nr] {
		k.stop = &Exit{Reason: Unsupported, Syscall: nr,
			Err: fmt.Errorf("%w %d (%s): the program needs a real kernel for it; run it on the container driver", ErrUnsupported, nr, SyscallName(nr))}
		return errno(unix.ENOSYS)
	}
	k.enosys[nr]++
	return errno(unix.ENOSYS)
}

func copyCounts(m map[uint64]uint64) map[uint64]uint64 {
	c := make(map[uint64]uint64, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// errnoOf converts an accessor error into a return value.
func errnoOf(err error) uint64 {
	if e, ok := err.(unix.Errno); ok {
		return errno(e)
	}
	return errno(unix.EFAULT)
}

// setOutputs installs the host's sinks and gives each a fresh budget.
func (k *kernel) setOutputs(stdout, stderr, result io.Writer, limit int64) {
	k.out = outputs{w: [3]io.Writer{stdout, stderr, result}, limit: limit}
	k.out.left = [3]int64{limit, limit, limit}
}
