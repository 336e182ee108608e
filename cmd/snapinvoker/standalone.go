package main

import (
	"context"
	"fmt"
)

// runStandalone is a stub until its issue lands.
func runStandalone(ctx context.Context, args []string) error {
	return fmt.Errorf("standalone: %w", errNotYet)
}
