package queue_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/hookbridge/hookbridge/queue"
)

// A webhook handler enqueues and answers 2xx once Enqueue returns; a
// delivery loop per sink takes what is pending and settles each delivery.
func Example() {
	dir, err := os.MkdirTemp("", "queue-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	store, err := queue.Open(queue.Options{Path: dir})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()

	ctx := context.Background()
	for range 2 { // the provider retries the same delivery
		dup, err := store.Enqueue(ctx, []queue.Item{{
			ID:    "lead-42",
			Event: []byte(`{"specversion":"1.0","id":"lead-42","type":"com.helloclient.lead"}`),
			Sinks: []string{"slack-sales", "crm"},
		}})
		if err != nil {
			log.Fatal(err) // answer 503: the provider retries
		}
		fmt.Println("duplicate:", dup[0])
	}

	deliveries, err := store.Next(ctx, "slack-sales", 100, 0)
	if err != nil {
		log.Fatal(err)
	}
	for _, d := range deliveries {
		// Send d.Event; on success:
		if err := store.Ack(d.Sink, d.Seq); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Println("delivered to slack-sales:", len(deliveries))
	fmt.Println("pending for crm:", store.Stats().Pending["crm"])
	// Output:
	// duplicate: false
	// duplicate: true
	// delivered to slack-sales: 1
	// pending for crm: 1
}
