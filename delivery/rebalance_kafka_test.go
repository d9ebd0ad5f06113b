package delivery

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/hookbridge/hookbridge/eventcodec"
	"github.com/hookbridge/hookbridge/queue"
	"github.com/hookbridge/hookbridge/queue/kafkaqueue"
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
	open := func() *kafkaqueue.Queue {
		q, err := kafkaqueue.Open(kafkaqueue.Options{
			Brokers: c.ListenAddrs(), Topic: "ingress", Group: "g",
			Route:          func(*event.Event) []string { return []string{"crm"} },
			SessionTimeout: 2 * time.Second, CommitInterval: 50 * time.Millisecond,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = q.Close() })
		return q
	}

	q1 := open()
	down := newCRM(t, 503)
	e := New(q1, nil, nil)
	if err := e.Start("crm", httpSink(t, down.srv.URL), Policy{
		Concurrency:    8, // every lead in flight, retried by its own worker
		Retry:          Retry{MaxAttempts: 1000, InitialBackoff: backoff, MaxBackoff: backoff},
		CircuitBreaker: CircuitBreaker{Off: true}, // each delivery on its own schedule
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.StopAll(context.Background()) })
	if err := q1.Subscribe("crm"); err != nil {
		t.Fatal(err)
	}
	var items []queue.Item
	for i := range 8 {
		id := fmt.Sprintf("lead-%d", i)
		ev := sources.NewEvent(id, "com.example.lead", "https://example.com", fmt.Sprintf("sessions/%d", i), time.Now(), []byte(`{"n":1}`))
		b, err := eventcodec.Encode(ev)
		if err != nil {
			t.Fatal(err)
		}
		items = append(items, queue.Item{ID: id, Event: b, Sinks: []string{"crm"}, CloudEvent: ev})
	}
	if _, err := q1.Enqueue(context.Background(), items); err != nil {
		t.Fatal(err)
	}
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
	waitUntil(t, "the second replica handed some leads", func() bool {
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
		return len(moved) > 0
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
	waitUntil(t, "the first replica delivering the leads it kept", func() bool {
		seen := map[string]bool{}
		for _, id := range down.requests()[since:] {
			seen[id] = true
		}
		for _, it := range items {
			if !moved[it.ID] && !seen[it.ID] {
				return false
			}
		}
		return true
	})
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
