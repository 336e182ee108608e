package container

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/snapinvoker/snapinvoker/activation"
	"github.com/snapinvoker/snapinvoker/backend"
)

// This machine has no Docker engine, so the docker engine is tested against fakeDocker: an
// httptest-style server on a unix socket speaking the Engine API paths the driver uses. Each
// "container" it starts is our real proxy (ServeProxy, in process) with a real launcher on
// 127.0.0.N:<port>, its stdout/stderr framed into the API's multiplexed log stream, so the
// protocol client, the log collection and the launchers are the same code as with runc. What
// this cannot show: that a real engine accepts the create body, image pulls, real OOM kills.

type fakeContainer struct {
	id, name string
	create   map[string]any
	ip       string
	logsR    *io.PipeReader
	logsW    *io.PipeWriter
	cancel   context.CancelFunc
	oom      bool
}

type fakeDocker struct {
	t       *testing.T
	port    int
	mu      sync.Mutex
	calls   []string
	byID    map[string]*fakeContainer
	n       int
	workDir string
}

// frameWriter frames each write as one multiplexed log frame of stream s.
type frameWriter struct {
	mu *sync.Mutex
	w  io.Writer
	s  byte
}

func (f frameWriter) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.w.Write(frame(f.s, string(p))); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (d *fakeDocker) record(r *http.Request) {
	d.mu.Lock()
	d.calls = append(d.calls, r.Method+" "+r.URL.Path)
	d.mu.Unlock()
}

func (d *fakeDocker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	d.record(r)
	path := r.URL.Path
	writeJSON := func(status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(v)
	}
	parts := strings.Split(strings.Trim(path, "/"), "/")
	switch {
	case path == "/_ping":
		w.Write([]byte("OK"))
	case path == "/containers/json":
		writeJSON(200, []map[string]any{
			{"Id": "leftover1", "Names": []string{"/wsk0_7_prewarm_nodejs_20"}},
			{"Id": "stranger", "Names": []string{"/wsk0x_not_ours"}},
		})
	case path == "/images/create":
		if r.URL.Query().Get("fromImage") == "example/missing" {
			writeJSON(404, map[string]string{"message": "pull access denied for example/missing"})
			return
		}
		w.WriteHeader(200)
	case path == "/containers/create":
		var body map[string]any
		json.NewDecoder(r.Body).Decode(&body)
		if body["Image"] == "example/noexec:latest" {
			d.mu.Lock()
			d.n++
			id := fmt.Sprintf("c%d", d.n)
			d.byID[id] = &fakeContainer{id: id, name: r.URL.Query().Get("name"), create: body, ip: "127.0.0.1"}
			d.mu.Unlock()
			writeJSON(201, map[string]string{"Id": id})
			return
		}
		d.mu.Lock()
		d.n++
		c := &fakeContainer{id: fmt.Sprintf("c%d", d.n), name: r.URL.Query().Get("name"), create: body, ip: fmt.Sprintf("127.0.0.%d", d.n+1)}
		c.logsR, c.logsW = io.Pipe()
		d.byID[c.id] = c
		d.mu.Unlock()
		writeJSON(201, map[string]string{"Id": c.id})
	case len(parts) == 3 && parts[0] == "containers" && r.Method == http.MethodPost && parts[2] == "start":
		c := d.get(parts[1])
		if c == nil {
			writeJSON(404, map[string]string{"message": "no such container"})
			return
		}
		if c.create["Image"] == "example/noexec:latest" {
			writeJSON(400, map[string]string{"message": `failed to create shim task: OCI runtime create failed: exec: "/action/exec": executable file not found in $PATH`})
			return
		}
		ctx, cancel := context.WithCancel(context.Background())
		c.cancel = cancel
		var mu sync.Mutex
		os.MkdirAll(filepath.Join(d.workDir, c.id), 0o755)
		go ServeProxy(ctx, ProxyConfig{Listen: "tcp:" + net.JoinHostPort(c.ip, fmt.Sprint(d.port)), Kind: "nodejs:20",
			WorkDir: filepath.Join(d.workDir, c.id), Stdout: frameWriter{&mu, c.logsW, 1}, Stderr: frameWriter{&mu, c.logsW, 2},
			Env: []string{"PATH=/usr/bin:/bin", "__OW_API_HOST=" + envOf(c.create, "__OW_API_HOST")}})
		// Wait for the proxy to listen, as `docker start` returns once the process runs.
		for i := 0; i < 500; i++ {
			if conn, err := net.Dial("tcp", net.JoinHostPort(c.ip, fmt.Sprint(d.port))); err == nil {
				conn.Close()
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		w.WriteHeader(204)
	case len(parts) == 3 && parts[0] == "containers" && parts[2] == "json":
		c := d.get(parts[1])
		if c == nil {
			writeJSON(404, map[string]string{"message": "no such container"})
			return
		}
		writeJSON(200, map[string]any{"State": map[string]any{"OOMKilled": c.oom, "Running": true},
			"NetworkSettings": map[string]any{"Networks": map[string]any{"bridge": map[string]string{"IPAddress": c.ip}}}})
	case len(parts) == 3 && parts[0] == "containers" && parts[2] == "logs":
		c := d.get(parts[1])
		if c == nil || r.URL.Query().Get("follow") != "1" {
			writeJSON(400, map[string]string{"message": "bad logs request"})
			return
		}
		w.Header().Set("Content-Type", "application/vnd.docker.raw-stream")
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		buf := make([]byte, 32<<10)
		for {
			n, err := c.logsR.Read(buf)
			if n > 0 {
				w.Write(buf[:n])
				w.(http.Flusher).Flush()
			}
			if err != nil {
				return
			}
		}
	case len(parts) == 3 && parts[0] == "containers" && (parts[2] == "pause" || parts[2] == "unpause"):
		w.WriteHeader(204)
	case len(parts) == 2 && parts[0] == "containers" && r.Method == http.MethodDelete:
		if r.URL.Query().Get("force") != "1" {
			writeJSON(409, map[string]string{"message": "container is running: stop it first or use force"})
			return
		}
		if c := d.get(parts[1]); c != nil {
			if c.cancel != nil {
				c.cancel()
			}
			if c.logsW != nil {
				c.logsW.Close()
			}
		}
		w.WriteHeader(204)
	default:
		writeJSON(404, map[string]string{"message": "page not found: " + path})
	}
}

func envOf(body map[string]any, key string) string {
	env, _ := body["Env"].([]any)
	for _, e := range env {
		if s, _ := e.(string); strings.HasPrefix(s, key+"=") {
			return strings.TrimPrefix(s, key+"=")
		}
	}
	return ""
}

func (d *fakeDocker) get(id string) *fakeContainer {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.byID[id]
}

func (d *fakeDocker) called(prefix string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, c := range d.calls {
		if strings.HasPrefix(c, prefix) {
			n++
		}
	}
	return n
}

func newFakeDocker(t *testing.T) (*fakeDocker, string) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	d := &fakeDocker{t: t, port: port, byID: map[string]*fakeContainer{}, workDir: t.TempDir()}
	sock := filepath.Join(t.TempDir(), "docker.sock")
	ul, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: d}
	go srv.Serve(ul)
	t.Cleanup(func() { srv.Close() })
	return d, sock
}

func TestDockerEngine(t *testing.T) {
	fake, sock := newFakeDocker(t)
	d, err := New(context.Background(), backend.Config{Logger: zaptest.NewLogger(t), Options: map[string]string{
		"engine": "docker", "docker-host": "unix://" + sock, "runtime-port": fmt.Sprint(fake.port),
		"image.nodejs:20": "openwhisk/action-nodejs-v20:nightly", "api-host": "https://api.example:443",
		"user-memory": fmt.Sprint(1 << 30),
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	// Leftovers named wsk0_* were removed at start, and nothing else.
	if fake.called("DELETE /containers/leftover1") != 1 || fake.called("DELETE /containers/stranger") != 0 {
		t.Fatalf("leftover cleanup: %v", fake.calls)
	}
	if err := Probe(context.Background(), backend.Config{Options: map[string]string{"engine": "docker", "docker-host": "unix://" + sock}}); err != nil {
		t.Fatalf("probe: %v", err)
	}

	in, err := d.Start(context.Background(), backend.StartSpec{Kind: "nodejs:20", Memory: 256 << 20})
	if err != nil {
		t.Fatal(err)
	}
	c := fake.get("c1")
	if c == nil || c.name != "wsk0_1_prewarm_nodejs_20" {
		t.Fatalf("container name: %+v", c)
	}
	want := `{"Env":["__OW_API_HOST=https://api.example:443"],"HostConfig":{"CapDrop":["NET_RAW","NET_ADMIN"],"CpuShares":256,` +
		`"LogConfig":{"Config":{},"Type":"json-file"},"Memory":268435456,"MemorySwap":268435456,"NetworkMode":"bridge",` +
		`"PidsLimit":1024,"Ulimits":[{"Hard":1024,"Name":"nofile","Soft":1024}]},"Image":"openwhisk/action-nodejs-v20:nightly"}`
	if got, _ := json.Marshal(c.create); string(got) != want {
		t.Fatalf("create body\n%s\nwant\n%s", got, want)
	}

	// Init and run through the real proxy and launcher, logs through the multiplexed stream.
	r, err := in.Init(context.Background(), backend.InitRequest{Body: initBody(readSample(t, "nodejs", "hello.js"), "main", false), Deadline: time.Now().Add(30 * time.Second)})
	if err != nil || r.Outcome.Status != 200 {
		t.Fatalf("init: %v %+v", err, r.Outcome)
	}
	for _, name := range []string{"Docker", "Again"} {
		r = doRun(t, in, map[string]any{"name": name}, 30*time.Second, 1<<20, 0)
		wantJSON(t, r.Outcome.Body, fmt.Sprintf(`{"greeting":"Hello, %s!"}`, name))
		if got := texts(r); len(got) != 1 || got[0] != "stdout:hello called for "+name {
			t.Fatalf("logs %q", got)
		}
	}
	p := in.(backend.Pauser)
	if err := p.Pause(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := p.Resume(context.Background()); err != nil {
		t.Fatal(err)
	}
	if fake.called("POST /containers/c1/pause") != 1 || fake.called("POST /containers/c1/unpause") != 1 {
		t.Fatalf("pause/unpause: %v", fake.calls)
	}
	// OOM comes from inspect's State.OOMKilled when the connection drops.
	fake.mu.Lock()
	c.oom = true
	fake.mu.Unlock()
	if err := in.Destroy(context.Background()); err != nil {
		t.Fatal(err)
	}
	if fake.called("DELETE /containers/c1") != 1 {
		t.Fatalf("destroy: %v", fake.calls)
	}

	// A blackbox image that cannot be pulled with tag latest is the action's fault.
	_, err = d.Start(context.Background(), backend.StartSpec{Kind: "blackbox", Memory: 128 << 20,
		Action: &backend.Action{Kind: "blackbox", Image: "example/missing", Namespace: "guest", Name: "guest/bb"}})
	if !errors.Is(err, backend.ErrActionFailed) || !strings.Contains(err.Error(), "Failed to pull container image 'example/missing'.") {
		t.Fatalf("pull failure: %v", err)
	}
	// An image without the executable is the action's fault too.
	_, err = d.Start(context.Background(), backend.StartSpec{Kind: "blackbox", Memory: 128 << 20,
		Action: &backend.Action{Kind: "blackbox", Image: "example/noexec:latest", Native: true, Namespace: "guest", Name: "guest/bb"}})
	if !errors.Is(err, backend.ErrActionFailed) || !strings.Contains(err.Error(), "executable file not found in image example/noexec:latest") {
		t.Fatalf("no exec: %v", err)
	}
	if c2 := fake.get("c2"); c2 == nil || c2.name != "wsk0_2_guest_bb" {
		t.Fatalf("cold container: %+v", fake.get("c2"))
	}
	// A kind without an image is unsupported here.
	if _, err := d.Start(context.Background(), backend.StartSpec{Kind: "python:3.11", Memory: 128 << 20}); !errors.Is(err, backend.ErrUnsupported) {
		t.Fatalf("kind without image: %v", err)
	}
}

func TestDockerOOM(t *testing.T) {
	fake, sock := newFakeDocker(t)
	d, err := New(context.Background(), backend.Config{Options: map[string]string{
		"engine": "docker", "docker-host": "unix://" + sock, "runtime-port": fmt.Sprint(fake.port),
		"image.nodejs:20": "openwhisk/action-nodejs-v20:nightly"}})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	in, err := d.Start(context.Background(), backend.StartSpec{Kind: "nodejs:20", Memory: 256 << 20})
	if err != nil {
		t.Fatal(err)
	}
	mustInit(t, in, readSample(t, "nodejs", "exit.js"), "main")
	fake.get("c1").oom = true // what docker inspect reports after the kernel killed the runtime
	r := doRun(t, in, map[string]any{}, 30*time.Second, 1<<20, 0)
	if r.Outcome.Failure != activation.FailureOOM {
		t.Fatalf("failure %v, want oom", r.Outcome.Failure)
	}
}
