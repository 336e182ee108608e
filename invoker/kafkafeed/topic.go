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
