package procdriver

import (
	"embed"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// samples are the C sources of the native sample actions in testdata/: echo (a copy of
// shared/testdata/actions/native/echo.c), initfail, sleep, logflood and nonjson.
//
//go:embed testdata/*.c
var samples embed.FS

// BuildSample compiles the named sample action (e.g. "echo") with gcc -static into dir and
// returns the executable's path. Tests use it to get real actionloop executables.
func BuildSample(dir, name string) (string, error) {
	src, err := samples.ReadFile("testdata/" + name + ".c")
	if err != nil {
		return "", fmt.Errorf("procdriver: sample %q: %w", name, err)
	}
	c := filepath.Join(dir, name+".c")
	if err := os.WriteFile(c, src, 0o600); err != nil {
		return "", fmt.Errorf("procdriver: sample %q: %w", name, err)
	}
	exe := filepath.Join(dir, name)
	out, err := exec.Command("gcc", "-static", "-O2", "-o", exe, c).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("procdriver: gcc -static %s (install gcc and libc6-dev): %w: %s", name, err, out)
	}
	return exe, nil
}

// EncodeExecutable reads an executable and returns it base64-encoded, the form of a binary
// action's code in /init.
func EncodeExecutable(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("procdriver: %w", err)
	}
	return base64.StdEncoding.EncodeToString(b), nil
}
