package snapshotcache

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"

	"go.uber.org/zap"
)

// Defaults for a zero Config field.
const (
	DefaultMemoryBudget = 512 << 20
	DefaultDiskBudget   = 8 << 30
	DefaultMaxImageSize = 16 << 30
	DefaultMaxStateSize = 16 << 20
	DefaultKeepInMemory = 4 << 20
)

// Config configures a Store.
type Config struct {
	// Dir holds the store's files (created if missing). One Store per Dir at a time.
	Dir string
	// MemoryBudget bounds the snapshot pages kept in memory to compose images and diff children.
	MemoryBudget int64
	// KeepInMemory is the largest record whose pages are kept in memory (function diffs, say);
	// larger ones (runtime snapshots) are read from their files when needed, never through the
	// heap. Default DefaultKeepInMemory; at most MemoryBudget/2.
	KeepInMemory int64
	// DiskBudget bounds the persisted snapshots plus the composed images under Dir.
	DiskBudget int64
	// MaxImageSize and MaxStateSize bound an image's Size and State (inputs and files alike).
	MaxImageSize, MaxStateSize int64
	// Fsync makes a stored snapshot durable across a machine crash before Get returns. Without
	// it a snapshot survives process restarts; after a crash a record the kernel had not yet
	// written fails its checksum at Open and is rebuilt, so correctness never depends on it.
	Fsync bool
	// Logger receives one line per eviction, corruption and build failure; nil logs nothing.
	Logger *zap.Logger
}

// Store is the Cache over a local directory. See the package documentation for its files.
type Store struct {
	cfg Config
	lim recordLimits
	log *zap.Logger

	mu      sync.Mutex
	closed  bool
	entries map[Key]*entry
	flights map[Key]*flight
	clock   uint64
	memUsed int64
	disk    int64
	st      Stats // counters only; gauges are computed by Stats
}

var _ Cache = (*Store)(nil)
var _ TouchRecorder = (*Store)(nil)

// entry is one cached snapshot. Fields below mu are guarded by Store.mu; the others are set once.
type entry struct {
	key, parentKey Key
	id             string
	size           int64
	state          []byte
	pages          []uint64 // the record's own page numbers, ascending
	recBytes       int64    // size of the record file
	dataPages      int64    // data pages of the composed image
	memOff         int64    // where memory starts in the composed image
	dataOff        int64    // where the pages start in the record file

	parent    *entry
	children  int
	refs      int
	pinned    bool
	lastUse   uint64
	data      []byte  // the record's pages kept in memory, or nil
	sig       fileSig // the record file as last verified
	busy      int     // composes reading this entry's record
	img       *composed
	composing *composeFlight
	touched   []uint64
	gone      bool  // no longer in the index
	goneErr   error // why, for handles still held
}

type composed struct {
	f     *os.File
	bytes int64
}

type composeFlight struct {
	done chan struct{}
	f    *os.File
	err  error
}

// flight is one build in progress; waiters are Gets sharing it.
type flight struct {
	done            chan struct{}
	waiters         int
	entry           *entry
	err             error
	leaderCancelled bool
}

// Open opens (or creates) the store in cfg.Dir, verifying every persisted snapshot: one that fails
// its checksum is deleted with its descendants and counted in Stats.Corrupt. Composed images from
// an earlier run are deleted (they carry no checksum and are cheap to compose again).
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Dir == "" {
		return nil, fmt.Errorf("snapshotcache: Config.Dir is empty: %w", ErrInvalid)
	}
	for _, f := range []struct {
		name string
		v    *int64
		def  int64
	}{{"MemoryBudget", &cfg.MemoryBudget, DefaultMemoryBudget}, {"DiskBudget", &cfg.DiskBudget, DefaultDiskBudget},
		{"MaxImageSize", &cfg.MaxImageSize, DefaultMaxImageSize}, {"MaxStateSize", &cfg.MaxStateSize, DefaultMaxStateSize},
		{"KeepInMemory", &cfg.KeepInMemory, DefaultKeepInMemory}} {
		switch {
		case *f.v < 0:
			return nil, fmt.Errorf("snapshotcache: Config.%s is negative (%d): %w", f.name, *f.v, ErrInvalid)
		case *f.v == 0:
			*f.v = f.def
		}
	}
	cfg.KeepInMemory = min(cfg.KeepInMemory, cfg.MemoryBudget/2)
	if cfg.MaxStateSize > 1<<31 {
		return nil, fmt.Errorf("snapshotcache: Config.MaxStateSize %d: more than 2 GiB: %w", cfg.MaxStateSize, ErrInvalid)
	}
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	s := &Store{
		cfg:     cfg,
		lim:     recordLimits{maxSize: cfg.MaxImageSize, maxState: cfg.MaxStateSize},
		log:     log.With(zap.String("component", "snapshotcache")),
		entries: map[Key]*entry{},
		flights: map[Key]*flight{},
	}
	for _, d := range []string{s.snapDir(), s.imgDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("snapshotcache: open %s: %w", cfg.Dir, err)
		}
	}
	if err := s.load(ctx); err != nil {
		return nil, err
	}
	s.evict()
	return s, nil
}

func (s *Store) snapDir() string             { return filepath.Join(s.cfg.Dir, "snap") }
func (s *Store) imgDir() string              { return filepath.Join(s.cfg.Dir, "img") }
func (s *Store) recordPath(id string) string { return filepath.Join(s.snapDir(), id+".snap") }
func (s *Store) touchPath(id string) string  { return filepath.Join(s.snapDir(), id+".touch") }
func (s *Store) imagePath(id string) string  { return filepath.Join(s.imgDir(), id+".img") }

func (s *Store) tick() uint64 { s.clock++; return s.clock }

// Get implements Cache.
func (s *Store) Get(ctx context.Context, key Key, build BuildFunc) (Snapshot, error) {
	if err := key.Validate(); err != nil {
		return nil, err
	}
	if build == nil {
		return nil, fmt.Errorf("snapshotcache: Get %s: build is nil: %w", key, ErrInvalid)
	}
	counted := false
	for {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("snapshotcache: Get %s: %w", key, err)
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return nil, fmt.Errorf("snapshotcache: Get %s: %w", key, ErrClosed)
		}
		if e := s.entries[key]; e != nil {
			s.st.Hits++
			e.refs++
			e.lastUse = s.tick()
			s.mu.Unlock()
			return s.newHandle(e), nil
		}
		if !counted {
			s.st.Misses++
		}
		if f := s.flights[key]; f != nil {
			f.waiters++
			if !counted {
				s.st.Waits++
			}
			counted = true
			s.mu.Unlock()
			h, retry, err := s.wait(ctx, key, f)
			if retry {
				continue
			}
			return h, err
		}
		f := &flight{done: make(chan struct{})}
		s.flights[key] = f
		s.st.Builds++
		s.mu.Unlock()
		return s.lead(ctx, key, build, f)
	}
}

// wait waits for another caller's build. retry is true when that build ended because its
// caller's context did, while this caller's is live.
func (s *Store) wait(ctx context.Context, key Key, f *flight) (h Snapshot, retry bool, err error) {
	select {
	case <-f.done:
		if f.err != nil {
			if f.leaderCancelled && ctx.Err() == nil {
				return nil, true, nil
			}
			return nil, false, f.err
		}
		return s.newHandle(f.entry), false, nil
	case <-ctx.Done():
	}
	s.mu.Lock()
	select {
	case <-f.done:
		// The build finished as we gave up: the reference it took for us is ours to drop.
		if f.err == nil {
			s.releaseLocked(f.entry)
		}
	default:
		f.waiters--
	}
	s.mu.Unlock()
	s.evict()
	return nil, false, fmt.Errorf("snapshotcache: Get %s: waiting for its build: %w", key, ctx.Err())
}

// lead runs the build and stores its image, then hands the result to every waiter atomically.
func (s *Store) lead(ctx context.Context, key Key, build BuildFunc, f *flight) (Snapshot, error) {
	img, err := runBuild(ctx, build)
	var e *entry
	if err == nil {
		e, err = s.prepare(key, img)
	}
	// img.Parent is ours since build returned. It is released only after the child is indexed
	// (which makes it the parent of a cached snapshot), so it cannot be evicted in between.
	if img != nil && img.Parent != nil {
		defer img.Parent.Release()
	}
	s.mu.Lock()
	delete(s.flights, key)
	if err == nil && s.closed {
		os.Remove(s.recordPath(e.id))
		err = ErrClosed
	}
	if err == nil && e.parent != nil && e.parent.gone {
		os.Remove(s.recordPath(e.id))
		err = fmt.Errorf("parent %s was dropped: %w", e.parentKey, ErrNotFound)
	}
	if err != nil {
		s.st.BuildErrors++
		f.err = fmt.Errorf("snapshotcache: build %s: %w", key, err)
		f.leaderCancelled = ctx.Err() != nil
	} else {
		e.refs = 1 + f.waiters
		e.lastUse = s.tick()
		s.index(e)
		f.entry = e
	}
	close(f.done)
	s.mu.Unlock()
	if err != nil {
		s.log.Warn("snapshot build failed", zap.Stringer("key", key), zap.Error(err))
		return nil, f.err
	}
	s.evict()
	return s.newHandle(e), nil
}

func runBuild(ctx context.Context, build BuildFunc) (img *Image, err error) {
	defer func() {
		if p := recover(); p != nil {
			img, err = nil, fmt.Errorf("build function panicked: %v\n%s: %w", p, debug.Stack(), ErrBuild)
		}
	}()
	img, err = build(ctx)
	if err == nil && img == nil {
		err = fmt.Errorf("build function returned no image and no error: %w", ErrBuild)
	}
	return img, err
}

// prepare diffs img against its parent and writes its record; the entry is not yet indexed.
func (s *Store) prepare(key Key, img *Image) (*entry, error) {
	if err := validateImage(img, s.lim); err != nil {
		return nil, err
	}
	var parent *entry
	var pv *view
	if img.Parent != nil {
		h, ok := img.Parent.(*handle)
		if !ok || h.s != s {
			return nil, fmt.Errorf("snapshotcache: image.Parent is not a handle of this cache: %w", ErrInvalid)
		}
		if h.released.Load() {
			return nil, fmt.Errorf("snapshotcache: image.Parent (%s): %w", h.e.key, ErrReleased)
		}
		parent = h.e
		if parent.key == key {
			return nil, fmt.Errorf("snapshotcache: image.Parent is %s itself: %w", key, ErrInvalid)
		}
		s.mu.Lock()
		lineage := parent.lineage()
		s.mu.Unlock()
		layers, release, err := s.openLineage(lineage)
		if err != nil {
			return nil, err
		}
		defer release()
		pv = composeView(layers)
	}
	pages, dataPages, err := diffImage(img, pv)
	if err != nil {
		return nil, err
	}
	r := &record{key: key, size: img.Size, state: slices.Clone(img.State), pages: pages}
	if img.StateInImage {
		r.flags |= flagStateInImage
	}
	if parent != nil {
		r.parent = parent.key
	}
	e := &entry{key: key, parentKey: r.parent, id: key.ID(), size: r.size, state: r.state, pages: pages,
		dataPages: dataPages, parent: parent, memOff: memOffset(r), dataOff: r.dataOffset()}
	src := &imageSource{img: img}
	n, err := writeFileAtomic(s.snapDir(), s.recordPath(e.id), s.cfg.Fsync, func(f *os.File) (int64, error) {
		return writeRecord(f, r, src)
	})
	if err == nil {
		if e.sig, err = statSig(s.recordPath(e.id)); err != nil {
			os.Remove(s.recordPath(e.id))
		}
	}
	if err != nil {
		return nil, fmt.Errorf("snapshotcache: store %s: %w", key, err)
	}
	e.recBytes = n
	// Keep the pages of a small record (a function's diff) in memory: its children and its image
	// are built from them. A large one (a runtime) is read from its file when needed.
	if size := int64(len(pages)) * PageSize; size > 0 && size <= s.keepLimit() {
		e.data = make([]byte, 0, size)
		for i := 0; i < len(pages); i += maxRun {
			b, err := src.contents(pages[i:min(i+maxRun, len(pages))], i)
			if err != nil {
				os.Remove(s.recordPath(e.id))
				return nil, err
			}
			e.data = append(e.data, b...)
		}
	}
	return e, nil
}

// memOffset is where r's memory starts in its composed image.
func memOffset(r *record) int64 {
	if r.flags&flagStateInImage != 0 {
		return roundPage(int64(len(r.state)))
	}
	return 0
}

// index adds e to the index and the budgets' accounts. s.mu is held.
func (s *Store) index(e *entry) {
	s.entries[e.key] = e
	if e.parent != nil {
		e.parent.children++
	}
	s.memUsed += e.memBytes()
	s.disk += e.recBytes
}

func (e *entry) memBytes() int64 {
	return int64(len(e.state) + 8*len(e.pages) + 8*len(e.touched) + len(e.data))
}

// unindex removes e from the index and deletes its files. Handles still held keep their entry
// (and its open image) until released. s.mu is held.
func (s *Store) unindex(e *entry, why error) {
	if e.gone {
		return
	}
	s.memUsed -= e.memBytes()
	s.disk -= e.recBytes
	delete(s.entries, e.key)
	e.gone, e.goneErr = true, why
	if e.parent != nil {
		e.parent.children--
	}
	e.data = nil
	os.Remove(s.recordPath(e.id))
	os.Remove(s.touchPath(e.id))
	if e.img != nil {
		s.disk -= e.img.bytes
		os.Remove(e.img.f.Name())
		if e.refs == 0 {
			e.img.f.Close()
			e.img = nil
		} else {
			e.img.bytes = 0 // closed on the last Release
		}
	}
}

// dropSubtree unindexes e and every cached snapshot descending from it. s.mu is held.
func (s *Store) dropSubtree(e *entry, why error) {
	for _, d := range s.entries {
		for a := d; a != nil; a = a.parent {
			if a == e {
				if d != e {
					s.unindex(d, why)
				}
				break
			}
		}
	}
	s.unindex(e, why)
}

// Lookup implements Cache.
func (s *Store) Lookup(ctx context.Context, key Key) (Snapshot, error) {
	if err := key.Validate(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("snapshotcache: Lookup %s: %w", key, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("snapshotcache: Lookup %s: %w", key, ErrClosed)
	}
	e := s.entries[key]
	if e == nil {
		s.st.Misses++
		return nil, fmt.Errorf("snapshotcache: Lookup %s: %w", key, ErrNotFound)
	}
	s.st.Hits++
	e.refs++
	e.lastUse = s.tick()
	return s.newHandle(e), nil
}

func (s *Store) find(op string, key Key) (*entry, error) {
	if err := key.Validate(); err != nil {
		return nil, err
	}
	if s.closed {
		return nil, fmt.Errorf("snapshotcache: %s %s: %w", op, key, ErrClosed)
	}
	e := s.entries[key]
	if e == nil {
		return nil, fmt.Errorf("snapshotcache: %s %s: %w", op, key, ErrNotFound)
	}
	return e, nil
}

// Pin implements Cache.
func (s *Store) Pin(key Key) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, err := s.find("Pin", key)
	if err == nil {
		e.pinned = true
	}
	return err
}

// Unpin implements Cache.
func (s *Store) Unpin(key Key) error {
	s.mu.Lock()
	e, err := s.find("Unpin", key)
	if err == nil {
		e.pinned = false
	}
	s.mu.Unlock()
	s.evict()
	return err
}

// Remove implements Cache.
func (s *Store) Remove(ctx context.Context, key Key) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, err := s.find("Remove", key)
	if err != nil {
		return err
	}
	if e.refs > 0 || e.children > 0 || e.composing != nil {
		return fmt.Errorf("snapshotcache: Remove %s: %d handles, %d children: %w", key, e.refs, e.children, ErrInUse)
	}
	s.unindex(e, fmt.Errorf("removed: %w", ErrNotFound))
	return nil
}

// Stats implements Cache.
func (s *Store) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.st
	st.MemoryBytes, st.DiskBytes = s.memUsed, s.disk
	st.Snapshots = len(s.entries)
	for _, e := range s.entries {
		if e.pinned {
			st.Pinned++
		}
		if e.refs > 0 {
			st.InUse++
		}
		private := int64(len(e.pages)) * PageSize
		st.BytesPrivate += private
		st.BytesShared += e.dataPages*PageSize - private
	}
	return st
}

// Close implements Cache.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var errs []error
	for _, e := range s.entries {
		if e.img != nil {
			errs = append(errs, e.img.f.Close())
			os.Remove(e.img.f.Name())
			s.disk -= e.img.bytes
			e.img = nil
		}
		e.data = nil
	}
	return errors.Join(errs...)
}

// releaseLocked drops one reference. s.mu is held.
func (s *Store) releaseLocked(e *entry) {
	e.refs--
	e.lastUse = s.tick()
	if e.refs == 0 && e.gone && e.img != nil {
		e.img.f.Close()
		e.img = nil
	}
}

// handle is the Snapshot a Store hands out.
type handle struct {
	s        *Store
	e        *entry
	released atomic.Bool
}

func (s *Store) newHandle(e *entry) *handle { return &handle{s: s, e: e} }

func (h *handle) Key() Key      { return h.e.key }
func (h *handle) Parent() Key   { return h.e.parentKey }
func (h *handle) State() []byte { return h.e.state }
func (h *handle) Size() int64   { return h.e.size }

func (h *handle) MemoryOffset() int64 { return h.e.memOff }

func (h *handle) Release() {
	if h.released.Swap(true) {
		return
	}
	h.s.mu.Lock()
	h.s.releaseLocked(h.e)
	h.s.mu.Unlock()
	h.s.evict()
}

func (h *handle) Image(ctx context.Context) (*os.File, error) {
	if h.released.Load() {
		return nil, fmt.Errorf("snapshotcache: Image of %s: %w", h.e.key, ErrReleased)
	}
	return h.s.image(ctx, h.e)
}

func (h *handle) Touched() []uint64 {
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	return h.e.touched
}
