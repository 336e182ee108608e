package kvm

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

func TestVDSOAnswersClocksWithoutExits(t *testing.T) {
	h := openHost(t)
	before := time.Now().Unix()
	ex, out := runProgram(t, h, "clock", Config{Memory: 16 << 20})
	after := time.Now().Unix()
	if ex.Reason != Exited || ex.Code != 0 {
		t.Fatalf("exit %v %d %v", ex.Reason, ex.Code, ex.Err)
	}
	var real, tod, tm int64
	var ok, cpu int
	if _, err := fmt.Sscanf(out.stdout.String(), "real=%d mono_ok=%d tod=%d time=%d cpu=%d", &real, &ok, &tod, &tm, &cpu); err != nil {
		t.Fatalf("output %q: %v", out.stdout.String(), err)
	}
	for name, v := range map[string]int64{"clock_gettime(REALTIME)": real, "gettimeofday": tod, "time": tm} {
		if v < before || v > after {
			t.Errorf("%s = %d, host time was %d..%d", name, v, before, after)
		}
	}
	if ok != 1 {
		t.Error("CLOCK_MONOTONIC went backwards")
	}
	// 100,000 reads: at most the first goes to the VMM (it publishes the clock page).
	if n := ex.Syscalls[228] + ex.Syscalls[96] + ex.Syscalls[201]; n > 1 {
		t.Errorf("%d clock system calls reached the VMM; the vDSO should answer them", n)
	}
}

func TestVDSOAndStubImagesMatchSource(t *testing.T) {
	if err := checkVDSOImage(vdsoImage); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	out, stub := filepath.Join(dir, "vdso.so"), filepath.Join(dir, "stub_pvm.bin")
	cmd := exec.Command("bash", "vdso/build.sh", out, stub)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("vdso/build.sh: %v\n%s", err, msg)
	}
	for path, embedded := range map[string][]byte{out: vdsoImage, stub: pvmStub} {
		fresh, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(fresh, embedded) {
			t.Fatalf("kvm/vdso/%s is stale: run kvm/vdso/build.sh and commit the result", filepath.Base(path))
		}
	}
}
