package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"go.uber.org/zap"

	_ "github.com/snapinvoker/snapinvoker/backend/container" // registers the container driver
	"github.com/snapinvoker/snapinvoker/controller"
	"github.com/snapinvoker/snapinvoker/controller/standalone"
)

// runStandalone runs OpenWhisk on this machine: the lean controller on :3233, an embedded
// Kafka broker, the persistent store and the invoker. Flags follow upstream's standalone.
func runStandalone(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("standalone", flag.ContinueOnError)
	var (
		o        standalone.Options
		manifest string
		users    string
		verbose  bool
	)
	fs.IntVar(&o.Port, "port", 3233, "API port")
	fs.IntVar(&o.Port, "p", 3233, "API port (short)")
	fs.StringVar(&o.Host, "host", "127.0.0.1", "API interface to listen on")
	fs.StringVar(&manifest, "manifest", "", "runtimes manifest JSON file (default: the kinds this host's drivers run)")
	fs.StringVar(&manifest, "m", "", "runtimes manifest (short)")
	fs.StringVar(&users, "config-file", "", `users file: {"users": {"name": "uuid:key"}}`)
	fs.StringVar(&users, "c", "", "users file (short)")
	fs.StringVar(&o.DataDir, "data-dir", standalone.DefaultDataDir(), "data directory (store, driver data)")
	fs.StringVar(&o.DataDir, "d", standalone.DefaultDataDir(), "data directory (short)")
	fs.BoolVar(&o.Clean, "clean", false, "wipe the stored actions, activations and users first")
	fs.StringVar(&o.Kafka, "kafka", "", "external Kafka broker HOST:PORT instead of the embedded one")
	fs.BoolVar(&verbose, "verbose", false, "debug logs")
	fs.BoolVar(&verbose, "v", false, "debug logs (short)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if manifest != "" {
		b, err := os.ReadFile(manifest)
		if err != nil {
			return fmt.Errorf("-m: %w", err)
		}
		o.Manifest = b
	}
	if users != "" {
		b, err := os.ReadFile(users)
		if err != nil {
			return fmt.Errorf("-c: %w", err)
		}
		if o.Users, err = controller.ParseUsers(b); err != nil {
			return fmt.Errorf("-c %s: %w", users, err)
		}
	}
	cfg := zap.NewProductionConfig()
	if verbose {
		cfg.Level = zap.NewAtomicLevelAt(zap.DebugLevel)
	} else {
		cfg.Level = zap.NewAtomicLevelAt(zap.WarnLevel)
	}
	log, err := cfg.Build()
	if err != nil {
		return err
	}
	defer log.Sync()
	o.Logger = log
	o.StartInvoker = standaloneInvoker
	return standalone.Run(ctx, o, os.Stdout)
}

// standaloneInvoker is the invoker run in-process, unchanged, on the registered drivers.
var standaloneInvoker = standalone.Invoker(nil)
