package meta

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/hookbridge/hookbridge/sources"
	"github.com/hookbridge/hookbridge/sources/sourcetest"
)

func readSecret(t testing.TB) string {
	t.Helper()
	return sourcetest.ReadFile(t, "testdata/secret")
}

func testConfig(t testing.TB) *Config {
	t.Helper()
	return &Config{VerifyToken: sourcetest.ReadFile(t, "testdata/verify_token"), AppSecret: readSecret(t)}
}

func testSource(t testing.TB) *Source {
	t.Helper()
	return sourcetest.New[*Source](t, testConfig(t))
}

// accepted are the vectors whose notification must convert; gen.sh lists
// the ids of their events in ids.txt.
var accepted = []string{"whatsapp_message", "whatsapp_status_batch", "whatsapp_status_retry", "messenger_message", "messenger_batch", "instagram_message"}

func TestVectors(t *testing.T) {
	sourcetest.Run(t, testSource(t), "testdata")
}

// Every event's id is the one gen.sh works out on its own from the
// documented rule, in the same order.
func TestIDsFromGenSh(t *testing.T) {
	src := testSource(t)
	for _, v := range accepted {
		t.Run(v, func(t *testing.T) {
			want := strings.Fields(sourcetest.ReadFile(t, filepath.Join("testdata", v, "ids.txt")))
			evs := convert(t, src, sourcetest.Load(t, filepath.Join("testdata", v)))
			var got []string
			for _, ev := range evs {
				got = append(got, ev.ID())
			}
			if strings.Join(got, " ") != strings.Join(want, " ") {
				t.Fatalf("ids\n got %q\nwant %q", got, want)
			}
		})
	}
}

func convert(t testing.TB, src *Source, req *sources.Request) []*event.Event {
	t.Helper()
	if err := src.Verify(req); err != nil {
		t.Fatal(err)
	}
	evs, err := src.Convert(req)
	if err != nil {
		t.Fatal(err)
	}
	for i, ev := range evs {
		if err := ev.Validate(); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
	}
	return evs
}

// Meta retries the same four updates batched otherwise: other entries, in
// another order, the keys reordered, without white space. Each update is
// the same event: same id, type, source, subject, time and data.
func TestRetryBatchedDifferentlyKeepsTheEvents(t *testing.T) {
	src := testSource(t)
	first := convert(t, src, sourcetest.Load(t, "testdata/whatsapp_status_batch"))
	retry := convert(t, src, sourcetest.Load(t, "testdata/whatsapp_status_retry"))
	if len(first) != 4 || len(retry) != 4 {
		t.Fatalf("%d and %d events, want 4 each", len(first), len(retry))
	}
	byID := map[string]*event.Event{}
	for _, ev := range first {
		byID[ev.ID()] = ev
	}
	if len(byID) != 4 {
		t.Fatalf("the batch's ids are not distinct: %v", byID)
	}
	for _, ev := range retry {
		a, ok := byID[ev.ID()]
		if !ok {
			t.Fatalf("the retry made id %q, which the first delivery did not", ev.ID())
		}
		if a.Type() != ev.Type() || a.Source() != ev.Source() || a.Subject() != ev.Subject() || !a.Time().Equal(ev.Time()) {
			t.Errorf("%s: %s %s %s %s, then %s %s %s %s", ev.ID(), a.Type(), a.Source(), a.Subject(), a.Time(), ev.Type(), ev.Source(), ev.Subject(), ev.Time())
		}
		if !sourcetest.SameJSON(a.Data(), ev.Data()) {
			t.Errorf("%s: data\n %s\nthen\n %s", ev.ID(), a.Data(), ev.Data())
		}
	}
}

// A change that is edited, or the same item under another entry, is
// another event.
func TestFallbackIDsDependOnTheUpdate(t *testing.T) {
	src := testSource(t)
	body := func(entryID, reason string) string {
		return `{"object":"whatsapp_business_account","entry":[{"id":"` + entryID + `","time":1795169740,"changes":[{"field":"message_template_status_update","value":{"event":"REJECTED","reason":"` + reason + `"}}]}]}`
	}
	id := func(b string) string {
		return sourcetest.ConvertOne(t, src, &sources.Request{Method: http.MethodPost, Body: []byte(b)}).ID()
	}
	a := id(body("1", "INVALID_FORMAT"))
	if id(body("2", "INVALID_FORMAT")) == a || id(body("1", "TAG_CONTENT_MISMATCH")) == a {
		t.Fatal("the fallback id ignores the entry id or the item")
	}
	// The entry's time is no part of it.
	later := strings.Replace(body("1", "INVALID_FORMAT"), "1795169740", "1795170000", 1)
	if id(later) != a {
		t.Fatal("the fallback id changed with the entry's time")
	}
}

// Ids read from an update (a wamid, a status, a mid) and the fallback ids
// hashed from its canonical JSON keep text that is not valid Unicode apart
// from its U+FFFD twin.
func TestInvalidUTF8KeepsEventsApart(t *testing.T) {
	src := testSource(t)
	for _, body := range []string{
		`{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{"messages":[{"from":"1","id":"wamid.<TEXT>","timestamp":"1795169712","type":"text"}]}}]}]}`,
		`{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{"statuses":[{"id":"wamid.1","status":"<TEXT>","recipient_id":"1"}]}}]}]}`,
		`{"object":"page","entry":[{"id":"1","time":1795169712350,"messaging":[{"sender":{"id":"2"},"recipient":{"id":"1"},"timestamp":1795169711984,"message":{"mid":"m_<TEXT>"}}]}]}`,
		`{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"message_template_status_update","value":{"event":"REJECTED","reason":"<TEXT>"}}]}]}`,
		`{"object":"whatsapp_business_account","entry":[{"id":"<TEXT>","changes":[{"field":"message_template_status_update","value":{"event":"REJECTED"}}]}]}`,
		`{"object":"page","entry":[{"id":"1","unknown_list":["<TEXT>"]}]}`,
	} {
		sourcetest.CheckInvalidTextIDs(t, src, body)
	}
}

func TestConvertNamesTheEvents(t *testing.T) {
	src := testSource(t)
	for _, c := range []struct {
		name, body string
		want       []sourcetest.Fields // Data "" is not compared
	}{
		{"messenger batch: echo, postback, read, standby, feed", sourcetest.ReadFile(t, "testdata/messenger_batch/body"), []sourcetest.Fields{
			{Type: "com.meta.page.message_echo", Source: "https://graph.facebook.com/112233445566778", Subject: "6483920175538201", Time: "2026-11-20T10:15:19.877Z"},
			{Type: "com.meta.page.postback", Source: "https://graph.facebook.com/112233445566778", Subject: "6483920175538201", Time: "2026-11-20T10:15:25.102Z"},
			{Type: "com.meta.page.read", Source: "https://graph.facebook.com/112233445566778", Subject: "6483920175538201", Time: "2026-11-20T10:15:30.555Z"},
			{Type: "com.meta.page.standby.message", Source: "https://graph.facebook.com/112233445566778", Subject: "7012345678901234", Time: "2026-11-20T10:15:31.5Z"},
			// No time of its own: the entry's, in seconds.
			{Type: "com.meta.page.feed", Source: "https://graph.facebook.com/112233445566778", Subject: "", Time: "2026-11-20T10:15:40Z"},
		}},
		{"whatsapp message", sourcetest.ReadFile(t, "testdata/whatsapp_message/body"), []sourcetest.Fields{
			{Type: "com.meta.whatsapp_business_account.messages", Source: "https://graph.facebook.com/102290129340398", Subject: "16505551234", Time: "2026-11-20T10:15:12Z"},
		}},
		{"a messaging item without a timestamp takes the entry's, in milliseconds",
			`{"object":"page","entry":[{"id":"9","time":1795169712350,"messaging":[{"sender":{"id":"5"},"recipient":{"id":"9"},"delivery":{"mids":["m_1"],"watermark":1795169711000}}]}]}`,
			[]sourcetest.Fields{{Type: "com.meta.page.delivery", Source: "https://graph.facebook.com/9", Subject: "5", Time: "2026-11-20T10:15:12.35Z"}}},
		{"a status without a contact names its recipient",
			`{"object":"whatsapp_business_account","entry":[{"id":"7","changes":[{"field":"messages","value":{"statuses":[{"id":"wamid.X","status":"failed","timestamp":"1795169712","recipient_id":"4915112345678"}]}}]}]}`,
			[]sourcetest.Fields{{Type: "com.meta.whatsapp_business_account.messages", Source: "https://graph.facebook.com/7", Subject: "4915112345678", Time: "2026-11-20T10:15:12Z"}}},
		{"an entry with a list of another name is one event",
			`{"object":"user","entry":[{"id":"10210299214172187","uid":"10210299214172187","changed_fields":["photos"]}]}`,
			[]sourcetest.Fields{{Type: "com.meta.user.unknown", Source: "https://graph.facebook.com/10210299214172187"}}},
		{"no entry id, no field, an item of no known kind",
			`{"object":"Instagram","entry":[{"changes":[{"value":{}}],"messaging":[{"sender":{"id":"3"},"timestamp":1795169712000,"zeta":{},"alpha":{}}]}]}`,
			[]sourcetest.Fields{
				{Type: "com.meta.instagram.unknown", Source: "https://graph.facebook.com"},
				{Type: "com.meta.instagram.alpha", Source: "https://graph.facebook.com", Subject: "3", Time: "2026-11-20T10:15:12Z"},
			}},
	} {
		t.Run(c.name, func(t *testing.T) {
			evs, err := src.Convert(&sources.Request{Method: http.MethodPost, Body: []byte(c.body)})
			if err != nil {
				t.Fatal(err)
			}
			if len(evs) != len(c.want) {
				t.Fatalf("%d events, want %d", len(evs), len(c.want))
			}
			for i, ev := range evs {
				got := sourcetest.Fields{Type: ev.Type(), Source: ev.Source(), Subject: ev.Subject()}
				if !ev.Time().IsZero() {
					got.Time = ev.Time().Format(time.RFC3339Nano)
				}
				if got != c.want[i] {
					t.Errorf("event %d\n got %+v\nwant %+v", i, got, c.want[i])
				}
			}
		})
	}
}

// Each event's data is the notification reduced to its one update, every
// other key of the notification and of the entry kept, in Meta's order,
// nothing re-escaped.
func TestDataIsTheOneUpdate(t *testing.T) {
	src := testSource(t)
	body := `{"object":"page","extra":1,"entry":[{"id":"9","time":1795169712350,"hint":"x","messaging":[{"sender":{"id":"5"},"recipient":{"id":"9"},"timestamp":1795169711984,"message":{"mid":"m_1","text":"a < b & c"}},{"sender":{"id":"5"},"recipient":{"id":"9"},"read":{"watermark":1}}],"changes":[{"field":"feed","value":{"verb":"add"}}]}]}`
	evs, err := src.Convert(&sources.Request{Method: http.MethodPost, Body: []byte(body)})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`{"object":"page","extra":1,"entry":[{"id":"9","time":1795169712350,"hint":"x","changes":[{"field":"feed","value":{"verb":"add"}}]}]}`,
		`{"object":"page","extra":1,"entry":[{"id":"9","time":1795169712350,"hint":"x","messaging":[{"sender":{"id":"5"},"recipient":{"id":"9"},"timestamp":1795169711984,"message":{"mid":"m_1","text":"a < b & c"}}]}]}`,
		`{"object":"page","extra":1,"entry":[{"id":"9","time":1795169712350,"hint":"x","messaging":[{"sender":{"id":"5"},"recipient":{"id":"9"},"read":{"watermark":1}}]}]}`,
	}
	if len(evs) != len(want) {
		t.Fatalf("%d events", len(evs))
	}
	for i, ev := range evs {
		if string(ev.Data()) != want[i] {
			t.Errorf("event %d data\n got %s\nwant %s", i, ev.Data(), want[i])
		}
	}
	if evs[1].ID() != "m_1" {
		t.Errorf("message id %q, want its mid", evs[1].ID())
	}
}

func TestConvertRejectsWhatIsNotANotification(t *testing.T) {
	src := testSource(t)
	sourcetest.CheckNotObjects(t, src)
	for name, body := range map[string]string{
		"no object":           `{"entry":[{"id":"1","changes":[{"field":"f","value":{}}]}]}`,
		"object not a string": `{"object":7,"entry":[{"id":"1","changes":[{"field":"f","value":{}}]}]}`,
		"blank object":        `{"object":" ","entry":[{"id":"1","changes":[{"field":"f","value":{}}]}]}`,
		"no entry":            `{"object":"page"}`,
		"entry not an array":  `{"object":"page","entry":{"id":"1"}}`,
		"empty entry":         `{"object":"page","entry":[]}`,
		"an entry not object": `{"object":"page","entry":[1]}`,
		"a null entry":        `{"object":"page","entry":[null]}`,
		"changes not array":   `{"object":"page","entry":[{"id":"1","changes":{"field":"f"}}]}`,
		"an item not object":  `{"object":"page","entry":[{"id":"1","messaging":["x"]}]}`,
		"only empty lists":    `{"object":"page","entry":[{"id":"1","messaging":[]},{"id":"2","changes":[]}]}`,
	} {
		if evs, err := src.Convert(&sources.Request{Method: http.MethodPost, Body: []byte(body)}); err == nil {
			t.Errorf("%s: converted into %d events", name, len(evs))
		}
	}
}

func TestHandshake(t *testing.T) {
	src := testSource(t)
	token := sourcetest.ReadFile(t, "testdata/verify_token")
	req := func(method string, q url.Values) *sources.Request {
		return &sources.Request{Method: method, Header: http.Header{}, Query: q}
	}
	for _, c := range []struct {
		name   string
		q      url.Values
		reason string // "" accepted; "other" a malformed request
	}{
		{"right", url.Values{ModeParam: {"subscribe"}, ChallengeParam: {"42"}, VerifyTokenParam: {token}}, ""},
		{"token with a byte more", url.Values{ModeParam: {"subscribe"}, ChallengeParam: {"42"}, VerifyTokenParam: {token + "0"}}, "bad_key"},
		{"token cut short", url.Values{ModeParam: {"subscribe"}, ChallengeParam: {"42"}, VerifyTokenParam: {token[:len(token)-1]}}, "bad_key"},
		{"no token", url.Values{ModeParam: {"subscribe"}, ChallengeParam: {"42"}}, "bad_key"},
		{"another mode", url.Values{ModeParam: {"unsubscribe"}, ChallengeParam: {"42"}, VerifyTokenParam: {token}}, "other"},
		{"no challenge", url.Values{ModeParam: {"subscribe"}, VerifyTokenParam: {token}}, "other"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := req(http.MethodGet, c.q)
			if !src.IsHandshake(r) {
				t.Fatal("not taken for a handshake")
			}
			reply, err := src.Handshake(r)
			if c.reason == "" {
				if err != nil || reply.Status != http.StatusOK || string(reply.Body) != "42" || !strings.HasPrefix(reply.ContentType, "text/plain") {
					t.Fatalf("reply %+v, %v", reply, err)
				}
				return
			}
			if err == nil || sources.Reason(err) != c.reason {
				t.Fatalf("err %v, want reason %s", err, c.reason)
			}
		})
	}
	if src.IsHandshake(req(http.MethodPost, url.Values{ChallengeParam: {"1"}})) {
		t.Error("a POST taken for a handshake")
	}
	if src.IsHandshake(req(http.MethodGet, url.Values{"challenge": {"1"}})) {
		t.Error("a GET without hub.* parameters taken for a handshake")
	}
}

// bridge send's handshake and signature are what the source accepts.
func TestSignAndMakeHandshake(t *testing.T) {
	src := testSource(t)
	now := time.Unix(1795169730, 123456789)
	hreq, err := src.MakeHandshake(now)
	if err != nil {
		t.Fatal(err)
	}
	if hreq.Method != http.MethodGet || !src.IsHandshake(hreq) {
		t.Fatalf("%s %v is not a handshake", hreq.Method, hreq.Query)
	}
	reply, err := src.Handshake(hreq)
	if err != nil || string(reply.Body) != hreq.Query.Get(ChallengeParam) || reply.Body == nil {
		t.Fatalf("reply %q, %v; challenge %q", reply.Body, err, hreq.Query.Get(ChallengeParam))
	}
	for _, v := range accepted {
		body := sourcetest.Load(t, "testdata/"+v).Body
		req := &sources.Request{Method: http.MethodPost, Body: body, ReceivedAt: now}
		if err := src.Sign(req); err != nil {
			t.Fatal(err)
		}
		if err := src.Verify(req); err != nil {
			t.Fatalf("%s: %v", v, err)
		}
		if got, want := req.Header.Get(SignatureHeader), sourcetest.Load(t, "testdata/"+v).Header.Get(SignatureHeader); got != want {
			t.Fatalf("%s: signed %s, gen.sh's openssl signed %s", v, got, want)
		}
	}
}

// While the app secret is reset, either secret signs.
func TestRotation(t *testing.T) {
	cfg := testConfig(t)
	cfg.AppSecret, cfg.AppSecrets = "", []string{"the-new-app-secret", readSecret(t)}
	src := sourcetest.New[*Source](t, cfg)
	if err := src.Verify(sourcetest.Load(t, "testdata/whatsapp_message")); err != nil {
		t.Fatalf("the old secret's signature: %v", err)
	}
	if err := src.Verify(sourcetest.Load(t, "testdata/wrong_secret")); !errors.Is(err, sources.ErrSignatureMismatch) {
		t.Fatalf("a third secret's signature: %v", err)
	}
}

func TestVerifyRejects(t *testing.T) {
	src := testSource(t)
	ok := sourcetest.Load(t, "testdata/whatsapp_message")
	for name, mutate := range map[string]func(r *sources.Request){
		"a GET":            func(r *sources.Request) { r.Method = http.MethodGet },
		"uppercase prefix": func(r *sources.Request) { r.Header.Set(SignatureHeader, "SHA256="+r.Header.Get(SignatureHeader)[7:]) },
		"cut short":        func(r *sources.Request) { r.Header.Set(SignatureHeader, r.Header.Get(SignatureHeader)[:60]) },
		"a byte appended":  func(r *sources.Request) { r.Body = append(r.Body, ' ') },
		"sha1 and sha256=x": func(r *sources.Request) {
			r.Header.Set(SignatureHeader, "sha256=xyz")
			r.Header.Set(LegacySignatureHeader, "sha1=00")
		},
	} {
		r := sourcetest.Load(t, "testdata/whatsapp_message")
		mutate(r)
		if err := src.Verify(r); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	upper := sourcetest.Load(t, "testdata/whatsapp_message")
	upper.Header.Set(SignatureHeader, "sha256="+strings.ToUpper(ok.Header.Get(SignatureHeader)[7:]))
	if err := src.Verify(upper); err != nil {
		t.Errorf("upper-case hex digits: %v", err)
	}
}

func TestExampleDecodes(t *testing.T) {
	common, decoded := sourcetest.DecodeExample(t, Type, "a-value")
	if cfg := decoded.(*Config); common.Type != Type || cfg.AppSecret != "a-value" || cfg.VerifyToken != "a-value" {
		t.Fatalf("decoded %q %+v", common.Type, cfg)
	}
}

func TestConfigValidate(t *testing.T) {
	cases := []struct {
		name  string
		cfg   Config
		blame []string
	}{
		{"secret", Config{VerifyToken: "t", AppSecret: "s"}, nil},
		{"secrets", Config{VerifyToken: "t", AppSecrets: []string{"new", "old"}}, nil},
		{"nothing", Config{}, []string{"verify_token", "app_secret"}},
		{"no verify token", Config{AppSecret: "s"}, []string{"verify_token"}},
		{"blank verify token", Config{VerifyToken: "  ", AppSecret: "s"}, []string{"verify_token"}},
		{"no secret", Config{VerifyToken: "t"}, []string{"app_secret"}},
		{"both", Config{VerifyToken: "t", AppSecret: "s", AppSecrets: []string{"u"}}, []string{"app_secrets"}},
		{"an empty one", Config{VerifyToken: "t", AppSecrets: []string{"new", ""}}, []string{"app_secrets"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sourcetest.CheckBlamed(t, c.cfg.Validate(), c.blame)
		})
	}
	if _, err := (&Config{}).NewSource(); err == nil {
		t.Fatal("NewSource built a source from an invalid config")
	}
}

func FuzzVerify(f *testing.F) {
	src := testSource(f)
	for _, req := range sourcetest.Seeds(f, "testdata") {
		f.Add(req.Header.Get(SignatureHeader), req.Body)
	}
	key := []byte(readSecret(f))
	f.Fuzz(func(t *testing.T, sigHeader string, body []byte) {
		h := http.Header{}
		h.Set(SignatureHeader, sigHeader)
		if err := src.Verify(&sources.Request{Method: http.MethodPost, Header: h, Body: body}); err != nil {
			return
		}
		// Only a real signature may pass: recompute it independently.
		m := hmac.New(sha256.New, key)
		m.Write(body)
		got, err := hex.DecodeString(strings.TrimPrefix(strings.TrimSpace(h.Get(SignatureHeader)), "sha256="))
		if err != nil || !hmac.Equal(got, m.Sum(nil)) {
			t.Fatalf("accepted signature %q for a body it does not sign", sigHeader)
		}
	})
}

func FuzzConvert(f *testing.F) {
	src := testSource(f)
	for _, req := range sourcetest.Seeds(f, "testdata") {
		f.Add(req.Body)
	}
	f.Add([]byte(`{"object":"page","entry":[{"id":"a b/%","time":"x","standby":[{"sender":{"id":1},"message":{"mid":true}}],"zz":[]}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		req := &sources.Request{Method: http.MethodPost, Header: http.Header{}, Body: body, ReceivedAt: time.Unix(1795169730, 0)}
		sourcetest.CheckConvert(t, src, req)
		evs, err := src.Convert(req)
		if err != nil {
			return
		}
		// Ids are what a retry is recognised by: never empty, and a
		// second conversion of the same body gives the same ones.
		again, err := src.Convert(req)
		if err != nil || len(again) != len(evs) {
			t.Fatalf("a second conversion: %d events, %v", len(again), err)
		}
		for i, ev := range evs {
			if ev.ID() == "" || ev.ID() != again[i].ID() {
				t.Fatalf("event %d id %q then %q", i, ev.ID(), again[i].ID())
			}
		}
	})
}

// A WhatsApp change holding several statuses or messages is one event per
// status and message, each with its wamid id and its own sender, so that a
// retry that carries one of them alone is the same event.
func TestChangeWithSeveralItemsIsAnEventEach(t *testing.T) {
	src := testSource(t)
	convertBody := func(body string) []*event.Event {
		t.Helper()
		evs, err := src.Convert(&sources.Request{Method: http.MethodPost, Body: []byte(body)})
		if err != nil {
			t.Fatal(err)
		}
		return evs
	}
	change := func(value string) string {
		return `{"object":"whatsapp_business_account","entry":[{"id":"WABA1","changes":[{"field":"messages","value":` + value + `}]}]}`
	}
	const meta = `"messaging_product":"whatsapp","metadata":{"phone_number_id":"P1"}`
	statuses := convertBody(change(`{` + meta + `,"statuses":[` +
		`{"id":"wamid.S1","status":"delivered","timestamp":"1795169700","recipient_id":"111"},` +
		`{"id":"wamid.S2","status":"read","timestamp":"1795169701","recipient_id":"222"}]}`))
	if len(statuses) != 2 || statuses[0].ID() != "wamid.S1:delivered" || statuses[1].ID() != "wamid.S2:read" ||
		statuses[0].Subject() != "111" || statuses[1].Subject() != "222" {
		t.Fatalf("two statuses: %v", statuses)
	}
	alone := convertBody(change(`{` + meta + `,"statuses":[{"id":"wamid.S1","status":"delivered","timestamp":"1795169700","recipient_id":"111"}]}`))
	if len(alone) != 1 || alone[0].ID() != statuses[0].ID() || !sourcetest.SameJSON(alone[0].Data(), statuses[0].Data()) {
		t.Fatalf("the first status alone: %v, want the same event as in the batch", alone)
	}

	messages := convertBody(change(`{` + meta + `,"contacts":[{"profile":{"name":"Ada"},"wa_id":"111"},{"profile":{"name":"Bo"},"wa_id":"222"}],"messages":[` +
		`{"from":"111","id":"wamid.M1","timestamp":"1795169700","type":"text","text":{"body":"hi"}},` +
		`{"from":"222","id":"wamid.M2","timestamp":"1795169702","type":"text","text":{"body":"yo"}}]}`))
	if len(messages) != 2 || messages[0].ID() != "wamid.M1" || messages[1].ID() != "wamid.M2" ||
		messages[0].Subject() != "111" || messages[1].Subject() != "222" {
		t.Fatalf("two messages: %v", messages)
	}
	if data := string(messages[1].Data()); strings.Contains(data, "Ada") || strings.Contains(data, "wamid.M1") || !strings.Contains(data, `"phone_number_id":"P1"`) {
		t.Errorf("the second message's data holds the first's sender or message, or lost the metadata: %s", data)
	}
}
