package standalone

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/snapinvoker/snapinvoker/backend"
	"github.com/snapinvoker/snapinvoker/invoker"
	"github.com/snapinvoker/snapinvoker/invoker/config"
)

// Invoker returns the starter of snapinvoker's own invoker, run in-process and unchanged: it
// is configured through the same environment a cluster gives it (KAFKA_HOSTS,
// RUNTIMES_MANIFEST, WHISK_API_HOST_*, --id 0), runs its actions on the drivers of registry
// (nil: the default registry), and reads actions from and writes records to the embedded
// store instead of CouchDB. extraEnv adds settings (e.g. SNAPINVOKER_DRIVERS).
func Invoker(registry *backend.Registry, extraEnv ...string) InvokerStarter {
	return func(ctx context.Context, env InvokerEnv) (func(context.Context) error, error) {
		api, err := url.Parse(env.APIHost)
		if err != nil {
			return nil, fmt.Errorf("API host %q: %w", env.APIHost, err)
		}
		environ := append([]string{
			"KAFKA_HOSTS=" + strings.Join(env.Brokers, ","),
			"RUNTIMES_MANIFEST=" + string(env.Manifest),
			"WHISK_API_HOST_PROTO=" + api.Scheme,
			"WHISK_API_HOST_NAME=" + api.Hostname(),
			"WHISK_API_HOST_PORT=" + api.Port(),
			"SNAPINVOKER_STATE_DIR=" + env.DataDir,
			// Required by the configuration, never dialled: the embedded store replaces CouchDB.
			"CONFIG_whisk_couchdb_protocol=http", "CONFIG_whisk_couchdb_host=embedded-store.invalid",
			"CONFIG_whisk_couchdb_port=5984", "CONFIG_whisk_couchdb_username=standalone",
			"CONFIG_whisk_couchdb_password=standalone", "CONFIG_whisk_couchdb_databases_WhiskEntity=whisks",
			"CONFIG_whisk_couchdb_databases_WhiskActivation=activations", "CONFIG_whisk_couchdb_databases_WhiskAuth=subjects",
		}, extraEnv...)
		if order := DriverOrder(env.Drivers); order != "" && !hasVar(extraEnv, "SNAPINVOKER_DRIVERS") {
			environ = append(environ, "SNAPINVOKER_DRIVERS="+order)
		}
		cfg, err := config.Load(environ, []string{"--id", "0"})
		if err != nil {
			return nil, fmt.Errorf("invoker configuration: %w", err)
		}
		// The admin API (/ping, /metrics, /enable, /disable) on a free loopback port.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		p, err := invoker.Start(ctx, invoker.Options{
			Config: cfg,
			NewExecutor: func(ctx context.Context, p invoker.ExecutorParams) (invoker.Executor, error) {
				return invoker.NewPoolExecutor(ctx, p, registry)
			},
			Actions: env.Actions, Records: env.Activations, Logger: env.Logger, Listener: ln,
		})
		if err != nil {
			ln.Close()
			return nil, err
		}
		runCtx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- p.Run(runCtx) }()
		return func(ctx context.Context) error {
			cancel()
			select {
			case err := <-done:
				return err
			case <-ctx.Done():
				p.Abort()
				return fmt.Errorf("invoker did not stop in time: %w", ctx.Err())
			}
		}, nil
	}
}

func hasVar(environ []string, name string) bool {
	for _, kv := range environ {
		if strings.HasPrefix(kv, name+"=") {
			return true
		}
	}
	return false
}
