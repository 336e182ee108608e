package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	_ "github.com/snapinvoker/snapinvoker/backend/container" // registers the container driver
	_ "github.com/snapinvoker/snapinvoker/backend/unikernel" // registers the unikernel (KVM snapshot) driver
	"github.com/snapinvoker/snapinvoker/invoker"
	"github.com/snapinvoker/snapinvoker/invoker/config"
)

// runInvoker runs the cluster invoker: configuration from the environment and the upstream
// command line (--id, --uniqueName, --displayedName, --overwriteId), drivers from the registry.
func runInvoker(ctx context.Context, args []string) error {
	cfg, err := config.Load(os.Environ(), args)
	if err != nil {
		return err // one line naming the setting
	}
	log, err := newLogger(os.Getenv("CONFIG_logback_log_level"))
	if err != nil {
		return err
	}
	defer log.Sync()
	p, err := invoker.Start(ctx, invoker.Options{
		Config: cfg,
		Logger: log,
		NewExecutor: func(ctx context.Context, ep invoker.ExecutorParams) (invoker.Executor, error) {
			return invoker.NewPoolExecutor(ctx, ep, nil)
		},
	})
	if err != nil {
		return err
	}
	if err := p.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// newLogger returns a JSON logger at the upstream log level name (INFO, DEBUG, WARN, ERROR).
func newLogger(level string) (*zap.Logger, error) {
	lvl := zapcore.InfoLevel
	if level != "" {
		if err := lvl.UnmarshalText([]byte(level)); err != nil {
			return nil, fmt.Errorf("CONFIG_logback_log_level: %q is not a log level", level)
		}
	}
	zc := zap.NewProductionConfig()
	zc.Level = zap.NewAtomicLevelAt(lvl)
	zc.EncoderConfig.TimeKey = "time"
	zc.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	return zc.Build()
}
