package kafka

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/hookbridge/hookbridge/tmpl"
)

// newCluster starts an in-process Kafka cluster listening on loopback TCP.
func newCluster(t testing.TB, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	if err != nil {
		t.Fatalf("starting kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// newSink builds a started sink writing to c; edit adjusts the config.
func newSink(t testing.TB, brokers []string, topic string, edit func(*Config)) *Sink {
	t.Helper()
	cfg := NewConfig()
	cfg.Brokers = brokers
	cfg.Topic = tmpl.MustParse(topic)
	cfg.WriteTimeout = 5 * time.Second
	if edit != nil {
		edit(cfg)
	}
	sink, err := cfg.NewSink("test")
	if err != nil {
		t.Fatalf("NewSink: %v", err)
	}
	s := sink.(*Sink)
	if err := s.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Close(ctx)
	})
	return s
}

// readTopic reads n messages from partition 0 of topic, from the start.
func readTopic(t testing.TB, brokers []string, topic string, n int) []kafkago.Message {
	t.Helper()
	r := kafkago.NewReader(kafkago.ReaderConfig{
		Brokers:   brokers,
		Topic:     topic,
		Partition: 0,
		MaxWait:   50 * time.Millisecond,
		MaxBytes:  10 << 20,
	})
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out := make([]kafkago.Message, 0, n)
	for len(out) < n {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("reading %s: got %d of %d messages: %v", topic, len(out), n, err)
		}
		out = append(out, m)
	}
	return out
}

// assertNoMore checks that topic holds no message at offset n.
func assertNoMore(t testing.TB, brokers []string, topic string, n int) {
	t.Helper()
	r := kafkago.NewReader(kafkago.ReaderConfig{
		Brokers: brokers, Topic: topic, Partition: 0, MaxWait: 50 * time.Millisecond,
	})
	defer r.Close()
	if err := r.SetOffset(int64(n)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if m, err := r.ReadMessage(ctx); err == nil {
		t.Fatalf("%s: unexpected message at offset %d: key %q", topic, m.Offset, m.Key)
	} else if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("%s: reading past the end: %v", topic, err)
	}
}

// headerMap returns a message's headers by name and fails on a repeated name.
func headerMap(t testing.TB, m kafkago.Message) map[string]string {
	t.Helper()
	out := make(map[string]string, len(m.Headers))
	for _, h := range m.Headers {
		if _, dup := out[h.Key]; dup {
			t.Errorf("header %s repeated", h.Key)
		}
		out[h.Key] = string(h.Value)
	}
	return out
}

var testTime = time.Date(2024, 5, 1, 10, 20, 30, 123_000_000, time.UTC)

// leadEvent is the kind of event a source makes: JSON data, a subject, the
// bridgesource extension.
func leadEvent(id, source string) *event.Event {
	ev := event.New()
	ev.SetID(id)
	ev.SetType("com.helloclient.lead")
	ev.SetSource("https://helloclient.com/chatbots/ABC123")
	ev.SetSubject("sessions/" + id)
	ev.SetTime(testTime)
	ev.SetDataContentType(event.ApplicationJSON)
	ev.DataEncoded = []byte(`{"FirstName":"Ada","Email":"ada@example.com","Score":7}`)
	ev.SetExtension("bridgesource", source)
	return &ev
}
