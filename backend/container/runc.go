package container

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
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

	"github.com/snapinvoker/snapinvoker/backend"
)

// Paths inside every runc container.
const (
	proxyInContainer  = "/opt/snapinvoker/proxy"
	socketDirInside   = "/run/snapinvoker"
	socketName        = "proxy.sock"
	containerUID      = 65534 // nobody: the host's /etc is visible read-only; root could read its secrets
	cgroupParent      = "/snapinvoker"
	upstreamNofile    = 1024
	upstreamPidsLimit = 1024
	// startTimeout bounds a container start when the caller gave no deadline.
	startTimeout = 2 * time.Minute
	// DefaultRunDir is the default of option run-dir: short, root-only, and a tmpfs on Debian,
	// so sockets left by a crash go away at reboot.
	DefaultRunDir = "/run/snapinvoker"
	// maxSocketPath is the longest unix socket path connect(2) takes: sockaddr_un's sun_path is
	// 108 bytes on Linux, and we keep one for the terminating NUL.
	maxSocketPath = 107
)

// Network modes of the runc engine.
const (
	// NetworkLoopback: the container has its own network namespace with only "lo" up. The action
	// cannot reach the invoker, the controller (__OW_API_HOST) or the internet.
	NetworkLoopback = "loopback"
	// NetworkHost: the container shares the invoker's network namespace: it reaches everything
	// the host reaches, including services bound to the host's 127.0.0.1.
	NetworkHost = "host"
)

// runcEngine runs containers with a local OCI runtime (runc). Every container is an OCI bundle
// whose root file system is one shared, read-only skeleton: read-only bind mounts of the host's
// /usr and /etc (bookworm's /bin, /lib, /lib64, /sbin are symlinks into /usr), a private tmpfs
// /tmp, a tmpfs /dev, /proc, our proxy bound read-only at /opt/snapinvoker/proxy, and one
// per-container host directory at /run/snapinvoker holding the proxy's unix socket.
//
// The host side of that socket directory is not in the bundle: a unix socket address holds at
// most 108 bytes of path, and a data directory can be longer than that by itself. Socket
// directories live under sockRoot instead, a short directory per driver (run-dir/<hash of the
// data directory>), named by the container's sequence number.
type runcEngine struct {
	runc         string
	stateRoot    string // runc --root: every container in it is ours
	rootfs       string
	bundles      string
	sockRoot     string // run-dir/<hash>: the socket directories of this driver's containers
	proxyBin     string
	proxyArgs    []string
	interpreters []string
	network      string
	env          []string
	userMemory   int64
	cpus         float64
	cg           cgroups
	log          *zap.Logger
	seq          atomic.Int64
	prefix       string
}

func newRuncEngine(ctx context.Context, o options, dataDir string, log *zap.Logger) (*runcEngine, error) {
	cg, err := detectCgroups("/sys/fs/cgroup")
	if err != nil {
		return nil, err
	}
	sockRoot, err := socketRoot(o.runDir, dataDir)
	if err != nil {
		return nil, err
	}
	e := &runcEngine{
		sockRoot:     sockRoot,
		runc:         o.runc,
		stateRoot:    filepath.Join(dataDir, "runc"),
		rootfs:       filepath.Join(dataDir, "rootfs"),
		bundles:      filepath.Join(dataDir, "bundles"),
		proxyBin:     o.proxy,
		proxyArgs:    o.proxyArgs,
		interpreters: o.interpreters,
		network:      o.network,
		env:          o.env,
		userMemory:   o.userMemory,
		cpus:         o.cpus,
		cg:           cg,
		log:          log,
		prefix:       fmt.Sprintf("si%d", os.Getpid()),
	}
	if err := e.cleanup(ctx); err != nil {
		return nil, err
	}
	if err := e.skeleton(); err != nil {
		return nil, err
	}
	return e, nil
}

// skeleton creates the shared root file system: mount points and the /usr symlinks.
func (e *runcEngine) skeleton() error {
	for _, d := range []string{"usr", "etc", "tmp", "proc", "dev", "run/snapinvoker", "opt/snapinvoker"} {
		if err := os.MkdirAll(filepath.Join(e.rootfs, d), 0o755); err != nil {
			return fmt.Errorf("container: rootfs skeleton: %w", err)
		}
	}
	for link, target := range map[string]string{"bin": "usr/bin", "lib": "usr/lib", "lib64": "usr/lib64", "sbin": "usr/sbin"} {
		p := filepath.Join(e.rootfs, link)
		if _, err := os.Lstat(p); err == nil {
			continue
		}
		if err := os.Symlink(target, p); err != nil {
			return fmt.Errorf("container: rootfs skeleton: %w", err)
		}
	}
	// runc gives a tmpfs the mode of the directory it is mounted on.
	if err := os.Chmod(filepath.Join(e.rootfs, "tmp"), 0o777|os.ModeSticky); err != nil {
		return fmt.Errorf("container: rootfs skeleton: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(e.rootfs, "opt/snapinvoker/proxy"), os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		return fmt.Errorf("container: rootfs skeleton: %w", err)
	}
	f.Close()
	return os.MkdirAll(e.bundles, 0o700)
}

// cleanup removes containers a previous run of the driver left in its runc root, and their
// bundles (upstream removes every wsk<name>_* container at start-up the same way).
func (e *runcEngine) cleanup(ctx context.Context) error {
	if err := os.MkdirAll(e.stateRoot, 0o700); err != nil {
		return fmt.Errorf("container: runc root: %w", err)
	}
	out, err := exec.CommandContext(ctx, e.runc, "--root", e.stateRoot, "list", "-q").Output()
	if err != nil {
		return fmt.Errorf("container: %s list: %w", e.runc, err)
	}
	for _, id := range strings.Fields(string(out)) {
		if o, err := exec.CommandContext(ctx, e.runc, "--root", e.stateRoot, "delete", "-f", id).CombinedOutput(); err != nil {
			e.log.Warn("removing a leftover container failed", zap.String("container", id), zap.ByteString("runc", o), zap.Error(err))
		} else {
			e.log.Info("removed a leftover container", zap.String("container", id))
		}
	}
	os.RemoveAll(e.bundles)
	// The socket directories of those containers (their mounts died with them). The root is
	// only ever created by us, 0700: anything else there is not ours to trust.
	if err := os.RemoveAll(e.sockRoot); err != nil {
		return fmt.Errorf("container: removing leftover socket directories: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(e.sockRoot), 0o700); err != nil {
		return fmt.Errorf("container: run-dir: %w", err)
	}
	if err := os.Mkdir(e.sockRoot, 0o700); err != nil {
		return fmt.Errorf("container: run-dir: %w", err)
	}
	return nil
}

// socketRoot names the driver's directory of socket directories: run-dir/<16 hex digits of the
// SHA-256 of the absolute data directory>. It is short whatever the data directory, and stable
// across restarts, so a driver finds and removes what its previous run left; two drivers with
// different data directories never share it.
func socketRoot(runDir, dataDir string) (string, error) {
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		return "", fmt.Errorf("container: data directory: %w", err)
	}
	sum := sha256.Sum256([]byte(abs))
	return filepath.Join(runDir, hex.EncodeToString(sum[:8])), nil
}

// close removes the driver's socket root once its containers are destroyed. A root that is not
// empty (a container whose destroy failed) stays for the next start's cleanup.
func (e *runcEngine) close() error {
	if err := os.Remove(e.sockRoot); err != nil && !os.IsNotExist(err) {
		e.log.Warn("socket directory not removed", zap.String("dir", e.sockRoot), zap.Error(err))
	}
	return nil
}

// ociSpec is the part of the OCI runtime spec (1.0.2) we fill.
type ociSpec struct {
	OCIVersion string     `json:"ociVersion"`
	Process    ociProcess `json:"process"`
	Root       struct {
		Path     string `json:"path"`
		Readonly bool   `json:"readonly"`
	} `json:"root"`
	Hostname string     `json:"hostname"`
	Mounts   []ociMount `json:"mounts"`
	Linux    ociLinux   `json:"linux"`
}

type ociProcess struct {
	Terminal bool `json:"terminal"`
	User     struct {
		UID uint32 `json:"uid"`
		GID uint32 `json:"gid"`
	} `json:"user"`
	Args            []string            `json:"args"`
	Env             []string            `json:"env"`
	Cwd             string              `json:"cwd"`
	Capabilities    map[string][]string `json:"capabilities"`
	Rlimits         []ociRlimit         `json:"rlimits"`
	NoNewPrivileges bool                `json:"noNewPrivileges"`
}

type ociRlimit struct {
	Type string `json:"type"`
	Hard uint64 `json:"hard"`
	Soft uint64 `json:"soft"`
}

type ociMount struct {
	Destination string   `json:"destination"`
	Type        string   `json:"type"`
	Source      string   `json:"source"`
	Options     []string `json:"options,omitempty"`
}

type ociLinux struct {
	Namespaces    []map[string]string `json:"namespaces"`
	CgroupsPath   string              `json:"cgroupsPath"`
	Resources     ociResources        `json:"resources"`
	MaskedPaths   []string            `json:"maskedPaths"`
	ReadonlyPaths []string            `json:"readonlyPaths"`
}

type ociResources struct {
	Devices []map[string]any `json:"devices"`
	Memory  struct {
		Limit int64 `json:"limit"`
		Swap  int64 `json:"swap"`
	} `json:"memory"`
	CPU struct {
		Shares uint64 `json:"shares"`
		Quota  int64  `json:"quota,omitempty"`
		Period uint64 `json:"period,omitempty"`
	} `json:"cpu"`
	Pids struct {
		Limit int64 `json:"limit"`
	} `json:"pids"`
}

// cpuShares is upstream's --cpu-shares: max(2, 1024 / (userMemory / memory)).
func cpuShares(userMemory, memory int64) uint64 {
	if userMemory <= 0 || memory <= 0 {
		return 1024
	}
	return uint64(max(2, 1024*memory/userMemory))
}

// spec builds the bundle's config.json for one container.
func (e *runcEngine) spec(id, kind string, memory int64, sockDir string) ociSpec {
	var s ociSpec
	s.OCIVersion = "1.0.2"
	s.Process.User.UID, s.Process.User.GID = containerUID, containerUID
	s.Process.Args = append(append(append([]string{proxyInContainer}, e.proxyArgs...),
		"-listen", "unix:"+socketDirInside+"/"+socketName, "-kind", kind, "-workdir", "/tmp"), e.interpreters...)
	s.Process.Env = append([]string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/tmp", "TMPDIR=/tmp", "LANG=C.UTF-8"}, e.env...)
	s.Process.Cwd = "/tmp"
	// No capabilities at all: the action runs as nobody and needs none (upstream drops NET_RAW
	// and NET_ADMIN from Docker's default set; running unprivileged drops the rest).
	s.Process.Capabilities = map[string][]string{"bounding": {}, "effective": {}, "inheritable": {}, "permitted": {}, "ambient": {}}
	s.Process.Rlimits = []ociRlimit{{Type: "RLIMIT_NOFILE", Hard: upstreamNofile, Soft: upstreamNofile}}
	s.Process.NoNewPrivileges = true
	s.Root.Path = e.rootfs
	s.Root.Readonly = true
	s.Hostname = "action"
	tmpSize := strconv.FormatInt(max(memory, 16<<20)>>10, 10) + "k"
	s.Mounts = []ociMount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/usr", Type: "bind", Source: "/usr", Options: []string{"rbind", "ro", "nosuid", "nodev"}},
		{Destination: "/etc", Type: "bind", Source: "/etc", Options: []string{"rbind", "ro", "nosuid", "nodev"}},
		// /tmp is charged to the container's memory cgroup, so its size cannot exceed the limit.
		{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "mode=1777", "size=" + tmpSize}},
		{Destination: proxyInContainer, Type: "bind", Source: e.proxyBin, Options: []string{"bind", "ro", "nosuid", "nodev"}},
		{Destination: socketDirInside, Type: "bind", Source: sockDir, Options: []string{"bind", "rw", "nosuid", "nodev", "noexec"}},
	}
	s.Linux.Namespaces = []map[string]string{{"type": "pid"}, {"type": "mount"}, {"type": "ipc"}, {"type": "uts"}}
	if e.network != NetworkHost {
		// A fresh network namespace: runc brings up lo and nothing else.
		s.Linux.Namespaces = append(s.Linux.Namespaces, map[string]string{"type": "network"})
	}
	s.Linux.CgroupsPath = cgroupParent + "/" + id
	s.Linux.Resources.Devices = []map[string]any{{"allow": false, "access": "rwm"}}
	s.Linux.Resources.Memory.Limit = memory
	s.Linux.Resources.Memory.Swap = memory // --memory-swap = --memory: no swap
	s.Linux.Resources.CPU.Shares = cpuShares(e.userMemory, memory)
	if e.cpus > 0 {
		s.Linux.Resources.CPU.Period = 100000
		s.Linux.Resources.CPU.Quota = int64(e.cpus * 100000)
	}
	s.Linux.Resources.Pids.Limit = upstreamPidsLimit
	s.Linux.MaskedPaths = []string{"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
		"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware"}
	s.Linux.ReadonlyPaths = []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
	return s
}

// runcContainer is one running `runc run`.
type runcContainer struct {
	e       *runcEngine
	id      string
	bundle  string
	sockDir string
	cmd     *exec.Cmd
	pump    *logPump
	done    chan struct{}
	runErr  error
	cli     *Client
	once    sync.Once
	paused  atomic.Bool
}

// start creates the bundle, starts `runc run` in the foreground (runc stays the container's
// parent and passes its stdio through: stdout and stderr pipes are the container's log), and
// waits until the proxy listens.
func (e *runcEngine) start(ctx context.Context, ss backend.StartSpec) (handle, error) {
	kind, memory := ss.Kind, ss.Memory
	n := e.seq.Add(1)
	id := fmt.Sprintf("%s-%d-%s", e.prefix, n, sanitize(kind))
	bundle := filepath.Join(e.bundles, id)
	sockDir := filepath.Join(e.sockRoot, strconv.FormatInt(n, 10))
	sock := filepath.Join(sockDir, socketName)
	if len(sock) > maxSocketPath {
		// Only a long run-dir option gets here; connect(2) would fail with EINVAL, which the
		// runtime client would report as an action that exited during /init.
		return nil, fmt.Errorf("container: socket path %q is %d bytes, more than the %d a unix socket address holds: choose a shorter run-dir: %w",
			sock, len(sock), maxSocketPath, backend.ErrPlatform)
	}
	fail := func(err error) (handle, error) {
		os.RemoveAll(bundle)
		os.RemoveAll(sockDir)
		return nil, fmt.Errorf("container: bundle: %w: %w", err, backend.ErrPlatform)
	}
	if err := os.MkdirAll(bundle, 0o700); err != nil {
		return fail(err)
	}
	// 0700 and owned by the container's user: the proxy (nobody) creates its socket there, and
	// no other user of the host can connect to it.
	if err := os.Mkdir(sockDir, 0o700); err != nil {
		return fail(err)
	}
	if err := os.Chown(sockDir, containerUID, containerUID); err != nil {
		return fail(err)
	}
	spec, _ := json.Marshal(e.spec(id, kind, memory, sockDir))
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), spec, 0o600); err != nil {
		return fail(err)
	}
	c := &runcContainer{e: e, id: id, bundle: bundle, sockDir: sockDir, done: make(chan struct{}), pump: newLogPump(nil)}
	c.cli = NewUnixClient(sock)
	cmd := exec.Command(e.runc, "--root", e.stateRoot, "run", "--bundle", bundle, "--pid-file", filepath.Join(bundle, "pid"), id)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("container: %w: %w", err, backend.ErrPlatform)
	}
	// runc's own errors also arrive on stderr; the pump passes them on as log lines and the
	// start path below reports them when runc fails before the proxy listens.
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, fmt.Errorf("container: %w: %w", err, backend.ErrPlatform)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		os.RemoveAll(bundle)
		os.RemoveAll(sockDir)
		return nil, fmt.Errorf("container: %s run: %w: %w", e.runc, err, backend.ErrPlatform)
	}
	c.cmd = cmd
	c.pump.readLines(stdout, "stdout")
	c.pump.readLines(stderr, "stderr")
	go func() {
		c.pump.wg.Wait()
		c.runErr = cmd.Wait()
		close(c.done)
	}()
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, startTimeout)
		defer cancel()
	}
	for {
		if _, err := os.Stat(sock); err == nil {
			return c, nil
		}
		select {
		case <-c.done:
			msg := c.drainEarly()
			c.destroy(context.Background())
			return nil, fmt.Errorf("container: %s run %s exited before the proxy listened (%v): %s: %w", e.runc, id, c.runErr, msg, backend.ErrPlatform)
		case <-ctx.Done():
			c.destroy(context.Background())
			return nil, fmt.Errorf("container: starting %s: %w: %w", id, ctx.Err(), backend.ErrPlatform)
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// drainEarly returns what the container printed before it died at start (runc's error).
func (c *runcContainer) drainEarly() string {
	var parts []string
	items, _ := c.pump.take()
	for _, it := range items {
		if !it.eof && !it.sentinel {
			parts = append(parts, it.line.Text)
		}
	}
	return strings.Join(parts, " | ")
}

func sanitize(kind string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		return '-'
	}, strings.ToLower(kind))
}

func (c *runcContainer) ID() string        { return c.id }
func (c *runcContainer) client() *Client   { return c.cli }
func (c *runcContainer) logs() *logPump    { return c.pump }
func (c *runcContainer) sentinelled() bool { return true } // our proxy writes them for every kind

func (c *runcContainer) cgroupPath() string { return cgroupParent + "/" + c.id }

// oomKilled reads the container's cgroup OOM counter. The proxy stays alive after its launcher
// is killed, so the cgroup still exists when the invoker asks.
func (c *runcContainer) oomKilled(ctx context.Context) bool {
	n, err := c.e.cg.oomKills(c.cgroupPath())
	return err == nil && n > 0
}

func (c *runcContainer) memoryUsed() (int64, error) { return c.e.cg.memoryUsage(c.cgroupPath()) }

func (c *runcContainer) runcCmd(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, c.e.runc, append([]string{"--root", c.e.stateRoot}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("container: runc %s %s: %v: %s: %w", args[0], c.id, err, bytes.TrimSpace(out), backend.ErrPlatform)
	}
	return nil
}

func (c *runcContainer) pause(ctx context.Context) error {
	if err := c.runcCmd(ctx, "pause", c.id); err != nil {
		return err
	}
	c.paused.Store(true)
	return nil
}

func (c *runcContainer) resume(ctx context.Context) error {
	if err := c.runcCmd(ctx, "resume", c.id); err != nil {
		return err
	}
	c.paused.Store(false)
	return nil
}

// destroy kills the container's init (the proxy; its PID namespace goes with it), lets the
// foreground runc reap it and delete the container and its cgroup, then removes the bundle.
func (c *runcContainer) destroy(ctx context.Context) error {
	var err error
	c.once.Do(func() {
		if b, rerr := os.ReadFile(filepath.Join(c.bundle, "pid")); rerr == nil {
			if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); perr == nil && pid > 1 {
				// A paused (frozen) container cannot die until thawed.
				if c.paused.Load() {
					c.runcCmd(ctx, "resume", c.id)
				}
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		select {
		case <-c.done:
		case <-time.After(5 * time.Second):
			c.runcCmd(context.Background(), "delete", "-f", c.id)
			if c.cmd.Process != nil {
				c.cmd.Process.Kill()
			}
			<-c.done
		}
		if _, serr := os.Stat(filepath.Join(c.e.stateRoot, c.id)); serr == nil {
			err = c.runcCmd(context.Background(), "delete", "-f", c.id)
		}
		os.RemoveAll(c.bundle)
		os.RemoveAll(c.sockDir)
	})
	return err
}
