package delivery

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

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
	delay   time.Duration
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
		c.mu.Unlock()
		if code == 429 {
			w.Header().Set("Retry-After", "1")
		}
		w.WriteHeader(code)
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
	if err != nil || len(dls) != 1 || dls[0].Sink != "crm" || dls[0].Attempts != 3 || !strings.Contains(dls[0].Reason, "503") {
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
	ds, err := q.Next(context.Background(), "crm", 10)
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
	ds, err := q.Next(ctx, "crm", 10)
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
