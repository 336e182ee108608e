package testenv

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Kafka is an in-process Kafka-protocol broker.
type Kafka struct {
	Brokers []string
	cluster *kfake.Cluster
	port    int
	dir     string
	t       testing.TB
	topics  []string
}

// StartKafka starts a one-broker kfake cluster on a fixed free port with its log on disk, so
// Restart brings it back with the same address and data. topics are created with one partition.
func StartKafka(t testing.TB, topics ...string) *Kafka {
	t.Helper()
	k := &Kafka{port: FreePort(t), dir: t.TempDir(), t: t, topics: topics}
	k.start()
	t.Cleanup(k.Stop)
	return k
}

func (k *Kafka) start() {
	k.t.Helper()
	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.Ports(k.port), kfake.DataDir(k.dir), kfake.SyncWrites()}
	if len(k.topics) > 0 {
		opts = append(opts, kfake.SeedTopics(1, k.topics...))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		k.t.Fatalf("testenv: start kfake: %v", err)
	}
	k.cluster = c
	k.Brokers = c.ListenAddrs()
}

// Stop closes the broker. Safe to call twice.
func (k *Kafka) Stop() {
	if k.cluster != nil {
		k.cluster.Close()
		k.cluster = nil
	}
}

// Restart stops the broker and starts it again on the same port with the same data.
func (k *Kafka) Restart() {
	k.t.Helper()
	k.Stop()
	k.start()
}
