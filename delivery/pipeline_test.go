package delivery

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	kafkasink "github.com/hookbridge/hookbridge/sinks/kafka"
	"github.com/hookbridge/hookbridge/tmpl"
)

// A sink whose client keeps batches in order (Kafka's producer) is handed
// the next full batch while the one before awaits the broker's answer: the
// broker gets a produce request for the second batch while it holds the
// first, and each partition still gets its events in the queue's order.
func TestPipelinedSinkStartsTheNextBatchBeforeTheAnswer(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "events"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	// The broker answers nothing for partition 0 until released. Until
	// then, a produce request for partition 1 can only come from a batch
	// started before the one before it was answered. (kafka-go writes each
	// partition from its own goroutine, so that request may even arrive
	// first.)
	hold := make(chan struct{})
	var released, overlapped atomic.Bool
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		for _, topic := range req.(*kmsg.ProduceRequest).Topics {
			for _, p := range topic.Partitions {
				switch {
				case p.Partition == 0:
					c.SleepControl(func() { <-hold })
				case p.Partition == 1 && !released.Load():
					overlapped.Store(true)
				}
			}
		}
		return nil, nil, false
	})

	// Five events keyed to partition 0, then five to partition 1: the
	// sink's key is the subject, "things/<id>".
	var ids [2][]string
	for i := 0; len(ids[0]) < 5 || len(ids[1]) < 5; i++ {
		id := "e" + strconv.Itoa(i)
		p := (&kafkago.Murmur2Balancer{}).Balance(kafkago.Message{Key: []byte("things/" + id)}, 0, 1)
		if len(ids[p]) < 5 {
			ids[p] = append(ids[p], id)
		}
	}
	q := openQueue(t, t.TempDir())
	defer q.Close()
	for _, part := range ids {
		for _, id := range part {
			enqueue(t, q, id, "kafka")
		}
	}

	cfg := kafkasink.NewConfig()
	cfg.Brokers = c.ListenAddrs()
	cfg.Topic = tmpl.MustParse("events")
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	sink, err := cfg.NewSink("kafka")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sink.Close(context.Background()) })
	e := New(q, nil, nil)
	p := fastPolicy(3)
	p.BatchSize = 5
	if err := e.Start("kafka", sink, p); err != nil {
		t.Fatal(err)
	}
	defer e.StopAll(context.Background())

	deadline := time.Now().Add(10 * time.Second)
	for !overlapped.Load() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	released.Store(true)
	close(hold)
	if !overlapped.Load() {
		t.Fatal("the second batch did not reach the broker while it held the first")
	}
	waitUntil(t, "delivery", func() bool { return q.Stats().Pending["kafka"] == 0 })
	for partition, want := range ids {
		r := kafkago.NewReader(kafkago.ReaderConfig{Brokers: c.ListenAddrs(), Topic: "events", Partition: partition, MaxWait: 50 * time.Millisecond})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		for i, id := range want {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				t.Fatalf("partition %d, message %d: %v", partition, i, err)
			}
			var got string
			for _, h := range m.Headers {
				if h.Key == "ce_id" {
					got = string(h.Value)
				}
			}
			if got != id {
				t.Errorf("partition %d, message %d: ce_id %q, want %q", partition, i, got, id)
			}
		}
		cancel()
		r.Close()
	}
}
