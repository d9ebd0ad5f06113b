package userecho

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"hash"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/hookbridge/hookbridge/sources"
	"github.com/hookbridge/hookbridge/sources/sourcetest"
)

const account = "https://acme.userecho.com"

var received = time.Date(2026, 11, 20, 10, 15, 30, 0, time.UTC)

func readSecret(t testing.TB) string {
	t.Helper()
	return sourcetest.ReadFile(t, "testdata/secret")
}

func testSource(t testing.TB, withSecret bool) *Source {
	t.Helper()
	cfg := &Config{Account: account}
	if withSecret {
		cfg.Secret = readSecret(t)
	}
	return sourcetest.New[*Source](t, cfg)
}

func TestVectors(t *testing.T) {
	t.Run("signed", func(t *testing.T) { sourcetest.Run(t, testSource(t, true), "testdata/signed") })
	t.Run("unsigned", func(t *testing.T) { sourcetest.Run(t, testSource(t, false), "testdata/unsigned") })
}

// TestVectorIDs compares each recorded event's id with the one gen.sh
// worked out on its own (jq) from the documented rule.
func TestVectorIDs(t *testing.T) {
	sourcetest.CheckIDs(t, "testdata")
}

func TestConfigValidate(t *testing.T) {
	cases := []struct {
		name     string
		cfg      Config
		wantErr  []string // the fields blamed
		needsIPs bool
	}{
		{"signed", Config{Secret: "k", Account: account}, nil, false},
		{"unsigned", Config{Account: account}, nil, true},
		{"no account", Config{Secret: "k"}, []string{"account"}, false},
		{"blank secret", Config{Secret: " ", Account: account}, []string{"secret"}, false},
		{"relative account", Config{Account: "acme.userecho.com"}, []string{"account"}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.cfg.Validate()
			sourcetest.CheckBlamed(t, err, c.wantErr)
			if c.cfg.NeedsAllowIPs() != c.needsIPs {
				t.Fatalf("NeedsAllowIPs %v", c.cfg.NeedsAllowIPs())
			}
		})
	}
}

func TestExampleDecodes(t *testing.T) {
	common, cfg := sourcetest.DecodeExample(t, "userecho", "from-env")
	if common.Type != "userecho" || cfg.(*Config).Account != account || cfg.(*Config).Secret != "from-env" {
		t.Fatalf("type %q, config %+v", common.Type, cfg)
	}
}

func mac(h func() hash.Hash, key string, body []byte) string {
	m := hmac.New(h, []byte(key))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

func TestVerify(t *testing.T) {
	secret := readSecret(t)
	body := sourcetest.Load(t, "testdata/signed/topic_created").Body
	sha1Sig, sha256Sig := mac(sha1.New, secret, body), mac(sha256.New, secret, body)
	cases := []struct {
		name       string
		withSecret bool
		method     string
		header     string
		want       error
	}{
		{"sha1", true, http.MethodPost, sha1Sig, nil},
		{"sha256", true, http.MethodPost, sha256Sig, nil},
		{"sha1 upper case", true, http.MethodPost, strings.ToUpper(sha1Sig), nil},
		{"sha256 with spaces", true, http.MethodPost, " " + sha256Sig + "\t", nil},
		{"sha512", true, http.MethodPost, mac(sha512.New, secret, body), sources.ErrMalformedSignature},
		{"sha1 of another key", true, http.MethodPost, mac(sha1.New, "other", body), sources.ErrSignatureMismatch},
		{"sha256 cut to 40", true, http.MethodPost, sha256Sig[:40], sources.ErrSignatureMismatch},
		{"sha1 padded to 64", true, http.MethodPost, sha1Sig + strings.Repeat("0", 24), sources.ErrSignatureMismatch},
		{"41 characters", true, http.MethodPost, sha1Sig + "0", sources.ErrMalformedSignature},
		{"sha1= prefix is not UserEcho's format", true, http.MethodPost, "sha1=" + sha1Sig, sources.ErrMalformedSignature},
		{"missing", true, http.MethodPost, "", sources.ErrMissingSignature},
		{"no secret: anything goes", false, http.MethodPost, "", nil},
		{"no secret: bad signature ignored", false, http.MethodPost, "nonsense", nil},
		{"GET", true, http.MethodGet, sha1Sig, sources.ErrMethodNotAllowed},
		{"GET without secret", false, http.MethodGet, "", sources.ErrMethodNotAllowed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := &sources.Request{Method: c.method, Header: http.Header{}, Body: body, ReceivedAt: received}
			if c.header != "" {
				req.Header.Set(SignatureHeader, c.header)
			}
			err := testSource(t, c.withSecret).Verify(req)
			if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
}

func TestVerifyDoesNotLeakTheSignature(t *testing.T) {
	req := sourcetest.Load(t, "testdata/signed/tampered")
	err := testSource(t, true).Verify(req)
	if err == nil || strings.Contains(err.Error(), req.Header.Get(SignatureHeader)) || strings.Contains(err.Error(), readSecret(t)) {
		t.Fatalf("error %v", err)
	}
}

func TestSignThenVerify(t *testing.T) {
	src := testSource(t, true)
	for _, name := range []string{"topic_created", "comment_deleted"} {
		req := sourcetest.Load(t, "testdata/signed/"+name)
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
	unsigned := testSource(t, false)
	req := &sources.Request{Method: http.MethodPost, Body: []byte(`{}`)}
	if err := unsigned.Sign(req); err != nil || req.Header.Get(SignatureHeader) != "" {
		t.Fatalf("without a secret Sign must not sign: %v %v", err, req.Header)
	}
}

// TestIDStableAcrossRetries: UserEcho posts a failed delivery again with the
// same envelope, so the id <hook>:<data.id>:<created> repeats; distinct
// events differ in one of the three.
func TestIDStableAcrossRetries(t *testing.T) {
	src := testSource(t, false)
	cases := []sourcetest.IDCase{
		sourcetest.ID("retry", `{"hook":"topic.created","created":"2026-11-20T10:12:08.306Z","data":{"id":1,"vote":{"total":0}}}`,
			`{"hook":"topic.created","created":"2026-11-20T10:12:08.306Z","data":{"id":1,"vote":{"total":0}}}`, true, "topic.created:1:2026-11-20T10:12:08.306Z"),
		sourcetest.ID("retry with data changed meanwhile", `{"hook":"topic.created","created":"2026-11-20T10:12:08.306Z","data":{"id":1,"vote":{"total":0}}}`,
			`{"hook":"topic.created","created":"2026-11-20T10:12:08.306Z","data":{"id":1,"vote":{"total":4}}}`, true, "topic.created:1:2026-11-20T10:12:08.306Z"),
		sourcetest.ID("two satisfaction changes", `{"hook":"topic.satisfaction_changed","created":"2026-11-20T10:12:08Z","data":{"id":1}}`,
			`{"hook":"topic.satisfaction_changed","created":"2026-11-20T10:13:08Z","data":{"id":1}}`, false, "topic.satisfaction_changed:1:2026-11-20T10:12:08Z"),
		sourcetest.ID("created and accepted at once", `{"hook":"comment.created","created":"2026-11-20T10:12:08Z","data":{"id":1}}`,
			`{"hook":"comment.accepted","created":"2026-11-20T10:12:08Z","data":{"id":1}}`, false, "comment.created:1:2026-11-20T10:12:08Z"),
		sourcetest.ID("created from data when the envelope has none", `{"hook":"topic.created","data":{"id":"7","created":"2026-11-20T10:00:00Z"}}`,
			`{"hook":"topic.created","data":{"id":"7","created":"2026-11-20T10:00:00Z"}}`, true, "topic.created:7:2026-11-20T10:00:00Z"),
		sourcetest.ID("no created at all", `{"hook":"topic.created","data":{"id":7}}`, `{"hook":"topic.created","data":{"id":7,"x":1}}`, false, ""),
		sourcetest.ID("no data id", `{"hook":"topic.created","created":"2026-11-20T10:00:00Z","data":{}}`, `{"hook":"topic.created","created":"2026-11-20T10:00:00Z","data":{}}`, true, ""),
	}
	sourcetest.CheckIDStability(t, src, received, cases)
}

// Each part of the id (hook:data.id:created) keeps text that is not valid
// Unicode apart from its U+FFFD twin.
func TestInvalidUTF8KeepsEventsApart(t *testing.T) {
	src := testSource(t, false)
	for _, body := range []string{
		`{"hook":"topic.created","created":"2026-11-20T10:12:08Z","data":{"id":"<TEXT>"}}`,
		`{"hook":"topic.<TEXT>","created":"2026-11-20T10:12:08Z","data":{"id":1}}`,
		`{"hook":"topic.created","created":"<TEXT>","data":{"id":1}}`,
		`{"hook":"topic.created","data":{"id":1,"created":"<TEXT>"}}`,
	} {
		sourcetest.CheckInvalidTextIDs(t, src, body)
	}
}

func convertOne(t *testing.T, src *Source, body string) *event.Event {
	t.Helper()
	return sourcetest.ConvertOne(t, src, &sources.Request{Method: http.MethodPost, Body: []byte(body), ReceivedAt: received})
}

func TestConvertMapping(t *testing.T) {
	src := testSource(t, false)
	cases := []struct {
		name, body, wantType, wantSubject, wantTime string
	}{
		{"topic", `{"hook":"topic.accepted","created":"2026-11-20T10:12:08.306Z","data":{"id":9}}`, "com.userecho.topic.accepted", "topics/9", "2026-11-20T10:12:08.306Z"},
		{"comment", `{"hook":"comment.deleted","created":"2026-11-20T12:12:08+02:00","data":{"id":"10"}}`, "com.userecho.comment.deleted", "comments/10", "2026-11-20T10:12:08Z"},
		{"unknown object", `{"hook":"Article Published","data":{"id":9}}`, "com.userecho.article.published", "", ""},
		{"no hook", `{"data":{"id":9}}`, "com.userecho.unknown", "", ""},
		{"no data", `{"hook":"topic.created"}`, "com.userecho.topic.created", "", ""},
		{"created past year 9999 in UTC is ignored", `{"hook":"topic.created","created":"9999-12-31T23:00:00-05:00","data":{"id":1}}`, "com.userecho.topic.created", "topics/1", ""},
		{"created not a time", `{"hook":"topic.created","created":"yesterday","data":{"id":1}}`, "com.userecho.topic.created", "topics/1", ""},
		// The object's created, as the id falls back to it too.
		{"created only in data", `{"hook":"comment.created","data":{"id":5,"created":"2014-04-25T05:00:00Z"}}`, "com.userecho.comment.created", "comments/5", "2014-04-25T05:00:00Z"},
		{"the envelope's created first", `{"hook":"comment.created","created":"2026-11-20T10:00:00Z","data":{"id":5,"created":"2014-04-25T05:00:00Z"}}`, "com.userecho.comment.created", "comments/5", "2026-11-20T10:00:00Z"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sourcetest.CheckFields(t, convertOne(t, src, c.body), sourcetest.Fields{
				Type: c.wantType, Source: account, Subject: c.wantSubject, Time: c.wantTime, Data: c.body,
			})
		})
	}
}

func TestConvertRejectsNonObjects(t *testing.T) {
	sourcetest.CheckNotObjects(t, testSource(t, false), `"topic.created"`, `{"hook":`)
}

func FuzzVerify(f *testing.F) {
	src := testSource(f, true)
	secret := readSecret(f)
	for _, req := range sourcetest.Seeds(f, "testdata/signed") {
		f.Add(req.Header.Get(SignatureHeader), req.Body)
	}
	f.Fuzz(func(t *testing.T, header string, body []byte) {
		req := &sources.Request{Method: http.MethodPost, Header: http.Header{SignatureHeader: {header}}, Body: body, ReceivedAt: received}
		if src.Verify(req) != nil {
			return
		}
		// Only a real signature may pass: recompute it independently.
		sig := strings.ToLower(strings.TrimSpace(header))
		if sig != mac(sha1.New, secret, body) && sig != mac(sha256.New, secret, body) {
			t.Fatalf("accepted header %q for a body it does not sign", header)
		}
	})
}

func FuzzConvert(f *testing.F) {
	src := testSource(f, false)
	for _, dir := range []string{"testdata/signed", "testdata/unsigned"} {
		for _, req := range sourcetest.Seeds(f, dir) {
			f.Add(req.Body)
		}
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		// CheckConvert also reads each event back from JSON, as the queue does.
		sourcetest.CheckConvert(t, src, &sources.Request{Method: http.MethodPost, Body: body, ReceivedAt: received})
	})
}
