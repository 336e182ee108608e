package pool

import (
	"fmt"
	"testing"
	"time"
)

// warmCore returns a Core holding n idle warm instances of 256 MB: one per action when
// distinct, else n of the same action. Memory is exactly full when full is set.
func warmCore(b *testing.B, n int, distinct, full bool) *Core {
	b.Helper()
	um := int64(n) * 256 * mb
	if !full {
		um *= 2
	}
	now := time.Unix(1e9, 0)
	c, _, err := NewCore(Config{UserMemory: um, IdleTimeout: -1}, now)
	if err != nil {
		b.Fatal(err)
	}
	key := func(i int) ActionKey {
		if distinct {
			return ActionKey{Namespace: "guest", Action: fmt.Sprintf("guest/a%d", i)}
		}
		return ActionKey{Namespace: "guest", Action: "guest/a"}
	}
	for i := 0; i < n; i++ {
		c.Submit(now, Job{ID: JobID(i + 1), Key: key(i), Kind: "nodejs:20", Memory: 256 * mb, Driver: "d"})
	}
	for i := 0; i < n; i++ {
		now = now.Add(time.Millisecond)
		c.Started(now, InstanceID(i+1), 1, false)
		c.Done(now, JobID(i+1), true)
	}
	if st := c.Stats(); st.Idle != n {
		b.Fatalf("setup: %d idle, want %d", st.Idle, n)
	}
	return c
}

// benchWarm measures one warm placement plus its completion (two events, one decision).
func benchWarm(b *testing.B, n int, distinct bool) {
	c := warmCore(b, n, distinct, false)
	now := time.Unix(2e9, 0)
	id := JobID(1 << 40)
	i := 0
	keys := make([]ActionKey, n)
	for k := range keys {
		keys[k] = ActionKey{Namespace: "guest", Action: "guest/a"}
		if distinct {
			keys[k].Action = fmt.Sprintf("guest/a%d", k)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		id++
		i++
		k := keys[i%n]
		ds := c.Submit(now, Job{ID: id, Key: k, Kind: "nodejs:20", Memory: 256 * mb, Driver: "d"})
		if len(ds) != 1 || ds[0].Start != Warm {
			b.Fatalf("want one warm decision, got %+v", ds)
		}
		c.Done(now, id, true)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "decisions/s")
}

// BenchmarkWarm: scheduling decisions per second with 10,000 warm instances, against a
// 100-instance baseline in the same run (the ratio shows how the policy scales).
func BenchmarkWarm(b *testing.B) {
	b.Run("instances=100", func(b *testing.B) { benchWarm(b, 100, true) })
	b.Run("instances=10000", func(b *testing.B) { benchWarm(b, 10000, true) })
	// All 10,000 instances belong to one action: the worst case for choosing among them.
	b.Run("instances=10000/one-action", func(b *testing.B) { benchWarm(b, 10000, false) })
}

// BenchmarkEvict: memory is full of 10,000 idle warm instances and every run is a new action,
// so each decision evicts the least recently used instance and starts cold.
func BenchmarkEvict(b *testing.B) {
	const n = 10000
	c := warmCore(b, n, true, true)
	now := time.Unix(2e9, 0)
	id := JobID(1 << 40)
	b.ReportAllocs()
	for b.Loop() {
		id++
		now = now.Add(time.Microsecond)
		ds := c.Submit(now, Job{ID: id, Key: ActionKey{Namespace: "guest", Action: fmt.Sprintf("guest/new%d", id)},
			Kind: "nodejs:20", Memory: 256 * mb, Driver: "d"})
		if len(ds) != 2 || ds[1].Start != Recreated {
			b.Fatalf("want evict + recreated, got %+v", ds)
		}
		c.Started(now, ds[1].Inst, 1, false)
		c.Done(now, id, true)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "decisions/s")
}
