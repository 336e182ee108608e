package e2e

import (
	"os"
	"testing"

	"github.com/snapinvoker/snapinvoker/backend/container"
	"github.com/snapinvoker/snapinvoker/internal/testprog"
)

// TestMain lets this test binary be the container driver's in-container proxy: the driver
// runs its own executable with the argument "proxy", which for the snapinvoker binary is
// `snapinvoker proxy` and here is testprog.Main's proxy branch.
func TestMain(m *testing.M) { os.Exit(testprog.Main(m, container.ProxyMain)) }
