package kvm

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestFaultIsReportedWithRegisters(t *testing.T) {
	h := openHost(t)
	ex, out := runProgram(t, h, "fault", Config{Memory: 32 << 20})
	if ex.Reason != Fault || !errors.Is(ex.Err, ErrFault) {
		t.Fatalf("exit = %v (%v), want Fault", ex.Reason, ex.Err)
	}
	if out.stdout.String() != "before fault\n" {
		t.Errorf("stdout = %q", out.stdout.String())
	}
	if ex.Regs.RIP < 0x400000 {
		t.Errorf("regs.RIP = %#x, want inside the program", ex.Regs.RIP)
	}
	t.Logf("fault: %v", ex.Err)
}

func TestAbortIsAFaultWithSignal(t *testing.T) {
	h := openHost(t)
	ex, _ := runProgram(t, h, "abort", Config{Memory: 32 << 20})
	if ex.Reason != Fault || ex.Signal != 6 || ex.Code != 134 {
		t.Fatalf("exit = %v signal %d code %d (%v)", ex.Reason, ex.Signal, ex.Code, ex.Err)
	}
}

func TestSpinningGuestStopsAtDeadlineAndCanContinue(t *testing.T) {
	h := openHost(t)
	g, err := h.New(context.Background(), Config{Memory: 32 << 20, Timeout: 50 * time.Millisecond}, build(t, "spin"))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	for i := 0; i < 2; i++ {
		ex, err := g.Run(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if ex.Reason != Deadline {
			t.Fatalf("run %d: %v (%v), want Deadline", i, ex.Reason, ex.Err)
		}
	}
	// A cancelled context stops it too.
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(10 * time.Millisecond); cancel() }()
	g.cfg.Timeout = 0
	ex, err := g.Run(ctx)
	if err != nil || ex.Reason != Deadline {
		t.Fatalf("cancelled run: %v %v", ex.Reason, err)
	}
}

func TestAllocatingPastTheLimitIsMemoryLimit(t *testing.T) {
	h := openHost(t)
	ex, out := runProgram(t, h, "hog", Config{Memory: 16 << 20})
	if ex.Reason != MemoryLimit || !errors.Is(ex.Err, ErrMemoryLimit) {
		t.Fatalf("exit = %v code %d (%v), want MemoryLimit", ex.Reason, ex.Code, ex.Err)
	}
	if !strings.Contains(out.stderr.String(), "malloc failed after") {
		t.Errorf("stderr = %q", out.stderr.String())
	}
}

func TestBadPointersGetEFAULTAndNeverReachVMMPages(t *testing.T) {
	h := openHost(t)
	var c captured
	g, err := h.New(context.Background(), c.config(Config{Memory: 32 << 20}), build(t, "badptr"))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	gdt := append([]byte(nil), g.mem.b[gdtAddr:gdtAddr+0x50]...)
	stub := append([]byte(nil), g.mem.b[stubAddr:stubAddr+16]...)
	g.Feed([]byte(strings.Repeat("x", 100)))
	ex, err := g.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if ex.Reason != Exited || ex.Code != 0 {
		t.Fatalf("exit = %v code %d (%v)", ex.Reason, ex.Code, ex.Err)
	}
	want := map[string]string{
		"write_null": "-14", "write_kernel": "-14", "write_huge": "1048576", "write_wrap": "-14",
		"read_gdt": "-14", "uname_oob": "-14", "clock_bad": "-14", "writev_bad": "-14",
		"getrandom_oob": "-14", "readlink_bad": "-14", "munmap_kernel": "-22", "mmap_fixed_kernel": "-12",
	}
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(c.stdout.String()), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			got[k] = v
		}
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if !strings.HasSuffix(c.stdout.String(), "still alive\n") {
		t.Errorf("stdout = %q", c.stdout.String())
	}
	if string(gdt) != string(g.mem.b[gdtAddr:gdtAddr+0x50]) || string(stub) != string(g.mem.b[stubAddr:stubAddr+16]) {
		t.Error("a system call rewrote the VMM's GDT or stub")
	}
}

func TestUnknownSyscallsAreENOSYSAndCounted(t *testing.T) {
	h := openHost(t)
	ex, out := runProgram(t, h, "unknown", Config{Memory: 32 << 20})
	if ex.Reason != Exited || ex.Code != 0 {
		t.Fatalf("exit = %v code %d (%v)", ex.Reason, ex.Code, ex.Err)
	}
	if got, want := out.stdout.String(), "socket=-1 errno=38\n999=-1 errno=38\n"; got != want {
		t.Errorf("stdout = %q, want %q", got, want)
	}
	if ex.ENOSYS[41] != 2 || ex.ENOSYS[999] != 1 {
		t.Errorf("ENOSYS counts = %v, want socket(41)×2 and 999×1", ex.ENOSYS)
	}
}

func TestForkIsUnsupported(t *testing.T) {
	h := openHost(t)
	ex, out := runProgram(t, h, "unknown", Config{Memory: 32 << 20, Args: []string{"unknown", "fork"}})
	if ex.Reason != Unsupported || !errors.Is(ex.Err, ErrUnsupported) || (ex.Syscall != 56 && ex.Syscall != 57) {
		t.Fatalf("exit = %v syscall %d (%v), want Unsupported clone(56) or fork(57)", ex.Reason, ex.Syscall, ex.Err)
	}
	if out.stdout.Len() != 0 {
		t.Errorf("program went on after fork: %q", out.stdout.String())
	}
	if !strings.Contains(ex.Err.Error(), SyscallName(ex.Syscall)) {
		t.Errorf("error does not name the call: %v", ex.Err)
	}
}

func TestAccessToNeverMappedMemoryIsAFault(t *testing.T) {
	h := openHost(t)
	ex, _ := runProgram(t, h, "wild", Config{Memory: 256 << 20})
	if ex.Reason != Fault || !errors.Is(ex.Err, ErrFault) || !strings.Contains(ex.Err.Error(), "0x6000000") {
		t.Fatalf("exit = %v (%v), want a Fault naming 0x6000000", ex.Reason, ex.Err)
	}
}
