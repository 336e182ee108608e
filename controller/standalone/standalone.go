// Package standalone assembles `snapinvoker standalone`: OpenWhisk on one machine. It starts,
// in one process, a Kafka-protocol broker (kfake, or an external broker), the persistent
// store, the lean controller serving the REST API on port 3233, and the invoker, which talks
// to the controller over Kafka exactly as in a cluster.
package standalone

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"go.uber.org/zap"

	"github.com/snapinvoker/snapinvoker/backend"
	"github.com/snapinvoker/snapinvoker/controller"
	"github.com/snapinvoker/snapinvoker/store"
)

// Options configure a standalone OpenWhisk.
type Options struct {
	// Host and Port are where the API listens (default 127.0.0.1:3233). Port 0 picks a free port.
	Host string
	Port int
	// DataDir holds the store (default ~/.snapinvoker); Clean wipes it first.
	DataDir string
	Clean   bool
	// Kafka is an external broker "host:port"; empty starts the embedded one.
	Kafka string
	// Manifest is a runtimes manifest (-m); nil builds one from the drivers on this host.
	Manifest []byte
	// Users are extra subjects (name → "uuid:key") besides guest and whisk.system.
	Users map[string]string
	// Registry is where drivers are probed for the start-up table and the default manifest;
	// nil means backend.DefaultRegistry().
	Registry *backend.Registry
	// DriverOptions are passed to the drivers' probes, by driver name.
	DriverOptions map[string]map[string]string
	// StartInvoker starts the invoker; nil runs without one (invokes then time out with 202).
	StartInvoker InvokerStarter
	// MaxWait caps blocking invokes (default 60 s).
	MaxWait time.Duration
	Logger  *zap.Logger
}

// InvokerEnv is what the standalone gives its invoker: the same Kafka the controller uses,
// the runtimes manifest, and the embedded store in place of CouchDB.
type InvokerEnv struct {
	Brokers []string
	// Manifest is the runtimes manifest JSON (RUNTIMES_MANIFEST).
	Manifest []byte
	// Actions and Activations replace the CouchDB action reader and activation store.
	Actions     *store.Actions
	Activations *store.ActivationWriter
	// APIHost is __OW_API_HOST for actions.
	APIHost string
	// DataDir is a directory the invoker owns (drivers' snapshots, bundles).
	DataDir string
	// Drivers are the drivers found at start-up, for the driver order.
	Drivers []DriverStatus
	Logger  *zap.Logger
}

// InvokerStarter starts an invoker and returns how to stop it. It must return once the
// invoker consumes its topic; stop must release everything.
type InvokerStarter func(ctx context.Context, env InvokerEnv) (stop func(context.Context) error, err error)

// DriverStatus is one row of the start-up driver table.
type DriverStatus struct {
	Name  string
	Kinds []string
	// Err says why the driver cannot run here; nil means it can.
	Err error
}

// Standalone is a running standalone OpenWhisk.
type Standalone struct {
	// APIHost is the base URL, e.g. http://127.0.0.1:3233.
	APIHost string
	// Brokers are the Kafka bootstrap addresses in use.
	Brokers []string
	// Embedded is true when the broker is the in-process kfake.
	Embedded bool
	DataDir  string
	Drivers  []DriverStatus
	// Kinds are the runtime kinds of the manifest in use.
	Kinds []string
	// InvokerRunning is false when no invoker was configured.
	InvokerRunning bool

	log     *zap.Logger
	cluster *kfake.Cluster
	st      *store.Store
	lb      *controller.KafkaBalancer
	http    *http.Server
	served  chan error
	stopInv func(context.Context) error
}

// DefaultDataDir is ~/.snapinvoker (or ./.snapinvoker when there is no home).
func DefaultDataDir() string {
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		return ".snapinvoker"
	}
	return filepath.Join(home, ".snapinvoker")
}

// Start brings everything up. On error, whatever was started is stopped again.
func Start(ctx context.Context, o Options) (_ *Standalone, err error) {
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Host == "" {
		o.Host = "127.0.0.1"
	}
	if o.DataDir == "" {
		o.DataDir = DefaultDataDir()
	}
	if o.Registry == nil {
		o.Registry = backend.DefaultRegistry()
	}
	s := &Standalone{DataDir: o.DataDir, log: o.Logger, served: make(chan error, 1)}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()

	s.Drivers = ProbeDrivers(ctx, o.Registry, o.DriverOptions, filepath.Join(o.DataDir, "drivers"))
	manifest := o.Manifest
	if manifest == nil {
		manifest = DefaultManifest(s.Drivers)
	}
	m, err := controller.ParseManifest(manifest)
	if err != nil {
		return nil, fmt.Errorf("standalone: runtimes manifest: %w", err)
	}
	s.Kinds = m.Kinds()

	if o.Clean {
		if err := store.Clean(o.DataDir); err != nil {
			return nil, fmt.Errorf("standalone: --clean: %w", err)
		}
	}
	if s.st, err = store.Open(o.DataDir, store.Options{}); err != nil {
		return nil, fmt.Errorf("standalone: %w", err)
	}

	if o.Kafka != "" {
		s.Brokers = []string{o.Kafka}
	} else {
		// The embedded broker: topics are seeded so nothing waits on auto-creation.
		s.cluster, err = kfake.NewCluster(kfake.NumBrokers(1),
			kfake.SeedTopics(1, "invoker0", "completed0", "health", "events", "cacheInvalidation"))
		if err != nil {
			return nil, fmt.Errorf("standalone: embedded Kafka broker: %w", err)
		}
		s.Brokers = s.cluster.ListenAddrs()
		s.Embedded = true
	}
	if s.lb, err = controller.NewKafkaBalancer(ctx, controller.KafkaConfig{Brokers: s.Brokers, Logger: o.Logger.Named("balancer")}); err != nil {
		return nil, fmt.Errorf("standalone: %w", err)
	}

	users := controller.DefaultUsers()
	for k, v := range o.Users {
		users[k] = v
	}
	limits := controller.DefaultLimits()
	if o.MaxWait > 0 {
		limits.MaxWait = o.MaxWait
	}
	srv, err := controller.New(controller.Config{Store: s.st, Manifest: m, Balancer: s.lb, Users: users,
		Limits: limits, Logger: o.Logger.Named("controller"), Build: "snapinvoker-standalone"})
	if err != nil {
		return nil, fmt.Errorf("standalone: %w", err)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(o.Host, strconv.Itoa(o.Port)))
	if err != nil {
		return nil, fmt.Errorf("standalone: listen on %s:%d: %w", o.Host, o.Port, err)
	}
	s.APIHost = "http://" + ln.Addr().String()
	s.http = &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { s.served <- s.http.Serve(ln) }()

	if o.StartInvoker != nil {
		invDir := filepath.Join(o.DataDir, "invoker")
		if err := os.MkdirAll(invDir, 0o700); err != nil {
			return nil, fmt.Errorf("standalone: %w", err)
		}
		stop, err := o.StartInvoker(ctx, InvokerEnv{
			Brokers: s.Brokers, Manifest: manifest, Actions: s.st.InvokerActions(),
			Activations: s.st.InvokerActivations(), APIHost: s.APIHost, DataDir: invDir, Drivers: s.Drivers,
			Logger: o.Logger.Named("invoker"),
		})
		if err != nil {
			return nil, fmt.Errorf("standalone: start the invoker: %w", err)
		}
		s.stopInv = stop
		s.InvokerRunning = true
	}
	return s, nil
}

// Close stops the API, the invoker, the balancer, the broker and the store, in that order.
func (s *Standalone) Close() error {
	var errs []error
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if s.http != nil {
		if err := s.http.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop API: %w", err))
		}
		if err := <-s.served; err != nil && !errors.Is(err, http.ErrServerClosed) {
			errs = append(errs, err)
		}
		s.http = nil
	}
	if s.stopInv != nil {
		if err := s.stopInv(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop invoker: %w", err))
		}
		s.stopInv = nil
	}
	if s.lb != nil {
		if err := s.lb.Close(); err != nil {
			errs = append(errs, fmt.Errorf("stop balancer: %w", err))
		}
		s.lb = nil
	}
	if s.cluster != nil {
		s.cluster.Close()
		s.cluster = nil
	}
	if s.st != nil {
		if err := s.st.Close(); err != nil {
			errs = append(errs, err)
		}
		s.st = nil
	}
	return errors.Join(errs...)
}

// Banner writes the start-up text: API host, guest key, the wsk line, the driver table.
func (s *Standalone) Banner(w io.Writer) {
	fmt.Fprintf(w, "snapinvoker standalone: OpenWhisk API on %s\n\n", s.APIHost)
	fmt.Fprintf(w, "  guest key:  %s\n", controller.GuestKey)
	fmt.Fprintf(w, "  configure:  wsk property set --apihost %s --auth %s\n\n", s.APIHost, controller.GuestKey)
	kafka := s.Brokers[0]
	if s.Embedded {
		kafka += " (embedded)"
	}
	fmt.Fprintf(w, "  data dir:   %s\n  kafka:      %s\n  runtimes:   %v\n", s.DataDir, kafka, s.Kinds)
	if !s.InvokerRunning {
		fmt.Fprintf(w, "  invoker:    NOT RUNNING (invokes will answer 202 and never complete)\n")
	}
	fmt.Fprintf(w, "\n  %-12s %-34s %s\n", "DRIVER", "KINDS", "STATUS")
	if len(s.Drivers) == 0 {
		fmt.Fprintf(w, "  (no drivers registered in this binary)\n")
	}
	for _, d := range s.Drivers {
		st := "ready"
		if d.Err != nil {
			st = "missing: " + d.Err.Error()
		}
		fmt.Fprintf(w, "  %-12s %-34s %s\n", d.Name, joinKinds(d.Kinds), st)
	}
	fmt.Fprintln(w)
}

func joinKinds(k []string) string {
	out := ""
	for i, s := range k {
		if i > 0 {
			out += ", "
		}
		out += s
	}
	return out
}

// Run starts the standalone, prints the banner to out and serves until ctx ends (Ctrl-C).
func Run(ctx context.Context, o Options, out io.Writer) error {
	s, err := Start(ctx, o)
	if err != nil {
		return err
	}
	s.Banner(out)
	select {
	case <-ctx.Done():
		fmt.Fprintln(out, "snapinvoker standalone: shutting down")
	case err := <-s.served:
		s.served <- err // Close reads it
	}
	return s.Close()
}
