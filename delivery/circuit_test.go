package delivery

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookbridge/hookbridge/metrics"
)

// metricValue is the value of the gauge or counter name for sink, 0 when
// it has no such series.
func metricValue(t *testing.T, m *metrics.Metrics, name, sink string) float64 {
	t.Helper()
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, mt := range f.GetMetric() {
			for _, l := range mt.GetLabel() {
				if l.GetName() == "sink" && l.GetValue() == sink {
					if g := mt.GetGauge(); g != nil {
						return g.GetValue()
					}
					return mt.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// outageCRM is an HTTP endpoint that answers 503 while down, else 200, and
// records every answer.
type outageCRM struct {
	srv  *httptest.Server
	down atomic.Bool

	mu      sync.Mutex
	failed  []time.Time    // when each 503 was answered
	okByKey map[string]int // Idempotency-Key -> 200s
}

func newOutageCRM(t *testing.T) *outageCRM {
	c := &outageCRM{okByKey: map[string]int{}}
	c.down.Store(true)
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.down.Load() {
			c.failed = append(c.failed, time.Now())
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		c.okByKey[r.Header.Get("Idempotency-Key")]++
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(c.srv.Close)
	return c
}

func (c *outageCRM) answers() (failed []time.Time, ok map[string]int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ok = make(map[string]int, len(c.okByKey))
	for k, v := range c.okByKey {
		ok[k] = v
	}
	return append([]time.Time(nil), c.failed...), ok
}

// While a CRM is down for much longer than the retry schedule lasts, the
// circuit breaker holds the sink's four workers: the CRM gets about one
// request per cooldown, nothing is dead-lettered though every event has
// fewer attempts than the outage would have taken, and every event arrives
// once it is back.
func TestCircuitBreakerHoldsDeliveriesThroughAnOutage(t *testing.T) {
	q := openQueue(t, t.TempDir())
	defer q.Close()
	crm := newOutageCRM(t)
	const (
		n        = 20
		outage   = 2 * time.Second
		cooldown = 300 * time.Millisecond
		failures = 3
		workers  = 4
	)
	for i := range n {
		enqueue(t, q, fmt.Sprint("lead", i), "crm")
	}
	p := fastPolicy(3) // 3 attempts 20-100 ms apart: over in well under outage
	p.Concurrency = workers
	p.CircuitBreaker = CircuitBreaker{Failures: failures, Cooldown: cooldown, MaxCooldown: cooldown}
	m := metrics.New()
	e := New(q, nil, m)
	if err := e.Start("crm", httpSink(t, crm.srv.URL), p); err != nil {
		t.Fatal(err)
	}
	defer e.StopAll(context.Background())

	waitUntil(t, "the breaker to open", func() bool { return metricValue(t, m, "hookbridge_sink_circuit_state", "crm") != 0 })
	time.Sleep(outage)
	if st := q.Stats(); st.DeadLetters != 0 {
		t.Fatalf("%d events dead-lettered during the outage", st.DeadLetters)
	}
	crm.down.Store(false)
	waitUntil(t, "every event at the CRM", func() bool { _, ok := crm.answers(); return len(ok) == n })
	waitUntil(t, "the queue to empty", func() bool { return q.Stats().Pending["crm"] == 0 })

	failed, ok := crm.answers()
	for id, c := range ok {
		if c != 1 {
			t.Errorf("%s delivered %d times", id, c)
		}
	}
	if st := q.Stats(); st.DeadLetters != 0 {
		t.Errorf("%d dead letters", st.DeadLetters)
	}
	// Before it opened: the failures in a row, and at most the sends of the
	// other workers already under way. After: one probe per cooldown.
	before := failures + workers - 1
	limit := before + int(outage/cooldown) + 2
	t.Logf("%d requests answered 503 during the outage (limit %d); without the breaker, %d", len(failed), limit, n*3)
	if len(failed) > limit {
		t.Errorf("the CRM got %d requests while down, want at most %d", len(failed), limit)
	}
	for i := before + 1; i < len(failed); i++ {
		if gap := failed[i].Sub(failed[i-1]); gap < cooldown*8/10 {
			t.Errorf("probes %d and %d came %s apart, within the %s cooldown", i-1, i, gap, cooldown)
		}
	}
	if got := metricValue(t, m, "hookbridge_sink_circuit_openings_total", "crm"); got != 1 {
		t.Errorf("hookbridge_sink_circuit_openings_total = %v, want 1", got)
	}
	if got := metricValue(t, m, "hookbridge_sink_circuit_state", "crm"); got != 0 {
		t.Errorf("hookbridge_sink_circuit_state = %v after recovery, want 0 (closed)", got)
	}
}

// A CRM's 400 is about the event, not the CRM's health: however many in a
// row, the breaker stays closed and each event is dead-lettered at once.
func TestCircuitBreakerIgnoresPermanentRejections(t *testing.T) {
	q := openQueue(t, t.TempDir())
	defer q.Close()
	c := newCRM(t, http.StatusBadRequest)
	const n = 8
	for i := range n {
		enqueue(t, q, fmt.Sprint("bad", i), "crm")
	}
	p := fastPolicy(3)
	p.CircuitBreaker = CircuitBreaker{Failures: 2, Cooldown: time.Hour, MaxCooldown: time.Hour}
	m := metrics.New()
	e := New(q, nil, m)
	e.Start("crm", httpSink(t, c.srv.URL), p)
	defer e.StopAll(context.Background())
	waitUntil(t, "every event dead-lettered", func() bool { return q.Stats().DeadLetters == n })
	if got := len(c.requests()); got != n {
		t.Errorf("the CRM got %d requests, want one per event", got)
	}
	if got := metricValue(t, m, "hookbridge_sink_circuit_openings_total", "crm"); got != 0 {
		t.Errorf("the breaker opened %v times on permanent rejections", got)
	}
}

// A batching sink's batch counts as one send. The file sink's directory
// cannot be made (a file stands in its place) for longer than the retry
// schedule lasts: the batch waits, sent once per cooldown, is not
// dead-lettered though it has only 2 attempts, and is written once the
// directory can be made.
func TestCircuitBreakerHoldsABatchingSink(t *testing.T) {
	dir := t.TempDir()
	q := openQueue(t, filepath.Join(dir, "queue"))
	defer q.Close()
	blocker := filepath.Join(dir, "out")
	if err := os.WriteFile(blocker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	const (
		n        = 10
		outage   = 1500 * time.Millisecond
		cooldown = 200 * time.Millisecond
	)
	for i := range n {
		enqueue(t, q, fmt.Sprint("e", i), "archive")
	}
	p := fastPolicy(2)
	p.CircuitBreaker = CircuitBreaker{Failures: 2, Cooldown: cooldown, MaxCooldown: cooldown}
	m := metrics.New()
	e := New(q, nil, m)
	e.Start("archive", fileSink(t, filepath.Join(blocker, "events.jsonl")), p)
	defer e.StopAll(context.Background())

	waitUntil(t, "the breaker to open", func() bool { return metricValue(t, m, "hookbridge_sink_circuit_openings_total", "archive") == 1 })
	time.Sleep(outage)
	if st := q.Stats(); st.DeadLetters != 0 {
		t.Fatalf("%d events dead-lettered during the outage", st.DeadLetters)
	}
	sends := deliveryCalls(t, m, "archive")
	if limit := uint64(2 + outage/cooldown + 2); sends > limit {
		t.Errorf("%d sends during the outage, want at most %d", sends, limit)
	}
	if err := os.Remove(blocker); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the queue to empty", func() bool { return q.Stats().Pending["archive"] == 0 })
	b, err := os.ReadFile(filepath.Join(blocker, "events.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Count(string(b), "\n"); lines != n {
		t.Errorf("%d lines written, want %d", lines, n)
	}
	if st := q.Stats(); st.DeadLetters != 0 {
		t.Errorf("%d dead letters", st.DeadLetters)
	}
	if got := metricValue(t, m, "hookbridge_sink_circuit_state", "archive"); got != 0 {
		t.Errorf("hookbridge_sink_circuit_state = %v after recovery, want 0 (closed)", got)
	}
}

// A batch some of whose events were delivered counts as a success: the
// destination is up, and the failures are the events' own. Here the file
// sink writes each event under a directory named in its data, and one
// directory cannot be made: that event alone is retried and dead-lettered
// when out of attempts, and the breaker, which needs two failed sends in a
// row, never opens.
func TestCircuitBreakerCountsAPartlyDeliveredBatchAsSuccess(t *testing.T) {
	dir := t.TempDir()
	q := openQueue(t, filepath.Join(dir, "queue"))
	defer q.Close()
	if err := os.WriteFile(filepath.Join(dir, "blocked"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		enqueueData(t, q, fmt.Sprint("ok", i), `{"dir":"ok"}`, "archive")
	}
	enqueueData(t, q, "stuck", `{"dir":"blocked"}`, "archive")
	p := fastPolicy(2)
	p.BatchWait = time.Second // the five in one batch
	p.CircuitBreaker = CircuitBreaker{Failures: 2, Cooldown: time.Hour, MaxCooldown: time.Hour}
	m := metrics.New()
	e := New(q, nil, m)
	e.Start("archive", fileSink(t, filepath.Join(dir, "{{ .Data.dir }}", "events.jsonl")), p)
	defer e.StopAll(context.Background())
	waitUntil(t, "the stuck event dead-lettered", func() bool { return q.Stats().DeadLetters == 1 })
	waitUntil(t, "the queue to empty", func() bool { return q.Stats().Pending["archive"] == 0 })
	if calls := deliveryCalls(t, m, "archive"); calls != 2 {
		t.Errorf("%d sends, want 2: the batch, then the stuck event's retry", calls)
	}
	b, err := os.ReadFile(filepath.Join(dir, "ok", "events.jsonl"))
	if err != nil || strings.Count(string(b), "\n") != 4 {
		t.Errorf("the four events that could be written: %q, %v", b, err)
	}
	if got := metricValue(t, m, "hookbridge_sink_circuit_openings_total", "archive"); got != 0 {
		t.Errorf("the breaker opened %v times", got)
	}
}

// CircuitStates tells each running sink's breaker state as the inspector
// shows it: open while the CRM is down, closed once a probe gets through,
// off for a sink whose breaker is off, and nothing for a stopped sink.
func TestCircuitStatesReportsEachRunningSink(t *testing.T) {
	q := openQueue(t, t.TempDir())
	defer q.Close()
	crm := newOutageCRM(t)
	other := newOutageCRM(t)
	other.down.Store(false)
	enqueue(t, q, "lead0", "crm")
	p := fastPolicy(3)
	p.Concurrency = 1
	p.CircuitBreaker = CircuitBreaker{Failures: 2, Cooldown: 200 * time.Millisecond, MaxCooldown: 200 * time.Millisecond}
	off := fastPolicy(3)
	off.CircuitBreaker = CircuitBreaker{Off: true}
	e := New(q, nil, metrics.New())
	if err := e.Start("crm", httpSink(t, crm.srv.URL), p); err != nil {
		t.Fatal(err)
	}
	if err := e.Start("other", httpSink(t, other.srv.URL), off); err != nil {
		t.Fatal(err)
	}
	defer e.StopAll(context.Background())

	waitUntil(t, "crm's breaker to open", func() bool { return e.CircuitStates()["crm"] == CircuitOpen })
	if got := e.CircuitStates(); got["other"] != CircuitOff || len(got) != 2 {
		t.Errorf("CircuitStates() = %v, want crm open and other off", got)
	}
	crm.down.Store(false)
	waitUntil(t, "crm's breaker to close", func() bool { return e.CircuitStates()["crm"] == CircuitClosed })
	e.Stop(context.Background(), "other")
	if got := e.CircuitStates(); len(got) != 1 || got["crm"] != CircuitClosed {
		t.Errorf("CircuitStates() after stopping other = %v, want only crm, closed", got)
	}
}
