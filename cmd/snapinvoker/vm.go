package main

import (
	"context"
	"fmt"
)

// runVM is a stub until its issue lands.
func runVM(ctx context.Context, args []string) error {
	return fmt.Errorf("vm: %w", errNotYet)
}
