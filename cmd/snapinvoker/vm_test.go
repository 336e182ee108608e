package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/snapinvoker/snapinvoker/internal/testprog"
)

// TestVMCommand builds snapinvoker and drives `vm run`, `vm snapshot --at-read` and `vm restore`
// against real /dev/kvm with static programs compiled here.
func TestVMCommand(t *testing.T) {
	if _, err := os.Stat("/dev/kvm"); err != nil {
		t.Fatalf("this test needs /dev/kvm: %v", err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "snapinvoker")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cc := func(name, src string) string {
		c := filepath.Join(dir, name+".c")
		if err := os.WriteFile(c, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
		exe := filepath.Join(dir, name)
		if out, err := exec.Command("gcc", "-static", "-O2", "-o", exe, c).CombinedOutput(); err != nil {
			t.Fatalf("gcc: %v\n%s", err, out)
		}
		return exe
	}
	hello := cc("hello", `#include <stdio.h>
int main(int c, char **v) { printf("hi %s\n", v[1]); return 7; }`)
	echo := testprog.Build(t, "echo")
	run := func(stdin string, args ...string) (stdout, stderr string, code int) {
		cmd := exec.Command(bin, args...)
		cmd.Stdin = strings.NewReader(stdin)
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		err := cmd.Run()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return o.String(), e.String(), code
	}

	out, errOut, code := run("", "vm", "run", "--mem", "32M", "--stats", "--", hello, "there")
	if out != "hi there\n" || code != 7 || !strings.Contains(errOut, "vm: exited with status 7") || !strings.Contains(errOut, "write(1)×1") {
		t.Errorf("vm run hello: code %d stdout %q stderr %q", code, out, errOut)
	}

	snap := filepath.Join(dir, "echo.snap")
	_, errOut, code = run("", "vm", "snapshot", "--at-read", "-o", snap, "--mem", "64M", "--", echo)
	if code != 0 || !strings.Contains(errOut, "fd3: {\"ok\":true}") || !strings.Contains(errOut, "written to "+snap) {
		t.Fatalf("vm snapshot: code %d stderr %q", code, errOut)
	}
	_, errOut, code = run("{\"a\":1}\n", "vm", "restore", snap)
	if code != 0 || !strings.Contains(errOut, "fd3: {\"echo\":{\"a\":1}}") || strings.Contains(errOut, "{\"ok\":true}") {
		t.Errorf("vm restore: code %d stderr %q", code, errOut)
	}

	for _, args := range [][]string{
		{"vm"}, {"vm", "fly"}, {"vm", "run"}, {"vm", "run", "--mem", "lots", "--", hello},
		{"vm", "snapshot", "--", echo}, {"vm", "restore", filepath.Join(dir, "missing")},
		{"vm", "run", "--", filepath.Join(dir, "hello.c")},
	} {
		if _, errOut, code := run("", args...); code == 0 || errOut == "" {
			t.Errorf("%v: code %d, stderr %q; want a failure with a message", args, code, errOut)
		}
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]uint64{"256M": 256 << 20, "1G": 1 << 30, "512K": 512 << 10, "4096": 4096} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "M", "-1M", "x", "0"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) accepted", in)
		}
	}
}
