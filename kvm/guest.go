package kvm

import (
	"errors"
	"fmt"
	"io"
	"time"
)

// Sentinel errors. Errors returned by this package wrap one of them.
var (
	// ErrNoKVM: /dev/kvm is missing or cannot be opened; run on a host with KVM.
	ErrNoKVM = errors.New("kvm: /dev/kvm unavailable")
	// ErrBadProgram: the executable is not an x86-64 ELF this VMM can load, or it is dynamically
	// linked and its interpreter is not in Config.Files.
	ErrBadProgram = errors.New("kvm: unsupported program")
	// ErrBadConfig: a Config field is out of range.
	ErrBadConfig = errors.New("kvm: bad config")
	// ErrMemoryLimit: the program needs more memory than the guest was given.
	ErrMemoryLimit = errors.New("kvm: guest memory limit reached")
	// ErrUnsupported: the program needs a system call this library OS does not provide.
	ErrUnsupported = errors.New("kvm: unsupported system call")
	// ErrFault: the guest stopped on a CPU fault or an exit the VMM does not expect.
	ErrFault = errors.New("kvm: guest fault")
	// ErrBadSnapshot: a snapshot file is malformed or truncated.
	ErrBadSnapshot = errors.New("kvm: bad snapshot")
	// ErrIncompatibleSnapshot: a snapshot was taken on a host with other CPU features or another
	// virtualisation backend; take it again on a host like this one.
	ErrIncompatibleSnapshot = errors.New("kvm: snapshot taken on an incompatible host")
	// ErrNotParked: a snapshot was requested while the guest is not blocked reading stdin.
	ErrNotParked = errors.New("kvm: guest is not parked in a blocking stdin read")
	// ErrNotRestored: Reset was called on a guest that was not restored from a snapshot.
	ErrNotRestored = errors.New("kvm: guest has no snapshot to reset to")
	// ErrClosed: the guest (or pool) has been closed.
	ErrClosed = errors.New("kvm: closed")
	// ErrVMM: a KVM operation failed; the guest is unusable.
	ErrVMM = errors.New("kvm: VMM failure")
)

// Config describes one guest. The zero value of every field has a sensible default.
type Config struct {
	// Memory is the guest's memory in bytes, which bounds everything the program maps (its
	// image, stack, heap). Rounded up to 2 MiB; default 256 MiB; MinMemory..MaxMemory.
	Memory uint64
	// Timeout bounds each Run call's wall time; 0 means only the context's deadline applies.
	Timeout time.Duration
	// Args is argv (Args[0] is the program name; default "program"); Env is envp.
	Args, Env []string
	// ExePath is what readlink("/proc/self/exe") answers; default "/program".
	ExePath string
	// Stdin, when set, is read (blocking the guest) whenever the guest reads an empty stdin; EOF
	// there is EOF for the guest. When nil, such a read stops Run with BlockedOnRead: Feed data
	// (or CloseStdin) and Run again.
	Stdin io.Reader
	// Stdout, Stderr and Result receive what the guest writes to fds 1, 2 and 3. Nil discards.
	// Writers are called from Run's goroutine and must not retain the slice.
	Stdout, Stderr, Result io.Writer
	// OutputLimit bounds the bytes accepted per stream; the rest is dropped (the guest still sees
	// success) and Exit.OutputTruncated is set. Default 10 MiB.
	OutputLimit int64
	// Random seeds AT_RANDOM and serves getrandom; nil means crypto/rand.
	Random io.Reader
	// Files is the read-only file tree the guest sees besides its private /tmp (fs.go); nil shows
	// no file at all. A dynamically linked program's interpreter and libraries must be in it. A
	// restore with Files nil sees the tree the snapshot's guest had (snapshots record it).
	Files *FileTree
}

const (
	defaultMemory      = 256 << 20
	defaultOutputLimit = 10 << 20
)

func (c *Config) normalize() error {
	if c.Memory == 0 {
		c.Memory = defaultMemory
	}
	if c.Memory < MinMemory || c.Memory > MaxMemory {
		return fmt.Errorf("%w: Memory %d MiB outside [%d MiB, %d MiB]", ErrBadConfig, c.Memory>>20, MinMemory>>20, MaxMemory>>20)
	}
	c.Memory = (c.Memory + 2<<20 - 1) &^ (2<<20 - 1)
	if c.Timeout < 0 {
		return fmt.Errorf("%w: Timeout %v is negative", ErrBadConfig, c.Timeout)
	}
	if c.OutputLimit < 0 {
		return fmt.Errorf("%w: OutputLimit %d is negative", ErrBadConfig, c.OutputLimit)
	}
	if c.OutputLimit == 0 {
		c.OutputLimit = defaultOutputLimit
	}
	if len(c.Args) == 0 {
		c.Args = []string{"program"}
	}
	if c.ExePath == "" {
		c.ExePath = "/program"
	}
	if c.Files != nil {
		return c.Files.check()
	}
	return nil
}

// Reason says why Run returned.
type Reason int

const (
	// Exited: the program called exit or exit_group; Exit.Code holds the status.
	Exited Reason = iota + 1
	// BlockedOnRead: the program reads stdin and none is buffered; Feed and Run again, or
	// Snapshot now.
	BlockedOnRead
	// Deadline: the Timeout or the context ended the run; the guest can be Run again. A timed wait
	// it cut short (nanosleep, clock_nanosleep, a timed futex wait, a poll's timeout) goes on to
	// its original end in the next Run.
	Deadline
	// MemoryLimit: the program ran out of guest memory (a failed brk/mmap) and then stopped.
	MemoryLimit
	// Unsupported: the program needs a system call this library OS does not provide.
	Unsupported
	// Fault: a CPU fault (triple fault), a self-inflicted fatal signal (abort) or an unexpected exit.
	Fault
)

func (r Reason) String() string {
	switch r {
	case Exited:
		return "exited"
	case BlockedOnRead:
		return "blocked on read"
	case Deadline:
		return "deadline"
	case MemoryLimit:
		return "memory limit"
	case Unsupported:
		return "unsupported"
	case Fault:
		return "fault"
	}
	return fmt.Sprintf("reason(%d)", int(r))
}

// Exit describes why and how a guest stopped.
type Exit struct {
	Reason Reason
	// Code is the exit status for Exited, and 128+Signal for a fatal signal the program sent
	// itself.
	Code int
	// Signal is the signal of a self-inflicted kill (abort is 6), else 0.
	Signal int
	// Syscall is the system call number for Unsupported.
	Syscall uint64
	// Err explains Fault, MemoryLimit and Unsupported (wrapping ErrFault, ErrMemoryLimit or
	// ErrUnsupported) in words an operator can act on; nil otherwise.
	Err error
	// Regs are the registers when the guest stopped, for debugging.
	Regs Regs
	// Syscalls counts system calls by number since the guest was created or restored; ENOSYS
	// counts those answered ENOSYS.
	Syscalls, ENOSYS map[uint64]uint64
	// OutputTruncated reports that OutputLimit dropped some output.
	OutputTruncated bool
	// Exits counts the guest's exits to the VMM (KVM_RUN returns) since creation or restore:
	// what costs time on kvm-pvm, where an exit takes tens of microseconds.
	Exits uint64
}
