package kvm

import "fmt"

// slotAlign is the granularity of memory slots: whole guest large pages, and whole words of the
// dirty bitmap.
const slotAlign = 2 << 20

// grow installs memory slots so that guest-physical [0, end) is backed. It grows by at least half
// the current size, so a program that keeps mapping memory pays for few slot installations (each
// costs KVM an SRCU grace period). Memory above the installed slots is still mapped by the guest
// page tables, so a stray access there leaves the guest with an MMIO exit, reported as a Fault.
func (g *Guest) grow(end uint64) error {
	if end <= g.mapped {
		return nil
	}
	if end > g.mem.size() {
		return fmt.Errorf("%w: %#x is beyond %d MiB", ErrMemoryLimit, end, g.mem.size()>>20)
	}
	next := max(end, g.mapped+g.mapped/2)
	next = min((next+slotAlign-1)&^(slotAlign-1), g.mem.size())
	return g.addSlot(next)
}

// addSlot installs [g.mapped, end) as the next memory slot.
func (g *Guest) addSlot(end uint64) error {
	var flags uint32
	if g.logDirty {
		flags = memLogDirtyPages
	}
	slot := uint32(len(g.slotEnds))
	if err := setMemoryRegion(g.sh.vmfd, slot, flags, g.mapped, g.mem.b[g.mapped:end]); err != nil {
		return fmt.Errorf("%w: %v", ErrVMM, err)
	}
	g.slotEnds = append(g.slotEnds, end)
	g.mapped = end
	return nil
}

// dirtyPages fetches (and re-arms) KVM's dirty log of every slot into one bitmap over all of
// guest memory.
func (g *Guest) dirtyPages() ([]uint64, error) {
	log := g.dirtyScratch()
	start := uint64(0)
	for i, end := range g.slotEnds {
		if err := getDirtyLog(g.sh.vmfd, uint32(i), log[start/pageSize/64:]); err != nil {
			return nil, fmt.Errorf("%w: slot %d: %v", ErrVMM, i, err)
		}
		start = end
	}
	return log, nil
}
