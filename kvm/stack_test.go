package kvm

import (
	"errors"
	"strings"
	"testing"
)

func TestArgsEnvAndAuxvReachTheProgram(t *testing.T) {
	h := openHost(t)
	ex, out := runProgram(t, h, "env", Config{
		Memory: 16 << 20, Args: []string{"env", "first arg", ""}, Env: []string{"A=1", "EMPTY="}, ExePath: "/action/exec",
	})
	if ex.Reason != Exited || ex.Code != 0 {
		t.Fatalf("exit %v %d %v", ex.Reason, ex.Code, ex.Err)
	}
	want := strings.Join([]string{
		"arg 0 env", "arg 1 first arg", "arg 2 ", "env A=1", "env EMPTY=",
		"pagesz 4096", "phent 56", "entry_nonzero 1", "vdso_nonzero 1", "platform x86_64",
		"execfn /action/exec", "random_nonzero 1", "exe 12 /action/exec", "pid 1 ppid 0",
	}, "\n") + "\n"
	if got := out.stdout.String(); got != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", got, want)
	}
}

func TestConfigErrorsNameTheField(t *testing.T) {
	h := openHost(t)
	prog := build(t, "hello")
	for _, c := range []struct {
		cfg   Config
		field string
	}{
		{Config{Memory: 1 << 20}, "Memory"},
		{Config{Memory: 64 << 30}, "Memory"},
		{Config{Timeout: -1}, "Timeout"},
		{Config{OutputLimit: -1}, "OutputLimit"},
		{Config{Memory: 16 << 20, Args: []string{strings.Repeat("x", 2<<20)}}, "arguments"},
	} {
		_, err := h.New(t.Context(), c.cfg, prog)
		if !errors.Is(err, ErrBadConfig) || !strings.Contains(err.Error(), c.field) {
			t.Errorf("%+v: error %v, want ErrBadConfig naming %s", c.field, err, c.field)
		}
	}
}

func TestOutputLimitTruncates(t *testing.T) {
	h := openHost(t)
	ex, out := runProgram(t, h, "hello", Config{Memory: 16 << 20, OutputLimit: 5})
	if ex.Reason != Exited || !ex.OutputTruncated {
		t.Fatalf("exit %v truncated=%v", ex.Reason, ex.OutputTruncated)
	}
	if out.stdout.String() != "hello" || out.stderr.String() != "to st" {
		t.Errorf("stdout %q stderr %q, want 5 bytes of each", out.stdout.String(), out.stderr.String())
	}
}

func TestStdinReaderFeedsTheGuest(t *testing.T) {
	h := openHost(t)
	ex, out := runProgram(t, h, "echo", Config{Memory: 64 << 20, Stdin: strings.NewReader("1\n\"two\"\n")})
	if ex.Reason != Exited || ex.Code != 0 {
		t.Fatalf("exit %v %d %v", ex.Reason, ex.Code, ex.Err)
	}
	if got, want := out.result.String(), "{\"ok\":true}\n{\"echo\":1}\n{\"echo\":\"two\"}\n"; got != want {
		t.Errorf("fd 3 = %q, want %q", got, want)
	}
}
