package kafkafeed

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"
)

// ErrTooLarge is returned by Send when the record exceeds the producer's or the broker's size
// limit. The caller re-sends a smaller record (a shrunk ack), as upstream does on
// RecordTooLargeException.
var ErrTooLarge = errors.New("kafkafeed: record too large")

// Producer writes keyless records (upstream: ProducerRecord(topic, value), acks=1).
// It is safe for concurrent use; concurrent Sends are batched together.
type Producer struct {
	w *kafka.Writer
}

// NewProducer returns a producer whose records may be up to maxMessageBytes long
// (MAX_ACTIVATION_LIMIT for acks and events; the Kafka default of 1 MB for health pings).
func NewProducer(brokers []string, maxMessageBytes int64) *Producer {
	return &Producer{w: &kafka.Writer{
		Addr:     kafka.TCP(brokers...),
		Balancer: &kafka.LeastBytes{},
		// kafka-go waits BatchTimeout (default 1 s) for a batch to fill; acks must leave at once.
		BatchTimeout:           time.Millisecond,
		BatchBytes:             maxMessageBytes,
		RequiredAcks:           kafka.RequireOne,
		MaxAttempts:            4,
		WriteBackoffMin:        100 * time.Millisecond,
		WriteBackoffMax:        time.Second,
		WriteTimeout:           30 * time.Second,
		ReadTimeout:            30 * time.Second,
		AllowAutoTopicCreation: true,
	}}
}

// Send writes one record to topic and returns once the leader has it.
func (p *Producer) Send(ctx context.Context, topic string, value []byte) error {
	err := p.w.WriteMessages(ctx, kafka.Message{Topic: topic, Value: value})
	if err == nil {
		return nil
	}
	var tooLarge kafka.MessageTooLargeError
	var werr kafka.WriteErrors
	switch {
	case errors.As(err, &tooLarge), errors.Is(err, kafka.MessageSizeTooLarge):
		return fmt.Errorf("%w: %d bytes to %s: %v", ErrTooLarge, len(value), topic, err)
	case errors.As(err, &werr) && len(werr) == 1 && werr[0] != nil:
		if errors.As(werr[0], &tooLarge) || errors.Is(werr[0], kafka.MessageSizeTooLarge) {
			return fmt.Errorf("%w: %d bytes to %s: %v", ErrTooLarge, len(value), topic, werr[0])
		}
		return fmt.Errorf("kafkafeed: send to %s: %w", topic, werr[0])
	}
	return fmt.Errorf("kafkafeed: send to %s: %w", topic, err)
}

// Close flushes and closes the producer.
func (p *Producer) Close() error { return p.w.Close() }
