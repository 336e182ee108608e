package procdriver_test

import (
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/snapinvoker/snapinvoker/backend"
	"github.com/snapinvoker/snapinvoker/backend/backendtest"
	"github.com/snapinvoker/snapinvoker/backend/backendtest/procdriver"
)

// sample builds a native sample and returns it as binary /init code.
func sample(t *testing.T, dir, name string) backendtest.Code {
	t.Helper()
	exe, err := procdriver.BuildSample(dir, name)
	if err != nil {
		t.Fatal(err)
	}
	code, err := procdriver.EncodeExecutable(exe)
	if err != nil {
		t.Fatal(err)
	}
	return backendtest.Code{Code: code, Binary: true}
}

// TestConformance proves the conformance suite on a real driver.
func TestConformance(t *testing.T) {
	dir := t.TempDir()
	backendtest.Run(t, func(t *testing.T) backend.Driver {
		d, err := procdriver.New(backend.Config{Logger: zaptest.NewLogger(t), DataDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}, backendtest.Actions{
		Kind:        "blackbox",
		Native:      true,
		Echo:        sample(t, dir, "echo"),
		InitFail:    sample(t, dir, "initfail"),
		Sleep:       sample(t, dir, "sleep"),
		LogFlood:    sample(t, dir, "logflood"),
		NonJSON:     sample(t, dir, "nonjson"),
		NonJSONBody: []byte("this is not json"),
	})
}
