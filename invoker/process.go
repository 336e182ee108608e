package invoker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/snapinvoker/snapinvoker/activation"
	"github.com/snapinvoker/snapinvoker/invoker/admin"
	"github.com/snapinvoker/snapinvoker/invoker/config"
	"github.com/snapinvoker/snapinvoker/invoker/couch"
	"github.com/snapinvoker/snapinvoker/invoker/health"
	"github.com/snapinvoker/snapinvoker/invoker/idassign"
	"github.com/snapinvoker/snapinvoker/invoker/kafkafeed"
	"github.com/snapinvoker/snapinvoker/invoker/metrics"
)

// Options are what Start needs beyond the configuration.
type Options struct {
	Config config.Config
	// Executor runs actions. When nil, NewExecutor builds one from the configuration.
	Executor Executor
	// NewExecutor builds the executor once the invoker's id and manifest are known (e.g. the
	// pool over the registered drivers). Used when Executor is nil.
	NewExecutor func(ctx context.Context, p ExecutorParams) (Executor, error)
	// Actions and Records replace the CouchDB client (the standalone store). Both or neither.
	Actions ActionSource
	Records RecordStore
	Logger  *zap.Logger
	// Listener serves the admin API instead of listening on Config.Port (tests).
	Listener net.Listener
	// PingInterval is the health ping period (1 s when zero).
	PingInterval time.Duration
	// FetchRetry bounds the retries of an action fetch while CouchDB is unreachable (10 s
	// when zero).
	FetchRetry time.Duration
	// AckMaxBytes bounds an ack record (MAX_ACTIVATION_LIMIT when zero); tests lower it to
	// exercise the shrunk re-send of a too-large ack.
	AckMaxBytes int64
}

// ExecutorParams are what an executor is built from.
type ExecutorParams struct {
	Config   config.Config
	Instance activation.InvokerInstanceID
	Manifest *activation.Manifest
	Metrics  *metrics.Metrics
	Logger   *zap.Logger
}

// Process is a started invoker with its edges: Kafka feed and producers, CouchDB, health
// pinger and admin HTTP server.
type Process struct {
	Invoker  *Invoker
	Instance activation.InvokerInstanceID
	Metrics  *metrics.Metrics
	Pinger   *health.Pinger
	// Topic is the consumed topic, <prefix>invoker<N>.
	Topic string

	log      *zap.Logger
	feed     *kafkafeed.Feed
	acks     *kafkafeed.Producer
	pings    *kafkafeed.Producer
	server   *http.Server
	listener net.Listener
	closers  []func() error

	blacklist      *Blacklist
	blacklistEvery time.Duration
}

// SystemLimits converts the configured limits into the activation rules' units.
func SystemLimits(l config.Limits) activation.SystemLimits {
	return activation.SystemLimits{
		MinMemory: l.MinMemory >> 20, MaxMemory: l.MaxMemory >> 20, StdMemory: l.StdMemory >> 20,
		MinTimeout: l.MinTime.Milliseconds(), MaxTimeout: l.MaxTime.Milliseconds(), StdTimeout: l.StdTime.Milliseconds(),
		MinLogs: l.MinLogs >> 20, MaxLogs: l.MaxLogs >> 20, StdLogs: l.StdLogs >> 20,
		MinConcurrency: int64(l.MinConcurrency), MaxConcurrency: int64(l.MaxConcurrency), StdConcurrency: int64(l.StdConcurrency),
		MaxPayload: l.PayloadMax, Truncation: l.PayloadMax,
	}
}

// Start validates the manifest, obtains the invoker id (from --id or ZooKeeper), creates the
// invoker topic, connects to Kafka and CouchDB and prepares the admin API. Nothing is consumed
// before Run. Every error names what is wrong in one line.
func Start(ctx context.Context, o Options) (*Process, error) {
	cfg := o.Config
	log := o.Logger
	if log == nil {
		log = zap.NewNop()
	}
	manifest, err := activation.DecodeManifest([]byte(cfg.RuntimesManifest))
	if err != nil {
		return nil, fmt.Errorf("RUNTIMES_MANIFEST: %w", err)
	}
	var keys activation.ParameterKeys
	if pk := cfg.ParameterKeys; pk.AES128 != "" || pk.AES256 != "" {
		raw, _ := json.Marshal(map[string]string{"current": pk.Current, "aes-128": pk.AES128, "aes-256": pk.AES256})
		if keys, err = activation.DecodeParameterKeys(raw); err != nil {
			return nil, fmt.Errorf("CONFIG_whisk_parameterStorage: %w", err)
		}
	}
	blockingLevel, err := activation.ParseStoreLevel(cfg.StoreBlockingResultLevel)
	if err != nil {
		return nil, err
	}
	nonBlockingLevel, err := activation.ParseStoreLevel(cfg.StoreNonBlockingResultLevel)
	if err != nil {
		return nil, err
	}

	id := cfg.Identity.ID
	if !cfg.Identity.HasID {
		var overwrite *int
		if cfg.Identity.HasOverwriteID {
			overwrite = &cfg.Identity.OverwriteID
		}
		actx, cancel := context.WithTimeout(ctx, time.Minute)
		id, err = idassign.Assign(actx, cfg.ZooKeeperHosts, cfg.Identity.UniqueName, overwrite)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("invoker id for --uniqueName %q: %w", cfg.Identity.UniqueName, err)
		}
		log.Info("invoker id assigned through ZooKeeper", zap.String("unique_name", cfg.Identity.UniqueName), zap.Int("id", id))
	}
	inst := activation.InvokerInstanceID{Instance: id, UniqueName: cfg.Identity.UniqueName,
		DisplayedName: cfg.Identity.DisplayedName, UserMemory: activation.SizeBytes(cfg.UserMemory)}
	p := &Process{Instance: inst, log: log.With(zap.String("invoker", inst.Source())), Topic: cfg.Kafka.TopicPrefix + inst.Topic()}
	ok := false
	defer func() {
		if !ok {
			p.close()
		}
	}()

	if err := retry(ctx, time.Minute, func() error {
		return kafkafeed.EnsureTopic(ctx, cfg.KafkaHosts, p.Topic, activation.MaxActivationLimit)
	}); err != nil {
		return nil, fmt.Errorf("KAFKA_HOSTS %v: %w", cfg.KafkaHosts, err)
	}
	var bound int64
	if err := retry(ctx, time.Minute, func() (err error) {
		bound, err = kafkafeed.EndOffset(ctx, cfg.KafkaHosts, p.Topic)
		return err
	}); err != nil {
		return nil, fmt.Errorf("KAFKA_HOSTS %v: %w", cfg.KafkaHosts, err)
	}

	actions, records := o.Actions, o.Records
	if actions == nil || records == nil {
		client, err := couch.New(cfg.CouchDB.URL, cfg.CouchDB.Username, cfg.CouchDB.Password)
		if err != nil {
			return nil, fmt.Errorf("CONFIG_whisk_couchdb_*: %w", err)
		}
		actions = couch.NewActions(client, cfg.CouchDB.EntityDB, cfg.Snap.ActionCacheEntries)
		records = couch.NewStore(client, cfg.CouchDB.ActivationDB, cfg.Snap.StoreBatchSize, p.log)
		if cfg.CouchDB.AuthDB != "" {
			p.blacklist = NewBlacklist(func(ctx context.Context) ([]string, error) {
				return client.ViewKeys(ctx, cfg.CouchDB.AuthDB, "namespaceThrottlings", "blockedNamespaces")
			}, p.log)
			p.blacklistEvery = cfg.BlacklistPollInterval
		}
	}
	p.closers = append(p.closers, func() error { return records.Close(context.Background()) })

	var inv *Invoker
	exe := o.Executor
	p.Metrics = metrics.New(metrics.Gauges{
		QueueLength:     func() float64 { return float64(inv.InFlight()) },
		PoolMemoryTotal: func() float64 { return float64(cfg.UserMemory) },
		PoolMemoryUsed: func() float64 {
			if m, ok := exe.(interface{ MemoryInUse() int64 }); ok {
				return float64(m.MemoryInUse())
			}
			return 0
		},
		StorePending: func() float64 { return float64(records.Pending()) },
	})
	if exe == nil {
		if o.NewExecutor == nil {
			return nil, errors.New("invoker: no executor (no driver pool configured)")
		}
		if exe, err = o.NewExecutor(ctx, ExecutorParams{Config: cfg, Instance: inst, Manifest: manifest, Metrics: p.Metrics, Logger: p.log}); err != nil {
			return nil, fmt.Errorf("drivers: %w", err)
		}
	}
	if c, ok := exe.(interface{ Close() error }); ok {
		p.closers = append(p.closers, c.Close)
	}

	p.feed, err = kafkafeed.New(kafkafeed.Config{Brokers: cfg.KafkaHosts, Topic: p.Topic, MaxPeek: cfg.MaxPeek(),
		MaxMessageBytes: activation.MaxActivationLimit, MaxWait: cfg.Snap.KafkaMaxWait, Logger: p.log})
	if err != nil {
		return nil, err
	}
	ackMax := o.AckMaxBytes
	if ackMax <= 0 {
		ackMax = activation.MaxActivationLimit
	}
	p.acks = kafkafeed.NewProducer(cfg.KafkaHosts, ackMax)
	p.pings = kafkafeed.NewProducer(cfg.KafkaHosts, 1<<20)
	events := ""
	if cfg.UserEvents {
		events = cfg.Kafka.UserEventPrefix + "events"
	}
	inv, err = New(Deps{
		Instance: inst, Manifest: manifest, Sys: SystemLimits(cfg.Limits), Keys: keys,
		StoreBlocking: blockingLevel, StoreNonBlocking: nonBlockingLevel,
		TopicPrefix: cfg.Kafka.TopicPrefix, UserEventsTopic: events,
		Feed: p.feed, Acks: p.acks, Actions: actions, Records: records, Executor: exe,
		Metrics: p.Metrics, Logger: log, RedeliveryBound: bound, FetchRetry: o.FetchRetry, Blacklist: p.blacklist,
	})
	if err != nil {
		return nil, err
	}
	p.Invoker = inv
	healthTopic := cfg.Kafka.TopicPrefix + "health"
	interval := o.PingInterval
	if interval == 0 {
		interval = time.Second
	}
	p.Pinger = health.New(inst, func(ctx context.Context, v []byte) error { return p.pings.Send(ctx, healthTopic, v) }, interval, p.log)

	p.listener = o.Listener
	if p.listener == nil {
		if p.listener, err = net.Listen("tcp", ":"+strconv.Itoa(cfg.Port)); err != nil {
			return nil, fmt.Errorf("PORT %d: %w", cfg.Port, err)
		}
	}
	p.server = &http.Server{Handler: admin.Handler(admin.Config{Name: inst.Source(), Username: cfg.AdminUser,
		Password: cfg.AdminPassword, Switch: p.Pinger, Registry: p.Metrics.Registry, Logger: p.log}),
		ReadHeaderTimeout: 10 * time.Second}
	ok = true
	return p, nil
}

// Committed is the offset of the invoker topic last committed (-1 before the first commit).
func (p *Process) Committed() int64 { return p.feed.Committed() }

// Addr is the admin API's address.
func (p *Process) Addr() string { return p.listener.Addr().String() }

// Run serves until ctx ends, then shuts down gracefully: consumption stops, in-flight
// activations are finished and acked, records written, offsets committed, pings stopped.
func (p *Process) Run(ctx context.Context) error {
	pingCtx, stopPings := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	if p.blacklist != nil {
		// The first load happens before consuming, so a blocked namespace is refused at once.
		lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_ = p.blacklist.Refresh(lctx)
		cancel()
		wg.Add(1)
		go func() { defer wg.Done(); p.blacklist.Run(pingCtx, p.blacklistEvery) }()
	}
	wg.Add(2)
	go func() { defer wg.Done(); p.Pinger.Run(pingCtx) }()
	go func() {
		defer wg.Done()
		if err := p.server.Serve(p.listener); err != nil && !errors.Is(err, http.ErrServerClosed) {
			p.log.Error("admin API stopped", zap.Error(err))
		}
	}()
	p.log.Info("invoker started", zap.String("topic", p.Topic), zap.String("admin", p.Addr()))
	err := p.Invoker.Run(ctx)
	stopPings()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	_ = p.server.Shutdown(sctx)
	cancel()
	wg.Wait()
	p.close()
	return err
}

// Abort stops the process as a crash would (tests): nothing more is acked, stored or committed.
func (p *Process) Abort() {
	p.Invoker.Abort()
}

func (p *Process) close() {
	for i := len(p.closers) - 1; i >= 0; i-- {
		_ = p.closers[i]()
	}
	p.closers = nil
	if p.acks != nil {
		_ = p.acks.Close()
	}
	if p.pings != nil {
		_ = p.pings.Close()
	}
	if p.server == nil && p.listener != nil {
		_ = p.listener.Close()
	}
}

// retry calls f until it succeeds, ctx ends or limit passes.
func retry(ctx context.Context, limit time.Duration, f func() error) error {
	deadline := time.Now().Add(limit)
	backoff := 100 * time.Millisecond
	for {
		err := f()
		if err == nil || ctx.Err() != nil || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}
