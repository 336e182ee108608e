package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/snapinvoker/snapinvoker/controller"
	"github.com/snapinvoker/snapinvoker/controller/standalone"
	"github.com/snapinvoker/snapinvoker/e2e/owclient"
)

// samples are the sample actions with a kind this controller's default manifest knows.
var samples = []struct{ file, kind string }{
	{"nodejs/hello.js", "nodejs:default"}, {"nodejs/echo.js", "nodejs:default"}, {"nodejs/apperror.js", "nodejs:default"},
	{"nodejs/array.js", "nodejs:default"}, {"nodejs/unicode.js", "nodejs:default"}, {"nodejs/context.js", "nodejs:default"},
	{"nodejs/sleep.js", "nodejs:default"}, {"nodejs/promise.js", "nodejs:default"},
	{"python/hello.py", "python:default"}, {"python/echo.py", "python:default"}, {"python/apperror.py", "python:default"},
	{"python/array.py", "python:default"}, {"python/unicode.py", "python:default"}, {"python/context.py", "python:default"},
	{"python/sleep.py", "python:default"},
}

func actionName(file string) string {
	return strings.NewReplacer("/", "-", ".", "-").Replace(file)
}

func TestActionLifecycle(t *testing.T) {
	in := startT(t)
	ctx := ctxT(t)
	c := in.guest
	for _, s := range samples {
		name := actionName(s.file)
		code := sample(t, s.file)
		a, err := c.PutAction(ctx, name, owclient.Action{Exec: &owclient.Exec{Kind: s.kind, Code: &code}}, false)
		if err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
		if a.Namespace != "guest" || a.Version != "0.0.1" || a.Exec.Code == nil || *a.Exec.Code != code || strings.HasSuffix(a.Exec.Kind, ":default") {
			t.Fatalf("create %s answered %+v", name, a)
		}
		// Again without overwrite: 409.
		if _, err := c.PutAction(ctx, name, owclient.Action{Exec: &owclient.Exec{Kind: s.kind, Code: &code}}, false); owclient.StatusOf(err) != http.StatusConflict {
			t.Fatalf("second create of %s: %v, want 409", name, err)
		}
		got, err := c.GetAction(ctx, name, false)
		if err != nil || got.Exec.Code != nil || got.Exec.Kind != a.Exec.Kind {
			t.Fatalf("get %s ?code=false: %+v %v", name, got, err)
		}
		up, err := c.PutAction(ctx, name, owclient.Action{Parameters: []owclient.KeyValue{{Key: "name", Value: "e2e"}}}, true)
		if err != nil || up.Version != "0.0.2" || len(up.Parameters) != 1 || up.Exec.Code == nil || *up.Exec.Code != code {
			t.Fatalf("update %s: %+v %v", name, up, err)
		}
	}
	list, err := c.ListActions(ctx, 0, 0)
	if err != nil || len(list) != len(samples) {
		t.Fatalf("list: %d actions, %v; want %d", len(list), err, len(samples))
	}
	for _, a := range list {
		if a.Exec == nil || a.Exec.Code != nil || a.Parameters != nil {
			t.Fatalf("list row carries code or parameters: %+v", a)
		}
	}
	if _, err := c.DeleteAction(ctx, actionName(samples[0].file)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetAction(ctx, actionName(samples[0].file), true); owclient.StatusOf(err) != http.StatusNotFound {
		t.Fatalf("get after delete: %v, want 404", err)
	}
}

func TestErrorsCarryTheEnvelope(t *testing.T) {
	in := startT(t)
	ctx := ctxT(t)
	code := sample(t, "nodejs/echo.js")
	if _, err := in.guest.PutAction(ctx, "echo", owclient.Action{Exec: &owclient.Exec{Kind: "nodejs:default", Code: &code}}, false); err != nil {
		t.Fatal(err)
	}
	wrong := owclient.New(in.APIHost, strings.Replace(controller.GuestKey, "123z", "999z", 1))
	none := owclient.New(in.APIHost, "")
	bigBody := append(append([]byte(`{"a":"`), bytes.Repeat([]byte("x"), 1<<20)...), `"}`...)
	for _, tc := range []struct {
		name   string
		do     func() (*owclient.Response, error)
		status int
		text   string
	}{
		{"wrong key", func() (*owclient.Response, error) { return wrong.Do(ctx, "GET", "/api/v1/namespaces", nil, nil) },
			401, "The supplied authentication is invalid"},
		{"no key", func() (*owclient.Response, error) {
			return none.Do(ctx, "GET", "/api/v1/namespaces/_/actions", nil, nil)
		},
			401, "The resource requires authentication, which was not supplied with the request"},
		{"other namespace", func() (*owclient.Response, error) {
			return in.other.Do(ctx, "GET", "/api/v1/namespaces/guest/actions/echo", nil, nil)
		}, 403, "The supplied authentication is not authorized to access this resource."},
		{"whisk.system reads guest", func() (*owclient.Response, error) {
			return in.system.Do(ctx, "POST", "/api/v1/namespaces/guest/actions/echo", nil, nil)
		}, 403, "The supplied authentication is not authorized to access this resource."},
		{"other subject's action through _", func() (*owclient.Response, error) {
			return in.other.Do(ctx, "GET", "/api/v1/namespaces/_/actions/echo", nil, nil)
		}, 404, "The requested resource does not exist."},
		{"missing action", func() (*owclient.Response, error) {
			return in.guest.Do(ctx, "POST", "/api/v1/namespaces/_/actions/nope", nil, nil)
		}, 404, "The requested resource does not exist."},
		{"unknown route", func() (*owclient.Response, error) { return in.guest.Do(ctx, "GET", "/api/v2/x", nil, nil) },
			404, "The requested resource could not be found."},
		{"malformed JSON", func() (*owclient.Response, error) {
			return in.guest.Do(ctx, "PUT", "/api/v1/namespaces/_/actions/bad", nil, []byte(`{"exec":{"kind":`))
		}, 400, "The request content was malformed:\n"},
		{"unknown kind", func() (*owclient.Response, error) {
			return in.guest.Do(ctx, "PUT", "/api/v1/namespaces/_/actions/bad", nil, []byte(`{"exec":{"kind":"cobol:85","code":"x"}}`))
		}, 400, "The request content was malformed:\nThe specified runtime 'cobol:85' is not supported by this platform. Valid values are: '"},
		{"memory over the limit", func() (*owclient.Response, error) {
			return in.guest.Do(ctx, "PUT", "/api/v1/namespaces/_/actions/bad", nil, []byte(`{"exec":{"kind":"nodejs:default","code":"x"},"limits":{"memory":1024}}`))
		}, 400, "The request content was malformed:\nrequirement failed: memory 1024 MB exceeds allowed threshold of 512 MB"},
		{"oversized invoke body", func() (*owclient.Response, error) {
			return in.guest.Do(ctx, "POST", "/api/v1/namespaces/_/actions/echo", nil, bigBody)
		}, 413, "Request larger than allowed: 1048584 > 1048576 bytes."},
		{"bad limit", func() (*owclient.Response, error) {
			return in.guest.Do(ctx, "GET", "/api/v1/namespaces/_/activations?limit=500", nil, nil)
		}, 400, "The value '500' is not in the range of 0 to 200 for activations."},
		{"bad activation id", func() (*owclient.Response, error) {
			return in.guest.Do(ctx, "GET", "/api/v1/namespaces/_/activations/1234", nil, nil)
		}, 400, "Activation id length is 4 but must be 32."},
		{"exists", func() (*owclient.Response, error) {
			return in.guest.Do(ctx, "PUT", "/api/v1/namespaces/_/actions/echo", nil, []byte(`{"exec":{"kind":"nodejs:default","code":"x"}}`))
		}, 409, "resource already exists"},
	} {
		r, err := tc.do()
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		var env struct{ Error, Code string }
		if json.Unmarshal(r.Body, &env) != nil {
			t.Errorf("%s: body is not the envelope: %s", tc.name, r.Body)
			continue
		}
		if r.Status != tc.status || !strings.HasPrefix(env.Error, tc.text) {
			t.Errorf("%s: %d %q, want %d %q", tc.name, r.Status, env.Error, tc.status, tc.text)
		}
		if env.Code == "" || env.Code != r.RequestID {
			t.Errorf("%s: code %q is not the X-Request-ID %q", tc.name, env.Code, r.RequestID)
		}
	}
}

// TestRequestIDIsKept: an incoming X-Request-ID is the transaction id, unless it claims a
// system transaction.
func TestRequestIDIsKept(t *testing.T) {
	in := startT(t)
	for _, tc := range []struct{ sent, keep bool }{{true, true}, {false, false}} {
		id := "abcdefghijklmnopqrstuvwxyz012345"
		if !tc.sent {
			id = "sid_invokerHealth"
		}
		req, _ := http.NewRequest("GET", in.APIHost+"/api/v1/namespaces/_/actions/none", nil)
		req.SetBasicAuth(strings.Split(controller.GuestKey, ":")[0], strings.Split(controller.GuestKey, ":")[1])
		req.Header.Set("X-Request-ID", id)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("X-Request-ID"); (got == id) != tc.keep {
			t.Errorf("sent %q, answered %q", id, got)
		}
	}
}

func TestRestartKeepsActionsAndCleanWipes(t *testing.T) {
	dir := t.TempDir()
	ctx := ctxT(t)
	in := start(t, dir, false)
	code := sample(t, "python/hello.py")
	if _, err := in.guest.PutAction(ctx, "keep", owclient.Action{Exec: &owclient.Exec{Kind: "python:default", Code: &code}}, false); err != nil {
		t.Fatal(err)
	}
	if _, err := in.guest.PutAction(ctx, "keep", owclient.Action{Limits: &owclient.Limits{Memory: 128}}, true); err != nil {
		t.Fatal(err)
	}
	if err := in.Close(); err != nil {
		t.Fatal(err)
	}

	in = start(t, dir, false)
	a, err := in.guest.GetAction(ctx, "keep", true)
	if err != nil || a.Version != "0.0.2" || a.Limits.Memory != 128 || *a.Exec.Code != code {
		t.Fatalf("after restart: %+v %v", a, err)
	}
	// The users bootstrapped on the first start still authenticate.
	if ns, err := in.other.Namespaces(ctx); err != nil || len(ns) != 1 || ns[0] != "other.ns" {
		t.Fatalf("namespaces after restart: %v %v", ns, err)
	}
	in.Close()

	in = start(t, dir, true)
	defer in.Close()
	if _, err := in.guest.GetAction(ctx, "keep", true); owclient.StatusOf(err) != http.StatusNotFound {
		t.Fatalf("after --clean: %v, want 404", err)
	}
}

func TestSecondInstanceOnTheSameDataDirIsRefused(t *testing.T) {
	dir := t.TempDir()
	in := start(t, dir, false)
	defer in.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if s, err := standalone.Start(ctx, standalone.Options{DataDir: dir}); err == nil {
		s.Close()
		t.Fatal("a second standalone opened a data directory in use")
	}
}

func TestBannerAndInfoEndpoints(t *testing.T) {
	in := startT(t)
	var b bytes.Buffer
	in.Banner(&b)
	out := b.String()
	for _, want := range []string{in.APIHost, controller.GuestKey,
		"wsk property set --apihost " + in.APIHost + " --auth " + controller.GuestKey, "DRIVER"} {
		if !strings.Contains(out, want) {
			t.Errorf("banner lacks %q:\n%s", want, out)
		}
	}
	for _, d := range in.Drivers {
		if !strings.Contains(out, d.Name) {
			t.Errorf("banner lacks driver %s:\n%s", d.Name, out)
		}
	}
	ctx := ctxT(t)
	r, err := in.guest.Do(ctx, "GET", "/", nil, nil)
	if err != nil || r.Status != 200 {
		t.Fatalf("GET /: %v %v", r, err)
	}
	var root struct {
		Runtimes map[string][]struct{ Kind string } `json:"runtimes"`
	}
	if err := json.Unmarshal(r.Body, &root); err != nil || len(root.Runtimes) == 0 {
		t.Fatalf("GET / runtimes: %s", r.Body)
	}
	for _, fam := range root.Runtimes {
		for _, k := range fam {
			found := false
			for _, have := range in.Kinds {
				found = found || have == k.Kind
			}
			if !found {
				t.Errorf("GET / lists %s, the manifest in use has %v", k.Kind, in.Kinds)
			}
		}
	}
	if r, _ := in.guest.Do(ctx, "GET", "/ping", nil, nil); r == nil || string(r.Body) != "pong" {
		t.Fatalf("GET /ping: %v", r)
	}
}

// TestCustomManifest: -m replaces the built-in manifest; kinds outside it are refused.
func TestCustomManifest(t *testing.T) {
	ctx := ctxT(t)
	s, err := standalone.Start(ctx, standalone.Options{Port: 0, DataDir: t.TempDir(),
		Manifest: []byte(`{"runtimes":{"python":[{"kind":"python:3.11","default":true,"image":{"name":"p"}}]}}`)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c := owclient.New(s.APIHost, controller.GuestKey)
	if _, err := c.PutAction(ctx, "n", owclient.Action{Exec: &owclient.Exec{Kind: "nodejs:default", Code: owclient.Code("x")}}, false); owclient.StatusOf(err) != 400 {
		t.Fatalf("nodejs action with a python-only manifest: %v, want 400", err)
	}
	if _, err := c.PutAction(ctx, "p", owclient.Action{Exec: &owclient.Exec{Kind: "python:default", Code: owclient.Code("x")}}, false); err != nil {
		t.Fatal(err)
	}
	if _, err := standalone.Start(ctx, standalone.Options{Port: 0, DataDir: t.TempDir(), Manifest: []byte(`{"runtimes":`)}); err == nil {
		t.Fatal("an invalid manifest was accepted")
	}
}

// TestBinaryShutsDownOnInterrupt builds the snapinvoker binary, starts `standalone`, waits
// for the API, sends SIGINT (Ctrl-C) and expects a clean exit.
func TestBinaryShutsDownOnInterrupt(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "snapinvoker")
	build := exec.Command("go", "build", "-o", bin, "../cmd/snapinvoker")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	dir := t.TempDir()
	cmd := exec.Command(bin, "standalone", "--port", "0", "--data-dir", dir)
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	var host string
	deadline := time.Now().Add(time.Minute)
	for host == "" && time.Now().Before(deadline) {
		for _, line := range strings.Split(out.String(), "\n") {
			if i := strings.Index(line, "--apihost "); i >= 0 {
				host = strings.Fields(line[i+len("--apihost "):])[0]
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	if host == "" {
		t.Fatalf("no wsk line in the output:\n%s", out.String())
	}
	c := owclient.New(host, controller.GuestKey)
	if ns, err := c.Namespaces(context.Background()); err != nil || ns[0] != "guest" {
		t.Fatalf("API not serving: %v %v", ns, err)
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGINT: %v\n%s", err, out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("still running 30 s after SIGINT:\n%s", out.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "whisks.log")); err != nil {
		t.Fatalf("data directory not used: %v", err)
	}
}

// syncBuffer is a bytes.Buffer a child process writes while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
