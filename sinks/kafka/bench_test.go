package kafka

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
)

// The benchmarks send batches of benchBatch events to an in-process broker,
// once through the sink (binding, templates, error mapping) and once as the
// same ready-made messages through a bare kafka-go Writer configured alike,
// so the difference is the sink's own cost. Each runs with one caller at a
// time and with several, as the delivery loop's concurrency would.
// ns/op is per batch of benchBatch events.
//
//	go test ./sinks/kafka -run '^$' -bench . -benchtime 3s
const benchBatch = 500

var benchCallers = []int{1, 8}

func benchEvents() []*event.Event {
	evs := make([]*event.Event, benchBatch)
	for i := range evs {
		evs[i] = leadEvent(fmt.Sprintf("lead-%d", i), "helloclient")
	}
	return evs
}

func benchCluster(b *testing.B) []string {
	c := newCluster(b, kfake.SeedTopics(3, "webhooks.helloclient"))
	return c.ListenAddrs()
}

func reportRate(b *testing.B) {
	b.ReportMetric(float64(b.N)*benchBatch/b.Elapsed().Seconds(), "events/s")
}

func runCallers(b *testing.B, callers int, send func() error) {
	b.SetParallelism(1)
	if callers > 1 {
		b.SetParallelism((callers + 1) / 2) // RunParallel runs parallelism × GOMAXPROCS goroutines
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := send(); err != nil {
				b.Error(err)
				return
			}
		}
	})
	reportRate(b)
}

func BenchmarkDeliverBatch(b *testing.B) {
	brokers := benchCluster(b)
	evs := benchEvents()
	for _, callers := range benchCallers {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			s := newSink(b, brokers, "webhooks.{{ .Extensions.bridgesource }}", nil)
			runCallers(b, callers, func() error {
				for _, err := range s.DeliverBatch(context.Background(), evs) {
					if err != nil {
						return err
					}
				}
				return nil
			})
		})
	}
}

func BenchmarkKafkaGoDirect(b *testing.B) {
	brokers := benchCluster(b)
	msgs := make([]kafkago.Message, benchBatch)
	for i, ev := range benchEvents() {
		m, err := ToMessage(ev, ModeBinary)
		if err != nil {
			b.Fatal(err)
		}
		m.Topic, m.Key = "webhooks.helloclient", []byte(ev.Subject())
		msgs[i] = m
	}
	for _, callers := range benchCallers {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			w := &kafkago.Writer{
				Addr:         kafkago.TCP(brokers...),
				Balancer:     &kafkago.Murmur2Balancer{},
				RequiredAcks: kafkago.RequireAll,
				BatchSize:    DefaultBatchMessages,
				BatchBytes:   int64(DefaultBatchBytes),
				BatchTimeout: DefaultLinger,
				MaxAttempts:  writerMaxAttempts,
				Transport:    &kafkago.Transport{},
			}
			defer w.Close()
			runCallers(b, callers, func() error {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				return w.WriteMessages(ctx, msgs...)
			})
		})
	}
}

// BenchmarkToMessage is the binding alone, per event.
func BenchmarkToMessage(b *testing.B) {
	ev := leadEvent("lead-1", "helloclient")
	for _, mode := range []Mode{ModeBinary, ModeStructured} {
		b.Run(string(mode), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ToMessage(ev, mode); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkMessage is the sink's whole per-event work before the write:
// binding, topic template and key, per event.
func BenchmarkMessage(b *testing.B) {
	s := newSink(b, []string{"127.0.0.1:1"}, "webhooks.{{ .Extensions.bridgesource }}", nil)
	ev := leadEvent("lead-1", "helloclient")
	var sources sourceStrings
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.message(ev, &sources); err != nil {
			b.Fatal(err)
		}
	}
}
