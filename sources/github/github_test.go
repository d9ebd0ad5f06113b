package github

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
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
	return newSource(t, &Config{Secret: readSecret(t)})
}

func TestVectors(t *testing.T) {
	sourcetest.Run(t, testSource(t), "testdata")
}

func TestExampleDecodes(t *testing.T) {
	common, decoded := sourcetest.DecodeExample(t, Type, "a-secret")
	if cfg := decoded.(*Config); common.Type != Type || cfg.Secret != "a-secret" {
		t.Fatalf("decoded %q %+v", common.Type, cfg)
	}
}

func TestConfigValidate(t *testing.T) {
	cases := []struct {
		name  string
		cfg   Config
		blame []string
	}{
		{"secret", Config{Secret: "s"}, nil},
		{"secrets", Config{Secrets: []string{"new", "old"}}, nil},
		{"none", Config{}, []string{"secret"}},
		{"both", Config{Secret: "s", Secrets: []string{"t"}}, []string{"secrets"}},
		{"an empty one", Config{Secrets: []string{"new", ""}}, []string{"secrets"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sourcetest.CheckBlamed(t, c.cfg.Validate(), c.blame)
		})
	}
}

// GitHub's documentation gives one test value: the body "Hello, World!"
// under the secret "It's a Secret to Everybody".
func TestGitHubsDocumentedValue(t *testing.T) {
	src := newSource(t, &Config{Secret: "It's a Secret to Everybody"})
	req := &sources.Request{Method: http.MethodPost, Header: http.Header{}, Body: []byte("Hello, World!")}
	req.Header.Set(SignatureHeader, "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17")
	if err := src.Verify(req); err != nil {
		t.Fatal(err)
	}
}

// While the hook's secret is rotated, either secret signs.
func TestRotation(t *testing.T) {
	src := newSource(t, &Config{Secrets: []string{"the-new-secret", readSecret(t)}})
	if err := src.Verify(sourcetest.Load(t, "testdata/issues_opened")); err != nil {
		t.Fatalf("the old secret's signature: %v", err)
	}
	if err := src.Verify(sourcetest.Load(t, "testdata/wrong_key")); !errors.Is(err, sources.ErrSignatureMismatch) {
		t.Fatalf("a third secret's signature: %v", err)
	}
}

// bridge send's signature verifies, and the event it names fits the payload.
func TestSign(t *testing.T) {
	src := testSource(t)
	for vector, event := range map[string]string{"issues_opened": "issues", "pull_request_closed": "pull_request", "push": "push", "ping": "ping"} {
		body := sourcetest.Load(t, "testdata/"+vector).Body
		req := &sources.Request{Method: http.MethodPost, Header: http.Header{}, Body: body, ReceivedAt: time.Now()}
		if err := src.Sign(req); err != nil {
			t.Fatal(err)
		}
		if err := src.Verify(req); err != nil {
			t.Fatalf("%s: %v", vector, err)
		}
		if got := req.Header.Get(EventHeader); got != event {
			t.Errorf("%s: %s %q, want %q", vector, EventHeader, got, event)
		}
		if id := req.Header.Get(DeliveryHeader); len(id) != 36 || strings.Count(id, "-") != 4 {
			t.Errorf("%s: %s %q is not GUID-shaped", vector, DeliveryHeader, id)
		}
	}
}

// A redelivery (the same X-GitHub-Delivery) is the same event; another
// delivery of an identical payload is not.
func TestIDIsTheDelivery(t *testing.T) {
	src := testSource(t)
	first := sourcetest.Load(t, "testdata/issues_opened")
	again := sourcetest.Load(t, "testdata/issues_opened")
	again.ReceivedAt = again.ReceivedAt.Add(time.Hour)
	other := sourcetest.Load(t, "testdata/issues_opened")
	other.Header.Set(DeliveryHeader, "9a6f0d1e-cc78-11e3-81ab-4c9367dc0958")
	a, b, c := sourcetest.ConvertOne(t, src, first), sourcetest.ConvertOne(t, src, again), sourcetest.ConvertOne(t, src, other)
	if a.ID() != first.Header.Get(DeliveryHeader) || b.ID() != a.ID() || c.ID() == a.ID() {
		t.Fatalf("ids %q %q %q", a.ID(), b.ID(), c.ID())
	}
	none := sourcetest.Load(t, "testdata/issues_opened")
	none.Header.Del(DeliveryHeader)
	if ev := sourcetest.ConvertOne(t, src, none); ev.ID() != sources.SHA256Hex(none.Body) {
		t.Fatalf("without a delivery id: %q, want the body's SHA-256", ev.ID())
	}
}

// X-GitHub-Delivery's bytes need not be UTF-8: the id is, and two
// deliveries that differ only there stay two.
func TestInvalidUTF8KeepsEventsApart(t *testing.T) {
	req := sourcetest.Load(t, "testdata/issues_opened")
	sourcetest.CheckInvalidHeaderIDs(t, testSource(t), req, DeliveryHeader)
	req.Header.Set(DeliveryHeader, "d-\xff\xfe")
	if id := sourcetest.ConvertOne(t, testSource(t), req).ID(); id != `d-\xff\xfe` {
		t.Fatalf("id %q", id)
	}
}

func TestConvertNamesTheEvent(t *testing.T) {
	src := testSource(t)
	for _, c := range []struct {
		event, body, typ, source, subject string
	}{
		{"issue_comment", `{"action":"created","issue":{"number":7},"comment":{"id":1},"repository":{"html_url":"https://ghe.example.com/ops/infra"}}`,
			"com.github.issue_comment.created", "https://ghe.example.com/ops/infra", "issues/7"},
		{"release", `{"action":"published","release":{"tag_name":"v1.2.0"},"organization":{"login":"acme"}}`,
			"com.github.release.published", "https://github.com/acme", "releases/v1.2.0"},
		{"discussion", `{"action":"answered","discussion":{"number":12},"repository":{"html_url":"https://github.com/acme/widgets"}}`,
			"com.github.discussion.answered", "https://github.com/acme/widgets", "discussions/12"},
		{"create", `{"ref":"v2","ref_type":"tag","repository":{"html_url":"https://github.com/acme/widgets"}}`,
			"com.github.create", "https://github.com/acme/widgets", "v2"},
		{"Workflow Run", `{"action":"Completed","repository":{"html_url":"javascript:alert(1)"}}`,
			"com.github.workflow.run.completed", "https://github.com", ""},
		{"", `{}`, "com.github.unknown", "https://github.com", ""},
	} {
		req := &sources.Request{Method: http.MethodPost, Header: http.Header{}, Body: []byte(c.body), ReceivedAt: time.Now()}
		req.Header.Set(EventHeader, c.event)
		ev := sourcetest.ConvertOne(t, src, req)
		if ev.Type() != c.typ || ev.Source() != c.source || ev.Subject() != c.subject {
			t.Errorf("%s: type %q source %q subject %q; want %q %q %q", c.event, ev.Type(), ev.Source(), ev.Subject(), c.typ, c.source, c.subject)
		}
	}
}

func TestFormEncodedDeliveries(t *testing.T) {
	src := testSource(t)
	req := sourcetest.Load(t, "testdata/form_encoded")
	ev := sourcetest.ConvertOne(t, src, req)
	want := strings.TrimSpace(sourcetest.ReadFile(t, "testdata/issues_opened/body"))
	if !sourcetest.SameJSON(ev.Data(), []byte(want)) {
		t.Fatalf("data %s, want the payload field %s", ev.Data(), want)
	}
	for name, body := range map[string]string{"no payload": "a=b", "payload not JSON": url.Values{"payload": {"nope"}}.Encode(), "bad form": "%zz"} {
		req := &sources.Request{Method: http.MethodPost, Header: http.Header{}, Body: []byte(body)}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if _, err := src.Convert(req); err == nil {
			t.Errorf("%s: converted", name)
		}
	}
}

func TestConvertRejectsNonObjects(t *testing.T) {
	sourcetest.CheckNotObjects(t, testSource(t))
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
		f.Add(req.Header.Get(EventHeader), req.Header.Get(DeliveryHeader), req.Header.Get("Content-Type"), req.Body)
	}
	f.Add("issues", "d-\xff\xfe", "application/json", []byte(`{"action":"opened"}`))
	f.Fuzz(func(t *testing.T, eventName, delivery, contentType string, body []byte) {
		h := http.Header{}
		h.Set(EventHeader, eventName)
		h.Set(DeliveryHeader, delivery)
		h.Set("Content-Type", contentType)
		sourcetest.CheckConvert(t, src, &sources.Request{Header: h, Body: body, ReceivedAt: time.Unix(1795169730, 0)})
	})
}
