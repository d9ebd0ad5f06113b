package kafka

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"
	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
)

// bindingEvents are events with every shape of data the binding must carry.
func bindingEvents() map[string]*event.Event {
	withData := func(id, contentType string, data []byte) *event.Event {
		ev := leadEvent(id, "crisp")
		ev.SetDataContentType(contentType)
		ev.DataEncoded = data
		return ev
	}
	full := leadEvent("full", "helloclient")
	full.SetDataSchema("https://schemas.example.com/lead.json")
	full.SetExtension("attempts", int32(3))
	full.SetExtension("replay", true)
	full.SetExtension("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")

	noData := leadEvent("nodata", "crisp")
	noData.DataEncoded = nil
	noData.SetDataContentType("")
	noData.SetSubject("")
	noData.SetTime(time.Time{})

	flaggedBase64 := leadEvent("flagged", "crisp")
	flaggedBase64.DataBase64 = true

	return map[string]*event.Event{
		"full":               full,
		"no data":            noData,
		"json with charset":  withData("charset", "application/json; charset=utf-8", []byte(`[1,2,{"a":"é"}]`)),
		"json flagged b64":   flaggedBase64,
		"text":               withData("text", "text/plain", []byte("héllo\nworld")),
		"bytes":              withData("bytes", "application/octet-stream", []byte{0, 0xff, 0xfe, 'x'}),
		"broken json":        withData("broken", "application/json", []byte(`{"unterminated`)),
		"json in capitals":   withData("caps", "Application/JSON", []byte(`{"a":1}`)),
		"pretty json":        withData("pretty", "application/json", []byte("{\n  \"a\": \"x\\ny\",\r\n  \"b\": [1, 2]\n}\n")),
		"unicode attributes": withData("ünï", "text/plain", []byte("x")),
	}
}

func TestToMessageStructuredData(t *testing.T) {
	evs := bindingEvents()
	tests := []struct {
		event     string
		wantField string // data or data_base64, "" for none
		wantData  string // the raw JSON of that field
	}{
		{"full", "data", `{"FirstName":"Ada","Email":"ada@example.com","Score":7}`},
		{"json with charset", "data", `[1,2,{"a":"é"}]`},
		{"json flagged b64", "data", `{"FirstName":"Ada","Email":"ada@example.com","Score":7}`},
		{"text", "data", `"héllo\nworld"`},
		{"bytes", "data_base64", `"AP/+eA=="`},
		{"broken json", "data_base64", `"eyJ1bnRlcm1pbmF0ZWQ="`},
		{"json in capitals", "data_base64", `"eyJhIjoxfQ=="`},
		{"pretty json", "data", `{"a":"x\ny","b":[1,2]}`},
		{"no data", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.event, func(t *testing.T) {
			ev := evs[tc.event]
			before := canonical(t, ev)
			flag := ev.DataBase64
			m, err := ToMessage(ev, ModeStructured)
			if err != nil {
				t.Fatal(err)
			}
			if after := canonical(t, ev); diffCanonical(before, after) != "" || ev.DataBase64 != flag {
				t.Errorf("ToMessage modified the event")
			}
			if strings.ContainsAny(string(m.Value), "\r\n") {
				t.Errorf("the value spans lines:\n%s", m.Value)
			}
			var doc map[string]json.RawMessage
			if err := json.Unmarshal(m.Value, &doc); err != nil {
				t.Fatalf("not JSON: %v\n%s", err, m.Value)
			}
			for _, field := range []string{"data", "data_base64"} {
				got, has := doc[field]
				switch {
				case field == tc.wantField && string(got) != tc.wantData:
					t.Errorf("%s = %s, want %s", field, got, tc.wantData)
				case field != tc.wantField && has:
					t.Errorf("unexpected %s: %s", field, got)
				}
			}
		})
	}
}

func TestToMessageBinaryWithoutData(t *testing.T) {
	m, err := ToMessage(bindingEvents()["no data"], ModeBinary)
	if err != nil {
		t.Fatal(err)
	}
	if m.Value != nil {
		t.Errorf("value = %q; an event without data is a message without a value", m.Value)
	}
	for _, h := range m.Headers {
		switch h.Key {
		case "content-type", "ce_time", "ce_subject", "ce_datacontenttype":
			t.Errorf("header %s for an absent attribute", h.Key)
		}
	}
}

func TestToMessageErrors(t *testing.T) {
	noID := leadEvent("x", "crisp")
	noID.Context.(*event.EventContextV1).ID = ""
	tests := []struct {
		name string
		ev   *event.Event
		mode Mode
		want string
	}{
		{"nil event", nil, ModeBinary, "no event"},
		{"invalid event", noID, ModeBinary, "invalid CloudEvent"},
		{"unknown mode", leadEvent("x", "crisp"), Mode("avro"), "unknown content mode"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ToMessage(tc.ev, tc.mode)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// The sink's path skips sdk-go's full validation (the queue holds events
// its sources made valid) but still refuses an event that lacks a required
// attribute, as ToMessage does.
func TestSinkPathRefusesEventsWithoutRequiredAttributes(t *testing.T) {
	for name, spoil := range map[string]func(*event.EventContextV1){
		"no id":      func(c *event.EventContextV1) { c.ID = "" },
		"blank id":   func(c *event.EventContextV1) { c.ID = " \t" },
		"no type":    func(c *event.EventContextV1) { c.Type = "" },
		"blank type": func(c *event.EventContextV1) { c.Type = "  " },
		"no source":  func(c *event.EventContextV1) { c.Source = types.URIRef{} },
	} {
		for _, mode := range []Mode{ModeBinary, ModeStructured} {
			t.Run(name+"/"+string(mode), func(t *testing.T) {
				ev := leadEvent("x", "crisp")
				spoil(ev.Context.(*event.EventContextV1))
				if _, err := ToMessage(ev, mode); err == nil {
					t.Fatal("ToMessage accepted it")
				}
				_, err := toMessage(ev, mode, new(sourceStrings))
				if err == nil || !strings.Contains(err.Error(), "invalid CloudEvent") {
					t.Fatalf("toMessage: err = %v, want an invalid CloudEvent", err)
				}
			})
		}
	}
}

// A batch's events share a source string only while their sources are
// equal: the remembered one is replaced when the next event's differs.
func TestSourceStringsFollowTheEvent(t *testing.T) {
	var sources sourceStrings
	for _, src := range []string{"https://a.example/x", "https://a.example/x", "https://b.example/x", "/relative", "https://a.example/x?q=1"} {
		ev := leadEvent("x", "crisp")
		ev.SetSource(src)
		m, err := toMessage(ev, ModeBinary, &sources)
		if err != nil {
			t.Fatal(err)
		}
		if got := headerMap(t, m)["ce_source"]; got != src {
			t.Fatalf("ce_source = %q, want %q", got, src)
		}
	}
}

// An event of spec 0.3 goes out as 1.0, the only version the headers name.
func TestToMessageConvertsTo1_0(t *testing.T) {
	ev := event.New(event.CloudEventsVersionV03)
	ev.SetID("old")
	ev.SetType("t")
	ev.SetSource("/s")
	m, err := ToMessage(&ev, ModeBinary)
	if err != nil {
		t.Fatal(err)
	}
	if got := headerMap(t, m)["ce_specversion"]; got != "1.0" {
		t.Errorf("ce_specversion = %q", got)
	}
	if ev.SpecVersion() != event.CloudEventsVersionV03 {
		t.Error("ToMessage changed the caller's event")
	}
}

func hdrs(kv ...string) []kafkago.Header {
	out := make([]kafkago.Header, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, kafkago.Header{Key: kv[i], Value: []byte(kv[i+1])})
	}
	return out
}

func TestFromMessageErrors(t *testing.T) {
	base := []string{"ce_specversion", "1.0", "ce_id", "1", "ce_source", "/s", "ce_type", "t"}
	tests := []struct {
		name    string
		msg     kafkago.Message
		want    string
		notCE   bool
		decodes bool
	}{
		{name: "plain kafka message", msg: kafkago.Message{Value: []byte("hi")}, want: "no ce_specversion", notCE: true},
		{name: "only content-type", msg: kafkago.Message{Headers: hdrs("content-type", "application/json")}, notCE: true, want: "not a CloudEvent"},
		{name: "valid binary", msg: kafkago.Message{Headers: hdrs(base...)}, decodes: true},
		{name: "spec 0.3", msg: kafkago.Message{Headers: hdrs("ce_specversion", "0.3", "ce_id", "1", "ce_source", "/s", "ce_type", "t")}, want: "unsupported specversion"},
		{name: "no id", msg: kafkago.Message{Headers: hdrs("ce_specversion", "1.0", "ce_source", "/s", "ce_type", "t")}, want: "id"},
		{name: "no type", msg: kafkago.Message{Headers: hdrs("ce_specversion", "1.0", "ce_id", "1", "ce_source", "/s")}, want: "type"},
		{name: "bad time", msg: kafkago.Message{Headers: hdrs(append(base, "ce_time", "yesterday")...)}, want: "ce_time"},
		{name: "repeated id", msg: kafkago.Message{Headers: hdrs(append(base, "ce_id", "2")...)}, want: "repeated"},
		{name: "repeated in other case", msg: kafkago.Message{Headers: hdrs(append(base, "CE_ID", "2")...)}, want: "repeated"},
		{name: "bad extension name", msg: kafkago.Message{Headers: hdrs(append(base, "ce_my-ext", "x")...)}, want: "ce_my-ext"},
		{name: "empty extension name", msg: kafkago.Message{Headers: hdrs(append(base, "ce_", "x")...)}, want: "ce_"},
		{name: "not utf-8", msg: kafkago.Message{Headers: append(hdrs(base...), kafkago.Header{Key: "ce_x", Value: []byte{0xff}})}, want: "UTF-8"},
		{name: "structured batch", msg: kafkago.Message{Headers: hdrs("content-type", "application/cloudevents-batch+json"), Value: []byte("[]")}, want: "batched"},
		{name: "structured avro", msg: kafkago.Message{Headers: hdrs("content-type", "application/cloudevents+avro"), Value: []byte("x")}, want: "unsupported event format"},
		{name: "structured not json", msg: kafkago.Message{Headers: hdrs("content-type", "application/cloudevents+json"), Value: []byte("{")}, want: "decoding"},
		{name: "structured without id", msg: kafkago.Message{Headers: hdrs("content-type", "application/cloudevents+json"),
			Value: []byte(`{"specversion":"1.0","source":"/s","type":"t"}`)}, want: "id"},
		{name: "content-type twice", msg: kafkago.Message{Headers: hdrs(append(base, "content-type", "a/b", "Content-Type", "c/d")...)}, want: "repeated"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := FromMessage(tc.msg)
			if tc.decodes {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatalf("decoded %v; want an error", ev)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %q, want it to mention %q", err, tc.want)
			}
			if errors.Is(err, ErrNotCloudEvent) != tc.notCE {
				t.Errorf("errors.Is(ErrNotCloudEvent) = %v, want %v", !tc.notCE, tc.notCE)
			}
		})
	}
}

// Messages written by other producers: header names in other cases, a time
// with an offset, datacontenttype as a ce_ header, a structured content-type
// in capitals. FromMessage and sdk-go read them alike.
func TestFromMessageOtherProducers(t *testing.T) {
	tests := []struct {
		name string
		msg  kafkago.Message
		want map[string]string
	}{
		{
			name: "mixed case headers",
			msg: kafkago.Message{Headers: hdrs("CE_SpecVersion", "1.0", "ce_ID", "a", "ce_source", "/s", "ce_type", "t",
				"Content-Type", "text/plain", "ce_time", "2024-05-01T12:20:30+02:00", "ce_Region", "eu"), Value: []byte("hi")},
			want: map[string]string{"id": "a", "datacontenttype": "text/plain", "time": "2024-05-01T10:20:30Z", "ext:region": "eu", "data": "6869"},
		},
		{
			name: "structured in capitals",
			msg: kafkago.Message{Headers: hdrs("Content-Type", "Application/CloudEvents+JSON; charset=utf-8"),
				Value: []byte(`{"specversion":"1.0","id":"b","source":"/s","type":"t","datacontenttype":"application/json","data":{"x":1},"region":"us"}`)},
			want: map[string]string{"id": "b", "ext:region": "us", "data": "7b2278223a317d"},
		},
		{
			name: "structured with data_base64",
			msg: kafkago.Message{Headers: hdrs("content-type", "application/cloudevents+json"),
				Value: []byte(`{"specversion":"1.0","id":"c","source":"/s","type":"t","data_base64":"AP8="}`)},
			want: map[string]string{"id": "c", "data": "00ff"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ours, err := FromMessage(tc.msg)
			if err != nil {
				t.Fatalf("FromMessage: %v", err)
			}
			theirs, err := sdkDecode(tc.msg)
			if err != nil {
				t.Fatalf("sdk-go: %v", err)
			}
			assertSameEvent(t, "FromMessage vs sdk-go", ours, theirs)
			got := canonical(t, ours)
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("%s = %q, want %q", k, got[k], v)
				}
			}
		})
	}
}

func TestRoundTripWithoutKafka(t *testing.T) {
	for name, ev := range bindingEvents() {
		for _, mode := range []Mode{ModeBinary, ModeStructured} {
			t.Run(name+"/"+string(mode), func(t *testing.T) {
				m, err := ToMessage(ev, mode)
				if err != nil {
					t.Fatal(err)
				}
				got, err := FromMessage(m)
				if err != nil {
					t.Fatalf("FromMessage: %v", err)
				}
				assertSameEvent(t, "round trip", got, ev)
			})
		}
	}
}

// The messages the sink puts on a real broker decode, in both modes, to the
// event that was sent, both with FromMessage and with sdk-go's own binding
// rules: a CloudEvents consumer sees exactly what the bridge sent.
func TestConsumersDecodeWhatTheSinkSent(t *testing.T) {
	c := newCluster(t, kfake.SeedTopics(1, "binary", "structured"))
	brokers := c.ListenAddrs()
	evs := bindingEvents()
	names := make([]string, 0, len(evs))
	batch := make([]*event.Event, 0, len(evs))
	for name, ev := range evs {
		names = append(names, name)
		batch = append(batch, ev)
	}
	for _, mode := range []Mode{ModeBinary, ModeStructured} {
		t.Run(string(mode), func(t *testing.T) {
			s := newSink(t, brokers, string(mode), func(cfg *Config) { cfg.Mode = mode })
			for i, err := range s.DeliverBatch(context.Background(), batch) {
				if err != nil {
					t.Fatalf("%s: %v", names[i], err)
				}
			}
			for i, m := range readTopic(t, brokers, string(mode), len(batch)) {
				ours, err := FromMessage(m)
				if err != nil {
					t.Errorf("%s: FromMessage: %v", names[i], err)
					continue
				}
				theirs, err := sdkDecode(m)
				if err != nil {
					t.Errorf("%s: sdk-go: %v", names[i], err)
					continue
				}
				if err := theirs.Validate(); err != nil {
					t.Errorf("%s: sdk-go decoded an invalid event: %v", names[i], err)
				}
				assertSameEvent(t, names[i]+": FromMessage vs sent", ours, batch[i])
				assertSameEvent(t, names[i]+": sdk-go vs sent", theirs, batch[i])
			}
		})
	}
}
