package delivery

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hookbridge/hookbridge/config"
)

// throttled is an HTTP peer that, like Slack, accepts a few requests a
// second and answers the rest 429 with Retry-After.
type throttled struct {
	srv *httptest.Server

	mu       sync.Mutex
	tokens   float64
	last     time.Time
	perSec   float64
	capacity float64
	ok       map[string]int // Idempotency-Key -> requests accepted
	refused  int
}

func newThrottled(t *testing.T, perSec, capacity float64) *throttled {
	p := &throttled{perSec: perSec, capacity: capacity, tokens: capacity, last: time.Now(), ok: map[string]int{}}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		now := time.Now()
		p.tokens = min(p.capacity, p.tokens+now.Sub(p.last).Seconds()*p.perSec)
		p.last = now
		accept := p.tokens >= 1
		if accept {
			p.tokens--
		}
		if accept {
			p.ok[r.Header.Get("Idempotency-Key")]++
		} else {
			p.refused++
		}
		p.mu.Unlock()
		if !accept {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *throttled) counts() (accepted map[string]int, refused int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	accepted = make(map[string]int, len(p.ok))
	for k, v := range p.ok {
		accepted[k] = v
	}
	return accepted, p.refused
}

// With rate_limit a little under the pace the peer accepts (as a user
// sets it under a documented limit), a burst is delivered without one
// refusal, even with no retries allowed and four deliveries at once.
func TestRateLimitKeepsToThePeersPace(t *testing.T) {
	q := openQueue(t, t.TempDir())
	defer q.Close()
	peer := newThrottled(t, 5, 5)
	rate, err := config.ParseRate("4/s")
	if err != nil {
		t.Fatal(err)
	}
	p := fastPolicy(1)
	p.Concurrency = 4
	p.RateLimit = rate
	const n = 20
	for i := range n {
		enqueue(t, q, string(rune('a'+i)), "crm")
	}
	e := New(q, nil, nil)
	start := time.Now()
	if err := e.Start("crm", httpSink(t, peer.srv.URL), p); err != nil {
		t.Fatal(err)
	}
	defer e.StopAll(context.Background())
	waitUntil(t, "every event at the peer", func() bool { ok, _ := peer.counts(); return len(ok) == n })
	took := time.Since(start)
	ok, refused := peer.counts()
	if refused != 0 {
		t.Errorf("the peer refused %d requests", refused)
	}
	for id, c := range ok {
		if c != 1 {
			t.Errorf("%s accepted %d times", id, c)
		}
	}
	// A burst of 4, then 4 a second: the last of 20 after about 4 s.
	if took < 3500*time.Millisecond {
		t.Errorf("20 events at 4/s took %v", took)
	}
	if st := q.Stats(); st.DeadLetters != 0 {
		t.Errorf("%d dead letters", st.DeadLetters)
	}
}

func TestPacerSplitsLargeWaitsIntoBursts(t *testing.T) {
	p := newPacer(100) // bursts of 100
	start := time.Now()
	if err := p.wait(context.Background(), 150); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 400*time.Millisecond {
		t.Errorf("150 events at 100/s with a burst of 100 took %v, want about 0.5 s", took)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.wait(ctx, 100); err == nil {
		t.Error("a wait did not end with its context")
	}
	if err := newPacer(0).wait(ctx, 1000); err != nil {
		t.Errorf("no rate limit: %v", err)
	}
}

// A batching sink's batches are cut to the burst and paced too.
func TestRateLimitPacesBatches(t *testing.T) {
	q := openQueue(t, t.TempDir())
	defer q.Close()
	path := filepath.Join(t.TempDir(), "out.jsonl")
	rate, err := config.ParseRate("100/s")
	if err != nil {
		t.Fatal(err)
	}
	p := fastPolicy(3)
	p.RateLimit = rate
	const n = 250
	for i := range n {
		enqueue(t, q, fmt.Sprint("e", i), "dead")
	}
	e := New(q, nil, nil)
	start := time.Now()
	if err := e.Start("dead", fileSink(t, path), p); err != nil {
		t.Fatal(err)
	}
	defer e.StopAll(context.Background())
	waitUntil(t, "every event in the file", func() bool {
		b, _ := os.ReadFile(path)
		return bytes.Count(b, []byte("\n")) == n
	})
	// A burst of 100, then 100 a second: 250 events after about 1.5 s.
	if took := time.Since(start); took < 1300*time.Millisecond {
		t.Errorf("%d events at 100/s took %v", n, took)
	}
}
