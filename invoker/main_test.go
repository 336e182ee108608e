package invoker

import (
	"os"
	"testing"

	"github.com/snapinvoker/snapinvoker/backend/container"
	"github.com/snapinvoker/snapinvoker/internal/testprog"
)

// TestMain lets the test binary act as `snapinvoker proxy` inside the containers the container
// driver starts (it bind-mounts the running executable and runs it with "proxy").
func TestMain(m *testing.M) { os.Exit(testprog.Main(m, container.ProxyMain)) }
