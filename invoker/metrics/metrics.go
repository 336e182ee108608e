// Package metrics holds the invoker's Prometheus metrics, in a registry of its own (no global
// state): activations by status and start kind, queue length, pool memory, per-driver latencies.
package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics is one invoker's set of metrics.
type Metrics struct {
	Registry *prometheus.Registry

	activations   *prometheus.CounterVec
	driverLatency *prometheus.HistogramVec
	ackLatency    prometheus.Histogram
	acks          *prometheus.CounterVec
	malformed     prometheus.Counter
	skipped       prometheus.Counter
}

// Gauges are read when Prometheus scrapes.
type Gauges struct {
	// QueueLength is the number of activations taken from Kafka and not yet finished.
	QueueLength func() float64
	// PoolMemoryUsed and PoolMemoryTotal are bytes of user memory charged and available.
	PoolMemoryUsed, PoolMemoryTotal func() float64
	// StorePending is the number of activation records waiting to be written.
	StorePending func() float64
}

// New registers every metric.
func New(g Gauges) *Metrics {
	r := prometheus.NewRegistry()
	m := &Metrics{
		Registry: r,
		activations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "snapinvoker", Name: "activations_total",
			Help: "Activations finished, by response status (success, application_error, action_developer_error, whisk_internal_error) and start kind (cold, prewarm, warm, restored, none).",
		}, []string{"status", "start"}),
		driverLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "snapinvoker", Name: "driver_seconds",
			Help:    "Time spent in a driver, by driver and phase (start, init, run).",
			Buckets: prometheus.ExponentialBuckets(50e-6, 2, 20),
		}, []string{"driver", "phase"}),
		ackLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "snapinvoker", Name: "message_to_ack_seconds",
			Help:    "Time from reading an ActivationMessage to sending the ack that frees its slot.",
			Buckets: prometheus.ExponentialBuckets(100e-6, 2, 20),
		}),
		acks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "snapinvoker", Name: "acks_total",
			Help: "Acknowledgements sent, by kind (completion, result, combined) and whether shrunk.",
		}, []string{"kind", "shrunk"}),
		malformed: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "snapinvoker", Name: "malformed_messages_total",
			Help: "Kafka records that were not valid ActivationMessages (logged and skipped).",
		}),
		skipped: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "snapinvoker", Name: "redelivered_skipped_total",
			Help: "Redelivered activations skipped because their record was already stored.",
		}),
	}
	r.MustRegister(m.activations, m.driverLatency, m.ackLatency, m.acks, m.malformed, m.skipped,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	gauge := func(name, help string, f func() float64) {
		if f != nil {
			r.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "snapinvoker", Name: name, Help: help}, f))
		}
	}
	gauge("queue_length", "Activations taken from Kafka and not yet finished.", g.QueueLength)
	gauge("pool_memory_used_bytes", "User memory charged by running and idle instances.", g.PoolMemoryUsed)
	gauge("pool_memory_bytes", "User memory available to the pool.", g.PoolMemoryTotal)
	gauge("store_pending_records", "Activation records waiting to be written to CouchDB.", g.StorePending)
	return m
}

// Activation counts a finished activation.
func (m *Metrics) Activation(status, start string) {
	m.activations.WithLabelValues(status, start).Inc()
}

// Driver records time spent in one driver phase.
func (m *Metrics) Driver(driver, phase string, d time.Duration) {
	m.driverLatency.WithLabelValues(driver, phase).Observe(d.Seconds())
}

// AckLatency records message→slot-freeing-ack time.
func (m *Metrics) AckLatency(d time.Duration) { m.ackLatency.Observe(d.Seconds()) }

// Ack counts one ack sent.
func (m *Metrics) Ack(kind string, shrunk bool) {
	s := "false"
	if shrunk {
		s = "true"
	}
	m.acks.WithLabelValues(kind, s).Inc()
}

// Malformed counts a skipped malformed record.
func (m *Metrics) Malformed() { m.malformed.Inc() }

// Skipped counts a redelivered activation skipped because it was already done.
func (m *Metrics) Skipped() { m.skipped.Inc() }
