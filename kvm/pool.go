package kvm

import (
	"context"
	"sync"
)

// Pool keeps created-but-empty VMs (each with its vCPU and CPUID set) so a restore does not pay
// for KVM_CREATE_VM and KVM_CREATE_VCPU. A background goroutine refills it. It is safe for
// concurrent use.
type Pool struct {
	h      *Host
	ready  chan *shell
	refill chan struct{}
	stop   context.CancelFunc
	done   sync.WaitGroup
}

// NewPool starts a pool that keeps size shells ready until ctx ends or Close.
func (h *Host) NewPool(ctx context.Context, size int) *Pool {
	ctx, cancel := context.WithCancel(ctx)
	p := &Pool{h: h, ready: make(chan *shell, max(size, 1)), refill: make(chan struct{}, 1), stop: cancel}
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
			sh, err := p.h.newShell()
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
		return p.h.newShell()
	}
}

// Restore is Host.Restore into a pre-created VM.
func (p *Pool) Restore(ctx context.Context, snap *Snapshot, cfg Config) (*Guest, error) {
	sh, err := p.get()
	if err != nil {
		return nil, err
	}
	return p.h.restoreInto(sh, snap, cfg)
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
