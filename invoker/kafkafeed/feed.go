// Package kafkafeed is the invoker's Kafka edge: the activation feed on <prefix>invoker<N> with
// memory-based back-pressure and at-least-once offset commits, topic creation, and the producer
// for acks, health pings and user events. It uses segmentio/kafka-go and knows nothing about
// what the records mean.
package kafkafeed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"
)

// commitGather is how long the committer waits after a completion for more before committing.
const commitGather = 20 * time.Millisecond

// ErrClosed is returned by Next after Close.
var ErrClosed = errors.New("kafkafeed: feed closed")

// Config configures a Feed.
type Config struct {
	Brokers []string
	// Topic is consumed in the consumer group of the same name (upstream: invoker<N> in group
	// invoker<N>). The topic must have one partition, as upstream creates it.
	Topic string
	// MaxPeek bounds the messages handed out by Next and not yet released (protocol spec §1).
	MaxPeek int
	// MaxMessageBytes is the largest record expected (MAX_ACTIVATION_LIMIT); fetches are sized
	// so that one such record always fits.
	MaxMessageBytes int
	// SessionTimeout is the consumer group session timeout (30 s upstream).
	SessionTimeout time.Duration
	// MaxWait is the longest a fetch waits for records; zero means upstream's
	// fetch.max.wait.ms, 500 ms.
	MaxWait time.Duration
	Logger  *zap.Logger
}

// Feed hands out the records of one single-partition topic. It commits an offset only when
// every record at or below it is Done, and it never hands out the same offset twice in one
// process, even when the broker re-sends records after a reconnect.
//
// Next may be called from one goroutine at a time; Message methods from any goroutine.
type Feed struct {
	cfg    Config
	reader *kafka.Reader
	log    *zap.Logger
	// slots holds one token per message handed out and not yet released.
	slots chan struct{}

	mu        sync.Mutex
	tracker   *Tracker
	committed int64 // last offset committed to the broker (the next to read), -1 if none
	closed    bool
	kick      chan struct{}

	commitDone chan struct{}
	stop       context.CancelFunc
}

// Message is one record handed out by Next.
type Message struct {
	Offset int64
	Value  []byte
	// Time is the record's timestamp.
	Time time.Time

	feed         *Feed
	releaseOnce  sync.Once
	finishedOnce sync.Once
}

// New starts consuming. It does not create the topic; see EnsureTopic.
func New(cfg Config) (*Feed, error) {
	if len(cfg.Brokers) == 0 || cfg.Topic == "" {
		return nil, fmt.Errorf("kafkafeed: brokers and topic are required")
	}
	if cfg.MaxPeek < 1 {
		cfg.MaxPeek = 1
	}
	if cfg.MaxMessageBytes < 1<<20 {
		cfg.MaxMessageBytes = 1 << 20
	}
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = 500 * time.Millisecond
	}
	if cfg.SessionTimeout == 0 {
		cfg.SessionTimeout = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	log := cfg.Logger.With(zap.String("topic", cfg.Topic))
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: cfg.Brokers,
		GroupID: cfg.Topic,
		Topic:   cfg.Topic,
		// Upstream buffers up to 2 × maxPeek polled records.
		QueueCapacity:     cfg.MaxPeek,
		MinBytes:          1,
		MaxBytes:          2 * cfg.MaxMessageBytes,
		MaxWait:           cfg.MaxWait,
		ReadBatchTimeout:  10 * time.Second,
		CommitInterval:    0, // synchronous commits, issued only by the committer below
		StartOffset:       kafka.FirstOffset,
		SessionTimeout:    cfg.SessionTimeout,
		HeartbeatInterval: cfg.SessionTimeout / 10, // a dead coordinator connection is noticed within seconds
		RebalanceTimeout:  cfg.SessionTimeout,
		JoinGroupBackoff:  time.Second,
		// kafka-go sleeps at least ReadBackoffMin between fetches that return nothing (100 ms by
		// default), which measured as ~100 ms added to a lone activation's latency.
		ReadBackoffMin: time.Millisecond,
		ReadBackoffMax: time.Second,
		ErrorLogger: kafka.LoggerFunc(func(msg string, args ...any) {
			log.Warn("kafka consumer", zap.String("error", fmt.Sprintf(msg, args...)))
		}),
	})
	ctx, stop := context.WithCancel(context.Background())
	f := &Feed{
		cfg:        cfg,
		reader:     r,
		log:        log,
		slots:      make(chan struct{}, cfg.MaxPeek),
		committed:  -1,
		kick:       make(chan struct{}, 1),
		commitDone: make(chan struct{}),
		stop:       stop,
	}
	go f.commitLoop(ctx)
	return f, nil
}

// Next blocks until a slot is free and a new record arrives, then returns it. The caller must
// call Release when the activation no longer holds capacity and Done when its outcome is
// durable (acked and stored); Done implies Release.
func (f *Feed) Next(ctx context.Context) (*Message, error) {
	select {
	case f.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	for {
		km, err := f.reader.FetchMessage(ctx)
		if err != nil {
			<-f.slots
			if errors.Is(err, io.EOF) {
				return nil, ErrClosed
			}
			return nil, fmt.Errorf("kafkafeed: fetch from %s: %w", f.cfg.Topic, err)
		}
		f.mu.Lock()
		if f.tracker == nil {
			// In a group the first record is at the committed offset (or after a gap).
			f.tracker = NewTracker(km.Offset)
		}
		fresh := f.tracker.Deliver(km.Offset)
		f.mu.Unlock()
		if !fresh {
			f.log.Info("skipping a record the broker delivered again", zap.Int64("offset", km.Offset))
			continue
		}
		return &Message{Offset: km.Offset, Value: km.Value, Time: km.Time, feed: f}, nil
	}
}

// Release gives the message's capacity back (upstream's "Processed"): the activation was
// rejected early or the instance running it is free again. Idempotent.
func (m *Message) Release() {
	m.releaseOnce.Do(func() { <-m.feed.slots })
}

// Done marks the message finished: its offset may be committed once every earlier one is done
// too. Done releases the message if that has not happened. Idempotent.
func (m *Message) Done() {
	m.Release()
	m.finishedOnce.Do(func() {
		f := m.feed
		f.mu.Lock()
		f.tracker.Done(m.Offset)
		f.mu.Unlock()
		select {
		case f.kick <- struct{}{}:
		default:
		}
	})
}

// InFlight is the number of messages handed out and not yet released.
func (f *Feed) InFlight() int { return len(f.slots) }

// Committed is the offset last committed to the broker (the next one a restarted consumer
// reads), or -1 if this feed has committed nothing.
func (f *Feed) Committed() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.committed
}

func (f *Feed) commitLoop(ctx context.Context) {
	defer close(f.commitDone)
	for {
		select {
		case <-ctx.Done():
			return
		case <-f.kick:
		}
		// Gather the completions of the next few milliseconds into one commit: a commit is a
		// broker round trip (and a log write), and under load every activation would cost one.
		select {
		case <-ctx.Done():
			return
		case <-time.After(commitGather):
		}
		select {
		case <-f.kick:
		default:
		}
		if err := f.commit(ctx); err != nil && ctx.Err() == nil {
			f.log.Warn("offset commit failed; retrying", zap.Error(err))
			select {
			case <-ctx.Done():
				return
			case <-time.After(200 * time.Millisecond):
			}
			select {
			case f.kick <- struct{}{}:
			default:
			}
		}
	}
}

// commit sends the tracker's commit point to the broker if it moved.
func (f *Feed) commit(ctx context.Context) error {
	f.mu.Lock()
	if f.tracker == nil {
		f.mu.Unlock()
		return nil
	}
	next := f.tracker.next
	last := f.committed
	f.mu.Unlock()
	if next == last {
		return nil
	}
	// kafka-go commits a message's offset + 1.
	if err := f.reader.CommitMessages(ctx, kafka.Message{Topic: f.cfg.Topic, Partition: 0, Offset: next - 1}); err != nil {
		return err
	}
	f.mu.Lock()
	if next > f.committed {
		f.committed = next
	}
	f.mu.Unlock()
	return nil
}

// Close commits what is done, leaves the consumer group and stops. Messages not Done are not
// committed: a restarted consumer receives them again.
func (f *Feed) Close() error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil
	}
	f.closed = true
	f.mu.Unlock()
	f.stop()
	<-f.commitDone
	// The group may be re-joining after a broker restart (its old connection is gone): retry.
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	err := f.commit(ctx)
	for err != nil && ctx.Err() == nil {
		time.Sleep(200 * time.Millisecond)
		err = f.commit(ctx)
	}
	cancel()
	// Leaving the group can fail on a connection the broker dropped; the group then expires
	// the member after the session timeout. Only the commit matters for correctness.
	if cerr := f.reader.Close(); cerr != nil {
		f.log.Warn("leaving the consumer group failed", zap.Error(cerr))
	}
	if err != nil {
		return fmt.Errorf("kafkafeed: final commit on %s: %w", f.cfg.Topic, err)
	}
	return nil
}

// Abort stops consuming without committing anything more, as a crash would. For tests of
// redelivery.
func (f *Feed) Abort() error {
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
	f.stop()
	<-f.commitDone
	return f.reader.Close()
}
