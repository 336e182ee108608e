package invoker

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"testing"

	"github.com/snapinvoker/snapinvoker/backend/container"
)

// TestMain lets the test binary act as `snapinvoker proxy` inside the containers the container
// driver starts (it bind-mounts the running executable and runs it with "proxy").
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
