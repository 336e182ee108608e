package unikernel

// Managed kinds: an interpreter running a launcher of package runtimes (python:3*). Their
// lineage has two levels: a runtime snapshot per (kind family, runtime build, guest memory),
// taken when the launcher blocks for its init line, and below it a function snapshot per action,
// taken after the init line when the launcher blocks for its first activation, stored by the
// cache as the pages that differ from the runtime snapshot.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/snapinvoker/snapinvoker/activation"
	"github.com/snapinvoker/snapinvoker/backend"
	"github.com/snapinvoker/snapinvoker/kvm"
	"github.com/snapinvoker/snapinvoker/runtimes"
	"github.com/snapinvoker/snapinvoker/snapshotcache"
)

const (
	// launcherPath is where the guest finds the launcher (an in-memory file of its tree).
	launcherPath = "/launcher/launcher.py"
	// runtimeBootTimeout bounds booting an interpreter to its launcher's init read.
	runtimeBootTimeout = 2 * time.Minute
)

// pythonHost lists what Debian's python3 needs from the host, read-only: the interpreter, its
// standard library and extension modules, Debian's dist-packages (as the container driver's
// python3 -s sees them), the C libraries through merged /usr's /lib and /lib64 links, the loader
// cache and the C.UTF-8 locale. Nothing else of the host exists for the guest.
var pythonHost = []string{"/usr/bin/python3", "/usr/bin/python3.11", "/usr/lib/python3.11", "/usr/lib/python3",
	"/lib", "/lib64", "/usr/lib64", "/usr/lib/x86_64-linux-gnu", "/etc/ld.so.cache", "/usr/lib/locale/C.utf8"}

// runtimeImage is one runtime's guest program: the interpreter, the file tree and the launcher
// command. It is built once per driver and shared by every guest of the runtime (the tree's host
// cache with it).
type runtimeImage struct {
	exe     []byte
	exePath string
	argv    []string
	env     []string
	tree    *kvm.FileTree
	// build identifies the interpreter, the launcher, the tree and the command: a runtime
	// snapshot taken with another build is never restored.
	build string
}

// runtimeImages holds the driver's runtime images, built on first use.
type runtimeImages struct {
	once   sync.Once
	python *runtimeImage
	err    error
}

// pythonRuntime returns Debian's python3 with the runtimes package's launcher. Its error wraps
// backend.ErrUnsupported: a host without Debian's python3 leaves Python actions to other drivers.
func (d *Driver) pythonRuntime() (*runtimeImage, error) {
	d.images.once.Do(func() {
		exePath, err := filepath.EvalSymlinks(runtimes.DefaultPython3)
		if err != nil {
			d.images.err = fmt.Errorf("unikernel: Debian's python3 (%s): %v: %w", runtimes.DefaultPython3, err, backend.ErrUnsupported)
			return
		}
		exe, err := os.ReadFile(exePath)
		if err != nil {
			d.images.err = fmt.Errorf("unikernel: read %s: %v: %w", exePath, err, backend.ErrUnsupported)
			return
		}
		name, launcher := runtimes.Launcher("python:3")
		if name == "" {
			d.images.err = fmt.Errorf("unikernel: runtimes has no python launcher: %w", backend.ErrUnsupported)
			return
		}
		// -s: no user site-packages, as the container driver runs it; -B: the tree is read-only.
		argv := []string{runtimes.DefaultPython3, "-s", "-B", launcherPath}
		env := []string{"LANG=C.UTF-8", "PATH=/usr/local/bin:/usr/bin:/bin", "TMPDIR=/tmp", "HOME=/tmp"}
		sum := sha256.New()
		for _, part := range [][]byte{exe, launcher, []byte(fmt.Sprint(pythonHost, argv, env))} {
			fmt.Fprintf(sum, "%d:", len(part))
			sum.Write(part)
		}
		for _, p := range pythonHost {
			if fi, err := os.Stat(p); err == nil {
				fmt.Fprintf(sum, "%s:%d:%d;", p, fi.Size(), fi.ModTime().UnixNano())
			}
		}
		d.images.python = &runtimeImage{exe: exe, exePath: exePath, argv: argv, env: env,
			tree:  &kvm.FileTree{Host: pythonHost, Files: map[string][]byte{launcherPath: launcher}},
			build: "py-" + hex.EncodeToString(sum.Sum(nil))[:24]}
	})
	return d.images.python, d.images.err
}

// runtimeKey names the runtime snapshot of rt for guests of memory bytes.
func runtimeKey(family string, rt *runtimeImage, memory uint64) snapshotcache.Key {
	return snapshotcache.RuntimeKey(family, rt.build+"/"+strconv.FormatUint(memory>>20, 10)+"m")
}

// buildRuntime boots the launcher until it blocks for its init line.
func (d *Driver) buildRuntime(ctx context.Context, rt *runtimeImage, memory uint64, deadline time.Time) (*snapshotcache.Image, *dryRun, error) {
	r := &dryRun{logs: newLogCollector(64<<10, d.now), result: &resultSink{max: 1 << 16}, start: d.now()}
	cfg := kvm.Config{Memory: memory, Args: rt.argv, Env: rt.env, ExePath: rt.exePath, Files: rt.tree,
		Stdout: r.logs.stream(0), Stderr: r.logs.stream(1), Result: r.result, OutputLimit: outputLimit}
	g, err := d.host.New(ctx, cfg, rt.exe)
	if err != nil {
		return nil, nil, fmt.Errorf("unikernel: boot the python runtime: %w: %w", backend.ErrPlatform, err)
	}
	r.g, r.done = g, func() { g.Close() }
	rctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	r.ex, err = g.Run(rctx)
	r.end = d.now()
	r.logs.flush()
	switch {
	case err != nil:
		return nil, r, fmt.Errorf("unikernel: boot the python runtime: %w: %w", backend.ErrPlatform, err)
	case r.ex.Reason == kvm.BlockedOnRead && r.result.length == 0:
	case r.ex.Reason == kvm.Deadline && ctx.Err() == nil:
		return nil, r, &initFailed{backend.Result{Outcome: activation.RuntimeOutcome{Failure: activation.FailureTimeout, Start: r.start, End: r.end}}}
	default:
		if cause := unsupportedCause(r.ex); cause != nil {
			return nil, r, &unsupportedError{cause, unsupportedName(r.ex)}
		}
		var tail []string
		for _, l := range r.logs.lines[max(0, len(r.logs.lines)-5):] {
			tail = append(tail, l.Text)
		}
		return nil, r, fmt.Errorf("unikernel: the python runtime stopped (%s, %v) before waiting for its init line; its last output: %q: %w",
			r.ex.Reason, r.ex.Err, tail, backend.ErrPlatform)
	}
	ck, err := g.Checkpoint()
	if err != nil {
		return nil, r, fmt.Errorf("unikernel: checkpoint the python runtime: %w: %w", backend.ErrPlatform, err)
	}
	d.mu.Lock()
	d.st.RuntimeBuilds++
	d.mu.Unlock()
	return &snapshotcache.Image{State: ck.State, Memory: ck.Memory, Size: ck.Size}, r, nil
}

// initLine extracts the /init body's value as the launcher's init line (one line, no newline
// inside). A body without a usable value or code is a *refusal, answered as the runtimes do.
func initLine(body []byte) (line []byte, digest string, err error) {
	var doc struct {
		Value json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(body, &doc); err != nil || len(doc.Value) == 0 || doc.Value[0] != '{' {
		return nil, "", &refusal{400, "init body: field value: missing or not a JSON object"}
	}
	var v struct {
		Code   *string `json:"code"`
		Main   string  `json:"main"`
		Binary bool    `json:"binary"`
	}
	if err := json.Unmarshal(doc.Value, &v); err != nil {
		return nil, "", &refusal{400, fmt.Sprintf("init body: field value: %v", err)}
	}
	if v.Code == nil || *v.Code == "" {
		return nil, "", &refusal{403, "Missing main/no code to execute."}
	}
	sum := sha256.New()
	fmt.Fprintf(sum, "%d:%s|%d:%s|%t", len(v.Main), v.Main, len(*v.Code), *v.Code, v.Binary)
	var buf bytes.Buffer
	if err := json.Compact(&buf, doc.Value); err != nil {
		return nil, "", &refusal{400, fmt.Sprintf("init body: field value: %v", err)}
	}
	return append(buf.Bytes(), '\n'), "sha256:" + hex.EncodeToString(sum.Sum(nil)), nil
}

// buildManagedFunction restores the runtime snapshot, feeds the init line and runs the launcher
// until it blocks for its first activation: that state, a page diff against the runtime
// snapshot, is the function snapshot. Anything but {"ok":true} is an *initFailed.
func (d *Driver) buildManagedFunction(ctx context.Context, family string, rt *runtimeImage, key snapshotcache.Key, line []byte, memory uint64, logLimit int64, deadline time.Time) (*snapshotcache.Image, *dryRun, error) {
	rkey := runtimeKey(family, rt, memory)
	rfn, err := d.openFunction(ctx, rkey, func(bctx context.Context) (*snapshotcache.Image, error) {
		// Booting the runtime is the platform's cost, paid once for every action of the
		// runtime: it gets its own deadline, not the first action's limits.timeout.
		img, r, err := d.buildRuntime(bctx, rt, memory, time.Now().Add(runtimeBootTimeout))
		if r != nil {
			// The cache reads the runtime guest's memory after this returns; close it after.
			d.afterStore(rkey, r.done)
		}
		return img, err
	})
	d.flushAfterStore(rkey)
	if err != nil {
		var failed *initFailed
		var unsup *unsupportedError
		if errors.As(err, &failed) || errors.As(err, &unsup) {
			return nil, nil, unwrapBuild(err)
		}
		return nil, nil, fmt.Errorf("unikernel: runtime snapshot %s: %w", rkey, err)
	}
	// Runtime snapshots are the roots every function of the runtime shares: never evict one, and
	// keep it open (mapped, with its pre-created VMs) for the driver's life, so the next action's
	// /init does not open it again.
	_ = d.cache.Pin(rkey)
	d.keepRuntime(rfn)
	g, _, err := d.takeGuest(ctx, rfn)
	if err != nil {
		d.releaseFunction(rfn)
		return nil, nil, err
	}
	r := &dryRun{logs: newLogCollector(logLimit, d.now), result: &resultSink{max: 1 << 20}, g: g, start: d.now(),
		done: func() { d.giveBack(rfn, g, false) }}
	g.SetOutput(r.logs.stream(0), r.logs.stream(1), r.result)
	g.Feed(line)
	rctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	r.ex, err = g.Run(rctx)
	r.end = d.now()
	r.logs.flush()
	if err != nil {
		return nil, r, fmt.Errorf("unikernel: init of %s: %w: %w", key, backend.ErrPlatform, err)
	}
	fail := func(f activation.RuntimeFailure, status int, body []byte) (*snapshotcache.Image, *dryRun, error) {
		res := backend.Result{Logs: r.logs.lines, LogsTruncated: r.logs.truncated,
			Outcome: activation.RuntimeOutcome{Failure: f, Start: r.start, End: r.end}}
		if f == activation.NoFailure {
			res.Outcome.Status, res.Outcome.Body, res.Outcome.Length = status, body, len(body)
		}
		return nil, r, &initFailed{res}
	}
	if r.result.done {
		status, body, perr := parseReply(r.result.line())
		switch {
		case perr != nil:
			return fail(activation.NoFailure, 502, errorBody("The action did not initialize properly."))
		case status == 200 && isAck(body) && r.ex.Reason == kvm.BlockedOnRead:
		case status == 200:
			return fail(activation.NoFailure, 502, body) // {"error": ...} from the launcher
		default:
			return fail(activation.NoFailure, status, body)
		}
		parent, err := d.cache.Lookup(ctx, rkey)
		if err != nil {
			return nil, r, fmt.Errorf("unikernel: runtime snapshot %s: %w: %w", rkey, backend.ErrPlatform, err)
		}
		ck, err := g.Checkpoint()
		if err != nil {
			parent.Release()
			return nil, r, fmt.Errorf("unikernel: checkpoint %s: %w: %w", key, backend.ErrPlatform, err)
		}
		// The pages the init wrote are the only ones that can differ from the runtime snapshot
		// it was restored from: the cache compares those instead of every page. Without the
		// list (nil) it compares them all, which is slower but as exact.
		dirty, err := g.WrittenPages()
		if err != nil {
			dirty = nil
		}
		d.mu.Lock()
		d.profiles.entry(key).initTime = r.end.Sub(r.start)
		d.st.Builds++
		d.mu.Unlock()
		return &snapshotcache.Image{Parent: parent, State: ck.State, Memory: ck.Memory, Size: ck.Size, Dirty: dirty}, r, nil
	}
	switch r.ex.Reason {
	case kvm.Deadline:
		if err := ctx.Err(); err != nil && !time.Now().After(deadline) {
			return nil, r, fmt.Errorf("unikernel: init of %s: %w: %w", key, backend.ErrPlatform, err)
		}
		return fail(activation.FailureTimeout, 0, nil)
	case kvm.MemoryLimit:
		return fail(activation.FailureOOM, 0, nil)
	}
	if cause := unsupportedCause(r.ex); cause != nil {
		return nil, r, &unsupportedError{cause, unsupportedName(r.ex)}
	}
	return fail(activation.FailureExited, 0, nil)
}

// unwrapBuild digs an *initFailed or *unsupportedError out of a cache error, so a runtime build
// failure reaches the caller as the same kind of answer.
func unwrapBuild(err error) error {
	var failed *initFailed
	if errors.As(err, &failed) {
		return failed
	}
	var unsup *unsupportedError
	if errors.As(err, &unsup) {
		return unsup
	}
	return err
}

// parseReply reads a launcher's reply line: "<json>" is status 200, "#NNN <json>" status NNN
// (runtimes package doc, "The framing").
func parseReply(line []byte) (int, []byte, error) {
	if len(line) == 0 || line[0] != '#' {
		return 200, line, nil
	}
	if len(line) < 5 || line[4] != ' ' {
		return 0, nil, fmt.Errorf("status line %.40q is not \"#NNN <json>\"", line)
	}
	code, err := strconv.Atoi(string(line[1:4]))
	if err != nil || code < 100 || code > 599 {
		return 0, nil, fmt.Errorf("status line %.40q has no HTTP status", line)
	}
	return code, line[5:], nil
}

// notDictionary is the actionloop proxy's answer to a reply that is not an object or an array.
var notDictionary = errorBody("The action did not return a dictionary or array.")

// afterStore remembers a cleanup to run once the cache has stored key's image (the guest whose
// memory it reads must stay open until then).
func (d *Driver) afterStore(key snapshotcache.Key, f func()) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.pending == nil {
		d.pending = map[snapshotcache.Key][]func(){}
	}
	d.pending[key] = append(d.pending[key], f)
}

// flushAfterStore runs key's cleanups.
func (d *Driver) flushAfterStore(key snapshotcache.Key) {
	d.mu.Lock()
	fs := d.pending[key]
	delete(d.pending, key)
	d.mu.Unlock()
	for _, f := range fs {
		f()
	}
}

// keepRuntime holds one extra reference on a runtime snapshot's function entry until Close
// (once per runtime).
func (d *Driver) keepRuntime(fn *function) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.runtimes == nil {
		d.runtimes = map[snapshotcache.Key]*function{}
	}
	if _, ok := d.runtimes[fn.key]; !ok && !d.closed {
		d.runtimes[fn.key] = fn
		fn.refs++
	}
}
