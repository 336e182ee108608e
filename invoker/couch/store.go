package couch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Store writes activation records to the activations database with _bulk_docs. Records queue up
// while a request is in flight and go out together in the next one (up to the batch size), so
// a lone record leaves at once and a burst is batched. While CouchDB is unreachable or answers
// 5xx the batch is retried with back-off, indefinitely: a record is lost only if the process
// stops first. A record whose id already exists (a redelivered activation) counts as stored.
type Store struct {
	c     *Client
	db    string
	batch int
	log   *zap.Logger

	mu      sync.Mutex
	queue   []record
	closing bool
	wake    chan struct{}
	stop    context.CancelFunc
	stopped chan struct{}
	ctx     context.Context
}

type record struct {
	id   string
	doc  json.RawMessage
	done func(error)
}

// maxDocAttempts bounds retries of a record CouchDB rejects by itself (not for being down).
const maxDocAttempts = 3

// NewStore starts a store writing to db in batches of at most batchSize.
func NewStore(c *Client, db string, batchSize int, log *zap.Logger) *Store {
	if batchSize < 1 {
		batchSize = 500
	}
	if log == nil {
		log = zap.NewNop()
	}
	ctx, stop := context.WithCancel(context.Background())
	s := &Store{c: c, db: db, batch: batchSize, log: log.With(zap.String("db", db)),
		wake: make(chan struct{}, 1), stop: stop, stopped: make(chan struct{}), ctx: ctx}
	go s.loop()
	return s
}

// Put queues doc (a complete activation document with _id = id) and calls done once with nil
// when it is stored, or with an error when CouchDB refused it for good or the store was closed
// before it could be written. done must not block.
func (s *Store) Put(id string, doc json.RawMessage, done func(error)) {
	if done == nil {
		done = func(error) {}
	}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		done(fmt.Errorf("couch: store closed; activation record %s not written", id))
		return
	}
	s.queue = append(s.queue, record{id, doc, done})
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Pending is the number of records queued or being written.
func (s *Store) Pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queue)
}

// Close stops accepting records and writes the queued ones until ctx ends; records still not
// written then get an error.
func (s *Store) Close(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	select {
	case <-s.stopped:
		return nil
	case <-ctx.Done():
		s.stop()
		<-s.stopped
		return fmt.Errorf("couch: closing store with records unwritten: %w", ctx.Err())
	}
}

func (s *Store) loop() {
	defer close(s.stopped)
	for {
		s.mu.Lock()
		n := min(len(s.queue), s.batch)
		batch := append([]record(nil), s.queue[:n]...)
		closing := s.closing
		s.mu.Unlock()
		if n == 0 {
			if closing {
				return
			}
			select {
			case <-s.wake:
			case <-s.ctx.Done():
			}
			if s.ctx.Err() != nil {
				s.failAll(s.ctx.Err())
				return
			}
			continue
		}
		s.write(batch)
		s.mu.Lock()
		s.queue = s.queue[n:]
		s.mu.Unlock()
		if s.ctx.Err() != nil {
			s.failAll(s.ctx.Err())
			return
		}
	}
}

func (s *Store) failAll(err error) {
	s.mu.Lock()
	q := s.queue
	s.queue = nil
	s.closing = true
	s.mu.Unlock()
	for _, r := range q {
		r.done(fmt.Errorf("couch: activation record %s not written: %w", r.id, err))
	}
}

// write stores one batch, calling every record's done exactly once (or leaving it for failAll
// when the store is stopped mid-way).
func (s *Store) write(batch []record) {
	backoff := 100 * time.Millisecond
	attempts := make([]int, len(batch))
	outage := false
	for len(batch) > 0 {
		docs := make([]json.RawMessage, len(batch))
		for i, r := range batch {
			docs[i] = r.doc
		}
		res, err := s.c.BulkDocs(s.ctx, s.db, docs)
		if err != nil {
			if s.ctx.Err() != nil {
				for _, r := range batch {
					r.done(fmt.Errorf("couch: activation record %s not written: %w", r.id, s.ctx.Err()))
				}
				return
			}
			if !errors.Is(err, ErrUnavailable) {
				// The whole request was refused: count it against every record.
				for i := range attempts {
					attempts[i]++
				}
				if attempts[0] >= maxDocAttempts {
					s.log.Error("activation records refused by CouchDB; dropping them", zap.Int("records", len(batch)), zap.Error(err))
					for _, r := range batch {
						r.done(fmt.Errorf("couch: activation record %s refused: %w", r.id, err))
					}
					return
				}
			} else if !outage {
				outage = true
				s.log.Warn("CouchDB unavailable; holding activation records and retrying", zap.Int("records", len(batch)), zap.Error(err))
			}
			if !sleep(s.ctx, backoff) {
				continue // stopped: the next BulkDocs fails with the context error
			}
			backoff = min(backoff*2, 5*time.Second)
			continue
		}
		if outage {
			s.log.Info("CouchDB reachable again; activation records written", zap.Int("records", len(batch)))
			outage = false
		}
		var retry []record
		var retryAttempts []int
		for i, r := range res {
			switch {
			case r.Error == "":
				batch[i].done(nil)
			case r.Error == "conflict":
				// Already stored: the activation was delivered again after a restart.
				batch[i].done(nil)
			case attempts[i]+1 >= maxDocAttempts:
				s.log.Error("activation record refused by CouchDB; dropping it", zap.String("id", batch[i].id), zap.String("error", r.Error), zap.String("reason", r.Reason))
				batch[i].done(fmt.Errorf("couch: activation record %s refused: %s: %s", batch[i].id, r.Error, r.Reason))
			default:
				retry = append(retry, batch[i])
				retryAttempts = append(retryAttempts, attempts[i]+1)
			}
		}
		batch, attempts = retry, retryAttempts
		if len(batch) > 0 && !sleep(s.ctx, backoff) {
			continue
		}
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Exists reports whether the activation record docid is stored (the invoker asks this for
// activations delivered again after a restart).
func (s *Store) Exists(ctx context.Context, docid string) (bool, error) {
	return s.c.Exists(ctx, s.db, docid)
}
