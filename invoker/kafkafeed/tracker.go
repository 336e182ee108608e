package kafkafeed

// Tracker decides which offset of a single-partition topic may be committed. It is the pure core
// of the feed's at-least-once guarantee: an offset is committed only once every message at or
// below it has been marked done, so a crash never loses a message that was read but not finished.
//
// Offsets need not be contiguous (compaction and transaction markers leave gaps); the tracker
// only knows the offsets it was given. A Tracker is not safe for concurrent use.
type Tracker struct {
	// pending holds delivered offsets in delivery order, oldest first, with their state.
	pending []trackedOffset
	head    int // index of the oldest entry still pending in pending
	// highest is the highest offset ever delivered, -1 before the first.
	highest int64
	// next is the offset a consumer would read next after everything done so far: the commit
	// point. committed is what Commit last reported.
	next, committed int64
}

type trackedOffset struct {
	offset int64
	done   bool
}

// NewTracker returns a tracker for a partition whose committed offset is start (the next offset
// to read; 0 for an empty group).
func NewTracker(start int64) *Tracker {
	return &Tracker{highest: start - 1, next: start, committed: start}
}

// Deliver records that offset was handed out. It reports false for an offset at or below one
// already delivered: the broker sent it again (after a reconnect or rebalance the consumer
// resumes at the committed offset) and the message is already being handled or is done.
func (t *Tracker) Deliver(offset int64) bool {
	if offset <= t.highest {
		return false
	}
	t.highest = offset
	t.pending = append(t.pending, trackedOffset{offset: offset})
	return true
}

// Done marks a delivered offset finished. Unknown or already finished offsets are ignored.
func (t *Tracker) Done(offset int64) {
	live := t.pending[t.head:]
	// Binary search: pending is sorted because Deliver only accepts increasing offsets.
	lo, hi := 0, len(live)
	for lo < hi {
		mid := (lo + hi) / 2
		if live[mid].offset < offset {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if lo == len(live) || live[lo].offset != offset {
		return
	}
	live[lo].done = true
	for t.head < len(t.pending) && t.pending[t.head].done {
		t.next = t.pending[t.head].offset + 1
		t.head++
	}
	// Compact once the finished prefix dominates, so memory stays proportional to in-flight work.
	if t.head > 64 && t.head*2 > len(t.pending) {
		t.pending = append(t.pending[:0], t.pending[t.head:]...)
		t.head = 0
	}
}

// Commit returns the offset to commit (the next offset to read) and whether it moved since the
// last call.
func (t *Tracker) Commit() (offset int64, advanced bool) {
	if t.next == t.committed {
		return t.next, false
	}
	t.committed = t.next
	return t.next, true
}

// InFlight is the number of delivered offsets not yet done.
func (t *Tracker) InFlight() int {
	n := 0
	for _, p := range t.pending[t.head:] {
		if !p.done {
			n++
		}
	}
	return n
}
