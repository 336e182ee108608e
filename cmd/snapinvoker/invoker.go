package main

import (
	"context"
	"fmt"
)

// runInvoker is a stub until its issue lands.
func runInvoker(ctx context.Context, args []string) error {
	return fmt.Errorf("invoker: %w", errNotYet)
}
