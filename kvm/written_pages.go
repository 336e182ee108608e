package kvm

// Added for backend/unikernel: the pages a restored guest has written, so a snapshot store can
// diff a child snapshot against its parent by looking at those pages only.

import (
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// WrittenPages returns, ascending, the numbers of the guest pages whose host page is private to
// this guest: for a guest restored from a snapshot, every page the program or the VMM wrote
// since the restore (copy-on-write made it private; a Reset keeps it so); for a booted guest,
// every page it touched. Every other page still reads as the snapshot file. It reads
// /proc/self/pagemap (present or swapped, and not a file page).
func (g *Guest) WrittenPages() ([]uint64, error) {
	if g.closed || g.mem == nil || len(g.mem.b) == 0 {
		return nil, ErrClosed
	}
	// %p prints the mapping's address without needing package unsafe here.
	addr, err := strconv.ParseUint(strings.TrimPrefix(fmt.Sprintf("%p", &g.mem.b[0]), "0x"), 16, 64)
	if err != nil {
		return nil, fmt.Errorf("kvm: written pages: guest memory address: %w", err)
	}
	f, err := os.Open("/proc/self/pagemap")
	if err != nil {
		return nil, fmt.Errorf("kvm: written pages: %w", err)
	}
	defer f.Close()
	const (
		present = 1 << 63
		swapped = 1 << 62
		file    = 1 << 61
	)
	pages := uint64(len(g.mem.b)) / pageSize
	buf := make([]byte, 8*min(pages, 1<<15))
	var out []uint64
	for first := uint64(0); first < pages; {
		n := min(pages-first, uint64(len(buf)/8))
		if _, err := f.ReadAt(buf[:8*n], int64((addr/pageSize+first)*8)); err != nil {
			return nil, fmt.Errorf("kvm: written pages: read pagemap: %w", err)
		}
		for i := uint64(0); i < n; i++ {
			e := binary.LittleEndian.Uint64(buf[8*i:])
			if e&(present|swapped) != 0 && e&file == 0 {
				out = append(out, first+i)
			}
		}
		first += n
	}
	return out, nil
}
