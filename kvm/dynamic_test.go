package kvm

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// buildDynamic compiles testdata/progs/NAME.c WITHOUT -static: a program the interpreter
// (ld-linux-x86-64.so.2) links at start-up from the guest's file tree.
func buildDynamic(t testing.TB, name string) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), name)
	src := filepath.Join("testdata", "progs", name+".c")
	if msg, err := exec.Command("gcc", "-O2", "-o", out, src, "-lm").CombinedOutput(); err != nil {
		t.Fatalf("gcc %s (install gcc and libc6-dev: scripts/install-deps.sh): %v\n%s", src, err, msg)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// libcTree is what a dynamically linked C program needs on Debian bookworm (merged /usr: /lib
// and /lib64 are links into /usr).
func libcTree() *FileTree {
	return &FileTree{
		Host:  []string{"/lib", "/lib64", "/usr/lib64", "/usr/lib/x86_64-linux-gnu", "/etc/ld.so.cache"},
		Files: map[string][]byte{"/data/msg.txt": []byte("from memory\n")},
	}
}

func TestDynamicHello(t *testing.T) {
	h := openHost(t)
	prog := buildDynamic(t, "dynhello")
	var c captured
	g, err := h.New(context.Background(), c.config(Config{Memory: 64 << 20, Files: libcTree()}), prog)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	defer g.Close()
	ex, err := g.Run(context.Background())
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if ex.Reason != Exited || ex.Code != 0 {
		t.Fatalf("exit %v code %d: %v\nstdout %q\nstderr %q\nENOSYS %v", ex.Reason, ex.Code, ex.Err, c.stdout.String(), c.stderr.String(), ex.ENOSYS)
	}
	want := "hello from a dynamically linked guest, sqrt(2)=1.414\nfile: from memory\n\nsecret: hidden\n"
	if got := c.stdout.String(); got != want {
		t.Fatalf("stdout %q, want %q", got, want)
	}
	if ex.Syscalls[257] == 0 || ex.Syscalls[9] == 0 {
		t.Fatalf("the loader opened or mapped nothing: %v", ex.Syscalls)
	}
}

func TestDynamicNeedsTree(t *testing.T) {
	h := openHost(t)
	prog := buildDynamic(t, "dynhello")
	_, err := h.New(context.Background(), Config{Memory: 64 << 20}, prog)
	if !errors.Is(err, ErrBadProgram) || !strings.Contains(err.Error(), "ld-linux") {
		t.Fatalf("New without a file tree: %v, want ErrBadProgram naming the interpreter", err)
	}
	_, err = h.New(context.Background(), Config{Memory: 64 << 20, Files: &FileTree{Host: []string{"/usr/lib/x86_64-linux-gnu"}}}, prog)
	if !errors.Is(err, ErrBadProgram) {
		t.Fatalf("New with a tree lacking /lib64: %v, want ErrBadProgram", err)
	}
}

// Open files (with their offsets) and /tmp survive a snapshot: a restored guest goes on reading
// where the parked one stopped, and each Reset brings the /tmp file back to its snapshot state.
func TestDynamicSnapshotOpenFiles(t *testing.T) {
	h := openHost(t)
	var c captured
	g, err := h.New(context.Background(), c.config(Config{Memory: 64 << 20, Files: libcTree()}), buildDynamic(t, "dynfiles"))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if ex, _ := g.Run(context.Background()); ex.Reason != BlockedOnRead {
		t.Fatalf("stopped %v (%d): %v", ex.Reason, ex.Code, ex.Err)
	}
	snap := snapshotOf(t, h, g, "files.snap")
	c = captured{}
	r := restored(t, h, snap, c.config(Config{}))
	for i := 0; i < 2; i++ {
		c.stdout.Reset()
		r.Feed([]byte("go\n"))
		if ex, _ := r.Run(context.Background()); ex.Reason != BlockedOnRead {
			t.Fatalf("restored run %d stopped %v: %v", i, ex.Reason, ex.Err)
		}
		if got, want := c.stdout.String(), "at 5: memory\n|tmp=before\n"; got != want {
			t.Fatalf("restored run %d printed %q, want %q", i, got, want)
		}
		if err := r.Reset(); err != nil {
			t.Fatal(err)
		}
	}
}
