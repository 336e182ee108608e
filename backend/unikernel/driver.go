package unikernel

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/snapinvoker/snapinvoker/backend"
	"github.com/snapinvoker/snapinvoker/kvm"
	"github.com/snapinvoker/snapinvoker/snapshotcache"
)

// Name is the name the driver registers under.
const Name = "unikernel"

func init() {
	backend.Register(Name, Registration())
}

// Registration returns the driver's registration, for tests that build their own registry.
func Registration() backend.Registration {
	return backend.Registration{
		Kinds: Kinds(),
		Probe: Probe,
		New: func(ctx context.Context, cfg backend.Config) (backend.Driver, error) {
			return New(ctx, cfg)
		},
	}
}

// Probe reports why the driver cannot run on this host: no /dev/kvm, a KVM that cannot be
// opened or lacks what package kvm needs, or bad options. It only looks.
func Probe(_ context.Context, cfg backend.Config) error {
	if _, err := parseOptions(cfg.Options); err != nil {
		return err
	}
	if _, err := os.Stat("/dev/kvm"); err != nil {
		return fmt.Errorf("unikernel: no /dev/kvm (%v): load kvm-intel, kvm-amd or kvm-pvm to run actions as KVM guests", err)
	}
	h, err := kvm.Open()
	if err != nil {
		return fmt.Errorf("unikernel: %w", err)
	}
	return h.Close()
}

// settings are the driver's options (backend.Config.Options), all optional:
//
//	snapshot-memory     bytes of snapshot pages the cache keeps in memory (snapshotcache default)
//	snapshot-disk       bytes of snapshots and composed images on disk (snapshotcache default)
//	ready-per-function  ready guests kept per function (4)
//	ready-memory        bytes of private memory all ready guests may hold (256 MiB)
//	ready-ttl           how long a ready guest is kept unused (2m)
//	vm-pool             pre-created VMs kept per function with an open snapshot (2)
type settings struct {
	snapshotMemory, snapshotDisk int64
	ready                        readyConfig
	vmPool                       int
}

func parseOptions(opts map[string]string) (settings, error) {
	s := settings{ready: readyConfig{PerFunction: 4, Budget: 256 << 20, TTL: 2 * time.Minute}, vmPool: 2}
	names := make([]string, 0, len(opts))
	for k := range opts {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		v := opts[k]
		var err error
		switch k {
		case "snapshot-memory":
			s.snapshotMemory, err = parseSize(v)
		case "snapshot-disk":
			s.snapshotDisk, err = parseSize(v)
		case "ready-memory":
			s.ready.Budget, err = parseSize(v)
		case "ready-per-function":
			s.ready.PerFunction, err = strconv.Atoi(v)
			if err == nil && s.ready.PerFunction < 0 {
				err = errors.New("negative")
			}
		case "ready-ttl":
			s.ready.TTL, err = time.ParseDuration(v)
			if err == nil && s.ready.TTL <= 0 {
				err = errors.New("not positive")
			}
		case "vm-pool":
			s.vmPool, err = strconv.Atoi(v)
			if err == nil && (s.vmPool < 0 || s.vmPool > 64) {
				err = errors.New("outside [0, 64]")
			}
		default:
			return s, fmt.Errorf("unikernel: unknown option %q (known: ready-memory, ready-per-function, ready-ttl, snapshot-disk, snapshot-memory, vm-pool)", k)
		}
		if err != nil {
			return s, fmt.Errorf("unikernel: option %s=%q: %v", k, v, err)
		}
	}
	return s, nil
}

// parseSize reads a byte count: digits with an optional k, m or g suffix (powers of 1024).
func parseSize(v string) (int64, error) {
	mult := int64(1)
	if n := len(v); n > 0 {
		switch v[n-1] {
		case 'k', 'K':
			mult, v = 1<<10, v[:n-1]
		case 'm', 'M':
			mult, v = 1<<20, v[:n-1]
		case 'g', 'G':
			mult, v = 1<<30, v[:n-1]
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 || n > (1<<50)/mult {
		return 0, fmt.Errorf("not a byte count")
	}
	return n * mult, nil
}

// Driver runs actions as KVM guests. It is safe for concurrent use.
type Driver struct {
	log     *zap.Logger
	host    *kvm.Host
	cache   *snapshotcache.Store
	set     settings
	now     func() time.Time
	dir     string
	ownsDir bool
	seq     atomic.Uint64
	stop    context.CancelFunc
	janitor sync.WaitGroup

	mu         sync.Mutex
	closed     bool
	fns        map[snapshotcache.Key]*function
	live       map[*instance]struct{}
	readyBytes int64
	profiles   profiles
	st         Stats
	images     runtimeImages
	pending    map[snapshotcache.Key][]func()  // cleanups waiting for a snapshot to be stored
	runtimes   map[snapshotcache.Key]*function // runtime snapshots kept open (keepRuntime)
}

var (
	_ backend.Driver  = (*Driver)(nil)
	_ backend.Charger = (*Driver)(nil)
)

// New opens /dev/kvm and the snapshot store under cfg.DataDir/snapshots (a temporary directory,
// removed by Close, when DataDir is empty).
func New(ctx context.Context, cfg backend.Config) (*Driver, error) {
	set, err := parseOptions(cfg.Options)
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	d := &Driver{log: log, set: set, now: time.Now, dir: cfg.DataDir,
		fns: map[snapshotcache.Key]*function{}, live: map[*instance]struct{}{},
		profiles: newProfiles(4096)}
	if d.dir == "" {
		if d.dir, err = os.MkdirTemp("", "unikernel-"); err != nil {
			return nil, fmt.Errorf("unikernel: data dir: %w", err)
		}
		d.ownsDir = true
	}
	if d.host, err = kvm.Open(); err != nil {
		d.removeDir()
		return nil, fmt.Errorf("unikernel: %w", err)
	}
	d.cache, err = snapshotcache.Open(ctx, snapshotcache.Config{Dir: filepath.Join(d.dir, "snapshots"),
		MemoryBudget: set.snapshotMemory, DiskBudget: set.snapshotDisk, Logger: log})
	if err != nil {
		d.host.Close()
		d.removeDir()
		return nil, fmt.Errorf("unikernel: snapshot store: %w", err)
	}
	jctx, stop := context.WithCancel(context.Background())
	d.stop = stop
	d.janitor.Add(1)
	go d.expireLoop(jctx)
	return d, nil
}

func (d *Driver) removeDir() {
	if d.ownsDir {
		os.RemoveAll(d.dir)
	}
}

// Name implements backend.Driver.
func (d *Driver) Name() string { return Name }

// expireLoop closes ready guests past their TTL, so an idle driver gives their memory back.
func (d *Driver) expireLoop(ctx context.Context) {
	defer d.janitor.Done()
	t := time.NewTicker(max(time.Second, d.set.ready.TTL/4))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			d.expireReady()
		}
	}
}

// Start implements backend.Driver. With an Action whose function snapshot is cached, the
// instance is restored here and Init is a no-op; otherwise Init builds the snapshot.
func (d *Driver) Start(ctx context.Context, spec backend.StartSpec) (backend.Instance, error) {
	if spec.Kind == "" {
		return nil, fmt.Errorf("unikernel: start: spec.Kind is empty: %w", backend.ErrPlatform)
	}
	if spec.Memory <= 0 {
		return nil, fmt.Errorf("unikernel: start: spec.Memory %d is not positive: %w", spec.Memory, backend.ErrPlatform)
	}
	if _, err := lookupKind(spec.Kind); err != nil {
		return nil, fmt.Errorf("unikernel: start: %w", err)
	}
	if spec.Memory > kvm.MaxMemory {
		return nil, fmt.Errorf("unikernel: start: spec.Memory %d MiB is above the %d MiB a guest can have: %w",
			spec.Memory>>20, kvm.MaxMemory>>20, backend.ErrUnsupported)
	}
	if spec.Action != nil {
		if err := checkAction(spec.Action); err != nil {
			return nil, fmt.Errorf("unikernel: start: %w", err)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("unikernel: start: %w: %w", backend.ErrPlatform, err)
	}
	inst := &instance{d: d, id: fmt.Sprintf("uk-%d", d.seq.Add(1)), memory: spec.Memory}
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil, fmt.Errorf("unikernel: start: driver closed: %w", backend.ErrPlatform)
	}
	d.live[inst] = struct{}{}
	d.mu.Unlock()
	if spec.Action != nil && spec.Action.CodeDigest != "" {
		key := functionKey(spec.Action, "")
		if key.Validate() == nil {
			d.restoreAtStart(ctx, inst, key)
		}
	}
	return inst, nil
}

// checkAction refuses actions this driver cannot run: a user image that does not speak
// actionloop, an unknown kind.
func checkAction(a *backend.Action) error {
	if _, err := lookupKind(a.Kind); err != nil {
		return err
	}
	if a.Kind == "blackbox" && a.Image != "" && !a.Native {
		return fmt.Errorf("unikernel: action %s: image %q is a user image, not a native one: %w", a.Name, a.Image, backend.ErrUnsupported)
	}
	return nil
}

// functionKey is the snapshot key of an action: its docid, revision and code digest; digest
// stands in for a missing CodeDigest, the action's name for a missing docid.
func functionKey(a *backend.Action, digest string) snapshotcache.Key {
	id, rev, code := a.DocID, a.Revision, a.CodeDigest
	if id == "" {
		id = a.Name
	}
	if rev == "" {
		rev = "v" + a.Version
	}
	if code == "" {
		code = digest
	}
	return snapshotcache.FunctionKey(id, rev, code)
}

// restoreAtStart gives inst a guest when the function snapshot is cached; on any failure inst
// stays empty and Init builds (or finds) the snapshot.
func (d *Driver) restoreAtStart(ctx context.Context, inst *instance, key snapshotcache.Key) {
	fn, err := d.openFunction(ctx, key, nil)
	if err != nil {
		if !errors.Is(err, snapshotcache.ErrNotFound) {
			d.log.Warn("function snapshot lookup failed; /init will build it", zap.Stringer("key", key), zap.Error(err))
		}
		return
	}
	g, ready, err := d.takeGuest(ctx, fn)
	if err != nil {
		d.log.Warn("restore failed; /init will retry", zap.Stringer("key", key), zap.Error(err))
		d.releaseFunction(fn)
		return
	}
	inst.fn, inst.g, inst.fromReady = fn, g, ready
	inst.restored.Store(true)
}

// Close destroys every live instance and ready guest and releases KVM and the snapshot store.
// Persisted snapshots stay in DataDir for the next start.
func (d *Driver) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	live := make([]*instance, 0, len(d.live))
	for i := range d.live {
		live = append(live, i)
	}
	d.mu.Unlock()
	d.stop()
	d.janitor.Wait()
	var errs []error
	for _, i := range live {
		errs = append(errs, i.Destroy(context.Background()))
	}
	d.mu.Lock()
	for _, fn := range d.runtimes {
		fn.refs-- // keepRuntime's reference; the loop below closes what is left unused
	}
	d.runtimes = nil
	var drop []*kvm.Guest
	var fns []*function
	for _, fn := range d.fns {
		for _, r := range fn.ready {
			drop = append(drop, r.g)
			d.readyBytes -= r.bytes
		}
		fn.refs -= len(fn.ready)
		fn.ready = nil
		fns = append(fns, fn)
	}
	d.mu.Unlock()
	for _, g := range drop {
		errs = append(errs, g.Close())
	}
	for _, fn := range fns {
		d.mu.Lock()
		gone := fn.refs <= 0
		if gone {
			delete(d.fns, fn.key)
		}
		d.mu.Unlock()
		if gone {
			fn.close()
		}
	}
	errs = append(errs, d.cache.Close(), d.host.Close())
	d.removeDir()
	return errors.Join(errs...)
}

// MemoryCharge implements backend.Charger: what a new instance of the action costs the host,
// which is its private pages, not limits.memory — pages it never writes stay shared with the
// function snapshot. For a function seen before it is the largest private footprint measured
// for one of its instances plus KVM's per-VM memory; for an unknown one a conservative default.
// It never exceeds spec.Memory.
func (d *Driver) MemoryCharge(spec backend.StartSpec) int64 {
	charge := int64(defaultCharge)
	if spec.Action != nil {
		d.mu.Lock()
		p := d.profiles.get(functionKey(spec.Action, ""))
		d.mu.Unlock()
		if p.private > 0 {
			charge = p.private // measured with KVM's per-VM memory included
		}
	}
	charge = (charge + 1<<20 - 1) &^ (1<<20 - 1) // whole MiB, as the pool accounts
	return max(1, min(charge, spec.Memory))
}

const (
	// vmOverhead is KVM's own memory per live VM (slab, shadow page tables, vCPU), measured on
	// the development machines with MemAvailable deltas (machine notes: ≈ 450 KiB).
	vmOverhead = 450 << 10
	// defaultCharge is charged for a function not measured yet: well above a static actionloop
	// executable's private pages, far below a typical limits.memory.
	defaultCharge = 32 << 20
)
