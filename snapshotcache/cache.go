package snapshotcache

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
)

// PageSize is the guest page size every image is cut into.
const PageSize = 4096

// Sentinel errors. Every error the cache returns wraps one of them (or the caller's context
// error, or the build function's own error), with context.
var (
	// ErrNotFound: no snapshot under this key (Lookup, Pin, Remove), or an image's parent is gone.
	ErrNotFound = errors.New("snapshot not found")
	// ErrInvalid: a key, an image or an argument is malformed; the message names the field.
	ErrInvalid = errors.New("invalid snapshot input")
	// ErrCorrupt: a persisted snapshot failed its checksum or does not parse. The snapshot and
	// its descendants are dropped; the next Get rebuilds them. Corrupt data is never restored.
	ErrCorrupt = errors.New("snapshot corrupt")
	// ErrInUse: the snapshot is held by a handle, or is the parent of a cached snapshot.
	ErrInUse = errors.New("snapshot in use")
	// ErrReleased: a handle was used after Release.
	ErrReleased = errors.New("snapshot handle released")
	// ErrClosed: the cache is closed.
	ErrClosed = errors.New("snapshot cache closed")
	// ErrBuild: a build function panicked or returned neither an image nor an error.
	ErrBuild = errors.New("snapshot build failed")
)

// Image is what a VMM hands the cache to store: guest memory plus an opaque state blob.
//
// The snapshot format contract is this and nothing more: a snapshot is State (registers, VMM-side
// state, anything the VMM needs, opaque to the cache) plus a guest memory image of Size bytes cut
// into pages of PageSize. A root snapshot (Parent nil) is stored as its non-zero pages; a child is
// stored as the pages that differ from its parent's composed image, plus its own State.
type Image struct {
	// Parent is a handle on the snapshot this one was restored from, or nil for a root. When a
	// build function returns an Image, the cache takes ownership of Parent and releases it once
	// the image is stored (or refused), so the parent cannot be evicted in between; the build
	// function must not Release it itself on that path.
	Parent Snapshot
	// State is the opaque VMM state. The cache copies it.
	State []byte
	// Memory is the guest memory: an *os.File, a Bytes, or any io.ReaderAt of at least Size bytes.
	Memory io.ReaderAt
	// Size is the guest memory size in bytes: positive and a multiple of PageSize.
	Size int64
	// Dirty optionally lists the page numbers that may differ from the parent (from the VMM's
	// dirty log). Pages not listed are taken to equal the parent's. Listed pages are still
	// compared, so a page written back to its old contents costs nothing. nil means "compare
	// every page". Ignored for a root.
	Dirty []uint64
	// StateInImage asks for a composed image that starts with State, zero-padded to a page
	// boundary, with the guest memory after it (at Snapshot.MemoryOffset). Use it when State is
	// the header of the VMM's own snapshot file format (for package kvm, the file's bytes before
	// its page-aligned memory): the composed image is then a complete snapshot file of that VMM.
	StateInImage bool
}

// Bytes is guest memory already in this process (for example the VMM's mapping of guest RAM).
// The cache reads it without copying.
type Bytes []byte

// ReadAt implements io.ReaderAt.
func (b Bytes) ReadAt(p []byte, off int64) (int, error) {
	return bytes.NewReader(b).ReadAt(p, off)
}

// BuildFunc creates the snapshot for a key on a miss. It returns the image to store, or an
// error that Get returns unchanged (wrapped) to every caller waiting on this build. ctx is the
// context of the Get that runs the build; if the build fails because that context ended, other
// waiters whose contexts are live retry, and one of them runs the build again. A build may Get
// other keys (its parent) but never its own: it would wait for itself.
type BuildFunc func(ctx context.Context) (*Image, error)

// Cache stores snapshots with their lineage, hands out counted references to them and
// materialises composed memory images for restore.
//
// A Cache is safe for concurrent use. A snapshot held by a handle is never evicted, nor is a
// pinned snapshot, nor a snapshot that is the parent of a cached one. Budgets are soft: when
// everything is in use the cache grows past them rather than fail a caller.
type Cache interface {
	// Get returns a handle on the snapshot for key. On a miss it runs build once however many
	// callers ask for key at the same time (single flight); the others wait for that build and
	// share its result or its error. A failed build is not remembered: the next Get builds again.
	Get(ctx context.Context, key Key, build BuildFunc) (Snapshot, error)
	// Lookup returns a handle on the snapshot for key if the cache holds it, else an error
	// wrapping ErrNotFound. It never builds.
	Lookup(ctx context.Context, key Key) (Snapshot, error)
	// Pin keeps the snapshot from every eviction (memory, image and disk) until Unpin. Pins are
	// not persisted. Errors wrap ErrNotFound.
	Pin(key Key) error
	// Unpin undoes Pin; the snapshot becomes evictable again when nothing else holds it.
	Unpin(key Key) error
	// Remove deletes the snapshot now (for example when its action is deleted). Errors wrap
	// ErrNotFound, or ErrInUse when it is held by a handle or is the parent of a cached snapshot.
	Remove(ctx context.Context, key Key) error
	// Stats returns a consistent copy of the counters.
	Stats() Stats
	// Close releases the cache's files. Handles still held answer ErrClosed from then on; memory
	// a caller already mapped from an image stays valid. Persisted snapshots survive Close.
	Close() error
}

// Snapshot is a counted reference (a handle) to a cached snapshot. While it is held the snapshot
// is not evicted. After Release, Image fails with ErrReleased; the other accessors keep answering.
type Snapshot interface {
	// Key is the snapshot's key.
	Key() Key
	// Parent is the key of the snapshot this one is a diff against; zero for a root.
	Parent() Key
	// State is the opaque VMM state blob. The caller must not modify it.
	State() []byte
	// Size is the guest memory size in bytes.
	Size() int64
	// MemoryOffset is where guest memory starts in the Image file: 0, or the page-rounded State
	// length for a snapshot stored with Image.StateInImage.
	MemoryOffset() int64
	// Image returns a read-only file of MemoryOffset+Size bytes holding the full guest memory
	// from MemoryOffset (preceded by State when stored with StateInImage), composed from the
	// lineage on first use and shared by every handle: map it with mmap(PROT_READ|PROT_WRITE,
	// MAP_PRIVATE) and pages never written stay shared between all guests. The file belongs to
	// the cache: do not Close it. It stays valid until Release; a mapping made from it stays
	// valid after that too.
	Image(ctx context.Context) (*os.File, error)
	// Release drops the reference. It is safe to call more than once; only the first counts.
	Release()
}

// TouchRecorder is implemented by caches that keep, with a snapshot, the list of pages an
// activation touched on its first run after the snapshot (the REAP idea), so a later restore can
// prefetch them.
type TouchRecorder interface {
	// RecordTouched stores pages (page numbers below the snapshot's Size/PageSize; the cache
	// sorts and deduplicates them) with the snapshot, replacing any earlier list. It persists.
	// Errors wrap ErrNotFound or ErrInvalid.
	RecordTouched(ctx context.Context, key Key, pages []uint64) error
}

// TouchedPages is implemented by handles of a TouchRecorder cache.
type TouchedPages interface {
	// Touched returns the recorded page list, ascending, or nil when none was recorded. The
	// caller must not modify it.
	Touched() []uint64
}

// Stats are the cache's counters since Open (the gauges describe now).
type Stats struct {
	// Hits: Get and Lookup calls answered by a cached snapshot.
	Hits int64
	// Misses: Get calls that found no snapshot (they ran a build or waited for one), and
	// Lookup calls that found nothing.
	Misses int64
	// Waits: Get calls that joined a build another caller was running.
	Waits int64
	// Builds: build functions run; BuildErrors: those that failed (or whose image was refused).
	Builds, BuildErrors int64
	// Evictions: snapshots dropped for the disk budget. ImageEvictions: composed images dropped
	// (the snapshot stays; its image is composed again on demand). MemoryEvictions: snapshots
	// whose pages were dropped from memory (they stay on disk).
	Evictions, ImageEvictions, MemoryEvictions int64
	// Composes: composed images materialised.
	Composes int64
	// Corrupt: persisted snapshots (or page lists) that failed their checksum and were dropped.
	Corrupt int64

	// Snapshots, Pinned and InUse count cached snapshots, pinned ones, and ones held by handles.
	Snapshots, Pinned, InUse int
	// MemoryBytes: snapshot pages and state held in memory. DiskBytes: persisted snapshots plus
	// composed images on disk.
	MemoryBytes, DiskBytes int64
	// BytesPrivate: page bytes stored by snapshots themselves (a child's diff, a root's non-zero
	// pages). BytesShared: page bytes the cached snapshots' images take from an ancestor instead
	// of storing them again. BytesShared/(BytesShared+BytesPrivate) is what lineages save.
	BytesPrivate, BytesShared int64
}
