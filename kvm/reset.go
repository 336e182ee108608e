package kvm

import (
	"fmt"
	"math/bits"
)

// Reset returns a restored guest to its snapshot's exact state without rebuilding the VM: only
// the pages written since the restore (or the last Reset) are copied back from the snapshot,
// found through KVM's dirty log for the guest's writes and the VMM's own record of its writes.
// Output sinks stay; stdin is emptied. Reset works in any state, after a Fault too.
func (g *Guest) Reset() error {
	if g.closed {
		return ErrClosed
	}
	if g.snap == nil {
		return ErrNotRestored
	}
	if g.snap.image == nil {
		return fmt.Errorf("%w: its snapshot was closed", ErrClosed)
	}
	g.learnWorkingSet()
	log, err := g.dirtyPages()
	if err != nil {
		return err
	}
	img, b := g.snap.image, g.mem.b
	for w := range log {
		word := log[w] | g.mem.vmmDirty[w]
		g.mem.vmmDirty[w] = 0
		for word != 0 {
			bit := bits.TrailingZeros64(word)
			word &^= 1 << bit
			off := (w*64 + bit) * pageSize
			copy(b[off:off+pageSize], img[off:off+pageSize])
		}
	}
	if err := g.rearmDirty(log); err != nil {
		return err
	}
	s := &g.snap.state
	if g.final != nil {
		// A crashed guest may have left any vCPU state behind: reload all of it.
		if err := g.sh.cpu.load(&s.Machine); err != nil {
			return err
		}
	} else {
		// The program cannot change control state from CPL3; its FPU/SSE registers and FS base
		// it can.
		if err := ioctlPtr(g.sh.cpu.fd, kvmSetXsave, &s.Machine.Xsave); err != nil {
			return fmt.Errorf("%w: KVM_SET_XSAVE: %v", ErrVMM, err)
		}
		if g.k.fsBase != s.Kernel.FSBase {
			if err := g.sh.cpu.setFSBase(s.Kernel.FSBase); err != nil {
				return err
			}
		}
	}
	g.k.setState(&s.Kernel)
	g.k.out.left = [3]int64{g.k.out.limit, g.k.out.limit, g.k.out.limit}
	g.k.out.dropped = false
	g.parkAtSnapshot()
	return nil
}

// dirtyScratch returns a zeroed bitmap with one bit per guest page.
func (g *Guest) dirtyScratch() []uint64 {
	n := len(g.mem.vmmDirty)
	if cap(g.dirtyLog) < n {
		g.dirtyLog = make([]uint64, n)
	}
	g.dirtyLog = g.dirtyLog[:n]
	clear(g.dirtyLog)
	return g.dirtyLog
}
