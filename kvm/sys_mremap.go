package kvm

import "golang.org/x/sys/unix"

// mremap flags.
const (
	mremapMaymove = 1
	mremapFixed   = 2
)

// sysMremap grows a mapping in place when the pages after it are free, else moves it (with
// MREMAP_MAYMOVE) to the lowest gap that fits, copying its contents; it shrinks by unmapping the
// tail. glibc's realloc of large blocks uses it. MREMAP_FIXED and MREMAP_DONTUNMAP are refused.
func sysMremap(k *kernel, a *sysArgs) uint64 {
	old, oldN, newN, flags := a[0], pageUp(a[1]), pageUp(a[2]), a[3]
	size := k.mem.size()
	switch {
	case flags&^mremapMaymove != 0:
		return errno(unix.EINVAL)
	case old%pageSize != 0 || newN == 0 || oldN == 0 || newN > size || !inRange(old, oldN, userLo, size):
		return errno(unix.EINVAL)
	case !k.mapped(old, old+oldN):
		return errno(unix.EFAULT)
	}
	if newN <= oldN {
		if newN < oldN {
			for _, r := range k.maps.remove(old+newN, old+oldN) {
				if err := k.mem.zero(r.Start, r.End-r.Start); err != nil {
					return errnoOf(err)
				}
			}
		}
		return old
	}
	// In place: the pages after the mapping are free and clear of the heap and its gap.
	heapLo, heapHi := k.brkStart&^(pageSize-1), pageUp(k.brk)+k.brkGap()
	end := old + newN
	if end <= size && end > old && !k.maps.overlaps(old+oldN, end) && (end <= heapLo || old+oldN >= heapHi) && k.ensure(end) {
		k.maps.add(old+oldN, end)
		return old
	}
	if flags&mremapMaymove == 0 {
		return errno(unix.ENOMEM)
	}
	lo := max(pageUp(k.brk)+k.brkGap(), userLo)
	dst, ok := k.maps.lowestGap(lo, size, newN)
	if !ok || !k.ensure(dst+newN) {
		k.memExhausted = true
		return errno(unix.ENOMEM)
	}
	to, err := k.mem.user(dst, oldN, true)
	if err != nil {
		return errnoOf(err)
	}
	from, err := k.mem.user(old, oldN, false)
	if err != nil {
		return errnoOf(err)
	}
	copy(to, from)
	for _, r := range k.maps.remove(old, old+oldN) {
		if err := k.mem.zero(r.Start, r.End-r.Start); err != nil {
			return errnoOf(err)
		}
	}
	k.maps.add(dst, dst+newN)
	return dst
}

// mapped reports whether every page of [s, e) is an mmap region.
func (k *kernel) mapped(s, e uint64) bool {
	var n uint64
	for _, r := range k.maps {
		if r.End <= s || r.Start >= e {
			continue
		}
		n += min(r.End, e) - max(r.Start, s)
	}
	return n == e-s
}
