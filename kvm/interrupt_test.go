package kvm

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// TestStopRequestsRacingRunEndAndClose lands context cancellations and Timeouts around the moment
// Run returns and Close unmaps the vCPU's kvm_run page. context.AfterFunc and time.AfterFunc run
// their callback on a new goroutine, which may be scheduled only after Run has returned and the
// guest is closed: a stop request that then still touched kvm_run crashed the process (SIGSEGV)
// or, under -race, raced with Close. Several guests at once keep the scheduler busy, which is
// what delays those goroutines. Every run must end Exited or Deadline, and a guest stopped at a
// deadline must finish when Run again, unstopped by its earlier run's late requests.
func TestStopRequestsRacingRunEndAndClose(t *testing.T) {
	h := openHost(t)
	prog := build(t, "loop")
	const workers, rounds = 4, 60
	var (
		mu               sync.Mutex
		exited, deadline int
		wg               sync.WaitGroup
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e, d, err := stopRaceRounds(h, prog, rand.New(rand.NewPCG(1, uint64(w))), rounds)
			mu.Lock()
			defer mu.Unlock()
			exited, deadline = exited+e, deadline+d
			if err != nil {
				t.Errorf("worker %d: %v", w, err)
			}
		}()
	}
	wg.Wait()
	t.Logf("%d runs exited, %d stopped at their deadline", exited, deadline)
	if exited == 0 || deadline == 0 {
		t.Fatalf("the stop requests never (or always) landed inside a run: %d exited, %d deadline", exited, deadline)
	}
}

// stopRaceRounds runs one guest after another, each with a cancellation and (every other one) a
// Timeout timed around the end of its run, and closes it as soon as Run returns.
func stopRaceRounds(h *Host, prog []byte, rng *rand.Rand, rounds int) (exited, deadline int, err error) {
	// took follows how long a whole run lasts here, so that the stop requests land around its
	// end: before, during and after Run's return.
	took := time.Millisecond
	around := func() time.Duration { return took/2 + time.Duration(rng.Int64N(int64(took))) }
	for i := range rounds {
		// About 10 exits: a run of a millisecond or less.
		cfg := Config{Memory: 16 << 20, Args: []string{"loop", "sys", "8"}}
		if i%2 == 0 {
			cfg.Timeout = around()
		}
		g, err := h.New(context.Background(), cfg, prog)
		if err != nil {
			return exited, deadline, err
		}
		ctx, cancel := context.WithCancel(context.Background())
		delay := around()
		start := time.Now()
		go func() {
			time.Sleep(delay)
			cancel()
			// Keep this P busy: the callback goroutine cancel started waits in its run queue,
			// as under load, often until after Run has returned and Close has run.
			for t0 := time.Now(); time.Since(t0) < 200*time.Microsecond; {
			}
		}()
		ex, err := g.Run(ctx)
		if err != nil {
			return exited, deadline, fmt.Errorf("round %d: Run: %w", i, err)
		}
		switch ex.Reason {
		case Exited:
			exited++
			took = (3*took + time.Since(start)) / 4
			if ex.Code != 0 {
				return exited, deadline, fmt.Errorf("round %d: exit code %d", i, ex.Code)
			}
		case Deadline:
			deadline++
			if i%3 == 0 {
				// Run again, unbounded: the earlier run's requests, late or not, must not stop it.
				g.cfg.Timeout = 0
				ex, err = g.Run(context.Background())
				if err != nil || ex.Reason != Exited || ex.Code != 0 {
					return exited, deadline, fmt.Errorf("round %d: second run: %v code %d (%v), err %v", i, ex.Reason, ex.Code, ex.Err, err)
				}
			}
		default:
			return exited, deadline, fmt.Errorf("round %d: %v (%v), want Exited or Deadline", i, ex.Reason, ex.Err)
		}
		if err := g.Close(); err != nil {
			return exited, deadline, fmt.Errorf("round %d: Close: %w", i, err)
		}
		cancel()
	}
	return exited, deadline, nil
}
