package procdriver

import (
	"encoding/base64"
	"fmt"
	"os"

	"github.com/snapinvoker/snapinvoker/internal/testprog"
)

// BuildSample compiles the named sample action (echo, initfail, sleep, logflood or nonjson: the
// shared programs of internal/testprog) with gcc -static into dir and returns the executable's
// path. Tests use it to get real actionloop executables.
func BuildSample(dir, name string) (string, error) {
	exe, err := testprog.Compile(dir, name)
	if err != nil {
		return "", fmt.Errorf("procdriver: sample %q: %w", name, err)
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
