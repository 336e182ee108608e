package snapshotcache

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"slices"
)

// The persisted form of one snapshot (a "record"); see the package documentation for the layout.
const (
	recordMagic   = "snapcach"
	trailerMagic  = "SEND"
	recordVersion = 1
	fixedHeader   = 48

	// flagStateInImage: the composed image starts with the state blob, zero-padded to a page.
	flagStateInImage = 1 << 0
	knownFlags       = flagStateInImage
	trailerSize      = 8
	maxKeyBytes      = 4096
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// record is one snapshot as stored: its own pages only.
type record struct {
	key, parent Key
	size        int64    // guest memory bytes
	state       []byte   // opaque VMM state
	pages       []uint64 // page numbers, strictly ascending, each < size/PageSize
	data        []byte   // len(pages)*PageSize bytes; page i's contents at i*PageSize
	flags       uint32
}

// recordLimits bound what decodeRecord accepts, so a hostile file cannot make it allocate more
// than the file holds or more than the cache would ever store.
type recordLimits struct {
	maxSize, maxState int64
}

func roundPage(n int64) int64 { return (n + PageSize - 1) &^ (PageSize - 1) }

func (r *record) headerLen() int64 {
	return fixedHeader + int64(len(r.key.encode())+len(r.parent.encode())+len(r.state)) + 8*int64(len(r.pages))
}

// fileSize is the length of the record's file.
func (r *record) fileSize() int64 {
	return r.dataOffset() + int64(len(r.pages))*PageSize + trailerSize
}

// dataOffset is where the page contents start in the record's file.
func (r *record) dataOffset() int64 { return roundPage(r.headerLen()) }

// pageSource yields page contents for writeRecord.
type pageSource interface {
	// contents returns the contents of pages (a run of r.pages, at most 256 of them), concatenated,
	// valid until the next call.
	contents(pages []uint64, first int) ([]byte, error)
}

// memorySource serves r.data, for records whose pages are in memory.
type memorySource struct{ data []byte }

func (m memorySource) contents(pages []uint64, first int) ([]byte, error) {
	return m.data[first*PageSize : (first+len(pages))*PageSize], nil
}

// writeRecord writes r in the record format, checksummed, taking the page contents from src (nil:
// r.data), and returns the bytes written.
func writeRecord(w io.Writer, r *record, src pageSource) (int64, error) {
	if src == nil {
		if int64(len(r.data)) != int64(len(r.pages))*PageSize {
			return 0, fmt.Errorf("snapshotcache: record %s: %d data bytes for %d pages: %w", r.key, len(r.data), len(r.pages), ErrInvalid)
		}
		src = memorySource{r.data}
	}
	key, parent := r.key.encode(), r.parent.encode()
	crc := crc32.New(castagnoli)
	out := io.MultiWriter(w, crc)
	bw := bufio.NewWriterSize(out, 1<<16)
	var fixed [fixedHeader]byte
	copy(fixed[:8], recordMagic)
	le := binary.LittleEndian
	le.PutUint32(fixed[8:], recordVersion)
	le.PutUint32(fixed[12:], uint32(r.headerLen()))
	le.PutUint64(fixed[16:], uint64(r.size))
	le.PutUint32(fixed[24:], uint32(len(r.pages)))
	le.PutUint32(fixed[28:], uint32(len(r.state)))
	le.PutUint32(fixed[32:], uint32(len(key)))
	le.PutUint32(fixed[36:], uint32(len(parent)))
	le.PutUint32(fixed[40:], r.flags)
	bw.Write(fixed[:])
	bw.Write(key)
	bw.Write(parent)
	bw.Write(r.state)
	var b8 [8]byte
	for _, p := range r.pages {
		le.PutUint64(b8[:], p)
		bw.Write(b8[:])
	}
	bw.Write(make([]byte, r.dataOffset()-r.headerLen()))
	if err := bw.Flush(); err != nil {
		return 0, fmt.Errorf("snapshotcache: write record %s: %w", r.key, err)
	}
	// The page contents go straight through in runs: they can be tens of MiB.
	for i := 0; i < len(r.pages); i += 256 {
		run := r.pages[i:min(i+256, len(r.pages))]
		b, err := src.contents(run, i)
		if err != nil {
			return 0, fmt.Errorf("snapshotcache: write record %s: %w", r.key, err)
		}
		if _, err := out.Write(b); err != nil {
			return 0, fmt.Errorf("snapshotcache: write record %s: %w", r.key, err)
		}
	}
	var trailer [trailerSize]byte
	le.PutUint32(trailer[:4], crc.Sum32())
	copy(trailer[4:], trailerMagic)
	if _, err := w.Write(trailer[:]); err != nil {
		return 0, fmt.Errorf("snapshotcache: write record %s: %w", r.key, err)
	}
	return r.fileSize(), nil
}

func corrupt(format string, args ...any) error {
	return fmt.Errorf("snapshotcache: record: "+format+": %w", append(args, ErrCorrupt)...)
}

// readRecord reads and verifies a record of fileSize bytes. Any inconsistency, including a
// checksum mismatch anywhere in the file, is an error wrapping ErrCorrupt; nothing of a bad
// record is returned. With withData false the page contents are verified but not kept.
func readRecord(src io.ReaderAt, fileSize int64, lim recordLimits, withData bool) (*record, error) {
	if fileSize < PageSize+trailerSize {
		return nil, corrupt("file is %d bytes, shorter than a header", fileSize)
	}
	le := binary.LittleEndian
	var fixed [fixedHeader]byte
	if _, err := src.ReadAt(fixed[:], 0); err != nil {
		return nil, corrupt("read header: %v", err)
	}
	if string(fixed[:8]) != recordMagic {
		return nil, corrupt("bad magic %q", fixed[:8])
	}
	if v := le.Uint32(fixed[8:]); v != recordVersion {
		return nil, corrupt("format version %d, want %d", v, recordVersion)
	}
	hlen := int64(le.Uint32(fixed[12:]))
	size := int64(le.Uint64(fixed[16:]))
	npages := int64(le.Uint32(fixed[24:]))
	slen := int64(le.Uint32(fixed[28:]))
	klen := int64(le.Uint32(fixed[32:]))
	plen := int64(le.Uint32(fixed[36:]))
	flags := le.Uint32(fixed[40:])
	switch {
	case flags&^knownFlags != 0 || le.Uint32(fixed[44:]) != 0:
		return nil, corrupt("unknown flags %#x or reserved word %#x", flags, le.Uint32(fixed[44:]))
	case size <= 0 || size%PageSize != 0 || size > lim.maxSize:
		return nil, corrupt("memory size %d", size)
	case npages > size/PageSize:
		return nil, corrupt("%d pages in a %d-byte image", npages, size)
	case slen > lim.maxState:
		return nil, corrupt("state of %d bytes", slen)
	case klen == 0 || klen > maxKeyBytes || plen > maxKeyBytes:
		return nil, corrupt("key lengths %d, %d", klen, plen)
	case hlen != fixedHeader+klen+plen+slen+8*npages:
		return nil, corrupt("header length %d does not match its fields", hlen)
	}
	dataOff := roundPage(hlen)
	if want := dataOff + npages*PageSize + trailerSize; fileSize != want {
		return nil, corrupt("file is %d bytes, its header says %d", fileSize, want)
	}
	crc := crc32.New(castagnoli)
	head := make([]byte, dataOff)
	if _, err := src.ReadAt(head, 0); err != nil {
		return nil, corrupt("read header: %v", err)
	}
	crc.Write(head)
	// Verify the page data in bounded chunks, keeping it only when asked.
	var data []byte
	if withData {
		data = make([]byte, npages*PageSize)
		if _, err := src.ReadAt(data, dataOff); err != nil {
			return nil, corrupt("read pages: %v", err)
		}
		crc.Write(data)
	} else {
		buf := make([]byte, min(npages*PageSize, 1<<20))
		for off := int64(0); off < npages*PageSize; off += int64(len(buf)) {
			chunk := buf[:min(int64(len(buf)), npages*PageSize-off)]
			if _, err := src.ReadAt(chunk, dataOff+off); err != nil {
				return nil, corrupt("read pages: %v", err)
			}
			crc.Write(chunk)
		}
	}
	var trailer [trailerSize]byte
	if _, err := src.ReadAt(trailer[:], fileSize-trailerSize); err != nil && err != io.EOF {
		return nil, corrupt("read trailer: %v", err)
	}
	if string(trailer[4:]) != trailerMagic {
		return nil, corrupt("bad trailer magic %q", trailer[4:])
	}
	if got, want := crc.Sum32(), le.Uint32(trailer[:4]); got != want {
		return nil, corrupt("checksum %08x, stored %08x", got, want)
	}
	// The checksum matched, but the writer may still have been someone else's: check the fields.
	p := head[fixedHeader:hlen]
	key, err := decodeKey(p[:klen])
	if err != nil {
		return nil, err
	}
	parent, err := decodeKey(p[klen : klen+plen])
	if err != nil {
		return nil, err
	}
	if parent == key {
		return nil, corrupt("%s is its own parent", key)
	}
	r := &record{key: key, parent: parent, size: size, data: data, flags: flags}
	r.state = slices.Clone(p[klen+plen : klen+plen+slen])
	pp := p[klen+plen+slen:]
	r.pages = make([]uint64, npages)
	for i := range r.pages {
		r.pages[i] = le.Uint64(pp[8*i:])
		if r.pages[i] >= uint64(size/PageSize) || (i > 0 && r.pages[i] <= r.pages[i-1]) {
			return nil, corrupt("page list: entry %d (%d) out of order or past the image", i, r.pages[i])
		}
	}
	if pad := head[hlen:]; slices.ContainsFunc(pad, func(b byte) bool { return b != 0 }) {
		return nil, corrupt("non-zero header padding")
	}
	return r, nil
}
