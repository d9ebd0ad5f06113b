package kafka

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/hookbridge/hookbridge/sinks"
	"github.com/hookbridge/hookbridge/tmpl"
)

func TestBinaryModeOnTheWire(t *testing.T) {
	c := newCluster(t, kfake.SeedTopics(1, "events"))
	brokers := c.ListenAddrs()
	s := newSink(t, brokers, "events", nil)

	ev := leadEvent("lead-1", "helloclient")
	ev.SetDataSchema("https://schemas.example.com/lead.json")
	ev.SetExtension("attempts", int32(3))
	ev.SetExtension("replay", true)
	if err := s.Deliver(context.Background(), ev); err != nil {
		t.Fatalf("Deliver: %v", err)
	}

	m := readTopic(t, brokers, "events", 1)[0]
	if got, want := string(m.Key), "sessions/lead-1"; got != want {
		t.Errorf("key = %q, want the subject %q", got, want)
	}
	if got, want := string(m.Value), `{"FirstName":"Ada","Email":"ada@example.com","Score":7}`; got != want {
		t.Errorf("value = %s, want the data bytes as they are: %s", got, want)
	}
	want := map[string]string{
		"ce_specversion":  "1.0",
		"ce_id":           "lead-1",
		"ce_source":       "https://helloclient.com/chatbots/ABC123",
		"ce_type":         "com.helloclient.lead",
		"ce_subject":      "sessions/lead-1",
		"ce_time":         "2024-05-01T10:20:30.123Z",
		"ce_dataschema":   "https://schemas.example.com/lead.json",
		"content-type":    "application/json",
		"ce_bridgesource": "helloclient",
		"ce_attempts":     "3",
		"ce_replay":       "true",
	}
	if got := headerMap(t, m); !maps.Equal(got, want) {
		t.Errorf("headers:\n got %v\nwant %v", got, want)
	}
}

func TestStructuredModeOnTheWire(t *testing.T) {
	c := newCluster(t, kfake.SeedTopics(1, "events"))
	brokers := c.ListenAddrs()
	s := newSink(t, brokers, "events", func(cfg *Config) { cfg.Mode = ModeStructured })

	ev := leadEvent("lead-2", "helloclient")
	ev.SetSubject("") // the key falls back to the id
	if err := s.Deliver(context.Background(), ev); err != nil {
		t.Fatalf("Deliver: %v", err)
	}

	m := readTopic(t, brokers, "events", 1)[0]
	if got, want := string(m.Key), "lead-2"; got != want {
		t.Errorf("key = %q, want the id %q", got, want)
	}
	wantHeaders := map[string]string{"content-type": "application/cloudevents+json; charset=UTF-8"}
	if got := headerMap(t, m); !maps.Equal(got, wantHeaders) {
		t.Errorf("headers = %v, want %v", got, wantHeaders)
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(m.Value, &doc); err != nil {
		t.Fatalf("value is not a JSON object: %v\n%s", err, m.Value)
	}
	wantDoc := map[string]string{
		"specversion":     `"1.0"`,
		"id":              `"lead-2"`,
		"source":          `"https://helloclient.com/chatbots/ABC123"`,
		"type":            `"com.helloclient.lead"`,
		"time":            `"2024-05-01T10:20:30.123Z"`,
		"datacontenttype": `"application/json"`,
		"bridgesource":    `"helloclient"`,
		"data":            `{"FirstName":"Ada","Email":"ada@example.com","Score":7}`,
	}
	gotDoc := map[string]string{}
	for k, v := range doc {
		gotDoc[k] = string(v)
	}
	if !maps.Equal(gotDoc, wantDoc) {
		t.Errorf("structured event:\n got %v\nwant %v", gotDoc, wantDoc)
	}
}

func TestKeys(t *testing.T) {
	c := newCluster(t, kfake.SeedTopics(1, "k1", "k2", "k3"))
	brokers := c.ListenAddrs()
	noSubject := leadEvent("id-9", "crisp")
	noSubject.SetSubject("")
	tests := []struct {
		name, topic, key string
		ev               *event.Event
		want             string
	}{
		{name: "default is the subject", topic: "k1", ev: leadEvent("id-1", "crisp"), want: "sessions/id-1"},
		{name: "default without subject is the id", topic: "k2", ev: noSubject, want: "id-9"},
		{name: "template", topic: "k3", key: "{{ .Extensions.bridgesource }}/{{ .Data.Email }}", ev: leadEvent("id-3", "crisp"), want: "crisp/ada@example.com"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newSink(t, brokers, tc.topic, func(cfg *Config) {
				if tc.key != "" {
					cfg.Key = tmpl.MustParse(tc.key)
				}
			})
			if err := s.Deliver(context.Background(), tc.ev); err != nil {
				t.Fatal(err)
			}
			if got := string(readTopic(t, brokers, tc.topic, 1)[0].Key); got != tc.want {
				t.Errorf("key = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestTopicTemplateSplitsOneBatch(t *testing.T) {
	c := newCluster(t, kfake.SeedTopics(1, "webhooks.helloclient", "webhooks.crisp"))
	brokers := c.ListenAddrs()
	s := newSink(t, brokers, "webhooks.{{ .Extensions.bridgesource }}", nil)

	evs := []*event.Event{
		leadEvent("h1", "helloclient"), leadEvent("c1", "crisp"), leadEvent("h2", "helloclient"),
		leadEvent("c2", "crisp"), leadEvent("c3", "crisp"),
	}
	for i, err := range s.DeliverBatch(context.Background(), evs) {
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
	}
	for topic, wantIDs := range map[string][]string{
		"webhooks.helloclient": {"h1", "h2"},
		"webhooks.crisp":       {"c1", "c2", "c3"},
	} {
		msgs := readTopic(t, brokers, topic, len(wantIDs))
		for i, m := range msgs {
			if got := headerMap(t, m)["ce_id"]; got != wantIDs[i] {
				t.Errorf("%s[%d]: ce_id = %q, want %q", topic, i, got, wantIDs[i])
			}
		}
		assertNoMore(t, brokers, topic, len(wantIDs))
	}
}

func TestAutoTopicCreation(t *testing.T) {
	c := newCluster(t, kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(1))
	brokers := c.ListenAddrs()
	s := newSink(t, brokers, "created.on.demand", nil)
	if err := s.Deliver(context.Background(), leadEvent("a1", "crisp")); err != nil {
		t.Fatalf("Deliver to a missing topic with auto-creation: %v", err)
	}
	readTopic(t, brokers, "created.on.demand", 1)
}

// A topic that does not exist fails its own events (retryably: it may be
// created) and not the other topics' events of the same batch.
func TestMissingTopicFailsOnlyItsEvents(t *testing.T) {
	c := newCluster(t, kfake.SeedTopics(1, "webhooks.crisp"))
	brokers := c.ListenAddrs()
	s := newSink(t, brokers, "webhooks.{{ .Extensions.bridgesource }}", func(cfg *Config) {
		cfg.AllowAutoTopicCreation = false
		cfg.WriteTimeout = 2 * time.Second
	})
	evs := []*event.Event{leadEvent("c1", "crisp"), leadEvent("x1", "nosuchsource"), leadEvent("c2", "crisp")}
	errs := s.DeliverBatch(context.Background(), evs)
	if errs[0] != nil || errs[2] != nil {
		t.Errorf("events to the existing topic failed: %v, %v", errs[0], errs[2])
	}
	if errs[1] == nil {
		t.Fatal("event to a missing topic succeeded")
	}
	if sinks.IsPermanent(errs[1]) {
		t.Errorf("a missing topic is permanent (%v); it may be created, so retry", errs[1])
	}
	readTopic(t, brokers, "webhooks.crisp", 2)
}

func TestPermanentErrorsAreTheirEventsOnly(t *testing.T) {
	c := newCluster(t, kfake.SeedTopics(1, "events"))
	brokers := c.ListenAddrs()
	s := newSink(t, brokers, "{{ .Extensions.dest }}", func(cfg *Config) {
		cfg.Key = tmpl.MustParse(`{{ if eq .ID "badkey" }}{{ fail "no key for this one" }}{{ end }}{{ .ID }}`)
		cfg.BatchBytes = 4096
	})
	withDest := func(ev *event.Event, dest string) *event.Event {
		ev.SetExtension("dest", dest)
		return ev
	}
	big := withDest(leadEvent("big", "crisp"), "events")
	big.DataEncoded = []byte(`"` + strings.Repeat("x", 5000) + `"`)
	invalid := withDest(leadEvent("invalid", "crisp"), "events")
	invalid.Context.(*event.EventContextV1).ID = "" // an event without an id

	evs := []*event.Event{
		withDest(leadEvent("ok1", "crisp"), "events"),
		withDest(leadEvent("badtopic", "crisp"), "bad topic!"),
		withDest(leadEvent("notopic", "crisp"), ""),
		withDest(leadEvent("badkey", "crisp"), "events"),
		big,
		invalid,
		withDest(leadEvent("ok2", "crisp"), "events"),
	}
	errs := s.DeliverBatch(context.Background(), evs)
	wantPermanent := map[string]string{
		"badtopic": "Kafka allows only",
		"notopic":  "empty",
		"badkey":   "no key for this one",
		"big":      "batch_bytes",
		"invalid":  "id",
	}
	for i, ev := range evs {
		id := ev.ID()
		if i == 5 {
			id = "invalid"
		}
		want, bad := wantPermanent[id]
		switch {
		case !bad && errs[i] != nil:
			t.Errorf("%s: %v", id, errs[i])
		case bad && !sinks.IsPermanent(errs[i]):
			t.Errorf("%s: error %v is not permanent", id, errs[i])
		case bad && !strings.Contains(errs[i].Error(), want):
			t.Errorf("%s: error %q does not mention %q", id, errs[i], want)
		}
	}
	msgs := readTopic(t, brokers, "events", 2)
	if a, b := string(msgs[0].Key), string(msgs[1].Key); a != "ok1" || b != "ok2" {
		t.Errorf("delivered keys %q, %q; want ok1, ok2", a, b)
	}
	assertNoMore(t, brokers, "events", 2)
}

// The broker's own size limit (smaller than batch_bytes) is permanent too.
func TestBrokerMessageTooLargeIsPermanent(t *testing.T) {
	c := newCluster(t, kfake.SeedTopics(1, "events"), kfake.BrokerConfigs(map[string]string{"message.max.bytes": "2000"}))
	brokers := c.ListenAddrs()
	s := newSink(t, brokers, "events", nil)
	big := leadEvent("big", "crisp")
	big.DataEncoded = []byte(`"` + strings.Repeat("x", 3000) + `"`)
	err := s.Deliver(context.Background(), big)
	if !sinks.IsPermanent(err) || !errors.Is(err, kafkago.MessageSizeTooLarge) {
		t.Fatalf("err = %v; want a permanent MessageSizeTooLarge", err)
	}
	if err := s.Deliver(context.Background(), leadEvent("small", "crisp")); err != nil {
		t.Fatalf("a small event after the large one: %v", err)
	}
}

func TestClusterDownIsRetryable(t *testing.T) {
	c := newCluster(t, kfake.SeedTopics(1, "events"))
	brokers := c.ListenAddrs()
	s := newSink(t, brokers, "events", func(cfg *Config) { cfg.WriteTimeout = 2 * time.Second })
	if err := s.Deliver(context.Background(), leadEvent("before", "crisp")); err != nil {
		t.Fatalf("Deliver with the cluster up: %v", err)
	}
	c.Close()

	start := time.Now()
	errs := s.DeliverBatch(context.Background(), []*event.Event{leadEvent("a", "crisp"), leadEvent("b", "crisp")})
	for i, err := range errs {
		if err == nil {
			t.Errorf("event %d delivered to a stopped cluster", i)
		} else if sinks.IsPermanent(err) {
			t.Errorf("event %d: a stopped cluster gave a permanent error: %v", i, err)
		}
	}
	if took := time.Since(start); took > 4*time.Second {
		t.Errorf("failing took %v, more than write_timeout allows", took)
	}

	// The retry the delivery loop makes once the broker is back succeeds on
	// the same sink.
	_, port, err := net.SplitHostPort(brokers[0])
	if err != nil {
		t.Fatal(err)
	}
	p, _ := strconv.Atoi(port)
	newCluster(t, kfake.Ports(p), kfake.SeedTopics(1, "events"))
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := s.Deliver(context.Background(), leadEvent("after", "crisp"))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still failing after the broker came back: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got := headerMap(t, readTopic(t, brokers, "events", 1)[0])["ce_id"]; got != "after" {
		t.Errorf("the new broker holds %q, want the retried event", got)
	}
}

func TestContextCancelIsRetryable(t *testing.T) {
	c := newCluster(t, kfake.SeedTopics(1, "events"))
	s := newSink(t, c.ListenAddrs(), "events", nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := s.Deliver(ctx, leadEvent("a", "crisp"))
	if err == nil || sinks.IsPermanent(err) {
		t.Fatalf("err = %v; want a retryable error", err)
	}
}

func TestCloseLifecycle(t *testing.T) {
	ctx := context.Background()
	cfg := NewConfig()
	cfg.Brokers = []string{"127.0.0.1:1"} // nothing listens: nothing may dial
	cfg.Topic = tmpl.MustParse("events")
	sink, err := cfg.NewSink("lifecycle")
	if err != nil {
		t.Fatal(err)
	}
	if err := sink.Close(ctx); err != nil {
		t.Fatalf("Close before Start: %v", err)
	}
	if err := sink.Close(ctx); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	err = sink.Deliver(ctx, leadEvent("late", "crisp"))
	if err == nil || sinks.IsPermanent(err) {
		t.Fatalf("Deliver after Close: %v; want a retryable error", err)
	}

	c := newCluster(t, kfake.SeedTopics(1, "events"))
	s := newSink(t, c.ListenAddrs(), "events", nil)
	if err := s.Deliver(ctx, leadEvent("a", "crisp")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Deliver(ctx, leadEvent("b", "crisp")); err == nil || sinks.IsPermanent(err) {
		t.Fatalf("Deliver after Close: %v; want a retryable error", err)
	}
}

// Deliver starts the sink itself when the caller did not.
func TestDeliverWithoutStart(t *testing.T) {
	c := newCluster(t, kfake.SeedTopics(1, "events"))
	cfg := NewConfig()
	cfg.Brokers = c.ListenAddrs()
	cfg.Topic = tmpl.MustParse("events")
	sink, err := cfg.NewSink("lazy")
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close(context.Background())
	if err := sink.Deliver(context.Background(), leadEvent("a", "crisp")); err != nil {
		t.Fatal(err)
	}
	readTopic(t, c.ListenAddrs(), "events", 1)
}

func TestCompressionCodecs(t *testing.T) {
	c := newCluster(t, kfake.SeedTopics(1, "none", "gzip", "snappy", "lz4", "zstd"))
	brokers := c.ListenAddrs()
	for _, codec := range compressions {
		t.Run(codec, func(t *testing.T) {
			s := newSink(t, brokers, codec, func(cfg *Config) { cfg.Compression = codec })
			evs := []*event.Event{leadEvent("a", "crisp"), leadEvent("b", "crisp")}
			for _, err := range s.DeliverBatch(context.Background(), evs) {
				if err != nil {
					t.Fatal(err)
				}
			}
			for i, m := range readTopic(t, brokers, codec, 2) {
				if got, want := string(m.Value), string(evs[i].Data()); got != want {
					t.Errorf("value %d = %s, want %s", i, got, want)
				}
			}
		})
	}
}

// kafka-go refuses a whole WriteMessages call for one message over
// BatchBytes; the sink takes that message out and sends the rest.
func TestWriteDropsWhatKafkaGoRefuses(t *testing.T) {
	c := newCluster(t, kfake.SeedTopics(1, "events"))
	brokers := c.ListenAddrs()
	s := newSink(t, brokers, "events", nil)
	w := &kafkago.Writer{
		Addr: kafkago.TCP(brokers...), BatchBytes: 1000, BatchTimeout: time.Millisecond,
		RequiredAcks: kafkago.RequireAll, Async: true, Completion: completed,
	}
	defer w.Close()
	msg := func(key string, size int) kafkago.Message {
		return kafkago.Message{Topic: "events", Key: []byte(key), Value: []byte(strings.Repeat("v", size))}
	}
	msgs := []kafkago.Message{msg("a", 10), msg("huge1", 2000), msg("b", 10), msg("huge2", 3000), msg("c", 10)}
	errs := s.start(context.Background(), w, msgs)(context.Background())
	for i, err := range errs {
		huge := strings.HasPrefix(string(msgs[i].Key), "huge")
		if huge != sinks.IsPermanent(err) || (!huge && err != nil) {
			t.Errorf("%s: err = %v", msgs[i].Key, err)
		}
	}
	got := readTopic(t, brokers, "events", 3)
	for i, want := range []string{"a", "b", "c"} {
		if string(got[i].Key) != want {
			t.Errorf("message %d key = %q, want %q", i, got[i].Key, want)
		}
	}
}

// StartBatch hands a batch to the producer without waiting for the answer to
// the batch before it, and the broker gets the batches in the order started.
func TestStartBatchDoesNotWaitForTheBatchBefore(t *testing.T) {
	c := newCluster(t, kfake.SeedTopics(1, "events"))
	hold := make(chan struct{})
	var produces atomic.Int32
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		if produces.Add(1) == 1 {
			c.SleepControl(func() { <-hold })
		}
		c.KeepControl()
		return nil, nil, false
	})
	brokers := c.ListenAddrs()
	s := newSink(t, brokers, "events", nil)
	ctx := context.Background()
	batch := func(prefix string) []*event.Event {
		return []*event.Event{leadEvent(prefix+"1", "crisp"), leadEvent(prefix+"2", "crisp"), leadEvent(prefix+"3", "crisp")}
	}
	start := func(evs []*event.Event) func(context.Context) []error {
		started := make(chan func(context.Context) []error, 1)
		go func() { started <- s.StartBatch(ctx, evs) }()
		select {
		case wait := <-started:
			return wait
		case <-time.After(5 * time.Second):
			close(hold)
			t.Fatal("StartBatch waited for the broker")
			return nil
		}
	}

	waitA := start(batch("a"))
	deadline := time.Now().Add(5 * time.Second)
	for produces.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if produces.Load() == 0 {
		t.Fatal("the first batch never reached the broker")
	}
	waitB := start(batch("b")) // while the broker holds the first
	answered := make(chan []error, 1)
	go func() { answered <- waitB(ctx) }()
	select {
	case errs := <-answered:
		t.Fatalf("the second batch was answered while the broker held the first: %v", errs)
	case <-time.After(100 * time.Millisecond):
	}
	close(hold)
	for name, errs := range map[string][]error{"first": waitA(ctx), "second": <-answered} {
		for i, err := range errs {
			if err != nil {
				t.Errorf("%s batch, event %d: %v", name, i, err)
			}
		}
	}
	var ids []string
	for _, m := range readTopic(t, brokers, "events", 6) {
		ids = append(ids, headerMap(t, m)["ce_id"])
	}
	if got, want := strings.Join(ids, ","), "a1,a2,a3,b1,b2,b3"; got != want {
		t.Errorf("topic holds %s, want %s", got, want)
	}
}

// A wait that gives up (its context ends) reports a retryable error for
// every event still with the producer.
func TestWaitGivesUpRetryably(t *testing.T) {
	c := newCluster(t, kfake.SeedTopics(1, "events"))
	hold := make(chan struct{})
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.SleepControl(func() { <-hold })
		return nil, nil, false
	})
	s := newSink(t, c.ListenAddrs(), "events", nil)
	t.Cleanup(func() { close(hold) }) // before the sink's Close, which waits for the producer
	wait := s.StartBatch(context.Background(), []*event.Event{leadEvent("a", "crisp"), leadEvent("b", "crisp")})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	for i, err := range wait(ctx) {
		if err == nil || sinks.IsPermanent(err) || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("event %d: err = %v; want a retryable deadline error", i, err)
		}
	}
}

// TestPreviewShowsTheRecordDelivered checks that a dry run's preview shows
// the topic, key, headers and value of the record the sink then writes.
func TestPreviewShowsTheRecordDelivered(t *testing.T) {
	c := newCluster(t, kfake.SeedTopics(1, "webhooks.crisp"))
	brokers := c.ListenAddrs()
	for i, mode := range []Mode{ModeBinary, ModeStructured} {
		t.Run(string(mode), func(t *testing.T) {
			s := newSink(t, brokers, "webhooks.{{ .Extensions.bridgesource }}", func(cfg *Config) {
				cfg.Mode = mode
				cfg.Key = tmpl.MustParse("{{ .Extensions.bridgesource }}/{{ .Data.Email }}")
			})
			ev := leadEvent("preview-"+string(mode), "crisp")
			preview, err := s.Preview(ev)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Deliver(context.Background(), ev); err != nil {
				t.Fatal(err)
			}
			got := readTopic(t, brokers, "webhooks.crisp", i+1)[i]
			head, value, ok := strings.Cut(string(preview), "\n\n")
			if !ok {
				t.Fatalf("no blank line between the headers and the value:\n%s", preview)
			}
			wantHead := []string{"topic: webhooks.crisp", "key: crisp/ada@example.com"}
			for _, h := range got.Headers {
				wantHead = append(wantHead, h.Key+": "+string(h.Value))
			}
			if head != strings.Join(wantHead, "\n") {
				t.Errorf("preview head:\n%s\nwant:\n%s", head, strings.Join(wantHead, "\n"))
			}
			if value != string(got.Value)+"\n" {
				t.Errorf("preview value %q, delivered %q", value, got.Value)
			}
		})
	}
}
