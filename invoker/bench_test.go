package invoker

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/snapinvoker/snapinvoker/activation"
	"github.com/snapinvoker/snapinvoker/invoker/kafkafeed"
)

// Benchmarks (go test -bench . -run XXX ./invoker/): NOP activations through Kafka. The
// baseline is the bare transport in the same run: a record produced on one topic, consumed,
// produced on another and consumed again, which is the least any invoker's
// ActivationMessage→ack path costs on this broker.

// ackWaiter delivers, per activation id, the time its slot-freeing ack was read.
type ackWaiter struct {
	mu      sync.Mutex
	waiting map[string]chan time.Time
}

func watchAcks(b *testing.B, brokers []string, topic string) *ackWaiter {
	aw := &ackWaiter{waiting: map[string]chan time.Time{}}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topic, Partition: 0, MinBytes: 1, MaxWait: 500 * time.Millisecond, MaxBytes: 4 << 20, ReadBackoffMin: time.Millisecond})
	r.SetOffset(kafka.LastOffset)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				return
			}
			at := time.Now()
			a, err := activation.DecodeAck(m.Value)
			if err != nil || !a.FreesSlot() {
				continue
			}
			aw.mu.Lock()
			ch := aw.waiting[string(a.ID())]
			delete(aw.waiting, string(a.ID()))
			aw.mu.Unlock()
			if ch != nil {
				ch <- at
			}
		}
	}()
	b.Cleanup(func() { cancel(); <-done; r.Close() })
	return aw
}

func (aw *ackWaiter) expect(id string) chan time.Time {
	ch := make(chan time.Time, 1)
	aw.mu.Lock()
	aw.waiting[id] = ch
	aw.mu.Unlock()
	return ch
}

func percentiles(d []time.Duration) (p50, p99 time.Duration) {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[len(d)/2], d[min(len(d)-1, len(d)*99/100)]
}

// BenchmarkKafkaRoundTrip is the baseline: produce → consume → produce → consume.
func BenchmarkKafkaRoundTrip(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w, out := newKafkaEcho(ctx, b, false)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if err := w.pub.Send(ctx, "ping", []byte(fmt.Sprintf(`{"n":%d}`, i))); err != nil {
			b.Fatal(err)
		}
		if _, err := out.ReadMessage(ctx); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	p50, p99 := percentiles(lat)
	b.ReportMetric(float64(p50.Microseconds()), "p50-µs")
	b.ReportMetric(float64(p99.Microseconds()), "p99-µs")
}

// BenchmarkWarmLatency: one blocking NOP activation at a time on a warm instance;
// ActivationMessage published → Completion read.
func BenchmarkWarmLatency(b *testing.B) {
	w := newWorld(b, false)
	p := w.process()
	stop := run(p)
	defer stop()
	aw := watchAcks(b, w.kafka.Brokers, "completed0")
	send := func(i int) time.Duration {
		id := fmt.Sprintf("b0000000%024x", i)
		ch := aw.expect(id)
		t0 := time.Now()
		w.invoke("echonologs", id, false, nil, nil)
		select {
		case at := <-ch:
			return at.Sub(t0)
		case <-time.After(time.Minute):
			b.Fatalf("no ack for %s", id)
		}
		return 0
	}
	send(1 << 40) // cold start, then warm
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		lat = append(lat, send(i))
	}
	b.StopTimer()
	p50, p99 := percentiles(lat)
	b.ReportMetric(float64(p50.Microseconds()), "p50-µs")
	b.ReportMetric(float64(p99.Microseconds()), "p99-µs")
	if testing.Verbose() {
		b.Log(grep(get(b, "http://"+p.Addr()+"/metrics"), "_sum"))
	}
}

// BenchmarkThroughput64: NOP activations with 64 in flight; reports activations per second.
func BenchmarkThroughput64(b *testing.B) {
	w := newWorld(b, false)
	p := w.process("CONFIG_whisk_containerPool_userMemory=16384m")
	stop := run(p)
	defer stop()
	aw := watchAcks(b, w.kafka.Brokers, "completed0")
	const inFlight = 64
	// Warm 64 instances first.
	var wg sync.WaitGroup
	fire := func(id string) chan time.Time {
		ch := aw.expect(id)
		w.invoke("echonologs", id, false, nil, nil)
		return ch
	}
	for i := 0; i < inFlight; i++ {
		ch := fire(fmt.Sprintf("c0000000%024x", i))
		wg.Add(1)
		go func() { defer wg.Done(); <-ch }()
	}
	wg.Wait()
	// 64 clients, each with one activation outstanding at a time.
	msgs := make([][]byte, b.N)
	for i := range msgs {
		msgs[i] = w.message("activation-message-nonblocking.json", fmt.Sprintf("d0000000%024x", i), map[string]any{
			"action":   map[string]any{"path": "guest", "name": "echonologs", "version": "0.0.1"},
			"revision": w.revs["guest/echonologs"]})
	}
	var next atomic.Int64
	b.ResetTimer()
	t0 := time.Now()
	for c := 0; c < inFlight; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= b.N {
					return
				}
				ch := aw.expect(fmt.Sprintf("d0000000%024x", i))
				if err := w.pub.Send(context.Background(), "invoker0", msgs[i]); err != nil {
					b.Error(err)
					return
				}
				select {
				case <-ch:
				case <-time.After(time.Minute):
					b.Error("ack missing")
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(t0)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "activations/s")
}

// BenchmarkKafkaRoundTrip64 is the throughput baseline: 64 clients each keep one record in
// flight through produce → consume → produce → consume, with no invoker in between.
func BenchmarkKafkaRoundTrip64(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w, out := newKafkaEcho(ctx, b, true) // the invoker also answers concurrently
	var mu sync.Mutex
	waiting := map[string]chan struct{}{}
	go func() {
		for {
			m, err := out.ReadMessage(ctx)
			if err != nil {
				return
			}
			mu.Lock()
			ch := waiting[string(m.Value)]
			delete(waiting, string(m.Value))
			mu.Unlock()
			if ch != nil {
				close(ch)
			}
		}
	}()
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	t0 := time.Now()
	for c := 0; c < 64; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= b.N {
					return
				}
				key := fmt.Sprintf("m%d", i)
				ch := make(chan struct{})
				mu.Lock()
				waiting[key] = ch
				mu.Unlock()
				if err := w.pub.Send(ctx, "ping", []byte(key)); err != nil {
					b.Error(err)
					return
				}
				select {
				case <-ch:
				case <-time.After(time.Minute):
					b.Error("echo missing")
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(t0).Seconds(), "records/s")
}

// newKafkaEcho sets up the Kafka-only baseline of the benchmarks: a goroutine copies every
// record of topic "ping" to topic "pong" through our producer (each copy in its own goroutine
// when concurrent). It returns the world, whose w.pub writes to "ping", and a reader of "pong".
// Everything stops when ctx is cancelled and the benchmark ends.
func newKafkaEcho(ctx context.Context, b *testing.B, concurrent bool) (*world, *kafka.Reader) {
	b.Helper()
	w := newWorld(b, false)
	for _, t := range []string{"ping", "pong"} {
		if err := kafkafeed.EnsureTopic(ctx, w.kafka.Brokers, t, activation.MaxActivationLimit); err != nil {
			b.Fatal(err)
		}
	}
	reader := func(topic string) *kafka.Reader {
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: w.kafka.Brokers, Topic: topic, Partition: 0, MinBytes: 1, MaxBytes: 4 << 20, MaxWait: 500 * time.Millisecond, ReadBackoffMin: time.Millisecond})
		b.Cleanup(func() { r.Close() })
		return r
	}
	in, out := reader("ping"), reader("pong")
	echo := kafkafeed.NewProducer(w.kafka.Brokers, activation.MaxActivationLimit)
	b.Cleanup(func() { echo.Close() })
	go func() {
		for {
			m, err := in.ReadMessage(ctx)
			if err != nil {
				return
			}
			if concurrent {
				go echo.Send(ctx, "pong", m.Value)
			} else {
				echo.Send(ctx, "pong", m.Value)
			}
		}
	}()
	return w, out
}
