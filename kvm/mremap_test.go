package kvm

import (
	"bytes"
	"testing"

	"golang.org/x/sys/unix"
)

func TestMremap(t *testing.T) {
	f := newFSKernel(t)
	a := f.call("mmap", 0, 8192, 3, mapPrivate|mapAnonymous, ^uint64(0), 0)
	b := f.call("mmap", 0, 4096, 3, mapPrivate|mapAnonymous, ^uint64(0), 0)
	if a < 0 || b != a+8192 {
		t.Fatalf("mmap: %#x %#x", a, b)
	}
	copy(f.mem.b[a:], "contents")
	// b sits right after a: growing a must move it.
	f.want("grow without MAYMOVE", f.call("mremap", uint64(a), 8192, 65536, 0, 0), neg(unix.ENOMEM))
	moved := f.call("mremap", uint64(a), 8192, 65536, mremapMaymove, 0)
	if moved < 0 || moved == a {
		t.Fatalf("mremap grow: %#x (%v)", moved, errnoName(moved))
	}
	if !bytes.HasPrefix(f.mem.b[moved:], []byte("contents")) || !bytes.Equal(f.mem.b[a:a+8], make([]byte, 8)) {
		t.Fatal("the contents did not move, or the old pages were not cleared")
	}
	f.want("old range is unmapped", f.call("mremap", uint64(a), 8192, 4096, 0, 0), neg(unix.EFAULT))
	// The moved mapping is last: it grows in place.
	f.want("grow in place", f.call("mremap", uint64(moved), 65536, 131072, 0, 0), moved)
	f.want("shrink", f.call("mremap", uint64(moved), 131072, 4096, 0, 0), moved)
	if f.k.mapped(uint64(moved)+4096, uint64(moved)+8192) {
		t.Fatal("the shrunk tail is still mapped")
	}
	f.want("MREMAP_FIXED", f.call("mremap", uint64(moved), 4096, 8192, mremapMaymove|mremapFixed, 0x600000), neg(unix.EINVAL))
	f.want("misaligned", f.call("mremap", uint64(moved)+1, 4096, 8192, mremapMaymove, 0), neg(unix.EINVAL))
	f.want("too large", f.call("mremap", uint64(moved), 4096, f.mem.size()+4096, mremapMaymove, 0), neg(unix.EINVAL))
	f.want("the heap is not a mapping", f.call("mremap", f.k.brkStart, 4096, 8192, mremapMaymove, 0), neg(unix.EFAULT))
}
