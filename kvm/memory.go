package kvm

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"unsafe"

	"golang.org/x/sys/unix"
)

const pageSize = 4096

// memory is a guest's physical memory: one host mapping that backs guest-physical [0, len(b)).
// The guest identity-maps it, so guest-virtual and guest-physical addresses are the same number.
//
// Every access the VMM makes on the guest's behalf goes through user, which checks the range
// against [userLo, len(b)) before any host memory is touched: below userLo sit the page tables,
// GDT, TSS, syscall stub and clock page, which the program must not be able to rewrite through a
// system call. Go's slice bounds are the second line of defence: no address arithmetic here
// reaches outside b.
type memory struct {
	b      []byte
	userLo uint64
	// file reports that b is a MAP_PRIVATE mapping of a snapshot file: dropping pages with
	// MADV_DONTNEED would bring back the snapshot's bytes rather than zeros.
	file bool
	// vmmDirty has one bit per page the VMM wrote since the last reset: KVM's dirty log records
	// only the guest's own writes.
	vmmDirty []uint64
}

// newAnonMemory maps size bytes of zeroed anonymous memory; pages cost nothing until touched.
func newAnonMemory(size uint64) (*memory, error) {
	b, err := unix.Mmap(-1, 0, int(size), unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		return nil, fmt.Errorf("kvm: map %d MiB of guest memory: %w", size>>20, err)
	}
	return &memory{b: b, userLo: userLo, vmmDirty: make([]uint64, (size/pageSize+63)/64)}, nil
}

// mapFileMemory maps size bytes of fd at off copy-on-write: every guest mapping the same snapshot
// shares each page until one of them writes it.
func mapFileMemory(fd int, off int64, size uint64) (*memory, error) {
	b, err := unix.Mmap(fd, off, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_NORESERVE)
	if err != nil {
		return nil, fmt.Errorf("kvm: map snapshot memory (%d MiB at offset %d): %w", size>>20, off, err)
	}
	return &memory{b: b, userLo: userLo, file: true, vmmDirty: make([]uint64, (size/pageSize+63)/64)}, nil
}

// mapFileMemoryAt maps size bytes of fd at off copy-on-write over the existing host range b (a
// pool shell's reserved memory, already installed as the VM's memory slot): replacing the pages
// under a slot costs one mmap, where installing a slot costs an SRCU grace period in KVM.
func mapFileMemoryAt(b []byte, fd int, off int64) (*memory, error) {
	_, err := unix.MmapPtr(fd, off, unsafe.Pointer(&b[0]), uintptr(len(b)), unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_FIXED|unix.MAP_NORESERVE)
	if err != nil {
		return nil, fmt.Errorf("kvm: map snapshot memory over a pooled slot (%d MiB at offset %d): %w", len(b)>>20, off, err)
	}
	return &memory{b: b, userLo: userLo, file: true, vmmDirty: make([]uint64, (len(b)/pageSize+63)/64)}, nil
}

// mapSharedReadOnly maps a snapshot's memory image read-only and shared: the clean source that
// resets copy dirty pages back from.
func mapSharedReadOnly(fd int, off int64, size uint64) ([]byte, error) {
	b, err := unix.Mmap(fd, off, int(size), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("kvm: map snapshot image read-only: %w", err)
	}
	return b, nil
}

func (m *memory) size() uint64 { return uint64(len(m.b)) }

// close unmaps the memory; safe to call twice.
func (m *memory) close() error {
	if m == nil || m.b == nil {
		return nil
	}
	err := unix.Munmap(m.b)
	m.b = nil
	return err
}

// inRange reports whether [addr, addr+n) lies inside [lo, hi) without overflowing.
func inRange(addr, n, lo, hi uint64) bool {
	end, carry := bits.Add64(addr, n, 0)
	return carry == 0 && addr >= lo && end <= hi
}

// user returns the host bytes behind the guest range [addr, addr+n), or EFAULT when any of it is
// outside the memory the program may name. write marks the pages dirty for reset.
func (m *memory) user(addr, n uint64, write bool) ([]byte, error) {
	if !inRange(addr, n, m.userLo, m.size()) {
		return nil, unix.EFAULT
	}
	if write && n > 0 {
		m.markDirty(addr, n)
	}
	return m.b[addr : addr+n : addr+n], nil
}

// sys returns the host bytes of a VMM-owned range (page tables, stub, clock page); it panics on
// a range outside memory because callers pass constants.
func (m *memory) sys(addr, n uint64) []byte {
	m.markDirty(addr, n)
	return m.b[addr : addr+n : addr+n]
}

func (m *memory) markDirty(addr, n uint64) {
	if n == 0 {
		return
	}
	for p := addr / pageSize; p <= (addr+n-1)/pageSize; p++ {
		m.vmmDirty[p/64] |= 1 << (p % 64)
	}
}

// readUser copies guest bytes at addr into p.
func (m *memory) readUser(addr uint64, p []byte) error {
	b, err := m.user(addr, uint64(len(p)), false)
	if err != nil {
		return err
	}
	copy(p, b)
	return nil
}

// writeUser copies p into guest memory at addr.
func (m *memory) writeUser(addr uint64, p []byte) error {
	b, err := m.user(addr, uint64(len(p)), true)
	if err != nil {
		return err
	}
	copy(b, p)
	return nil
}

func (m *memory) u64(addr uint64) (uint64, error) {
	b, err := m.user(addr, 8, false)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b), nil
}

func (m *memory) putU64(addr, v uint64) error {
	b, err := m.user(addr, 8, true)
	if err != nil {
		return err
	}
	binary.LittleEndian.PutUint64(b, v)
	return nil
}

// cString reads a NUL-terminated string of at most max bytes at addr.
func (m *memory) cString(addr uint64, max int) (string, error) {
	for n := 0; n < max; n++ {
		b, err := m.user(addr+uint64(n), 1, false)
		if err != nil {
			return "", err
		}
		if b[0] == 0 {
			s, _ := m.user(addr, uint64(n), false)
			return string(s), nil
		}
	}
	return "", unix.ENAMETOOLONG
}

// zero makes a user range read as zeros again (freed by munmap, brk or MADV_DONTNEED). For
// anonymous memory the host pages are given back; for snapshot-backed memory that would restore
// the snapshot's bytes, so they are cleared instead.
func (m *memory) zero(addr, n uint64) error {
	b, err := m.user(addr, n, true)
	if err != nil {
		return err
	}
	if !m.file && addr%pageSize == 0 && n%pageSize == 0 && n > 0 {
		if err := unix.Madvise(b, unix.MADV_DONTNEED); err == nil {
			return nil
		}
	}
	clear(b)
	return nil
}

// resident reports, one byte per page, which pages of the mapping are in host memory; pages that
// are not were never touched (anonymous memory) and read as zeros.
func (m *memory) resident() ([]byte, error) {
	vec := make([]byte, (len(m.b)+pageSize-1)/pageSize)
	_, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m.b[0])), uintptr(len(m.b)), uintptr(unsafe.Pointer(&vec[0])))
	if errno != 0 {
		return nil, errno
	}
	return vec, nil
}
