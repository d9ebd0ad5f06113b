package delivery

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/hookbridge/hookbridge/metrics"
	"github.com/hookbridge/hookbridge/queue"
	"github.com/hookbridge/hookbridge/sinks"
	filesink "github.com/hookbridge/hookbridge/sinks/file"
	httpsink "github.com/hookbridge/hookbridge/sinks/http"
	"github.com/hookbridge/hookbridge/sources"
	"github.com/hookbridge/hookbridge/tmpl"
)

func openQueue(t *testing.T, dir string) *queue.Store {
	t.Helper()
	q, err := queue.Open(queue.Options{Path: dir})
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func enqueue(t *testing.T, q *queue.Store, id string, sinkNames ...string) {
	t.Helper()
	ev := sources.NewEvent(id, "com.example.test", "https://example.com", "things/"+id, time.Now(), []byte(`{"n":"`+id+`"}`))
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.Enqueue(context.Background(), []queue.Item{{ID: id, Event: b, Sinks: sinkNames}}); err != nil {
		t.Fatal(err)
	}
}

// crm is an HTTP peer whose answers the test scripts.
type crm struct {
	srv     *httptest.Server
	mu      sync.Mutex
	answers []int // consumed in order; the last one repeats
	got     []string
	headers []http.Header
	bodies  [][]byte
	delay   time.Duration
	answer  string // the body of every answer that is not 2xx
}

func newCRM(t *testing.T, answers ...int) *crm {
	c := &crm{answers: answers}
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(c.delay)
		c.mu.Lock()
		code := c.answers[0]
		if len(c.answers) > 1 {
			c.answers = c.answers[1:]
		}
		c.got = append(c.got, r.Header.Get("Idempotency-Key"))
		c.headers = append(c.headers, r.Header.Clone())
		body, _ := io.ReadAll(r.Body)
		c.bodies = append(c.bodies, body)
		c.mu.Unlock()
		if code == 429 {
			w.Header().Set("Retry-After", "1")
		}
		w.WriteHeader(code)
		if code >= 300 {
			io.WriteString(w, c.answer)
		}
	}))
	t.Cleanup(c.srv.Close)
	return c
}

func (c *crm) requests() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.got...)
}

func httpSink(t *testing.T, url string) sinks.Sink {
	cfg := httpsink.NewConfig()
	cfg.URL = tmpl.MustParse(url)
	cfg.Timeout = 2 * time.Second
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	s, err := cfg.NewSink("crm")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func fileSink(t *testing.T, path string) sinks.Sink {
	reg, _ := sinks.Lookup("file")
	cfg := reg.NewConfig().(*filesink.Config)
	cfg.Path = tmpl.MustParse(path)
	s, err := cfg.NewSink("dead")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

func fastPolicy(max int) Policy {
	return Policy{Retry: Retry{MaxAttempts: max, InitialBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond}}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

type recorded struct {
	mu    sync.Mutex
	calls []string
}

func (r *recorded) Attempted(sink string, ev *event.Event, attempt int, err error, final bool, dl string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := "ok"
	if err != nil {
		out = "err"
	}
	if final {
		out += "/final:" + dl
	}
	r.calls = append(r.calls, sink+":"+ev.ID()+":"+out)
}

func TestRetriesUntilDelivered(t *testing.T) {
	q := openQueue(t, t.TempDir())
	defer q.Close()
	c := newCRM(t, 500, 503, 200)
	e := New(q, nil, nil)
	obs := &recorded{}
	e.Observe(obs)
	if err := e.Start("crm", httpSink(t, c.srv.URL), fastPolicy(5)); err != nil {
		t.Fatal(err)
	}
	defer e.StopAll(context.Background())
	enqueue(t, q, "a", "crm")
	waitUntil(t, "delivery", func() bool { return q.Stats().Pending["crm"] == 0 && len(c.requests()) == 3 })
	got := c.requests()
	for _, key := range got {
		if key != "a" {
			t.Fatalf("Idempotency-Key %q, want the event id on every try", key)
		}
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	want := []string{"crm:a:err", "crm:a:err", "crm:a:ok/final:"}
	if strings.Join(obs.calls, ",") != strings.Join(want, ",") {
		t.Fatalf("observed %v, want %v", obs.calls, want)
	}
}

func TestPermanentFailureGoesToDeadLetterSinkWithReason(t *testing.T) {
	q := openQueue(t, t.TempDir())
	defer q.Close()
	c := newCRM(t, 400)
	dlPath := filepath.Join(t.TempDir(), "dead.jsonl")
	e := New(q, nil, nil)
	p := fastPolicy(8)
	p.DeadLetter = "dead"
	e.Start("crm", httpSink(t, c.srv.URL), p)
	e.Start("dead", fileSink(t, dlPath), fastPolicy(3))
	defer e.StopAll(context.Background())
	enqueue(t, q, "b", "crm")
	waitUntil(t, "the dead letter", func() bool {
		data, _ := os.ReadFile(dlPath)
		return len(data) > 0
	})
	if n := len(c.requests()); n != 1 {
		t.Fatalf("a 400 was tried %d times; it must not be retried", n)
	}
	data, _ := os.ReadFile(dlPath)
	var ev event.Event
	if err := json.Unmarshal(data, &ev); err != nil {
		t.Fatal(err)
	}
	ext := ev.Extensions()
	if ev.ID() != "b" || ext[ExtDeadLetterSink] != "crm" || !strings.Contains(ext[ExtDeadLetterReason].(string), "400") {
		t.Fatalf("dead letter %s lacks its origin or reason: %v", ev.ID(), ext)
	}
	waitUntil(t, "the queue to empty", func() bool { st := q.Stats(); return st.Pending["crm"] == 0 && st.Pending["dead"] == 0 })
}

// A dead letter that the dead-letter sink gives up on too is kept in the
// store with both reasons once each, found by the sink it came from, and
// replayed to the dead-letter sink with the extensions it was first sent.
func TestDeadLetterSinkGivingUpKeepsTheFirstSinkAndReason(t *testing.T) {
	q := openQueue(t, t.TempDir())
	defer q.Close()
	c := newCRM(t, 422)
	dead := newCRM(t, 500, 500, 200)
	e := New(q, nil, nil)
	p := fastPolicy(8)
	p.DeadLetter = "dead"
	e.Start("crm", httpSink(t, c.srv.URL), p)
	e.Start("dead", httpSink(t, dead.srv.URL), fastPolicy(2))
	defer e.StopAll(context.Background())
	enqueue(t, q, "f", "crm")
	waitUntil(t, "the dead letter in the store", func() bool { return q.Stats().DeadLetters == 1 })
	dls, err := q.DeadLetters(10)
	if err != nil || len(dls) != 1 {
		t.Fatalf("dead letters %+v %v", dls, err)
	}
	dl := dls[0]
	if dl.Sink != "dead" || dl.From != "crm" || strings.Count(dl.Reason, "422 Unprocessable") != 1 || strings.Count(dl.Reason, "500 Internal") != 1 {
		t.Fatalf("dead letter sink %q from %q, reason %q: want dead from crm, each cause once", dl.Sink, dl.From, dl.Reason)
	}
	if err := q.Replay(dl.Key, ""); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the replay to reach the dead-letter sink", func() bool { return len(dead.requests()) == 3 })
	dead.mu.Lock()
	body := dead.bodies[2]
	dead.mu.Unlock()
	var ev event.Event
	if err := json.Unmarshal(body, &ev); err != nil {
		t.Fatal(err)
	}
	if ext := ev.Extensions(); ext[ExtDeadLetterSink] != "crm" || !strings.Contains(fmt.Sprint(ext[ExtDeadLetterReason]), "422 Unprocessable") {
		t.Fatalf("the replay reached the dead-letter sink without the first sink and reason: %s", body)
	}
}

// A dead-letter sink is told what the destination answered, with the
// extensions Knative's dispatchers set, besides the sink and the reason;
// without an answer (the destination unreachable), only the destination.
func TestDeadLetterSinkIsToldTheAnswer(t *testing.T) {
	q := openQueue(t, t.TempDir())
	defer q.Close()
	c := newCRM(t, 422)
	c.answer = `{"error":"email is invalid"}`
	// A destination that never answers: it hangs up on every connection
	// (its port stays taken, so no other test server can get it).
	gone, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer gone.Close()
	go func() {
		for {
			c, err := gone.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	dead := newCRM(t, 200)
	e := New(q, nil, nil)
	p := fastPolicy(2)
	p.DeadLetter = "dead"
	e.Start("crm", httpSink(t, c.srv.URL), p)
	e.Start("gone", httpSink(t, "http://"+gone.Addr().String()), p)
	e.Start("dead", httpSink(t, dead.srv.URL), fastPolicy(2))
	defer e.StopAll(context.Background())
	enqueue(t, q, "rejected", "crm")
	waitUntil(t, "the rejected event at the dead-letter sink", func() bool { return len(dead.requests()) == 1 })
	enqueue(t, q, "unanswered", "gone")
	waitUntil(t, "the unanswered event at the dead-letter sink", func() bool { return len(dead.requests()) == 2 })

	dead.mu.Lock()
	bodies := slices.Clone(dead.bodies)
	dead.mu.Unlock()
	for i, want := range []map[string]string{
		{"knativeerrordest": "crm", "knativeerrorcode": "422",
			"knativeerrordata": base64.StdEncoding.EncodeToString([]byte(c.answer))},
		{"knativeerrordest": "gone"},
	} {
		var ev event.Event
		if err := json.Unmarshal(bodies[i], &ev); err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for name, v := range ev.Extensions() {
			if strings.HasPrefix(name, "knativeerror") {
				got[name] = fmt.Sprint(v)
			}
		}
		if !maps.Equal(got, want) {
			t.Errorf("dead letter %d: Knative's extensions %v, want %v (%s)", i, got, want, bodies[i])
		}
		if ev.Extensions()[ExtDeadLetterSink] != want["knativeerrordest"] || ev.Extensions()[ExtDeadLetterReason] == nil {
			t.Errorf("dead letter %d without the sink and the reason: %s", i, bodies[i])
		}
	}
}

func TestExhaustedRetriesAreKeptInTheStore(t *testing.T) {
	q := openQueue(t, t.TempDir())
	defer q.Close()
	c := newCRM(t, 503)
	e := New(q, nil, nil)
	e.Start("crm", httpSink(t, c.srv.URL), fastPolicy(3))
	defer e.StopAll(context.Background())
	enqueue(t, q, "c", "crm")
	waitUntil(t, "the event to be buried", func() bool { return q.Stats().DeadLetters == 1 })
	if n := len(c.requests()); n != 3 {
		t.Fatalf("tried %d times, want max_attempts 3", n)
	}
	dls, err := q.DeadLetters(10)
	if err != nil || len(dls) != 1 || dls[0].Sink != "crm" || dls[0].Attempts != 3 || !strings.Contains(dls[0].Reason, "503 Service Unavailable") {
		t.Fatalf("dead letters %+v %v", dls, err)
	}
}

func TestRetryAfterIsHonoured(t *testing.T) {
	q := openQueue(t, t.TempDir())
	defer q.Close()
	c := newCRM(t, 429, 200)
	e := New(q, nil, nil)
	e.Start("crm", httpSink(t, c.srv.URL), fastPolicy(5))
	defer e.StopAll(context.Background())
	start := time.Now()
	enqueue(t, q, "d", "crm")
	waitUntil(t, "delivery", func() bool { return len(c.requests()) == 2 })
	if waited := time.Since(start); waited < 900*time.Millisecond {
		t.Fatalf("retried after %v; the peer asked for Retry-After: 1", waited)
	}
}

func TestSlowSinkDoesNotHoldBackAnother(t *testing.T) {
	q := openQueue(t, t.TempDir())
	defer q.Close()
	slow := newCRM(t, 503) // down: every event backs off
	slow.delay = 200 * time.Millisecond
	path := filepath.Join(t.TempDir(), "fast.jsonl")
	e := New(q, nil, nil)
	e.Start("crm", httpSink(t, slow.srv.URL), Policy{Retry: Retry{MaxAttempts: 8, InitialBackoff: time.Second, MaxBackoff: time.Minute}})
	e.Start("dead", fileSink(t, path), fastPolicy(3))
	defer e.StopAll(context.Background())
	for i := 0; i < 50; i++ {
		enqueue(t, q, "e"+string(rune('A'+i%26))+string(rune('a'+i/26)), "crm", "dead")
	}
	waitUntil(t, "the healthy sink to get everything", func() bool { return q.Stats().Pending["dead"] == 0 })
	if q.Stats().Pending["crm"] != 50 {
		t.Fatalf("the failing sink lost events: %d pending", q.Stats().Pending["crm"])
	}
}

func TestStopLeavesRetryingEventsQueued(t *testing.T) {
	dir := t.TempDir()
	q := openQueue(t, dir)
	c := newCRM(t, 503)
	e := New(q, nil, nil)
	e.Start("crm", httpSink(t, c.srv.URL), Policy{Retry: Retry{MaxAttempts: 8, InitialBackoff: time.Hour, MaxBackoff: time.Hour}})
	enqueue(t, q, "f", "crm")
	waitUntil(t, "a first attempt", func() bool { return len(c.requests()) == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	e.StopAll(ctx)
	if time.Since(start) > time.Second {
		t.Fatal("stopping waited for the backoff")
	}
	q.Close()
	q = openQueue(t, dir)
	defer q.Close()
	ds, err := q.Next(context.Background(), "crm", 10, 0)
	if err != nil || len(ds) != 1 || ds[0].Attempts != 1 {
		t.Fatalf("after restart: %+v %v; want the event still queued with its attempt count", ds, err)
	}
}

// The loop reads the next batch while the sink works on one; on stop, that
// batch goes back to the queue, handed out again in order without a restart.
func TestStopReleasesTheBatchReadAhead(t *testing.T) {
	q := openQueue(t, t.TempDir())
	defer q.Close()
	c := newCRM(t, 503)
	e := New(q, nil, nil)
	e.Start("crm", httpSink(t, c.srv.URL), Policy{Concurrency: 1, Retry: Retry{MaxAttempts: 8, InitialBackoff: time.Hour, MaxBackoff: time.Hour}})
	enqueue(t, q, "first", "crm")
	waitUntil(t, "a first attempt", func() bool { return len(c.requests()) == 1 })
	enqueue(t, q, "second", "crm")
	enqueue(t, q, "third", "crm")
	// Give the reader time to take "second" from the queue.
	time.Sleep(100 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	e.StopAll(ctx)
	ds, err := q.Next(ctx, "crm", 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range ds {
		var ev event.Event
		if err := ev.UnmarshalJSON(d.Event); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%s:%d", ev.ID(), d.Attempts))
	}
	if want := "first:1 second:0 third:0"; strings.Join(got, " ") != want {
		t.Fatalf("after stop the queue hands out %v, want %s", got, want)
	}
}

func TestBackoff(t *testing.T) {
	r := Retry{MaxAttempts: 8, InitialBackoff: time.Second, MaxBackoff: 5 * time.Minute}
	for attempts, max := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 5: 16 * time.Second, 20: 5 * time.Minute} {
		for i := 0; i < 100; i++ {
			d := r.Backoff(attempts, 0)
			if d < max/2 || d > max {
				t.Fatalf("Backoff(%d) = %v, want within [%v, %v]", attempts, d, max/2, max)
			}
		}
	}
	if d := r.Backoff(1, 30*time.Second); d != 30*time.Second {
		t.Fatalf("Retry-After 30s gave %v", d)
	}
}

// deliveryCalls is how many calls the loop of sink has made to it.
func deliveryCalls(t *testing.T, m *metrics.Metrics, sink string) uint64 {
	t.Helper()
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "hookbridge_delivery_duration_seconds" {
			continue
		}
		for _, metric := range f.GetMetric() {
			for _, l := range metric.GetLabel() {
				if l.GetName() == "sink" && l.GetValue() == sink {
					return metric.GetHistogram().GetSampleCount()
				}
			}
		}
	}
	return 0
}

// While a batching sink is busy, the events that arrive one by one are handed
// to it in one batch when it is free, not as the first of them alone and then
// the rest. The sink is a file sink writing into a named pipe: its write
// blocks until the test reads.
// busyPipe starts delivery with p to a file sink writing into a named pipe
// and queues for it an event larger than the pipe's buffer: the sink stays
// busy writing it until the test reads. It returns the queue, the metrics
// and the pipe's reading end, opened.
func busyPipe(t *testing.T, p Policy) (*queue.Store, *metrics.Metrics, *bufio.Reader) {
	t.Helper()
	dir := t.TempDir()
	pipe := filepath.Join(dir, "events.pipe")
	if err := syscall.Mkfifo(pipe, 0o600); err != nil {
		t.Skipf("no named pipes here: %v", err)
	}
	q := openQueue(t, filepath.Join(dir, "queue"))
	t.Cleanup(func() { q.Close() })
	reg, _ := sinks.Lookup("file")
	cfg := reg.NewConfig().(*filesink.Config)
	cfg.Path = tmpl.MustParse(pipe)
	cfg.Sync = "none"
	sink, err := cfg.NewSink("pipe")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sink.Close(context.Background()) })
	if _, ok := sink.(sinks.Preparer); !ok {
		t.Fatal("the file sink does not prepare its batches")
	}
	m := metrics.New()
	e := New(q, nil, m)
	e.Start("pipe", sink, p)
	t.Cleanup(func() { e.StopAll(context.Background()) })
	enqueueData(t, q, "big", `{"pad":"`+strings.Repeat("x", 1<<20)+`"}`, "pipe")
	r, err := os.Open(pipe) // blocks until the sink opens its end
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return q, m, bufio.NewReaderSize(r, 2<<20)
}

// readIDs reads n lines of events from r and returns their ids.
func readIDs(t *testing.T, r *bufio.Reader, n int) string {
	t.Helper()
	var got []string
	for len(got) < n {
		line, err := r.ReadBytes('\n')
		if err != nil {
			t.Fatal(err)
		}
		var ev event.Event
		if err := ev.UnmarshalJSON(line); err != nil {
			t.Fatal(err)
		}
		got = append(got, ev.ID())
	}
	return strings.Join(got, " ")
}

func TestBusyBatchSinkGetsWhatArrivedMeanwhileInOneBatch(t *testing.T) {
	q, m, lines := busyPipe(t, fastPolicy(3))
	for i := range 9 {
		enqueue(t, q, fmt.Sprintf("e%d", i), "pipe")
		time.Sleep(20 * time.Millisecond) // the loop takes each as it comes
	}
	if got, want := readIDs(t, lines, 10), "big e0 e1 e2 e3 e4 e5 e6 e7 e8"; got != want {
		t.Fatalf("order %v, want %s", got, want)
	}
	waitUntil(t, "the acknowledgements", func() bool { return q.Stats().Pending["pipe"] == 0 })
	if calls := deliveryCalls(t, m, "pipe"); calls != 2 {
		t.Fatalf("the sink was called %d times, want 2: the big event, then the nine that arrived meanwhile", calls)
	}
}

// Full batches queued while a sink that prepares its batches (the file sink
// encodes its lines apart from writing them) is busy sending reach it one
// batch at a time, in the queue's order. That the next batch is prepared
// during the send cannot be seen from here; BENCHMARKS.md measures what it
// changes.
func TestFullBatchesFollowABusySendInOrder(t *testing.T) {
	p := fastPolicy(3)
	p.BatchSize = 3
	q, m, lines := busyPipe(t, p)
	var want []string
	for i := range 9 { // three full batches, queued while the sink is busy
		id := fmt.Sprintf("e%d", i)
		enqueue(t, q, id, "pipe")
		want = append(want, id)
	}
	time.Sleep(100 * time.Millisecond) // the loop takes and prepares what it can
	if got, want := readIDs(t, lines, 10), "big "+strings.Join(want, " "); got != want {
		t.Fatalf("order %v, want %s", got, want)
	}
	waitUntil(t, "the acknowledgements", func() bool { return q.Stats().Pending["pipe"] == 0 })
	if calls := deliveryCalls(t, m, "pipe"); calls != 4 {
		t.Fatalf("the sink was called %d times, want 4: the big event, then three full batches", calls)
	}
}

func enqueueData(t *testing.T, q *queue.Store, id, data string, sinkNames ...string) {
	t.Helper()
	ev := sources.NewEvent(id, "com.example.test", "https://example.com", "things/"+id, time.Now(), []byte(data))
	b, err := ev.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.Enqueue(context.Background(), []queue.Item{{ID: id, Event: b, Sinks: sinkNames}}); err != nil {
		t.Fatal(err)
	}
}

// enqueueSpaced enqueues n events for sink, gap apart.
func enqueueSpaced(t *testing.T, q *queue.Store, prefix string, n int, gap time.Duration, sink string) {
	t.Helper()
	for i := range n {
		enqueue(t, q, fmt.Sprintf("%s%d", prefix, i), sink)
		time.Sleep(gap)
	}
}

// A batch that is not full waits batch_wait for more: events arriving one by
// one within it reach the sink in one call. Without the wait, the same
// arrivals take several calls.
func TestBatchWaitGathersEventsArrivingOneByOne(t *testing.T) {
	for _, tc := range []struct {
		wait      time.Duration
		wantCalls func(uint64) bool
		want      string
	}{
		{wait: 2 * time.Second, wantCalls: func(n uint64) bool { return n == 1 }, want: "1"},
		{wait: 0, wantCalls: func(n uint64) bool { return n > 1 }, want: "more than 1"},
	} {
		t.Run(fmt.Sprint("batch_wait=", tc.wait), func(t *testing.T) {
			dir := t.TempDir()
			q := openQueue(t, filepath.Join(dir, "queue"))
			defer q.Close()
			m := metrics.New()
			e := New(q, nil, m)
			p := fastPolicy(3)
			p.BatchWait = tc.wait
			out := filepath.Join(dir, "events.jsonl")
			e.Start("archive", fileSink(t, out), p)
			defer e.StopAll(context.Background())

			enqueueSpaced(t, q, "e", 5, 50*time.Millisecond, "archive")
			waitUntil(t, "every event delivered", func() bool { return q.Stats().Pending["archive"] == 0 })
			if calls := deliveryCalls(t, m, "archive"); !tc.wantCalls(calls) {
				t.Fatalf("the sink was called %d times, want %s", calls, tc.want)
			}
			b, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if n := strings.Count(string(b), "\n"); n != 5 {
				t.Fatalf("%d lines in the file, want 5", n)
			}
		})
	}
}

// A full batch is handed over at once, however long batch_wait is: a
// draining backlog never waits.
func TestFullBatchDoesNotWait(t *testing.T) {
	dir := t.TempDir()
	q := openQueue(t, filepath.Join(dir, "queue"))
	defer q.Close()
	for i := range 6 {
		enqueue(t, q, fmt.Sprintf("e%d", i), "archive")
	}
	m := metrics.New()
	e := New(q, nil, m)
	p := fastPolicy(3)
	p.BatchSize, p.BatchWait = 3, MaxBatchWait
	start := time.Now()
	e.Start("archive", fileSink(t, filepath.Join(dir, "events.jsonl")), p)
	defer e.StopAll(context.Background())
	waitUntil(t, "every event delivered", func() bool { return q.Stats().Pending["archive"] == 0 })
	if took := time.Since(start); took > MaxBatchWait/2 {
		t.Fatalf("two full batches took %s to deliver", took)
	}
	if calls := deliveryCalls(t, m, "archive"); calls != 2 {
		t.Fatalf("the sink was called %d times, want 2 full batches", calls)
	}
}

// Stopping while a batch waits releases it: the events stay queued, not in
// flight.
func TestStopDuringBatchWaitReleasesTheBatch(t *testing.T) {
	dir := t.TempDir()
	q := openQueue(t, filepath.Join(dir, "queue"))
	defer q.Close()
	e := New(q, nil, nil)
	p := fastPolicy(3)
	p.BatchWait = MaxBatchWait
	out := filepath.Join(dir, "events.jsonl")
	e.Start("archive", fileSink(t, out), p)
	enqueue(t, q, "waiting", "archive")
	time.Sleep(100 * time.Millisecond) // the reader has taken it and waits
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	e.StopAll(ctx)
	if took := time.Since(start); took > time.Second {
		t.Fatalf("stop took %s while a batch waited", took)
	}
	ds, err := q.TryNext("archive", 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 1 {
		t.Fatalf("after stop the queue hands out %d events, want the waiting one", len(ds))
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatalf("the waiting batch was written: %v", err)
	}
}

func TestPolicyValidateBatchWait(t *testing.T) {
	for wait, ok := range map[time.Duration]bool{0: true, DefaultBatchWait: true, MaxBatchWait: true, -time.Millisecond: false, MaxBatchWait + 1: false} {
		p := DefaultPolicy()
		p.BatchWait = wait
		if err := p.Validate(); (err == nil) != ok {
			t.Errorf("batch_wait %s: Validate() = %v", wait, err)
		}
	}
}

// Counts tells each sink's deliveries as hookbridge_deliveries_total does:
// events delivered, attempts failed, events dead-lettered, kept when the
// sink's loop restarts.
func TestCountsKeepEachSinksDeliveries(t *testing.T) {
	q := openQueue(t, t.TempDir())
	defer q.Close()
	// One event fails twice then goes; the next is rejected for good.
	c := newCRM(t, 503, 503, 200, 400)
	p := fastPolicy(5)
	p.Concurrency = 1
	p.CircuitBreaker = CircuitBreaker{Off: true}
	e := New(q, nil, metrics.New())
	if err := e.Start("crm", httpSink(t, c.srv.URL), p); err != nil {
		t.Fatal(err)
	}
	defer e.StopAll(context.Background())
	enqueue(t, q, "a", "crm")
	waitUntil(t, "a delivered", func() bool { return e.Counts()["crm"].Delivered == 1 })
	enqueue(t, q, "b", "crm")
	waitUntil(t, "b dead-lettered", func() bool { return q.Stats().DeadLetters == 1 })
	want := DeliveryCounts{Delivered: 1, Failed: 3, DeadLettered: 1}
	if got := e.Counts(); len(got) != 1 || got["crm"] != want {
		t.Fatalf("Counts() = %+v, want crm %+v", got, want)
	}
	// A restart (as a reload that changed the sink does) keeps them.
	e.Stop(context.Background(), "crm")
	c.mu.Lock()
	c.answers = []int{200}
	c.mu.Unlock()
	if err := e.Start("crm", httpSink(t, c.srv.URL), p); err != nil {
		t.Fatal(err)
	}
	enqueue(t, q, "c", "crm")
	waitUntil(t, "c delivered", func() bool { return e.Counts()["crm"].Delivered == 2 })
	want.Delivered = 2
	if got := e.Counts()["crm"]; got != want {
		t.Fatalf("Counts()[crm] after a restart = %+v, want %+v", got, want)
	}
}
