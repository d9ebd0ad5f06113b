package crisp

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/hookbridge/hookbridge/sources"
	"github.com/hookbridge/hookbridge/sources/sourcetest"
)

var received = time.Date(2026, 11, 20, 10, 15, 30, 0, time.UTC)

func readFile(t testing.TB, name string) string {
	t.Helper()
	return sourcetest.ReadFile(t, filepath.Join("testdata", name))
}

// testSource builds a source with the test key, the test secret, or both.
func testSource(t testing.TB, withKey, withSecret bool, tolerance time.Duration) *Source {
	t.Helper()
	cfg := &Config{Tolerance: tolerance}
	if withKey {
		cfg.Key = readFile(t, "key")
	}
	if withSecret {
		cfg.Secret = readFile(t, "secret")
	}
	return sourcetest.New[*Source](t, cfg)
}

func TestVectors(t *testing.T) {
	t.Run("plugin", func(t *testing.T) { sourcetest.Run(t, testSource(t, false, true, 5*time.Minute), "testdata/plugin") })
	t.Run("website", func(t *testing.T) { sourcetest.Run(t, testSource(t, true, false, 5*time.Minute), "testdata/website") })
	t.Run("both", func(t *testing.T) { sourcetest.Run(t, testSource(t, true, true, 5*time.Minute), "testdata/both") })
}

// TestVectorIDs compares each recorded event's id with the one gen.sh
// worked out on its own (jq and sha256sum) from the documented rule.
func TestVectorIDs(t *testing.T) {
	sourcetest.CheckIDs(t, "testdata")
}

func TestConfigValidate(t *testing.T) {
	cases := []struct {
		name    string
		cfg     Config
		wantErr []string // the fields blamed
	}{
		{"key", Config{Key: "k", Tolerance: time.Minute}, nil},
		{"secret", Config{Secret: "s"}, nil},
		{"both", Config{Key: "k", Secret: "s"}, nil},
		{"neither", Config{}, []string{"key"}},
		{"blank key", Config{Key: "  "}, []string{"key"}},
		{"blank secret beside a key", Config{Key: "k", Secret: "\t"}, []string{"secret"}},
		{"negative tolerance", Config{Key: "k", Tolerance: -time.Second}, []string{"tolerance"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.cfg.Validate()
			sourcetest.CheckBlamed(t, err, c.wantErr)
		})
	}
}

func TestExampleDecodes(t *testing.T) {
	common, cfg := sourcetest.DecodeExample(t, "crisp", "from-env")
	if common.Type != "crisp" || cfg.(*Config).Tolerance != 5*time.Minute {
		t.Fatalf("type %q, config %+v", common.Type, cfg)
	}
}

func TestParseTimestamp(t *testing.T) {
	cases := []struct {
		in   string
		want time.Time
		err  bool
	}{
		{"1795169730000", received, false},
		{"1795169730123", received.Add(123 * time.Millisecond), false},
		{"1795169730", received, false},
		{"999999999999", time.Unix(999999999999, 0), false}, // the largest value read as seconds
		{"1000000000000", time.UnixMilli(1e12), false},      // the smallest read as milliseconds
		{"", time.Time{}, true},
		{"0", time.Time{}, true},
		{"-1795169730", time.Time{}, true},
		{"+1795169730", time.Time{}, true},
		{"1795169730.5", time.Time{}, true},
		{"1e12", time.Time{}, true},
		{"253402300800000", time.Time{}, true}, // past year 9999
		{"99999999999999999999", time.Time{}, true},
	}
	for _, c := range cases {
		got, err := ParseTimestamp(c.in)
		if c.err {
			if !errors.Is(err, sources.ErrMalformedSignature) {
				t.Errorf("%q: got %v, %v; want malformed", c.in, got, err)
			}
			continue
		}
		if err != nil || !got.Equal(c.want) {
			t.Errorf("%q: got %v, %v; want %v", c.in, got, err, c.want)
		}
	}
}

// sign computes Crisp's signature here, apart from the source's own code.
func sign(secret, stamp string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(m, "[%s;%s]", stamp, body)
	return hex.EncodeToString(m.Sum(nil))
}

func TestVerify(t *testing.T) {
	key, secret := readFile(t, "key"), readFile(t, "secret")
	body := []byte(readFile(t, "plugin/message_send/body"))
	ms := fmt.Sprint(received.UnixMilli())
	good := sign(secret, ms, body)
	type creds struct{ key, stamp, sig string }
	cases := []struct {
		name             string
		withKey, withSec bool
		tolerance        time.Duration
		c                creds
		want             error
	}{
		{"signature", false, true, time.Minute, creds{"", ms, good}, nil},
		{"signature upper case", false, true, time.Minute, creds{"", ms, strings.ToUpper(good)}, nil},
		{"signature 4 min old", false, true, 5 * time.Minute, creds{"", fmt.Sprint(received.Add(-4 * time.Minute).UnixMilli()), sign(secret, fmt.Sprint(received.Add(-4*time.Minute).UnixMilli()), body)}, nil},
		{"signature 6 min old", false, true, 5 * time.Minute, creds{"", fmt.Sprint(received.Add(-6 * time.Minute).UnixMilli()), sign(secret, fmt.Sprint(received.Add(-6*time.Minute).UnixMilli()), body)}, sources.ErrStaleTimestamp},
		{"signature a day old, tolerance off", false, true, 0, creds{"", fmt.Sprint(received.Add(-24 * time.Hour).UnixMilli()), sign(secret, fmt.Sprint(received.Add(-24*time.Hour).UnixMilli()), body)}, nil},
		{"signature over another timestamp", false, true, time.Minute, creds{"", fmt.Sprint(received.UnixMilli() + 1), good}, sources.ErrSignatureMismatch},
		{"signature without brackets", false, true, time.Minute, creds{"", ms, func() string {
			m := hmac.New(sha256.New, []byte(secret))
			fmt.Fprintf(m, "%s;%s", ms, body)
			return hex.EncodeToString(m.Sum(nil))
		}()}, sources.ErrSignatureMismatch},
		{"signature not hex", false, true, time.Minute, creds{"", ms, strings.Repeat("zz", 32)}, sources.ErrMalformedSignature},
		{"key", true, false, time.Minute, creds{key, "", ""}, nil},
		{"key with a space appended", true, false, time.Minute, creds{key + " ", "", ""}, sources.ErrBadKey},
		{"key upper-cased", true, false, time.Minute, creds{strings.ToUpper(key), "", ""}, sources.ErrBadKey},
		{"both configured, key and a stale signature", true, true, time.Minute, creds{key, "1", good}, nil},
		{"both configured, no key and a stale signature", true, true, time.Minute, creds{"", "1", good}, sources.ErrStaleTimestamp},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := testSource(t, c.withKey, c.withSec, c.tolerance)
			req := &sources.Request{Method: http.MethodPost, Header: http.Header{}, Query: url.Values{}, Body: body, ReceivedAt: received}
			if c.c.key != "" {
				req.Query.Set(KeyParam, c.c.key)
			}
			if c.c.stamp != "" {
				req.Header.Set(TimestampHeader, c.c.stamp)
			}
			if c.c.sig != "" {
				req.Header.Set(SignatureHeader, c.c.sig)
			}
			err := src.Verify(req)
			if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
}

// signedAt is base with X-Crisp-Request-Timestamp set to stamp and signed
// here for it, so that stamp can be anything.
func signedAt(base *sources.Request, secret, stamp string) *sources.Request {
	req := *base
	req.Header = base.Header.Clone()
	req.Header.Set(TimestampHeader, stamp)
	req.Header.Set(SignatureHeader, sign(secret, strings.TrimSpace(stamp), base.Body))
	return &req
}

// A timestamp further away than a time.Duration reaches is stale however
// well it is signed: 99999999999 is below 10^12, so seconds, the year 5138.
func TestVerifyRefusesFarTimestamps(t *testing.T) {
	src := testSource(t, false, true, 5*time.Minute)
	base := sourcetest.Load(t, "testdata/plugin/message_send")
	secret := readFile(t, "secret")
	for _, c := range []struct{ stamp, says string }{
		{"99999999999", "X-Crisp-Request-Timestamp 99999999999: timestamp outside tolerance: unix time 99999999999, more than 292 years after"},
		{"253402300799999", "unix time 253402300799, more than 292 years after"},
	} {
		err := src.Verify(signedAt(base, secret, c.stamp))
		if !errors.Is(err, sources.ErrStaleTimestamp) || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%s: %v, want a stale timestamp that says %q", c.stamp, err, c.says)
		}
	}
	if err := src.Verify(signedAt(base, secret, "1795169730000")); err != nil {
		t.Fatalf("the receive time: %v", err)
	}
}

func TestVerifyDoesNotLeakCredentials(t *testing.T) {
	src := testSource(t, true, true, 5*time.Minute)
	for _, name := range []string{"plugin/tampered", "plugin/forged", "both/wrong_key_no_signature"} {
		req := sourcetest.Load(t, "testdata/"+name)
		err := src.Verify(req)
		if err == nil {
			t.Fatalf("%s accepted", name)
		}
		for _, secret := range []string{req.Header.Get(SignatureHeader), req.Query.Get(KeyParam), readFile(t, "key"), readFile(t, "secret")} {
			if secret != "" && strings.Contains(err.Error(), secret) {
				t.Fatalf("%s: error %q shows a credential", name, err)
			}
		}
	}
}

func TestSignThenVerify(t *testing.T) {
	cases := []struct {
		name             string
		withKey, withSec bool
	}{
		{"website hook", true, false},
		{"plugin hook", false, true},
		{"both", true, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := testSource(t, c.withKey, c.withSec, 5*time.Minute)
			req := sourcetest.Load(t, "testdata/plugin/message_send")
			want := req.Header.Get(SignatureHeader) // openssl's, at the same time
			req.Header, req.Query = nil, nil
			if err := src.Sign(req); err != nil {
				t.Fatal(err)
			}
			if c.withSec && req.Header.Get(SignatureHeader) != want {
				t.Fatalf("Sign made %q; openssl made %q", req.Header.Get(SignatureHeader), want)
			}
			if c.withKey != (req.Query.Get(KeyParam) == readFile(t, "key")) {
				t.Fatalf("query %v", req.Query)
			}
			if c.withSec != (req.Header.Get(TimestampHeader) == fmt.Sprint(received.UnixMilli())) {
				t.Fatalf("headers %v", req.Header)
			}
			if err := src.Verify(req); err != nil {
				t.Fatal(err)
			}
			// Each credential on its own also passes a source that has both.
			both := testSource(t, true, true, 5*time.Minute)
			if err := both.Verify(req); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestIDStableAcrossRetries: Crisp retries a hook with the same body (the
// attempt count travels in X-Delivery-Attempt-Count), so every id rule gives
// the same id; and distinct events get distinct ids.
func TestIDStableAcrossRetries(t *testing.T) {
	src := testSource(t, true, false, 0)
	const w, s = "w1", "session_s1"
	msg := func(event, fp string, ts int) string {
		return fmt.Sprintf(`{"website_id":%q,"event":%q,"data":{"website_id":%q,"session_id":%q,"type":"text","content":"hi","fingerprint":%s,"timestamp":%d},"timestamp":%d}`, w, event, w, s, fp, ts, ts)
	}
	cases := []sourcetest.IDCase{
		sourcetest.ID("message retry", msg("message:send", "42", 1795169729616), msg("message:send", "42", 1795169729616), true, w+":"+s+":message:send:42"),
		sourcetest.ID("message re-serialized differently keeps its fingerprint id",
			msg("message:send", "42", 1795169729616),
			`{"event":"message:send","website_id":"w1","timestamp":1795169729616,"data":{"fingerprint":42,"session_id":"session_s1","content":"hi","type":"text","website_id":"w1","timestamp":1795169729616}}`,
			true, w+":"+s+":message:send:42"),
		sourcetest.ID("two messages", msg("message:send", "42", 1795169729616), msg("message:send", "43", 1795169729616), false, w+":"+s+":message:send:42"),
		sourcetest.ID("send and received of one fingerprint", msg("message:send", "42", 1), msg("message:received", "42", 1), false, w+":"+s+":message:send:42"),
		sourcetest.ID("two edits of one message", msg("message:updated", "42", 1795169729616), msg("message:updated", "42", 1795169739616), false, ""),
		sourcetest.ID("session event retry", `{"website_id":"w1","event":"session:set_email","data":{"session_id":"s","email":"a@b"},"timestamp":1}`, `{"website_id":"w1","event":"session:set_email","data":{"session_id":"s","email":"a@b"},"timestamp":1}`, true, ""),
		sourcetest.ID("fingerprint as a string", `{"website_id":"w1","event":"message:send","data":{"session_id":"s","fingerprint":"abc"}}`, `{"website_id":"w1","event":"message:send","data":{"session_id":"s","fingerprint":"abc"}}`, true, "w1:s:message:send:abc"),
		sourcetest.ID("fingerprint without a session", `{"website_id":"w1","event":"message:send","data":{"fingerprint":7}}`, `{"website_id":"w1","event":"message:send","data":{"fingerprint":7}}`, true, ""),
	}
	sourcetest.CheckIDStability(t, src, received, cases)
}

// Each part of a message's id keeps text that is not valid Unicode apart
// from its U+FFFD twin, and so does the SHA-256 of any other event's body.
func TestInvalidUTF8KeepsEventsApart(t *testing.T) {
	src := testSource(t, true, false, 0)
	for _, body := range []string{
		`{"website_id":"w1","event":"message:send","data":{"session_id":"s1","fingerprint":"<TEXT>"}}`,
		`{"website_id":"w1","event":"message:send","data":{"session_id":"<TEXT>","fingerprint":17}}`,
		`{"website_id":"<TEXT>","event":"message:send","data":{"session_id":"s1","fingerprint":17}}`,
		`{"event":"message:send","data":{"website_id":"<TEXT>","session_id":"s1","fingerprint":17}}`,
		`{"website_id":"w1","event":"message:<TEXT>","data":{"session_id":"s1","fingerprint":17}}`,
		`{"website_id":"w1","event":"session:set_email","data":{"session_id":"s1","email":"<TEXT>"}}`,
	} {
		sourcetest.CheckInvalidTextIDs(t, src, body)
	}
}

func convertOne(t *testing.T, src *Source, body string) *event.Event {
	t.Helper()
	return sourcetest.ConvertOne(t, src, &sources.Request{Method: http.MethodPost, Body: []byte(body), ReceivedAt: received})
}

func TestConvertMapping(t *testing.T) {
	src := testSource(t, true, false, 0)
	cases := []struct {
		name, body                   string
		wantType, wantSource, wantSj string
		wantTime                     string
	}{
		{"message", `{"website_id":"w1","event":"message:send","data":{"session_id":"s1","timestamp":1795169729000},"timestamp":1795169729616}`,
			"chat.crisp.message.send", "https://app.crisp.chat/website/w1", "sessions/s1", "2026-11-20T10:15:29.616Z"},
		{"time from data when the envelope has none", `{"website_id":"w1","event":"message:send","data":{"session_id":"s1","timestamp":1795169729000}}`,
			"chat.crisp.message.send", "https://app.crisp.chat/website/w1", "sessions/s1", "2026-11-20T10:15:29Z"},
		{"website from data", `{"event":"session:set_nickname","data":{"website_id":"w2","session_id":"s2"}}`,
			"chat.crisp.session.set_nickname", "https://app.crisp.chat/website/w2", "sessions/s2", ""},
		{"no website", `{"event":"status:health:changed","data":{}}`,
			"chat.crisp.status.health.changed", "https://app.crisp.chat/website/unknown", "", ""},
		{"website id that is no path segment", `{"website_id":"a/b c?%","event":"x"}`,
			"chat.crisp.x", "https://app.crisp.chat/website/a%2Fb%20c%3F%25", "", ""},
		{"no event", `{"website_id":"w1","data":{"session_id":"s1"}}`,
			"chat.crisp.unknown", "https://app.crisp.chat/website/w1", "sessions/s1", ""},
		{"timestamp in the future past year 9999 is ignored", `{"website_id":"w1","event":"x","timestamp":253402300800000}`,
			"chat.crisp.x", "https://app.crisp.chat/website/w1", "", ""},
		{"timestamp as a string is not Crisp's", `{"website_id":"w1","event":"x","timestamp":"1795169729616"}`,
			"chat.crisp.x", "https://app.crisp.chat/website/w1", "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sourcetest.CheckFields(t, convertOne(t, src, c.body), sourcetest.Fields{
				Type: c.wantType, Source: c.wantSource, Subject: c.wantSj, Time: c.wantTime, Data: c.body,
			})
		})
	}
}

func TestConvertRejectsNonObjects(t *testing.T) {
	sourcetest.CheckNotObjects(t, testSource(t, true, false, 0), `"message:send"`, `{"event":`)
}

func FuzzVerify(f *testing.F) {
	src := testSource(f, true, true, 5*time.Minute)
	key, secret := readFile(f, "key"), readFile(f, "secret")
	for _, dir := range []string{"testdata/plugin", "testdata/website", "testdata/both"} {
		for _, req := range sourcetest.Seeds(f, dir) {
			f.Add(req.Query.Get(KeyParam), req.Header.Get(TimestampHeader), req.Header.Get(SignatureHeader), req.Body)
		}
	}
	f.Fuzz(func(t *testing.T, k, stamp, sig string, body []byte) {
		req := &sources.Request{
			Method: http.MethodPost,
			Header: http.Header{TimestampHeader: {stamp}, SignatureHeader: {sig}},
			Query:  url.Values{KeyParam: {k}},
			Body:   body, ReceivedAt: received,
		}
		if src.Verify(req) != nil {
			return
		}
		// Only a real credential may pass: the key itself, or a signature
		// recomputed here over the body or its compact form at a fresh time.
		if k == key {
			return
		}
		stamp = strings.TrimSpace(stamp)
		ts, err := ParseTimestamp(stamp)
		if err != nil {
			t.Fatalf("accepted an unreadable timestamp %q", stamp)
		}
		if d := ts.Sub(received); d > 5*time.Minute || d < -5*time.Minute {
			t.Fatalf("accepted a timestamp %s away", d)
		}
		candidates := [][]byte{body}
		var compact bytes.Buffer
		if json.Compact(&compact, body) == nil {
			candidates = append(candidates, compact.Bytes())
		}
		for _, c := range candidates {
			if strings.EqualFold(strings.TrimSpace(sig), sign(secret, stamp, c)) {
				return
			}
		}
		t.Fatalf("accepted key %q, signature %q for a body they do not sign", k, sig)
	})
}

// FuzzVerifyTimestamp signs every X-Crisp-Request-Timestamp it tries, so
// only the timestamp check stands between it and acceptance: a timestamp is
// accepted exactly when it is unix seconds below 10^12, or milliseconds
// from there up to the end of 9999, within the tolerance.
func FuzzVerifyTimestamp(f *testing.F) {
	src := testSource(f, false, true, 5*time.Minute)
	base := sourcetest.Load(f, "testdata/plugin/message_send")
	secret := readFile(f, "secret")
	at := received.Unix()
	for _, n := range []int64{at, at - 300, at + 300, at - 301, at + 301, at * 1000, at*1000 - 300000, at*1000 - 300001, at * 1000000, 99999999999, 999999999999, 1e12, 253402300799999, math.MaxInt64} {
		f.Add(strconv.FormatInt(n, 10))
	}
	f.Add(" 1795169730000 ")
	f.Add("")
	f.Fuzz(func(t *testing.T, stamp string) {
		err := src.Verify(signedAt(base, secret, stamp))
		trimmed := strings.TrimSpace(stamp)
		n, perr := strconv.ParseInt(trimmed, 10, 64)
		perSecond := int64(1)
		if n >= 1e12 {
			perSecond = 1000
		}
		digits := trimmed != "" && strings.Trim(trimmed, "0123456789") == ""
		ok := digits && perr == nil && n > 0 && n <= maxMillis && sourcetest.Within(n, perSecond, received, 5*time.Minute)
		if ok != (err == nil) {
			t.Fatalf("%s %q: %v, accepted=%v wanted", TimestampHeader, stamp, err, ok)
		}
	})
}

func FuzzConvert(f *testing.F) {
	src := testSource(f, true, false, 0)
	for _, dir := range []string{"testdata/plugin", "testdata/website", "testdata/both"} {
		for _, req := range sourcetest.Seeds(f, dir) {
			f.Add(req.Body)
		}
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		// CheckConvert also reads each event back from JSON, as the queue does.
		sourcetest.CheckConvert(t, src, &sources.Request{Method: http.MethodPost, Body: body, ReceivedAt: received})
	})
}

// Crisp's library signs JSON.stringify of the payload: a body that reached
// the bridge with escapes JavaScript does not write ("\/", "\u00e9")
// verifies against that form, written out here as Node.js writes it.
func TestVerifyTheStringifiedForm(t *testing.T) {
	secret := readFile(t, "secret")
	const sent = `{"event":"message:send","data":{"website_id":"w1","session_id":"s1","content":"Ren\u00e9e at https:\/\/acme.example\/contact","fingerprint":1.50}}`
	const stringified = `{"event":"message:send","data":{"website_id":"w1","session_id":"s1","content":"Renée at https://acme.example/contact","fingerprint":1.5}}`
	ms := fmt.Sprint(received.UnixMilli())
	for name, c := range map[string]struct {
		signed string
		want   error
	}{
		"the stringified form": {stringified, nil},
		"another form":         {strings.Replace(stringified, "1.5", "2", 1), sources.ErrSignatureMismatch},
	} {
		req := &sources.Request{Method: http.MethodPost, Header: http.Header{}, Query: url.Values{}, Body: []byte(sent), ReceivedAt: received}
		req.Header.Set(TimestampHeader, ms)
		req.Header.Set(SignatureHeader, sign(secret, ms, []byte(c.signed)))
		if err := testSource(t, false, true, time.Minute).Verify(req); c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
}
