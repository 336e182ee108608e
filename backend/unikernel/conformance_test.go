package unikernel

import (
	"context"
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/snapinvoker/snapinvoker/backend"
	"github.com/snapinvoker/snapinvoker/backend/backendtest"
)

// TestConformance runs the shared driver suite with the native sample actions, the shared
// programs of internal/testprog (echo is /work/shared/testdata/actions/native/echo.c).
func TestConformance(t *testing.T) {
	requireKVM(t)
	backendtest.Run(t, func(t *testing.T) backend.Driver {
		d, err := New(context.Background(), backend.Config{Logger: zaptest.NewLogger(t), DataDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}, backendtest.Actions{
		Kind:     "blackbox",
		Image:    "openwhisk/dockerskeleton",
		Native:   true,
		Echo:     code(t, "echo"),
		InitFail: code(t, "initfail"),
		Sleep:    code(t, "sleep"),
		LogFlood: code(t, "logflood"),
		NonJSON:  code(t, "nonjson"),
	})
}
