package kvm

import (
	"context"
	"encoding/binary"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// vcpu is one virtual CPU and its shared kvm_run page.
type vcpu struct {
	fd     int
	runMap []byte
	run    *kvmRunPage

	// mu orders stop requests (interrupt, called from a context's AfterFunc or a timer, on any
	// goroutine) against the start and end of Run and against close. A stop request touches
	// kvm_run and signals the vCPU's thread only while it holds mu and its run is still the
	// active one, so once Run's end (or close) has taken mu, a callback that is late, or still in
	// flight, touches nothing: not a kvm_run page Close has unmapped, not a thread that Run has
	// given back to the Go scheduler.
	mu sync.Mutex
	// active is the number of the Run in progress, 0 when none; runGen numbers Run calls.
	active, runGen uint64
	// tid is active's OS thread, read by Gettid after LockOSThread and cleared before the
	// thread is unlocked: the target of interrupt's signal.
	tid int
	// wake, when set, is closed by a stop request: it ends a host-side wait of the active run
	// (wait, a sleeping system call).
	wake chan struct{}
	// closed: the kvm_run page is unmapped; nothing may touch it.
	closed bool
	// stopping holds the number of the run asked to stop; Run's loop reads it without mu.
	stopping atomic.Uint64
}

// interrupt makes run gen of the vCPU leave KVM_RUN (or a host-side wait) soon: immediate_exit
// covers the window before the ioctl, the signal (SIGURG, which the Go runtime already tolerates
// as its preemption signal) the time inside it. It does nothing once run gen has ended.
func (v *vcpu) interrupt(gen uint64) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.closed || v.active != gen {
		return
	}
	v.stopping.Store(gen)
	v.run.setImmediateExit(true)
	if v.wake != nil {
		close(v.wake)
		v.wake = nil
	}
	if v.tid != 0 {
		// The thread is still locked to Run's goroutine: Run clears tid under mu before
		// unlocking it.
		unix.Tgkill(unix.Getpid(), v.tid, unix.SIGURG)
	}
}

// begin registers a Run on the calling goroutine, which holds LockOSThread, and returns its
// number.
func (v *vcpu) begin() uint64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.runGen++
	v.active = v.runGen
	v.tid = unix.Gettid()
	v.wake = nil
	// A stop request of an earlier run can no longer set it (it finds that run inactive).
	v.run.setImmediateExit(false)
	return v.active
}

// end unregisters the active Run; from here on its stop requests are no-ops. It must run before
// the thread is unlocked.
func (v *vcpu) end() {
	v.mu.Lock()
	v.active, v.tid, v.wake = 0, 0, nil
	v.mu.Unlock()
}

// markClosed is called before the kvm_run page is unmapped: it waits for a stop request that is
// touching the page and makes later ones no-ops.
func (v *vcpu) markClosed() {
	v.mu.Lock()
	v.closed, v.active, v.tid, v.wake = true, 0, 0, nil
	v.mu.Unlock()
}

// wait blocks the active run's thread for d unless that run is asked to stop first, and reports
// whether it waited the whole time. Outside a Run it simply sleeps.
func (v *vcpu) wait(d time.Duration) bool {
	v.mu.Lock()
	gen := v.active
	if gen != 0 && v.stopping.Load() == gen {
		v.mu.Unlock()
		return false
	}
	var wake chan struct{}
	if gen != 0 {
		if v.wake == nil {
			v.wake = make(chan struct{})
		}
		wake = v.wake
	}
	v.mu.Unlock()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-wake: // nil outside a Run: never ready
		return false
	}
}

// Run runs the guest until it exits, blocks reading an empty stdin (BlockedOnRead), faults,
// or its Timeout or ctx ends (Deadline). A guest stopped by BlockedOnRead or Deadline can be Run
// again. The returned error is for VMM failures only; everything the program did is in Exit. Run
// must not be called concurrently on one guest.
func (g *Guest) Run(ctx context.Context) (Exit, error) {
	if g.closed {
		return Exit{}, ErrClosed
	}
	if g.final != nil {
		return *g.final, nil
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	v := g.sh.cpu
	gen := v.begin()
	// Deferred after UnlockOSThread, so it runs before it: no stop request of this run signals
	// the thread once the Go scheduler may give it to other goroutines.
	defer v.end()
	stop := func() { v.interrupt(gen) }
	stopCtx := context.AfterFunc(ctx, stop)
	defer stopCtx()
	if g.cfg.Timeout > 0 {
		t := time.AfterFunc(g.cfg.Timeout, stop)
		defer t.Stop()
	}

	if g.k.clockPublished() {
		g.k.publishClock(true)
	}
	if g.pending {
		if ex, done := g.serve(g.lastExitSyscall); done {
			return g.finish(ex), nil
		}
	}
	for {
		if v.stopping.Load() == gen {
			g.regs = v.run.Regs
			g.drainOutput()
			return g.finish(Exit{Reason: Deadline}), nil
		}
		g.k.publishRing()
		v.run.ValidRegs = syncRegs
		err := runOnce(v.fd)
		if err == unix.EINTR {
			// Go's preemption signal, or a stop: the loop head tells them apart.
			continue
		}
		if err != nil {
			return Exit{}, fmt.Errorf("%w: KVM_RUN: %v", ErrVMM, err)
		}
		g.exits++
		g.regs = v.run.Regs
		g.drainOutput()
		g.lastExitSyscall = g.h.backend.isSyscall(v.run)
		if g.lastExitSyscall {
			if ex, done := g.serve(true); done {
				return g.finish(ex), nil
			}
			continue
		}
		if ex, done := g.unexpectedExit(); done {
			return g.finish(ex), nil
		}
	}
}

// serve handles the system call the guest is stopped at (registers in g.regs) and prepares the
// return. done reports that Run must return ex.
func (g *Guest) serve(live bool) (ex Exit, done bool) {
	k := g.k
	nr := g.regs.RAX
	a := sysArgs{g.regs.RDI, g.regs.RSI, g.regs.RDX, g.regs.R10, g.regs.R8, g.regs.R9}
	ret := k.dispatch(nr, &a)
	switch {
	case k.blocked:
		k.blocked = false
		// Stay parked at the call; the next Run re-serves it here without entering the guest.
		g.pending = true
		k.counts[nr]-- // counted again when re-served
		return Exit{Reason: BlockedOnRead}, true
	case k.cutShort:
		k.cutShort = false
		// A stop request ended the call early (a timed wait, sys_time.go): stay parked at it, as for
		// a blocked read; the next Run re-serves it.
		g.pending = true
		k.counts[nr]--
		return Exit{Reason: Deadline}, true
	case k.stop != nil:
		ex := *k.stop
		k.stop = nil
		if ex.Reason == Exited || ex.Reason == Fault {
			if k.memExhausted && (ex.Reason == Fault || ex.Code != 0) {
				ex.Reason = MemoryLimit
				ex.Err = fmt.Errorf("%w: the program ran out of its %d MiB (a brk or mmap was refused) and then stopped with status %d",
					ErrMemoryLimit, k.mem.size()>>20, ex.Code)
			}
			g.final = &ex
		}
		if ex.Reason == Unsupported {
			ex.Err = fmt.Errorf("%w at rip %#x", ex.Err, g.regs.RCX)
			g.final = &ex
		}
		return ex, true
	}
	g.pending = false
	g.h.backend.complete(&g.regs, ret, live)
	v := g.sh.cpu
	v.run.Regs = g.regs
	v.run.DirtyRegs = syncRegs
	return Exit{}, false
}

// unexpectedExit turns any exit other than a system call into a Fault with what KVM said.
func (g *Guest) unexpectedExit() (Exit, bool) {
	run := g.sh.cpu.run
	var err error
	switch run.ExitReason {
	case exitIntr:
		return Exit{}, false
	case exitShutdown:
		err = fmt.Errorf("%w: triple fault (an exception the program caused: bad memory access, invalid instruction, divide error…) near rip %#x, rsp %#x", ErrFault, g.regs.RIP, g.regs.RSP)
	case exitMMIO:
		m := run.mmio()
		err = fmt.Errorf("%w: access to guest address %#x outside guest memory at rip %#x", ErrFault, m.PhysAddr, g.regs.RIP)
	case exitIO:
		err = fmt.Errorf("%w: I/O port %#x access at rip %#x", ErrFault, run.io().Port, g.regs.RIP)
	case exitInternalError:
		ie := run.internal()
		err = fmt.Errorf("%w: KVM internal error %d (data %x) at rip %#x; on kvm-pvm see dmesg", ErrFault, ie.Suberror, ie.Data[:min(ie.NData, 16)], g.regs.RIP)
	case exitFailEntry:
		err = fmt.Errorf("%w: VM entry failed (reason %#x)", ErrFault, binary.LittleEndian.Uint64(run.Exit[:8]))
	default:
		err = fmt.Errorf("%w: unexpected KVM exit %d at rip %#x", ErrFault, run.ExitReason, g.regs.RIP)
	}
	ex := Exit{Reason: Fault, Err: err}
	g.final = &ex
	return ex, true
}

// drainOutput delivers the output the stub buffered in the ring, unless the guest stopped inside
// the stub's fast path (then at the next exit).
func (g *Guest) drainOutput() {
	if !g.h.backend.inFastPath(g.regs.RIP) {
		g.k.drainRing()
	}
}

// finish fills the common fields of an Exit.
func (g *Guest) finish(ex Exit) Exit {
	ex.Regs = g.regs
	ex.Syscalls = copyCounts(g.k.counts)
	ex.ENOSYS = copyCounts(g.k.enosys)
	ex.OutputTruncated = g.k.out.dropped
	ex.Exits = g.exits
	if g.final != nil {
		g.final.Regs, g.final.Syscalls, g.final.ENOSYS, g.final.OutputTruncated, g.final.Exits = ex.Regs, ex.Syscalls, ex.ENOSYS, ex.OutputTruncated, ex.Exits
	}
	return ex
}
