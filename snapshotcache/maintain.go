package snapshotcache

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"go.uber.org/zap"
)

// evict brings the store back within its budgets: first pages held in memory, then composed
// images, then whole snapshots, each least recently used first (see planEviction).
func (s *Store) evict() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || (s.memUsed <= s.cfg.MemoryBudget && s.disk <= s.cfg.DiskBudget) {
		return // the common case, on every Release: nothing to scan
	}
	byID := make(map[string]*entry, len(s.entries))
	for _, e := range s.entries {
		byID[e.id] = e
	}
	cand := func(e *entry, bytes int64, tree bool) candidate {
		c := candidate{id: e.id, lastUse: e.lastUse, bytes: bytes, refs: e.refs, pinned: e.pinned,
			busy: e.busy > 0 || e.composing != nil}
		if tree && e.parent != nil {
			c.parent = e.parent.id
		}
		return c
	}
	if s.memUsed > s.cfg.MemoryBudget {
		var cs []candidate
		for _, e := range s.entries {
			if len(e.data) > 0 {
				cs = append(cs, cand(e, int64(len(e.data)), false))
			}
		}
		for _, id := range planEviction(cs, s.memUsed, s.cfg.MemoryBudget, false) {
			e := byID[id]
			s.memUsed -= int64(len(e.data))
			e.data = nil
			s.st.MemoryEvictions++
		}
	}
	if s.disk > s.cfg.DiskBudget {
		var cs []candidate
		for _, e := range s.entries {
			if e.img != nil {
				cs = append(cs, cand(e, e.img.bytes, false))
			}
		}
		for _, id := range planEviction(cs, s.disk, s.cfg.DiskBudget, false) {
			e := byID[id]
			s.disk -= e.img.bytes
			e.img.f.Close()
			os.Remove(e.img.f.Name())
			e.img = nil
			s.st.ImageEvictions++
		}
	}
	if s.disk > s.cfg.DiskBudget {
		var cs []candidate
		for _, e := range s.entries {
			cs = append(cs, cand(e, e.recBytes, true))
		}
		for _, id := range planEviction(cs, s.disk, s.cfg.DiskBudget, true) {
			e := byID[id]
			s.log.Info("evicting snapshot", zap.Stringer("key", e.key), zap.String("id", e.id), zap.Int64("bytes", e.recBytes))
			s.unindex(e, fmt.Errorf("%s was evicted: %w", e.key, ErrNotFound))
			s.st.Evictions++
		}
	}
}

// load rebuilds the index from the records on disk at Open, verifying each one in full.
func (s *Store) load(ctx context.Context) error {
	imgs, err := os.ReadDir(s.imgDir())
	if err != nil {
		return fmt.Errorf("snapshotcache: open: %w", err)
	}
	for _, d := range imgs {
		os.Remove(filepath.Join(s.imgDir(), d.Name()))
	}
	des, err := os.ReadDir(s.snapDir())
	if err != nil {
		return fmt.Errorf("snapshotcache: open: %w", err)
	}
	type loaded struct {
		e     *entry
		mtime int64
	}
	var all []loaded
	byKey := map[Key]*entry{}
	for _, d := range des {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("snapshotcache: open: %w", err)
		}
		name := d.Name()
		path := filepath.Join(s.snapDir(), name)
		if !strings.HasSuffix(name, ".snap") {
			if strings.HasSuffix(name, ".tmp") {
				os.Remove(path)
			}
			continue
		}
		r, err := s.readRecordFile(path, false)
		if err == nil && r.key.ID()+".snap" != name {
			err = fmt.Errorf("snapshotcache: %s holds %s: %w", path, r.key, ErrCorrupt)
		}
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				return err
			}
			s.st.Corrupt++
			s.log.Error("dropping corrupt snapshot record; it will be rebuilt", zap.String("path", path), zap.Error(err))
			os.Remove(path)
			os.Remove(strings.TrimSuffix(path, ".snap") + ".touch")
			continue
		}
		sig, err := statSig(path)
		if err != nil {
			return fmt.Errorf("snapshotcache: open: %w", err)
		}
		e := &entry{key: r.key, parentKey: r.parent, id: r.key.ID(), size: r.size, state: r.state, pages: r.pages,
			recBytes: sig.size, memOff: memOffset(r), dataOff: r.dataOffset(), sig: sig}
		all = append(all, loaded{e, sig.mtime.Nano()})
		byKey[e.key] = e
	}
	// Link parents; a snapshot whose parent is missing (or a cycle) cannot be composed: drop it.
	var resolve func(e *entry, depth int) bool
	ok := map[*entry]bool{}
	resolve = func(e *entry, depth int) bool {
		if v, seen := ok[e]; seen {
			return v
		}
		good := true
		if depth > len(byKey) {
			good = false
		} else if !e.parentKey.IsZero() {
			p := byKey[e.parentKey]
			good = p != nil && resolve(p, depth+1)
			e.parent = p
		}
		ok[e] = good
		return good
	}
	slices.SortFunc(all, func(a, b loaded) int { return int(min(max(a.mtime-b.mtime, -1), 1)) })
	for _, l := range all {
		e := l.e
		if !resolve(e, 0) {
			s.log.Warn("dropping snapshot whose parent is gone", zap.Stringer("key", e.key), zap.Stringer("parent", e.parentKey))
			os.Remove(s.recordPath(e.id))
			os.Remove(s.touchPath(e.id))
			continue
		}
		e.lastUse = s.tick()
		s.index(e)
	}
	for _, e := range s.entries {
		lin := e.lineage()
		pages := make([][]uint64, len(lin))
		sizes := make([]int64, len(lin))
		for i, a := range lin {
			pages[i], sizes[i] = a.pages, a.size
		}
		e.dataPages = countDataPages(pages, sizes)
		if err := s.loadTouched(e); err != nil {
			s.st.Corrupt++
			s.log.Error("dropping corrupt page list", zap.Stringer("key", e.key), zap.Error(err))
			os.Remove(s.touchPath(e.id))
		}
	}
	return nil
}

// The page list of a snapshot, stored beside its record as <id>.touch:
// "snaptch1", u32 count, u32 zero, count × u64 page numbers, u32 CRC-32C of all before, "TEND".
const touchMagic = "snaptch1"

// RecordTouched implements TouchRecorder.
func (s *Store) RecordTouched(ctx context.Context, key Key, pages []uint64) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("snapshotcache: RecordTouched %s: %w", key, err)
	}
	s.mu.Lock()
	e, err := s.find("RecordTouched", key)
	s.mu.Unlock()
	if err != nil {
		return err
	}
	ps := slices.Clone(pages)
	slices.Sort(ps)
	ps = slices.Compact(ps)
	for i, p := range ps {
		if p >= uint64(e.size/PageSize) {
			return fmt.Errorf("snapshotcache: RecordTouched %s: pages[%d] = %d: past the last page %d: %w", key, i, p, e.size/PageSize-1, ErrInvalid)
		}
	}
	b := make([]byte, 0, 16+8*len(ps)+8)
	b = append(b, touchMagic...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(ps)))
	b = binary.LittleEndian.AppendUint32(b, 0)
	for _, p := range ps {
		b = binary.LittleEndian.AppendUint64(b, p)
	}
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
	b = append(b, "TEND"...)
	if _, err := writeFileAtomic(s.snapDir(), s.touchPath(e.id), s.cfg.Fsync, func(f *os.File) (int64, error) {
		n, err := f.Write(b)
		return int64(n), err
	}); err != nil {
		return fmt.Errorf("snapshotcache: RecordTouched %s: %w", key, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if e.gone {
		os.Remove(s.touchPath(e.id))
		return fmt.Errorf("snapshotcache: RecordTouched %s: %w", key, e.goneErr)
	}
	s.memUsed += 8 * int64(len(ps)-len(e.touched))
	e.touched = ps
	return nil
}

// loadTouched reads e's page list, if any. Only Open calls it, before the store is shared.
func (s *Store) loadTouched(e *entry) error {
	b, err := os.ReadFile(s.touchPath(e.id))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	ps, err := decodeTouched(b, uint64(e.size/PageSize))
	if err != nil {
		return err
	}
	e.touched = ps
	s.memUsed += 8 * int64(len(ps))
	return nil
}

func decodeTouched(b []byte, npages uint64) ([]uint64, error) {
	le := binary.LittleEndian
	if len(b) < 24 || string(b[:8]) != touchMagic || string(b[len(b)-4:]) != "TEND" {
		return nil, fmt.Errorf("snapshotcache: page list: bad framing: %w", ErrCorrupt)
	}
	n := uint64(le.Uint32(b[8:]))
	if uint64(len(b)) != 24+8*n {
		return nil, fmt.Errorf("snapshotcache: page list: %d bytes for %d pages: %w", len(b), n, ErrCorrupt)
	}
	if crc32.Checksum(b[:len(b)-8], castagnoli) != le.Uint32(b[len(b)-8:]) {
		return nil, fmt.Errorf("snapshotcache: page list: checksum mismatch: %w", ErrCorrupt)
	}
	ps := make([]uint64, n)
	for i := range ps {
		ps[i] = le.Uint64(b[16+8*i:])
		if ps[i] >= npages || (i > 0 && ps[i] <= ps[i-1]) {
			return nil, fmt.Errorf("snapshotcache: page list: entry %d out of order or past the image: %w", i, ErrCorrupt)
		}
	}
	return ps, nil
}
