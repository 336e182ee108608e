package kvm

// Hot pages stay writable across resets. With KVM's classic dirty log, fetching the log
// write-protects every page again, so each Reset makes the next activation take one
// write-protection fault (several microseconds under kvm-pvm's shadow paging) for every page it
// writes, even though an action writes nearly the same pages every time. In manual-protect mode
// (KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2) fetching the log protects nothing; Reset re-protects, with
// KVM_CLEAR_DIRTY_LOG, only the pages that were not also written before the previous Reset. The
// others (the hot set) stay writable and stay reported dirty, so every Reset copies them back:
// a 4 KiB copy instead of a fault. Every hotRelearn resets the whole log is re-protected, so a
// page that stopped being written leaves the hot set.

import (
	"fmt"
	"unsafe"
)

const (
	capManualDirtyLogProtect2   = 168
	dirtyLogManualProtectEnable = 1
	// KVM_CLEAR_DIRTY_LOG = _IOWR(KVMIO, 0xc0, struct kvm_clear_dirty_log)
	kvmClearDirtyLog = 0xC018AEC0
	hotRelearn       = 64
)

type clearDirtyLog struct {
	Slot      uint32
	NumPages  uint32
	FirstPage uint64
	Bitmap    uint64 // a pointer to the caller's bitmap
}

// enableManualDirtyLog switches a new VM's dirty logging to manual protection; false when this
// KVM does not offer it (Reset then works as before).
func enableManualDirtyLog(vmfd int) bool {
	if r, err := ioctl(vmfd, kvmCheckExtension, capManualDirtyLogProtect2); err != nil || r&dirtyLogManualProtectEnable == 0 {
		return false
	}
	c := enableCap{Cap: capManualDirtyLogProtect2, Args: [4]uint64{dirtyLogManualProtectEnable}}
	return ioctlPtr(vmfd, kvmEnableCap, &c) == nil
}

// dirtyPolicy is a guest's record of which pages Reset leaves writable.
type dirtyPolicy struct {
	prev   []uint64 // pages the guest wrote before the last Reset
	clear  []uint64 // scratch: pages to re-protect
	resets int
}

// rearmDirty re-protects, after a Reset copied back the pages in log, the pages that are not hot.
// Without manual protection fetching the log already re-protected everything.
func (g *Guest) rearmDirty(log []uint64) error {
	if !g.sh.manualDirty {
		return nil
	}
	p := &g.dirty
	if len(p.prev) != len(log) {
		p.prev, p.clear = make([]uint64, len(log)), make([]uint64, len(log))
	}
	p.resets++
	relearn := p.resets%hotRelearn == 0
	for w := range log {
		c := log[w] &^ p.prev[w]
		if relearn {
			c = log[w]
		}
		p.clear[w] = c
		p.prev[w] = log[w]
	}
	start := uint64(0)
	for i, end := range g.slotEnds {
		first, n := start/pageSize, (end-start)/pageSize
		bm := p.clear[first/64 : (first+n+63)/64]
		start = end
		if allZero(bm) {
			continue
		}
		c := clearDirtyLog{Slot: uint32(i), NumPages: uint32(n), Bitmap: uint64(uintptr(unsafe.Pointer(&bm[0])))}
		if err := ioctlPtr(g.sh.vmfd, kvmClearDirtyLog, &c); err != nil {
			return fmt.Errorf("%w: KVM_CLEAR_DIRTY_LOG slot %d: %v", ErrVMM, i, err)
		}
	}
	return nil
}

func allZero(b []uint64) bool {
	for _, w := range b {
		if w != 0 {
			return false
		}
	}
	return true
}
