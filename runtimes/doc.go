// Package runtimes holds the launchers that run OpenWhisk actions for every driver (container,
// unikernel) and the Go side that drives them: Launcher and Interpreters.Command say how to start
// one, Start/Process speak the framing below over pipes.
//
// # The framing
//
// It is OpenWhisk's actionloop framing (user-side spec §4.2) with one step added in front: an
// explicit init line, so a launcher can be started before it knows its action. That is the
// point at which the unikernel driver snapshots a runtime and at which the container driver
// keeps prewarmed (stem-cell) instances.
//
// The process has four descriptors, all pipes:
//
//	fd 0  stdin   lines from the driver, each one JSON text followed by "\n"
//	fd 1  stdout  log text
//	fd 2  stderr  log text
//	fd 3          reply lines to the driver, each followed by "\n"
//
// A line from the driver never contains a newline byte: the driver removes every "\n" from the
// JSON it sends (only insignificant whitespace can be a raw newline in valid JSON), as the
// actionloop proxy does. Lines are UTF-8.
//
// Steps, strictly alternating (the driver sends the next line only after the previous reply):
//
//  1. Init. The driver writes the /init "value" object as one line:
//     {"name":"hello","main":"main","binary":false,"code":"...","env":{"__OW_NAMESPACE":"guest",...}}
//     The launcher copies env into its process environment (non-string values as compact JSON,
//     null as ""), loads code (source text, or base64 of a zip/tar.gz when binary is true) and
//     looks up main ("main" when empty). It replies {"ok":true} on success, or an object
//     {"error":"<text>"} on failure and then exits.
//  2. Run, repeated. The driver writes the /run body as one line:
//     {"value":{...},"namespace":"guest","action_name":"/guest/hello","activation_id":"...",
//     "transaction_id":"...","deadline":"1717171777301","api_key":"..."}
//     The launcher sets __OW_<KEY in upper case> for every key other than value whose value is a
//     string, calls main(value) and replies with one reply line.
//
// A reply line is either
//
//	<JSON object or array>        the response body, HTTP status 200
//	#NNN <JSON object>            the response body with HTTP status NNN (three digits)
//
// "#" cannot begin a JSON text, so the two forms never collide; native executables only ever
// write the first. The status form carries the nodejs runtime's answers that are not 200 (502
// {"error":"An error has occurred: ..."} for a thrown exception, 502 "The action did not return
// a dictionary."). A 200 reply that is not an object or an array is mapped by the driver side to
// 502 {"error":"The action did not return a dictionary or array."}.
//
// End marker and log attribution. After each step (init, whether it succeeded or not, and every
// run) a managed launcher writes the line
//
//	XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX
//
// to stdout and to stderr, flushed, and only then its reply line on fd 3. When the driver has read
// the reply, every byte of log the step wrote is therefore already in the stdout and stderr
// pipes, ahead of the markers: the driver reads both pipes until they are empty, attributes the
// lines before each stream's marker to the step, drops the markers, and keeps lines after a marker
// (written by code that ran after the step ended) for the next step. No waiting and no timers are
// involved. A marker at the end of a line that has other text (output without a trailing newline)
// ends the step too; the text before it is a log line. The marker is OpenWhisk's log sentinel, so
// a launcher whose stdout and stderr go straight to a container log frames that log as the
// invoker expects.
//
// Native executables (kind blackbox with a native image, e.g. `wsk action create --native`) speak
// plain actionloop: they get no init line and write {"ok":true} on fd 3 when they start (as with
// the proxy's OW_WAIT_FOR_ACK); their init step only reads that ack. They write no markers, so a
// step's logs are everything read from the pipes up to the reply; output written after the reply
// goes to the next step.
//
// Readiness. A launcher writes nothing before its init line arrives. It has finished booting
// when its main thread is blocked reading fd 0 (Process.WaitIdle reads that from
// /proc/<pid>/syscall): the state a unikernel runtime snapshot is taken in and a prewarmed
// container is handed out in.
//
// Failures. If fd 3 reaches end of file before a reply (the process exited, was killed, or closed
// it) the step fails with ErrExited and the process is finished. If the context ends first the
// step fails with ErrTimeout and the process must be closed (it is mid-step). A reply line longer
// than Options.MaxReply, or a malformed "#" line, is ErrProtocol.
//
// # The launchers
//
// launchers/launcher.py runs under Debian's /usr/bin/python3 and uses the standard library only,
// with no threads, subprocesses or sockets: plain blocking reads of fd 0 and writes of fd 3, so
// it also runs inside a KVM guest. Code is a source string or a base64 zip holding __main__.py
// (extracted to a fresh directory under TMPDIR, which is put first on sys.path, followed by the
// site-packages of a virtualenv/ directory packed at the zip's root, if any). An exception in
// main is printed to stderr and answered {"error": "<str(exception)>"} (an application error, as
// openwhisk-runtime-python's launcher does).
//
// launchers/launcher.js runs under node. Plain code is evaluated in a function scope that finds
// main by name, or module.exports.<main> / exports.<main>. Binary code is a zip or tar.gz
// (detected by magic bytes, extracted with node's zlib); main may be "file.fn", otherwise the
// archive needs package.json or index.js. npm install is not run (no registry at run time).
// Results follow the nodejs runtime: a returned promise is awaited, undefined becomes {}, a
// rejection becomes 200 {"error": <serialized error>}, a thrown exception 502 "An error has
// occurred: ...", a scalar 502 "The action did not return a dictionary.". It reads fd 0
// synchronously between activations, so nothing left over from one activation runs while the
// launcher waits for the next.
package runtimes
