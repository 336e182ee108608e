// Package snapshotcache stores guest snapshots as SEUSS-style lineages and hands out composed
// memory images for restore.
//
// A lineage has a runtime snapshot at its root (one per exec kind and runtime build, taken when
// the launcher blocks for its init line) and function snapshots below it (one per action docid,
// revision and code digest, taken after /init), each stored as the pages that differ from its
// parent. Restoring composes the lineage into one file that every guest of the function maps
// copy-on-write (MAP_PRIVATE), so pages no guest writes exist once on the host.
//
// The package knows nothing of KVM. Its snapshot format contract (Image) is an opaque state blob
// plus a guest memory image of Size bytes in PageSize pages. A VMM
//
//   - stores a runtime snapshot: Get(ctx, RuntimeKey(kind, build), build) where build boots the
//     launcher and returns &Image{State, Memory, Size};
//   - stores a function snapshot: Get(ctx, FunctionKey(docid, rev, digest), build) where build
//     takes a handle on the runtime snapshot, restores it, runs /init and returns
//     &Image{Parent: runtimeHandle, State, Memory, Size, Dirty: dirtyLog};
//   - restores: h.Image(ctx) gives the composed file to mmap MAP_PRIVATE (guest memory starts at
//     h.MemoryOffset()), h.State() the blob; h.Release() when the guest is gone.
//
// A VMM whose snapshot files are a header followed by page-aligned memory (package kvm's are)
// can store such a file with ImageFromFile: the composed image is then byte for byte a snapshot
// file that VMM opens itself, and the cache still stores only the pages that changed.
//
// Handles are reference counts: nothing held is evicted. Runtime snapshots can be pinned. A
// memory budget bounds the pages kept in memory; a disk budget bounds records and composed
// images, evicted least recently used first (images before records, children before parents).
// After a restart, recency is taken from the records' modification times. Concurrent first
// requests for one key run its build once. The conformance suite every Cache
// implementation must pass is in package cachetest.
//
// # On-disk format
//
// A Store's directory holds:
//
//	snap/<id>.snap    one record per snapshot (persistent)
//	snap/<id>.touch   an optional page list recorded with RecordTouched (persistent)
//	img/<id>.img      composed images (a cache: deleted at Open and at Close)
//	*.tmp             files being written; renamed into place when complete, deleted at Open
//
// <id> is Key.ID: the first 32 hex digits of the SHA-256 of the key's canonical encoding (a
// level byte, 1 runtime or 2 function, then three fields, each a uvarint length and its bytes;
// a runtime key's third field is empty).
//
// A record, all integers little-endian:
//
//	offset  size  field
//	0       8     magic "snapcach"
//	8       4     format version, 1
//	12      4     header length H = 48 + K + P + S + 8N
//	16      8     guest memory size in bytes (a multiple of 4096)
//	24      4     N, the number of pages stored
//	28      4     S, state length
//	32      4     K, key length
//	36      4     P, parent key length (0 for a root)
//	40      4     flags: bit 0 set when the state blob leads the composed image (StateInImage)
//	44      4     reserved, 0
//	48      K     key, canonical encoding
//	48+K    P     parent key, canonical encoding
//	..      S     state blob
//	..      8N    page numbers, strictly ascending, each below size/4096
//	H       ..    zero padding to D = H rounded up to 4096
//	D       4096N page contents, page i at D + 4096i (page-aligned, so it could be mapped)
//	D+4096N 4     CRC-32C (Castagnoli) of bytes [0, D+4096N)
//	..      4     trailer magic "SEND"
//
// A root stores its non-zero pages; a child stores the pages whose contents differ from its
// parent's composed image (a page the child zeroed is stored as zeros). The composed image of a
// snapshot is its lineage overlaid root first, each page taken from the nearest snapshot that
// stores it, zero elsewhere, cut to its size (a page of an ancestor beyond the size of any image
// below it is zero). The composed image file is that memory, from offset 0; or, for a snapshot
// stored with StateInImage, the state blob zero-padded to a page boundary M followed by the
// memory at M (Snapshot.MemoryOffset), so a VMM whose snapshot files are a header followed by
// page-aligned memory can hand the composed image to its own snapshot loader unchanged.
//
// Records are written to a temporary file and renamed into place (fsynced first with
// Config.Fsync). Each is verified in full (checksum, field consistency, file name against key) at
// Open, and again before its pages are next read if the file changed since (its device, inode,
// size, mtime or ctime differ), or whenever it is read whole into memory. A record that fails is
// deleted with its descendants, counted in Stats.Corrupt, and rebuilt by the next Get, so a torn
// write after a crash or a damaged file costs a rebuild, never a wrong restore.
//
// Composed images have holes for zero pages. Pages of records kept in memory are written from
// there; pages of the others are copied file to file in the kernel (copy_file_range), so a
// large runtime snapshot never passes through the Go heap. Which records keep their pages in
// memory: those no larger than Config.KeepInMemory (function diffs, typically),
// least recently used dropped first when the budget is exceeded, never while held or pinned.
//
// A page list (<id>.touch): magic "snaptch1", u32 count, u32 zero, count × u64 page numbers
// (ascending, below size/4096), u32 CRC-32C of the preceding bytes, "TEND".
package snapshotcache
