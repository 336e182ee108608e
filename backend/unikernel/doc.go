// Package unikernel runs actions as KVM guests restored from snapshots (package kvm: one
// program per VM, no guest kernel; package snapshotcache: the snapshot store).
//
// # Kinds
//
// The kind table (kinds.go) says which exec kinds run here and how their guest starts:
//
//	kind       guest program                                   lineage
//	blackbox   the action's own static executable              function snapshot (a root)
//	python:3*  Debian's python3 + the runtimes Python launcher runtime snapshot → function snapshot
//
// Python (managed.go): Debian's /usr/bin/python3 (dynamically linked, loaded through ld.so) runs
// the launcher of package runtimes over a read-only file tree of the interpreter, its standard
// library, lib-dynload extension modules, dist-packages and C libraries, plus a private /tmp.
// The runtime snapshot (one per python build and guest memory size, pinned) is taken when the
// launcher blocks for its init line; an action's function snapshot is that snapshot restored,
// fed the /init value as one line and run until the launcher acked {"ok":true} and blocks for its
// first activation, stored as the pages that differ from the runtime snapshot. Launcher replies
// may carry a status ("#502 {...}"); a reply that is not an object or an array becomes the
// proxy's 502. nodejs is not here: node needs threads, epoll and eventfd.
//
// A blackbox action is what `wsk action create NAME --native exec.zip` produces: a native image
// (Action.Native, e.g. openwhisk/dockerskeleton) whose /init code is base64 of a zip holding
// `exec`, or of the executable itself. A blackbox action with a user image that is not native is
// not ours (ErrUnsupported), nor is a dynamically linked or script `exec` until kvm loads them.
//
// # Two conventions of native executables
//
// Actionloop: the executable acks {"ok":true} on fd 3 when it starts, then reads one /run body
// per stdin line and answers one line on fd 3 (runtimes package doc, "The framing"). Dockerskeleton:
// the executable is run once per activation with the parameters as JSON in argv[1]; the last line
// of its stdout is the result, everything else is log. /init tells them apart by running the
// executable: an ack (or a blocking read of stdin) means actionloop; an exit without touching
// fd 3 is retried with argv[1] = "{}", and a JSON object or array as the last stdout line then
// means dockerskeleton; anything else is an init failure with the output as logs.
//
// # Lifecycle
//
// Start with an Action looks up the action's function snapshot, keyed by (docid, revision, code
// digest); when the cache has it, the instance is restored right there (from a ready guest of the
// function when one is idle, else into a pre-created VM) and reports Restored: its Init is a
// no-op that answers {"ok":true} and logs the init time it saved. Otherwise (and for a prewarm
// instance) Init builds the snapshot with single flight, however many instances ask at once:
// boot the executable, run it until it blocks on its first stdin read after acking, store that
// state as the function snapshot, then restore from it.
//
// Run feeds the /run body as one line and runs the guest until it blocks reading stdin again (an
// actionloop executable does so right after its reply), exits or faults, or the deadline passes.
// The first line it wrote to fd 3 is the response body (status 200; classifying it is the
// activation rules' job). Without such a line the outcome is FailureTimeout (deadline passed, or
// the guest asked for more input than the one line, which the proxy would wait for until the
// deadline), FailureExited (it exited or crashed) or FailureOOM (it ran out of limits.memory).
// Its stdout and stderr are the activation's logs, in the order written, bounded by the log
// limit, without OpenWhisk's log sentinel. A dockerskeleton executable gets a fresh boot per
// activation instead.
//
// # Fresh state for every activation
//
// After every activation the instance is reset to the function snapshot by rewriting only the
// pages the activation dirtied (kvm Guest.Reset), so each activation starts exactly where /init
// left the program: nothing one activation leaves in memory (globals, caches, a half-consumed
// input, a corrupted heap) reaches the next, which OpenWhisk's warm containers do not promise.
// The price is that an action cannot keep a cache warm across activations on purpose; the reset
// itself costs a few microseconds per dirtied page, far below one guest exit.
//
// # Ready guests
//
// Restoring pays for first-touch page faults; a guest that served an activation and was reset has
// its working set mapped already. When the scheduler destroys an idle instance, its guest goes
// back to a small per-function ready list (ready.go) if the function had that many instances in
// use recently and the ready guests' private memory stays within a budget; the next Start of that
// function takes it instead of restoring. Ready guests expire after a while; Close frees them.
//
// # The Containerless rule
//
// A guest that stops because it needs a system call the library OS does not provide (fork, exec,
// clone) — or that fails without answering after system calls were refused with ENOSYS — is
// not the action's fault: Init or Run returns an error wrapping backend.ErrUnsupported, so the
// activation is re-run on the next driver for its kind and the backend.Set remembers the action
// for it. Stats().Unsupported counts these, by system call.
package unikernel
