package e2e

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap"

	_ "github.com/snapinvoker/snapinvoker/backend/container" // the driver the invoker runs actions on
	"github.com/snapinvoker/snapinvoker/controller"
	"github.com/snapinvoker/snapinvoker/controller/standalone"
	"github.com/snapinvoker/snapinvoker/e2e/owclient"
)

// otherKey is a third subject, namespace other.ns, for the isolation tests.
const otherKey = "11111111-2222-4333-8444-555555555555:0123456789abcdef0123456789abcdef0123456789abcdef0123456789ABCDEF"

// invokerStarter is snapinvoker's invoker, in-process and unchanged, on the drivers this test
// binary registers (the container driver: runc with Debian's node and python3).
var invokerStarter = standalone.Invoker(nil)

// instance is one standalone started in-process for a test.
type instance struct {
	*standalone.Standalone
	guest, system, other *owclient.Client
}

// apiManifest is the manifest of the tests that need no invoker: it does not depend on the
// drivers this host has. With the invoker the manifest is the one built from the drivers.
var apiManifest = []byte(`{"runtimes":{
 "nodejs":[{"kind":"nodejs:20","default":true,"image":{"prefix":"openwhisk","name":"action-nodejs-v20","tag":"nightly"}}],
 "python":[{"kind":"python:3.11","default":true,"image":{"prefix":"openwhisk","name":"action-python-v3.11","tag":"nightly"}}]}}`)

// start runs a standalone without an invoker on a free port with its data in dir: the
// controller, Kafka and the store.
func start(t testing.TB, dir string, clean bool) *instance {
	return startWith(t, dir, clean, false)
}

// startWith runs a standalone, with the real invoker when withInvoker is set.
func startWith(t testing.TB, dir string, clean, withInvoker bool) *instance {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	o := standalone.Options{Manifest: apiManifest,
		Port: 0, DataDir: dir, Clean: clean, Users: map[string]string{"other.ns": otherKey},
		MaxWait: 30 * time.Second,
	}
	if os.Getenv("E2E_LOG") != "" {
		o.Logger, _ = zap.NewDevelopment()
	}
	if withInvoker {
		o.Manifest, o.StartInvoker = nil, invokerStarter
	}
	s, err := standalone.Start(ctx, o)
	if err != nil {
		t.Fatalf("standalone.Start: %v", err)
	}
	return &instance{Standalone: s,
		guest:  owclient.New(s.APIHost, controller.GuestKey),
		system: owclient.New(s.APIHost, controller.WhiskSystemKey),
		other:  owclient.New(s.APIHost, otherKey),
	}
}

// startT starts an instance without invoker that is closed when the test ends.
func startT(t testing.TB) *instance { return startTWith(t, false) }

// startTWith starts an instance that is closed when the test ends.
func startTWith(t testing.TB, withInvoker bool) *instance {
	in := startWith(t, shortTempDir(t), false, withInvoker)
	t.Cleanup(func() {
		if err := in.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return in
}

// sample reads a sample action from testdata/actions.
func sample(t testing.TB, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "actions", rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// shortTempDir is a temporary directory with a short path: the container driver puts a Unix
// socket under the data directory, and t.TempDir's paths (which contain the test's name) can
// exceed the 108-byte limit of a socket path.
func shortTempDir(t testing.TB) string {
	dir, err := os.MkdirTemp("", "sa")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}
