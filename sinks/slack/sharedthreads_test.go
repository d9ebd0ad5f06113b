package slack

import (
	"context"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/hookbridge/hookbridge/queue/kafkaqueue"
)

// sharedStates starts a kfake cluster and opens n Kafka queues on it, as
// n replicas of a bridge would, and returns their shared states.
func sharedStates(t *testing.T, n int) []*kafkaqueue.State {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "bridge.ingress"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	var out []*kafkaqueue.State
	for range n {
		q, err := kafkaqueue.Open(kafkaqueue.Options{
			Brokers: c.ListenAddrs(), Topic: "bridge.ingress", Group: "bridge",
			Route: func(*event.Event) []string { return nil },
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = q.Close() })
		out = append(out, q.State())
	}
	return out
}

// TestSharedThreadsAcrossReplicas: two sinks of the same name on two
// replicas, each with a thread_store of its own on disk, keep their threads
// in the replicas' shared state: a conversation started by one goes on in
// its thread from the other, a deleted parent replaced on one is replaced
// for both, and another sink's threads are its own.
func TestSharedThreadsAcrossReplicas(t *testing.T) {
	fake, api := startThreadedSlack(t)
	states := sharedStates(t, 2)
	replica := func(name string, state *kafkaqueue.State) *Sink {
		s := mustSink(t, threadedConfig(api, t.TempDir(), ""), nil)
		s.name = name
		s.UseSharedState(state)
		if err := s.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close(context.Background()) })
		return s
	}
	one, two := replica("slack", states[0]), replica("slack", states[1])
	other := replica("slack-2", states[1])

	deliver(t, one, chat(t, "1", "sessions/a", "hello"))
	deliver(t, two, chat(t, "2", "sessions/a", "from the other replica"))
	deliver(t, other, chat(t, "3", "sessions/a", "another sink"))
	fake.mu.Lock()
	fake.deleted["1795169730.000001"] = true
	fake.gone = "thread_not_found"
	fake.mu.Unlock()
	deliver(t, two, chat(t, "4", "sessions/a", "after the parent was deleted"))
	deliver(t, one, chat(t, "5", "sessions/a", "back on the first"))
	wantPosts(t, fake,
		form("channel", "#sales", "text", "hello"),
		form("channel", "C0SALES", "text", "from the other replica", "thread_ts", "1795169730.000001"),
		form("channel", "#sales", "text", "another sink"),
		form("channel", "C0SALES", "text", "after the parent was deleted", "thread_ts", "1795169730.000001"),
		form("channel", "#sales", "text", "after the parent was deleted"),
		form("channel", "C0SALES", "text", "back on the first", "thread_ts", "1795169730.000004"),
	)
}

// TestSharedThreadsExpire: a shared thread lives thread_ttl past its
// latest message, whichever replica posted it, and expire deletes the
// sink's expired threads from the shared state, for every replica.
func TestSharedThreadsExpire(t *testing.T) {
	fake, api := startThreadedSlack(t)
	states := sharedStates(t, 2)
	c := &clock{now: time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)}
	sinks := make([]*Sink, 2)
	for i := range sinks {
		s := mustSink(t, threadedConfig(api, t.TempDir(), "thread_ttl: 1h"), nil)
		s.now = c.Now
		s.UseSharedState(states[i])
		t.Cleanup(func() { _ = s.Close(context.Background()) })
		sinks[i] = s
	}
	deliver(t, sinks[0], chat(t, "1", "sessions/a", "a"), chat(t, "2", "sessions/b", "b"))
	c.Add(40 * time.Minute)
	deliver(t, sinks[1], chat(t, "3", "sessions/a", "a again")) // a's thread lives on
	c.Add(30 * time.Minute)                                     // b's is 70 minutes old, a's 30
	deliver(t, sinks[1], chat(t, "4", "sessions/b", "b after an hour"))
	wantPosts(t, fake,
		form("channel", "#sales", "text", "a"),
		form("channel", "#sales", "text", "b"),
		form("channel", "C0SALES", "text", "a again", "thread_ts", "1795169730.000001"),
		form("channel", "#sales", "text", "b after an hour"),
	)

	c.Add(45 * time.Minute) // a's thread is 75 minutes old, b's new one 45
	st, err := sinks[0].threads()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if n, err := st.expire(ctx); err != nil || n != 1 {
		t.Fatalf("expire = %d, %v; want a's thread deleted", n, err)
	}
	var left []string
	if err := states[1].Each(ctx, "slack-threads/", func(key string, _ []byte) bool {
		left = append(left, key)
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if len(left) != 1 || left[0] != "slack-threads/slack-sales/#sales\x00sessions/b" {
		t.Errorf("the shared state holds %q after expiry, want b's thread alone", left)
	}
}
