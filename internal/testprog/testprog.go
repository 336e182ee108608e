// Package testprog holds the small static C programs that tests in several packages run as
// native actions (actionloop executables: ack {"ok":true} on fd 3, then answer one line per
// activation), and builds them with gcc -static -O2.
//
// The programs are the same whether they run as host processes (procdriver, runtimes, the
// container driver) or as KVM guests (unikernel, e2e), so they live here once instead of as a
// copy in each package's testdata:
//
//	echo      answers {"echo": <the activation line>} and logs "echoed N bytes" to stderr
//	initfail  writes a reason to stderr and exits 1 before acknowledging
//	sleep     waits the "ms" parameter milliseconds, answers {"slept": ms}
//	logflood  prints the "lines" parameter lines of 100 bytes to stdout, answers {"lines": n}
//	nonjson   answers every activation with a line that is not JSON
//
// A package keeps its own program in its testdata when it differs on purpose (a guest that
// probes one system call, say) and builds it with BuildFile.
package testprog

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// sources are the shared programs, progs/NAME.c.
//
//go:embed progs/*.c
var sources embed.FS

var (
	// ErrUnknown means no shared program has that name.
	ErrUnknown = errors.New("testprog: unknown program")
	// ErrCompile means gcc -static could not build a program (gcc or static libc missing, or
	// a bad source).
	ErrCompile = errors.New("testprog: gcc -static failed")
)

// flags are gcc's arguments before "-o OUT SRC"; they are part of the build cache key.
var flags = []string{"-static", "-O2"}

// installHint says how to get what the build needs on this project's machines.
const installHint = "install gcc and libc6-dev: scripts/install-deps.sh"

// Names lists the shared programs, sorted.
func Names() []string {
	entries, err := sources.ReadDir("progs")
	if err != nil {
		panic(err) // the embedded directory is fixed at build time
	}
	var names []string
	for _, e := range entries {
		names = append(names, strings.TrimSuffix(e.Name(), ".c"))
	}
	slices.Sort(names)
	return names
}

// Source returns the C source of the named shared program; the error wraps ErrUnknown when
// there is none.
func Source(name string) ([]byte, error) {
	if name == "" || strings.ContainsAny(name, `/\.`) {
		return nil, fmt.Errorf("%w: %q", ErrUnknown, name)
	}
	b, err := sources.ReadFile(path.Join("progs", name+".c"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %q (have %s)", ErrUnknown, name, strings.Join(Names(), ", "))
	}
	return b, err
}

// Compile writes the named shared program's source to dir/NAME.c, builds dir/NAME with gcc
// -static -O2 and returns that executable's path. It is for callers without a testing.TB (the
// exported helpers of test-support packages); tests use Build, which compiles only once.
func Compile(dir, name string) (string, error) {
	src, err := Source(name)
	if err != nil {
		return "", err
	}
	c := filepath.Join(dir, name+".c")
	if err := os.WriteFile(c, src, 0o600); err != nil {
		return "", fmt.Errorf("testprog: %s: %w", name, err)
	}
	exe := filepath.Join(dir, name)
	if err := gcc(exe, c); err != nil {
		return "", err
	}
	return exe, nil
}

// Build returns the path of the named shared program built with gcc -static -O2. It fails
// the test (never skips it) with a message naming what to install when gcc or the static C
// library is missing. See BuildFile for how builds are cached.
func Build(t testing.TB, name string) string {
	t.Helper()
	src, err := Source(name)
	if err != nil {
		t.Fatal(err)
	}
	return build(t, name, src)
}

// BuildFile is Build for a program of the calling package's own, the C source file at src
// (e.g. "testdata/crash.c"); the executable is named after the file.
//
// Executables are cached under the user's cache directory by a hash of the source, the
// compiler flags and the gcc executable, so each program is compiled once (not once per test,
// nor again by every test binary that needs it) and an edited source is rebuilt. Concurrent
// builders of one program (test binaries run in parallel) are safe: each renames its
// finished executable into place.
func BuildFile(t testing.TB, src string) string {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatalf("testprog: %v", err)
	}
	return build(t, strings.TrimSuffix(filepath.Base(src), ".c"), b)
}

func build(t testing.TB, name string, src []byte) string {
	t.Helper()
	cc, err := exec.LookPath("gcc")
	if err != nil {
		t.Fatalf("testprog: building %s needs gcc (%s): %v", name, installHint, err)
	}
	st, err := os.Stat(cc)
	if err != nil {
		t.Fatalf("testprog: building %s: %v", name, err)
	}
	// The key changes when the source, the flags or the compiler (path, size, mtime) does.
	h := sha256.New()
	fmt.Fprintf(h, "%q %q %d %d\n", flags, cc, st.Size(), st.ModTime().UnixNano())
	h.Write(src)
	dir := cacheDir(t, hex.EncodeToString(h.Sum(nil))[:32])
	exe := filepath.Join(dir, name)
	if fi, err := os.Stat(exe); err == nil && fi.Mode().IsRegular() {
		return exe
	}
	tmp, err := os.MkdirTemp(dir, "build-")
	if err != nil {
		t.Fatalf("testprog: building %s: %v", name, err)
	}
	defer os.RemoveAll(tmp)
	c := filepath.Join(tmp, name+".c")
	if err := os.WriteFile(c, src, 0o600); err != nil {
		t.Fatalf("testprog: building %s: %v", name, err)
	}
	out := filepath.Join(tmp, name)
	if err := gcc(out, c); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(out, exe); err != nil {
		t.Fatalf("testprog: building %s: %v", name, err)
	}
	return exe
}

// cacheDir returns (creating it) the build directory for one cache key: under the user's
// cache directory when there is a usable one, else a directory of this test's own.
func cacheDir(t testing.TB, key string) string {
	t.Helper()
	if root, err := os.UserCacheDir(); err == nil {
		dir := filepath.Join(root, "snapinvoker-testprog", key)
		if err := os.MkdirAll(dir, 0o700); err == nil {
			return dir
		}
	}
	return t.TempDir()
}

// gcc builds the static executable out from the C source src.
func gcc(out, src string) error {
	args := append(slices.Clone(flags), "-o", out, src)
	msg, err := exec.Command("gcc", args...).CombinedOutput()
	if err == nil {
		return nil
	}
	var why string
	switch {
	case errors.Is(err, exec.ErrNotFound):
		why = " (gcc is missing: " + installHint + ")"
	case bytes.Contains(msg, []byte("cannot find -lc")):
		why = " (the static C library libc.a is missing: " + installHint + ")"
	}
	return fmt.Errorf("%w: gcc %s -o %s %s%s: %v\n%s", ErrCompile, strings.Join(flags, " "),
		filepath.Base(out), filepath.Base(src), why, err, msg)
}
