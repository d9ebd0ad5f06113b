package helpcrunch

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/hookbridge/hookbridge/sources"
	"github.com/hookbridge/hookbridge/sources/sourcetest"
)

const account = "https://acme.helpcrunch.com"

func testSource(t testing.TB) *Source {
	t.Helper()
	return sourcetest.New[*Source](t, &Config{Secret: sourcetest.ReadFile(t, "testdata/secret"), Account: account})
}

func TestVectors(t *testing.T) {
	sourcetest.Run(t, testSource(t), "testdata")
}

// TestVectorIDs compares each recorded event's id with the one gen.sh
// worked out on its own from the documented rule.
func TestVectorIDs(t *testing.T) {
	sourcetest.CheckIDs(t, "testdata")
}

func TestConfigValidate(t *testing.T) {
	cases := []struct {
		name    string
		cfg     Config
		wantErr []string // the fields blamed
	}{
		{"ok", Config{Secret: "k", Account: account}, nil},
		{"nothing", Config{}, []string{"secret", "account"}},
		{"blank secret", Config{Secret: "  ", Account: account}, []string{"secret"}},
		{"relative account", Config{Secret: "k", Account: "acme.helpcrunch.com"}, []string{"account"}},
		{"account without host", Config{Secret: "k", Account: "https://"}, []string{"account"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.cfg.Validate()
			sourcetest.CheckBlamed(t, err, c.wantErr)
		})
	}
}

// TestExampleDecodes checks that the embedded example is a valid source
// configuration for the strict decoder.
func TestExampleDecodes(t *testing.T) {
	common, cfg := sourcetest.DecodeExample(t, "helpcrunch", "from-env")
	if common.Type != "helpcrunch" || cfg.(*Config).Account != account || cfg.(*Config).Secret != "from-env" {
		t.Fatalf("type %q, config %+v", common.Type, cfg)
	}
}

func TestVerify(t *testing.T) {
	src := testSource(t)
	base := sourcetest.Load(t, "testdata/chat_new")
	good := base.Header.Get(SignatureHeader)
	cases := []struct {
		name   string
		method string
		header string
		want   error
	}{
		{"good", http.MethodPost, good, nil},
		{"surrounding spaces", http.MethodPost, " " + good + " ", nil},
		{"upper case", http.MethodPost, strings.ToUpper(good), nil},
		{"empty", http.MethodPost, "", sources.ErrMissingSignature},
		{"sha1= prefix is not HelpCrunch's format", http.MethodPost, "sha1=" + good, sources.ErrMalformedSignature},
		{"one character short", http.MethodPost, good[:39], sources.ErrMalformedSignature},
		{"one character long", http.MethodPost, good + "0", sources.ErrMalformedSignature},
		{"last character changed", http.MethodPost, good[:39] + flip(good[39]), sources.ErrSignatureMismatch},
		{"zeros", http.MethodPost, strings.Repeat("0", 40), sources.ErrSignatureMismatch},
		{"PUT", http.MethodPut, good, sources.ErrMethodNotAllowed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := *base
			req.Method = c.method
			req.Header = http.Header{}
			if c.header != "" {
				req.Header.Set(SignatureHeader, c.header)
			}
			err := src.Verify(&req)
			if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
}

func flip(c byte) string {
	if c == '0' {
		return "1"
	}
	return "0"
}

func TestVerifyDoesNotLeakTheSignature(t *testing.T) {
	src := testSource(t)
	req := sourcetest.Load(t, "testdata/tampered")
	err := src.Verify(req)
	if err == nil || strings.Contains(err.Error(), req.Header.Get(SignatureHeader)) {
		t.Fatalf("error %v", err)
	}
}

func TestSignThenVerify(t *testing.T) {
	src := testSource(t)
	for _, name := range []string{"chat_new", "message_chat_customer", "customer_new"} {
		req := sourcetest.Load(t, "testdata/"+name)
		want := req.Header.Get(SignatureHeader)
		req.Header = nil
		if err := src.Sign(req); err != nil {
			t.Fatal(err)
		}
		if got := req.Header.Get(SignatureHeader); got != want {
			t.Fatalf("%s: Sign made %q; openssl made %q", name, got, want)
		}
		if err := src.Verify(req); err != nil {
			t.Fatal(err)
		}
	}
}

// TestIDStableAcrossRetries: HelpCrunch retries an event with the same id
// and eventData but a new attempts and lastAttemptAt; every retry must make
// the same CloudEvent id so the bridge drops it as a duplicate.
func TestIDStableAcrossRetries(t *testing.T) {
	src := testSource(t)
	cases := []struct {
		name         string
		first, retry string
		same         bool
	}{
		{
			"envelope id kept",
			`{"event":"chat.new","eventData":{"id":1},"attempts":0,"lastAttemptAt":1795169701,"createdAt":1795169701,"id":"ev-1"}`,
			`{"event":"chat.new","eventData":{"id":1},"attempts":3,"lastAttemptAt":1795170601,"createdAt":1795169701,"id":"ev-1"}`,
			true,
		},
		{
			"envelope id kept, fields reordered by the retry",
			`{"id":"ev-2","attempts":0,"lastAttemptAt":1795169701,"event":"customer.new","eventData":{"id":5}}`,
			`{"event":"customer.new","eventData":{"id":5},"lastAttemptAt":1795169999,"attempts":1,"id":"ev-2"}`,
			true,
		},
		{
			"no envelope id: attempts and lastAttemptAt are ignored",
			`{"event":"chat.closed","eventData":{"id":1,"status":"closed"},"attempts":0,"lastAttemptAt":1795169701,"createdAt":1795169700}`,
			`{"event":"chat.closed","eventData":{"status":"closed","id":1},"attempts":2,"lastAttemptAt":1795170301,"createdAt":1795169700}`,
			true,
		},
		{
			"no envelope id: different eventData is a different event",
			`{"event":"chat.status_updated","eventData":{"id":1,"status":"opened"},"attempts":0,"createdAt":1795169700}`,
			`{"event":"chat.status_updated","eventData":{"id":1,"status":"pending"},"attempts":0,"createdAt":1795169700}`,
			false,
		},
		{
			"no envelope id: different createdAt is a different event",
			`{"event":"chat.assigned","eventData":{"id":1},"attempts":0,"createdAt":1795169700}`,
			`{"event":"chat.assigned","eventData":{"id":1},"attempts":0,"createdAt":1795169800}`,
			false,
		},
		{
			"different envelope ids",
			`{"event":"chat.new","eventData":{"id":1},"attempts":0,"id":"ev-3"}`,
			`{"event":"chat.new","eventData":{"id":1},"attempts":0,"id":"ev-4"}`,
			false,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a, b := convertOne(t, src, c.first), convertOne(t, src, c.retry)
			if (a.ID() == b.ID()) != c.same {
				t.Fatalf("ids %q and %q; same=%v wanted", a.ID(), b.ID(), c.same)
			}
		})
	}
}

// Two signed events whose ids differ only in bytes that are not UTF-8
// (0xff 0xfe, 0xfe 0xfd) are two events, though encoding/json reads both ids
// as "utf8-\ufffd\ufffd-x": the second was dropped as a duplicate.
func TestInvalidUTF8KeepsEventsApart(t *testing.T) {
	src := testSource(t)
	secret := []byte(sourcetest.ReadFile(t, "testdata/secret"))
	for _, c := range []struct{ body, id string }{
		{"{\"event\":\"chat.new\",\"id\":\"utf8-\xff\xfe-x\",\"eventData\":{\"id\":1},\"attempts\":0,\"createdAt\":1795169701}", `utf8-\xff\xfe-x`},
		{"{\"event\":\"chat.new\",\"id\":\"utf8-\xfe\xfd-x\",\"eventData\":{\"id\":1},\"attempts\":0,\"createdAt\":1795169701}", `utf8-\xfe\xfd-x`},
		{`{"event":"chat.new","id":"utf8-\ufffd\ufffd-x","eventData":{"id":1},"attempts":0,"createdAt":1795169701}`, "utf8-\ufffd\ufffd-x"},
	} {
		m := hmac.New(sha1.New, secret)
		m.Write([]byte(c.body))
		req := &sources.Request{Method: http.MethodPost, Header: http.Header{}, Body: []byte(c.body), ReceivedAt: time.Unix(1795169730, 0)}
		req.Header.Set(SignatureHeader, hex.EncodeToString(m.Sum(nil)))
		if err := src.Verify(req); err != nil {
			t.Fatalf("%q: %v", c.body, err)
		}
		if id := sourcetest.ConvertOne(t, src, req).ID(); id != c.id {
			t.Errorf("%q: id %q, want %q", c.body, id, c.id)
		}
	}
	sourcetest.CheckInvalidTextIDs(t, src, `{"event":"chat.new","id":"<TEXT>","eventData":{"id":1},"attempts":0}`)
	// Without an envelope id, the id is the SHA-256 of eventData and the rest.
	sourcetest.CheckInvalidTextIDs(t, src, `{"event":"chat.new","eventData":{"id":1,"text":"<TEXT>"},"attempts":0,"createdAt":1795169700}`)
	sourcetest.CheckInvalidTextIDs(t, src, `{"event":"chat.<TEXT>","eventData":{"id":1},"attempts":0,"createdAt":1795169700}`)
}

func convertOne(t *testing.T, src *Source, body string) *event.Event {
	t.Helper()
	return sourcetest.ConvertOne(t, src, &sources.Request{Method: http.MethodPost, Body: []byte(body), ReceivedAt: time.Unix(1795169730, 0)})
}

func TestConvertMapping(t *testing.T) {
	src := testSource(t)
	cases := []struct {
		name, body         string
		wantType, wantSubj string
		wantTime           string // RFC 3339, "" for none
	}{
		{"chat by id", `{"event":"chat.assigned","eventData":{"id":42},"createdAt":1795169701,"id":"a"}`,
			"com.helpcrunch.chat.assigned", "chats/42", "2026-11-20T10:15:01Z"},
		{"chat by nested chat", `{"event":"chat.closed","eventData":{"chat":{"id":"43"}},"id":"a"}`,
			"com.helpcrunch.chat.closed", "chats/43", ""},
		{"customer", `{"event":"customer.blocked","eventData":{"id":8745474},"createdAt":"1795169702","id":"a"}`,
			"com.helpcrunch.customer.blocked", "customers/8745474", "2026-11-20T10:15:02Z"},
		{"message", `{"event":"message.private","eventData":{"chat_id":7,"message":{"id":9,"createdAt":"1795169703.5"}},"id":"a"}`,
			"com.helpcrunch.message.private", "chats/7/messages/9", "2026-11-20T10:15:03.5Z"},
		{"message without its id", `{"event":"message.chat.agent","eventData":{"chat_id":7},"id":"a"}`,
			"com.helpcrunch.message.chat.agent", "chats/7", ""},
		{"unknown object", `{"event":"Ticket Created","eventData":{"id":7},"id":"a"}`,
			"com.helpcrunch.ticket.created", "", ""},
		{"no event name", `{"eventData":{"id":7},"id":"a"}`,
			"com.helpcrunch.unknown", "", ""},
		{"eventData not an object", `{"event":"chat.new","eventData":[1],"id":"a"}`,
			"com.helpcrunch.chat.new", "", ""},
		{"createdAt beyond year 9999 is ignored", `{"event":"chat.new","eventData":{"id":1},"createdAt":253402300800,"id":"a"}`,
			"com.helpcrunch.chat.new", "chats/1", ""},
		{"createdAt zero is ignored", `{"event":"chat.new","eventData":{"id":1},"createdAt":0,"id":"a"}`,
			"com.helpcrunch.chat.new", "chats/1", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sourcetest.CheckFields(t, convertOne(t, src, c.body), sourcetest.Fields{
				Type: c.wantType, Source: account, Subject: c.wantSubj, Time: c.wantTime, Data: c.body,
			})
		})
	}
}

func TestConvertRejectsNonObjects(t *testing.T) {
	sourcetest.CheckNotObjects(t, testSource(t), `"chat.new"`, `{"event":`)
}

func FuzzVerify(f *testing.F) {
	src := testSource(f)
	for _, req := range sourcetest.Seeds(f, "testdata") {
		f.Add(req.Header.Get(SignatureHeader), req.Body)
	}
	f.Fuzz(func(t *testing.T, header string, body []byte) {
		req := &sources.Request{Method: http.MethodPost, Header: http.Header{SignatureHeader: {header}}, Body: body, ReceivedAt: time.Unix(1795169730, 0)}
		if src.Verify(req) != nil {
			return
		}
		// Only a real signature may pass: recompute it independently.
		m := hmac.New(sha1.New, src.secret)
		m.Write(body)
		if !strings.EqualFold(strings.TrimSpace(header), hex.EncodeToString(m.Sum(nil))) {
			t.Fatalf("accepted header %q for a body it does not sign", header)
		}
	})
}

func FuzzConvert(f *testing.F) {
	src := testSource(f)
	for _, req := range sourcetest.Seeds(f, "testdata") {
		f.Add(req.Body)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		// CheckConvert also reads each event back from JSON, as the queue does.
		sourcetest.CheckConvert(t, src, &sources.Request{Method: http.MethodPost, Body: body, ReceivedAt: time.Unix(1795169730, 0)})
	})
}
