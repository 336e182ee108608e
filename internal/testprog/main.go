package testprog

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"testing"
)

// Main runs a package's tests for a test binary that also serves as the container driver's
// in-container proxy: that driver bind-mounts the running executable into the container and
// starts it with "proxy" as its first argument (for the snapinvoker binary, `snapinvoker
// proxy`). Given that argument, Main runs proxy with the remaining arguments until SIGTERM or
// an interrupt and exits the process; otherwise it runs the tests and returns their exit code.
//
// proxy is container.ProxyMain; it is passed in so that package container's own tests can use
// Main without an import cycle. Use it as
//
//	func TestMain(m *testing.M) { os.Exit(testprog.Main(m, container.ProxyMain)) }
func Main(m *testing.M, proxy func(ctx context.Context, args []string) error) int {
	if len(os.Args) > 1 && os.Args[1] == "proxy" {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
		err := proxy(ctx, os.Args[2:])
		stop()
		if err != nil {
			fmt.Fprintln(os.Stderr, "proxy:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	return m.Run()
}
