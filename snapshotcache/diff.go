package snapshotcache

import (
	"bytes"
	"fmt"
	"io"
	"slices"
)

var zeroPage = make([]byte, PageSize)

// view is a composed image as page references: pages[p] is the contents of page p, nil for a
// zero page. It points into records' data and copies nothing.
type view struct {
	size  int64
	pages [][]byte
}

// composeView overlays the lineage recs (root first) into the view of the last one's image.
// A page of an ancestor survives only if every image below it in the lineage is large enough to
// hold it: a snapshot that shrank its memory and grew it again sees zeros there, as its guest did.
func composeView(recs []*record) *view {
	limits := cutLimits(len(recs), func(i int) int64 { return recs[i].size })
	size := recs[len(recs)-1].size
	v := &view{size: size, pages: make([][]byte, size/PageSize)}
	for j, r := range recs {
		for i, p := range r.pages {
			if p < limits[j] {
				v.pages[p] = r.data[i*PageSize : (i+1)*PageSize : (i+1)*PageSize]
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

func (v *view) page(p uint64) []byte {
	if v == nil || p >= uint64(len(v.pages)) || v.pages[p] == nil {
		return zeroPage
	}
	return v.pages[p]
}

// dataPages counts the view's pages that hold data (are not implicit zeros).
func (v *view) dataPages() int64 {
	var n int64
	for _, p := range v.pages {
		if p != nil {
			n++
		}
	}
	return n
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

// diffImage returns the pages of img that differ from parent (nil: the zero image), ascending,
// with their contents, and the number of data pages of img's composed image. It reads only the
// candidate pages: img.Dirty when given for a child, else every page.
func diffImage(img *Image, parent *view) (pages []uint64, data []byte, dataPages int64, err error) {
	n := uint64(img.Size / PageSize)
	var cand []uint64
	if parent != nil && img.Dirty != nil {
		cand = slices.Clone(img.Dirty)
		slices.Sort(cand)
		cand = slices.Compact(cand)
	}
	// runs yields the candidates as runs of consecutive pages [first, first+count).
	next := uint64(0)
	ci := 0
	runs := func() (first, count uint64, ok bool) {
		const maxRun = 256 // 1 MiB reads
		if cand == nil {
			if next >= n {
				return 0, 0, false
			}
			first, count = next, min(maxRun, n-next)
			next += count
			return first, count, true
		}
		if ci >= len(cand) {
			return 0, 0, false
		}
		first, count = cand[ci], 1
		ci++
		for ci < len(cand) && cand[ci] == first+count && count < maxRun {
			count++
			ci++
		}
		return first, count, true
	}
	direct, isBytes := img.Memory.(Bytes)
	var buf []byte
	for {
		first, count, ok := runs()
		if !ok {
			break
		}
		var chunk []byte
		if isBytes {
			chunk = direct[first*PageSize : (first+count)*PageSize]
		} else {
			if buf == nil {
				buf = make([]byte, 256*PageSize)
			}
			chunk = buf[:count*PageSize]
			if k, rerr := img.Memory.ReadAt(chunk, int64(first*PageSize)); k != len(chunk) {
				if rerr == nil || rerr == io.EOF {
					rerr = io.ErrUnexpectedEOF
				}
				return nil, nil, 0, fmt.Errorf("snapshotcache: read image.Memory pages %d..%d: %w", first, first+count-1, rerr)
			}
		}
		for i := uint64(0); i < count; i++ {
			pg := chunk[i*PageSize : (i+1)*PageSize]
			if !bytes.Equal(pg, parent.page(first+i)) {
				pages = append(pages, first+i)
				if !isBytes {
					data = append(data, pg...)
				}
			}
		}
	}
	if isBytes { // copy once, at the exact size, rather than growing data page by page
		data = make([]byte, len(pages)*PageSize)
		for i, p := range pages {
			copy(data[i*PageSize:], direct[p*PageSize:(p+1)*PageSize])
		}
	}
	// Data pages of the result: the parent's within size, plus new pages where it had none.
	dataPages = int64(len(pages))
	if parent != nil {
		for p := uint64(0); p < n && p < uint64(len(parent.pages)); p++ {
			if parent.pages[p] != nil {
				if _, found := slices.BinarySearch(pages, p); !found {
					dataPages++
				}
			}
		}
	}
	return pages, data, dataPages, nil
}
