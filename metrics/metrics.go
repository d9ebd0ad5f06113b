// Package metrics holds hookbridge's Prometheus instruments, on a registry of
// their own so that tests and several bridges in one process never share
// counters.
package metrics

import (
	"regexp"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// gcCPU adds to the Go collector's defaults the collector's share of the
// CPU (go_cpu_classes_gc_total_cpu_seconds_total): what memory_limit costs
// when the bridge works near it.
var gcCPU = collectors.GoRuntimeMetricsRule{Matcher: regexp.MustCompile(`^/cpu/classes/gc/total:cpu-seconds$`)}

// Metrics are the instruments of one bridge.
type Metrics struct {
	Registry *prometheus.Registry

	Requests             *prometheus.CounterVec   // source, status
	VerificationFailures *prometheus.CounterVec   // source, reason
	RequestDuration      *prometheus.HistogramVec // source: receive to answer
	EventsAccepted       *prometheus.CounterVec   // source
	EventsDuplicate      *prometheus.CounterVec   // source
	EventsUnrouted       *prometheus.CounterVec   // source
	DuplicatesRead       *prometheus.CounterVec   // sink: with a Kafka queue
	Deliveries           *prometheus.CounterVec   // sink, outcome: delivered|failed|dead_lettered
	Retries              *prometheus.CounterVec   // sink
	DeadLetters          *prometheus.CounterVec   // sink
	DeliveryDuration     *prometheus.HistogramVec // sink: one delivery call
	CircuitState         *prometheus.GaugeVec     // sink: 0 closed, 1 open, 2 half-open
	CircuitOpenings      *prometheus.CounterVec   // sink
	ConfigReloads        *prometheus.CounterVec   // result: ok|rejected
	CertificateNotAfter  *prometheus.GaugeVec     // listener: only with server.tls
}

// New makes the instruments and registers them with Go and process collectors.
func New() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookbridge_requests_total", Help: "Webhook requests answered, by source and HTTP status.",
		}, []string{"source", "status"}),
		VerificationFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookbridge_verification_failures_total", Help: "Requests rejected as not authentic, by source and reason.",
		}, []string{"source", "reason"}),
		RequestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "hookbridge_request_duration_seconds", Help: "Time from receiving a webhook to answering it (includes the durable queue write).",
			Buckets: []float64{.0005, .001, .002, .003, .005, .0075, .01, .015, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"source"}),
		EventsAccepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookbridge_events_accepted_total", Help: "CloudEvents durably queued, by source.",
		}, []string{"source"}),
		EventsDuplicate: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookbridge_events_duplicate_total", Help: "CloudEvents dropped because their id was accepted within the dedup window.",
		}, []string{"source"}),
		EventsUnrouted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookbridge_events_unrouted_total", Help: "CloudEvents that matched no route.",
		}, []string{"source"}),
		DuplicatesRead: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookbridge_queue_duplicates_read_total", Help: "Events a sink's reader of a Kafka queue dropped because it had read their id within the dedup window, by sink.",
		}, []string{"sink"}),
		Deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookbridge_deliveries_total", Help: "Delivery attempts by sink and outcome (delivered, failed, dead_lettered).",
		}, []string{"sink", "outcome"}),
		Retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookbridge_delivery_retries_total", Help: "Deliveries scheduled for another attempt, by sink.",
		}, []string{"sink"}),
		DeadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookbridge_dead_letters_total", Help: "Events given up on, by the sink that gave up.",
		}, []string{"sink"}),
		DeliveryDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "hookbridge_delivery_duration_seconds", Help: "Duration of one delivery call (a batch for batching sinks), by sink.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 14),
		}, []string{"sink"}),
		CircuitState: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "hookbridge_sink_circuit_state", Help: "A sink's circuit breaker: 0 closed (delivering), 1 open (holding deliveries until a probe may go), 2 half-open (one probe under way).",
		}, []string{"sink"}),
		CircuitOpenings: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookbridge_sink_circuit_openings_total", Help: "Times a sink's circuit breaker opened after its failures in a row (a failed probe opening it again is not counted).",
		}, []string{"sink"}),
		ConfigReloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookbridge_config_reloads_total", Help: "Configuration reloads by result (ok, rejected).",
		}, []string{"result"}),
		CertificateNotAfter: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "hookbridge_tls_certificate_not_after_seconds", Help: "When the certificate a listener serves expires, in seconds since the Unix epoch (only with server.tls or admin.tls).",
		}, []string{"listener"}),
	}
	m.Registry.MustRegister(
		collectors.NewGoCollector(collectors.WithGoCollectorRuntimeMetrics(gcCPU)),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.Requests, m.VerificationFailures, m.RequestDuration, m.EventsAccepted, m.EventsDuplicate,
		m.EventsUnrouted, m.DuplicatesRead, m.Deliveries, m.Retries, m.DeadLetters, m.DeliveryDuration, m.ConfigReloads,
		m.CertificateNotAfter, m.CircuitState, m.CircuitOpenings,
	)
	for _, result := range []string{"ok", "rejected"} {
		m.ConfigReloads.WithLabelValues(result)
	}
	return m
}

// InitSink exports a sink's counters at zero from its start, before their
// first event, so that rate(), increase() and absent() over them work on a
// fresh bridge (a series that does not exist yet is not a zero to them).
func (m *Metrics) InitSink(sink string) {
	for _, outcome := range []string{"delivered", "failed", "dead_lettered"} {
		m.Deliveries.WithLabelValues(sink, outcome)
	}
	m.Retries.WithLabelValues(sink)
	m.DeadLetters.WithLabelValues(sink)
	m.CircuitOpenings.WithLabelValues(sink)
	m.DeliveryDuration.WithLabelValues(sink)
}

// InitSource does what InitSink does for a source's counters: its events,
// its request duration, and its verification failures under each of
// reasons (server.VerificationReasons: every reason there is, whether or
// not this source's type can give it, which only the source's code
// knows). hookbridge_requests_total is left to appear with the first
// request: its status label is known only then.
func (m *Metrics) InitSource(source string, reasons []string) {
	m.EventsAccepted.WithLabelValues(source)
	m.EventsDuplicate.WithLabelValues(source)
	m.EventsUnrouted.WithLabelValues(source)
	m.RequestDuration.WithLabelValues(source)
	for _, reason := range reasons {
		m.VerificationFailures.WithLabelValues(source, reason)
	}
}

// QueueStats is what the queue reports at each scrape.
type QueueStats struct {
	Pending       map[string]int // by sink
	OldestPending time.Time      // zero when nothing is pending
	DeadLetters   int

	DedupFilterBytes  int   // memory the dedup filter holds
	DedupFilterBudget int   // memory it may hold
	DedupFilterBlind  bool  // it answers "maybe" to every id
	DedupLookups      int64 // ids looked up on disk since start

	DiskFree    uint64 // bytes available on the queue's disk
	DiskReserve uint64 // free space below which new events are refused (0: never)

	// Lag is, for a Kafka queue, each sink's consumer-group lag as last
	// measured (records on the ingress topic after the group's committed
	// offsets), for the sinks measured at least once; LagUpdated is when,
	// for every sink that reads the topic (zero: not yet).
	Lag        map[string]int64
	LagUpdated map[string]time.Time

	// Embedded is true for the embedded store: the dedup filter and disk
	// series are its alone, and are not exported for a Kafka queue (a disk
	// "with 0 bytes free" would set off alerts).
	Embedded bool
}

type queueCollector struct {
	stats                   func() QueueStats
	pending, oldest, buried *prometheus.Desc
	filterBytes, budget     *prometheus.Desc
	blind, lookups          *prometheus.Desc
	diskFree, diskReserve   *prometheus.Desc
	lag, lagUpdated         *prometheus.Desc
}

// WatchQueue registers metrics read from stats at every scrape: events
// pending per sink, age of the oldest pending event, dead letters kept, the
// state of the dedup filter, whose lookups against accepted events say
// when queue.dedup_memory is too small, and the free space on the queue's
// disk against the reserve below which new events are refused; for a Kafka
// queue, each sink's consumer-group lag and when it was measured.
func (m *Metrics) WatchQueue(stats func() QueueStats) {
	m.Registry.MustRegister(&queueCollector{
		stats:       stats,
		pending:     prometheus.NewDesc("hookbridge_queue_pending", "Events queued and not yet delivered, by sink.", []string{"sink"}, nil),
		oldest:      prometheus.NewDesc("hookbridge_queue_oldest_pending_age_seconds", "Age of the oldest event not yet delivered (0 when none).", nil, nil),
		buried:      prometheus.NewDesc("hookbridge_dead_letter_store_events", "Events kept in the dead-letter store.", nil, nil),
		filterBytes: prometheus.NewDesc("hookbridge_queue_dedup_filter_bytes", "Memory held by the filter that spares new event ids a disk lookup.", nil, nil),
		budget:      prometheus.NewDesc("hookbridge_queue_dedup_filter_budget_bytes", "Memory the dedup filter may hold (queue.dedup_memory).", nil, nil),
		blind:       prometheus.NewDesc("hookbridge_queue_dedup_filter_blind", "1 while the dedup filter sends every id to a disk lookup: at start it was rebuilt from more ids than it could take, until those leave the window.", nil, nil),
		diskFree:    prometheus.NewDesc("hookbridge_queue_disk_free_bytes", "Space available on the queue's disk.", nil, nil),
		diskReserve: prometheus.NewDesc("hookbridge_queue_disk_reserve_bytes", "Free space below which new events are answered 503 (queue.min_free_space; 0: never).", nil, nil),
		lag:         prometheus.NewDesc("hookbridge_queue_lag", "With a Kafka queue: records on the ingress topic after the committed offsets of the sink's consumer group, summed over partitions: its backlog across every replica.", []string{"sink"}, nil),
		lagUpdated:  prometheus.NewDesc("hookbridge_queue_lag_updated_timestamp_seconds", "With a Kafka queue: when hookbridge_queue_lag was last measured for the sink, in seconds since the Unix epoch (0: not yet).", []string{"sink"}, nil),
		lookups:     prometheus.NewDesc("hookbridge_queue_dedup_lookups_total", "Event ids looked up on disk: duplicates, and new ids the filter could not rule out. Well above hookbridge_events_duplicate_total, it asks for more queue.dedup_memory.", nil, nil),
	})
}

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.pending, c.oldest, c.buried, c.filterBytes, c.budget, c.blind, c.lookups, c.diskFree, c.diskReserve, c.lag, c.lagUpdated} {
		ch <- d
	}
}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	for sink, n := range s.Pending {
		ch <- prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, float64(n), sink)
	}
	age := 0.0
	if !s.OldestPending.IsZero() {
		age = time.Since(s.OldestPending).Seconds()
	}
	ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, age)
	ch <- prometheus.MustNewConstMetric(c.buried, prometheus.GaugeValue, float64(s.DeadLetters))
	if !s.Embedded {
		for sink, n := range s.Lag {
			ch <- prometheus.MustNewConstMetric(c.lag, prometheus.GaugeValue, float64(n), sink)
		}
		for sink, at := range s.LagUpdated {
			ts := 0.0
			if !at.IsZero() {
				ts = float64(at.UnixNano()) / 1e9
			}
			ch <- prometheus.MustNewConstMetric(c.lagUpdated, prometheus.GaugeValue, ts, sink)
		}
		return
	}
	ch <- prometheus.MustNewConstMetric(c.filterBytes, prometheus.GaugeValue, float64(s.DedupFilterBytes))
	ch <- prometheus.MustNewConstMetric(c.budget, prometheus.GaugeValue, float64(s.DedupFilterBudget))
	blind := 0.0
	if s.DedupFilterBlind {
		blind = 1
	}
	ch <- prometheus.MustNewConstMetric(c.blind, prometheus.GaugeValue, blind)
	ch <- prometheus.MustNewConstMetric(c.lookups, prometheus.CounterValue, float64(s.DedupLookups))
	ch <- prometheus.MustNewConstMetric(c.diskFree, prometheus.GaugeValue, float64(s.DiskFree))
	ch <- prometheus.MustNewConstMetric(c.diskReserve, prometheus.GaugeValue, float64(s.DiskReserve))
}
