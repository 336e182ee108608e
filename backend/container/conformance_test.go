package container

import (
	"os"
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/snapinvoker/snapinvoker/backend"
	"github.com/snapinvoker/snapinvoker/backend/backendtest"
)

// TestConformance runs the shared driver suite on the runc engine with real node and python3.
func TestConformance(t *testing.T) {
	newDriver := func(t *testing.T) backend.Driver {
		requireRunc(t)
		self, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		d, err := New(t.Context(), backend.Config{Logger: zaptest.NewLogger(t), DataDir: t.TempDir(),
			Options: map[string]string{"proxy": self}})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	for _, k := range []struct {
		kind, dir, ext, nonJSON, nonJSONBody string
	}{
		{"nodejs:20", "nodejs", ".js", "function main() { return 'not an object'; }", `{"error":"The action did not return a dictionary."}`},
		{"python:3.11", "python", ".py", "def main(args):\n    return 'not an object'\n", `{"error":"The action did not return a dictionary or array."}`},
	} {
		t.Run(k.dir, func(t *testing.T) {
			code := func(name string) backendtest.Code { return backendtest.Code{Code: readSample(t, k.dir, name+k.ext)} }
			backendtest.Run(t, newDriver, backendtest.Actions{
				Kind:        k.kind,
				Memory:      128 << 20,
				Echo:        code("echo"),
				InitFail:    code("initfail"),
				Sleep:       code("sleep"),
				LogFlood:    code("logflood"),
				NonJSON:     backendtest.Code{Code: k.nonJSON},
				NonJSONBody: []byte(k.nonJSONBody),
			})
		})
	}
}
