package container

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/snapinvoker/snapinvoker/activation"
	"github.com/snapinvoker/snapinvoker/runtimes"
)

// bootTimeout bounds how long the proxy waits for its launcher to boot before listening.
const bootTimeout = time.Minute

// maxRequestBody bounds /init and /run bodies the proxy accepts (the nodejs runtime's is 48 MB).
const maxRequestBody = 48 << 20

// ProxyConfig configures the runtime proxy that runs inside a container (`snapinvoker proxy`).
type ProxyConfig struct {
	// Listen is "unix:/path/to.sock" or "tcp:host:port" (a plain path means unix).
	Listen string
	// Kind is the exec kind the container serves ("nodejs:20", "python:3.11", "blackbox").
	Kind string
	// WorkDir holds the launcher and unpacked native executables (default os.TempDir()).
	WorkDir string
	// Interpreters run the launchers.
	Interpreters runtimes.Interpreters
	// Env is the launcher's environment before the init env is applied (default: PATH, HOME,
	// TMPDIR, LANG plus every __OW_* variable of the proxy's own environment).
	Env []string
	// Stdout and Stderr receive the action's log lines and the sentinels (default os.Stdout,
	// os.Stderr: the container's log).
	Stdout, Stderr io.Writer
	// Exit is called when the launcher died during a run, after the connection was dropped, and
	// the proxy has nothing left to serve (default: nothing; the proxy keeps answering 502 so the
	// invoker can inspect the container before destroying it).
	Exit func()
}

// proxy is the state of one container's runtime: at most one action, one launcher.
type proxy struct {
	cfg ProxyConfig

	mu       sync.Mutex // one step at a time, as the runtimes do without concurrency
	proc     *runtimes.Process
	ready    bool
	dead     bool
	initDone bool
	outMu    sync.Mutex
	procMu   sync.Mutex // guards proc for the reaper
}

// ServeProxy serves /init and /run until ctx ends. For a managed kind the launcher is started
// before the first request, so a prewarmed container has its interpreter booted.
func ServeProxy(ctx context.Context, cfg ProxyConfig) error {
	if cfg.WorkDir == "" {
		cfg.WorkDir = os.TempDir()
	}
	if cfg.Stdout == nil {
		cfg.Stdout = os.Stdout
	}
	if cfg.Stderr == nil {
		cfg.Stderr = os.Stderr
	}
	if cfg.Env == nil {
		cfg.Env = defaultLauncherEnv(cfg.WorkDir)
	}
	family, err := runtimes.FamilyOf(cfg.Kind)
	if err != nil {
		return fmt.Errorf("proxy: -kind: %w", err)
	}
	network, addr := "unix", cfg.Listen
	switch {
	case strings.HasPrefix(cfg.Listen, "tcp:"):
		network, addr = "tcp", strings.TrimPrefix(cfg.Listen, "tcp:")
	case strings.HasPrefix(cfg.Listen, "unix:"):
		addr = strings.TrimPrefix(cfg.Listen, "unix:")
	}
	if addr == "" {
		return fmt.Errorf("proxy: -listen is empty")
	}
	p := &proxy{cfg: cfg}
	if family != runtimes.Native {
		if err := p.startLauncher(ctx); err != nil {
			return err
		}
		// Listen only once the runtime has booted (blocked reading its init line): a started
		// container is then a ready stem cell, and /init measures the action's init alone.
		// If the kernel cannot tell, or the launcher died, /init reports what happens.
		bootCtx, cancel := context.WithTimeout(ctx, bootTimeout)
		p.proc.WaitIdle(bootCtx)
		cancel()
	}
	defer func() {
		if p.proc != nil {
			p.proc.Close()
		}
	}()
	if os.Getpid() == 1 {
		stop := make(chan struct{})
		defer close(stop)
		go reapOrphans(p.isLauncher, stop)
	}
	if network == "unix" {
		os.Remove(addr)
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		return fmt.Errorf("proxy: listen %s: %w", cfg.Listen, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /init", p.handleInit)
	mux.HandleFunc("POST /run", p.handleRun)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("proxy: serve: %w", err)
	}
	return nil
}

// isLauncher reports whether pid is the launcher process (reaped by os/exec, not the reaper).
func (p *proxy) isLauncher(pid int) bool {
	p.procMu.Lock()
	defer p.procMu.Unlock()
	return p.proc != nil && p.proc.Pid() == pid
}

func defaultLauncherEnv(workDir string) []string {
	env := []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + workDir, "TMPDIR=" + workDir, "LANG=C.UTF-8"}
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "__OW_") {
			env = append(env, kv)
		}
	}
	return env
}

func (p *proxy) onLog(l activation.LogLine) {
	w := p.cfg.Stdout
	if l.Stream == "stderr" {
		w = p.cfg.Stderr
	}
	p.outMu.Lock()
	io.WriteString(w, l.Text+"\n")
	p.outMu.Unlock()
}

func (p *proxy) sentinels() {
	p.outMu.Lock()
	io.WriteString(p.cfg.Stdout, Sentinel+"\n")
	io.WriteString(p.cfg.Stderr, Sentinel+"\n")
	p.outMu.Unlock()
}

func (p *proxy) startLauncher(ctx context.Context) error {
	name, script := runtimes.Launcher(p.cfg.Kind)
	path := filepath.Join(p.cfg.WorkDir, name)
	if err := os.WriteFile(path, script, 0o644); err != nil {
		return fmt.Errorf("proxy: writing the launcher: %w", err)
	}
	argv, err := p.cfg.Interpreters.Command(p.cfg.Kind, path)
	if err != nil {
		return fmt.Errorf("proxy: %w", err)
	}
	proc, err := runtimes.Start(ctx, runtimes.Options{Argv: argv, Env: p.cfg.Env, Dir: p.cfg.WorkDir, OnLog: p.onLog})
	if err != nil {
		return fmt.Errorf("proxy: %w", err)
	}
	p.procMu.Lock()
	p.proc = proc
	p.procMu.Unlock()
	return nil
}

func reply(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body)
}

func replyError(w http.ResponseWriter, status int, msg string) {
	b, _ := json.Marshal(map[string]string{"error": msg})
	reply(w, status, b)
}

// readBody reads a request body of at most maxRequestBody bytes. A larger body is answered
// with 413 naming the kind of body ("init" or "run"); an unreadable one (the client went away)
// gets no answer. It reports whether the handler should go on.
func readBody(w http.ResponseWriter, r *http.Request, kind string) ([]byte, bool) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBody+1))
	if err != nil {
		return nil, false
	}
	if len(body) > maxRequestBody {
		replyError(w, http.StatusRequestEntityTooLarge, "The "+kind+" body exceeds the limit.")
		return nil, false
	}
	return body, true
}

// dropConnection ends the exchange without a response, as a runtime that died would: the
// invoker reports "exited unexpectedly" (or the OOM text, from the cgroup's counters).
func (p *proxy) dropConnection() {
	p.dead = true
	if p.cfg.Exit != nil {
		go p.cfg.Exit()
	}
	panic(http.ErrAbortHandler)
}

type initValue struct {
	Main   string          `json:"main"`
	Code   *string         `json:"code"`
	Binary bool            `json:"binary"`
	Env    json.RawMessage `json:"env"`
}

func (p *proxy) handleInit(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	body, ok := readBody(w, r, "init")
	if !ok {
		return
	}
	if p.initDone {
		replyError(w, http.StatusForbidden, "Cannot initialize the action more than once.")
		return
	}
	var msg struct {
		Value json.RawMessage `json:"value"`
	}
	var v initValue
	if err := json.Unmarshal(body, &msg); err != nil || len(msg.Value) == 0 || json.Unmarshal(msg.Value, &v) != nil {
		replyError(w, http.StatusForbidden, "The init body must be a JSON object with an object \"value\".")
		return
	}
	if v.Code == nil || *v.Code == "" {
		replyError(w, http.StatusForbidden, "Missing main/no code to execute.")
		return
	}
	p.initDone = true
	if p.proc == nil { // native: the action's executable is the launcher
		if err := p.startNative(r.Context(), v); err != nil {
			p.sentinels()
			replyError(w, http.StatusBadGateway, err.Error())
			return
		}
	}
	res, err := p.proc.Init(r.Context(), msg.Value, 0)
	if err != nil {
		if errors.Is(err, runtimes.ErrExited) {
			p.dropConnection()
		}
		p.sentinels()
		replyError(w, http.StatusBadGateway, "The action did not initialize properly.")
		return
	}
	if res.Status != http.StatusOK {
		p.sentinels()
		reply(w, res.Status, res.Body)
		return
	}
	p.ready = true
	reply(w, http.StatusOK, []byte(`{"ok":true}`))
}

// startNative unpacks an actionloop executable (a base64 zip holding "exec", or the code itself)
// and starts it; its own {"ok":true} on fd 3 is the init ack.
func (p *proxy) startNative(ctx context.Context, v initValue) error {
	dir := filepath.Join(p.cfg.WorkDir, "action")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("cannot create the action directory: %v", err)
	}
	exe := filepath.Join(dir, "exec")
	code := []byte(*v.Code)
	if v.Binary {
		raw, err := base64.StdEncoding.DecodeString(*v.Code)
		if err != nil {
			return fmt.Errorf("the action code is not valid base64: %v", err)
		}
		code = raw
		if bytes.HasPrefix(raw, []byte("PK\x03\x04")) {
			if err := unzipTo(raw, dir); err != nil {
				return err
			}
			code = nil
		}
	}
	if code != nil {
		if err := os.WriteFile(exe, code, 0o755); err != nil {
			return fmt.Errorf("cannot write the executable: %v", err)
		}
	}
	if _, err := os.Stat(exe); err != nil {
		return fmt.Errorf("the archive has no exec file at its root")
	}
	os.Chmod(exe, 0o755)
	env := append([]string(nil), p.cfg.Env...)
	if len(v.Env) > 0 {
		var m map[string]any
		if json.Unmarshal(v.Env, &m) == nil {
			for k, val := range m {
				s, ok := val.(string)
				if !ok {
					b, _ := json.Marshal(val)
					s = string(b)
				}
				env = append(env, k+"="+s)
			}
		}
	}
	proc, err := runtimes.Start(ctx, runtimes.Options{Argv: []string{exe}, Env: env, Dir: dir, Native: true, OnLog: p.onLog})
	if err != nil {
		return fmt.Errorf("cannot start the executable: %v", err)
	}
	p.procMu.Lock()
	p.proc = proc
	p.procMu.Unlock()
	return nil
}

func unzipTo(raw []byte, dir string) error {
	zr, err := zip.NewReader(bytes.NewReader(raw), int64(len(raw)))
	if err != nil {
		return fmt.Errorf("invalid zip file: %v", err)
	}
	for _, f := range zr.File {
		name := filepath.Clean(f.Name)
		if filepath.IsAbs(name) || name == ".." || strings.HasPrefix(name, "../") {
			return fmt.Errorf("zip entry %q escapes the action directory", f.Name)
		}
		target := filepath.Join(dir, name)
		if f.FileInfo().IsDir() {
			os.MkdirAll(target, 0o755)
			continue
		}
		os.MkdirAll(filepath.Dir(target), 0o755)
		rc, err := f.Open()
		if err != nil {
			return fmt.Errorf("zip entry %q: %v", f.Name, err)
		}
		data, err := io.ReadAll(io.LimitReader(rc, 512<<20))
		rc.Close()
		if err != nil {
			return fmt.Errorf("zip entry %q: %v", f.Name, err)
		}
		if err := os.WriteFile(target, data, f.Mode().Perm()|0o600); err != nil {
			return fmt.Errorf("zip entry %q: %v", f.Name, err)
		}
	}
	return nil
}

func (p *proxy) handleRun(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	body, ok := readBody(w, r, "run")
	if !ok {
		return
	}
	if p.dead {
		replyError(w, http.StatusBadGateway, "command exited")
		return
	}
	if !p.ready {
		replyError(w, http.StatusInternalServerError, "no action defined yet")
		return
	}
	res, err := p.proc.Run(r.Context(), body, 0)
	switch {
	case errors.Is(err, runtimes.ErrExited):
		p.dropConnection()
	case errors.Is(err, runtimes.ErrTimeout):
		// The invoker gave up on this call (deadline) and will destroy the container.
		p.dead = true
		p.proc.Close()
		panic(http.ErrAbortHandler)
	case err != nil:
		p.sentinels()
		replyError(w, http.StatusBadRequest, err.Error())
		return
	}
	p.sentinels()
	reply(w, res.Status, res.Body)
}

// ProxyMain is `snapinvoker proxy`: it parses args and serves until ctx ends.
//
//	snapinvoker proxy -listen unix:/run/snapinvoker/proxy.sock -kind nodejs:20 [-workdir /tmp]
//	                  [-node /usr/bin/node] [-python3 /usr/bin/python3]
func ProxyMain(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("proxy", flag.ContinueOnError)
	listen := fs.String("listen", "", "where to serve /init and /run: unix:PATH or tcp:HOST:PORT")
	kind := fs.String("kind", "", "exec kind: nodejs:*, python:3*, blackbox")
	workdir := fs.String("workdir", "", "directory for the launcher and the action's files (default $TMPDIR)")
	node := fs.String("node", runtimes.DefaultNode, "node interpreter")
	python := fs.String("python3", runtimes.DefaultPython3, "python3 interpreter")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("proxy: unexpected arguments %q", fs.Args())
	}
	return ServeProxy(ctx, ProxyConfig{Listen: *listen, Kind: *kind, WorkDir: *workdir,
		Interpreters: runtimes.Interpreters{Node: *node, Python3: *python}})
}
