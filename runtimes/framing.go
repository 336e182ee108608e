package runtimes

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/snapinvoker/snapinvoker/activation"
)

// Errors of a Framing step. Each is wrapped with context.
var (
	// ErrExited: the process ended (or closed fd 3) before it replied. The Process is dead.
	ErrExited = errors.New("runtimes: launcher exited")
	// ErrTimeout: the context ended before the reply. The Process is mid-step and unusable:
	// Close it.
	ErrTimeout = errors.New("runtimes: launcher did not reply in time")
	// ErrProtocol: the process broke the framing (reply too long, malformed status line).
	ErrProtocol = errors.New("runtimes: framing violated")
	// ErrState: a step was asked of a process in the wrong state (Run before Init, after a
	// failure, after Close).
	ErrState = errors.New("runtimes: launcher not ready")
)

// DefaultMaxReply bounds one reply line. Results far above OpenWhisk's 1 MiB payload limit
// are still read (the caller reports the truncation), but not without bound.
const DefaultMaxReply = 64 << 20

// maxLogLine bounds a log line kept in memory; a longer line is split.
const maxLogLine = 1 << 20

// Options starts a launcher process.
type Options struct {
	// Argv runs the process: an interpreter and launcher (Interpreters.Command) or, with Native,
	// the action's executable. Argv[0] is a path.
	Argv []string
	// Env is the whole environment of the process (nothing is inherited).
	Env []string
	// Dir is the working directory ("" for the caller's).
	Dir string
	// Native: the process is an actionloop executable: no init line is written to it; it acks
	// {"ok":true} on fd 3 by itself at start, and writes no markers (log attribution is then
	// "everything read before the reply", see doc.go).
	Native bool
	// MaxReply bounds one reply line (default DefaultMaxReply).
	MaxReply int
	// Now stamps log lines (default time.Now).
	Now func() time.Time
	// OnLog, when set, receives every log line as it is read instead of Reply.Logs collecting
	// them (the in-container proxy streams them to its own stdout and stderr). It is called on
	// the goroutine running the step.
	OnLog func(activation.LogLine)
}

// Reply is what one step (init or run) produced.
type Reply struct {
	// Status is 200 for a plain reply line or the status of a "#NNN " line. Init replies other
	// than {"ok":true} are 502. A run reply that is neither a JSON object nor an array becomes
	// 502 {"error":"The action did not return a dictionary or array."}, as the actionloop proxy
	// answers.
	Status int
	// Body is the reply without the status prefix and newline.
	Body []byte
	// Logs are the lines written during the step, stdout and stderr in the order read, markers
	// removed, bounded by the step's log limit (empty when OnLog is set).
	Logs []activation.LogLine
	// LogsTruncated is true when lines were dropped at the limit.
	LogsTruncated bool
}

type stream struct {
	fd      int
	name    string
	partial []byte
	eof     bool
	marked  bool // the marker was seen in the current step
}

// Process is one launcher process driven over the framing. Steps run one at a time; a Process
// is safe for use by one goroutine at a time plus Close from any goroutine.
type Process struct {
	opts  Options
	cmd   *exec.Cmd
	stdin *os.File
	fd3   int
	out   stream
	errs  stream
	wake  int // eventfd: interrupts poll on cancellation and Close

	mu      sync.Mutex // serialises steps
	state   int
	replies []byte // bytes read from fd 3 not yet consumed
	carry   []activation.LogLine
	done    chan struct{}
	waitErr error

	closeOnce sync.Once
}

const (
	stateFresh = iota
	stateReady
	stateBroken
	stateClosed
)

// Start starts the process with stdin, stdout, stderr and fd 3 connected to pipes. The process
// is in its own process group, so Close also ends anything it spawned. ctx bounds the start
// only; the process lives until Close.
func Start(ctx context.Context, opts Options) (*Process, error) {
	if len(opts.Argv) == 0 || opts.Argv[0] == "" {
		return nil, fmt.Errorf("runtimes: start: Options.Argv is empty")
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("runtimes: start %s: %w", opts.Argv[0], err)
	}
	if opts.MaxReply <= 0 {
		opts.MaxReply = DefaultMaxReply
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	var closers []int
	fail := func(err error) (*Process, error) {
		for _, fd := range closers {
			unix.Close(fd)
		}
		return nil, err
	}
	pipe := func() (r, w int, err error) {
		var p [2]int
		if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
			return -1, -1, fmt.Errorf("runtimes: start: pipe: %w", err)
		}
		closers = append(closers, p[0], p[1])
		return p[0], p[1], nil
	}
	inR, inW, err := pipe()
	if err != nil {
		return fail(err)
	}
	outR, outW, err := pipe()
	if err != nil {
		return fail(err)
	}
	errR, errW, err := pipe()
	if err != nil {
		return fail(err)
	}
	resR, resW, err := pipe()
	if err != nil {
		return fail(err)
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return fail(fmt.Errorf("runtimes: start: eventfd: %w", err))
	}
	closers = append(closers, wake)
	for _, fd := range []int{outR, errR, resR, inW} {
		if err := unix.SetNonblock(fd, true); err != nil {
			return fail(fmt.Errorf("runtimes: start: nonblock: %w", err))
		}
	}
	childIn := os.NewFile(uintptr(inR), "stdin")
	childOut := os.NewFile(uintptr(outW), "stdout")
	childErr := os.NewFile(uintptr(errW), "stderr")
	childRes := os.NewFile(uintptr(resW), "fd3")
	cmd := exec.Command(opts.Argv[0], opts.Argv[1:]...)
	cmd.Env = opts.Env
	if cmd.Env == nil {
		cmd.Env = []string{}
	}
	cmd.Dir = opts.Dir
	cmd.Stdin, cmd.Stdout, cmd.Stderr = childIn, childOut, childErr
	cmd.ExtraFiles = []*os.File{childRes}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	startErr := cmd.Start()
	// The child's ends are the child's now; ours must close or EOF never comes.
	childIn.Close()
	childOut.Close()
	childErr.Close()
	childRes.Close()
	closers = []int{inW, outR, errR, resR, wake}
	if startErr != nil {
		return fail(fmt.Errorf("runtimes: start %s: %w", opts.Argv[0], startErr))
	}
	p := &Process{
		opts:  opts,
		cmd:   cmd,
		stdin: os.NewFile(uintptr(inW), "launcher-stdin"),
		fd3:   resR,
		out:   stream{fd: outR, name: "stdout"},
		errs:  stream{fd: errR, name: "stderr"},
		wake:  wake,
		done:  make(chan struct{}),
	}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Pid is the process id of the launcher.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited and been reaped.
func (p *Process) Done() <-chan struct{} { return p.done }

// Init performs the init step: it writes value (the /init "value" object) as the init line, or
// for a Native process writes nothing, and reads the ack. Status 200 means the action is loaded;
// any other reply (status 502, Body the launcher's error object) leaves the process unusable.
func (p *Process) Init(ctx context.Context, value []byte, logLimit int64) (Reply, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state != stateFresh {
		return Reply{}, fmt.Errorf("%w: init on a launcher already initialised or failed", ErrState)
	}
	var line []byte
	if !p.opts.Native {
		var err error
		if line, err = oneLine(value, "init value"); err != nil {
			return Reply{}, err
		}
	}
	r, err := p.step(ctx, line, logLimit)
	if err != nil {
		return r, fmt.Errorf("init: %w", err)
	}
	if r.Status == 200 && InitSucceeded(r.Body) {
		p.state = stateReady
		return r, nil
	}
	r.Status = 502
	p.state = stateBroken
	return r, nil
}

// Run performs one run step: body (the /run body object) becomes the run line; the reply is
// mapped as Reply documents.
func (p *Process) Run(ctx context.Context, body []byte, logLimit int64) (Reply, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state != stateReady {
		return Reply{}, fmt.Errorf("%w: run needs a successful init first", ErrState)
	}
	line, err := oneLine(body, "run body")
	if err != nil {
		return Reply{}, err
	}
	r, err := p.step(ctx, line, logLimit)
	if err != nil {
		return r, fmt.Errorf("run: %w", err)
	}
	r.Status, r.Body = RunResult(r.Status, r.Body)
	return r, nil
}

// Line turns a JSON document (an init value or a run body) into a framing line ending in "\n":
// every newline byte is removed (a newline can only be insignificant whitespace in valid JSON),
// as the actionloop proxy does. Drivers that move bytes to a launcher themselves (a VMM) use it.
func Line(doc []byte) ([]byte, error) { return oneLine(doc, "document") }

// ParseReply splits one fd-3 reply line (without its newline) into status and body: 200 and the
// line itself, or NNN and the rest of a "#NNN <json>" line. A malformed status line wraps
// ErrProtocol.
func ParseReply(line []byte) (status int, body []byte, err error) { return parseReply(line) }

// InitSucceeded reports whether an init reply body is the ack {"ok":true}.
func InitSucceeded(body []byte) bool {
	var ack struct {
		OK bool `json:"ok"`
	}
	return json.Unmarshal(body, &ack) == nil && ack.OK
}

// RunResult applies the driver side's mapping to a run reply: a 200 body that is not a JSON
// object or array becomes 502 {"error":"The action did not return a dictionary or array."}.
func RunResult(status int, body []byte) (int, []byte) {
	if status == 200 {
		b := bytes.TrimSpace(body)
		if len(b) == 0 || (b[0] != '{' && b[0] != '[') || !json.Valid(b) {
			return 502, []byte(`{"error":"The action did not return a dictionary or array."}`)
		}
	}
	return status, body
}

func oneLine(doc []byte, what string) ([]byte, error) {
	if !json.Valid(doc) {
		return nil, fmt.Errorf("runtimes: %s is not valid JSON", what)
	}
	line := bytes.ReplaceAll(doc, []byte{'\n'}, nil)
	return append(line, '\n'), nil
}

// step writes line (if any) and waits for one reply line; see doc.go for the attribution rule.
func (p *Process) step(ctx context.Context, line []byte, logLimit int64) (Reply, error) {
	var r Reply
	var logBytes int64
	emit := func(l activation.LogLine) {
		if p.opts.OnLog != nil {
			p.opts.OnLog(l)
			return
		}
		if logBytes+int64(len(l.Text)) > logLimit {
			r.LogsTruncated = true
			return
		}
		logBytes += int64(len(l.Text))
		r.Logs = append(r.Logs, l)
	}
	carry := p.carry
	p.carry = nil
	for _, l := range carry {
		emit(l)
	}
	p.out.marked, p.errs.marked = false, false
	// A line after the marker on its stream belongs to the next step.
	route := func(s *stream, text string) {
		l := activation.LogLine{Time: p.opts.Now(), Stream: s.name, Text: text}
		if s.marked {
			p.carry = append(p.carry, l)
			return
		}
		emit(l)
	}

	deadline, hasDeadline := ctx.Deadline()
	stop := context.AfterFunc(ctx, p.poke)
	defer stop()
	var drain [8]byte
	unix.Read(p.wake, drain[:]) // forget an earlier poke

	if len(line) > 0 {
		if hasDeadline {
			p.stdin.SetWriteDeadline(deadline)
		} else {
			p.stdin.SetWriteDeadline(time.Time{})
		}
		if _, err := p.stdin.Write(line); err != nil {
			if ctx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded) {
				p.state = stateBroken
				return r, fmt.Errorf("%w: writing the line: %v", ErrTimeout, err)
			}
			p.readLogs(route, true)
			return r, p.exited("writing the line")
		}
	}

	for {
		if i := bytes.IndexByte(p.replies, '\n'); i >= 0 {
			reply := p.replies[:i]
			p.replies = append([]byte(nil), p.replies[i+1:]...)
			// Everything the process wrote before its reply is in the pipes now.
			p.readLogs(route, true)
			status, body, err := parseReply(reply)
			if err != nil {
				p.state = stateBroken
				return r, err
			}
			r.Status, r.Body = status, body
			return r, nil
		}
		if p.state == stateClosed {
			return r, fmt.Errorf("%w: closed during a step", ErrExited)
		}
		if err := ctx.Err(); err != nil {
			p.state = stateBroken
			p.readLogs(route, true)
			return r, fmt.Errorf("%w: %v", ErrTimeout, err)
		}
		timeout := -1
		if hasDeadline {
			ms := time.Until(deadline).Milliseconds() + 1
			if ms < 0 {
				ms = 0
			}
			timeout = int(min(ms, 1<<30))
		}
		fds := []unix.PollFd{
			{Fd: int32(p.fd3), Events: unix.POLLIN},
			{Fd: int32(p.wake), Events: unix.POLLIN},
			{Fd: int32(p.out.fd), Events: unix.POLLIN},
			{Fd: int32(p.errs.fd), Events: unix.POLLIN},
		}
		if p.out.eof {
			fds[2].Fd = -1
		}
		if p.errs.eof {
			fds[3].Fd = -1
		}
		if _, err := unix.Poll(fds, timeout); err != nil && err != unix.EINTR {
			p.state = stateBroken
			return r, fmt.Errorf("runtimes: poll: %w", err)
		}
		if fds[1].Revents != 0 {
			unix.Read(p.wake, drain[:])
		}
		if fds[2].Revents != 0 || fds[3].Revents != 0 {
			p.readLogs(route, false)
		}
		if fds[0].Revents != 0 {
			eof, err := p.readReplies()
			if err != nil {
				p.state = stateBroken
				return r, err
			}
			if eof && bytes.IndexByte(p.replies, '\n') < 0 {
				p.readLogs(route, true)
				return r, p.exited("waiting for the reply")
			}
		}
	}
}

// readReplies reads what fd 3 holds.
func (p *Process) readReplies() (eof bool, err error) {
	var buf [64 << 10]byte
	for {
		n, err := unix.Read(p.fd3, buf[:])
		if n > 0 {
			p.replies = append(p.replies, buf[:n]...)
			if len(p.replies) > p.opts.MaxReply && bytes.IndexByte(p.replies, '\n') < 0 {
				return false, fmt.Errorf("%w: reply line longer than %d bytes", ErrProtocol, p.opts.MaxReply)
			}
			continue
		}
		switch {
		case n == 0 && err == nil:
			return true, nil
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return false, nil
		default:
			return true, nil
		}
	}
}

// readLogs reads stdout and stderr until they are empty. With all, it keeps going until both
// would block or end; without, one pass over whatever poll reported.
func (p *Process) readLogs(route func(*stream, string), all bool) {
	var buf [64 << 10]byte
	for _, s := range []*stream{&p.out, &p.errs} {
		for !s.eof {
			n, err := unix.Read(s.fd, buf[:])
			if n > 0 {
				p.split(s, buf[:n], route)
				if !all && n < len(buf) {
					break
				}
				continue
			}
			if err == unix.EINTR {
				continue
			}
			if err == unix.EAGAIN {
				break
			}
			s.eof = true
			if len(s.partial) > 0 {
				route(s, string(s.partial))
				s.partial = nil
			}
		}
	}
}

// split cuts data into lines on s. A line ending with the marker (output without a final
// newline before the launcher's marker) yields its prefix as a line, then counts as the marker.
func (p *Process) split(s *stream, data []byte, route func(*stream, string)) {
	s.partial = append(s.partial, data...)
	for {
		i := bytes.IndexByte(s.partial, '\n')
		if i < 0 {
			if len(s.partial) > maxLogLine {
				route(s, string(s.partial))
				s.partial = s.partial[:0]
			}
			return
		}
		text := string(s.partial[:i])
		s.partial = s.partial[i+1:]
		if !p.opts.Native && len(text) >= len(Marker) && text[len(text)-len(Marker):] == Marker && !s.marked {
			if prefix := text[:len(text)-len(Marker)]; prefix != "" {
				route(s, prefix)
			}
			s.marked = true
			continue
		}
		route(s, text)
	}
}

// exited reaps the process (killing it if it only closed fd 3) and describes how it ended.
func (p *Process) exited(when string) error {
	p.state = stateBroken
	select {
	case <-p.done:
	case <-time.After(200 * time.Millisecond):
		p.kill()
		<-p.done
	}
	status := "exited"
	if p.cmd.ProcessState != nil {
		status = p.cmd.ProcessState.String()
	}
	return fmt.Errorf("%w %s: %s", ErrExited, when, status)
}

func parseReply(line []byte) (int, []byte, error) {
	line = bytes.TrimSuffix(line, []byte{'\r'})
	if len(line) > 0 && line[0] == '#' {
		if len(line) < 5 || line[4] != ' ' {
			return 0, nil, fmt.Errorf("%w: status line %q is not \"#NNN <json>\"", ErrProtocol, clip(line))
		}
		code, err := strconv.Atoi(string(line[1:4]))
		if err != nil || code < 100 || code > 599 {
			return 0, nil, fmt.Errorf("%w: status line %q has no HTTP status", ErrProtocol, clip(line))
		}
		return code, append([]byte(nil), line[5:]...), nil
	}
	return 200, append([]byte(nil), line...), nil
}

func clip(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}

func (p *Process) poke() {
	var one = [8]byte{1}
	unix.Write(p.wake, one[:])
}

func (p *Process) kill() {
	if p.cmd.Process != nil {
		unix.Kill(-p.cmd.Process.Pid, unix.SIGKILL)
		p.cmd.Process.Kill()
	}
}

// Close kills the process group, reaps the process and releases the pipes. Safe to call more
// than once and while a step runs (the step ends with ErrExited).
func (p *Process) Close() error {
	p.closeOnce.Do(func() {
		p.kill()
		p.poke()
		<-p.done
		p.mu.Lock()
		p.state = stateClosed
		p.stdin.Close()
		unix.Close(p.fd3)
		unix.Close(p.out.fd)
		unix.Close(p.errs.fd)
		unix.Close(p.wake)
		p.mu.Unlock()
	})
	return nil
}
