package container

import (
	"os"
	"testing"

	"github.com/snapinvoker/snapinvoker/internal/testprog"
)

// TestMain lets the test binary act as `snapinvoker proxy` inside the containers it starts: the
// driver bind-mounts it and runs it with "proxy" as its first argument.
func TestMain(m *testing.M) { os.Exit(testprog.Main(m, ProxyMain)) }
