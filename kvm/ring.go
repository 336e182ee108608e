package kvm

import "encoding/binary"

// The output ring: on kvm-pvm, where every exit costs tens of microseconds, the stub appends
// write(2)s to the guest's output streams to a ring page and returns without leaving the guest;
// the VMM drains the ring at the next exit. The page is user-writable (the stub runs with the
// program's privileges), so everything in it is hostile input: lengths are clamped, descriptors
// are looked up in the VMM's own table, and only the VMM's output sinks receive the bytes. Layout
// (shared with vdso/stub_pvm.S):
//
//	+0  u64 limit   end of guest memory; the stub copies only from [userLo, limit)
//	+8  u64 tail    bytes of records in the data area
//	+16 u64 fdmask  bit fd set: the stub may take writes to fd
//	+24 records     {u32 fd, u32 len, len bytes, padding to 8}
const (
	ringAddr    = 0xF000
	ringHeader  = 24
	ringCap     = pageSize - ringHeader
	ringNoMask  = ^uint64(0) // "not yet published"
	writeSysNum = 1
)

// publishRing writes the limit and the descriptor mask when they changed.
func (k *kernel) publishRing() {
	var mask uint64
	for fd, kind := range k.fds.Files {
		if fd >= 64 {
			break
		}
		if kind == kindStdout || kind == kindStderr || kind == kindResult {
			mask |= 1 << fd
		}
	}
	if mask == k.ringMask {
		return
	}
	hdr := k.mem.sys(ringAddr, ringHeader)
	binary.LittleEndian.PutUint64(hdr[0:], k.mem.size())
	binary.LittleEndian.PutUint64(hdr[16:], mask)
	k.ringMask = mask
}

// drainRing delivers the records in the ring to the output sinks and empties it. It must only be
// called while the guest is stopped outside the stub's fast path.
func (k *kernel) drainRing() {
	le := binary.LittleEndian
	page := k.mem.b[ringAddr : ringAddr+pageSize]
	tail := le.Uint64(page[8:])
	if tail == 0 {
		return
	}
	tail = min(tail, ringCap)
	data := page[ringHeader : ringHeader+tail]
	for off := uint64(0); off+8 <= tail; {
		fd, n := uint64(le.Uint32(data[off:])), uint64(le.Uint32(data[off+4:]))
		if n > tail-off-8 {
			break
		}
		k.counts[writeSysNum]++
		if kind, ok := k.fds.get(fd); ok {
			k.out.write(kind, data[off+8:off+8+n])
		}
		off = (off + 8 + n + 7) &^ 7
	}
	le.PutUint64(k.mem.sys(ringAddr+8, 8), 0)
}
