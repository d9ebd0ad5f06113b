package standardwebhooks

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
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

// otherSecret signs the wrong_key vector.
const otherSecret = "whsec_c2VjcmV0LW9mLWFub3RoZXItZW5kcG9pbnQtMTIz"

func readSecret(t testing.TB) string {
	t.Helper()
	return sourcetest.ReadFile(t, "testdata/secret")
}

func testConfig(t testing.TB) *Config {
	cfg := NewConfig()
	cfg.Secret = readSecret(t)
	cfg.Source = "https://billing.example.com"
	cfg.SubjectPath = "data.id"
	return cfg
}

func newSource(t testing.TB, cfg *Config) *Source {
	t.Helper()
	return sourcetest.New[*Source](t, cfg)
}

func TestVectors(t *testing.T) {
	sourcetest.Run(t, newSource(t, testConfig(t)), "testdata")
}

func TestExampleDecodes(t *testing.T) {
	common, decoded := sourcetest.DecodeExample(t, "standardwebhooks", "whsec_c2VjcmV0")
	cfg := decoded.(*Config)
	if common.Type != "standardwebhooks" || cfg.TypePrefix != "com.example.billing." || cfg.TypePath != "type" {
		t.Fatalf("decoded %q %+v", common.Type, cfg)
	}
}

func TestConfigValidate(t *testing.T) {
	cases := []struct {
		name   string
		change func(c *Config)
		blame  []string
	}{
		{"valid", func(c *Config) {}, nil},
		{"secrets", func(c *Config) { c.Secret, c.Secrets = "", []string{c.Secret, otherSecret} }, nil},
		{"no secret", func(c *Config) { c.Secret = "" }, []string{"secret"}},
		{"secret and secrets", func(c *Config) { c.Secrets = []string{otherSecret} }, []string{"secrets"}},
		{"secret not base64", func(c *Config) { c.Secret = "whsec_not base64!" }, []string{"secret"}},
		{"asymmetric key", func(c *Config) { c.Secret = "whpk_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" }, []string{"secret"}},
		{"an empty entry", func(c *Config) { c.Secret, c.Secrets = "", []string{otherSecret, ""} }, []string{"secrets"}},
		{"negative tolerance", func(c *Config) { c.Tolerance = -1 }, []string{"tolerance"}},
		{"no source", func(c *Config) { c.Source = "" }, []string{"source"}},
		{"source not a URI", func(c *Config) { c.Source = "%zz" }, []string{"source"}},
		{"no type_path", func(c *Config) { c.TypePath = "" }, []string{"type_path"}},
		{"bad paths", func(c *Config) { c.TypePath, c.TimePath = "a.", ".." }, []string{"type_path", "time_path"}},
		{"subject_prefix alone", func(c *Config) { c.SubjectPath, c.SubjectPrefix = "", "x/" }, []string{"subject_prefix"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := testConfig(t)
			c.change(cfg)
			err := cfg.Validate()
			sourcetest.CheckBlamed(t, err, c.blame)
		})
	}
}

func TestDecodeSecret(t *testing.T) {
	want, _ := base64.StdEncoding.DecodeString("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	for _, s := range []string{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", " whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n"} {
		got, err := DecodeSecret(s)
		if err != nil || !hmac.Equal(got, want) {
			t.Errorf("%q: %x, %v", s, got, err)
		}
	}
	for _, s := range []string{"", "whsec_", "whsec_***", "whsk_abcd", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS"} {
		if _, err := DecodeSecret(s); err == nil {
			t.Errorf("%q: accepted", s)
		}
	}
}

func TestRotation(t *testing.T) {
	cfg := testConfig(t)
	cfg.Secret, cfg.Secrets = "", []string{otherSecret, readSecret(t)}
	src := newSource(t, cfg)
	for _, vector := range []string{"invoice_paid", "wrong_key"} {
		if err := src.Verify(sourcetest.Load(t, "testdata/"+vector)); err != nil {
			t.Errorf("%s: %v", vector, err)
		}
	}
	if err := src.Verify(sourcetest.Load(t, "testdata/secret_as_text")); !errors.Is(err, sources.ErrSignatureMismatch) {
		t.Errorf("secret_as_text: %v", err)
	}
}

func TestSignMatchesSpecification(t *testing.T) {
	src := newSource(t, testConfig(t))
	req := &sources.Request{
		Header:     http.Header{IDHeader: {"msg_p5jXN8AQM9LWM0D4loKWxJek"}},
		Body:       []byte(`{"test": 2432232314}`),
		ReceivedAt: time.Unix(1614265330, 0),
	}
	if err := src.Sign(req); err != nil {
		t.Fatal(err)
	}
	if got := req.Header.Get(SignatureHeader); got != "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=" {
		t.Fatalf("Sign made %q", got)
	}
	if got := req.Header.Get(TimestampHeader); got != "1614265330" {
		t.Fatalf("timestamp %q", got)
	}
	if err := src.Verify(req); err != nil {
		t.Fatal(err)
	}
}

// bridge send of the same payload a second later is a retry of the same
// message: the same webhook-id under a new timestamp and signature.
func TestSignKeepsTheIDOfAPayload(t *testing.T) {
	src := newSource(t, testConfig(t))
	sign := func(at time.Time) *sources.Request {
		req := sourcetest.Load(t, "testdata/invoice_paid")
		req.Header, req.ReceivedAt = http.Header{}, at
		if err := src.Sign(req); err != nil {
			t.Fatal(err)
		}
		return req
	}
	first, again := sign(time.Unix(1700000000, 0)), sign(time.Unix(1700000001, 0))
	if first.Header.Get(IDHeader) != again.Header.Get(IDHeader) {
		t.Errorf("webhook-id %q, then %q for the same payload", first.Header.Get(IDHeader), again.Header.Get(IDHeader))
	}
	if first.Header.Get(SignatureHeader) == again.Header.Get(SignatureHeader) {
		t.Errorf("the same signature at two timestamps")
	}
	other := sourcetest.Load(t, "testdata/invoice_paid")
	other.Header, other.ReceivedAt = http.Header{}, time.Unix(1700000000, 0)
	other.Body = append(append([]byte(nil), other.Body...), '\n') // another payload
	if err := src.Sign(other); err != nil {
		t.Fatal(err)
	}
	if other.Header.Get(IDHeader) == first.Header.Get(IDHeader) {
		t.Errorf("two payloads share webhook-id %q", first.Header.Get(IDHeader))
	}
}

func TestSignWithRotatedSecrets(t *testing.T) {
	both := testConfig(t)
	both.Secret, both.Secrets = "", []string{readSecret(t), otherSecret}
	req := sourcetest.Load(t, "testdata/invoice_paid")
	req.Header = http.Header{}
	if err := newSource(t, both).Sign(req); err != nil {
		t.Fatal(err)
	}
	if id := req.Header.Get(IDHeader); !strings.HasPrefix(id, "msg_") || len(id) != 31 {
		t.Fatalf("webhook-id %q", id)
	}
	if n := len(strings.Fields(req.Header.Get(SignatureHeader))); n != 2 {
		t.Fatalf("%d signatures, want one per secret", n)
	}
	for _, secret := range both.Secrets {
		one := testConfig(t)
		one.Secret = secret
		if err := newSource(t, one).Verify(req); err != nil {
			t.Errorf("%s: %v", secret[:10], err)
		}
	}
}

func TestToleranceZeroTurnsTheCheckOff(t *testing.T) {
	cfg := testConfig(t)
	cfg.Tolerance = 0
	src := newSource(t, cfg)
	for _, vector := range []string{"stale", "future"} {
		if err := src.Verify(sourcetest.Load(t, "testdata/"+vector)); err != nil {
			t.Errorf("%s: %v", vector, err)
		}
	}
}

// testKey is the HMAC key the test secret stands for.
func testKey(t testing.TB) []byte {
	t.Helper()
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(readSecret(t), "whsec_"))
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// signedAt is base (the invoice_paid vector) with webhook-timestamp set to
// stamp and signed here for it under key, so that stamp can be anything.
func signedAt(base *sources.Request, key []byte, stamp string) *sources.Request {
	req := *base
	req.Header = base.Header.Clone()
	m := hmac.New(sha256.New, key)
	m.Write([]byte(req.Header.Get(IDHeader) + "." + stamp + "."))
	m.Write(req.Body)
	req.Header.Set(TimestampHeader, stamp)
	req.Header.Set(SignatureHeader, "v1,"+base64.StdEncoding.EncodeToString(m.Sum(nil)))
	return &req
}

// A webhook-timestamp further away than a time.Duration reaches is stale
// however well it is signed.
func TestVerifyRefusesFarTimestamps(t *testing.T) {
	src := newSource(t, testConfig(t))
	base, key := sourcetest.Load(t, "testdata/invoice_paid"), testKey(t)
	for _, c := range []struct{ stamp, says string }{
		{"99999999999", "more than 292 years after"},
		{"1795169730000", "1795169730000 looks like unix milliseconds"},
		{"9223372036854775807", "more than 292 years after"},
	} {
		err := src.Verify(signedAt(base, key, c.stamp))
		if !errors.Is(err, sources.ErrStaleTimestamp) || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%s: %v, want a stale timestamp that says %q", c.stamp, err, c.says)
		}
	}
	if err := src.Verify(signedAt(base, key, "1795169730")); err != nil {
		t.Fatalf("signed here as the vector is: %v", err)
	}
}

func TestParseSignatures(t *testing.T) {
	cases := []struct {
		header string
		want   []string
		err    error
	}{
		{"v1,abc", []string{"abc"}, nil},
		{"v1,abc  v1,def\tv1a,xyz", []string{"abc", "def"}, nil},
		{"v1a,xyz v2,abc", nil, sources.ErrMissingSignature},
		{"V1,abc", nil, sources.ErrMissingSignature},
		{"v1,", nil, sources.ErrMalformedSignature},
		{"abc", nil, sources.ErrMalformedSignature},
		{",abc", nil, sources.ErrMalformedSignature},
		{"v1,a,b", []string{"a,b"}, nil},
	}
	for _, c := range cases {
		got, err := ParseSignatures(c.header)
		if c.err != nil && !errors.Is(err, c.err) || c.err == nil && (err != nil || strings.Join(got, "|") != strings.Join(c.want, "|")) {
			t.Errorf("%q: got %q, %v", c.header, got, err)
		}
	}
}

func TestVerifyTimestampForms(t *testing.T) {
	src := newSource(t, testConfig(t))
	base := sourcetest.Load(t, "testdata/invoice_paid")
	for _, ts := range []string{"", " 1795169730", "+1795169730", "1795169730.0", "-1795169730", "0", "99999999999999999999"} {
		req := *base
		req.Header = base.Header.Clone()
		req.Header.Set(TimestampHeader, ts)
		if err := src.Verify(&req); !errors.Is(err, sources.ErrMalformedSignature) {
			t.Errorf("timestamp %q: %v", ts, err)
		}
	}
}

func TestConvert(t *testing.T) {
	prefixed := testConfig(t)
	prefixed.TypePrefix = "com.example.billing."
	prefixed.SubjectPrefix = "invoices/"
	custom := testConfig(t)
	custom.TypePath, custom.TimePath = "event.name", "event.at"
	cases := []struct {
		name                         string
		cfg                          *Config
		id, body                     string
		wantID, typ, subject, evTime string
	}{
		{"as the provider names it", testConfig(t), "msg_1", `{"type":"invoice.paid","timestamp":"2026-11-20T10:15:27.5Z","data":{"id":"in_1"}}`,
			"msg_1", "invoice.paid", "in_1", "2026-11-20T10:15:27.5Z"},
		{"normalised as every source's names", testConfig(t), "msg_1", `{"type":"Invoice.Paid_Late"}`, "msg_1", "invoice.paid_late", "", ""},
		{"spaces as dots", testConfig(t), "msg_1", `{"type":"Customer Created"}`, "msg_1", "customer.created", "", ""},
		{"prefixed", prefixed, "msg_2", `{"type":"invoice.paid","data":{"id":42}}`, "msg_2", "com.example.billing.invoice.paid", "invoices/42", ""},
		{"no type", testConfig(t), "msg_3", `{"timestamp":1795169700}`, "msg_3", "unknown", "", "2026-11-20T10:15:00Z"},
		{"type of the wrong kind", prefixed, "msg_4", `{"type":{"a":1},"timestamp":"later"}`, "msg_4", "com.example.billing.unknown", "", ""},
		{"other paths", custom, "msg_5", `{"type":"ignored","event":{"name":"user.created","at":"2026-11-20T10:00:00Z"}}`,
			"msg_5", "user.created", "", "2026-11-20T10:00:00Z"},
		{"no webhook-id", testConfig(t), "", `{"type":"x"}`, sources.SHA256Hex([]byte(`{"type":"x"}`)), "x", "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := &sources.Request{Header: http.Header{}, Body: []byte(c.body)}
			if c.id != "" {
				req.Header.Set(IDHeader, c.id)
			}
			evs, err := newSource(t, c.cfg).Convert(req)
			if err != nil {
				t.Fatal(err)
			}
			ev := evs[0]
			gotTime := ""
			if !ev.Time().IsZero() {
				gotTime = ev.Time().UTC().Format(time.RFC3339Nano)
			}
			if len(evs) != 1 || ev.ID() != c.wantID || ev.Type() != c.typ || ev.Subject() != c.subject || gotTime != c.evTime || ev.Source() != "https://billing.example.com" {
				t.Fatalf("got id %q type %q subject %q time %q", ev.ID(), ev.Type(), ev.Subject(), gotTime)
			}
			if err := ev.Validate(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// webhook-id's bytes need not be UTF-8: the id is, and two messages that
// differ only there stay two.
func TestInvalidUTF8KeepsEventsApart(t *testing.T) {
	src := newSource(t, testConfig(t))
	req := sourcetest.Load(t, "testdata/invoice_paid")
	sourcetest.CheckInvalidHeaderIDs(t, src, req, IDHeader)
	req.Header.Set(IDHeader, "msg_\xff\xfe")
	if id := sourcetest.ConvertOne(t, src, req).ID(); id != `msg_\xff\xfe` {
		t.Fatalf("id %q", id)
	}
}

func TestConvertRejectsNonObjects(t *testing.T) {
	sourcetest.CheckNotObjects(t, newSource(t, testConfig(t)))
}

func FuzzVerify(f *testing.F) {
	src := newSource(f, testConfig(f))
	for _, req := range sourcetest.Seeds(f, "testdata") {
		f.Add(req.Header.Get(IDHeader), req.Header.Get(TimestampHeader), req.Header.Get(SignatureHeader), req.Body)
	}
	received := time.Date(2026, 11, 20, 10, 15, 30, 0, time.UTC)
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(readSecret(f), "whsec_"))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, id, ts, sigHeader string, body []byte) {
		h := http.Header{}
		h.Set(IDHeader, id)
		h.Set(TimestampHeader, ts)
		h.Set(SignatureHeader, sigHeader)
		req := &sources.Request{Method: http.MethodPost, Header: h, Body: body, ReceivedAt: received}
		if err := src.Verify(req); err != nil {
			return
		}
		// Only a real signature may pass: recompute it independently.
		n, err := strconv.ParseInt(h.Get(TimestampHeader), 10, 64)
		if err != nil || received.Sub(time.Unix(n, 0)).Abs() > DefaultTolerance {
			t.Fatalf("accepted timestamp %q", ts)
		}
		m := hmac.New(sha256.New, key)
		m.Write([]byte(h.Get(IDHeader) + "." + h.Get(TimestampHeader) + "."))
		m.Write(body)
		want := m.Sum(nil)
		for _, entry := range strings.Fields(h.Get(SignatureHeader)) {
			sig, ok := strings.CutPrefix(entry, "v1,")
			if !ok {
				continue
			}
			for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
				if got, err := enc.DecodeString(sig); err == nil && hmac.Equal(got, want) {
					return
				}
			}
		}
		t.Fatalf("accepted id %q timestamp %q signature %q for a message it does not sign", id, ts, sigHeader)
	})
}

// FuzzVerifyTimestamp signs every webhook-timestamp it tries, so only the
// timestamp check stands between it and acceptance: a timestamp is
// accepted exactly when it is unix seconds within the tolerance.
func FuzzVerifyTimestamp(f *testing.F) {
	base, key := sourcetest.Load(f, "testdata/invoice_paid"), testKey(f)
	received := base.ReceivedAt
	at := received.Unix()
	for _, n := range []int64{at, at - 300, at + 300, at - 301, at + 301, at * 1000, 99999999999, math.MaxInt64} {
		f.Add(strconv.FormatInt(n, 10))
	}
	f.Add("99999999999999999999")
	f.Add("01795169730")
	f.Add("")
	src := newSource(f, testConfig(f))
	f.Fuzz(func(t *testing.T, stamp string) {
		err := src.Verify(signedAt(base, key, stamp))
		n, perr := strconv.ParseInt(stamp, 10, 64)
		digits := stamp != "" && strings.Trim(stamp, "0123456789") == ""
		if want := digits && perr == nil && n > 0 && sourcetest.Within(n, 1, received, DefaultTolerance); want != (err == nil) {
			t.Fatalf("webhook-timestamp %q: %v, accepted=%v wanted", stamp, err, want)
		}
	})
}

func FuzzConvert(f *testing.F) {
	src := newSource(f, testConfig(f))
	for _, req := range sourcetest.Seeds(f, "testdata") {
		f.Add(req.Header.Get(IDHeader), req.Body)
	}
	f.Add("msg_\xff\xfe", []byte(`{"type":"invoice.paid"}`))
	f.Fuzz(func(t *testing.T, id string, body []byte) {
		h := http.Header{}
		h.Set(IDHeader, id)
		sourcetest.CheckConvert(t, src, &sources.Request{Header: h, Body: body, ReceivedAt: time.Unix(1795169730, 0)})
	})
}
