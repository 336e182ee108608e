package kvm

// Pooled VMs learn their snapshot's working set. Under shadow paging (kvm-pvm) the first touch
// of every guest page in a fresh VM is a fault handled by KVM, so a fresh restore of a Python
// function pays several hundred of them during its first activation. A Pool therefore learns,
// from the first guest restored from it that ran (at that guest's first Reset, or its Close),
// which pages the guest touched and which it wrote — the pages the host mapping holds, from
// /proc/self/pagemap — and every VM it prepares afterwards runs a few bytes of code (toucherCode)
// in the guest that reads each of those pages and writes back the byte it read to each written
// one. The VM's shadow page tables then already map the working set when the restored program
// runs; memory is unchanged (the same bytes are written back), and the pages written this way
// are the ones the activation would have copied anyway.
//
// The code runs from the output-ring page (user-writable and, as all guest memory, executable),
// whose bytes are put back afterwards, with the page runs after it; it leaves by a store to the
// unbacked exit page, which is what the system-call stub does too.

import (
	"encoding/binary"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// toucherCode is (Intel syntax):
//
//	start: test rcx, rcx; jz done
//	run:   mov eax, [rsi]; mov edx, [rsi+4]; mov edi, edx; and edx, 0x7fffffff; shr edi, 31
//	       shl rax, 12; test edx, edx; jz next
//	page:  mov r8b, [rax]; test edi, edi; jz skip; mov [rax], r8b
//	skip:  add rax, 4096; dec edx; jnz page
//	next:  add rsi, 8; dec rcx; jnz run
//	done:  mov [0xFFFFF000], eax
//
// with rsi the runs {u32 first page, u32 count | 1<<31 for "write back"} and rcx their number.
var toucherCode = []byte{
	0x48, 0x85, 0xc9, 0x74, 0x35, 0x8b, 0x06, 0x8b, 0x56, 0x04, 0x89, 0xd7,
	0x81, 0xe2, 0xff, 0xff, 0xff, 0x7f, 0xc1, 0xef, 0x1f, 0x48, 0xc1, 0xe0,
	0x0c, 0x85, 0xd2, 0x74, 0x14, 0x44, 0x8a, 0x00, 0x85, 0xff, 0x74, 0x03,
	0x44, 0x88, 0x00, 0x48, 0x05, 0x00, 0x10, 0x00, 0x00, 0xff, 0xca, 0x75,
	0xec, 0x48, 0x83, 0xc6, 0x08, 0x48, 0xff, 0xc9, 0x75, 0xcb, 0xa3, 0x00,
	0xf0, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00,
}

const (
	toucherRuns    = 128 // where the runs start in the ring page
	maxToucherRuns = (pageSize - toucherRuns) / 8
	runWrite       = 1 << 31
)

// touchRuns are a working set as the toucher reads it: page runs, written runs flagged.
type touchRuns []byte

// workingSet reads which pages of guest memory [userLo, mapped) the host mapping holds (present)
// and which of those are private (written: anonymous, no longer the snapshot file's page), as
// runs for the toucher; at most maxToucherRuns of them, the rest dropped.
func (g *Guest) workingSet() (touchRuns, error) {
	addr, err := strconv.ParseUint(strings.TrimPrefix(fmt.Sprintf("%p", &g.mem.b[0]), "0x"), 16, 64)
	if err != nil {
		return nil, err
	}
	f, err := os.Open("/proc/self/pagemap")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	first, pages := uint64(userLo/pageSize), g.mapped/pageSize
	buf := make([]byte, 8*(pages-first))
	if _, err := f.ReadAt(buf, int64((addr/pageSize+first)*8)); err != nil {
		return nil, fmt.Errorf("read pagemap: %w", err)
	}
	const present, file = 1 << 63, 1 << 61
	var runs touchRuns
	var start, n, kind uint64 // kind: 0 none, 1 read, 2 write
	flush := func() {
		if n > 0 && len(runs)/8 < maxToucherRuns {
			var r [8]byte
			binary.LittleEndian.PutUint32(r[:], uint32(start))
			c := uint32(n)
			if kind == 2 {
				c |= runWrite
			}
			binary.LittleEndian.PutUint32(r[4:], c)
			runs = append(runs, r[:]...)
		}
		n = 0
	}
	for i := uint64(0); i < pages-first; i++ {
		e := binary.LittleEndian.Uint64(buf[8*i:])
		k := uint64(0)
		if e&present != 0 {
			k = 1
			if e&file == 0 {
				k = 2
			}
		}
		if k != kind || k == 0 {
			flush()
			kind, start = k, first+i
		}
		if k != 0 {
			n++
		}
	}
	flush()
	return runs, nil
}

// touch runs the toucher over runs in a VM prepared for its snapshot (memory slot installed, vCPU
// state loaded) and puts back what it changed: the ring page and the general registers, which a
// restore sets anyway.
func (sh *shell) touch(runs touchRuns) error {
	if len(runs) == 0 {
		return nil
	}
	ring := sh.slot[ringAddr : ringAddr+pageSize]
	saved := append([]byte(nil), ring...)
	defer copy(ring, saved)
	copy(ring, toucherCode)
	copy(ring[toucherRuns:], runs)
	v := sh.cpu
	v.run.Regs = Regs{RIP: ringAddr, RSI: ringAddr + toucherRuns, RCX: uint64(len(runs) / 8), RFLAGS: 2}
	v.run.DirtyRegs = syncRegs
	for {
		v.run.ValidRegs = syncRegs
		err := runOnce(v.fd)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("%w: KVM_RUN (prefault): %v", ErrVMM, err)
		}
		switch v.run.ExitReason {
		case exitIntr:
			continue
		case exitMMIO:
			if m := v.run.mmio(); m.PhysAddr == mmioAddr {
				return nil
			}
		}
		return fmt.Errorf("%w: prefault stopped with exit %d at rip %#x", ErrVMM, v.run.ExitReason, v.run.Regs.RIP)
	}
}

// learnWorkingSet gives the pool a guest's working set, once per pool, at the first Reset or
// Close of a guest restored from it that ran since its restore.
func (g *Guest) learnWorkingSet() {
	p := g.pool
	if p == nil || g.snap != p.like || g.exits == 0 || g.mem == nil || g.closed {
		return
	}
	p.touchMu.Lock()
	learned := p.touch != nil
	p.touchMu.Unlock()
	if learned {
		return
	}
	runs, err := g.workingSet()
	if err != nil || len(runs) == 0 {
		return // the pool simply does not prefault
	}
	p.touchMu.Lock()
	if p.touch == nil {
		p.touch = runs
	}
	p.touchMu.Unlock()
}

// prefault runs the pool's learned working set, if any, in a shell it just prepared. A shell the
// toucher failed in is closed: the caller makes another.
func (p *Pool) prefault(sh *shell) error {
	p.touchMu.Lock()
	runs := p.touch
	p.touchMu.Unlock()
	if err := sh.touch(runs); err != nil {
		sh.close()
		p.touchMu.Lock()
		p.touch = touchRuns{} // learned, but never again: prepare VMs without it
		p.touchMu.Unlock()
		return err
	}
	return nil
}

// pages lists the pages of runs, ascending, read-only and written apart (for tests).
func (r touchRuns) pages() (read, write []uint64) {
	for i := 0; i+8 <= len(r); i += 8 {
		first := uint64(binary.LittleEndian.Uint32(r[i:]))
		c := binary.LittleEndian.Uint32(r[i+4:])
		for j := uint64(0); j < uint64(c&^runWrite); j++ {
			if c&runWrite != 0 {
				write = append(write, first+j)
			} else {
				read = append(read, first+j)
			}
		}
	}
	sort.Slice(read, func(i, j int) bool { return read[i] < read[j] })
	sort.Slice(write, func(i, j int) bool { return write[i] < write[j] })
	return read, write
}

// learned returns the pool's working set (nil until learned).
func (p *Pool) learned() touchRuns {
	p.touchMu.Lock()
	defer p.touchMu.Unlock()
	return p.touch
}
