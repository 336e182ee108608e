package kvm

import (
	"sort"

	"golang.org/x/sys/unix"
)

// region is one user mapping [start, end), page aligned.
type region struct{ Start, End uint64 }

// regionList is a sorted list of disjoint regions.
type regionList []region

// overlaps reports whether [s, e) intersects any region.
func (l regionList) overlaps(s, e uint64) bool {
	i := sort.Search(len(l), func(i int) bool { return l[i].End > s })
	return i < len(l) && l[i].Start < e
}

// add inserts [s, e), which must not overlap, merging with neighbours.
func (l *regionList) add(s, e uint64) {
	r := *l
	i := sort.Search(len(r), func(i int) bool { return r[i].Start >= s })
	r = append(r, region{})
	copy(r[i+1:], r[i:])
	r[i] = region{s, e}
	// merge touching neighbours
	out := r[:0]
	for _, x := range r {
		if n := len(out); n > 0 && out[n-1].End == x.Start {
			out[n-1].End = x.End
			continue
		}
		out = append(out, x)
	}
	*l = out
}

// remove cuts [s, e) out of every region and returns the pieces that were mapped.
func (l *regionList) remove(s, e uint64) []region {
	var out regionList
	var cut []region
	for _, x := range *l {
		if x.End <= s || x.Start >= e {
			out = append(out, x)
			continue
		}
		if x.Start < s {
			out = append(out, region{x.Start, s})
		}
		if x.End > e {
			out = append(out, region{e, x.End})
		}
		cut = append(cut, region{max(x.Start, s), min(x.End, e)})
	}
	*l = out
	return cut
}

// lowestGap finds the lowest gap of n bytes in [lo, hi) not overlapping l: first fit keeps the
// address space, and so the memory slots, compact.
func (l regionList) lowestGap(lo, hi, n uint64) (uint64, bool) {
	start := lo
	for _, r := range l {
		if r.End <= start {
			continue
		}
		if r.Start >= start && r.Start-start >= n {
			break
		}
		start = max(start, r.End)
	}
	if start < hi && hi-start >= n {
		return start, true
	}
	return 0, false
}

func pageUp(v uint64) uint64 { return (v + pageSize - 1) &^ (pageSize - 1) }

// brkGap is the room mmap leaves above the heap so brk can grow (glibc's malloc falls back to
// mmap when it cannot): 1/32 of memory, at most 8 MiB.
func (k *kernel) brkGap() uint64 { return min(8<<20, k.mem.size()/32) }

// ensure makes [0, end) usable by the guest.
func (k *kernel) ensure(end uint64) bool {
	return k.grow == nil || k.grow(end) == nil
}

// Linux mmap flags and prot bits.
const (
	mapShared    = 0x01
	mapPrivate   = 0x02
	mapFixed     = 0x10
	mapAnonymous = 0x20
	mapFixedNoRe = 0x100000
)

func sysBrk(k *kernel, a *sysArgs) uint64 {
	want := a[0]
	if want <= k.brkStart || want > k.mem.size() {
		return k.brk
	}
	oldEnd, newEnd := pageUp(k.brk), pageUp(want)
	switch {
	case newEnd > oldEnd:
		if newEnd > k.mem.size() || k.maps.overlaps(oldEnd, newEnd) || !k.ensure(newEnd) {
			k.memExhausted = true
			return k.brk
		}
	case newEnd < oldEnd:
		if err := k.mem.zero(newEnd, oldEnd-newEnd); err != nil {
			return k.brk
		}
	}
	k.brk = want
	return k.brk
}

func sysMmap(k *kernel, a *sysArgs) uint64 {
	addr, length, flags := a[0], a[1], a[3]
	if length == 0 || length > k.mem.size() || addr%pageSize != 0 {
		return errno(unix.EINVAL)
	}
	if flags&mapAnonymous == 0 {
		// File mappings arrive with the read-only file tree.
		return errno(unix.ENODEV)
	}
	if flags&(mapShared|mapPrivate) == 0 {
		return errno(unix.EINVAL)
	}
	n := pageUp(length)
	lo := max(pageUp(k.brk)+k.brkGap(), userLo)
	if flags&(mapFixed|mapFixedNoRe) != 0 {
		if !inRange(addr, n, userLo, k.mem.size()) || (addr < pageUp(k.brk) && addr+n > k.brkStart) || !k.ensure(addr+n) {
			return errno(unix.ENOMEM)
		}
		if k.maps.overlaps(addr, addr+n) {
			if flags&mapFixedNoRe != 0 {
				return errno(unix.EEXIST)
			}
			for _, r := range k.maps.remove(addr, addr+n) {
				if err := k.mem.zero(r.Start, r.End-r.Start); err != nil {
					return errnoOf(err)
				}
			}
		}
		k.maps.add(addr, addr+n)
		return addr
	}
	start, ok := k.maps.lowestGap(lo, k.mem.size(), n)
	if !ok || !k.ensure(start+n) {
		k.memExhausted = true
		return errno(unix.ENOMEM)
	}
	k.maps.add(start, start+n)
	return start
}

func sysMunmap(k *kernel, a *sysArgs) uint64 {
	addr, length := a[0], a[1]
	if addr%pageSize != 0 || length == 0 || !inRange(addr, pageUp(length), userLo, k.mem.size()) {
		return errno(unix.EINVAL)
	}
	for _, r := range k.maps.remove(addr, addr+pageUp(length)) {
		if err := k.mem.zero(r.Start, r.End-r.Start); err != nil {
			return errnoOf(err)
		}
	}
	return 0
}

// sysMprotect accepts every change: the program's pages are all readable, writable and
// executable to the hardware, and nothing the program can protect guards the VMM.
func sysMprotect(k *kernel, a *sysArgs) uint64 {
	if a[0]%pageSize != 0 || !inRange(a[0], pageUp(a[1]), userLo, k.mem.size()) {
		return errno(unix.EINVAL)
	}
	return 0
}

const madvDontneed = 4

func sysMadvise(k *kernel, a *sysArgs) uint64 {
	addr, length, advice := a[0], pageUp(a[1]), a[2]
	if addr%pageSize != 0 || !inRange(addr, length, userLo, k.mem.size()) {
		return errno(unix.EINVAL)
	}
	if advice == madvDontneed {
		// Private anonymous memory reads as zeros after MADV_DONTNEED.
		for _, r := range k.mappedIn(addr, addr+length) {
			if err := k.mem.zero(r.Start, r.End-r.Start); err != nil {
				return errnoOf(err)
			}
		}
	}
	return 0
}

// mappedIn returns the parts of [s, e) that are mapped: mmap regions, the image, the stack and
// the heap.
func (k *kernel) mappedIn(s, e uint64) []region {
	var out []region
	heap := region{k.brkStart &^ (pageSize - 1), pageUp(k.brk)}
	for _, x := range append(regionList{heap}, k.maps...) {
		if x.End <= s || x.Start >= e {
			continue
		}
		out = append(out, region{max(x.Start, s), min(x.End, e)})
	}
	return out
}
