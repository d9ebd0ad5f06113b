package delivery

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/hookbridge/hookbridge/eventcodec"
	"github.com/hookbridge/hookbridge/internal/testlog"
	"github.com/hookbridge/hookbridge/metrics"
	"github.com/hookbridge/hookbridge/queue"
	"github.com/hookbridge/hookbridge/queue/kafkaqueue"
	"github.com/hookbridge/hookbridge/sinks"
	"github.com/hookbridge/hookbridge/sources"
)

// A delivery being retried when a rebalance of a Kafka queue's group moves
// its partition to another replica is that replica's to deliver now: the
// loop that was retrying it drops it before its next attempt, instead of
// going on for as long as its schedule lasts and delivering it a second
// time once the CRM is back, whether before the next attempt or after.
func TestRetriesStopWhenTheirPartitionMoves(t *testing.T) {
	t.Run("back before the next attempt", func(t *testing.T) { retriesStopWhenTheirPartitionMoves(t, time.Second, 0) })
	t.Run("back after it", func(t *testing.T) { retriesStopWhenTheirPartitionMoves(t, 100*time.Millisecond, 300*time.Millisecond) })
}

// retriesStopWhenTheirPartitionMoves retries every lead each backoff, and
// brings the CRM back down for downFor after the partition moved.
func retriesStopWhenTheirPartitionMoves(t *testing.T, backoff, downFor time.Duration) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "ingress"), kfake.GroupMinSessionTimeout(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	open := func() *kafkaqueue.Queue { return openReplica(t, c, "crm", nil) }

	q1 := open()
	down := newCRM(t, 503)
	deliverFrom(t, q1, "crm", httpSink(t, down.srv.URL), Policy{
		Concurrency:    8, // every lead in flight, retried by its own worker
		Retry:          Retry{MaxAttempts: 1000, InitialBackoff: backoff, MaxBackoff: backoff},
		CircuitBreaker: CircuitBreaker{Off: true}, // each delivery on its own schedule
	}, nil)
	items := enqueueLeads(t, q1, "crm", 0, 8)
	attempts := func(ids map[string]bool) (n int) {
		for _, id := range down.requests() {
			if ids[id] {
				n++
			}
		}
		return n
	}
	all := map[string]bool{}
	for _, it := range items {
		all[it.ID] = true
	}
	waitUntil(t, "every lead retried", func() bool { return attempts(all) >= 2*len(items) })

	// A second replica joins and takes a partition over: it is handed that
	// partition's leads (and holds them).
	q2 := open()
	if err := q2.Subscribe("crm"); err != nil {
		t.Fatal(err)
	}
	moved := map[string]bool{}
	takeMoved := func() {
		ds, err := q2.TryNext("crm", 100, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			ev, err := eventcodec.Decode(d.Event)
			if err != nil {
				t.Fatal(err)
			}
			moved[ev.ID()] = true
		}
	}
	waitUntil(t, "the second replica handed some leads", func() bool {
		takeMoved()
		return len(moved) > 0
	})
	// q2 reads the partition it took over a record at a time: every lead
	// is either handed to it, or retried by the first replica since the
	// rebalance ended (it retries no lead that moved).
	// keptAllRequestedSince: every lead that did not move reached the CRM
	// at its request number from or later.
	keptAllRequestedSince := func(from int) bool {
		requested := map[string]bool{}
		for _, id := range down.requests()[from:] {
			requested[id] = true
		}
		for _, it := range items {
			if !moved[it.ID] && !requested[it.ID] {
				return false
			}
		}
		return true
	}
	down.mu.Lock()
	rebalanced := len(down.got)
	down.mu.Unlock()
	waitUntil(t, "every lead either moved or retried by the first replica", func() bool {
		takeMoved()
		return keptAllRequestedSince(rebalanced)
	})
	if len(moved) == len(items) {
		t.Fatalf("all %d leads moved: the first replica kept no partition", len(items))
	}
	time.Sleep(downFor)
	before := attempts(moved)
	down.mu.Lock()
	down.answers = []int{http.StatusCreated} // the CRM is back
	since := len(down.got)
	down.mu.Unlock()
	// The leads of the partition the first replica kept are its to deliver,
	// and it does; those that moved it leaves alone.
	waitUntil(t, "the first replica delivering the leads it kept", func() bool { return keptAllRequestedSince(since) })
	time.Sleep(2*backoff + 500*time.Millisecond) // any retry's time to come
	if after := attempts(moved); after != before {
		t.Errorf("the first replica went on with the leads that moved (and delivered them once the CRM was back): %d attempts, then %d", before, after)
	}
	t.Logf("moved %v", slices.Sorted(func(yield func(string) bool) {
		for id := range moved {
			if !yield(id) {
				return
			}
		}
	}))
}

// openReplica opens a bridge replica's Kafka queue on c's topic "ingress",
// routing every event to sink, logging to log (nil: the default).
func openReplica(t *testing.T, c *kfake.Cluster, sink string, log *slog.Logger) *kafkaqueue.Queue {
	t.Helper()
	q, err := kafkaqueue.Open(kafkaqueue.Options{
		Brokers: c.ListenAddrs(), Topic: "ingress", Group: "g",
		Route:          func(*event.Event) []string { return []string{sink} },
		SessionTimeout: 2 * time.Second, CommitInterval: 50 * time.Millisecond,
		Logger: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = q.Close() })
	return q
}

// deliverFrom starts a delivery loop of q's events for sink name to s,
// counted in m (nil: metrics of its own), and subscribes q's sink.
func deliverFrom(t *testing.T, q *kafkaqueue.Queue, name string, s sinks.Sink, p Policy, m *metrics.Metrics) {
	t.Helper()
	e := New(q, nil, m)
	if err := e.Start(name, s, p); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.StopAll(context.Background()) })
	if err := q.Subscribe(name); err != nil {
		t.Fatal(err)
	}
}

// enqueueLeads queues leads from lead-<from> to lead-<from+n-1> for sink,
// each with a subject of its own (spread over the partitions).
func enqueueLeads(t *testing.T, q *kafkaqueue.Queue, sink string, from, n int) []queue.Item {
	t.Helper()
	var items []queue.Item
	for i := from; i < from+n; i++ {
		id := fmt.Sprintf("lead-%d", i)
		ev := sources.NewEvent(id, "com.example.lead", "https://example.com", fmt.Sprintf("sessions/%d", i), time.Now(), []byte(`{"n":1}`))
		b, err := eventcodec.Encode(ev)
		if err != nil {
			t.Fatal(err)
		}
		items = append(items, queue.Item{ID: id, Event: b, Sinks: []string{sink}, CloudEvent: ev})
	}
	if _, err := q.Enqueue(context.Background(), items); err != nil {
		t.Fatal(err)
	}
	return items
}

// A batch that has not been sent yet, held back by an open circuit
// breaker, is not under way: when a rebalance moves its partition, the
// queue takes it back at once, without waiting for it, and the loop drops
// it when the breaker lets sends through again, instead of writing it
// beside the replica the partition went to. Here the first replica's
// archive is a file sink whose directory cannot be made (a file is in its
// way) until the test removes that file.
func TestHeldBatchesStopWhenTheirPartitionMoves(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "ingress"), kfake.GroupMinSessionTimeout(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	dir := t.TempDir()
	blocker := filepath.Join(dir, "one")
	if err := os.WriteFile(blocker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	paths := []string{filepath.Join(blocker, "events.jsonl"), filepath.Join(dir, "two.jsonl")}
	var logs testlog.Buffer
	q1 := openReplica(t, c, "archive", slog.New(slog.NewTextHandler(&logs, nil)))
	p := Policy{
		BatchSize: 100,
		Retry:     Retry{MaxAttempts: 1000, InitialBackoff: 50 * time.Millisecond, MaxBackoff: 50 * time.Millisecond},
		// Open for longer than a rebalance waits for deliveries under way
		// (half the session timeout), as with the default 30s.
		CircuitBreaker: CircuitBreaker{Failures: 1, Cooldown: 1500 * time.Millisecond, MaxCooldown: 1500 * time.Millisecond},
	}
	m := metrics.New()
	deliverFrom(t, q1, "archive", fileSink(t, paths[0]), p, m)
	items := enqueueLeads(t, q1, "archive", 0, 8)
	waitUntil(t, "the breaker to open", func() bool { return metricValue(t, m, "hookbridge_sink_circuit_openings_total", "archive") == 1 })
	// More leads: the loop takes them as its next batch, which waits
	// behind the first one's retries, unsent.
	items = append(items, enqueueLeads(t, q1, "archive", 8, 8)...)
	waitUntil(t, "the second batch read", func() bool { return q1.Stats().Pending["archive"] == len(items) })
	time.Sleep(100 * time.Millisecond) // for the loop to take it

	q2 := openReplica(t, c, "archive", nil)
	deliverFrom(t, q2, "archive", fileSink(t, paths[1]), p, nil)
	written := func() map[string][]int {
		by := map[string][]int{}
		for i, path := range paths {
			b, err := os.ReadFile(path)
			if err != nil {
				continue
			}
			for _, line := range strings.SplitAfter(string(b), "\n") {
				if !strings.HasSuffix(line, "\n") {
					break // none, or a line being written
				}
				var ev event.Event
				if err := ev.UnmarshalJSON([]byte(line)); err != nil {
					t.Fatalf("%s: %v", path, err)
				}
				by[ev.ID()] = append(by[ev.ID()], i+1)
			}
		}
		return by
	}
	waitUntil(t, "the second replica writing what moved to it", func() bool { return len(written()) > 0 })
	if err := os.Remove(blocker); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "every lead written", func() bool { return len(written()) == len(items) })
	time.Sleep(time.Second) // any late write's time to come
	by, count := written(), map[int]int{}
	for _, it := range items {
		if ws := by[it.ID]; len(ws) != 1 {
			t.Errorf("%s written %d times, by replicas %v", it.ID, len(ws), ws)
		} else {
			count[ws[0]]++
		}
	}
	if count[1] == 0 || count[2] == 0 {
		t.Errorf("written %d by the first replica and %d by the second: want some by each", count[1], count[2])
	}
	if strings.Contains(logs.String(), "deliveries still under way") {
		t.Errorf("the rebalance waited for batches that were not under way:\n%s", logs.String())
	}
}

// An event being retried when its Kafka queue replica restarts keeps the
// attempts it spent: retry.max_attempts counts across the restart, and
// the event is dead-lettered after max_attempts requests in all.
func TestMaxAttemptsHoldAcrossAKafkaQueueRestart(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "ingress", "ingress.deadletter"), kfake.GroupMinSessionTimeout(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	down := newCRM(t, 503)
	policy := Policy{
		Retry:          Retry{MaxAttempts: 4, InitialBackoff: 300 * time.Millisecond, MaxBackoff: 300 * time.Millisecond},
		CircuitBreaker: CircuitBreaker{Off: true},
	}

	q1 := openReplica(t, c, "crm", nil)
	e1 := New(q1, nil, nil)
	seen := &recorded{}
	e1.Observe(seen)
	if err := e1.Start("crm", httpSink(t, down.srv.URL), policy); err != nil {
		t.Fatal(err)
	}
	if err := q1.Subscribe("crm"); err != nil {
		t.Fatal(err)
	}
	enqueueLeads(t, q1, "crm", 0, 1)
	waitUntil(t, "two failed attempts", func() bool {
		seen.mu.Lock()
		defer seen.mu.Unlock()
		return len(seen.calls) == 2
	})
	time.Sleep(50 * time.Millisecond) // the second attempt's count reaches the queue
	e1.StopAll(context.Background())
	if err := q1.Close(); err != nil {
		t.Fatal(err)
	}
	if n := len(down.requests()); n != 2 {
		t.Fatalf("%d requests before the restart, want 2", n)
	}

	q2 := openReplica(t, c, "crm", nil)
	deliverFrom(t, q2, "crm", httpSink(t, down.srv.URL), policy, nil)
	waitUntil(t, "the lead dead-lettered", func() bool { return q2.Stats().DeadLetters == 1 })
	time.Sleep(700 * time.Millisecond) // no retry after that
	if n := len(down.requests()); n != 4 {
		t.Errorf("%d requests in all, want 4 (max_attempts)", n)
	}
}
