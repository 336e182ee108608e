package main

import (
	"context"

	"github.com/snapinvoker/snapinvoker/backend/container"
)

// runProxy is `snapinvoker proxy`: the runtime proxy that runs inside a container (see
// backend/container). It serves /init and /run and drives the action's launcher.
func runProxy(ctx context.Context, args []string) error {
	return container.ProxyMain(ctx, args)
}
