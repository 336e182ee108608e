// Package procdriver is a minimal "process" driver: it runs a native actionloop executable as
// a plain host process (one /run = one line on the child's stdin, the answer = one line the child
// writes on fd 3, the child's stdout and stderr = the activation's logs), the framing of the Go
// actionloop proxy (user-side spec §4.2).
//
// It has NO isolation: the action runs as the invoking user with the host's file system, network
// and memory, and limits.memory is not enforced. It exists so the conformance suite
// (backendtest) and the pool's tests can run against a real driver; never register it in a
// production binary.
package procdriver

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/snapinvoker/snapinvoker/activation"
	"github.com/snapinvoker/snapinvoker/backend"
)

// Name is the name the driver registers under.
const Name = "process"

// DefaultMaxResponse is the body bytes kept when a RunRequest gives no MaxResponse (the
// payload truncation limit of spec §1).
const DefaultMaxResponse = 1 << 20

// maxLine splits a log line longer than this, so a child writing without newlines cannot make
// the driver buffer without bound.
const maxLine = 64 << 10

// Registration returns the driver's registration, for tests that build their own registry.
// Kind: "blackbox" (native actionloop executables).
func Registration() backend.Registration {
	return backend.Registration{
		Kinds: []string{"blackbox"},
		Probe: func(context.Context, backend.Config) error { return nil },
		New: func(_ context.Context, cfg backend.Config) (backend.Driver, error) {
			return New(cfg)
		},
	}
}

// Driver starts instances as host processes. It is safe for concurrent use.
type Driver struct {
	log     *zap.Logger
	dir     string
	ownsDir bool
	seq     atomic.Uint64
	live    backend.Live
}

var _ backend.Driver = (*Driver)(nil)

// New returns a driver keeping each instance's executable under cfg.DataDir (a temporary
// directory, removed by Close, when empty). It accepts no options.
func New(cfg backend.Config) (*Driver, error) {
	for k := range cfg.Options {
		return nil, fmt.Errorf("procdriver: unknown option %q", k)
	}
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	d := &Driver{log: log, dir: cfg.DataDir}
	if d.dir == "" {
		dir, err := os.MkdirTemp("", "procdriver-")
		if err != nil {
			return nil, fmt.Errorf("procdriver: data dir: %w", err)
		}
		d.dir, d.ownsDir = dir, true
	}
	return d, nil
}

// Name implements backend.Driver.
func (d *Driver) Name() string { return Name }

// Start implements backend.Driver. Nothing runs until Init: the executable comes with /init.
func (d *Driver) Start(ctx context.Context, spec backend.StartSpec) (backend.Instance, error) {
	if spec.Kind == "" {
		return nil, fmt.Errorf("procdriver: start: spec.Kind is empty: %w", backend.ErrPlatform)
	}
	if spec.Memory <= 0 {
		return nil, fmt.Errorf("procdriver: start: spec.Memory %d is not positive: %w", spec.Memory, backend.ErrPlatform)
	}
	if spec.Kind != "blackbox" {
		return nil, fmt.Errorf("procdriver: start: kind %q: only native blackbox executables run here: %w", spec.Kind, backend.ErrUnsupported)
	}
	if spec.Action != nil && spec.Action.Image != "" && !spec.Action.Native {
		return nil, fmt.Errorf("procdriver: start: image %q does not speak actionloop: %w", spec.Action.Image, backend.ErrUnsupported)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("procdriver: start: %w: %w", backend.ErrPlatform, err)
	}
	id := fmt.Sprintf("proc-%d", d.seq.Add(1))
	dir := filepath.Join(d.dir, id)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("procdriver: start %s: %w: %w", id, backend.ErrPlatform, err)
	}
	inst := &instance{d: d, id: id, dir: dir, wake: [2]int{-1, -1}, stdin: -1, fd3: -1, out: -1, errp: -1}
	if err := unix.Pipe2(inst.wake[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("procdriver: start %s: wake pipe: %w: %w", id, backend.ErrPlatform, err)
	}
	if !d.live.Add(inst) {
		inst.closeFDs()
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("procdriver: start: driver closed: %w", backend.ErrPlatform)
	}
	return inst, nil
}

// Close destroys every live instance and removes the data directory it created.
func (d *Driver) Close() error {
	errs := d.live.Close()
	if d.ownsDir {
		errs = append(errs, os.RemoveAll(d.dir))
	}
	return errors.Join(errs...)
}

// instance is one child process. Init and Run hold call for their whole duration, so the file
// descriptors they poll are never closed under them; Destroy interrupts them through the wake
// pipe and by killing the child, then takes call to release everything.
type instance struct {
	d   *Driver
	id  string
	dir string

	call sync.Mutex // held by Init, Run and the release half of Destroy

	// Fields below are guarded by call.
	initialised bool
	cmd         *exec.Cmd
	stdin       int // write end of the child's stdin, -1 when closed
	fd3         int // read end of the child's fd 3
	out, errp   int // read ends of stdout and stderr
	partial     [2][]byte
	pending     []byte  // fd 3 bytes after the last answered line
	eof         [2]bool // stdout, stderr reached end of file
	dead        bool    // the child is gone or was killed; no more answers

	wakeMu    sync.Mutex  // guards wake against close while a late poke writes
	wake      [2]int      // self-pipe: Destroy and context cancellation write to it
	destroyed atomic.Bool // set first by Destroy
	pid       atomic.Int64
	exited    chan struct{} // closed when the child has been reaped
}

var (
	_ backend.Instance       = (*instance)(nil)
	_ backend.MemoryReporter = (*instance)(nil)
	_ backend.Pauser         = (*instance)(nil)
)

// Pause implements backend.Pauser: the child's process group is stopped (SIGSTOP), as
// `runc pause` freezes a container.
func (i *instance) Pause(ctx context.Context) error { return i.signal("pause", unix.SIGSTOP) }

// Resume implements backend.Pauser (SIGCONT).
func (i *instance) Resume(ctx context.Context) error { return i.signal("resume", unix.SIGCONT) }

func (i *instance) signal(what string, sig unix.Signal) error {
	if i.destroyed.Load() {
		return fmt.Errorf("procdriver: %s: %s: instance destroyed: %w", i.id, what, backend.ErrPlatform)
	}
	pid := i.pid.Load()
	if pid <= 0 {
		return nil // nothing runs before Init
	}
	if err := unix.Kill(-int(pid), sig); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("procdriver: %s: %s: %w: %w", i.id, what, backend.ErrPlatform, err)
	}
	return nil
}

func (i *instance) ID() string { return i.id }

// initValue is the "value" of an /init body (spec §6).
type initValue struct {
	Name   string                     `json:"name"`
	Main   string                     `json:"main"`
	Code   *string                    `json:"code"`
	Binary bool                       `json:"binary"`
	Env    map[string]json.RawMessage `json:"env"`
}

// answer is an outcome the driver gives itself, shaped like the Go proxy's replies.
func answer(start time.Time, status int, msg string) backend.Result {
	body, _ := json.Marshal(map[string]string{"error": msg})
	return backend.Result{Outcome: activation.RuntimeOutcome{Status: status, Body: body, Length: len(body), Start: start, End: time.Now()}}
}

// Init implements backend.Instance: it writes the executable, starts it and waits for its
// {"ok":true} acknowledgement on fd 3.
func (i *instance) Init(ctx context.Context, req backend.InitRequest) (backend.Result, error) {
	start := time.Now()
	i.call.Lock()
	defer i.call.Unlock()
	if i.destroyed.Load() {
		return backend.Result{}, fmt.Errorf("procdriver: %s: init: instance destroyed: %w", i.id, backend.ErrPlatform)
	}
	if i.initialised {
		return answer(start, 403, "Cannot initialize the action more than once."), nil
	}
	var body struct {
		Value *initValue `json:"value"`
	}
	if err := json.Unmarshal(req.Body, &body); err != nil || body.Value == nil {
		return answer(start, 400, fmt.Sprintf("init body: field value: not a JSON object (%v)", err)), nil
	}
	v := body.Value
	if v.Code == nil || *v.Code == "" {
		return answer(start, 403, "Missing main/no code to execute."), nil
	}
	code := []byte(*v.Code)
	if v.Binary {
		var err error
		if code, err = base64.StdEncoding.DecodeString(*v.Code); err != nil {
			return answer(start, 502, fmt.Sprintf("init body: field value.code: invalid base64: %v", err)), nil
		}
	}
	exe := filepath.Join(i.dir, "exec")
	if err := os.WriteFile(exe, code, 0o700); err != nil {
		return backend.Result{}, fmt.Errorf("procdriver: %s: init: write executable: %w: %w", i.id, backend.ErrPlatform, err)
	}
	env := make([]string, 0, len(v.Env))
	for k, raw := range v.Env {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			s = string(raw) // non-strings as JSON text, as the proxy does
		}
		env = append(env, k+"="+s)
	}
	i.initialised = true
	err := i.spawn(exe, env)
	// Another goroutine forking at the moment the executable was written holds its write
	// descriptor until that child execs, and exec fails with ETXTBSY meanwhile: retry briefly.
	for try := 0; errors.Is(err, syscall.ETXTBSY) && try < 100; try++ {
		time.Sleep(10 * time.Millisecond)
		err = i.spawn(exe, env)
	}
	if err != nil {
		i.dead = true
		// The executable could not be started (not an ELF, not executable): the action's fault.
		return answer(start, 502, fmt.Sprintf("cannot start action: %v", err)), nil
	}
	res, err := i.exchange(ctx, nil, req.Deadline, req.Action.LogLimit, DefaultMaxResponse)
	if err != nil || res.Outcome.Failure != activation.NoFailure {
		return res, err
	}
	var ack struct {
		OK bool `json:"ok"`
	}
	if json.Unmarshal(res.Outcome.Body, &ack) != nil || !ack.OK {
		i.kill()
		r := answer(start, 502, "The action did not initialize properly.")
		r.Logs, r.LogsTruncated = res.Logs, res.LogsTruncated
		return r, nil
	}
	res.Outcome.Status = 200
	return res, nil
}

// spawn starts the child with stdin, stdout, stderr and fd 3 on fresh pipes.
func (i *instance) spawn(exe string, env []string) error {
	var p [4][2]int
	opened := 0
	closeAll := func() {
		for _, q := range p[:opened] {
			unix.Close(q[0])
			unix.Close(q[1])
		}
	}
	for ; opened < 4; opened++ {
		if err := unix.Pipe2(p[opened][:], unix.O_CLOEXEC); err != nil {
			closeAll()
			return fmt.Errorf("pipe: %w", err)
		}
	}
	in, out, errp, fd3 := p[0], p[1], p[2], p[3]
	child := []*os.File{
		os.NewFile(uintptr(in[0]), "stdin"), os.NewFile(uintptr(out[1]), "stdout"),
		os.NewFile(uintptr(errp[1]), "stderr"), os.NewFile(uintptr(fd3[1]), "fd3"),
	}
	cmd := &exec.Cmd{
		Path:       exe,
		Args:       []string{exe},
		Env:        env,
		Dir:        i.dir,
		Stdin:      child[0],
		Stdout:     child[1],
		Stderr:     child[2],
		ExtraFiles: []*os.File{child[3]},
		// Own process group so Destroy kills whatever the action forked; die with us.
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL},
	}
	err := cmd.Start()
	for _, f := range child {
		f.Close() // the child holds its ends now (or never will)
	}
	if err != nil {
		unix.Close(in[1])
		unix.Close(out[0])
		unix.Close(errp[0])
		unix.Close(fd3[0])
		return err
	}
	for _, fd := range []int{in[1], out[0], errp[0], fd3[0]} {
		_ = unix.SetNonblock(fd, true)
	}
	i.cmd, i.stdin, i.out, i.errp, i.fd3 = cmd, in[1], out[0], errp[0], fd3[0]
	i.pid.Store(int64(cmd.Process.Pid))
	i.exited = make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(i.exited)
	}()
	return nil
}

// Run implements backend.Instance: one line in on stdin, one line out on fd 3.
func (i *instance) Run(ctx context.Context, req backend.RunRequest) (backend.Result, error) {
	start := time.Now()
	i.call.Lock()
	defer i.call.Unlock()
	if i.destroyed.Load() {
		return backend.Result{}, fmt.Errorf("procdriver: %s: run %s: instance destroyed: %w", i.id, req.ActivationID, backend.ErrPlatform)
	}
	if !i.initialised || i.cmd == nil {
		return answer(start, 500, "no action defined yet"), nil
	}
	if i.dead {
		return backend.Result{Outcome: activation.RuntimeOutcome{Failure: activation.FailureExited, Start: start, End: time.Now()}}, nil
	}
	// The proxy removes every newline from the body: the child reads exactly one line.
	line := append(bytes.ReplaceAll(req.Body, []byte("\n"), nil), '\n')
	max := req.MaxResponse
	if max <= 0 {
		max = DefaultMaxResponse
	}
	res, err := i.exchange(ctx, line, req.Deadline, req.LogLimit, max)
	if err == nil && res.Outcome.Failure == activation.NoFailure {
		res.Outcome.Status = 200 // a result line; classification is the activation rules' job
	}
	return res, err
}

// logs collects one call's log lines under its byte limit.
type logs struct {
	limit     int64
	used      int64
	lines     []activation.LogLine
	truncated bool
}

func (l *logs) add(stream string, text []byte) {
	if l.limit <= 0 {
		return
	}
	if l.truncated || l.used+int64(len(text)) > l.limit {
		l.truncated = true
		return
	}
	l.used += int64(len(text))
	l.lines = append(l.lines, activation.LogLine{Time: time.Now().UTC(), Stream: stream, Text: string(text)})
}

// exchange writes input (if any) to the child's stdin and waits for one line on fd 3, the
// deadline, the child's end, Destroy or ctx. Logs written meanwhile are collected.
func (i *instance) exchange(ctx context.Context, input []byte, deadline time.Time, logLimit, maxResp int64) (backend.Result, error) {
	start := time.Now()
	lg := &logs{limit: logLimit}
	stop := context.AfterFunc(ctx, i.poke)
	defer stop()

	var body []byte
	length := 0
	gotLine := false
	// An answer may already be buffered from an earlier over-long write.
	if n := bytes.IndexByte(i.pending, '\n'); n >= 0 {
		body, length, gotLine = i.pending[:n], n, true
		i.pending = append([]byte(nil), i.pending[n+1:]...)
	} else {
		body, length = i.pending, len(i.pending)
		i.pending = nil
	}
	buf := make([]byte, 64<<10)
	failure := activation.NoFailure
	for !gotLine {
		if i.destroyed.Load() {
			failure = activation.FailureExited
			break
		}
		if err := ctx.Err(); err != nil {
			i.kill()
			i.drainLogs(lg, buf)
			return backend.Result{}, fmt.Errorf("procdriver: %s: %w: %w", i.id, backend.ErrPlatform, err)
		}
		wait := time.Until(deadline)
		if wait <= 0 {
			failure = activation.FailureTimeout
			break
		}
		// A negative fd is ignored by poll: streams at end of file are left out, or their
		// permanent POLLHUP would spin this loop.
		logFD := func(k, fd int) int32 {
			if i.eof[k] {
				return -1
			}
			return int32(fd)
		}
		fds := []unix.PollFd{
			{Fd: int32(i.wake[0]), Events: unix.POLLIN},
			{Fd: int32(i.fd3), Events: unix.POLLIN},
			{Fd: logFD(0, i.out), Events: unix.POLLIN},
			{Fd: logFD(1, i.errp), Events: unix.POLLIN},
		}
		if len(input) > 0 && i.stdin >= 0 {
			fds = append(fds, unix.PollFd{Fd: int32(i.stdin), Events: unix.POLLOUT})
		}
		ms := int(min(wait, time.Minute).Milliseconds()) + 1
		if _, err := unix.Poll(fds, ms); err != nil && !errors.Is(err, unix.EINTR) {
			i.kill()
			return backend.Result{}, fmt.Errorf("procdriver: %s: poll: %w: %w", i.id, backend.ErrPlatform, err)
		}
		if fds[0].Revents != 0 {
			var b [64]byte
			for {
				if n, _ := unix.Read(i.wake[0], b[:]); n <= 0 {
					break
				}
			}
		}
		for k, stream := range streams {
			if fds[k+2].Revents != 0 {
				i.readLogs(k, stream, lg, buf)
			}
		}
		if len(fds) > 4 && fds[4].Revents != 0 {
			n, err := unix.Write(i.stdin, input)
			if n > 0 {
				input = input[n:]
			}
			if err != nil && !errors.Is(err, unix.EAGAIN) {
				// The child closed stdin; it can still answer on fd 3 or exit.
				unix.Close(i.stdin)
				i.stdin, input = -1, nil
			}
		}
		if fds[1].Revents != 0 {
			n, err := unix.Read(i.fd3, buf)
			if n > 0 {
				chunk := buf[:n]
				if j := bytes.IndexByte(chunk, '\n'); j >= 0 {
					i.pending = append([]byte(nil), chunk[j+1:]...)
					chunk, gotLine = chunk[:j], true
				}
				length += len(chunk)
				if room := maxResp - int64(len(body)); room > 0 {
					body = append(body, chunk[:min(int64(len(chunk)), room)]...)
				}
			} else if n == 0 || (err != nil && !errors.Is(err, unix.EAGAIN)) {
				failure = activation.FailureExited // fd 3 closed: no answer will come
				break
			}
		}
	}
	// Output written before the answer is already in the pipes: take it into this call.
	i.drainLogs(lg, buf)
	if failure != activation.NoFailure {
		i.kill()
		return backend.Result{
			Outcome:       activation.RuntimeOutcome{Failure: failure, Start: start, End: time.Now()},
			Logs:          lg.lines,
			LogsTruncated: lg.truncated,
		}, nil
	}
	return backend.Result{
		Outcome:       activation.RuntimeOutcome{Body: body, Length: length, Start: start, End: time.Now()},
		Logs:          lg.lines,
		LogsTruncated: lg.truncated,
	}, nil
}

var streams = [2]string{"stdout", "stderr"}

// readLogs reads what is available on stdout (k=0) or stderr (k=1) and splits it into lines.
func (i *instance) readLogs(k int, stream string, lg *logs, buf []byte) bool {
	fd := i.out
	if k == 1 {
		fd = i.errp
	}
	if i.eof[k] || fd < 0 {
		return false
	}
	n, err := unix.Read(fd, buf)
	if n == 0 || (err != nil && !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EINTR)) {
		i.eof[k] = true
		return false
	}
	if n < 0 {
		return false
	}
	p := append(i.partial[k], buf[:n]...)
	for {
		j := bytes.IndexByte(p, '\n')
		if j < 0 {
			break
		}
		lg.add(stream, p[:j])
		p = p[j+1:]
	}
	for len(p) > maxLine {
		lg.add(stream, p[:maxLine])
		p = p[maxLine:]
	}
	i.partial[k] = append([]byte(nil), p...)
	return true
}

// drainLogs takes everything already written to stdout and stderr, and ends a half-written
// line, so a call's logs never leak into the next call.
func (i *instance) drainLogs(lg *logs, buf []byte) {
	for k, stream := range streams {
		for i.readLogs(k, stream, lg, buf) {
		}
		if len(i.partial[k]) > 0 {
			lg.add(stream, i.partial[k])
			i.partial[k] = nil
		}
	}
}

// poke wakes a poll in progress.
func (i *instance) poke() {
	i.wakeMu.Lock()
	defer i.wakeMu.Unlock()
	if i.wake[1] >= 0 {
		_, _ = unix.Write(i.wake[1], []byte{1})
	}
}

// kill ends the child's process group; the instance answers nothing after it.
func (i *instance) kill() {
	i.dead = true
	if pid := i.pid.Load(); pid > 0 {
		_ = unix.Kill(-int(pid), unix.SIGKILL)
	}
}

// MemoryUsed implements backend.MemoryReporter: the child's resident pages not shared with
// other processes (RssAnon), 0 before Init and after Destroy.
func (i *instance) MemoryUsed() (int64, error) {
	pid := i.pid.Load()
	if pid <= 0 || i.destroyed.Load() {
		return 0, nil
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("procdriver: %s: memory: %w: %w", i.id, backend.ErrPlatform, err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "RssAnon:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("procdriver: %s: memory: RssAnon %q: %w", i.id, rest, backend.ErrPlatform)
			}
			return kb << 10, nil
		}
	}
	return 0, nil
}

// Destroy implements backend.Instance: kill the child, wait for the call in progress to
// return, reap the child and release every descriptor and file. Safe to repeat.
func (i *instance) Destroy(ctx context.Context) error {
	if i.destroyed.Swap(true) {
		return nil
	}
	if pid := i.pid.Load(); pid > 0 {
		_ = unix.Kill(-int(pid), unix.SIGKILL)
	}
	i.poke()
	i.call.Lock()
	defer i.call.Unlock()
	if i.exited != nil {
		select {
		case <-i.exited:
		case <-ctx.Done():
			// The child was SIGKILLed; reaping happens in the Wait goroutine regardless.
		}
	}
	i.closeFDs()
	i.d.live.Remove(i)
	if err := os.RemoveAll(i.dir); err != nil {
		return fmt.Errorf("procdriver: %s: destroy: %w: %w", i.id, backend.ErrPlatform, err)
	}
	return nil
}

// closeFDs closes every descriptor the instance holds (called with call held, or before the
// instance is shared).
func (i *instance) closeFDs() {
	i.wakeMu.Lock()
	defer i.wakeMu.Unlock()
	for _, fd := range []*int{&i.stdin, &i.out, &i.errp, &i.fd3, &i.wake[0], &i.wake[1]} {
		if *fd >= 0 {
			unix.Close(*fd)
		}
		*fd = -1
	}
}
