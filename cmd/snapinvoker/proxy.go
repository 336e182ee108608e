package main

import (
	"context"
	"fmt"
)

// runProxy is a stub until its issue lands.
func runProxy(ctx context.Context, args []string) error {
	return fmt.Errorf("proxy: %w", errNotYet)
}
