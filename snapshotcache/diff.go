package snapshotcache

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"slices"
)

var zeroPage = make([]byte, PageSize)

// layer is one snapshot of a lineage, opened for reading its own pages: from memory when they
// are kept there, else from its record file (verified, see Store.openLayer).
type layer struct {
	pages   []uint64
	size    int64
	data    []byte   // the pages in memory, or nil
	f       *os.File // the record file when data is nil
	dataOff int64    // where the pages start in f
}

// read copies pages [i, i+n) of the layer (indexes into l.pages) into dst.
func (l *layer) read(dst []byte, i, n int) error {
	if l.data != nil {
		copy(dst, l.data[i*PageSize:(i+n)*PageSize])
		return nil
	}
	if k, err := l.f.ReadAt(dst[:n*PageSize], l.dataOff+int64(i)*PageSize); k != n*PageSize {
		return fmt.Errorf("read %s: %w", l.f.Name(), err)
	}
	return nil
}

// view is a composed image as references: page p comes from page idx[p] of layers[src[p]-1],
// or is zero when src[p] is 0. It copies no page contents.
type view struct {
	size   int64
	layers []*layer
	src    []int32
	idx    []int32
}

// composeView overlays a lineage (root first) into the view of the last layer's image. A page of
// an ancestor survives only if every image below it in the lineage is large enough to hold it:
// a snapshot that shrank its memory and grew it again sees zeros there, as its guest did.
func composeView(layers []*layer) *view {
	limits := cutLimits(len(layers), func(i int) int64 { return layers[i].size })
	size := layers[len(layers)-1].size
	n := size / PageSize
	v := &view{size: size, layers: layers, src: make([]int32, n), idx: make([]int32, n)}
	for j, l := range layers {
		for i, p := range l.pages {
			if p < limits[j] {
				v.src[p], v.idx[p] = int32(j+1), int32(i)
			}
		}
	}
	return v
}

// cutLimits returns, for each of n lineage layers (root first) with the given sizes, the number
// of its pages that reach the last layer's image: the smallest page count from it downwards.
func cutLimits(n int, size func(int) int64) []uint64 {
	limits := make([]uint64, n)
	lim := uint64(1<<63 - 1)
	for i := n - 1; i >= 0; i-- {
		lim = min(lim, uint64(size(i)/PageSize))
		limits[i] = lim
	}
	return limits
}

// countDataPages is the number of data pages of the composed image of a lineage (root first)
// whose layers hold the given page lists and sizes.
func countDataPages(pages [][]uint64, sizes []int64) int64 {
	limits := cutLimits(len(sizes), func(i int) int64 { return sizes[i] })
	seen := make([]uint64, (sizes[len(sizes)-1]/PageSize+63)/64)
	var n int64
	for j, ps := range pages {
		for _, p := range ps {
			if p < limits[j] && seen[p/64]&(1<<(p%64)) == 0 {
				seen[p/64] |= 1 << (p % 64)
				n++
			}
		}
	}
	return n
}

// dataPages counts the view's pages that hold data (are not implicit zeros).
func (v *view) dataPages() int64 {
	var n int64
	for _, s := range v.src {
		if s != 0 {
			n++
		}
	}
	return n
}

// runs calls fn for each maximal run of pages [first, first+n) of the view, within [from, to),
// that come from one layer at consecutive indexes (l nil and i -1 for a run of zero pages).
func (v *view) runs(from, to uint64, fn func(first uint64, n int, l *layer, i int) error) error {
	to = min(to, uint64(len(v.src)))
	for p := from; p < to; {
		s, i := v.src[p], v.idx[p]
		q := p + 1
		for q < to && v.src[q] == s && (s == 0 || v.idx[q] == i+int32(q-p)) {
			q++
		}
		var l *layer
		if s != 0 {
			l = v.layers[s-1]
		} else {
			i = -1
		}
		if err := fn(p, int(q-p), l, int(i)); err != nil {
			return err
		}
		p = q
	}
	return nil
}

// read copies pages [first, first+n) of the view into dst (pages past its size read as zero).
func (v *view) read(dst []byte, first uint64, n int) error {
	clear(dst[:n*PageSize])
	if v == nil {
		return nil
	}
	return v.runs(first, first+uint64(n), func(p uint64, k int, l *layer, i int) error {
		if l == nil {
			return nil
		}
		off := (p - first) * PageSize
		return l.read(dst[off:off+uint64(k)*PageSize], i, k)
	})
}

// validateImage checks what a caller handed in, naming the field at fault.
func validateImage(img *Image, lim recordLimits) error {
	switch {
	case img == nil:
		return fmt.Errorf("snapshotcache: build returned no image and no error: %w", ErrBuild)
	case img.Memory == nil:
		return fmt.Errorf("snapshotcache: image.Memory is nil: %w", ErrInvalid)
	case img.Size <= 0 || img.Size%PageSize != 0:
		return fmt.Errorf("snapshotcache: image.Size %d: not a positive multiple of %d: %w", img.Size, PageSize, ErrInvalid)
	case img.Size > lim.maxSize:
		return fmt.Errorf("snapshotcache: image.Size %d: more than the limit %d: %w", img.Size, lim.maxSize, ErrInvalid)
	case int64(len(img.State)) > lim.maxState:
		return fmt.Errorf("snapshotcache: image.State is %d bytes, more than the limit %d: %w", len(img.State), lim.maxState, ErrInvalid)
	}
	if b, ok := img.Memory.(Bytes); ok && int64(len(b)) < img.Size {
		return fmt.Errorf("snapshotcache: image.Memory holds %d bytes, image.Size is %d: %w", len(b), img.Size, ErrInvalid)
	}
	for i, p := range img.Dirty {
		if p >= uint64(img.Size/PageSize) {
			return fmt.Errorf("snapshotcache: image.Dirty[%d] = %d: past the last page %d: %w", i, p, img.Size/PageSize-1, ErrInvalid)
		}
	}
	return nil
}

// imageSource reads pages of a caller's image: in place for Bytes, through a buffer otherwise.
type imageSource struct {
	img *Image
	buf []byte
}

const maxRun = 256 // pages per read: 1 MiB

func (s *imageSource) run(first uint64, n int) ([]byte, error) {
	if b, ok := s.img.Memory.(Bytes); ok {
		return b[first*PageSize : (first+uint64(n))*PageSize], nil
	}
	if s.buf == nil {
		s.buf = make([]byte, maxRun*PageSize)
	}
	chunk := s.buf[:n*PageSize]
	if k, err := s.img.Memory.ReadAt(chunk, int64(first*PageSize)); k != len(chunk) {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("snapshotcache: read image.Memory pages %d..%d: %w", first, first+uint64(n)-1, err)
	}
	return chunk, nil
}

// contents implements pageSource: a run of pages is read at once when consecutive, else page by
// page into a gather buffer.
func (s *imageSource) contents(pages []uint64, _ int) ([]byte, error) {
	if pages[len(pages)-1]-pages[0] == uint64(len(pages)-1) {
		return s.run(pages[0], len(pages))
	}
	out := make([]byte, 0, len(pages)*PageSize)
	for _, p := range pages {
		b, err := s.run(p, 1)
		if err != nil {
			return nil, err
		}
		out = append(out, b...)
	}
	return out, nil
}

// diffImage returns the pages of img that differ from parent (nil: the zero image), ascending,
// and the number of data pages of img's composed image. It reads only the candidate pages:
// img.Dirty when given for a child, else every page; it copies no page contents.
func diffImage(img *Image, parent *view) (pages []uint64, dataPages int64, err error) {
	n := uint64(img.Size / PageSize)
	var cand []uint64
	if parent != nil && img.Dirty != nil {
		cand = slices.Clone(img.Dirty)
		slices.Sort(cand)
		cand = slices.Compact(cand)
	}
	next, ci := uint64(0), 0
	// nextRun yields the candidates as runs of consecutive pages [first, first+count).
	nextRun := func() (first uint64, count int, ok bool) {
		if cand == nil {
			if next >= n {
				return 0, 0, false
			}
			first, count = next, int(min(maxRun, n-next))
			next += uint64(count)
			return first, count, true
		}
		if ci >= len(cand) {
			return 0, 0, false
		}
		first, count = cand[ci], 1
		ci++
		for ci < len(cand) && cand[ci] == first+uint64(count) && count < maxRun {
			count++
			ci++
		}
		return first, count, true
	}
	src := &imageSource{img: img}
	var pbuf []byte
	if parent != nil {
		pbuf = make([]byte, maxRun*PageSize)
	}
	for {
		first, count, ok := nextRun()
		if !ok {
			break
		}
		chunk, err := src.run(first, count)
		if err != nil {
			return nil, 0, err
		}
		if parent != nil {
			if err := parent.read(pbuf, first, count); err != nil {
				return nil, 0, fmt.Errorf("snapshotcache: read parent pages: %w", err)
			}
		}
		for i := 0; i < count; i++ {
			theirs := zeroPage
			if parent != nil {
				theirs = pbuf[i*PageSize : (i+1)*PageSize]
			}
			if !bytes.Equal(chunk[i*PageSize:(i+1)*PageSize], theirs) {
				pages = append(pages, first+uint64(i))
			}
		}
	}
	// Data pages of the result: the parent's within size, plus new pages where it had none.
	dataPages = int64(len(pages))
	if parent != nil {
		for p := uint64(0); p < n && p < uint64(len(parent.src)); p++ {
			if parent.src[p] != 0 {
				if _, found := slices.BinarySearch(pages, p); !found {
					dataPages++
				}
			}
		}
	}
	return pages, dataPages, nil
}
