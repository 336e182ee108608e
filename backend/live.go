package backend

import (
	"context"
	"sync"
)

// Live is the set of a driver's live instances, kept so that Driver.Close can destroy what its
// callers left running. Its zero value is an empty, open set; it is safe for concurrent use.
type Live struct {
	mu     sync.Mutex
	closed bool
	set    map[Instance]struct{}
}

// Closed reports whether Close has begun: a driver's Start checks it before doing costly work.
func (l *Live) Closed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}

// Add records in unless Close has begun, and reports whether it did; an instance it refuses is
// the caller's to destroy, since Close will not see it.
func (l *Live) Add(in Instance) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	if l.set == nil {
		l.set = map[Instance]struct{}{}
	}
	l.set[in] = struct{}{}
	return true
}

// Remove forgets in; an instance's Destroy calls it. Removing an unknown instance is a no-op.
func (l *Live) Remove(in Instance) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.set, in)
}

// Close marks the set closed and destroys every instance in it, returning their errors (nil
// ones included) for the driver to join with its own. Destroy runs outside the lock, as it
// calls Remove, and with a background context: Driver.Close has none.
func (l *Live) Close() []error {
	l.mu.Lock()
	l.closed = true
	live := make([]Instance, 0, len(l.set))
	for in := range l.set {
		live = append(live, in)
	}
	l.mu.Unlock()
	errs := make([]error, 0, len(live))
	for _, in := range live {
		errs = append(errs, in.Destroy(context.Background()))
	}
	return errs
}
