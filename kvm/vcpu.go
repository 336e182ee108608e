package kvm

import (
	"context"
	"encoding/binary"
	"fmt"
	"runtime"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// vcpu is one virtual CPU and its shared kvm_run page.
type vcpu struct {
	fd     int
	runMap []byte
	run    *kvmRunPage
	// tid is the OS thread inside KVM_RUN (0 when none), the target of interrupt's signal.
	tid atomic.Int32
	// run numbers each Run call; stopping holds the number of the run asked to stop, so a late
	// timer of an earlier run cannot stop a later one.
	runGen, stopping atomic.Uint64
}

// interrupt makes run gen of the vCPU leave KVM_RUN soon: immediate_exit covers the window
// before the ioctl, the signal (SIGURG, which the Go runtime already tolerates as its preemption
// signal) the time inside it.
func (v *vcpu) interrupt(gen uint64) {
	if v.runGen.Load() != gen {
		return
	}
	v.stopping.Store(gen)
	v.run.setImmediateExit(true)
	if tid := v.tid.Load(); tid != 0 {
		unix.Tgkill(unix.Getpid(), int(tid), unix.SIGURG)
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
	gen := v.runGen.Add(1)
	v.run.setImmediateExit(false)
	v.tid.Store(int32(unix.Gettid()))
	defer v.tid.Store(0)
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
			// Go's preemption signal, or a stop: the loop head tells them apart. An earlier
			// run's late interrupt may have left immediate_exit set; clear it unless this run is
			// the one stopping (the loop head looks again before the next KVM_RUN).
			if v.stopping.Load() != gen {
				v.run.setImmediateExit(false)
			}
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
