package unikernel

import (
	"maps"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/snapinvoker/snapinvoker/snapshotcache"
)

// Stats are the driver's counters since New (the gauges describe now).
type Stats struct {
	// Builds: function snapshots built (an executable booted to its first stdin read, or a
	// launcher restored from its runtime snapshot and initialised). RuntimeBuilds: runtime
	// snapshots built (an interpreter booted until its launcher waits for the init line).
	Builds, RuntimeBuilds int64
	// Restores: guests restored from a function snapshot. ReadyHits: instances that got a ready
	// guest (reset after an earlier instance) instead of a restore.
	Restores, ReadyHits int64
	// Activations run; Resets: guests reset to their function snapshot after one.
	Activations, Resets int64
	// Unsupported: Init or Run calls answered with backend.ErrUnsupported (the Containerless
	// rule), in total and by cause: a system call name ("fork"), "enosys:<name>" for a refused
	// call the program then failed on, "code" for code that is not an executable kvm loads,
	// "program" for an ELF it cannot load.
	Unsupported   int64
	UnsupportedBy map[string]int64
	// Functions with an open snapshot; ReadyGuests kept and their private memory.
	Functions   int
	ReadyGuests int
	ReadyBytes  int64
	// Cache is the snapshot store's statistics.
	Cache snapshotcache.Stats
}

// Stats returns a consistent copy of the counters.
func (d *Driver) Stats() Stats {
	d.mu.Lock()
	s := d.st
	s.UnsupportedBy = maps.Clone(d.st.UnsupportedBy)
	s.Functions = len(d.fns)
	for _, fn := range d.fns {
		s.ReadyGuests += len(fn.ready)
	}
	s.ReadyBytes = d.readyBytes
	d.mu.Unlock()
	s.Cache = d.cache.Stats()
	return s
}

func (d *Driver) countUnsupported(cause string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.st.Unsupported++
	if d.st.UnsupportedBy == nil {
		d.st.UnsupportedBy = map[string]int64{}
	}
	d.st.UnsupportedBy[cause]++
}

func (d *Driver) initTime(key snapshotcache.Key) time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.profiles.get(key).initTime
}

// Collector exposes Stats as Prometheus metrics, for the invoker's registry.
func (d *Driver) Collector() prometheus.Collector { return collector{d} }

type collector struct{ d *Driver }

var (
	descUnsupported = prometheus.NewDesc("snapinvoker_unikernel_unsupported_total",
		"Activations and inits the unikernel driver handed to the next driver (Containerless rule), by cause.", []string{"cause"}, nil)
	descBuilds = prometheus.NewDesc("snapinvoker_unikernel_snapshot_builds_total",
		"Function snapshots built.", nil, nil)
	descRestores = prometheus.NewDesc("snapinvoker_unikernel_restores_total",
		"Guests restored from a function snapshot.", nil, nil)
	descReadyHits = prometheus.NewDesc("snapinvoker_unikernel_ready_hits_total",
		"Instances started from a ready guest instead of a restore.", nil, nil)
	descActivations = prometheus.NewDesc("snapinvoker_unikernel_activations_total",
		"Activations run in unikernel guests.", nil, nil)
	descReady = prometheus.NewDesc("snapinvoker_unikernel_ready_guests",
		"Guests kept ready, reset to their function snapshot.", nil, nil)
	descReadyBytes = prometheus.NewDesc("snapinvoker_unikernel_ready_bytes",
		"Private host memory of the ready guests.", nil, nil)
)

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descUnsupported, descBuilds, descRestores, descReadyHits, descActivations, descReady, descReadyBytes} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	s := c.d.Stats()
	for cause, n := range s.UnsupportedBy {
		ch <- prometheus.MustNewConstMetric(descUnsupported, prometheus.CounterValue, float64(n), cause)
	}
	ch <- prometheus.MustNewConstMetric(descBuilds, prometheus.CounterValue, float64(s.Builds))
	ch <- prometheus.MustNewConstMetric(descRestores, prometheus.CounterValue, float64(s.Restores))
	ch <- prometheus.MustNewConstMetric(descReadyHits, prometheus.CounterValue, float64(s.ReadyHits))
	ch <- prometheus.MustNewConstMetric(descActivations, prometheus.CounterValue, float64(s.Activations))
	ch <- prometheus.MustNewConstMetric(descReady, prometheus.GaugeValue, float64(s.ReadyGuests))
	ch <- prometheus.MustNewConstMetric(descReadyBytes, prometheus.GaugeValue, float64(s.ReadyBytes))
}
