package slack

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hookbridge/hookbridge/sources"
	"github.com/hookbridge/hookbridge/sources/sourcetest"
)

func readSecret(t testing.TB) string {
	t.Helper()
	return sourcetest.ReadFile(t, "testdata/secret")
}

func newSource(t testing.TB, cfg *Config) *Source {
	t.Helper()
	return sourcetest.New[*Source](t, cfg)
}

func testSource(t testing.TB) *Source {
	t.Helper()
	return newSource(t, &Config{Secret: readSecret(t), Tolerance: DefaultTolerance})
}

func TestVectors(t *testing.T) {
	sourcetest.Run(t, testSource(t), "testdata")
}

// Each event vector's id is the one gen.sh worked out from Slack's rule.
func TestVectorIDs(t *testing.T) {
	sourcetest.CheckIDs(t, "testdata")
}

func TestExampleDecodes(t *testing.T) {
	common, decoded := sourcetest.DecodeExample(t, Type, "a-secret")
	cfg := decoded.(*Config)
	if common.Type != Type || cfg.Secret != "a-secret" || cfg.Tolerance != 5*time.Minute {
		t.Fatalf("decoded %q %+v", common.Type, cfg)
	}
}

func TestDefaults(t *testing.T) {
	if c := NewConfig(); c.Tolerance != 5*time.Minute {
		t.Fatalf("default tolerance %s", c.Tolerance)
	}
}

func TestConfigValidate(t *testing.T) {
	cases := []struct {
		name  string
		cfg   Config
		blame []string
	}{
		{"secret", Config{Secret: "s", Tolerance: time.Minute}, nil},
		{"secrets", Config{Secrets: []string{"new", "old"}}, nil},
		{"tolerance off", Config{Secret: "s", Tolerance: 0}, nil},
		{"none", Config{}, []string{"secret"}},
		{"both", Config{Secret: "s", Secrets: []string{"t"}}, []string{"secrets"}},
		{"an empty one", Config{Secrets: []string{"new", ""}}, []string{"secrets"}},
		{"negative tolerance", Config{Secret: "s", Tolerance: -time.Second}, []string{"tolerance"}},
		{"all wrong", Config{Secrets: []string{""}, Tolerance: -1}, []string{"secrets", "tolerance"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sourcetest.CheckBlamed(t, c.cfg.Validate(), c.blame)
		})
	}
	if _, err := (&Config{}).NewSource(); err == nil {
		t.Fatal("NewSource built a source without a secret")
	}
}

// Slack's guide to verifying requests gives one worked example: a slash
// command's body, sent at 1531420618, under the secret below.
const (
	docSecret    = "8f742231b10e8888abcd99yyyzzz85a5"
	docTimestamp = "1531420618"
	docBody      = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
	docSignature = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
)

func docRequest(received time.Time) *sources.Request {
	req := &sources.Request{Method: http.MethodPost, Header: http.Header{}, Body: []byte(docBody), ReceivedAt: received}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set(TimestampHeader, docTimestamp)
	req.Header.Set(SignatureHeader, docSignature)
	return req
}

func TestSlacksDocumentedExample(t *testing.T) {
	src := newSource(t, &Config{Secret: docSecret, Tolerance: DefaultTolerance})
	sent := time.Unix(1531420618, 0)
	if err := src.Verify(docRequest(sent.Add(30 * time.Second))); err != nil {
		t.Fatal(err)
	}
	// The same request six minutes on is a replay.
	if err := src.Verify(docRequest(sent.Add(6 * time.Minute))); !errors.Is(err, sources.ErrStaleTimestamp) {
		t.Fatalf("six minutes late: %v", err)
	}
	// The slash command's fields become the event's JSON data.
	ev := sourcetest.ConvertOne(t, src, docRequest(sent))
	sourcetest.CheckFields(t, ev, sourcetest.Fields{
		Type: "com.slack.command.webhook-collect", Source: "https://app.slack.com/client/T1DC2JH3J", Subject: "channels/G8PSS9T3V",
		Data: `{"channel_id":"G8PSS9T3V","channel_name":"foobar","command":"/webhook-collect","response_url":"https://hooks.slack.com/commands/T1DC2JH3J/397700885554/96rGlfmibIGlgcZRskXaIFfN","team_domain":"testteamnow","team_id":"T1DC2JH3J","text":"","token":"xyzz0WbapA4vBCDEFasx0q6G","trigger_id":"398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c","user_id":"U2CERLKJA","user_name":"roadrunner"}`,
	})
	if ev.ID() != sources.SHA256Hex([]byte(docBody)) {
		t.Fatalf("id %q, want the body's SHA-256", ev.ID())
	}
}

// Interactivity requests and slash commands are forms; anything else in a
// form is refused with a reason.
func TestForms(t *testing.T) {
	src := testSource(t)
	ev := sourcetest.ConvertOne(t, src, sourcetest.Load(t, "testdata/block_actions"))
	want := sourcetest.ReadFile(t, "testdata/block_actions/payload.json")
	if !sourcetest.SameJSON(ev.Data(), []byte(want)) {
		t.Fatalf("data %s, want the payload field %s", ev.Data(), want)
	}
	for name, c := range map[string]struct{ body, typ, subject string }{
		"interaction in a channel, no message": {`payload={"type":"shortcut","team":{"id":"T1"},"channel":{"id":"C1"},"user":{"id":"U1"}}`, "com.slack.interaction.shortcut", "channels/C1"},
		"interaction without a type":           {`payload={"user":{"id":"U1"}}`, "com.slack.interaction.unknown", "users/U1"},
		"command without a channel":            {`command=%2FDeploy+Now&user_id=U1&team_id=T1`, "com.slack.command.deploy.now", "users/U1"},
	} {
		req := &sources.Request{Method: http.MethodPost, Header: http.Header{}, Body: []byte(c.body)}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
		ev := sourcetest.ConvertOne(t, src, req)
		if ev.Type() != c.typ || ev.Subject() != c.subject {
			t.Errorf("%s: type %q subject %q, want %q %q", name, ev.Type(), ev.Subject(), c.typ, c.subject)
		}
	}
	for name, body := range map[string]string{
		"neither payload nor command": "token=x&team_id=T1",
		"payload not JSON":            "payload=nope",
		"payload empty":               "payload=",
		"payload an array":            "payload=%5B%5D",
		"bad form":                    "%zz",
		"semicolons":                  "command=%2Fa;text=b",
	} {
		req := &sources.Request{Method: http.MethodPost, Header: http.Header{}, Body: []byte(body)}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if evs, err := src.Convert(req); err == nil {
			t.Errorf("%s: converted to %v", name, evs)
		}
	}
	// bridge send marks a form body as a form, and it converts.
	for _, name := range []string{"slash_command", "block_actions"} {
		req := signed(t, src, string(sourcetest.Load(t, "testdata/"+name).Body))
		if ct := req.Header.Get("Content-Type"); ct != "application/x-www-form-urlencoded" {
			t.Errorf("%s: signed as %q", name, ct)
		}
		if err := src.Verify(req); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		sourcetest.ConvertOne(t, src, req)
	}
}

func TestTolerance(t *testing.T) {
	stale := sourcetest.Load(t, "testdata/stale")
	for _, c := range []struct {
		tolerance time.Duration
		ok        bool
	}{{DefaultTolerance, false}, {9 * time.Minute, false}, {11 * time.Minute, true}, {0, true}} {
		src := newSource(t, &Config{Secret: readSecret(t), Tolerance: c.tolerance})
		err := src.Verify(stale)
		if c.ok && err != nil {
			t.Errorf("tolerance %s: %v", c.tolerance, err)
		}
		if !c.ok && !errors.Is(err, sources.ErrStaleTimestamp) {
			t.Errorf("tolerance %s: %v, want a stale timestamp", c.tolerance, err)
		}
	}
	// A stale request is refused even when its signature is wrong too, and
	// a timestamp further than any time.Duration is refused, not wrapped.
	src := testSource(t)
	req := sourcetest.Load(t, "testdata/app_mention")
	req.Header.Set(TimestampHeader, "1")
	if err := src.Verify(req); !errors.Is(err, sources.ErrStaleTimestamp) {
		t.Fatalf("a 1970 timestamp: %v", err)
	}
	req.Header.Set(TimestampHeader, "99999999999999")
	if err := src.Verify(req); !errors.Is(err, sources.ErrMalformedSignature) {
		t.Fatalf("a timestamp past year 9999: %v", err)
	}
	// Signed, and before 9999, but further than a time.Duration reaches.
	key := []byte(readSecret(t))
	for _, stamp := range []string{"99999999999", "253402300799"} {
		err := src.Verify(signedAt(req, key, stamp))
		if !errors.Is(err, sources.ErrStaleTimestamp) || !strings.Contains(err.Error(), "more than 292 years after") {
			t.Errorf("%s: %v, want a stale timestamp more than 292 years after", stamp, err)
		}
	}
}

// signedAt is base with X-Slack-Request-Timestamp set to stamp and signed
// here for it, so that stamp can be anything.
func signedAt(base *sources.Request, key []byte, stamp string) *sources.Request {
	req := *base
	req.Header = base.Header.Clone()
	m := hmac.New(sha256.New, key)
	m.Write([]byte("v0:" + strings.TrimSpace(stamp) + ":"))
	m.Write(base.Body)
	req.Header.Set(TimestampHeader, stamp)
	req.Header.Set(SignatureHeader, "v0="+hex.EncodeToString(m.Sum(nil)))
	return &req
}

// While the app's signing secret is regenerated, either secret signs.
func TestRotation(t *testing.T) {
	src := newSource(t, &Config{Secrets: []string{"the-new-secret", readSecret(t)}, Tolerance: DefaultTolerance})
	if err := src.Verify(sourcetest.Load(t, "testdata/app_mention")); err != nil {
		t.Fatalf("the old secret's signature: %v", err)
	}
	if err := src.Verify(sourcetest.Load(t, "testdata/wrong_secret")); !errors.Is(err, sources.ErrSignatureMismatch) {
		t.Fatalf("a third secret's signature: %v", err)
	}
	only := newSource(t, &Config{Secrets: []string{"the-new-secret"}, Tolerance: DefaultTolerance})
	if err := only.Verify(sourcetest.Load(t, "testdata/app_mention")); !errors.Is(err, sources.ErrSignatureMismatch) {
		t.Fatalf("the old secret after it was dropped: %v", err)
	}
}

// Slack's retry of a delivery is the same event, so the bridge drops it as
// a duplicate; another event is not.
func TestRetryIsTheSameEvent(t *testing.T) {
	src := testSource(t)
	first := sourcetest.Load(t, "testdata/app_mention")
	retry := sourcetest.Load(t, "testdata/retry")
	if retry.Header.Get(RetryNumHeader) == "" || retry.Header.Get(SignatureHeader) == first.Header.Get(SignatureHeader) {
		t.Fatal("the retry vector is not a retry")
	}
	if err := src.Verify(retry); err != nil {
		t.Fatal(err)
	}
	a, b := sourcetest.ConvertOne(t, src, first), sourcetest.ConvertOne(t, src, retry)
	other := sourcetest.ConvertOne(t, src, sourcetest.Load(t, "testdata/message"))
	if a.ID() != "Ev0LAN670R" || b.ID() != a.ID() || other.ID() == a.ID() {
		t.Fatalf("ids %q %q %q", a.ID(), b.ID(), other.ID())
	}
}

// A url_verification is answered with its challenge once verified, and is
// never taken for an event; events are not taken for one.
func TestURLVerification(t *testing.T) {
	src := testSource(t)
	req := sourcetest.Load(t, "testdata/url_verification")
	if !src.IsHandshake(req) {
		t.Fatal("not taken for a handshake")
	}
	reply, err := src.Handshake(req)
	if err != nil {
		t.Fatal(err)
	}
	if reply.Status != http.StatusOK || !strings.HasPrefix(reply.ContentType, "text/plain") || string(reply.Body) != "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P" {
		t.Fatalf("reply %d %q %q", reply.Status, reply.ContentType, reply.Body)
	}
	get := sourcetest.Load(t, "testdata/url_verification")
	get.Method = http.MethodGet
	if src.IsHandshake(get) {
		t.Fatal("a GET taken for a handshake")
	}
	for _, name := range []string{"app_mention", "message", "app_rate_limited"} {
		if src.IsHandshake(sourcetest.Load(t, "testdata/"+name)) {
			t.Errorf("%s taken for a handshake", name)
		}
	}
	// An event whose text mentions url_verification is still an event.
	mention := signed(t, src, `{"type":"event_callback","event":{"type":"message","text":"what is url_verification?"},"event_id":"Ev1"}`)
	if src.IsHandshake(mention) {
		t.Fatal("a message about url_verification taken for a handshake")
	}
	// Unsigned, stale or forged: refused.
	unsigned := sourcetest.Load(t, "testdata/url_verification")
	unsigned.Header.Del(SignatureHeader)
	if _, err := src.Handshake(unsigned); !errors.Is(err, sources.ErrMissingSignature) {
		t.Fatalf("unsigned: %v", err)
	}
	late := sourcetest.Load(t, "testdata/url_verification")
	late.ReceivedAt = late.ReceivedAt.Add(time.Hour)
	if _, err := src.Handshake(late); !errors.Is(err, sources.ErrStaleTimestamp) {
		t.Fatalf("an hour late: %v", err)
	}
	// Signed but without a challenge: 400, not an event.
	empty := signed(t, src, `{"type":"url_verification","token":"x"}`)
	if !src.IsHandshake(empty) {
		t.Fatal("not taken for a handshake")
	}
	if reply, err := src.Handshake(empty); err != nil || reply.Status != http.StatusBadRequest {
		t.Fatalf("without a challenge: %d %q %v", reply.Status, reply.Body, err)
	}
}

// signed is a request carrying body as Slack would sign it now.
func signed(t testing.TB, src *Source, body string) *sources.Request {
	t.Helper()
	req := &sources.Request{Method: http.MethodPost, Header: http.Header{}, Body: []byte(body), ReceivedAt: time.Now()}
	if err := src.Sign(req); err != nil {
		t.Fatal(err)
	}
	return req
}

// bridge send's signature verifies, as Slack's would.
func TestSign(t *testing.T) {
	src := testSource(t)
	for _, vector := range []string{"app_mention", "message", "url_verification", "app_rate_limited"} {
		body := sourcetest.Load(t, "testdata/"+vector).Body
		req := signed(t, src, string(body))
		if err := src.Verify(req); err != nil {
			t.Fatalf("%s: %v", vector, err)
		}
		if got, want := req.Header.Get(TimestampHeader), strconv.FormatInt(req.ReceivedAt.Unix(), 10); got != want {
			t.Errorf("%s: %s %q, want %q", vector, TimestampHeader, got, want)
		}
		if req.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s: content type %q", vector, req.Header.Get("Content-Type"))
		}
	}
	// The signature covers the timestamp: moving it breaks the signature.
	req := signed(t, src, `{"type":"event_callback"}`)
	req.Header.Set(TimestampHeader, strconv.FormatInt(req.ReceivedAt.Unix()-1, 10))
	if err := src.Verify(req); !errors.Is(err, sources.ErrSignatureMismatch) {
		t.Fatalf("timestamp moved: %v", err)
	}
}

func TestConvertNamesTheEvent(t *testing.T) {
	src := testSource(t)
	received := time.Unix(1795169730, 0)
	for _, c := range []struct {
		name, body                  string
		typ, source, subject, etime string
	}{
		{"channel created", `{"type":"event_callback","team_id":"T1","event":{"type":"channel_created","channel":{"id":"C024BE91L","name":"fun"}},"event_id":"Ev2","event_time":1360782804}`,
			"com.slack.channel_created", "https://app.slack.com/client/T1", "channels/C024BE91L", "2013-02-13T19:13:24Z"},
		{"file shared", `{"type":"event_callback","team_id":"T1","event":{"type":"file_shared","channel_id":"C1","file_id":"F1","user_id":"U1"},"event_id":"Ev3"}`,
			"com.slack.file_shared", "https://app.slack.com/client/T1", "channels/C1", ""},
		{"user change", `{"type":"event_callback","team_id":"T1","event":{"type":"user_change","user":{"id":"U9"}},"event_id":"Ev4"}`,
			"com.slack.user_change", "https://app.slack.com/client/T1", "users/U9", ""},
		{"message changed", `{"type":"event_callback","team_id":"T1","event":{"type":"message","subtype":"message_changed","channel":"C1","ts":"1.2","message":{"ts":"1.1"}},"event_id":"Ev5"}`,
			"com.slack.message.message_changed", "https://app.slack.com/client/T1", "channels/C1/messages/1.2", ""},
		{"odd names escaped", `{"type":"event_callback","team_id":"T/1 x","event":{"type":"Weird Type","subtype":"a:b","channel":"C/1"},"event_id":"Ev6"}`,
			"com.slack.weird.type.a.b", "https://app.slack.com/client/T%2F1%20x", "channels/C%2F1", ""},
		{"no event", `{"type":"event_callback","event_id":"Ev7"}`,
			"com.slack.unknown", "https://app.slack.com", "", ""},
		{"no type at all", `{}`, "com.slack.unknown", "https://app.slack.com", "", ""},
		{"other top-level type with an event_id", `{"type":"app_uninstalled_team","team_id":"T1","event_id":"Ev8","event_time":1795169700}`,
			"com.slack.app_uninstalled_team", "https://app.slack.com/client/T1", "", "2026-11-20T10:15:00Z"},
	} {
		t.Run(c.name, func(t *testing.T) {
			req := &sources.Request{Method: http.MethodPost, Header: http.Header{}, Body: []byte(c.body), ReceivedAt: received}
			ev := sourcetest.ConvertOne(t, src, req)
			sourcetest.CheckFields(t, ev, sourcetest.Fields{Type: c.typ, Source: c.source, Subject: c.subject, Time: c.etime, Data: c.body})
		})
	}
	sourcetest.CheckIDStability(t, src, received, []sourcetest.IDCase{
		sourcetest.ID("event_id", `{"type":"event_callback","event_id":"EvA","event":{"type":"message"}}`, `{"type":"event_callback","event_id":"EvA","event":{"type":"message"},"x":1}`, true, "EvA"),
		sourcetest.ID("different event_ids", `{"type":"event_callback","event_id":"EvA"}`, `{"type":"event_callback","event_id":"EvB"}`, false, "EvA"),
		sourcetest.ID("no event_id: the body", `{"type":"app_rate_limited","minute_rate_limited":1}`, `{"type":"app_rate_limited","minute_rate_limited":2}`, false, ""),
	})
}

// An event_id keeps text that is not valid Unicode apart from its U+FFFD
// twin.
func TestInvalidUTF8KeepsEventsApart(t *testing.T) {
	sourcetest.CheckInvalidTextIDs(t, testSource(t), `{"type":"event_callback","team_id":"T1","event_id":"Ev<TEXT>","event":{"type":"message","channel":"C1","ts":"1.2"}}`)
}

func TestConvertRejectsNonObjects(t *testing.T) {
	sourcetest.CheckNotObjects(t, testSource(t), "payload=%7B%7D", `token=x&command=%2Fdeploy`)
}

func FuzzVerify(f *testing.F) {
	src := testSource(f)
	for _, req := range sourcetest.Seeds(f, "testdata") {
		f.Add(req.Header.Get(SignatureHeader), req.Header.Get(TimestampHeader), req.Body)
	}
	key := []byte(readSecret(f))
	received := time.Unix(1795169730, 0)
	f.Fuzz(func(t *testing.T, sigHeader, stamp string, body []byte) {
		h := http.Header{}
		h.Set(SignatureHeader, sigHeader)
		h.Set(TimestampHeader, stamp)
		req := &sources.Request{Method: http.MethodPost, Header: h, Body: body, ReceivedAt: received}
		err := src.Verify(req)
		if src.IsHandshake(req) {
			if _, herr := src.Handshake(req); (herr == nil) != (err == nil) {
				t.Fatalf("Handshake %v but Verify %v", herr, err)
			}
		}
		if err != nil {
			return
		}
		// Only a real, fresh signature may pass: recompute it independently.
		m := hmac.New(sha256.New, key)
		m.Write([]byte("v0:" + strings.TrimSpace(h.Get(TimestampHeader)) + ":"))
		m.Write(body)
		got, err := hex.DecodeString(strings.TrimPrefix(strings.TrimSpace(h.Get(SignatureHeader)), "v0="))
		if err != nil || !hmac.Equal(got, m.Sum(nil)) {
			t.Fatalf("accepted signature %q at %q for a body it does not sign", sigHeader, stamp)
		}
		n, err := strconv.ParseInt(strings.TrimSpace(h.Get(TimestampHeader)), 10, 64)
		if err != nil || n < received.Unix()-300 || n > received.Unix()+300 {
			t.Fatalf("accepted timestamp %q, outside 5 minutes of %d", stamp, received.Unix())
		}
	})
}

// FuzzVerifyTimestamp signs every X-Slack-Request-Timestamp it tries, so
// only the timestamp check stands between it and acceptance: a timestamp is
// accepted exactly when it is unix seconds within the tolerance.
func FuzzVerifyTimestamp(f *testing.F) {
	src := testSource(f)
	base := sourcetest.Load(f, "testdata/app_mention")
	key := []byte(readSecret(f))
	at := base.ReceivedAt.Unix()
	for _, n := range []int64{at, at - 300, at + 300, at - 301, at + 301, at * 1000, 99999999999, 253402300799, math.MaxInt64} {
		f.Add(strconv.FormatInt(n, 10))
	}
	f.Add(" 1795169730\t")
	f.Add("")
	f.Fuzz(func(t *testing.T, stamp string) {
		err := src.Verify(signedAt(base, key, stamp))
		trimmed := strings.TrimSpace(stamp)
		n, perr := strconv.ParseInt(trimmed, 10, 64)
		digits := trimmed != "" && strings.Trim(trimmed, "0123456789") == ""
		if ok := digits && perr == nil && n > 0 && sourcetest.Within(n, 1, base.ReceivedAt, DefaultTolerance); ok != (err == nil) {
			t.Fatalf("%s %q: %v, accepted=%v wanted", TimestampHeader, stamp, err, ok)
		}
	})
}

func FuzzConvert(f *testing.F) {
	src := testSource(f)
	for _, req := range sourcetest.Seeds(f, "testdata") {
		f.Add(req.Header.Get("Content-Type"), req.Body)
	}
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		h := http.Header{}
		h.Set("Content-Type", contentType)
		req := &sources.Request{Method: http.MethodPost, Header: h, Body: body, ReceivedAt: time.Unix(1795169730, 0)}
		sourcetest.CheckConvert(t, src, req)
		if src.IsHandshake(req) {
			// A handshake's challenge is echoed only once it is verified.
			if _, err := src.Handshake(req); !errors.Is(err, sources.ErrMissingSignature) {
				t.Fatalf("an unsigned handshake: %v", err)
			}
		}
	})
}
