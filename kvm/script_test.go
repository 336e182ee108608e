package kvm

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestSyscallScript runs testdata/syscalls.txt against the library OS on real guest memory (a
// real vCPU serves arch_prctl), without running a program: each line is one system call and
// what it must return or do.
func TestSyscallScript(t *testing.T) {
	f, err := os.Open("testdata/syscalls.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	names := map[string]uint64{}
	for nr, e := range sysTable {
		names[e.name] = nr
	}
	names["socket"] = 41
	var (
		k    *kernel
		mem  *memory
		outs [4]bytes.Buffer
		vars = map[string]uint64{}
	)
	cpu := fuzzCPU(t)
	reset := func() {
		if mem != nil {
			mem.close()
		}
		var err error
		if mem, err = newAnonMemory(8 << 20); err != nil {
			t.Fatal(err)
		}
		for i := range outs {
			outs[i].Reset()
		}
		cfg := Config{Stdout: &outs[1], Stderr: &outs[2], Result: &outs[3], OutputLimit: 1 << 20, ExePath: "/program"}
		k = newKernel(mem, cpu, &cfg)
		k.sleep = func(time.Duration) {}
		k.brkStart, k.brk, k.stackLo, k.stackHi = 0x200000, 0x200000, 0x780000, mem.size()
		k.maps.add(0x100000, 0x200000)
		k.maps.add(k.stackLo, k.stackHi)
	}
	defer func() { mem.close() }()
	reset()
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || text[0] == '#' {
			continue
		}
		fields := strings.Fields(text)
		fail := func(format string, args ...any) {
			t.Errorf("syscalls.txt:%d: %s: %s", line, text, fmt.Sprintf(format, args...))
		}
		num := func(s string) uint64 {
			if v, ok := vars[s]; ok {
				return v
			}
			if strings.HasPrefix(s, "-") {
				v, err := strconv.ParseInt(s, 0, 64)
				if err != nil {
					fail("bad number %q", s)
				}
				return uint64(v)
			}
			v, err := strconv.ParseUint(s, 0, 64)
			if err != nil {
				fail("bad number %q", s)
			}
			return v
		}
		quoted := func() []byte {
			q := text[strings.IndexByte(text, '"'):]
			s, err := strconv.Unquote(q)
			if err != nil {
				fail("bad string %s", q)
			}
			return []byte(s)
		}
		switch fields[0] {
		case "reset":
			reset()
		case "poke":
			copy(mem.b[num(fields[1]):], quoted())
		case "peek":
			want := quoted()
			addr := num(fields[1])
			if got := mem.b[addr : addr+uint64(len(want))]; !bytes.Equal(got, want) {
				fail("memory holds %q", got)
			}
		case "out":
			fd := num(fields[1])
			if got, want := outs[fd].String(), string(quoted()); got != want {
				fail("fd %d received %q", fd, got)
			}
			outs[fd].Reset()
		case "call":
			arrow := strings.Index(text, "->")
			parts := strings.Fields(text[:arrow])
			nr, ok := names[parts[1]]
			if !ok {
				fail("unknown system call %s", parts[1])
				continue
			}
			var a sysArgs
			for i, s := range parts[2:] {
				a[i] = num(s)
			}
			k.stop, k.blocked = nil, false
			ret := k.dispatch(nr, &a)
			want := strings.TrimSpace(text[arrow+2:])
			switch {
			case strings.HasPrefix(want, "$"):
				vars[want] = ret
			case strings.HasPrefix(want, "-E"):
				if en := errnoByName(want[1:]); en == 0 || ret != errno(en) {
					fail("returned %d (%v), want %s", int64(ret), unix.Errno(-int64(ret)), want)
				}
			default:
				if ret != num(want) {
					fail("returned %#x (%d), want %s", ret, int64(ret), want)
				}
			}
		case "stop":
			var got string
			switch {
			case k.blocked:
				got = "blocked"
			case k.stop == nil:
				got = "none"
			case k.stop.Reason == Exited:
				got = fmt.Sprintf("exited %d", k.stop.Code)
			default:
				got = strings.ToLower(k.stop.Reason.String())
			}
			if want := strings.Join(fields[1:], " "); got != want {
				fail("stop is %q", got)
			}
		default:
			fail("unknown command")
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
}

// errnoByName maps "EFAULT" to unix.EFAULT.
func errnoByName(name string) unix.Errno {
	for e := unix.Errno(1); e < 200; e++ {
		if unix.ErrnoName(e) == name {
			return e
		}
	}
	return 0
}
