// Package invoker is snapinvoker's OpenWhisk invoker process: it takes ActivationMessages from
// Kafka, fetches the action by (docid, revision), runs it through an Executor (the pool over
// the drivers), and answers with OpenWhisk's exact acks, activation records, user events and
// health pings.
//
// Delivery guarantee: at least once, with duplicates suppressed. An offset is committed only
// after every activation at or below it has been acked and its record stored (or found not to
// need storing). After a crash the unfinished activations are delivered again; one whose record
// is already in the activations database is skipped without a second ack. What remains is a
// narrow window: a crash after an ack was sent but before its record was written re-runs and
// re-acks that activation (the controller ignores the second completion), and activations of
// namespaces with storeActivations=false have no record to recognise them by.
//
// Subpackages hold the edges: config (settings), kafkafeed (Kafka), couch (CouchDB), idassign
// (ZooKeeper), health (pings), admin (HTTP), metrics (Prometheus).
package invoker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/snapinvoker/snapinvoker/activation"
	"github.com/snapinvoker/snapinvoker/invoker/couch"
	"github.com/snapinvoker/snapinvoker/invoker/kafkafeed"
	"github.com/snapinvoker/snapinvoker/invoker/metrics"
)

// ErrStopped is returned by Run after Abort.
var ErrStopped = errors.New("invoker: stopped")

// Feed is the activation feed (kafkafeed.Feed).
type Feed interface {
	Next(ctx context.Context) (*kafkafeed.Message, error)
	InFlight() int
	Close() error
	Abort() error
}

// Sender publishes one record (kafkafeed.Producer); an error wrapping kafkafeed.ErrTooLarge
// makes the invoker re-send the ack shrunk.
type Sender interface {
	Send(ctx context.Context, topic string, value []byte) error
}

// ActionSource reads action documents by (docid, revision) (couch.Actions, or the standalone
// store). Errors wrap couch.ErrNotFound, couch.ErrUnavailable or couch.ErrBadResponse.
type ActionSource interface {
	Get(ctx context.Context, docid, rev string) (*couch.ActionDoc, error)
}

// RecordStore writes activation records (couch.Store, or the standalone store). Put calls done
// exactly once; an error wrapping couch.ErrConflict means the record already exists.
type RecordStore interface {
	Put(id string, doc json.RawMessage, done func(error))
	Pending() int
	Close(ctx context.Context) error
}

// RecordChecker is implemented by record stores that can tell whether a record exists; the
// invoker uses it to skip activations delivered again after a restart.
type RecordChecker interface {
	Exists(ctx context.Context, docid string) (bool, error)
}

// Deps are the invoker's collaborators and settings.
type Deps struct {
	Instance activation.InvokerInstanceID
	Manifest *activation.Manifest
	Sys      activation.SystemLimits
	// Keys decrypt encrypted parameters (may be empty).
	Keys activation.ParameterKeys
	// StoreBlocking and StoreNonBlocking are the store result levels.
	StoreBlocking, StoreNonBlocking activation.StoreLevel
	// TopicPrefix prefixes completed<C>; UserEventsTopic is "<user-event prefix>events", empty
	// when user events are off.
	TopicPrefix, UserEventsTopic string

	Feed     Feed
	Acks     Sender
	Actions  ActionSource
	Records  RecordStore
	Executor Executor
	Metrics  *metrics.Metrics
	Logger   *zap.Logger
	// Blacklist, when set, refuses activations of blocked namespaces.
	Blacklist *Blacklist
	// RedeliveryBound: records below this offset may have been handled by an earlier process
	// (the partition's end offset at start-up); they are checked against the record store.
	RedeliveryBound int64
	// FetchRetry bounds how long an action fetch is retried while CouchDB is unreachable before
	// the activation fails with "Action could not be fetched." (default 10 s).
	FetchRetry time.Duration
	// DrainTimeout bounds how long Run waits for in-flight activations after its context ends
	// (default: the system's maximum action timeout plus one minute).
	DrainTimeout time.Duration
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// Invoker processes activations. Create it with New and call Run.
type Invoker struct {
	d   Deps
	log *zap.Logger

	// work is the context activations run under; it outlives Run's context so that a graceful
	// shutdown can finish them, and Abort cancels it.
	work     context.Context
	stopWork context.CancelFunc
	wg       sync.WaitGroup
	dead     atomic.Bool
	inFlight atomic.Int64
	prepared *preparedCache
}

// New checks deps and returns an invoker.
func New(d Deps) (*Invoker, error) {
	switch {
	case d.Manifest == nil:
		return nil, errors.New("invoker: Deps.Manifest is nil")
	case d.Feed == nil || d.Acks == nil || d.Actions == nil || d.Records == nil || d.Executor == nil:
		return nil, errors.New("invoker: Deps needs Feed, Acks, Actions, Records and Executor")
	}
	if d.Logger == nil {
		d.Logger = zap.NewNop()
	}
	if d.Metrics == nil {
		d.Metrics = metrics.New(metrics.Gauges{})
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.FetchRetry == 0 {
		d.FetchRetry = 10 * time.Second
	}
	if d.DrainTimeout == 0 {
		d.DrainTimeout = time.Duration(d.Sys.MaxTimeout)*time.Millisecond + time.Minute
	}
	work, stop := context.WithCancel(context.Background())
	return &Invoker{d: d, log: d.Logger.With(zap.String("invoker", d.Instance.Source())), work: work, stopWork: stop,
		prepared: newPreparedCache(1024)}, nil
}

// InFlight is the number of activations taken from Kafka and not yet finished.
func (inv *Invoker) InFlight() int { return int(inv.inFlight.Load()) }

// Run consumes activations until ctx ends, then shuts down gracefully: it stops consuming,
// lets in-flight activations finish and be acked (up to DrainTimeout), writes the pending
// records and commits the offsets. It returns ErrStopped if Abort was called.
func (inv *Invoker) Run(ctx context.Context) error {
	inv.log.Info("consuming activations", zap.Int64("redelivery_bound", inv.d.RedeliveryBound))
	backoff := 100 * time.Millisecond
	for {
		m, err := inv.d.Feed.Next(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, kafkafeed.ErrClosed) || inv.dead.Load() {
				break
			}
			inv.log.Warn("reading activations failed; retrying", zap.Error(err))
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		inv.inFlight.Add(1)
		inv.wg.Add(1)
		go func() {
			defer inv.wg.Done()
			defer inv.inFlight.Add(-1)
			inv.handle(inv.work, m)
		}()
	}
	if inv.dead.Load() {
		inv.wg.Wait()
		return ErrStopped
	}
	return inv.shutdown()
}

func (inv *Invoker) shutdown() error {
	inv.log.Info("stopping: finishing in-flight activations", zap.Int("in_flight", inv.InFlight()))
	drained := make(chan struct{})
	go func() { inv.wg.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(inv.d.DrainTimeout):
		inv.log.Warn("in-flight activations did not finish in time; they will be delivered again", zap.Int("in_flight", inv.InFlight()))
		inv.stopWork()
		<-drained
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var errs []error
	if err := inv.d.Records.Close(ctx); err != nil {
		errs = append(errs, fmt.Errorf("invoker: writing pending activation records: %w", err))
	}
	inv.stopWork()
	if err := inv.d.Feed.Close(); err != nil {
		errs = append(errs, fmt.Errorf("invoker: closing the feed: %w", err))
	}
	inv.log.Info("stopped")
	return errors.Join(errs...)
}

// Abort stops at once, as a crash would: nothing more is acked, stored or committed, and
// in-flight activations are abandoned (a restarted invoker receives them again). For tests of
// redelivery; Run returns ErrStopped.
func (inv *Invoker) Abort() {
	inv.dead.Store(true)
	inv.stopWork()
	_ = inv.d.Feed.Abort()
}
