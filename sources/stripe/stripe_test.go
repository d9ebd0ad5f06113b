package stripe

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

// platform is the account the vectors' endpoint belongs to.
const platform = "acct_1OyP7qE7xKp2Ab9c"

// received is when every vector was signed and received.
var received = time.Date(2026, 11, 20, 10, 15, 30, 0, time.UTC)

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
	return newSource(t, &Config{Secret: readSecret(t), Tolerance: DefaultTolerance, Account: platform})
}

func TestVectors(t *testing.T) {
	sourcetest.Run(t, testSource(t), "testdata")
}

// Each accepted vector's id is the event id gen.sh read from its body.
func TestVectorIDs(t *testing.T) {
	sourcetest.CheckIDs(t, "testdata")
}

func TestExampleDecodes(t *testing.T) {
	common, decoded := sourcetest.DecodeExample(t, Type, "whsec_fromTheEnvironment")
	cfg := decoded.(*Config)
	if common.Type != Type || cfg.Secret != "whsec_fromTheEnvironment" || cfg.Tolerance != DefaultTolerance || cfg.Account != "" {
		t.Fatalf("decoded %q %+v", common.Type, cfg)
	}
}

func TestConfigValidate(t *testing.T) {
	cases := []struct {
		name  string
		cfg   Config
		blame []string
	}{
		{"secret", Config{Secret: "whsec_a"}, nil},
		{"secrets", Config{Secrets: []string{"whsec_new", "whsec_old"}}, nil},
		{"account", Config{Secret: "whsec_a", Account: "acct_1032D82eZvKYlo2C"}, nil},
		{"tolerance off", Config{Secret: "whsec_a", Tolerance: 0}, nil},
		{"none", Config{}, []string{"secret"}},
		{"both", Config{Secret: "whsec_a", Secrets: []string{"whsec_b"}}, []string{"secrets"}},
		{"an empty one", Config{Secrets: []string{"whsec_new", ""}}, []string{"secrets"}},
		{"an API key", Config{Secret: "sk_live_51Abc"}, []string{"secret"}},
		{"no whsec_", Config{Secret: "e2e-secret"}, []string{"secret"}},
		{"whsec_ alone", Config{Secret: "whsec_"}, []string{"secret"}},
		{"a restricted key among secrets", Config{Secrets: []string{"whsec_new", "rk_live_1"}}, []string{"secrets"}},
		{"negative tolerance", Config{Secret: "whsec_a", Tolerance: -time.Second}, []string{"tolerance"}},
		{"account not an id", Config{Secret: "whsec_a", Account: "https://dashboard.stripe.com/acct_1"}, []string{"account"}},
		{"account cut short", Config{Secret: "whsec_a", Account: "acct_"}, []string{"account"}},
		{"all wrong", Config{Secret: "pk_test_1", Tolerance: -1, Account: "acme"}, []string{"secret", "tolerance", "account"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sourcetest.CheckBlamed(t, c.cfg.Validate(), c.blame)
		})
	}
}

// A secret that fails validation is never quoted in the error.
func TestConfigErrorsKeepSecretsOut(t *testing.T) {
	for _, cfg := range []Config{
		{Secret: "sk_live_51TopSecretValue"},
		{Secret: "TopSecretValue"},
		{Secrets: []string{"whsec_fine", "rk_live_TopSecretValue"}},
	} {
		err := cfg.Validate()
		if err == nil || strings.Contains(err.Error(), "TopSecretValue") {
			t.Fatalf("%v", err)
		}
	}
	if err := (&Config{Secret: "sk_live_x"}).Validate(); !strings.Contains(err.Error(), "API key") {
		t.Fatalf("an API key is not named as one: %v", err)
	}
}

// While the endpoint's secret is rolled, a signature by either is accepted;
// a signature by a third is not.
func TestRolledSecrets(t *testing.T) {
	src := newSource(t, &Config{Secrets: []string{"whsec_theEndpointsNextSecret2b8c", readSecret(t)}, Tolerance: DefaultTolerance})
	for _, v := range []string{"customer_created", "rolled_secret"} {
		if err := src.Verify(sourcetest.Load(t, "testdata/"+v)); err != nil {
			t.Fatalf("%s: %v", v, err)
		}
	}
	// rolled_secret carries a v1 by the next secret alone as well.
	only := newSource(t, &Config{Secret: "whsec_theEndpointsNextSecret2b8c"})
	if err := only.Verify(sourcetest.Load(t, "testdata/rolled_secret")); err != nil {
		t.Fatalf("the next secret's v1: %v", err)
	}
	if err := src.Verify(sourcetest.Load(t, "testdata/wrong_secret")); !errors.Is(err, sources.ErrSignatureMismatch) {
		t.Fatalf("a third secret's signature: %v", err)
	}
}

func TestTolerance(t *testing.T) {
	req := func(shift time.Duration) *sources.Request {
		r := sourcetest.Load(t, "testdata/checkout_session_completed")
		r.ReceivedAt = received.Add(shift)
		return r
	}
	src := testSource(t)
	for _, c := range []struct {
		shift time.Duration
		stale bool
	}{
		{0, false}, {DefaultTolerance, false}, {-DefaultTolerance, false},
		{DefaultTolerance + time.Second, true}, {-DefaultTolerance - time.Second, true}, {24 * time.Hour, true},
	} {
		err := src.Verify(req(c.shift))
		if c.stale != errors.Is(err, sources.ErrStaleTimestamp) || (!c.stale && err != nil) {
			t.Errorf("received %s after t: %v", c.shift, err)
		}
	}
	off := newSource(t, &Config{Secret: readSecret(t), Tolerance: 0})
	if err := off.Verify(req(30 * 24 * time.Hour)); err != nil {
		t.Fatalf("tolerance 0: %v", err)
	}
	short := newSource(t, &Config{Secret: readSecret(t), Tolerance: time.Minute})
	if err := short.Verify(req(2 * time.Minute)); !errors.Is(err, sources.ErrStaleTimestamp) {
		t.Fatalf("tolerance 1m, two minutes late: %v", err)
	}
	// A stale request that Stripe did not sign is a mismatch, not a stale timestamp.
	forged := sourcetest.Load(t, "testdata/wrong_secret")
	forged.ReceivedAt = received.Add(time.Hour)
	if err := src.Verify(forged); !errors.Is(err, sources.ErrSignatureMismatch) {
		t.Fatalf("forged and stale: %v", err)
	}
}

// signedAt is base with Stripe-Signature for t, signed here, so that t can
// be any number.
func signedAt(base *sources.Request, key []byte, t int64) *sources.Request {
	req := *base
	req.Header = base.Header.Clone()
	m := hmac.New(sha256.New, key)
	m.Write([]byte(strconv.FormatInt(t, 10) + "."))
	m.Write(base.Body)
	req.Header.Set(SignatureHeader, "t="+strconv.FormatInt(t, 10)+",v1="+hex.EncodeToString(m.Sum(nil)))
	return &req
}

// A t further away than a time.Duration reaches is stale however well it
// is signed; one in milliseconds is named as such.
func TestVerifyRefusesFarTimestamps(t *testing.T) {
	src := testSource(t)
	base := sourcetest.Load(t, "testdata/checkout_session_completed")
	key := []byte(readSecret(t))
	for _, c := range []struct {
		t    int64
		says string
	}{
		{1795169730000, "1795169730000 looks like unix milliseconds"},
		{99999999999, "more than 292 years after"},
		{math.MaxInt64, "more than 292 years after"},
	} {
		err := src.Verify(signedAt(base, key, c.t))
		if !errors.Is(err, sources.ErrStaleTimestamp) || !strings.Contains(err.Error(), c.says) {
			t.Errorf("t=%d: %v, want a stale timestamp that says %q", c.t, err, c.says)
		}
	}
	if err := src.Verify(signedAt(base, key, received.Unix())); err != nil {
		t.Fatalf("the receive time: %v", err)
	}
}

func TestParseSignature(t *testing.T) {
	hex64 := strings.Repeat("ab", 32)
	for _, c := range []struct {
		header string
		want   error // nil: parses
		v1     int
	}{
		{"t=1,v1=" + hex64, nil, 1},
		{"t=1795169730,v1=" + hex64 + ",v1=" + strings.ToUpper(hex64) + ",v0=" + hex64, nil, 2},
		{" t=1 , v1=" + hex64 + " ", nil, 1},
		{"v1=" + hex64 + ",t=1", nil, 1},
		{"t=1,v1=" + hex64 + ",v2=whatever-comes-next", nil, 1},
		{"t=1,v0=" + hex64, sources.ErrMissingSignature, 0},
		{"t=1", sources.ErrMissingSignature, 0},
		{"t=1,v1=" + hex64[:62], sources.ErrMalformedSignature, 0},
		{"t=1,v1=" + hex64[:62] + "zz", sources.ErrMalformedSignature, 0},
		{"t=1,v1=", sources.ErrMalformedSignature, 0},
		{"t=,v1=" + hex64, sources.ErrMalformedSignature, 0},
		{"t=-1,v1=" + hex64, sources.ErrMalformedSignature, 0},
		{"t=1.5,v1=" + hex64, sources.ErrMalformedSignature, 0},
		{"t=1,t=2,v1=" + hex64, sources.ErrMalformedSignature, 0},
		// What is not a v1 of 64 hex digits is skipped, as stripe-go does:
		// a valid v1 beside it still counts.
		{"t=1,v1=" + hex64 + ",", nil, 1},
		{"t=1,garbage,v1=" + hex64, nil, 1},
		{"t=1,v1=" + hex64 + ",scheme2=abc,v1=deadbeef", nil, 1},
		{"t=1,v1=deadbeef,v0=" + hex64, sources.ErrMalformedSignature, 0},
		{"=1,v1=" + hex64, sources.ErrMalformedSignature, 0},
		{"sha256=" + hex64, sources.ErrMalformedSignature, 0},
	} {
		sig, err := ParseSignature(c.header)
		switch {
		case c.want == nil && err != nil:
			t.Errorf("%q: %v", c.header, err)
		case c.want != nil && !errors.Is(err, c.want):
			t.Errorf("%q: got %v, want %v", c.header, err, c.want)
		case c.want == nil && len(sig.V1) != c.v1:
			t.Errorf("%q: %d v1 signatures, want %d", c.header, len(sig.V1), c.v1)
		}
	}
}

// bridge send's header verifies, with a v1 for each configured secret.
func TestSign(t *testing.T) {
	secrets := []string{"whsec_theEndpointsNextSecret2b8c", readSecret(t)}
	src := newSource(t, &Config{Secrets: secrets, Tolerance: DefaultTolerance})
	body := sourcetest.Load(t, "testdata/checkout_session_completed").Body
	now := time.Now()
	req := &sources.Request{Method: http.MethodPost, Header: http.Header{}, Body: body, ReceivedAt: now}
	if err := src.Sign(req); err != nil {
		t.Fatal(err)
	}
	if err := src.Verify(req); err != nil {
		t.Fatal(err)
	}
	sig, err := ParseSignature(req.Header.Get(SignatureHeader))
	if err != nil || sig.Timestamp != now.Unix() || len(sig.V1) != 2 {
		t.Fatalf("header %q: %+v %v", req.Header.Get(SignatureHeader), sig, err)
	}
	// Each v1 is Stripe's formula under its own secret, worked out here apart.
	for i, s := range secrets {
		m := hmac.New(sha256.New, []byte(s))
		m.Write([]byte(strconv.FormatInt(sig.Timestamp, 10) + "."))
		m.Write(body)
		if sig.V1[i] != hex.EncodeToString(m.Sum(nil)) {
			t.Errorf("v1 %d is not the HMAC under secret %d", i+1, i+1)
		}
	}
	if ct := req.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	for _, v := range []string{"checkout_session_completed", "customer_created"} {
		single := testSource(t)
		r := &sources.Request{Method: http.MethodPost, Body: sourcetest.Load(t, "testdata/"+v).Body, ReceivedAt: received}
		if err := single.Sign(r); err != nil {
			t.Fatal(err)
		}
		if want := sourcetest.Load(t, "testdata/"+v).Header.Get(SignatureHeader); !strings.HasPrefix(want, r.Header.Get(SignatureHeader)) {
			t.Errorf("%s: signed %q, gen.sh signed %q", v, r.Header.Get(SignatureHeader), want)
		}
	}
}

// A retry of the same event (a new t, a new signature) is the same
// CloudEvent; another event is not.
func TestRetryKeepsTheID(t *testing.T) {
	src := testSource(t)
	first := sourcetest.Load(t, "testdata/checkout_session_completed")
	retry := &sources.Request{Method: http.MethodPost, Header: http.Header{}, Body: first.Body, ReceivedAt: received.Add(time.Hour)}
	if err := src.Sign(retry); err != nil {
		t.Fatal(err)
	}
	if err := src.Verify(retry); err != nil {
		t.Fatal(err)
	}
	a, b := sourcetest.ConvertOne(t, src, first), sourcetest.ConvertOne(t, src, retry)
	other := sourcetest.ConvertOne(t, src, sourcetest.Load(t, "testdata/customer_created"))
	if a.ID() != "evt_1QhC3vE7xKp2Ab9cN4mT6rSd" || b.ID() != a.ID() || other.ID() == a.ID() {
		t.Fatalf("ids %q %q %q", a.ID(), b.ID(), other.ID())
	}
}

func TestConvert(t *testing.T) {
	bare := newSource(t, &Config{Secret: readSecret(t)})
	withAccount := testSource(t)
	for _, c := range []struct {
		name                           string
		src                            *Source
		body                           string
		id, typ, source, subject, time string
		livemode                       string // "" for no extension
	}{
		{"platform event, no account configured", bare,
			`{"id":"evt_1","object":"event","type":"customer.created","created":1795169700,"livemode":false,"data":{"object":{"id":"cus_1","object":"customer"}}}`,
			"evt_1", "com.stripe.customer.created", "https://dashboard.stripe.com", "customers/cus_1", "2026-11-20T10:15:00Z", "false"},
		{"platform event, account configured", withAccount,
			`{"id":"evt_2","object":"event","type":"checkout.session.completed","created":1795169700,"livemode":true,"data":{"object":{"id":"cs_1","object":"checkout.session"}}}`,
			"evt_2", "com.stripe.checkout.session.completed", "https://dashboard.stripe.com/" + platform, "checkout.sessions/cs_1", "2026-11-20T10:15:00Z", "true"},
		{"a connected account's event wins over the configured one", withAccount,
			`{"id":"evt_3","object":"event","account":"acct_1Connected","type":"account.updated","created":1795169700,"data":{"object":{"id":"acct_1Connected","object":"account"}}}`,
			"evt_3", "com.stripe.account.updated", "https://dashboard.stripe.com/acct_1Connected", "accounts/acct_1Connected", "2026-11-20T10:15:00Z", ""},
		{"y becomes ies", bare,
			`{"id":"evt_4","type":"capability.updated","data":{"object":{"id":"card_payments","object":"capability"}}}`,
			"evt_4", "com.stripe.capability.updated", "https://dashboard.stripe.com", "capabilities/card_payments", "", ""},
		{"subscription events", bare,
			`{"id":"evt_5","type":"customer.subscription.deleted","data":{"object":{"id":"sub_1","object":"subscription"}}}`,
			"evt_5", "com.stripe.customer.subscription.deleted", "https://dashboard.stripe.com", "subscriptions/sub_1", "", ""},
		{"an object without an id", bare,
			`{"id":"evt_6","type":"balance.available","data":{"object":{"object":"balance","available":[]}}}`,
			"evt_6", "com.stripe.balance.available", "https://dashboard.stripe.com", "", "", ""},
		{"an id without an object name", bare,
			`{"id":"evt_7","type":"x.y","data":{"object":{"id":"obj_1"}}}`,
			"evt_7", "com.stripe.x.y", "https://dashboard.stripe.com", "obj_1", "", ""},
		{"an object name that is no Stripe name", bare,
			`{"id":"evt_8","type":"x.y","data":{"object":{"id":"obj_1","object":"Not/One"}}}`,
			"evt_8", "com.stripe.x.y", "https://dashboard.stripe.com", "obj_1", "", ""},
		{"a thin event of a connected account", withAccount,
			`{"id":"evt_65R","object":"v2.core.event","type":"v2.core.event_destination.ping","context":"acct_1Connected","created":"2026-11-20T10:15:00.123Z","livemode":true,"related_object":{"id":"ed_1","type":"v2.core.event_destination","url":"/v2/core/event_destinations/ed_1"}}`,
			"evt_65R", "com.stripe.v2.core.event_destination.ping", "https://dashboard.stripe.com/acct_1Connected", "v2.core.event_destinations/ed_1", "2026-11-20T10:15:00.123Z", "true"},
		{"a thin event's data is not read for the subject", bare,
			`{"id":"evt_65S","object":"v2.core.event","type":"v1.billing.meter.no_meter_found","data":{"object":{"id":"cus_1","object":"customer"}}}`,
			"evt_65S", "com.stripe.v1.billing.meter.no_meter_found", "https://dashboard.stripe.com", "", "", ""},
		{"an account that is no id is escaped", bare,
			`{"id":"evt_9","account":"a b/c?d","type":"x"}`,
			"evt_9", "com.stripe.x", "https://dashboard.stripe.com/a%20b%2Fc%3Fd", "", "", ""},
		{"no type, no id", bare, `{"livemode":"yes"}`,
			sources.SHA256Hex([]byte(`{"livemode":"yes"}`)), "com.stripe.unknown", "https://dashboard.stripe.com", "", "", ""},
		{"a created that is no time", bare, `{"id":"evt_10","type":"x","created":"soon"}`,
			"evt_10", "com.stripe.x", "https://dashboard.stripe.com", "", "", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			req := &sources.Request{Method: http.MethodPost, Header: http.Header{}, Body: []byte(c.body), ReceivedAt: received}
			ev := sourcetest.ConvertOne(t, c.src, req)
			if ev.ID() != c.id {
				t.Errorf("id %q, want %q", ev.ID(), c.id)
			}
			sourcetest.CheckFields(t, ev, sourcetest.Fields{Type: c.typ, Source: c.source, Subject: c.subject, Time: c.time, Data: c.body})
			got, _ := ev.Extensions()[ExtLivemode].(string)
			if got != c.livemode {
				t.Errorf("%s %q, want %q", ExtLivemode, got, c.livemode)
			}
		})
	}
}

// An event's id keeps text that is not valid Unicode apart from its U+FFFD
// twin.
func TestInvalidUTF8KeepsEventsApart(t *testing.T) {
	sourcetest.CheckInvalidTextIDs(t, testSource(t), `{"id":"evt_<TEXT>","object":"event","type":"customer.created","data":{"object":{"id":"cus_1","object":"customer"}}}`)
}

func TestConvertRejectsNonObjects(t *testing.T) {
	sourcetest.CheckNotObjects(t, testSource(t))
}

// verifyIndependently is Stripe's documented check, written apart from the
// code under test: split the header on ',' then '=', take t and every v1,
// and accept when a v1 is the hex HMAC-SHA256 of "<t>.<body>".
func verifyIndependently(key []byte, header string, body []byte) bool {
	var ts string
	var v1 []string
	for _, el := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(el), "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			v1 = append(v1, strings.ToLower(v))
		}
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(ts + "."))
	m.Write(body)
	want := hex.EncodeToString(m.Sum(nil))
	for _, s := range v1 {
		if hmac.Equal([]byte(s), []byte(want)) {
			return true
		}
	}
	return false
}

func FuzzVerify(f *testing.F) {
	src := newSource(f, &Config{Secret: readSecret(f), Tolerance: DefaultTolerance})
	for _, req := range sourcetest.Seeds(f, "testdata") {
		f.Add(req.Header.Get(SignatureHeader), req.Body, int64(0))
	}
	key := []byte(readSecret(f))
	f.Fuzz(func(t *testing.T, header string, body []byte, skew int64) {
		h := http.Header{}
		h.Set(SignatureHeader, header)
		req := &sources.Request{Method: http.MethodPost, Header: h, Body: body, ReceivedAt: received.Add(time.Duration(skew))}
		err := src.Verify(req)
		if err == nil {
			// Only a real signature, within the tolerance, may pass.
			if !verifyIndependently(key, h.Get(SignatureHeader), body) {
				t.Fatalf("accepted %q for a body it does not sign", header)
			}
			sig, _ := ParseSignature(h.Get(SignatureHeader))
			if d := received.Add(time.Duration(skew)).Sub(time.Unix(sig.Timestamp, 0)); d > DefaultTolerance || d < -DefaultTolerance {
				t.Fatalf("accepted t=%d received %s", sig.Timestamp, d)
			}
			return
		}
		if sources.Reason(err) == "other" {
			t.Fatalf("an error without a reason: %v", err)
		}
	})
}

// FuzzVerifyTimestamp signs every t it tries, so only the timestamp check
// stands between it and acceptance: a t is accepted exactly when it is
// within the tolerance.
func FuzzVerifyTimestamp(f *testing.F) {
	src := testSource(f)
	base := sourcetest.Load(f, "testdata/checkout_session_completed")
	key := []byte(readSecret(f))
	at := received.Unix()
	for _, n := range []int64{at, at - 300, at + 300, at - 301, at + 301, at * 1000, 99999999999, math.MaxInt64, 0, -at} {
		f.Add(n)
	}
	f.Fuzz(func(t *testing.T, ts int64) {
		err := src.Verify(signedAt(base, key, ts))
		if ok := ts > 0 && sourcetest.Within(ts, 1, received, DefaultTolerance); ok != (err == nil) {
			t.Fatalf("t=%d: %v, accepted=%v wanted", ts, err, ok)
		}
	})
}

func FuzzConvert(f *testing.F) {
	src := testSource(f)
	for _, req := range sourcetest.Seeds(f, "testdata") {
		f.Add(req.Body)
	}
	f.Add([]byte(`{"id":"evt_1","object":"v2.core.event","context":"acct_1","related_object":{"id":"x","type":"y"}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		sourcetest.CheckConvert(t, src, &sources.Request{Method: http.MethodPost, Header: http.Header{}, Body: body, ReceivedAt: received})
	})
}
