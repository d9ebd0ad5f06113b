package kafkaqueue

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/hookbridge/hookbridge/internal/testlog"
)

// waitLag waits until sink's lag has been measured at n, and returns when.
func waitLag(t testing.TB, q *Queue, sink string, n int64) time.Time {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		records, updated := q.Lag()
		got, ok := records[sink]
		if ok && got == n && !updated[sink].IsZero() {
			return updated[sink]
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: lag %d (measured: %v, at %v), want %d", sink, got, ok, updated[sink], n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func fastLag(o *Options) { o.LagInterval = 20 * time.Millisecond }

// A sink's lag is the records after its group's committed offsets, over
// every partition: deliveries held and not acked count, and it falls to 0
// once they are acked and committed. Another sink's group, which had
// nothing to deliver, has none. An unsubscribed sink leaves the figures,
// and Close stops the measurements.
func TestLag(t *testing.T) {
	brokers := newCluster(t, 3)
	q := openQueue(t, brokers, fastLag)
	subscribe(t, q, "a", "b")
	if _, updated := q.Lag(); len(updated) != 2 {
		t.Fatalf("subscribed sinks in Lag: %v, want a and b", updated)
	}
	waitCommittedAll(t, brokers, group+".a", map[int]int64{0: 0, 1: 0, 2: 0}) // placed
	enqueue(t, q, newEvents(12, "t.a")...)
	ends := endOffsets(t, brokers)
	if ends[0] == 0 || ends[1] == 0 || ends[2] == 0 {
		t.Fatalf("events not spread over every partition: %v", ends)
	}
	ds := take(t, q, "a", 12, 15*time.Second) // held, not acked
	first := waitLag(t, q, "a", 12)
	waitLag(t, q, "b", 0)
	// It is measured again and again, and stays.
	deadline := time.Now().Add(5 * time.Second)
	for {
		records, updated := q.Lag()
		if records["a"] != 12 {
			t.Fatalf("lag of a %d with 12 deliveries not acked", records["a"])
		}
		if updated["a"].After(first) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("lag of a last measured at %v, not since %v", updated["a"], first)
		}
		time.Sleep(5 * time.Millisecond)
	}

	ack(t, q, "a", ds...)
	waitCommittedAll(t, brokers, group+".a", ends)
	waitLag(t, q, "a", 0)

	q.Unsubscribe("a")
	records, updated := q.Lag()
	if _, ok := records["a"]; ok {
		t.Errorf("lag of a after Unsubscribe: %v", records)
	}
	if _, ok := updated["a"]; ok {
		t.Errorf("lag of a measured after Unsubscribe: %v", updated)
	}
	time.Sleep(10 * q.o.LagInterval)
	if records, _ := q.Lag(); len(records) != 1 || records["b"] != 0 {
		t.Errorf("lag after a left: %v, want b alone", records)
	}

	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-q.lagDone:
	default:
		t.Error("lag measurements still running after Close")
	}
	if records, updated := q.Lag(); len(records) != 0 || len(updated) != 0 {
		t.Errorf("lag after Close: %v %v", records, updated)
	}
}

// A partition the group has no committed offset on counts from its first
// record, where the group's reader starts it; one with an offset counts
// from there.
func TestLagOfPartitionWithoutOffset(t *testing.T) {
	brokers := newCluster(t, 3)
	q := openQueue(t, brokers, fastLag)
	enqueue(t, q, newEvents(30, "t.a")...)
	ends := endOffsets(t, brokers)
	if ends[0] < 2 || ends[1] == 0 || ends[2] == 0 {
		t.Fatalf("events not spread over every partition: %v", ends)
	}
	// The group has read partition 0 but for its last record, and never
	// partitions 1 and 2 (added after it started, say).
	res, err := client(brokers).OffsetCommit(context.Background(), &kafkago.OffsetCommitRequest{
		Addr: kafkago.TCP(brokers[0]), GroupID: group + ".a", GenerationID: -1,
		Topics: map[string][]kafkago.OffsetCommit{ingress: {{Partition: 0, Offset: ends[0] - 1}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range res.Topics[ingress] {
		if p.Error != nil {
			t.Fatal(p.Error)
		}
	}
	subscribe(t, q, "a")
	want := 1 + ends[1] + ends[2]
	take(t, q, "a", int(want), 15*time.Second) // held, not acked
	waitLag(t, q, "a", want)
}

// When the brokers go away the last lag stays, its time stops moving, and
// the failure is logged once, not at every measurement.
func TestLagKeptWhenBrokersGoAway(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, ingress), kfake.SeedTopics(1, deadLetter),
		kfake.GroupMinSessionTimeout(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	var logs testlog.Buffer
	q := openQueue(t, c.ListenAddrs(), func(o *Options) {
		fastLag(o)
		o.WriteTimeout = 500 * time.Millisecond
		o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	subscribe(t, q, "a")
	waitCommitted(t, c.ListenAddrs(), group+".a", 0)
	enqueue(t, q, newEvents(5, "t.a")...)
	take(t, q, "a", 5, 15*time.Second)
	waitLag(t, q, "a", 5)

	c.Close()
	const failed = "measuring the sinks' consumer-group lag; the last figures stay"
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), failed) {
		if time.Now().After(deadline) {
			t.Fatalf("no failure logged with the brokers gone:\n%s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	_, updated := q.Lag()
	last := updated["a"]
	time.Sleep(2 * time.Second) // many measurements, each failing
	records, updated := q.Lag()
	if records["a"] != 5 {
		t.Errorf("lag of a %d with the brokers gone, want the last figure, 5", records["a"])
	}
	if !updated["a"].Equal(last) {
		t.Errorf("lag of a measured at %v with the brokers gone (last success %v)", updated["a"], last)
	}
	if n := strings.Count(logs.String(), failed); n != 1 {
		t.Errorf("failure logged %d times, want once:\n%s", n, logs.String())
	}
}
