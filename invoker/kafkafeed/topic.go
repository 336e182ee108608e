package kafkafeed

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/segmentio/kafka-go"
)

// EnsureTopic creates topic with one partition and the upstream invoker topic settings if it
// does not exist (upstream: ensureTopic(topic, "invoker", maxMessageBytes)). An existing topic is
// left as it is.
func EnsureTopic(ctx context.Context, brokers []string, topic string, maxMessageBytes int) error {
	// Conn.CreateTopics reports success without creating anything on some brokers; the Client
	// API returns the per-topic result.
	c := &kafka.Client{Addr: kafka.TCP(brokers...)}
	res, err := c.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{
		Topic:             topic,
		NumPartitions:     1,
		ReplicationFactor: 1,
		ConfigEntries: []kafka.ConfigEntry{
			{ConfigName: "retention.ms", ConfigValue: "172800000"},
			{ConfigName: "retention.bytes", ConfigValue: "1073741824"},
			{ConfigName: "segment.bytes", ConfigValue: "536870912"},
			{ConfigName: "max.message.bytes", ConfigValue: strconv.Itoa(maxMessageBytes)},
		},
	}}})
	if err != nil {
		return fmt.Errorf("kafkafeed: create topic %s: %w", topic, err)
	}
	if terr := res.Errors[topic]; terr != nil && !errors.Is(terr, kafka.TopicAlreadyExists) {
		return fmt.Errorf("kafkafeed: create topic %s: %w", topic, terr)
	}
	return nil
}

// EndOffset returns the offset the next record of the topic's partition 0 will get. Records
// below it existed before the caller started, so they may have been handled by an earlier
// process.
func EndOffset(ctx context.Context, brokers []string, topic string) (int64, error) {
	c := &kafka.Client{Addr: kafka.TCP(brokers...)}
	res, err := c.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: {kafka.LastOffsetOf(0)}}})
	if err != nil {
		return 0, fmt.Errorf("kafkafeed: end offset of %s: %w", topic, err)
	}
	for _, p := range res.Topics[topic] {
		if p.Partition == 0 {
			if p.Error != nil {
				return 0, fmt.Errorf("kafkafeed: end offset of %s: %w", topic, p.Error)
			}
			return p.LastOffset, nil
		}
	}
	return 0, fmt.Errorf("kafkafeed: end offset of %s: partition 0 missing from the answer", topic)
}
