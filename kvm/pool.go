package kvm

import (
	"context"
	"fmt"
	"sync"
)

// Pool keeps VMs created ahead of restores, shaped after one snapshot: vCPU and CPUID set, that
// snapshot's memory mapped copy-on-write and installed as a dirty-logged memory slot, its vCPU
// state loaded. Restoring that snapshot from the pool then costs no system call; restoring
// another of the same geometry maps itself over the slot (one mmap, no slot installation, which
// costs KVM an SRCU grace period); any other snapshot still saves the VM and vCPU creation. A
// background goroutine refills the pool. It is safe for concurrent use.
type Pool struct {
	h              *Host
	like           *Snapshot
	memory, mapped uint64
	ready          chan *shell
	refill         chan struct{}
	stop           context.CancelFunc
	done           sync.WaitGroup
	// touch is the working set learned from the first guest restored from the pool, run in every
	// VM prepared after (prefault.go); nil until learned.
	touchMu sync.Mutex
	touch   touchRuns
}

// NewPool starts a pool that keeps size VMs ready until ctx ends or Close, each with a memory
// slot shaped for snapshots like like (same memory size and used memory; nil: no slot). Other
// snapshots restore from it too, paying for their slot.
func (h *Host) NewPool(ctx context.Context, size int, like *Snapshot) *Pool {
	ctx, cancel := context.WithCancel(ctx)
	var memory, mapped uint64
	if like != nil {
		memory, mapped = like.state.Memory, like.state.Mapped
	}
	p := &Pool{h: h, like: like, memory: memory, mapped: mapped, ready: make(chan *shell, max(size, 1)), refill: make(chan struct{}, 1), stop: cancel}
	p.done.Add(1)
	go p.fill(ctx)
	return p
}

func (p *Pool) fill(ctx context.Context) {
	defer p.done.Done()
	for {
		for len(p.ready) < cap(p.ready) {
			if ctx.Err() != nil {
				return
			}
			sh, err := p.newShell(true)
			if err != nil {
				break // out of resources for now; retry on the next refill request
			}
			p.ready <- sh
		}
		select {
		case <-ctx.Done():
			return
		case <-p.refill:
		}
	}
}

// get takes a ready shell, or creates one when the pool is empty.
func (p *Pool) get() (*shell, error) {
	select {
	case p.refill <- struct{}{}:
	default:
	}
	select {
	case sh := <-p.ready:
		return sh, nil
	default:
		return p.newShell(false) // a caller waits: no prefault (it takes longer than it saves)
	}
}

// newShell creates a VM prepared for the pool's snapshot.
func (p *Pool) newShell(prefault bool) (*shell, error) {
	sh, err := p.h.newShell()
	if err != nil || p.like == nil {
		return sh, err
	}
	m, err := mapFileMemory(int(p.like.f.Fd()), p.like.memOff, p.memory)
	if err != nil {
		sh.close()
		return nil, err
	}
	sh.slot, sh.slotMapped = m.b, p.mapped // closed with the shell from here on
	if err := setMemoryRegion(sh.vmfd, 0, memLogDirtyPages, 0, m.b[:p.mapped]); err != nil {
		sh.close()
		return nil, fmt.Errorf("%w: %v", ErrVMM, err)
	}
	if err := sh.cpu.load(&p.like.state.Machine); err != nil {
		sh.close()
		return nil, err
	}
	if prefault {
		if err := p.prefault(sh); err != nil {
			return p.newShell(false) // prefaulting is off from now on
		}
	}
	sh.prepared = p.like
	return sh, nil
}

// Restore is Host.Restore into a pre-created VM.
func (p *Pool) Restore(ctx context.Context, snap *Snapshot, cfg Config) (*Guest, error) {
	sh, err := p.get()
	if err != nil {
		return nil, err
	}
	g, err := p.h.restoreInto(sh, snap, cfg)
	if err == nil {
		g.pool = p
	}
	return g, err
}

// Close stops refilling and destroys the shells not handed out.
func (p *Pool) Close() error {
	p.stop()
	p.done.Wait()
	for {
		select {
		case sh := <-p.ready:
			sh.close()
		default:
			return nil
		}
	}
}
