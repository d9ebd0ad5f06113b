package eventcodec

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
)

const leadData = `{"event":"lead","lead":{"name":"Ana Kovač","email":"ana@example.com","phone":"+385 91 234 5678","message":"Hi, a quote for 40 seats.\nThanks"},"conversation_id":"conv_99812"}`

func lead() *event.Event {
	ev := event.New()
	ev.SetID("helloclient-lead-8f14e45fceea167a5a36dedd4bea2543")
	ev.SetSource("https://helloclient.com/chatbots/HC-1")
	ev.SetType("com.helloclient.lead")
	ev.SetSubject("sessions/conv_99812")
	ev.SetTime(time.Date(2026, 11, 23, 10, 0, 0, 123456789, time.UTC))
	ev.SetExtension("bridgesource", "helloclient")
	ev.SetExtension("bridgereceived", "2026-11-23T10:00:01Z")
	if err := ev.SetData(event.ApplicationJSON, []byte(leadData)); err != nil {
		panic(err)
	}
	return &ev
}

func jsonOf(t testing.TB, ev *event.Event) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := event.WriteJson(ev, &buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// roundTrip encodes ev, checks which form Encode chose, decodes it and
// checks the event reads back the same as the original, attribute for
// attribute, in its JSON form.
func roundTrip(t testing.TB, ev *event.Event, binaryForm bool) {
	t.Helper()
	b, err := Encode(ev)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(b) > 0 && b[0] == version; got != binaryForm {
		t.Fatalf("binary form %v, want %v: %q", got, binaryForm, b)
	}
	back, err := Decode(b)
	if err != nil {
		t.Fatalf("decode: %v (%q)", err, b)
	}
	if got, want := jsonOf(t, back), jsonOf(t, ev); !bytes.Equal(got, want) {
		t.Fatalf("read back as\n%s\nwant\n%s", got, want)
	}
	if binaryForm && back.DataBase64 != ev.DataBase64 { // (sdk-go's JSON decoder sets it for v0.3 data)
		t.Fatalf("DataBase64 %v, want %v", back.DataBase64, ev.DataBase64)
	}
	shown, err := JSON(b)
	if err != nil || !bytes.Equal(shown, jsonOf(t, ev)) {
		t.Fatalf("JSON = %s, %v; want %s", shown, err, jsonOf(t, ev))
	}
}

func TestRoundTrip(t *testing.T) {
	roundTrip(t, lead(), true)

	bare := event.New()
	bare.SetID("1")
	bare.SetSource("urn:x")
	bare.SetType("t")
	roundTrip(t, &bare, true)

	schema := lead()
	schema.SetDataSchema("https://example.com/schemas/lead.json")
	roundTrip(t, schema, true)

	text := lead()
	if err := text.SetData("text/plain", []byte("plain\ntext, \"quoted\"")); err != nil {
		t.Fatal(err)
	}
	roundTrip(t, text, true)

	b64 := lead()
	if err := b64.SetData("application/octet-stream", []byte{0, 1, 2, 0xff}); err != nil {
		t.Fatal(err)
	}
	b64.DataBase64 = true
	roundTrip(t, b64, true)

	empty := lead()
	empty.DataEncoded = nil
	roundTrip(t, empty, true)
}

// Events the binary form does not hold are kept as structured JSON, as
// before it existed.
func TestOtherEventsStayJSON(t *testing.T) {
	ext := lead()
	ext.SetExtension("attempt", 3) // an integer extension
	roundTrip(t, ext, false)

	old := lead()
	old.SetTime(time.Date(1500, 1, 1, 0, 0, 0, 0, time.UTC))
	roundTrip(t, old, false)

	v03 := lead()
	v03.SetSpecVersion(event.CloudEventsVersionV03)
	roundTrip(t, v03, false)
}

// A queue written before the binary form holds structured JSON: it is read
// as it always was.
func TestDecodeReadsStructuredJSON(t *testing.T) {
	ev := lead()
	back, err := Decode(jsonOf(t, ev))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(jsonOf(t, back), jsonOf(t, ev)) {
		t.Fatalf("read back as %s", jsonOf(t, back))
	}
	if _, err := Decode([]byte(`{"specversion":`)); err == nil {
		t.Fatal("truncated JSON decoded")
	}
}

func TestDecodeRejectsDamage(t *testing.T) {
	b, err := Encode(lead())
	if err != nil {
		t.Fatal(err)
	}
	for n := 1; n < len(b); n++ {
		if _, err := Decode(b[:n]); err == nil {
			t.Fatalf("the first %d of %d bytes decoded", n, len(b))
		}
	}
	if _, err := Decode(append(b, 0)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("trailing byte: %v, want ErrCorrupt", err)
	}
}

func FuzzRoundTrip(f *testing.F) {
	f.Add("id", "https://example.com/a", "com.example.t", "s", "application/json", "v", []byte(`{"a":1}`), int64(1764000000123456789), true)
	f.Add("x", "urn:x", "t", "", "", "", []byte(nil), int64(0), false)
	f.Fuzz(func(t *testing.T, id, source, typ, subject, contentType, ext string, data []byte, nanos int64, withTime bool) {
		ev := event.New()
		ev.SetID(id)
		ev.SetSource(source)
		ev.SetType(typ)
		ev.SetSubject(subject)
		if withTime {
			ev.SetTime(time.Unix(0, nanos))
		}
		if ext != "" {
			ev.SetExtension("fuzzext", ext)
		}
		if data != nil {
			ev.SetDataContentType(contentType)
			ev.DataEncoded = data
		}
		if ev.Source() == "" || ev.Validate() != nil {
			t.Skip() // sources make valid events only
		}
		var buf bytes.Buffer
		if event.WriteJson(&ev, &buf) != nil {
			t.Skip()
		}
		roundTrip(t, &ev, true)
	})
}

// A Decoder that remembers sources decodes every event as Decode does,
// also once it has forgotten them, and an event changed after decoding does
// not change the next one from the same source.
func TestDecoderRemembersSources(t *testing.T) {
	var d Decoder
	for round := 0; round < 2; round++ {
		for i := 0; i < decoderSources+50; i++ {
			ev := lead()
			ev.SetSource(fmt.Sprintf("https://user@helloclient.com/chatbots/HC-%d?x=%d#f", i%(decoderSources+10), i))
			b, err := Encode(ev)
			if err != nil {
				t.Fatal(err)
			}
			got, err := d.Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			if got.Source() != ev.Source() {
				t.Fatalf("source %q, want %q", got.Source(), ev.Source())
			}
			got.Context.(*event.EventContextV1).Source.Path = "/changed"
		}
	}
	if len(d.sources) > decoderSources {
		t.Errorf("the decoder holds %d sources, more than %d", len(d.sources), decoderSources)
	}
}

// Whatever bytes Decode is given, it returns an event or an error, and an
// event it returns encodes and decodes to itself. A Decoder kept across
// inputs answers as Decode.
func FuzzDecode(f *testing.F) {
	b, _ := Encode(lead())
	f.Add(b)
	f.Add([]byte(`{"specversion":"1.0","id":"1","source":"urn:x","type":"t"}`))
	f.Add([]byte{version, 0, 0, 0, 0, 0})
	var shared Decoder
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := Decode(b)
		viaShared, sharedErr := shared.Decode(b)
		if (err == nil) != (sharedErr == nil) {
			t.Fatalf("Decode: %v; a Decoder: %v", err, sharedErr)
		}
		if err != nil {
			return
		}
		var buf bytes.Buffer
		if event.WriteJson(ev, &buf) != nil {
			return
		}
		var viaBuf bytes.Buffer
		if err := event.WriteJson(viaShared, &viaBuf); err != nil || !bytes.Equal(buf.Bytes(), viaBuf.Bytes()) {
			t.Fatalf("a Decoder read %s, Decode %s (%v)", viaBuf.Bytes(), buf.Bytes(), err)
		}
		again, err := Encode(ev)
		if err != nil {
			t.Fatal(err)
		}
		back, err := Decode(again)
		if err != nil {
			t.Fatalf("re-encoded event does not decode: %v", err)
		}
		var buf2 bytes.Buffer
		if err := event.WriteJson(back, &buf2); err != nil || !bytes.Equal(buf.Bytes(), buf2.Bytes()) {
			t.Fatalf("re-encoded event reads back as %s, want %s (%v)", buf2.Bytes(), buf.Bytes(), err)
		}
	})
}

func BenchmarkEncode(b *testing.B) {
	ev := lead()
	b.Run("binary", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Encode(ev); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := encodeJSON(ev); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkDecode(b *testing.B) {
	ev := lead()
	bin, _ := Encode(ev)
	js := jsonOf(b, ev)
	for _, c := range []struct {
		name string
		in   []byte
	}{{"binary", bin}, {"json", js}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Decode(c.in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("binary-decoder", func(b *testing.B) {
		b.ReportAllocs()
		var d Decoder
		for b.Loop() {
			if _, err := d.Decode(bin); err != nil {
				b.Fatal(err)
			}
		}
	})
}
