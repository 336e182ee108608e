package e2e

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"testing"

	"github.com/snapinvoker/snapinvoker/backend/container"
)

// TestMain lets this test binary be the container driver's in-container proxy: the driver
// runs its own executable with the argument "proxy", which for the snapinvoker binary is
// `snapinvoker proxy` and here is this branch.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "proxy" {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
		defer stop()
		if err := container.ProxyMain(ctx, os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "proxy:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}
