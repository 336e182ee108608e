package controller

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/snapinvoker/snapinvoker/activation"
)

// ErrBalancer: the activation could not be handed to an invoker (503 to the client).
var ErrBalancer = errors.New("load balancer failure")

// Balancer hands activations to an invoker and reports their acknowledgements.
//
// Publish registers the activation before sending it, so no ack can be missed; the returned
// Pending must be released with Done. Invokers reports the invokers seen on the health topic.
type Balancer interface {
	Publish(ctx context.Context, msg *activation.ActivationMessage) (*Pending, error)
	Invokers() []InvokerStatus
	Close() error
}

// InvokerStatus is one invoker as /invokers shows it.
type InvokerStatus struct {
	Name    string // "invoker0/<uniqueName>"
	Healthy bool
}

// Pending is an activation waiting for its acknowledgements.
type Pending struct {
	ID activation.ActivationID
	// Acks delivers every acknowledgement about the activation (buffered; never closed).
	Acks <-chan *activation.Ack
	done func()
}

// Done stops delivery; later acks for this activation are dropped.
func (p *Pending) Done() {
	if p.done != nil {
		p.done()
	}
}

// KafkaConfig configures the lean Kafka balancer.
type KafkaConfig struct {
	Brokers []string
	// ControllerID is the controller instance ("0"): acks are read from completed<ID>.
	ControllerID string
	// InvokerTopic is where activations go ("invoker0").
	InvokerTopic string
	Logger       *zap.Logger
	// Now is the clock for health; nil means time.Now.
	Now func() time.Time
}

// KafkaBalancer is the lean load balancer: one invoker, reached over Kafka exactly as in a
// cluster. It publishes to invoker<N>, reads completed<C> and health.
type KafkaBalancer struct {
	cfg    KafkaConfig
	log    *zap.Logger
	writer *kafka.Writer
	acks   *kafka.Reader
	health *kafka.Reader
	now    func() time.Time

	mu      sync.Mutex
	waiters map[activation.ActivationID]chan *activation.Ack
	pings   map[string]pingState

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type pingState struct {
	at      time.Time
	enabled bool
}

// pingTimeout: an invoker that has not pinged for this long is down (protocol §4).
const pingTimeout = 10 * time.Second

// EnsureTopics creates the controller's topics (completed<C>, health) and the invoker topic
// with one partition each; existing topics are fine.
func EnsureTopics(ctx context.Context, brokers []string, topics ...string) error {
	c := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second}
	req := &kafka.CreateTopicsRequest{}
	for _, t := range topics {
		req.Topics = append(req.Topics, kafka.TopicConfig{Topic: t, NumPartitions: 1, ReplicationFactor: 1,
			ConfigEntries: []kafka.ConfigEntry{{ConfigName: "max.message.bytes", ConfigValue: fmt.Sprint(activation.MaxActivationLimit)}}})
	}
	res, err := c.CreateTopics(ctx, req)
	if err != nil {
		return fmt.Errorf("controller: create topics %v: %w", topics, err)
	}
	for t, e := range res.Errors {
		if e != nil && !errors.Is(e, kafka.TopicAlreadyExists) {
			return fmt.Errorf("controller: create topic %s: %w", t, e)
		}
	}
	return nil
}

// NewKafkaBalancer connects to the brokers and starts reading acks and health pings. Acks
// written before it started are not read: nobody waits for them any more.
func NewKafkaBalancer(ctx context.Context, cfg KafkaConfig) (*KafkaBalancer, error) {
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.ControllerID == "" {
		cfg.ControllerID = "0"
	}
	if cfg.InvokerTopic == "" {
		cfg.InvokerTopic = "invoker0"
	}
	completed := "completed" + cfg.ControllerID
	if err := EnsureTopics(ctx, cfg.Brokers, completed, "health", cfg.InvokerTopic); err != nil {
		return nil, err
	}
	b := &KafkaBalancer{
		cfg: cfg, log: cfg.Logger, now: cfg.Now,
		writer: &kafka.Writer{
			Addr:  kafka.TCP(cfg.Brokers...),
			Topic: cfg.InvokerTopic,
			// kafka-go waits BatchTimeout (1 s by default) to fill a batch; an invoke must
			// leave at once, so every message is its own batch.
			BatchTimeout: time.Millisecond,
			BatchSize:    1,
			BatchBytes:   activation.MaxActivationLimit + 1024,
			RequiredAcks: kafka.RequireOne,
			MaxAttempts:  4,
		},
		waiters: map[activation.ActivationID]chan *activation.Ack{},
		pings:   map[string]pingState{},
	}
	reader := func(topic string) *kafka.Reader {
		r := kafka.NewReader(kafka.ReaderConfig{
			Brokers: cfg.Brokers, Topic: topic, Partition: 0,
			MinBytes: 1, MaxBytes: 4 * activation.MaxActivationLimit,
			MaxWait: 250 * time.Millisecond, ReadBackoffMin: time.Millisecond, ReadBackoffMax: 50 * time.Millisecond,
		})
		return r
	}
	b.acks = reader(completed)
	b.health = reader("health")
	if err := b.acks.SetOffset(kafka.LastOffset); err != nil {
		return nil, fmt.Errorf("controller: read %s: %w", completed, err)
	}
	// Health pings from the last few seconds tell whether an invoker is already up.
	if err := b.health.SetOffsetAt(ctx, cfg.Now().Add(-pingTimeout)); err != nil {
		b.health.SetOffset(kafka.LastOffset)
	}
	rctx, cancel := context.WithCancel(context.Background())
	b.cancel = cancel
	b.wg.Add(2)
	go b.readAcks(rctx)
	go b.readHealth(rctx)
	return b, nil
}

func (b *KafkaBalancer) readAcks(ctx context.Context) {
	defer b.wg.Done()
	for {
		m, err := b.acks.ReadMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			b.log.Warn("reading acknowledgements failed; retrying", zap.Error(err))
			select {
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		ack, err := activation.DecodeAck(m.Value)
		if err != nil {
			b.log.Warn("unreadable acknowledgement dropped", zap.Error(err), zap.Int64("offset", m.Offset))
			continue
		}
		id := ack.ID()
		b.mu.Lock()
		ch := b.waiters[id]
		b.mu.Unlock()
		if ch == nil {
			continue // non-blocking, or the waiter gave up
		}
		select {
		case ch <- ack:
		default:
			b.log.Warn("acknowledgement dropped: waiter is not reading", zap.String("activationId", string(id)))
		}
	}
}

func (b *KafkaBalancer) readHealth(ctx context.Context) {
	defer b.wg.Done()
	for {
		m, err := b.health.ReadMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		p, err := activation.DecodePing(m.Value)
		if err != nil {
			b.log.Debug("unreadable health ping dropped", zap.Error(err))
			continue
		}
		name := p.Instance.Source()
		if p.Instance.UniqueName != "" {
			name += "/" + p.Instance.UniqueName
		}
		at := m.Time
		if at.IsZero() {
			at = b.now()
		}
		b.mu.Lock()
		if cur, ok := b.pings[name]; !ok || !at.Before(cur.at) {
			b.pings[name] = pingState{at: at, enabled: p.Enabled()}
		}
		b.mu.Unlock()
	}
}

// Publish registers the activation and sends it to the invoker.
func (b *KafkaBalancer) Publish(ctx context.Context, msg *activation.ActivationMessage) (*Pending, error) {
	body, err := msg.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("controller: encode activation %s: %w", msg.ActivationID, err)
	}
	ch := make(chan *activation.Ack, 4)
	id := msg.ActivationID
	b.mu.Lock()
	b.waiters[id] = ch
	b.mu.Unlock()
	p := &Pending{ID: id, Acks: ch, done: func() {
		b.mu.Lock()
		delete(b.waiters, id)
		b.mu.Unlock()
	}}
	if err := b.writer.WriteMessages(ctx, kafka.Message{Value: body}); err != nil {
		p.Done()
		if errors.Is(err, kafka.MessageSizeTooLarge) {
			return nil, fmt.Errorf("controller: publish %s: %w", id, errTooLarge)
		}
		return nil, fmt.Errorf("controller: publish %s: %v: %w", id, err, ErrBalancer)
	}
	return p, nil
}

var errTooLarge = errors.New("record too large")

// Invokers lists the invokers that pinged, sorted by name.
func (b *KafkaBalancer) Invokers() []InvokerStatus {
	now := b.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]InvokerStatus, 0, len(b.pings))
	for name, p := range b.pings {
		out = append(out, InvokerStatus{Name: name, Healthy: p.enabled && now.Sub(p.at) < pingTimeout})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Close stops reading and closes the connections.
func (b *KafkaBalancer) Close() error {
	b.cancel()
	errs := []error{b.acks.Close(), b.health.Close()}
	b.wg.Wait()
	errs = append(errs, b.writer.Close())
	return errors.Join(errs...)
}
