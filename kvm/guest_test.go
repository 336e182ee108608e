package kvm

import (
	"testing"
)

func TestHelloExitsWithStatusAndOutput(t *testing.T) {
	h := openHost(t)
	ex, out := runProgram(t, h, "hello", Config{Memory: 32 << 20, Args: []string{"hello", "a", "b"}})
	if ex.Reason != Exited || ex.Code != 7 {
		t.Fatalf("exit = %v code %d err %v regs %+v enosys %v", ex.Reason, ex.Code, ex.Err, ex.Regs, ex.ENOSYS)
	}
	if got, want := out.stdout.String(), "hello from hello with 3 args\n"; got != want {
		t.Errorf("stdout = %q, want %q", got, want)
	}
	if got, want := out.stderr.String(), "to stderr\n"; got != want {
		t.Errorf("stderr = %q, want %q", got, want)
	}
	t.Logf("syscalls %v enosys %v", ex.Syscalls, ex.ENOSYS)
}
