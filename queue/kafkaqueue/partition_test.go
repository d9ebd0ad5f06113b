package kafkaqueue

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/hookbridge/hookbridge/queue"
)

// TestReplicasDeliverAConversationFromOne: with two replicas sharing the
// ingress topic, every event of one conversation (source and subject) is
// delivered by the same replica, in the order it was accepted, while
// events without a subject still spread over both.
func TestReplicasDeliverAConversationFromOne(t *testing.T) {
	brokers := newCluster(t, 4)
	q1 := openQueue(t, brokers, nil)
	q2 := openQueue(t, brokers, nil)
	subscribe(t, q1, "a")
	subscribe(t, q2, "a")
	waitMembers(t, brokers, group+".a", 2)

	const conversations, perConversation, loose = 6, 8, 12
	conversationOf := map[string]string{} // event id -> subject
	var evs []*event.Event
	n := 0
	// Interleaved, as chats running at the same time arrive.
	for round := range perConversation {
		for c := range conversations {
			ev := newEvent(n, "t.a")
			ev.SetSubject(fmt.Sprintf("sessions/chat-%d", c))
			conversationOf[ev.ID()] = ev.Subject()
			evs = append(evs, ev)
			n++
			if round < loose/conversations {
				evs = append(evs, newEvent(1000+n, "t.a")) // no subject: placed by id
			}
		}
	}
	for i := range evs { // one Enqueue per request, as ingest does
		enqueue(t, q1, evs[i])
	}

	byReplica := map[*Queue][]queue.Delivery{}
	deadline := time.Now().Add(15 * time.Second)
	for len(byReplica[q1])+len(byReplica[q2]) < len(evs) {
		if time.Now().After(deadline) {
			t.Fatalf("delivered %d + %d of %d", len(byReplica[q1]), len(byReplica[q2]), len(evs))
		}
		for _, q := range []*Queue{q1, q2} {
			ds, err := q.TryNext("a", 100, 0)
			if err != nil {
				t.Fatal(err)
			}
			byReplica[q] = append(byReplica[q], ds...)
			ack(t, q, "a", ds...)
		}
		time.Sleep(10 * time.Millisecond)
	}

	replicaOf := map[string]*Queue{} // subject -> the replica that delivered it
	order := map[string][]string{}   // subject -> ids as delivered
	for _, q := range []*Queue{q1, q2} {
		if len(byReplica[q]) == 0 {
			t.Errorf("a replica got no share")
		}
		for _, id := range idsOf(t, byReplica[q]) {
			subject, ok := conversationOf[id]
			if !ok {
				continue
			}
			if r := replicaOf[subject]; r != nil && r != q {
				t.Errorf("conversation %s delivered by both replicas", subject)
			}
			replicaOf[subject] = q
			order[subject] = append(order[subject], id)
		}
	}
	for subject, ids := range order {
		if !slices.IsSortedFunc(ids, func(a, b string) int { return idNumber(a) - idNumber(b) }) {
			t.Errorf("conversation %s delivered out of order: %v", subject, ids)
		}
	}
	t.Logf("delivered %d by one replica, %d by the other", len(byReplica[q1]), len(byReplica[q2]))
}

// idNumber is n of newEvent's id "ev-<n>".
func idNumber(id string) int {
	var n int
	fmt.Sscanf(id, "ev-%d", &n)
	return n
}
