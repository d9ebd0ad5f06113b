package delivery

import (
	"context"
	"fmt"
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
// loop that was retrying it stops at its next attempt, instead of going on
// for as long as its schedule lasts (and delivering it a second time once
// the CRM is back).
func TestRetriesStopWhenTheirPartitionMoves(t *testing.T) {
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
		Retry:          Retry{MaxAttempts: 1000, InitialBackoff: 100 * time.Millisecond, MaxBackoff: 100 * time.Millisecond},
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
	time.Sleep(300 * time.Millisecond) // the first replica's last attempt of each
	before := attempts(moved)
	time.Sleep(time.Second) // ten back-offs
	if after := attempts(moved); after != before {
		t.Errorf("the first replica went on retrying the leads that moved: %d attempts, then %d a second later", before, after)
	}
	kept := map[string]bool{}
	for id := range all {
		if !moved[id] {
			kept[id] = true
		}
	}
	n := attempts(kept)
	waitUntil(t, "the first replica retrying the leads it kept", func() bool { return attempts(kept) > n })
	t.Logf("moved %v", slices.Sorted(func(yield func(string) bool) {
		for id := range moved {
			if !yield(id) {
				return
			}
		}
	}))
}
