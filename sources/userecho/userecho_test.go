package userecho

import (
	"bufio"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"hash"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"gopkg.in/yaml.v3"

	"github.com/hookbridge/hookbridge/config"
	"github.com/hookbridge/hookbridge/sources"
	"github.com/hookbridge/hookbridge/sources/sourcetest"
)

const account = "https://acme.userecho.com"

var received = time.Date(2026, 11, 20, 10, 15, 30, 0, time.UTC)

func readSecret(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile("testdata/secret")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func testSource(t testing.TB, withSecret bool) *Source {
	t.Helper()
	cfg := &Config{Account: account}
	if withSecret {
		cfg.Secret = readSecret(t)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	src, err := cfg.NewSource()
	if err != nil {
		t.Fatal(err)
	}
	return src.(*Source)
}

func TestVectors(t *testing.T) {
	t.Run("signed", func(t *testing.T) { sourcetest.Run(t, testSource(t, true), "testdata/signed") })
	t.Run("unsigned", func(t *testing.T) { sourcetest.Run(t, testSource(t, false), "testdata/unsigned") })
}

// TestVectorIDs compares each recorded event's id with the one gen.sh
// worked out on its own (jq) from the documented rule.
func TestVectorIDs(t *testing.T) {
	f, err := os.Open("testdata/ids.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	for sc := bufio.NewScanner(f); sc.Scan(); {
		name, want, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		n++
		data, err := os.ReadFile(filepath.Join("testdata", name, "want.json"))
		if err != nil {
			t.Fatal(err)
		}
		var w sourcetest.Want
		if err := json.Unmarshal(data, &w); err != nil || len(w.Events) != 1 {
			t.Fatalf("%s: want.json holds %d events (%v)", name, len(w.Events), err)
		}
		var ev struct{ ID string }
		if err := json.Unmarshal(w.Events[0], &ev); err != nil {
			t.Fatal(err)
		}
		if ev.ID != want {
			t.Errorf("%s: want.json id %q, gen.sh worked out %q", name, ev.ID, want)
		}
	}
	if n == 0 {
		t.Fatal("ids.txt is empty")
	}
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
			var got []string
			for _, e := range unwrapAll(err) {
				var fe *config.FieldError
				if !errors.As(e, &fe) {
					t.Fatalf("not a FieldError: %v", e)
				}
				got = append(got, fe.Field)
			}
			if strings.Join(got, ",") != strings.Join(c.wantErr, ",") {
				t.Fatalf("blamed %v, want %v (%v)", got, c.wantErr, err)
			}
			if c.cfg.NeedsAllowIPs() != c.needsIPs {
				t.Fatalf("NeedsAllowIPs %v", c.cfg.NeedsAllowIPs())
			}
		})
	}
}

func unwrapAll(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

func TestExampleDecodes(t *testing.T) {
	reg, ok := sources.Lookup("userecho")
	if !ok {
		t.Fatal("userecho is not registered")
	}
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(reg.Example), &doc); err != nil {
		t.Fatal(err)
	}
	_, node := config.Lookup(doc.Content[0], "userecho")
	if node == nil {
		t.Fatal("the example does not define a userecho source")
	}
	d := &config.Decoder{File: "example.yaml"}
	d.Expand(node, func(string) (string, bool) { return "from-env", true })
	var common struct {
		Type string `yaml:"type"`
	}
	cfg := reg.NewConfig()
	d.DecodeInto(node, &common, cfg)
	d.Validate(node, cfg)
	if err := d.Err(); err != nil {
		t.Fatal(err)
	}
	if common.Type != "userecho" {
		t.Fatalf("type %q", common.Type)
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
	cases := []struct {
		name  string
		a, b  string
		same  bool
		wantA string // "" when the id is the body's SHA-256
	}{
		{"retry", `{"hook":"topic.created","created":"2026-11-20T10:12:08.306Z","data":{"id":1,"vote":{"total":0}}}`,
			`{"hook":"topic.created","created":"2026-11-20T10:12:08.306Z","data":{"id":1,"vote":{"total":0}}}`, true, "topic.created:1:2026-11-20T10:12:08.306Z"},
		{"retry with data changed meanwhile", `{"hook":"topic.created","created":"2026-11-20T10:12:08.306Z","data":{"id":1,"vote":{"total":0}}}`,
			`{"hook":"topic.created","created":"2026-11-20T10:12:08.306Z","data":{"id":1,"vote":{"total":4}}}`, true, "topic.created:1:2026-11-20T10:12:08.306Z"},
		{"two satisfaction changes", `{"hook":"topic.satisfaction_changed","created":"2026-11-20T10:12:08Z","data":{"id":1}}`,
			`{"hook":"topic.satisfaction_changed","created":"2026-11-20T10:13:08Z","data":{"id":1}}`, false, "topic.satisfaction_changed:1:2026-11-20T10:12:08Z"},
		{"created and accepted at once", `{"hook":"comment.created","created":"2026-11-20T10:12:08Z","data":{"id":1}}`,
			`{"hook":"comment.accepted","created":"2026-11-20T10:12:08Z","data":{"id":1}}`, false, "comment.created:1:2026-11-20T10:12:08Z"},
		{"created from data when the envelope has none", `{"hook":"topic.created","data":{"id":"7","created":"2026-11-20T10:00:00Z"}}`,
			`{"hook":"topic.created","data":{"id":"7","created":"2026-11-20T10:00:00Z"}}`, true, "topic.created:7:2026-11-20T10:00:00Z"},
		{"no created at all", `{"hook":"topic.created","data":{"id":7}}`, `{"hook":"topic.created","data":{"id":7,"x":1}}`, false, ""},
		{"no data id", `{"hook":"topic.created","created":"2026-11-20T10:00:00Z","data":{}}`, `{"hook":"topic.created","created":"2026-11-20T10:00:00Z","data":{}}`, true, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a, b := convertOne(t, src, c.a), convertOne(t, src, c.b)
			if (a.ID() == b.ID()) != c.same {
				t.Fatalf("ids %q and %q; same=%v wanted", a.ID(), b.ID(), c.same)
			}
			want := c.wantA
			if want == "" {
				want = sources.SHA256Hex([]byte(c.a))
			}
			if a.ID() != want {
				t.Fatalf("id %q, want %q", a.ID(), want)
			}
		})
	}
}

func convertOne(t *testing.T, src *Source, body string) *event.Event {
	t.Helper()
	evs, err := src.Convert(&sources.Request{Method: http.MethodPost, Body: []byte(body), ReceivedAt: received})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 {
		t.Fatalf("%d events", len(evs))
	}
	if err := evs[0].Validate(); err != nil {
		t.Fatal(err)
	}
	return evs[0]
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
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ev := convertOne(t, src, c.body)
			if ev.Type() != c.wantType || ev.Subject() != c.wantSubject || ev.Source() != account {
				t.Fatalf("type %q subject %q source %q", ev.Type(), ev.Subject(), ev.Source())
			}
			got := ""
			if !ev.Time().IsZero() {
				got = ev.Time().Format(time.RFC3339Nano)
			}
			if got != c.wantTime {
				t.Fatalf("time %q, want %q", got, c.wantTime)
			}
			if string(ev.Data()) != c.body {
				t.Fatal("data must be the body as received")
			}
		})
	}
}

func TestConvertRejectsNonObjects(t *testing.T) {
	src := testSource(t, false)
	for _, body := range []string{``, `[]`, `"topic.created"`, `{"hook":`, `{"a":1} {"b":2}`, `null`, `{}}`, `{"a":1}]`, `{}\x00`} {
		_, err := src.Convert(&sources.Request{Method: http.MethodPost, Body: []byte(body)})
		if !errors.Is(err, sources.ErrNotJSON) {
			t.Errorf("%q: got %v, want ErrNotJSON", body, err)
		}
	}
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
		req := &sources.Request{Method: http.MethodPost, Body: body, ReceivedAt: received}
		sourcetest.CheckConvert(t, src, req)
		evs, err := src.Convert(req)
		if err != nil {
			return
		}
		// The event must also survive the queue: marshal and read back.
		for _, ev := range evs {
			b, err := json.Marshal(ev)
			if err != nil {
				t.Fatal(err)
			}
			var back event.Event
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatalf("event does not read back: %v\n%s", err, b)
			}
			if back.ID() != ev.ID() || back.Type() != ev.Type() || back.Source() != ev.Source() || back.Subject() != ev.Subject() {
				t.Fatalf("event changed on the way back: %s", b)
			}
		}
	})
}
