package kvm

import (
	"bytes"
	"context"
	"sort"
	"sync"
	"testing"
	"time"
)

var (
	fuzzOnce  sync.Once
	fuzzGuest *Guest
	fuzzErr   error
)

// fuzzCPU is one real guest whose vCPU serves the fuzzed kernels' arch_prctl calls.
func fuzzCPU(t *testing.T) cpuControl {
	fuzzOnce.Do(func() {
		h, err := Open()
		if err != nil {
			fuzzErr = err
			return
		}
		fuzzGuest, fuzzErr = h.New(context.Background(), Config{Memory: 8 << 20}, build(t, "hello"))
	})
	if fuzzErr != nil {
		t.Fatalf("this fuzz target needs a usable /dev/kvm: %v", fuzzErr)
	}
	return fuzzGuest.sh.cpu
}

// FuzzSyscall drives the library OS with arbitrary system call numbers and arguments against a
// small guest memory seeded with arbitrary bytes. It must never panic (Go's bounds checks would
// turn any out-of-range host access into one), never write the VMM's pages below userLo, and
// leave its address-space bookkeeping consistent.
func FuzzSyscall(f *testing.F) {
	f.Add(uint16(1), uint64(1), uint64(0x100000), uint64(16), uint64(0), uint64(0), uint64(0), []byte("hello"))
	f.Add(uint16(0), uint64(0), uint64(0x8000), uint64(64), uint64(0), uint64(0), uint64(0), []byte{})
	f.Add(uint16(20), uint64(1), uint64(0x100000), uint64(2), uint64(0), uint64(0), uint64(0), []byte{0, 0, 0x10, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0})
	f.Add(uint16(9), uint64(0), uint64(1<<20), uint64(3), uint64(0x22), uint64(0), uint64(0), []byte{})
	f.Add(uint16(9), uint64(0x300000), uint64(1<<20), uint64(3), uint64(0x32), uint64(0), uint64(0), []byte{})
	f.Add(uint16(11), uint64(0x10000), uint64(^uint64(0)), uint64(0), uint64(0), uint64(0), uint64(0), []byte{})
	f.Add(uint16(12), uint64(0x7ff000), uint64(0), uint64(0), uint64(0), uint64(0), uint64(0), []byte{})
	f.Add(uint16(89), uint64(0x100000), uint64(0x100100), uint64(200), uint64(0), uint64(0), uint64(0), []byte("/proc/self/exe\x00"))
	f.Add(uint16(158), uint64(0x1002), uint64(0x100000), uint64(0), uint64(0), uint64(0), uint64(0), []byte{})
	f.Add(uint16(262), uint64(1), uint64(0x100000), uint64(0x100100), uint64(0x1000), uint64(0), uint64(0), []byte{0})
	f.Add(uint16(230), uint64(0), uint64(1), uint64(0x100000), uint64(0), uint64(0), uint64(0), []byte{1, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, nr uint16, a0, a1, a2, a3, a4, a5 uint64, data []byte) {
		cpu := fuzzCPU(t)
		mem, err := newAnonMemory(8 << 20)
		if err != nil {
			t.Fatal(err)
		}
		defer mem.close()
		const dataAt = 0x100000
		copy(mem.b[dataAt:dataAt+64<<10], data)
		var out bytes.Buffer
		cfg := Config{Stdout: &out, Stderr: &out, Result: &out, OutputLimit: 1 << 16, ExePath: "/program"}
		k := newKernel(mem, cpu, &cfg)
		k.sleep = func(time.Duration) {}
		k.brkStart, k.brk, k.stackLo, k.stackHi = 0x200000, 0x200000, 0x780000, mem.size()
		k.maps.add(0x100000, 0x200000)
		k.maps.add(k.stackLo, k.stackHi)
		args := sysArgs{a0, a1, a2, a3, a4, a5}
		k.dispatch(uint64(nr), &args)
		// A second call on the state the first left behind.
		args = sysArgs{a1, a0, a2 ^ a3, a3, a4, a5}
		k.dispatch(uint64(nr)^uint64(len(data)&7), &args)

		// Below userLo only the clock page may change: the VMM publishes it at clock calls.
		low := append([]byte(nil), mem.b[:userLo]...)
		clear(low[vvarAddr : vvarAddr+pageSize])
		if !bytes.Equal(low, make([]byte, userLo)) {
			t.Fatalf("syscall %d wrote below userLo", nr)
		}
		if !sort.SliceIsSorted(k.maps, func(i, j int) bool { return k.maps[i].Start < k.maps[j].Start }) {
			t.Fatalf("maps unsorted: %v", k.maps)
		}
		for i, r := range k.maps {
			if r.Start >= r.End || r.Start < userLo || r.End > mem.size() || (i > 0 && k.maps[i-1].End > r.Start) {
				t.Fatalf("maps inconsistent after syscall %d: %v", nr, k.maps)
			}
		}
		if k.brk < k.brkStart || k.brk > mem.size() {
			t.Fatalf("brk %#x outside [%#x, %#x]", k.brk, k.brkStart, mem.size())
		}
	})
}
