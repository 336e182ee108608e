package snapshotcache

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// image returns e's composed image, composing it once however many handles ask at once.
func (s *Store) image(ctx context.Context, e *entry) (*os.File, error) {
	for {
		s.mu.Lock()
		switch {
		case s.closed:
			s.mu.Unlock()
			return nil, fmt.Errorf("snapshotcache: Image of %s: %w", e.key, ErrClosed)
		case e.img != nil:
			f := e.img.f
			e.lastUse = s.tick()
			s.mu.Unlock()
			return f, nil
		case e.gone:
			s.mu.Unlock()
			return nil, fmt.Errorf("snapshotcache: Image of %s: %w", e.key, e.goneErr)
		}
		if cf := e.composing; cf != nil {
			s.mu.Unlock()
			select {
			case <-cf.done:
				if cf.err != nil {
					return nil, cf.err
				}
				continue
			case <-ctx.Done():
				return nil, fmt.Errorf("snapshotcache: Image of %s: %w", e.key, ctx.Err())
			}
		}
		cf := &composeFlight{done: make(chan struct{})}
		e.composing = cf
		lineage := e.lineage()
		for _, a := range lineage {
			a.busy++
		}
		s.mu.Unlock()

		f, n, err := s.compose(e, lineage)

		s.mu.Lock()
		e.composing = nil
		for _, a := range lineage {
			a.busy--
		}
		if err == nil && (s.closed || e.gone) {
			f.Close()
			os.Remove(f.Name())
			err = ErrClosed
			if e.gone {
				err = e.goneErr
			}
		}
		if err == nil {
			e.img = &composed{f: f, bytes: n}
			s.disk += n
			s.st.Composes++
			e.lastUse = s.tick()
		} else {
			err = fmt.Errorf("snapshotcache: compose image of %s: %w", e.key, err)
		}
		cf.err = err
		close(cf.done)
		s.mu.Unlock()
		s.evict()
		if err != nil {
			return nil, err
		}
		return f, nil
	}
}

// lineage is e's ancestry, root first. s.mu is held (parent links are immutable anyway).
func (e *entry) lineage() []*entry {
	var l []*entry
	for a := e; a != nil; a = a.parent {
		l = append(l, a)
	}
	slices.Reverse(l)
	return l
}

// lineageRecords loads the records of e's lineage, root first.
func (s *Store) lineageRecords(e *entry) ([]*record, error) {
	s.mu.Lock()
	lineage := e.lineage()
	s.mu.Unlock()
	recs := make([]*record, len(lineage))
	for i, a := range lineage {
		r, err := s.loadRecord(a)
		if err != nil {
			return nil, err
		}
		recs[i] = r
	}
	return recs, nil
}

// loadRecord returns e's record with its pages, reading and verifying it if it is not in memory.
// A record that fails verification is dropped with its descendants and never used.
func (s *Store) loadRecord(e *entry) (*record, error) {
	s.mu.Lock()
	if r := e.rec; r != nil {
		s.mu.Unlock()
		return r, nil
	}
	if e.gone {
		s.mu.Unlock()
		return nil, fmt.Errorf("snapshotcache: %s: %w", e.key, e.goneErr)
	}
	s.mu.Unlock()
	r, err := s.readRecordFile(s.recordPath(e.id), true)
	if err == nil && (r.key != e.key || r.parent != e.parentKey || r.size != e.size || !slices.Equal(r.pages, e.pages)) {
		err = fmt.Errorf("snapshotcache: record of %s changed on disk: %w", e.key, ErrCorrupt)
	}
	if err != nil {
		s.mu.Lock()
		if !e.gone {
			s.st.Corrupt++
			s.log.Error("dropping snapshot: its record is unreadable; it will be rebuilt",
				zap.Stringer("key", e.key), zap.String("id", e.id), zap.Error(err))
			s.dropSubtree(e, fmt.Errorf("%s: %w", e.key, ErrCorrupt))
		}
		s.mu.Unlock()
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if e.rec == nil && !e.gone {
		e.rec = r
		s.memUsed += int64(len(r.data))
	}
	return r, nil
}

func (s *Store) readRecordFile(path string, withData bool) (*record, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("snapshotcache: record %s: %w (%w)", path, err, ErrCorrupt)
		}
		return nil, fmt.Errorf("snapshotcache: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("snapshotcache: %w", err)
	}
	r, err := readRecord(f, st.Size(), s.lim, withData)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return r, nil
}

// compose writes the composed image of the lineage (root first, e last) to a new file under
// img/ and returns it opened read-only, with the bytes it occupies. Zero pages are left as holes.
func (s *Store) compose(e *entry, lineage []*entry) (*os.File, int64, error) {
	recs := make([]*record, len(lineage))
	for i, a := range lineage {
		r, err := s.loadRecord(a)
		if err != nil {
			return nil, 0, err
		}
		recs[i] = r
	}
	v := composeView(recs)
	path := s.imagePath(e.id)
	n, err := writeFileAtomic(s.imgDir(), path, false, func(f *os.File) (int64, error) {
		if err := f.Truncate(e.memOff + e.size); err != nil {
			return 0, err
		}
		if e.memOff > 0 {
			if _, err := f.WriteAt(e.state, 0); err != nil {
				return 0, err
			}
		}
		n, err := writeView(f, v, e.memOff)
		return n + e.memOff, err
	})
	if err != nil {
		return nil, 0, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	return f, n, nil
}

// writeView writes the view's data pages at base plus their offsets, gathering consecutive pages
// into one pwritev each, and returns the bytes written.
func writeView(f *os.File, v *view, base int64) (int64, error) {
	const maxIov = 1024
	var total int64
	iov := make([][]byte, 0, maxIov)
	flush := func(first int) error {
		off := base + int64(first)*PageSize
		for len(iov) > 0 {
			n, err := unix.Pwritev(int(f.Fd()), iov, off)
			if err != nil {
				return fmt.Errorf("write %s at %d: %w", f.Name(), off, err)
			}
			total += int64(n)
			off += int64(n)
			for n > 0 { // a short write: drop what went out
				if n >= len(iov[0]) {
					n -= len(iov[0])
					iov = iov[1:]
				} else {
					iov[0] = iov[0][n:]
					n = 0
				}
			}
		}
		iov = iov[:0]
		return nil
	}
	first := -1
	for p, pg := range v.pages {
		if pg == nil || len(iov) == maxIov {
			if len(iov) > 0 {
				if err := flush(first); err != nil {
					return total, err
				}
			}
			if pg == nil {
				continue
			}
		}
		if len(iov) == 0 {
			first = p
		}
		iov = append(iov, pg)
	}
	if len(iov) > 0 {
		if err := flush(first); err != nil {
			return total, err
		}
	}
	return total, nil
}

// writeFileAtomic writes path through a temporary file in dir, renamed into place (and, with
// durable, synced first), so a crash leaves the old file, the new one, or a *.tmp Open deletes.
func writeFileAtomic(dir, path string, durable bool, write func(*os.File) (int64, error)) (int64, error) {
	tmp, err := os.CreateTemp(dir, filepath.Base(path)+".*.tmp")
	if err != nil {
		return 0, err
	}
	n, err := write(tmp)
	if err == nil && durable {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return 0, err
	}
	if !durable {
		return n, nil
	}
	if d, derr := os.Open(dir); derr == nil {
		d.Sync()
		d.Close()
	}
	return n, nil
}
