package cachetest

import "runtime"

// runtimeGosched yields while a test waits for other goroutines to reach a state it observes
// through Stats; the test's own timeout bounds the wait, never a sleep.
func runtimeGosched() { runtime.Gosched() }
