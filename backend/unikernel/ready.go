package unikernel

import "time"

// readyConfig bounds the ready guests the driver keeps (see "Ready guests" in the package doc).
type readyConfig struct {
	// PerFunction caps the ready guests of one function.
	PerFunction int
	// Budget caps the private host memory of all ready guests together, in bytes.
	Budget int64
	// TTL: a ready guest unused this long is closed; it is also the window over which a
	// function's demand (its peak of instances in use) is remembered.
	TTL time.Duration
}

// demand tracks how many instances of one function are in use and their recent peak. It is
// pure: callers pass the time.
type demand struct {
	live   int
	peak   int
	peakAt time.Time
}

// started records an instance taken into use.
func (d *demand) started(now time.Time, ttl time.Duration) {
	d.live++
	if d.live >= d.peak || now.Sub(d.peakAt) > ttl {
		d.peak, d.peakAt = d.live, now
	}
}

// stopped records an instance given back.
func (d *demand) stopped() {
	if d.live > 0 {
		d.live--
	}
}

// want is how many ready guests the function should have now: enough to serve its recent peak
// without a restore, given the instances still in use, and never more than cfg.PerFunction.
func (d *demand) want(now time.Time, cfg readyConfig) int {
	peak := d.peak
	if now.Sub(d.peakAt) > cfg.TTL {
		peak = d.live
	}
	return max(0, min(cfg.PerFunction, peak-d.live))
}

// keepReady decides whether a guest given back by a destroyed instance stays ready: its function
// wants more ready guests than it has, and its private memory fits in the budget next to the
// ready guests already kept.
func keepReady(d *demand, have int, held, guestBytes int64, now time.Time, cfg readyConfig) bool {
	return have < d.want(now, cfg) && held+guestBytes <= cfg.Budget
}

// expired reports whether a ready guest kept since `since` has outlived its TTL.
func expired(since, now time.Time, cfg readyConfig) bool { return now.Sub(since) >= cfg.TTL }
