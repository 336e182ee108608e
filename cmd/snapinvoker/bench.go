package main

import (
	"context"
	"fmt"
)

// runBench is a stub until its issue lands.
func runBench(ctx context.Context, args []string) error {
	return fmt.Errorf("bench: %w", errNotYet)
}
