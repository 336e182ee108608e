package e2e

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/snapinvoker/snapinvoker/controller"
	"github.com/snapinvoker/snapinvoker/controller/standalone"
	"github.com/snapinvoker/snapinvoker/e2e/owclient"
)

// otherKey is a third subject, namespace other.ns, for the isolation tests.
const otherKey = "11111111-2222-4333-8444-555555555555:0123456789abcdef0123456789abcdef0123456789abcdef0123456789ABCDEF"

// invokerStarter is the real invoker, set by invoker_test.go once it is wired; nil runs the
// standalone without one.
var invokerStarter standalone.InvokerStarter

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

// start runs a standalone on a free port with its data in dir.
func start(t testing.TB, dir string, clean bool) *instance {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var manifest []byte
	if invokerStarter == nil {
		manifest = apiManifest
	}
	s, err := standalone.Start(ctx, standalone.Options{Manifest: manifest,
		Port: 0, DataDir: dir, Clean: clean, Users: map[string]string{"other.ns": otherKey},
		StartInvoker: invokerStarter, MaxWait: 30 * time.Second,
	})
	if err != nil {
		t.Fatalf("standalone.Start: %v", err)
	}
	return &instance{Standalone: s,
		guest:  owclient.New(s.APIHost, controller.GuestKey),
		system: owclient.New(s.APIHost, controller.WhiskSystemKey),
		other:  owclient.New(s.APIHost, otherKey),
	}
}

// startT starts an instance that is closed when the test ends.
func startT(t testing.TB) *instance {
	in := start(t, t.TempDir(), false)
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
