package kafkafeed

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"go.uber.org/zap/zaptest"
)

func startBroker(t *testing.T, opts ...kfake.Opt) []string {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	if err != nil {
		t.Fatalf("start kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

func produce(t *testing.T, p *Producer, topic string, values ...string) {
	t.Helper()
	for _, v := range values {
		if err := p.Send(context.Background(), topic, []byte(v)); err != nil {
			t.Fatalf("produce %q: %v", v, err)
		}
	}
}

func committedOffset(t *testing.T, brokers []string, topic string) int64 {
	t.Helper()
	c := &kafka.Client{Addr: kafka.TCP(brokers...)}
	res, err := c.OffsetFetch(context.Background(), &kafka.OffsetFetchRequest{GroupID: topic, Topics: map[string][]int{topic: {0}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range res.Topics[topic] {
		if p.Partition == 0 {
			return p.CommittedOffset
		}
	}
	return -1
}

func TestEnsureTopic(t *testing.T) {
	brokers := startBroker(t)
	ctx := context.Background()
	for i := 0; i < 2; i++ { // the second call finds it existing
		if err := EnsureTopic(ctx, brokers, "invoker7", 1054644); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	c := &kafka.Client{Addr: kafka.TCP(brokers...)}
	md, err := c.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{"invoker7"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(md.Topics) != 1 || md.Topics[0].Error != nil || len(md.Topics[0].Partitions) != 1 {
		t.Fatalf("topic metadata = %+v, want one topic with one partition", md.Topics)
	}
}

// TestFeedBackPressureAndCommit: at most MaxPeek messages are out; an offset is committed only
// once everything at or below it is done; a consumer that restarts gets the unfinished ones again.
func TestFeedBackPressureAndCommit(t *testing.T) {
	brokers := startBroker(t)
	ctx := context.Background()
	const topic = "invoker0"
	if err := EnsureTopic(ctx, brokers, topic, 1054644); err != nil {
		t.Fatal(err)
	}
	p := NewProducer(brokers, 1054644)
	defer p.Close()
	produce(t, p, topic, "m0", "m1", "m2", "m3", "m4")

	f, err := New(Config{Brokers: brokers, Topic: topic, MaxPeek: 3, SessionTimeout: 6 * time.Second, Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	var msgs []*Message
	for i := 0; i < 3; i++ {
		m, err := f.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("m%d", i); string(m.Value) != want || m.Offset != int64(i) {
			t.Fatalf("message %d = %q at %d, want %q", i, m.Value, m.Offset, want)
		}
		msgs = append(msgs, m)
	}
	if f.InFlight() != 3 {
		t.Fatalf("in flight = %d, want 3", f.InFlight())
	}
	// A fourth Next must wait for capacity: it can only end by its context.
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	if m, err := f.Next(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Next beyond MaxPeek = %v, %v; want it to block", m, err)
	}
	cancel()
	// Releasing capacity (without finishing) lets the next one through.
	msgs[1].Release()
	m3, err := f.Next(ctx)
	if err != nil || string(m3.Value) != "m3" {
		t.Fatalf("after release: %v, %v", m3, err)
	}
	// 1 and 3 finish first: nothing is committable while 0 is open.
	msgs[1].Done()
	m3.Done()
	msgs[0].Done()
	// Now 0 and 1 are done, 2 is open: the commit point is 2.
	waitCommitted(t, f, 2)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if got := committedOffset(t, brokers, topic); got != 2 {
		t.Fatalf("committed offset at the broker = %d, want 2", got)
	}

	// A new consumer in the group resumes at 2: m2 (unfinished) comes again, then m3 (done, but
	// after an unfinished one, so redelivered: the invoker skips it by its stored record), m4.
	f2, err := New(Config{Brokers: brokers, Topic: topic, MaxPeek: 3, SessionTimeout: 6 * time.Second, Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for i := 0; i < 3; i++ {
		m, err := f2.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(m.Value))
		m.Done()
	}
	if strings.Join(got, ",") != "m2,m3,m4" {
		t.Fatalf("redelivered %v, want m2,m3,m4", got)
	}
	waitCommitted(t, f2, 5)
	if err := f2.Close(); err != nil {
		t.Fatal(err)
	}
	if got := committedOffset(t, brokers, topic); got != 5 {
		t.Fatalf("committed offset = %d, want 5", got)
	}
	if _, err := f2.Next(ctx); err == nil {
		t.Fatal("Next after Close succeeded")
	}
}

func waitCommitted(t *testing.T, f *Feed, want int64) {
	t.Helper()
	for i := 0; f.Committed() != want; i++ {
		if i > 1000 {
			t.Fatalf("committed = %d, want %d", f.Committed(), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestProducerTooLarge(t *testing.T) {
	brokers := startBroker(t, kfake.SeedTopics(1, "completed0"))
	p := NewProducer(brokers, 1054644)
	defer p.Close()
	big := make([]byte, 1100000)
	if err := p.Send(context.Background(), "completed0", big); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized send = %v, want ErrTooLarge", err)
	}
	if err := p.Send(context.Background(), "completed0", []byte(`{"ok":true}`)); err != nil {
		t.Fatalf("send after a too-large one: %v", err)
	}
}
