// Command snapinvoker is a drop-in replacement for the Apache OpenWhisk invoker that runs actions
// from snapshots. This package holds flags and wiring only; each subcommand lives in its own file.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

// command is one subcommand: run gets the arguments after the subcommand's name.
type command struct {
	summary string
	run     func(ctx context.Context, args []string) error
}

// errNotYet is returned by subcommands whose implementation has not landed.
var errNotYet = errors.New("not yet available")

func commands() map[string]command {
	return map[string]command{
		"invoker":    {"run the invoker in an OpenWhisk cluster (Kafka, CouchDB, ZooKeeper)", runInvoker},
		"standalone": {"run OpenWhisk on this machine: controller on :3233, Kafka, store and invoker", runStandalone},
		"vm":         {"run, snapshot and restore a Linux program as a KVM guest (vm run|snapshot|restore)", runVM},
		"proxy":      {"serve the runtime protocol (/init, /run) inside a container", runProxy},
		"bench":      {"run the benchmark jobs", runBench},
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: snapinvoker COMMAND [ARGS...]\n\ncommands:")
	cmds := commands()
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(os.Stderr, "  %-11s %s\n", n, cmds[n].summary)
	}
}

func main() {
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help" {
		usage()
		if len(os.Args) < 2 {
			os.Exit(2)
		}
		return
	}
	cmd, ok := commands()[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "snapinvoker: unknown command %q\n\n", os.Args[1])
		usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := cmd.run(ctx, os.Args[2:]); err != nil {
		fmt.Fprintf(os.Stderr, "snapinvoker %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}
