// Package container is the fallback driver: it runs any OpenWhisk action (nodejs:*, python:3*,
// blackbox) in a container and speaks the runtime protocol of protocol spec §6 to it.
//
// # Pieces
//
//   - Client: the runtime-protocol client. POST /init and /run with JSON bodies, Content-Type and
//     Accept application/json, a fresh connection per call, each call bounded by its deadline;
//     /init retries every 50 ms while the runtime is not listening yet; a response without a
//     Content-Length is FailureNoResponse; at most MaxResponse bytes of the body are read (the
//     full length is reported so the activation rules can write the truncation error); a dropped
//     connection is FailureExited (FailureOOM when the container's OOM counter moved); 503 is
//     ErrUnhealthy (backend.ErrPlatform). The outcome is observed, never classified, here.
//   - Log collection: a container's stdout and stderr are read line by line; an activation's
//     logs end at the sentinel XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX on both streams (stripped),
//     waited for only when the runtime answered and writes sentinels, with upstream's 2 s idle
//     bound and 2 s × max(5, limit MB) overall bound; if they do not come, the line
//     "There was an issue while collecting your logs. Data might be missing." is appended. Lines
//     past the log limit are dropped and Result.LogsTruncated is set (the truncation message is
//     the activation rules' job). Logs of a successful /init stay in the stream and are read with
//     the first activation, as upstream. The readers never block the container: output waiting
//     for a collection is queued up to 32 MiB, beyond which lines are dropped and the next
//     collection reports truncated logs.
//   - The proxy (`snapinvoker proxy`, ServeProxy): runs inside the container as its init process,
//     serves /init and /run on a unix socket (or TCP) and drives the launcher of package runtimes
//     over its framing. Managed kinds start the launcher at container start and the proxy
//     listens only once it has booted (blocked reading its init line, runtimes.WaitIdle), so
//     Start returns a ready stem cell and /init times the action's init alone, as upstream's
//     runtimes listen only after booting; native blackbox actions are unpacked at /init (a
//     zip with "exec" at its root, or the executable itself) and started then. It answers like
//     the upstream runtimes: 403 for a second /init or missing code, 200 {"ok":true}, the
//     launcher's status and body for /run, and it writes the action's log lines to its stdout and
//     stderr followed by the sentinels after every /run and after a failed /init. If the
//     launcher dies during a call the proxy drops the connection without answering and stays
//     alive, so the invoker can read the cgroup's OOM counter before destroying the container.
//
// # Engines
//
// runc (option engine=runc, the default; needs root and Debian's runc — crun refuses the hybrid
// cgroup layout of the development machines). Each container is an OCI bundle under DataDir:
//   - root file system: a shared read-only skeleton with read-only bind mounts of the host's
//     /usr and /etc, symlinks /bin, /lib, /lib64, /sbin → usr/…, a private tmpfs /tmp (size =
//     the memory limit, charged to the container's memory cgroup), a tmpfs /dev with runc's
//     default devices, /proc, our binary read-only at /opt/snapinvoker/proxy and one host
//     directory per container at /run/snapinvoker for the proxy's socket. That host directory
//     is run-dir/<16 hex digits of the data directory's SHA-256>/<n> (0700, owned by nobody),
//     not in the bundle: a unix socket address holds at most 108 bytes of path and a data
//     directory may be longer by itself. It is removed with the container, and the driver's
//     whole run-dir/<hash> at start (leftovers of a crash) and at Close. A run-dir too long
//     for the socket path fails Start with backend.ErrPlatform;
//   - own PID, mount, IPC and UTS namespaces; the process runs as nobody (65534) with no
//     capabilities and no_new_privs, because the host's /etc is visible (root could read its
//     secrets); RLIMIT_NOFILE 1024 and pids.max 1024 as upstream sets them;
//   - cgroup /snapinvoker/<id>: memory limit = limits.memory with swap = memory (no swap, as
//     --memory-swap), cpu shares = max(2, 1024·memory/user-memory) as upstream's --cpu-shares,
//     and an optional CFS quota (option cpus). runc writes the files of either cgroup layout: v1
//     (memory.limit_in_bytes, memory.memsw.limit_in_bytes, cpu.shares, cpu.cfs_quota_us,
//     pids.max, as here) or v2 (memory.max, memory.swap.max, cpu.weight, cpu.max, pids.max); the
//     driver detects the layout to read OOM kills (v1 memory.oom_control, v2 memory.events) and
//     usage (memory.usage_in_bytes / memory.current);
//   - `runc run` in the foreground: runc stays the container's parent and passes its stdout and
//     stderr through, and those pipes are the container's log. Pause and resume are runc pause
//     and runc resume (the freezer). Destroy kills the container's init; runc then removes the
//     container and its cgroup. At start the driver deletes every container left in its own runc
//     root (DataDir/runc) by an earlier run.
//
// Network (option network). The default, "loopback", gives every container its own network
// namespace with only lo up: the action can reach nothing outside its container (not the
// invoker, not __OW_API_HOST, not the internet). "host" shares the invoker's network namespace:
// the action reaches everything the invoker reaches, including services bound to the host's
// 127.0.0.1 (use it in standalone mode when actions must call the API host). Neither is
// upstream's per-container bridge with NAT, which needs a bridge, veth pairs and iptables that
// this driver does not manage.
//
// docker (option engine=docker): the Docker Engine API on docker-host (default
// unix:///var/run/docker.sock). Containers are created as upstream's `docker run -d
// --cpu-shares … --memory m --memory-swap m --network N -e __OW_API_HOST=… --name
// wsk{invoker-name}_{n}_{prewarm|namespace}_{kind|action} --cap-drop NET_RAW --cap-drop
// NET_ADMIN --ulimit nofile=1024:1024 --pids-limit 1024 --log-driver json-file <image>`, with
// images from options image.<kind> (the manifest's images) or the action's own blackbox image
// (pulled first unless native; a failed pull of :latest is "Failed to pull container image
// '<img>'."). The runtime is reached at <container IP on N>:8080, logs are followed through the
// API's multiplexed log stream, OOM comes from inspect's State.OOMKilled, pause/resume are the
// API's pause/unpause, and every container named wsk{invoker-name}_* is removed at start.
//
// # Options (backend.Config.Options)
//
//	engine          runc (default) | docker
//	runc            path of runc (default: found on PATH)
//	proxy           binary bind-mounted as the proxy (default: this executable)
//	proxy-args      arguments before the proxy flags (default "proxy")
//	node, python3   interpreters inside the container (default /usr/bin/node, /usr/bin/python3)
//	network         loopback (default) | host            (runc)
//	run-dir         absolute host directory for the socket directories (default /run/snapinvoker; runc)
//	api-host        value of __OW_API_HOST in every container
//	user-memory     invoker user memory in bytes, for cpu shares (default 2 GiB)
//	cpus            CFS quota in CPUs per container (default none)
//	docker-host, docker-network (default bridge), invoker-name (default "0"),
//	image.<kind>    image for a kind, e.g. image.nodejs:20=openwhisk/action-nodejs-v20:nightly
//	runtime-port    the runtimes' port (default 8080)
package container
