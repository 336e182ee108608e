package snapshotcache

import (
	"context"
	"errors"
	"fmt"
	"io"
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

// fileSig identifies a record file's contents as last verified: any write, truncation or
// replacement changes it (ctime cannot be set by a writer).
type fileSig struct {
	dev, ino    uint64
	size        int64
	mtime, ctim unix.Timespec
}

func statSig(path string) (fileSig, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return fileSig{}, err
	}
	return sigOf(&st), nil
}

func sigOf(st *unix.Stat_t) fileSig {
	return fileSig{dev: st.Dev, ino: st.Ino, size: st.Size, mtime: st.Mtim, ctim: st.Ctim}
}

// keepLimit is the largest record whose pages are kept in memory: bigger ones (runtime
// snapshots, typically) are read from their files when needed instead of filling the heap.
func (s *Store) keepLimit() int64 { return s.cfg.KeepInMemory }

// openLayer opens e's own pages for reading. Pages kept in memory are used as they are; a record
// small enough to keep is read whole (and so verified) into memory; a larger one is read from
// its file, re-verified in full first if the file changed since it was last verified. A record
// that fails is dropped with its descendants (Stats.Corrupt) and never used.
func (s *Store) openLayer(e *entry) (*layer, error) {
	s.mu.Lock()
	if e.gone {
		s.mu.Unlock()
		return nil, fmt.Errorf("snapshotcache: %s: %w", e.key, e.goneErr)
	}
	if e.data != nil {
		l := &layer{pages: e.pages, size: e.size, data: e.data}
		s.mu.Unlock()
		return l, nil
	}
	sig, keep := e.sig, int64(len(e.pages))*PageSize <= s.keepLimit()
	s.mu.Unlock()

	path := s.recordPath(e.id)
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, s.dropCorrupt(e, fmt.Errorf("snapshotcache: record %s: %w (%w)", path, err, ErrCorrupt))
		}
		return nil, fmt.Errorf("snapshotcache: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		return nil, fmt.Errorf("snapshotcache: stat %s: %w", path, err)
	}
	cur := sigOf(&st)
	if keep || cur != sig {
		r, err := readRecord(f, st.Size, s.lim, keep)
		if err == nil && (r.key != e.key || r.parent != e.parentKey || r.size != e.size || !slices.Equal(r.pages, e.pages)) {
			err = fmt.Errorf("snapshotcache: record of %s changed on disk: %w", e.key, ErrCorrupt)
		}
		if err != nil {
			f.Close()
			return nil, s.dropCorrupt(e, fmt.Errorf("%s: %w", path, err))
		}
		s.mu.Lock()
		e.sig = cur
		if keep && e.data == nil && !e.gone {
			e.data = r.data
			s.memUsed += int64(len(r.data))
		}
		s.mu.Unlock()
		if keep {
			f.Close()
			return &layer{pages: e.pages, size: e.size, data: r.data}, nil
		}
	}
	return &layer{pages: e.pages, size: e.size, f: f, dataOff: e.dataOff}, nil
}

func (s *Store) readRecordFile(path string, withData bool) (*record, error) {
	f, err := os.Open(path)
	if err != nil {
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

// dropCorrupt drops e and its descendants after err (wrapping ErrCorrupt) and returns err.
func (s *Store) dropCorrupt(e *entry, err error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !e.gone {
		s.st.Corrupt++
		s.log.Error("dropping snapshot: its record is unreadable; it will be rebuilt",
			zap.Stringer("key", e.key), zap.String("id", e.id), zap.Error(err))
		s.dropSubtree(e, fmt.Errorf("%s: %w", e.key, ErrCorrupt))
	}
	return err
}

// openLineage opens the layers of a lineage (root first); release closes their files.
func (s *Store) openLineage(lineage []*entry) (layers []*layer, release func(), err error) {
	release = func() {
		for _, l := range layers {
			if l.f != nil {
				l.f.Close()
			}
		}
	}
	for _, a := range lineage {
		l, err := s.openLayer(a)
		if err != nil {
			release()
			return nil, func() {}, err
		}
		layers = append(layers, l)
	}
	return layers, release, nil
}

// compose writes the composed image of the lineage (root first, e last) to a new file under
// img/ and returns it opened read-only, with the bytes it occupies. Zero pages are left as holes;
// pages on disk are copied file to file in the kernel (copy_file_range), never through the heap.
func (s *Store) compose(e *entry, lineage []*entry) (*os.File, int64, error) {
	layers, release, err := s.openLineage(lineage)
	if err != nil {
		return nil, 0, err
	}
	defer release()
	v := composeView(layers)
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
		// Overlay the layers root first, each as runs of consecutive pages: a dense runtime
		// snapshot is one copy, and each diff page costs one write over it.
		var buf []byte
		limits := cutLimits(len(layers), func(i int) int64 { return layers[i].size })
		var err error
		for j, l := range layers {
			for i := 0; i < len(l.pages) && l.pages[i] < limits[j] && err == nil; {
				k := 1
				for i+k < len(l.pages) && l.pages[i+k] == l.pages[i]+uint64(k) && l.pages[i+k] < limits[j] {
					k++
				}
				off := e.memOff + int64(l.pages[i])*PageSize
				if l.data != nil {
					_, err = f.WriteAt(l.data[i*PageSize:(i+k)*PageSize], off)
				} else {
					err = copyRange(f, off, l.f, l.dataOff+int64(i)*PageSize, int64(k)*PageSize, &buf)
				}
				i += k
			}
		}
		total := e.memOff + v.dataPages()*PageSize
		return total, err
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

// copyRange copies n bytes from src at soff to dst at doff, in the kernel when it can.
func copyRange(dst *os.File, doff int64, src *os.File, soff int64, n int64, buf *[]byte) error {
	for n > 0 {
		k, err := unix.CopyFileRange(int(src.Fd()), &soff, int(dst.Fd()), &doff, int(min(n, 1<<30)), 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil || k == 0 {
			if err != nil && err != unix.ENOSYS && err != unix.EXDEV && err != unix.EINVAL && err != unix.EOPNOTSUPP {
				return fmt.Errorf("copy %s to %s: %w", src.Name(), dst.Name(), err)
			}
			if k == 0 && err == nil {
				return fmt.Errorf("copy %s to %s: %w", src.Name(), dst.Name(), io.ErrUnexpectedEOF)
			}
			return copyRangeRW(dst, doff, src, soff, n, buf)
		}
		n -= int64(k)
	}
	return nil
}

// copyRangeRW is copyRange through a buffer, for file systems without copy_file_range.
func copyRangeRW(dst *os.File, doff int64, src *os.File, soff int64, n int64, buf *[]byte) error {
	if *buf == nil {
		*buf = make([]byte, 1<<20)
	}
	for n > 0 {
		b := (*buf)[:min(n, int64(len(*buf)))]
		if _, err := src.ReadAt(b, soff); err != nil {
			return fmt.Errorf("read %s: %w", src.Name(), err)
		}
		if _, err := dst.WriteAt(b, doff); err != nil {
			return err
		}
		soff, doff, n = soff+int64(len(b)), doff+int64(len(b)), n-int64(len(b))
	}
	return nil
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
