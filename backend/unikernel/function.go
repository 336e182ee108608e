package unikernel

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/snapinvoker/snapinvoker/backend"
	"github.com/snapinvoker/snapinvoker/kvm"
	"github.com/snapinvoker/snapinvoker/snapshotcache"
)

// function is one action's function snapshot, opened for restores, with its ready guests.
// Fields other than key and openMu are guarded by Driver.mu.
type function struct {
	key snapshotcache.Key
	// openMu serialises opening the snapshot (composing its image may take a while).
	openMu sync.Mutex
	handle snapshotcache.Snapshot
	snap   *kvm.Snapshot
	// pool keeps VMs pre-created with a memory slot shaped for snap. It is created at the
	// function's second restore: a function restored once (most are) never pays for VMs it
	// does not use. nil before that and when pooling is off.
	pool     *kvm.Pool
	restores int
	// refs counts the holders of snap: instances with a guest of it, ready guests, callers
	// between openFunction and takeGuest. The function is closed when it drops to zero.
	refs   int
	ready  []*readyGuest // most recently given back last
	demand demand
}

// readyGuest is a guest reset to its function snapshot, waiting for the next Start.
type readyGuest struct {
	g     *kvm.Guest
	since time.Time
	bytes int64
}

func (fn *function) close() {
	if fn.pool != nil {
		fn.pool.Close()
		fn.pool = nil
	}
	if fn.snap != nil {
		fn.snap.Close()
		fn.snap = nil
	}
	if fn.handle != nil {
		fn.handle.Release()
		fn.handle = nil
	}
}

// openFunction returns key's function with its snapshot open and one reference held for the
// caller (give it back with releaseFunction, or hand it to a guest with takeGuest). With a nil
// build it only looks the snapshot up (the error wraps snapshotcache.ErrNotFound on a miss);
// otherwise it builds it on a miss, once however many callers ask at the same time.
func (d *Driver) openFunction(ctx context.Context, key snapshotcache.Key, build snapshotcache.BuildFunc) (*function, error) {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil, fmt.Errorf("unikernel: driver closed: %w", backend.ErrPlatform)
	}
	fn := d.fns[key]
	if fn == nil {
		fn = &function{key: key}
		d.fns[key] = fn
	}
	fn.refs++
	d.mu.Unlock()

	if err := d.openLocked(ctx, fn, build); err != nil {
		d.releaseFunction(fn)
		return nil, err
	}
	return fn, nil
}

// openLocked opens fn's snapshot unless it is open already.
func (d *Driver) openLocked(ctx context.Context, fn *function, build snapshotcache.BuildFunc) error {
	fn.openMu.Lock()
	defer fn.openMu.Unlock()
	d.mu.Lock()
	open := fn.snap != nil
	d.mu.Unlock()
	if open {
		return nil
	}
	var h snapshotcache.Snapshot
	var err error
	if build == nil {
		h, err = d.cache.Lookup(ctx, fn.key)
	} else {
		h, err = d.cache.Get(ctx, fn.key, build)
	}
	if err != nil {
		return err
	}
	snap, err := d.openSnapshot(ctx, h)
	if err != nil {
		h.Release()
		return fmt.Errorf("unikernel: open function snapshot %s: %w: %w", fn.key, backend.ErrPlatform, err)
	}
	d.mu.Lock()
	fn.handle, fn.snap = h, snap
	d.mu.Unlock()
	return nil
}

// openSnapshot maps a cached snapshot for restores. Snapshots this driver stores keep memory at
// offset 0 of the composed image and the kvm state in the blob; one stored in kvm's own file
// layout (snapshotcache.Image.StateInImage) is a complete kvm snapshot file.
func (d *Driver) openSnapshot(ctx context.Context, h snapshotcache.Snapshot) (*kvm.Snapshot, error) {
	img, err := h.Image(ctx)
	if err != nil {
		return nil, err
	}
	if h.MemoryOffset() != 0 {
		return d.host.OpenSnapshot(img.Name())
	}
	return d.host.OpenSnapshotImage(h.State(), img)
}

// releaseFunction drops one reference; the last one closes the function.
func (d *Driver) releaseFunction(fn *function) {
	d.mu.Lock()
	fn.refs--
	gone := fn.refs <= 0
	if gone && d.fns[fn.key] == fn {
		delete(d.fns, fn.key)
	}
	d.mu.Unlock()
	if gone {
		fn.openMu.Lock()
		fn.close()
		fn.openMu.Unlock()
	}
}

// outputLimit is what kvm lets a guest write per stream and step; the driver's own sinks bound
// what is kept (log limit, response limit), so this only stops a runaway writer.
const outputLimit = 64 << 20

// takeGuest gives the caller's reference on fn to a guest parked at the function snapshot: a
// ready one when the function has one (fromReady), else a fresh restore into a pre-created VM.
func (d *Driver) takeGuest(ctx context.Context, fn *function) (g *kvm.Guest, fromReady bool, err error) {
	d.mu.Lock()
	now := d.now()
	fn.demand.started(now, d.set.ready.TTL)
	if n := len(fn.ready); n > 0 {
		r := fn.ready[n-1]
		fn.ready = fn.ready[:n-1]
		d.readyBytes -= r.bytes
		fn.refs-- // the ready guest's reference merges into the caller's
		d.st.ReadyHits++
		d.mu.Unlock()
		return r.g, true, nil
	}
	fn.restores++
	if fn.pool == nil && fn.restores > 1 && d.set.vmPool > 0 && !d.closed {
		fn.pool = d.host.NewPool(context.Background(), d.set.vmPool, fn.snap)
	}
	snap, pool := fn.snap, fn.pool
	d.mu.Unlock()
	cfg := kvm.Config{OutputLimit: outputLimit}
	if pool != nil {
		g, err = pool.Restore(ctx, snap, cfg)
	} else {
		g, err = d.host.Restore(ctx, snap, cfg)
	}
	d.mu.Lock()
	if err != nil {
		fn.demand.stopped()
	} else {
		d.st.Restores++
	}
	d.mu.Unlock()
	if err != nil {
		return nil, false, fmt.Errorf("unikernel: restore %s: %w: %w", fn.key, backend.ErrPlatform, err)
	}
	return g, false, nil
}

// giveBack takes the guest of a destroyed instance: it stays ready for its function when it is
// healthy (reset after its last activation) and the ready policy wants it, else it is closed
// and its reference on fn dropped.
func (d *Driver) giveBack(fn *function, g *kvm.Guest, healthy bool) {
	// Measuring private memory reads /proc/self/smaps (about a millisecond): do it only when the
	// answer matters, to keep the guest or to learn the function's charge.
	d.mu.Lock()
	fn.demand.stopped()
	measure := healthy && !d.closed && (fn.demand.want(d.now(), d.set.ready) > len(fn.ready) || d.profiles.get(fn.key).private == 0)
	d.mu.Unlock()
	var bytes int64
	if measure {
		b, err := g.PrivateBytes()
		if err != nil {
			healthy, measure = false, false
		}
		bytes = b + vmOverhead
	}
	d.mu.Lock()
	if measure {
		d.profiles.observe(fn.key, bytes)
	}
	if measure && !d.closed && keepReady(&fn.demand, len(fn.ready), d.readyBytes, bytes, d.now(), d.set.ready) {
		fn.ready = append(fn.ready, &readyGuest{g: g, since: d.now(), bytes: bytes})
		d.readyBytes += bytes
		d.mu.Unlock()
		return
	}
	d.mu.Unlock()
	g.Close()
	d.releaseFunction(fn)
}

// expireReady closes ready guests past their TTL.
func (d *Driver) expireReady() {
	type drop struct {
		fn *function
		g  *kvm.Guest
	}
	var drops []drop
	d.mu.Lock()
	now := d.now()
	for _, fn := range d.fns {
		kept := fn.ready[:0]
		for _, r := range fn.ready {
			if expired(r.since, now, d.set.ready) {
				drops = append(drops, drop{fn, r.g})
				d.readyBytes -= r.bytes
			} else {
				kept = append(kept, r)
			}
		}
		clear(fn.ready[len(kept):])
		fn.ready = kept
	}
	d.mu.Unlock()
	for _, x := range drops {
		x.g.Close()
		d.releaseFunction(x.fn)
	}
}

// profile is what the driver learned about one function.
type profile struct {
	// private is the largest private memory measured for one instance (KVM overhead included).
	private int64
	// initTime is how long booting the executable to its snapshot point took.
	initTime time.Duration
}

// profiles keeps the profiles of the last n functions seen (oldest forgotten first).
type profiles struct {
	m     map[snapshotcache.Key]*profile
	order []snapshotcache.Key
	n     int
}

func newProfiles(n int) profiles { return profiles{m: map[snapshotcache.Key]*profile{}, n: n} }

func (p *profiles) get(k snapshotcache.Key) profile {
	if q := p.m[k]; q != nil {
		return *q
	}
	return profile{}
}

func (p *profiles) entry(k snapshotcache.Key) *profile {
	q := p.m[k]
	if q == nil {
		q = &profile{}
		p.m[k] = q
		p.order = append(p.order, k)
		for len(p.order) > p.n {
			delete(p.m, p.order[0])
			p.order = p.order[1:]
		}
	}
	return q
}

func (p *profiles) observe(k snapshotcache.Key, private int64) {
	q := p.entry(k)
	q.private = max(q.private, private)
}
