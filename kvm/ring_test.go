package kvm

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

func TestBufferedWritesKeepOrderAndDescriptorSemantics(t *testing.T) {
	h := openHost(t)
	ex, out := runProgram(t, h, "writes", Config{Memory: 16 << 20})
	if ex.Reason != Exited || ex.Code != 0 {
		t.Fatalf("exit %v %d %v", ex.Reason, ex.Code, ex.Err)
	}
	var wantOut, wantRes strings.Builder
	for i := 0; i < 1000; i++ {
		fmt.Fprintf(&wantOut, "out %d\n", i)
		fmt.Fprintf(&wantRes, "res %d\n", i)
	}
	wantOut.WriteString(strings.Repeat("b", 3000))
	if out.stdout.String() != wantOut.String() {
		t.Errorf("stdout differs: %d bytes, want %d", out.stdout.Len(), wantOut.Len())
	}
	if out.result.String() != wantRes.String() {
		t.Errorf("fd 3 differs: %d bytes, want %d", out.result.Len(), wantRes.Len())
	}
	if got := out.stderr.String(); got != "after close: -1 9\n" {
		t.Errorf("write to a closed stdout: %q, want EBADF (9)", got)
	}
	if ex.Syscalls[1] != 2003 {
		t.Errorf("write count %d, want 2003", ex.Syscalls[1])
	}
	if h.Backend() == "pvm" && ex.Exits > 200 {
		t.Errorf("%d exits for 2003 writes: the output ring is not taking them", ex.Exits)
	}
	t.Logf("%d writes, %d exits", ex.Syscalls[1], ex.Exits)
}

func TestWarmActivationNeedsOneExitOnPVM(t *testing.T) {
	h := openHost(t)
	var c captured
	g := startEcho(t, h, &c)
	before, err := g.Run(context.Background()) // parked: served without entering the guest
	if err != nil {
		t.Fatal(err)
	}
	if got := activate(t, g, &c, `{"x":1}`); got != `{"echo":{"x":1}}`+"\n" {
		t.Fatalf("result %q", got)
	}
	after, _ := g.Run(context.Background())
	want := uint64(3) // write fd 3, write stderr, read
	if h.Backend() == "pvm" {
		want = 1 // the writes go to the output ring; only the blocking read exits
	}
	if n := after.Exits - before.Exits; n != want {
		t.Errorf("activation took %d exits, want %d", n, want)
	}
	if !strings.Contains(c.stderr.String(), "echoed 7 bytes") {
		t.Errorf("stderr %q", c.stderr.String())
	}
}
