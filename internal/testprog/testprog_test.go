package testprog_test

import (
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/snapinvoker/snapinvoker/internal/testprog"
)

// TestMain serves the proxy branch of testprog.Main with a stand-in proxy that reports its
// arguments, so TestMainProxyBranch can check what a container would see.
func TestMain(m *testing.M) {
	os.Exit(testprog.Main(m, func(ctx context.Context, args []string) error {
		if len(args) > 0 && args[0] == "fail" {
			return errors.New("told to fail")
		}
		fmt.Println("proxy args:", strings.Join(args, " "), "ctx live:", ctx.Err() == nil)
		return nil
	}))
}

func TestMainProxyBranch(t *testing.T) {
	out, err := exec.Command(os.Args[0], "proxy", "-a", "b").CombinedOutput()
	if err != nil || string(out) != "proxy args: -a b ctx live: true\n" {
		t.Fatalf("proxy run: %v %q", err, out)
	}
	out, err = exec.Command(os.Args[0], "proxy", "fail").CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || string(out) != "proxy: told to fail\n" {
		t.Fatalf("failing proxy: %v %q", err, out)
	}
}

func TestNamesAndSource(t *testing.T) {
	want := []string{"echo", "initfail", "logflood", "nonjson", "sleep"}
	if got := testprog.Names(); !slices.Equal(got, want) {
		t.Fatalf("Names() = %q, want %q", got, want)
	}
	src, err := testprog.Source("echo")
	if err != nil || !strings.Contains(string(src), `{\"echo\":%s}`) {
		t.Fatalf("Source(echo) = %.80q, %v", src, err)
	}
	for _, bad := range []string{"", "nosuch", "../echo", "progs/echo", "echo.c"} {
		if _, err := testprog.Source(bad); !errors.Is(err, testprog.ErrUnknown) {
			t.Errorf("Source(%q) error %v, want ErrUnknown", bad, err)
		}
	}
}

// run starts exe with fd 3 as a pipe, writes the activation lines to its stdin and returns
// what it wrote on fd 3, stdout and stderr, and its exit error.
func run(t *testing.T, exe string, lines ...string) (fd3, stdout, stderr string, err error) {
	t.Helper()
	r, w, perr := os.Pipe()
	if perr != nil {
		t.Fatal(perr)
	}
	cmd := exec.Command(exe)
	cmd.ExtraFiles = []*os.File{w}
	cmd.Stdin = strings.NewReader(strings.Join(lines, ""))
	var so, se strings.Builder
	cmd.Stdout, cmd.Stderr = &so, &se
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	b, _ := io.ReadAll(bufio.NewReader(r))
	r.Close()
	err = cmd.Wait()
	return string(b), so.String(), se.String(), err
}

// TestPrograms runs every shared program as a host process and checks the behaviour the
// packages using it rely on.
func TestPrograms(t *testing.T) {
	t.Run("echo", func(t *testing.T) {
		fd3, _, stderr, err := run(t, testprog.Build(t, "echo"), `{"value":{"x":1}}`+"\n", "\n")
		if err != nil || fd3 != `{"ok":true}`+"\n"+`{"echo":{"value":{"x":1}}}`+"\n"+`{"echo":null}`+"\n" ||
			stderr != "echoed 17 bytes\nechoed 0 bytes\n" {
			t.Fatalf("fd3 %q stderr %q err %v", fd3, stderr, err)
		}
	})
	t.Run("initfail", func(t *testing.T) {
		fd3, _, stderr, err := run(t, testprog.Build(t, "initfail"), "{}\n")
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 || fd3 != "" || !strings.Contains(stderr, "cannot load") {
			t.Fatalf("fd3 %q stderr %q err %v", fd3, stderr, err)
		}
	})
	t.Run("sleep", func(t *testing.T) {
		fd3, _, _, err := run(t, testprog.Build(t, "sleep"), `{"value":{"ms":20}}`+"\n", "{}\n")
		if err != nil || fd3 != `{"ok":true}`+"\n"+`{"slept":20}`+"\n"+`{"slept":0}`+"\n" {
			t.Fatalf("fd3 %q err %v", fd3, err)
		}
	})
	t.Run("logflood", func(t *testing.T) {
		fd3, stdout, _, err := run(t, testprog.Build(t, "logflood"), `{"value":{"lines":3}}`+"\n")
		y := strings.Repeat("y", 99) + "\n"
		if err != nil || fd3 != `{"ok":true}`+"\n"+`{"lines":3}`+"\n" || stdout != y+y+y {
			t.Fatalf("fd3 %q stdout %q err %v", fd3, stdout, err)
		}
	})
	t.Run("nonjson", func(t *testing.T) {
		fd3, _, _, err := run(t, testprog.Build(t, "nonjson"), "{}\n")
		if err != nil || fd3 != `{"ok":true}`+"\n"+"this is not json\n" {
			t.Fatalf("fd3 %q err %v", fd3, err)
		}
	})
}

// TestBuildCaches: a second Build reuses the executable; an edited source gets a new one.
func TestBuildCaches(t *testing.T) {
	a := testprog.Build(t, "nonjson")
	before, err := os.Stat(a)
	if err != nil {
		t.Fatal(err)
	}
	if b := testprog.Build(t, "nonjson"); b != a {
		t.Fatalf("second Build %s, first %s", b, a)
	}
	if after, err := os.Stat(a); err != nil || !after.ModTime().Equal(before.ModTime()) {
		t.Fatalf("second Build rebuilt %s: %v", a, err)
	}
	src := filepath.Join(t.TempDir(), "nonjson.c")
	orig, _ := testprog.Source("nonjson")
	edited := strings.Replace(string(orig), "this is not json", "still not json", 1)
	if err := os.WriteFile(src, []byte(edited), 0o600); err != nil {
		t.Fatal(err)
	}
	c := testprog.BuildFile(t, src)
	if c == a || filepath.Base(c) != "nonjson" {
		t.Fatalf("BuildFile of an edited source: %s (unedited %s)", c, a)
	}
	if fd3, _, _, err := run(t, c, "{}\n"); err != nil || fd3 != `{"ok":true}`+"\n"+"still not json\n" {
		t.Fatalf("edited program: fd3 %q err %v", fd3, err)
	}
}

func TestCompile(t *testing.T) {
	dir := t.TempDir()
	exe, err := testprog.Compile(dir, "echo")
	if err != nil || exe != filepath.Join(dir, "echo") {
		t.Fatalf("Compile: %q %v", exe, err)
	}
	if fd3, _, _, err := run(t, exe, "1\n"); err != nil || fd3 != `{"ok":true}`+"\n"+`{"echo":1}`+"\n" {
		t.Fatalf("compiled echo: fd3 %q err %v", fd3, err)
	}
	if _, err := testprog.Compile(dir, "nosuch"); !errors.Is(err, testprog.ErrUnknown) {
		t.Fatalf("Compile(nosuch): %v", err)
	}
	t.Setenv("PATH", t.TempDir()) // no gcc here
	if _, err := testprog.Compile(dir, "echo"); !errors.Is(err, testprog.ErrCompile) || !strings.Contains(err.Error(), "gcc is missing") {
		t.Fatalf("Compile without gcc: %v", err)
	}
}

func TestZipBase64(t *testing.T) {
	files := map[string]string{"exec": "\x7fELF", "dir/helper.py": "x = 1\n"}
	enc := testprog.ZipBase64(t, files)
	if again := testprog.ZipBase64(t, files); again != enc {
		t.Fatal("the same files gave different archives")
	}
	raw, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(raw), int64(len(raw)))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		got[f.Name] = string(b)
	}
	if !maps.Equal(got, files) {
		t.Fatalf("archive holds %q, want %q", got, files)
	}
}
