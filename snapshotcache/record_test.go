package snapshotcache

import (
	"bytes"
	"errors"
	"slices"
	"testing"
)

var testLimits = recordLimits{maxSize: 1 << 30, maxState: 1 << 20}

func sampleRecord() *record {
	r := &record{
		key:    FunctionKey("guest/hello", "1-abc", "sha256:1"),
		parent: RuntimeKey("python:3.11", "b1"),
		size:   16 * PageSize,
		state:  []byte("rip=0x401000 rsp=0x7ffff000"),
		pages:  []uint64{0, 3, 15},
		flags:  flagStateInImage,
	}
	r.data = make([]byte, 3*PageSize)
	for i := range r.data {
		r.data[i] = byte(i*7 + 1)
	}
	return r
}

func encodeRecord(t testing.TB, r *record) []byte {
	var buf bytes.Buffer
	n, err := writeRecord(&buf, r, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(buf.Len()) || n != r.fileSize() {
		t.Fatalf("writeRecord reported %d bytes, wrote %d, fileSize %d", n, buf.Len(), r.fileSize())
	}
	return buf.Bytes()
}

func TestRecordRoundTrip(t *testing.T) {
	r := sampleRecord()
	b := encodeRecord(t, r)
	if len(b) != PageSize+3*PageSize+trailerSize {
		t.Fatalf("record is %d bytes: want a page of header, 3 pages, an 8-byte trailer", len(b))
	}
	for _, withData := range []bool{true, false} {
		got, err := readRecord(bytes.NewReader(b), int64(len(b)), testLimits, withData)
		if err != nil {
			t.Fatal(err)
		}
		if got.key != r.key || got.parent != r.parent || got.size != r.size || !bytes.Equal(got.state, r.state) || got.flags != r.flags ||
			!slices.Equal(got.pages, r.pages) {
			t.Fatalf("decoded %+v, want %+v", got, r)
		}
		if withData != (got.data != nil) || (withData && !bytes.Equal(got.data, r.data)) {
			t.Fatalf("withData=%v: data of %d bytes", withData, len(got.data))
		}
	}
	// The page data starts on a page boundary.
	if !bytes.Equal(b[PageSize:2*PageSize], r.data[:PageSize]) {
		t.Fatal("first page not at offset 4096")
	}
}

// Flipping any single byte, in any region of the file, is detected and nothing is returned.
func TestRecordEveryByteFlipDetected(t *testing.T) {
	b := encodeRecord(t, sampleRecord())
	regions := map[string]int{"magic": 2, "version": 8, "header length": 12, "size": 17, "page count": 24,
		"state length": 28, "key length": 32, "parent length": 36, "flags": 41, "reserved": 46, "key": 50,
		"parent": 80, "state": 100,
		"page list": 130, "padding": 3000, "data": PageSize + 5000, "checksum": len(b) - 7, "trailer": len(b) - 2}
	for name, off := range regions {
		c := slices.Clone(b)
		c[off] ^= 0x10
		r, err := readRecord(bytes.NewReader(c), int64(len(c)), testLimits, true)
		if !errors.Is(err, ErrCorrupt) || r != nil {
			t.Errorf("flip in %s (offset %d): record %v, err %v; want ErrCorrupt", name, off, r != nil, err)
		}
	}
	for off := range b { // exhaustive over the header page and the trailer, sampled in the data
		if off >= PageSize && off < len(b)-trailerSize && off%97 != 0 {
			continue
		}
		c := slices.Clone(b)
		c[off] ^= 0x80
		if _, err := readRecord(bytes.NewReader(c), int64(len(c)), testLimits, false); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("flip at offset %d not detected: %v", off, err)
		}
	}
	if _, err := readRecord(bytes.NewReader(b[:len(b)-1]), int64(len(b)-1), testLimits, true); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("truncated record: %v", err)
	}
}

func TestRecordLimits(t *testing.T) {
	r := sampleRecord()
	b := encodeRecord(t, r)
	if _, err := readRecord(bytes.NewReader(b), int64(len(b)), recordLimits{maxSize: PageSize, maxState: 1 << 20}, true); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("image over maxSize: %v", err)
	}
	if _, err := readRecord(bytes.NewReader(b), int64(len(b)), recordLimits{maxSize: 1 << 30, maxState: 4}, true); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("state over maxState: %v", err)
	}
}

func FuzzReadRecord(f *testing.F) {
	f.Add(encodeRecord(f, sampleRecord()))
	root := sampleRecord()
	root.parent = Key{}
	root.state = nil
	f.Add(encodeRecord(f, root))
	f.Add([]byte("snapcach"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := readRecord(bytes.NewReader(b), int64(len(b)), testLimits, true)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error not wrapping ErrCorrupt: %v", err)
			}
			return
		}
		// Anything accepted re-encodes to the same bytes.
		var buf bytes.Buffer
		if _, err := writeRecord(&buf, r, nil); err != nil || !bytes.Equal(buf.Bytes(), b) {
			t.Fatalf("accepted record does not re-encode identically: %v", err)
		}
	})
}

func FuzzDecodeTouched(f *testing.F) {
	f.Add([]byte("snaptch1\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00TEND"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ps, err := decodeTouched(b, 1<<20)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error not wrapping ErrCorrupt: %v", err)
			}
			return
		}
		if !slices.IsSorted(ps) {
			t.Fatalf("accepted unsorted pages %v", ps)
		}
	})
}

func TestKeyEncoding(t *testing.T) {
	for _, k := range []Key{{}, RuntimeKey("python:3.11", "b1"), FunctionKey("ns/pkg/a", "2-x", "sha256:ff"),
		FunctionKey("ünïcode", "r", "d")} {
		got, err := decodeKey(k.encode())
		if err != nil || got != k {
			t.Fatalf("decode(encode(%s)) = %s, %v", k, got, err)
		}
	}
	// Fields cannot run into each other: ("ab","c") and ("a","bc") differ.
	if RuntimeKey("ab", "c").ID() == RuntimeKey("a", "bc").ID() {
		t.Fatal("key encoding is ambiguous")
	}
	if len(RuntimeKey("a", "b").ID()) != 32 {
		t.Fatal("ID is not 32 hex digits")
	}
	for _, b := range [][]byte{{1}, {3, 1, 'a', 1, 'b', 0}, {1, 1, 'a', 1, 'b', 1, 'c'}, {2, 9, 'a'}, {1, 1, 'a', 1, 'b', 0, 0}} {
		if _, err := decodeKey(b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("decodeKey(%q): %v, want ErrCorrupt", b, err)
		}
	}
}
