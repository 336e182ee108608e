package invoker

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/snapinvoker/snapinvoker/activation"
	"github.com/snapinvoker/snapinvoker/backend"
	"github.com/snapinvoker/snapinvoker/invoker/config"
	"github.com/snapinvoker/snapinvoker/pool"
)

// PoolExecutor runs activations through the pool (the scheduler over the drivers).
type PoolExecutor struct {
	Pool *pool.Pool
	// Drivers is closed with the executor when set.
	Drivers *backend.Set
}

// Execute implements Executor.
func (e *PoolExecutor) Execute(ctx context.Context, x Execution) (Executed, error) {
	a := x.Action
	req := pool.Request{
		Key:    pool.ActionKey{Namespace: a.Namespace, Action: a.Name, Version: a.Version, Digest: x.Digest},
		Action: a,
		MakeInit: func(now time.Time) backend.InitRequest {
			return backend.InitRequest{Action: a, Body: x.MakeInit(now), Deadline: now.Add(a.Timeout)}
		},
		MakeRun: func(now time.Time) backend.RunRequest {
			return backend.RunRequest{ActivationID: x.ActivationID, Body: x.MakeRun(now), Deadline: now.Add(a.Timeout),
				LogLimit: x.LogLimit, MaxResponse: x.MaxResponse}
		},
		Keep:          x.Keep,
		ActivationID:  x.ActivationID,
		TransactionID: x.TransactionID,
	}
	res, err := e.Pool.Run(ctx, req)
	out := Executed{Start: string(res.Start), Driver: res.Driver, Init: res.Init, Run: res.Run}
	if !res.Dispatched.IsZero() && !res.Submitted.IsZero() {
		out.StartLatency = res.Dispatched.Sub(res.Submitted)
	}
	if err != nil {
		return out, err
	}
	if (res.Start == pool.Warming || res.Start == pool.WarmingCold) && res.Run == nil && res.Init != nil {
		out.Aborted = true
	}
	return out, nil
}

// MemoryInUse is the user memory charged to instances.
func (e *PoolExecutor) MemoryInUse() int64 { return e.Pool.Stats().InUse }

// Close destroys every instance and closes the drivers.
func (e *PoolExecutor) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := e.Pool.Close(ctx)
	if e.Drivers != nil {
		if derr := e.Drivers.Close(); err == nil {
			err = derr
		}
	}
	return err
}

// NewPoolExecutor opens the drivers of registry (nil: the default registry) in the configured
// order and builds the pool with the manifest's stem cells. It is the default
// Options.NewExecutor.
func NewPoolExecutor(ctx context.Context, p ExecutorParams, registry *backend.Registry) (*PoolExecutor, error) {
	order := map[string][]string{}
	for _, r := range p.Config.Snap.Drivers {
		order[r.Kind] = r.Drivers
	}
	set, err := backend.OpenSet(ctx, backend.SetConfig{Registry: registry, Order: order, Logger: p.Logger,
		DataDir: p.Config.Snap.StateDir, Options: driverOptions(p.Config)})
	if err != nil {
		return nil, err
	}
	if len(set.Available()) == 0 {
		set.Close()
		return nil, fmt.Errorf("no driver can run on this host: %v", set.Unavailable())
	}
	p.Logger.Info("drivers available", zap.Strings("drivers", set.Available()))
	if p.Metrics != nil {
		exportDriverMetrics(p.Metrics.Registry, set, p.Logger)
	}
	pl, err := pool.New(poolConfig(p.Config, p.Manifest), pool.Options{Selector: set, Logger: p.Logger})
	if err != nil {
		set.Close()
		return nil, err
	}
	return &PoolExecutor{Pool: pl, Drivers: set}, nil
}

// collectorDriver is the optional capability of a driver that exports metrics of its own (the
// unikernel driver: activations it handed to the next driver by cause, snapshot builds,
// restores). Found by type assertion so that the invoker names no driver.
type collectorDriver interface {
	Collector() prometheus.Collector
}

// exportDriverMetrics registers, in the invoker's registry, the fallbacks between drivers and
// the collector of every opened driver that has one. A collector that cannot be registered
// (its metric names clash with another's) is logged and left out: metrics never stop start-up.
func exportDriverMetrics(r *prometheus.Registry, set *backend.Set, log *zap.Logger) {
	fallbacks := prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "snapinvoker", Name: "driver_fallbacks_total",
		Help: "Actions moved to the next driver of their kind after a driver refused them."},
		func() float64 { return float64(set.Fallbacks()) })
	if err := r.Register(fallbacks); err != nil {
		log.Warn("driver fallback metric not exported", zap.Error(err))
	}
	for _, name := range set.Available() {
		d, _ := set.Driver(name)
		c, ok := d.(collectorDriver)
		if !ok {
			continue
		}
		if err := r.Register(c.Collector()); err != nil {
			log.Warn("driver metrics not exported", zap.String("driver", name), zap.Error(err))
		}
	}
}

func poolConfig(c config.Config, m *activation.Manifest) pool.Config {
	pc := pool.Config{UserMemory: c.UserMemory, IdleTimeout: c.IdleContainer, PauseGrace: c.PauseGrace,
		PrewarmCheckInterval: c.PrewarmCheckInterval}
	for _, sc := range m.StemCells() {
		cell := pool.StemCell{Kind: sc.Kind, Memory: sc.Memory.Bytes(), InitialCount: sc.Count}
		if r := sc.Reactive; r != nil {
			cell.Reactive = &pool.Reactive{MinCount: r.MinCount, MaxCount: r.MaxCount, TTL: r.TTL, Threshold: r.Threshold, Increment: r.Increment}
		}
		pc.StemCells = append(pc.StemCells, cell)
	}
	return pc
}

// driverOptions are the configured per-driver options, with the container driver told the API
// host and user memory (upstream's docker run -e __OW_API_HOST and --cpu-shares) and, when
// INVOKER_OPTS names upstream's Docker container factory, the Docker engine.
func driverOptions(c config.Config) map[string]map[string]string {
	out := map[string]map[string]string{}
	for d, kv := range c.Snap.DriverOptions {
		out[d] = map[string]string{}
		for k, v := range kv {
			out[d][k] = v
		}
	}
	ct := out["container"]
	if ct == nil {
		ct = map[string]string{}
		out["container"] = ct
	}
	defaults := map[string]string{"api-host": c.APIHost, "user-memory": strconv.FormatInt(c.UserMemory, 10)}
	if strings.HasSuffix(c.ContainerFactory, ".DockerContainerFactoryProvider") {
		defaults["engine"] = "docker"
	}
	for k, v := range defaults {
		if _, set := ct[k]; !set {
			ct[k] = v
		}
	}
	return out
}
