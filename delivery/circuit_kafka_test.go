package delivery

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/hookbridge/hookbridge/metrics"
	kafkasink "github.com/hookbridge/hookbridge/sinks/kafka"
	"github.com/hookbridge/hookbridge/tmpl"
)

// The Kafka sink starts a batch before the one before it is answered. When
// the broker refuses every produce request (NOT_ENOUGH_REPLICAS) for longer
// than the retry schedule lasts, the breaker holds the batches, started and
// not: nothing is dead-lettered, and every event reaches the topic once the
// broker takes them again. A batch taken while the one before it awaits
// its retry must not be the probe: its answer would wait behind that retry,
// which waits for the probe's result.
func TestCircuitBreakerHoldsAPipelinedSink(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "events"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	var down atomic.Bool
	var refused atomic.Int64
	c.ControlKey(int16(kmsg.Produce), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if !down.Load() {
			return nil, nil, false
		}
		req := kreq.(*kmsg.ProduceRequest)
		resp := req.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range req.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = kerr.NotEnoughReplicas.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		refused.Add(1)
		return resp, nil, true
	})

	q := openQueue(t, t.TempDir())
	defer q.Close()
	const n = 15 // three batches
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
	m := metrics.New()
	e := New(q, nil, m)
	p := fastPolicy(2)
	p.BatchSize = 5
	p.BatchWait = time.Second // each five enqueued one by one make one batch
	p.CircuitBreaker = CircuitBreaker{Failures: 1, Cooldown: 300 * time.Millisecond, MaxCooldown: 300 * time.Millisecond}
	if err := e.Start("kafka", sink, p); err != nil {
		t.Fatal(err)
	}
	defer e.StopAll(context.Background())

	batch := func(first int) {
		for i := first; i < first+5; i++ {
			enqueue(t, q, fmt.Sprint("e", i), "kafka")
		}
	}
	batch(0)
	waitUntil(t, "the first batch delivered", func() bool { return q.Stats().Pending["kafka"] == 0 })
	down.Store(true)
	batch(5)
	waitUntil(t, "the breaker to open", func() bool { return metricValue(t, m, "hookbridge_sink_circuit_openings_total", "kafka") == 1 })
	batch(10) // taken while the second awaits its retry
	time.Sleep(2 * time.Second)
	if st := q.Stats(); st.DeadLetters != 0 {
		t.Fatalf("%d events dead-lettered during the outage", st.DeadLetters)
	}
	t.Logf("%d produce requests refused during the outage", refused.Load())
	down.Store(false)
	waitUntil(t, "the queue to empty", func() bool { return q.Stats().Pending["kafka"] == 0 })
	if st := q.Stats(); st.DeadLetters != 0 {
		t.Errorf("%d dead letters", st.DeadLetters)
	}
	r := kafkago.NewReader(kafkago.ReaderConfig{Brokers: c.ListenAddrs(), Topic: "events", Partition: 0, MaxWait: 50 * time.Millisecond})
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	seen := map[string]int{}
	for len(seen) < n {
		msg, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("after %d events: %v", len(seen), err)
		}
		for _, h := range msg.Headers {
			if h.Key == "ce_id" {
				seen[string(h.Value)]++
			}
		}
	}
	if got := metricValue(t, m, "hookbridge_sink_circuit_state", "kafka"); got != 0 {
		t.Errorf("hookbridge_sink_circuit_state = %v after recovery, want 0 (closed)", got)
	}
}
