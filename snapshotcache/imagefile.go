package snapshotcache

import (
	"fmt"
	"io"
	"os"
)

// ImageFromFile describes a VMM snapshot file laid out as a header of memOffset bytes followed by
// guest memory up to the end of the file (package kvm writes such files) as an Image with
// StateInImage: State is the header, Memory reads the file in place. The composed image of the
// stored snapshot is then byte for byte a snapshot file of that VMM. Set Parent and Dirty on the
// result as needed; f must stay open until the Image is stored.
func ImageFromFile(f *os.File, memOffset int64) (*Image, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("snapshotcache: ImageFromFile: %w", err)
	}
	size := st.Size() - memOffset
	switch {
	case memOffset < 0 || memOffset%PageSize != 0:
		return nil, fmt.Errorf("snapshotcache: ImageFromFile %s: memOffset %d is not a multiple of %d: %w", f.Name(), memOffset, PageSize, ErrInvalid)
	case size <= 0 || size%PageSize != 0:
		return nil, fmt.Errorf("snapshotcache: ImageFromFile %s: %d bytes after the header, not a positive multiple of %d: %w", f.Name(), size, PageSize, ErrInvalid)
	}
	state := make([]byte, memOffset)
	if _, err := f.ReadAt(state, 0); err != nil {
		return nil, fmt.Errorf("snapshotcache: ImageFromFile %s: read header: %w", f.Name(), err)
	}
	return &Image{State: state, Memory: io.NewSectionReader(f, memOffset, size), Size: size, StateInImage: true}, nil
}
