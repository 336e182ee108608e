package unikernel

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/snapinvoker/snapinvoker/activation"
	"github.com/snapinvoker/snapinvoker/backend"
	"github.com/snapinvoker/snapinvoker/kvm"
	"github.com/snapinvoker/snapinvoker/snapshotcache"
)

// exePath is where the guest believes its executable lives (argv[0], /proc/self/exe), the path
// the actionloop proxy gives a native action.
const exePath = "/action/exec"

// initFailed is a build that ended in an /init answer that is not success: the executable
// exited, crashed, timed out or ran out of memory before blocking for its first activation. All
// callers waiting on the build get the same answer.
type initFailed struct{ res backend.Result }

func (e *initFailed) Error() string {
	o := e.res.Outcome
	return fmt.Sprintf("init failed: failure=%s status=%d body=%.200s", o.Failure, o.Status, o.Body)
}

// errSkeleton: the executable follows the dockerskeleton convention; there is no snapshot to
// take (every activation starts the executable with its own argv).
var errSkeleton = errors.New("unikernel: dockerskeleton executable: no snapshot")

// benignENOSYS are system calls programs make and do without when they are refused: glibc
// registers rseq and carries on, realloc falls back from mremap to copying, Python's selectors
// fall back from epoll to poll (kvm/PYTHON_SYSCALLS.md). Refusing them says nothing about why a
// program failed.
var benignENOSYS = map[uint64]bool{25: true, 291: true, 334: true}

// unsupportedCause says whether a guest that stopped without answering did so because of the
// library OS: it needed a system call kvm stops on, or was refused one it then could not do
// without. It returns an error wrapping backend.ErrUnsupported, or nil.
func unsupportedCause(ex kvm.Exit) error {
	if ex.Reason == kvm.Unsupported {
		return fmt.Errorf("unikernel: %w: %w", ex.Err, backend.ErrUnsupported)
	}
	var refused []string
	for nr := range ex.ENOSYS {
		if !benignENOSYS[nr] {
			refused = append(refused, kvm.SyscallName(nr))
		}
	}
	if len(refused) == 0 {
		return nil
	}
	sort.Strings(refused)
	return fmt.Errorf("unikernel: the program stopped (%s) after system calls were refused (%v); run it on the container driver: %w",
		ex.Reason, refused, backend.ErrUnsupported)
}

// unsupportedName names the cause counted in Stats.UnsupportedBy.
func unsupportedName(ex kvm.Exit) string {
	if ex.Reason == kvm.Unsupported {
		return kvm.SyscallName(ex.Syscall)
	}
	names := make([]string, 0, len(ex.ENOSYS))
	for nr := range ex.ENOSYS {
		if !benignENOSYS[nr] {
			names = append(names, kvm.SyscallName(nr))
		}
	}
	sort.Strings(names)
	if len(names) == 0 {
		return "unknown"
	}
	return "enosys:" + names[0]
}

// unsupportedError is an ErrUnsupported with the cause to count.
type unsupportedError struct {
	err   error
	cause string
}

func (e *unsupportedError) Error() string { return e.err.Error() }
func (e *unsupportedError) Unwrap() error { return e.err }

// guestMemory is the guest memory for limits.memory: at least kvm's minimum.
func guestMemory(limit int64) uint64 { return max(uint64(limit), kvm.MinMemory) }

// dryRun is one boot of the executable during /init.
type dryRun struct {
	ex     kvm.Exit
	logs   *logCollector
	result *resultSink
	g      *kvm.Guest
	// done releases the guest once the cache has read its memory (closes it, or gives it back).
	done  func()
	start time.Time
	end   time.Time
}

// boot starts prog in a fresh guest with argv and runs it until it blocks reading stdin, exits
// or the deadline passes. The caller closes r.g.
func (d *Driver) boot(ctx context.Context, prog *program, memory uint64, argv []string, logLimit int64, deadline time.Time, stdinEOF bool) (*dryRun, error) {
	r := &dryRun{logs: newLogCollector(logLimit, d.now), result: &resultSink{max: 1 << 20}, start: d.now()}
	cfg := kvm.Config{Memory: memory, Args: argv, Env: prog.env, ExePath: exePath,
		Stdout: r.logs.stream(0), Stderr: r.logs.stream(1), Result: r.result, OutputLimit: outputLimit}
	g, err := d.host.New(ctx, cfg, prog.exe)
	switch {
	case errors.Is(err, kvm.ErrBadProgram):
		return nil, &unsupportedError{fmt.Errorf("unikernel: %w: %w", err, backend.ErrUnsupported), "program"}
	case errors.Is(err, kvm.ErrMemoryLimit):
		r.end = d.now()
		r.ex = kvm.Exit{Reason: kvm.MemoryLimit, Err: err}
		return r, nil
	case err != nil:
		return nil, fmt.Errorf("unikernel: boot: %w: %w", backend.ErrPlatform, err)
	}
	r.g, r.done = g, func() { g.Close() }
	if stdinEOF {
		g.CloseStdin()
	}
	rctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	r.ex, err = g.Run(rctx)
	r.end = d.now()
	r.logs.flush()
	if err != nil {
		g.Close()
		return nil, fmt.Errorf("unikernel: boot: %w: %w", backend.ErrPlatform, err)
	}
	return r, nil
}

// buildSnapshot is the snapshot build of a native executable: boot it and run it until it
// blocks on its first stdin read (after acking {"ok":true} on fd 3, or without a word as the
// proxy allows when no ack is awaited); that state is the function snapshot. Anything else is
// an *initFailed, errSkeleton, or an error wrapping backend.ErrUnsupported or ErrPlatform.
// The returned image reads the booted guest's memory: the caller closes r.g only after the
// cache has stored it (after Get returns).
func (d *Driver) buildSnapshot(ctx context.Context, key snapshotcache.Key, prog *program, memory uint64, logLimit int64, deadline time.Time) (*snapshotcache.Image, *dryRun, error) {
	r, err := d.boot(ctx, prog, memory, []string{exePath}, logLimit, deadline, false)
	if err != nil {
		return nil, nil, err
	}
	fail := func(f activation.RuntimeFailure, status int, msg string) (*snapshotcache.Image, *dryRun, error) {
		res := backend.Result{Logs: r.logs.lines, LogsTruncated: r.logs.truncated,
			Outcome: activation.RuntimeOutcome{Failure: f, Start: r.start, End: r.end}}
		if f == activation.NoFailure {
			res.Outcome.Status, res.Outcome.Body = status, errorBody(msg)
			res.Outcome.Length = len(res.Outcome.Body)
		}
		return nil, r, &initFailed{res}
	}
	switch r.ex.Reason {
	case kvm.BlockedOnRead:
		if r.result.length > 0 && !isAck(r.result.line()) {
			return fail(activation.NoFailure, 502, "The action did not initialize properly.")
		}
		ck, err := r.g.Checkpoint()
		if err != nil {
			return nil, r, fmt.Errorf("unikernel: checkpoint %s: %w: %w", key, backend.ErrPlatform, err)
		}
		d.mu.Lock()
		d.profiles.entry(key).initTime = r.end.Sub(r.start)
		d.st.Builds++
		d.mu.Unlock()
		return &snapshotcache.Image{State: ck.State, Memory: ck.Memory, Size: ck.Size}, r, nil
	case kvm.Deadline:
		if err := ctx.Err(); err != nil && !time.Now().After(deadline) {
			return nil, r, fmt.Errorf("unikernel: init of %s: %w: %w", key, backend.ErrPlatform, err)
		}
		return fail(activation.FailureTimeout, 0, "")
	case kvm.MemoryLimit:
		return fail(activation.FailureOOM, 0, "")
	case kvm.Unsupported:
		return nil, r, &unsupportedError{unsupportedCause(r.ex), unsupportedName(r.ex)}
	}
	// Exited or crashed before blocking for an activation.
	if err := unsupportedCause(r.ex); err != nil {
		return nil, r, &unsupportedError{err, unsupportedName(r.ex)}
	}
	if r.result.length == 0 && r.ex.Reason == kvm.Exited && d.isSkeleton(ctx, prog, memory, deadline) {
		return nil, r, errSkeleton
	}
	return fail(activation.NoFailure, 502, "Command exited abruptly during initialization.")
}

// isSkeleton runs an executable that exited at start without touching fd 3 once more, as the
// dockerskeleton would run it, with argv[1] = "{}": a JSON object or array as the last line of
// its stdout means it follows that convention.
func (d *Driver) isSkeleton(ctx context.Context, prog *program, memory uint64, deadline time.Time) bool {
	r, err := d.boot(ctx, prog, memory, []string{exePath, "{}"}, 0, deadline, true)
	if err != nil {
		return false
	}
	if r.g != nil {
		defer r.g.Close()
	}
	if r.ex.Reason != kvm.Exited && r.ex.Reason != kvm.Fault {
		return false
	}
	line, ok := r.logs.takeLastStdout()
	return ok && isJSONObjectOrArray(line)
}

func isAck(line []byte) bool {
	var ack struct {
		OK bool `json:"ok"`
	}
	return json.Unmarshal(line, &ack) == nil && ack.OK
}

func isJSONObjectOrArray(b []byte) bool {
	b = bytes.TrimSpace(b)
	return len(b) > 0 && (b[0] == '{' || b[0] == '[') && json.Valid(b)
}

// errorBody is {"error": msg}, the shape of the proxy's own answers.
func errorBody(msg string) []byte {
	b, _ := json.Marshal(map[string]string{"error": msg})
	return b
}
