package container

import (
	"context"
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

	"go.uber.org/zap"

	"github.com/snapinvoker/snapinvoker/activation"
	"github.com/snapinvoker/snapinvoker/backend"
	"github.com/snapinvoker/snapinvoker/runtimes"
)

// DriverName is the name the driver registers under.
const DriverName = "container"

// Kinds are the kind patterns the driver runs.
var Kinds = []string{"nodejs:*", "python:3*", "blackbox"}

// ErrBadOption: a driver option is unknown or malformed; the message names it.
var ErrBadOption = errors.New("container: bad driver option")

func init() {
	backend.Register(DriverName, backend.Registration{
		Kinds: Kinds,
		Probe: Probe,
		New: func(ctx context.Context, cfg backend.Config) (backend.Driver, error) {
			return New(ctx, cfg)
		},
	})
}

// options are the driver's settings (backend.Config.Options), documented in doc.go.
type options struct {
	engine    string
	runc      string
	proxy     string
	proxyArgs []string
	// interpreters are proxy flags (-node, -python3) naming the runtimes' interpreters.
	interpreters []string
	network      string
	// runDir holds the per-driver directories of the containers' socket directories (runc).
	runDir     string
	env        []string
	userMemory int64
	cpus       float64
	docker     dockerOptions
}

func parseOptions(m map[string]string) (options, error) {
	o := options{engine: "runc", network: NetworkLoopback, runDir: DefaultRunDir, userMemory: 2 << 30, proxyArgs: []string{"proxy"}}
	o.docker = defaultDockerOptions()
	bad := func(k, why string) error { return fmt.Errorf("%w %q: %s", ErrBadOption, k, why) }
	for k, v := range m {
		switch {
		case k == "engine":
			if v != "runc" && v != "docker" {
				return o, bad(k, "must be runc or docker")
			}
			o.engine = v
		case k == "runc":
			o.runc = v
		case k == "proxy":
			o.proxy = v
		case k == "proxy-args":
			o.proxyArgs = strings.Fields(v)
		case k == "node" || k == "python3":
			if !strings.HasPrefix(v, "/") {
				return o, bad(k, "must be an absolute path inside the container (under /usr)")
			}
			o.interpreters = append(o.interpreters, "-"+k, v)
		case k == "network":
			if v != NetworkLoopback && v != NetworkHost {
				return o, bad(k, "must be loopback or host")
			}
			o.network = v
		case k == "run-dir":
			if !filepath.IsAbs(v) {
				return o, bad(k, "must be an absolute path")
			}
			o.runDir = filepath.Clean(v)
		case k == "api-host":
			o.env = append(o.env, "__OW_API_HOST="+v)
			o.docker.apiHost = v
		case k == "user-memory":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n <= 0 {
				return o, bad(k, "must be a positive number of bytes")
			}
			o.userMemory = n
		case k == "cpus":
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || f < 0 {
				return o, bad(k, "must be a non-negative number of CPUs")
			}
			o.cpus = f
		case k == "docker-host":
			o.docker.host = v
		case k == "docker-network":
			o.docker.network = v
		case k == "invoker-name":
			o.docker.namePrefix = "wsk" + v + "_"
		case strings.HasPrefix(k, "image."):
			o.docker.images[strings.TrimPrefix(k, "image.")] = v
		case k == "runtime-port":
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 || n > 65535 {
				return o, bad(k, "must be a TCP port")
			}
			o.docker.runtimePort = n
		default:
			return o, bad(k, "unknown (known: engine, runc, proxy, proxy-args, node, python3, network, run-dir, api-host, user-memory, cpus, docker-host, docker-network, invoker-name, image.<kind>, runtime-port)")
		}
	}
	o.docker.userMemory = o.userMemory
	o.docker.cpus = o.cpus
	if o.engine == "runc" && o.runc == "" {
		p, err := exec.LookPath("runc")
		if err != nil {
			return o, fmt.Errorf("%w \"runc\": no runc on PATH (install Debian's runc): %v", ErrBadOption, err)
		}
		o.runc = p
	}
	if o.engine == "runc" && o.proxy == "" {
		self, err := os.Executable()
		if err != nil {
			return o, fmt.Errorf("%w \"proxy\": cannot find our own binary: %v", ErrBadOption, err)
		}
		o.proxy = self
	}
	return o, nil
}

// Probe reports why the driver cannot run here: for runc, no runc, not root, or no cgroups;
// for docker, no engine answering on its socket.
func Probe(ctx context.Context, cfg backend.Config) error {
	o, err := parseOptions(cfg.Options)
	if err != nil {
		return err
	}
	if o.engine == "docker" {
		return newDockerAPI(o.docker.host).ping(ctx)
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("container: runc engine needs root (uid %d)", os.Geteuid())
	}
	if _, err := detectCgroups("/sys/fs/cgroup"); err != nil {
		return err
	}
	if out, err := exec.CommandContext(ctx, o.runc, "--version").CombinedOutput(); err != nil {
		return fmt.Errorf("container: %s --version: %v: %s", o.runc, err, out)
	}
	return nil
}

// handle is one container as an engine runs it.
type handle interface {
	ID() string
	client() *Client
	logs() *logPump
	// sentinelled: the runtime writes the log sentinels after every /run.
	sentinelled() bool
	oomKilled(ctx context.Context) bool
	pause(ctx context.Context) error
	resume(ctx context.Context) error
	memoryUsed() (int64, error)
	destroy(ctx context.Context) error
}

// engine starts containers.
type engine interface {
	start(ctx context.Context, spec backend.StartSpec) (handle, error)
}

// engineCloser is an engine holding host resources of its own beyond its containers' (the runc
// engine's socket directory); Driver.Close calls close after destroying every container.
type engineCloser interface {
	close() error
}

// Driver runs actions in containers (backend.Driver).
type Driver struct {
	eng  engine
	log  *zap.Logger
	name string
	live backend.Live
}

// New constructs the driver from cfg.Options (see doc.go); DataDir holds bundles and runc
// state. Containers a previous run left behind are removed.
func New(ctx context.Context, cfg backend.Config) (*Driver, error) {
	o, err := parseOptions(cfg.Options)
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	d := &Driver{log: log, name: DriverName}
	switch o.engine {
	case "docker":
		e, err := newDockerEngine(ctx, o.docker, log)
		if err != nil {
			return nil, err
		}
		d.eng = e
	default:
		if cfg.DataDir == "" {
			return nil, fmt.Errorf("%w \"DataDir\": the runc engine needs a data directory", ErrBadOption)
		}
		e, err := newRuncEngine(ctx, o, cfg.DataDir, log)
		if err != nil {
			return nil, err
		}
		d.eng = e
	}
	return d, nil
}

// Name implements backend.Driver.
func (d *Driver) Name() string { return d.name }

// Start implements backend.Driver: a container for spec.Kind with spec.Memory, its runtime
// started and waiting for /init (a prewarm when spec.Action is nil).
func (d *Driver) Start(ctx context.Context, spec backend.StartSpec) (backend.Instance, error) {
	if _, err := runtimes.FamilyOf(spec.Kind); err != nil {
		return nil, fmt.Errorf("container: start: %w: %w", err, backend.ErrUnsupported)
	}
	if spec.Memory <= 0 {
		return nil, fmt.Errorf("container: start: StartSpec.Memory must be positive, got %d: %w", spec.Memory, backend.ErrPlatform)
	}
	if d.live.Closed() {
		return nil, fmt.Errorf("container: start: driver closed: %w", backend.ErrPlatform)
	}
	h, err := d.eng.start(ctx, spec)
	if err != nil {
		return nil, err
	}
	in := &instance{d: d, h: h, spec: spec}
	if !d.live.Add(in) { // Close began while the container started: it would not see this one
		_ = h.destroy(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("container: start: driver closed: %w", backend.ErrPlatform)
	}
	d.log.Debug("container started", zap.String("container", h.ID()), zap.String("kind", spec.Kind), zap.Int64("memory", spec.Memory), zap.Bool("prewarm", spec.Action == nil))
	return in, nil
}

// Close destroys every live instance.
func (d *Driver) Close() error {
	errs := d.live.Close()
	if c, ok := d.eng.(engineCloser); ok {
		errs = append(errs, c.close())
	}
	return errors.Join(errs...)
}

// instance is one container (backend.Instance, Pauser, MemoryReporter).
type instance struct {
	d         *Driver
	h         handle
	spec      backend.StartSpec
	mu        sync.Mutex // one call at a time
	destroyed atomic.Bool
}

func (in *instance) ID() string { return in.h.ID() }

// Init implements backend.Instance. A successful /init collects no logs: as upstream, what the
// action printed while loading is read with its first activation's logs.
func (in *instance) Init(ctx context.Context, req backend.InitRequest) (backend.Result, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.destroyed.Load() {
		return backend.Result{}, fmt.Errorf("container: init on destroyed %s: %w", in.h.ID(), backend.ErrPlatform)
	}
	out, err := in.h.client().Init(ctx, req.Body, req.Deadline)
	if err != nil {
		return backend.Result{Outcome: out}, err
	}
	in.oom(ctx, &out)
	res := backend.Result{Outcome: out}
	if out.Failure == activation.NoFailure && out.Status == 200 {
		return res, nil
	}
	in.collect(ctx, &res, out.Failure == activation.NoFailure, req.Action.LogLimit)
	var ids struct {
		Value struct {
			Env struct {
				ActivationID  string `json:"__OW_ACTIVATION_ID"`
				TransactionID string `json:"__OW_TRANSACTION_ID"`
			} `json:"env"`
		} `json:"value"`
	}
	json.Unmarshal(req.Body, &ids)
	in.d.log.Info("container init failed", zap.String("container", in.h.ID()), zap.String("activation", ids.Value.Env.ActivationID),
		zap.String("transaction", ids.Value.Env.TransactionID), zap.String("action", req.Action.Name),
		zap.Stringer("failure", out.Failure), zap.Int("status", out.Status))
	return res, nil
}

// Run implements backend.Instance.
func (in *instance) Run(ctx context.Context, req backend.RunRequest) (backend.Result, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.destroyed.Load() {
		return backend.Result{}, fmt.Errorf("container: run on destroyed %s: %w", in.h.ID(), backend.ErrPlatform)
	}
	out, err := in.h.client().Run(ctx, req.Body, req.Deadline, req.MaxResponse)
	if err != nil {
		return backend.Result{Outcome: out}, err
	}
	in.oom(ctx, &out)
	res := backend.Result{Outcome: out}
	in.collect(ctx, &res, out.Failure == activation.NoFailure, req.LogLimit)
	if out.Failure != activation.NoFailure {
		in.d.log.Info("container run failed", append(in.runFields(req),
			zap.Stringer("failure", out.Failure), zap.Duration("elapsed", out.Elapsed()))...)
	}
	return res, nil
}

// runFields names the activation, its transaction and its action for a log line, read from the
// /run body (only when something is worth logging: bodies can be large).
func (in *instance) runFields(req backend.RunRequest) []zap.Field {
	var ids struct {
		ActivationID  string `json:"activation_id"`
		TransactionID string `json:"transaction_id"`
		ActionName    string `json:"action_name"`
	}
	json.Unmarshal(req.Body, &ids)
	if ids.ActivationID == "" {
		ids.ActivationID = req.ActivationID
	}
	return []zap.Field{zap.String("container", in.h.ID()), zap.String("activation", ids.ActivationID),
		zap.String("transaction", ids.TransactionID), zap.String("action", ids.ActionName)}
}

func (in *instance) oom(ctx context.Context, out *activation.RuntimeOutcome) {
	if out.Failure == activation.FailureExited && in.h.oomKilled(ctx) {
		out.Failure = activation.FailureOOM
	}
}

// collect reads this call's logs: up to the sentinels when the runtime answered (it writes them
// before answering), otherwise whatever it wrote before it failed.
func (in *instance) collect(ctx context.Context, res *backend.Result, answered bool, limit int64) {
	wantSentinels := answered && in.h.sentinelled()
	c := in.h.logs().collect(ctx, wantSentinels, limit)
	res.Logs, res.LogsTruncated = c.lines, c.truncated
	if c.failed && wantSentinels {
		res.Logs = append(res.Logs, activation.LogLine{Time: res.Outcome.End, Stream: "stderr", Text: CollectionIssue})
	}
}

// Pause implements backend.Pauser (runc pause / docker pause: the cgroup freezer).
func (in *instance) Pause(ctx context.Context) error { return in.h.pause(ctx) }

// Resume implements backend.Pauser.
func (in *instance) Resume(ctx context.Context) error { return in.h.resume(ctx) }

// MemoryUsed implements backend.MemoryReporter: the container cgroup's current usage.
func (in *instance) MemoryUsed() (int64, error) { return in.h.memoryUsed() }

// Destroy implements backend.Instance.
func (in *instance) Destroy(ctx context.Context) error {
	if in.destroyed.Swap(true) {
		return nil
	}
	in.d.live.Remove(in)
	return in.h.destroy(ctx)
}

var (
	_ backend.Driver         = (*Driver)(nil)
	_ backend.Instance       = (*instance)(nil)
	_ backend.Pauser         = (*instance)(nil)
	_ backend.MemoryReporter = (*instance)(nil)
)
