package helloclient

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hookbridge/hookbridge/sources"
	"github.com/hookbridge/hookbridge/sources/sourcetest"
)

func testSource(t testing.TB, tolerance time.Duration) *Source {
	t.Helper()
	return sourcetest.New[*Source](t, &Config{Secret: sourcetest.ReadFile(t, "testdata/secret"), Tolerance: tolerance})
}

func TestVectors(t *testing.T) {
	sourcetest.Run(t, testSource(t, 5*time.Minute), "testdata")
}

func TestExampleDecodes(t *testing.T) {
	common, decoded := sourcetest.DecodeExample(t, "helloclient", "from-env")
	cfg := decoded.(*Config)
	if common.Type != "helloclient" || cfg.Secret != "from-env" || cfg.Tolerance != 5*time.Minute {
		t.Fatalf("decoded %q %+v", common.Type, cfg)
	}
}

func TestVerifyRejects(t *testing.T) {
	src := testSource(t, 5*time.Minute)
	base := sourcetest.Load(t, "testdata/lead")
	ts := base.ReceivedAt.Unix()
	sha1Sig := func() string {
		m := hmac.New(sha1.New, src.secret)
		fmt.Fprintf(m, "%d.%s", ts, base.Body)
		return hex.EncodeToString(m.Sum(nil))
	}()
	cases := []struct {
		name   string
		header string
		want   error
	}{
		{"sha1 instead of sha256", fmt.Sprintf("t=%d,v1=%s", ts, sha1Sig), sources.ErrSignatureMismatch},
		{"no t", "v1=" + strings.Repeat("ab", 32), sources.ErrMalformedSignature},
		{"t not a number", "t=soon,v1=" + strings.Repeat("ab", 32), sources.ErrMalformedSignature},
		{"no v1", fmt.Sprintf("t=%d", ts), sources.ErrMissingSignature},
		{"v1 not hex", fmt.Sprintf("t=%d,v1=zz", ts), sources.ErrSignatureMismatch},
		{"future timestamp", fmt.Sprintf("t=%d,v1=%s", ts+3600, strings.Repeat("ab", 32)), sources.ErrStaleTimestamp},
		{"garbage", "%%%", sources.ErrMalformedSignature},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := *base
			req.Header = http.Header{SignatureHeader: {c.header}}
			err := src.Verify(&req)
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
}

func TestToleranceZeroAcceptsOldTimestamps(t *testing.T) {
	req := sourcetest.Load(t, "testdata/stale")
	if err := testSource(t, 5*time.Minute).Verify(req); !errors.Is(err, sources.ErrStaleTimestamp) {
		t.Fatalf("with tolerance: %v", err)
	}
	if err := testSource(t, 0).Verify(req); err != nil {
		t.Fatalf("tolerance 0 must turn the check off: %v", err)
	}
}

// signedHeader is X-Webhook-Signature for body at t, signed here rather
// than by Sign, so that t can be any number.
func signedHeader(secret []byte, t int64, body []byte) string {
	m := hmac.New(sha256.New, secret)
	fmt.Fprintf(m, "%d.", t)
	m.Write(body)
	return fmt.Sprintf("t=%d,v1=%x", t, m.Sum(nil))
}

// A t further away than a time.Duration reaches is stale however well it
// is signed: unix milliseconds, where Hello Client sends seconds, most of
// all.
func TestVerifyRefusesFarTimestamps(t *testing.T) {
	src := testSource(t, 5*time.Minute)
	base := sourcetest.Load(t, "testdata/lead")
	base.ReceivedAt = time.UnixMilli(1796305481000)
	for _, c := range []struct {
		t    int64
		hint string
	}{
		{1796305481000, "1796305481000 looks like unix milliseconds"},
		{99999999999, "more than 292 years after"},
		{math.MaxInt64, "more than 292 years after"},
		{1, "h44m40s before the receive time"},
	} {
		req := *base
		req.Header = http.Header{SignatureHeader: {signedHeader(src.secret, c.t, base.Body)}}
		err := src.Verify(&req)
		if !errors.Is(err, sources.ErrStaleTimestamp) || !strings.Contains(err.Error(), c.hint) {
			t.Errorf("t=%d: %v, want a stale timestamp that says %q", c.t, err, c.hint)
		}
	}
	req := *base
	req.Header = http.Header{SignatureHeader: {signedHeader(src.secret, 1796305481, base.Body)}}
	if err := src.Verify(&req); err != nil {
		t.Fatalf("the same time in seconds: %v", err)
	}
}

func TestSeveralV1AcceptsAnyMatching(t *testing.T) {
	src := testSource(t, 5*time.Minute)
	req := sourcetest.Load(t, "testdata/lead")
	good := req.Header.Get(SignatureHeader)
	ts, sigs, err := ParseSignature(good)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(SignatureHeader, fmt.Sprintf("t=%d,v1=%s,v1=%s", ts, strings.Repeat("00", 32), sigs[0]))
	if err := src.Verify(req); err != nil {
		t.Fatal(err)
	}
}

func TestSignThenVerify(t *testing.T) {
	src := testSource(t, 5*time.Minute)
	req := sourcetest.Load(t, "testdata/appointment")
	want := req.Header.Get(SignatureHeader)
	req.Header = http.Header{}
	if err := src.Sign(req); err != nil {
		t.Fatal(err)
	}
	if got := req.Header.Get(SignatureHeader); got != want {
		t.Fatalf("Sign made %q; openssl made %q", got, want)
	}
	if err := src.Verify(req); err != nil {
		t.Fatal(err)
	}
}

func TestConvertIDStableAndTypes(t *testing.T) {
	src := testSource(t, 0)
	cases := []struct {
		name, body, wantType, wantSubject string
	}{
		{"lowercase keys", `{"type":"lead","serialNumber":"B1","sessionId":"S9"}`, "com.helloclient.lead", "sessions/S9"},
		{"appointment by field", `{"SerialNumber":"B1","SessionID":"S2","AppointmentTime":"2026-01-01T00:00:00Z"}`, "com.helloclient.appointment", "sessions/S2"},
		{"no type is a lead", `{"SerialNumber":"B1","SessionID":"S3","Email":"x@y"}`, "com.helloclient.lead", "sessions/S3"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := &sources.Request{Body: []byte(c.body), ReceivedAt: time.Now()}
			evs, err := src.Convert(req)
			if err != nil {
				t.Fatal(err)
			}
			if len(evs) != 1 || evs[0].Type() != c.wantType || evs[0].Subject() != c.wantSubject || evs[0].Source() != "https://helloclient.com/chatbots/B1" {
				t.Fatalf("got %v", evs)
			}
			again, _ := src.Convert(req)
			if again[0].ID() != evs[0].ID() || evs[0].ID() != sources.SHA256Hex([]byte(c.body)) {
				t.Fatal("id must be the SHA-256 of the body, the same for every retry")
			}
		})
	}
}

func TestConvertRejectsNonObjects(t *testing.T) {
	sourcetest.CheckNotObjects(t, testSource(t, 0), `"lead"`, `{"a":`, `{"ChatLogs":[1]}`)
}

func FuzzVerify(f *testing.F) {
	src := testSource(f, 5*time.Minute)
	for _, req := range sourcetest.Seeds(f, "testdata") {
		f.Add(req.Header.Get(SignatureHeader), req.Body)
	}
	received := time.Date(2026, 11, 20, 10, 15, 30, 0, time.UTC)
	f.Fuzz(func(t *testing.T, header string, body []byte) {
		req := &sources.Request{Header: http.Header{SignatureHeader: {header}}, Body: body, ReceivedAt: received}
		err := src.Verify(req)
		if err != nil {
			return
		}
		// Only a real signature may pass: recompute it independently, over
		// the raw body and over its compact form.
		ts, sigs, perr := ParseSignature(header)
		if perr != nil {
			t.Fatalf("accepted an unparsable header %q", header)
		}
		if !sourcetest.Within(ts, 1, received, src.tolerance) {
			t.Fatalf("accepted t=%d, outside %s of %d", ts, src.tolerance, received.Unix())
		}
		candidates := [][]byte{body}
		var compact bytes.Buffer
		if json.Compact(&compact, body) == nil {
			candidates = append(candidates, compact.Bytes())
		}
		for _, c := range candidates {
			m := hmac.New(sha256.New, src.secret)
			fmt.Fprintf(m, "%d.", ts)
			m.Write(c)
			want := m.Sum(nil)
			for _, sig := range sigs {
				if got, err := hex.DecodeString(strings.TrimSpace(sig)); err == nil && hmac.Equal(got, want) {
					return
				}
			}
		}
		t.Fatalf("accepted header %q for a body it does not sign", header)
	})
}

// FuzzVerifyTimestamp signs every t it tries, so only the timestamp check
// stands between it and acceptance: a t is accepted exactly when it is
// within the tolerance, whatever the number and the tolerance.
func FuzzVerifyTimestamp(f *testing.F) {
	base := sourcetest.Load(f, "testdata/lead")
	secret := testSource(f, 0).secret
	at := base.ReceivedAt.Unix()
	for _, t := range []int64{at, at - 300, at + 300, at - 301, at + 301, at * 1000, 99999999999, math.MaxInt64, 1, 0, -at} {
		f.Add(t, int64(5*time.Minute))
	}
	f.Add(at*1000, int64(math.MaxInt64))
	f.Fuzz(func(t *testing.T, ts, tolerance int64) {
		if tolerance < 0 {
			return // refused by Validate
		}
		src := &Source{secret: secret, tolerance: time.Duration(tolerance)}
		req := *base
		req.Header = http.Header{SignatureHeader: {signedHeader(secret, ts, base.Body)}}
		err := src.Verify(&req)
		fresh := tolerance == 0 || sourcetest.Within(ts, 1, base.ReceivedAt, time.Duration(tolerance))
		if want := ts > 0 && fresh; want != (err == nil) {
			t.Fatalf("t=%d, tolerance %s: %v, accepted=%v wanted", ts, time.Duration(tolerance), err, want)
		}
		if ts > 0 && err != nil && !errors.Is(err, sources.ErrStaleTimestamp) {
			t.Fatalf("t=%d: %v, want a stale timestamp", ts, err)
		}
	})
}

func FuzzConvert(f *testing.F) {
	src := testSource(f, 0)
	for _, req := range sourcetest.Seeds(f, "testdata") {
		f.Add(req.Body)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		sourcetest.CheckConvert(t, src, &sources.Request{Body: body, ReceivedAt: time.Unix(1795169730, 0)})
	})
}

func TestSerialNumberIsEscapedInTheSource(t *testing.T) {
	src := testSource(t, 0)
	evs, err := src.Convert(&sources.Request{Body: []byte(`{"Type":"lead","SerialNumber":"%0X bot/1","SessionID":"s"}`), ReceivedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if got := evs[0].Source(); got != "https://helloclient.com/chatbots/%250X%20bot%2F1" {
		t.Fatalf("source %q", got)
	}
	if err := evs[0].Validate(); err != nil {
		t.Fatal(err)
	}
}

// Chat-log conversations keep their ids across a retry of the push, and
// conversations without a start time are told apart by their content
// rather than dropped as duplicates of one another.
func TestChatLogIDs(t *testing.T) {
	src := testSource(t, 0)
	ids := func(body string) []string {
		t.Helper()
		evs, err := src.Convert(&sources.Request{Body: []byte(body), ReceivedAt: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, ev := range evs {
			out = append(out, ev.ID())
		}
		return out
	}
	const push = `{"SerialNumber":"B1","Date":"2026-11-19","ChatLogs":[` +
		`{"SessionID":"s-1","StartTime":"2026-11-19T09:00:00Z","Messages":[{"Content":"Hi"}]},` +
		`{"SessionID":"s-2","Messages":[{"Content":"first"}]},` +
		`{"SessionID":"s-2","Messages":[{"Content":"second"}]}]}`
	first := ids(push)
	if len(first) != 3 || first[1] == first[2] || first[0] == first[1] {
		t.Fatalf("ids %q: want three distinct", first)
	}
	if again := ids(push); !slices.Equal(again, first) {
		t.Errorf("a retry of the push: ids %q, want %q", again, first)
	}
	// Another day's push: the conversation with a start time is the same
	// one, one without is the same only when its content is.
	next := ids(strings.Replace(push, `"Date":"2026-11-19"`, `"Date":"2026-11-20"`, 1))
	if !slices.Equal(next, first) {
		t.Errorf("the next day's push of the same conversations: %q, want %q", next, first)
	}
	changed := ids(strings.Replace(push, `"second"`, `"third"`, 1))
	if changed[2] == first[2] || changed[1] != first[1] {
		t.Errorf("a conversation without a start time whose messages changed: %q against %q", changed, first)
	}
	if want := sources.SHA256Hex([]byte("B1"), []byte{0}, []byte("s-1"), []byte{0}, []byte("2026-11-19T09:00:00Z")); first[0] != want {
		t.Errorf("with a start time the id is of chatbot, session and start time: %s, want %s", first[0], want)
	}
}

// Hello Client signs JSON.stringify of the body: a body that reached the
// bridge with escapes JavaScript does not write ("\/", "\u00e9") verifies
// against that form, written out here as Node.js writes it.
// A chat-log conversation's id keeps text that is not valid Unicode apart
// from its U+FFFD twin, whether it is made of chatbot, session and start
// time or, without a start time, of the conversation itself.
func TestInvalidUTF8KeepsEventsApart(t *testing.T) {
	src := testSource(t, 0)
	for _, body := range []string{
		`{"SerialNumber":"HC-1","ChatLogs":[{"SessionID":"<TEXT>","StartTime":"2026-11-20T10:00:00Z"}]}`,
		`{"SerialNumber":"<TEXT>","ChatLogs":[{"SessionID":"s1","StartTime":"2026-11-20T10:00:00Z"}]}`,
		`{"SerialNumber":"HC-1","ChatLogs":[{"SessionID":"s1","StartTime":"<TEXT>"}]}`,
		`{"SerialNumber":"HC-1","ChatLogs":[{"SessionID":"s1","Messages":[{"Text":"<TEXT>"}]}]}`,
	} {
		sourcetest.CheckInvalidTextIDs(t, src, body)
	}
}

func TestVerifyTheStringifiedForm(t *testing.T) {
	secret := sourcetest.ReadFile(t, "testdata/secret")
	const sent = `{"Type":"lead","SerialNumber":"HC-1","SessionID":"s-1","FirstName":"Ren\u00e9e","PageURL":"https:\/\/acme.example\/contact"}`
	const stringified = `{"Type":"lead","SerialNumber":"HC-1","SessionID":"s-1","FirstName":"Renée","PageURL":"https://acme.example/contact"}`
	now := time.Now()
	for name, c := range map[string]struct {
		signed string
		ok     bool
	}{
		"the stringified form": {stringified, true},
		"another form":         {strings.Replace(stringified, "Renée", "Renee", 1), false},
	} {
		m := hmac.New(sha256.New, []byte(secret))
		fmt.Fprintf(m, "%d.%s", now.Unix(), c.signed)
		req := &sources.Request{Header: http.Header{}, Body: []byte(sent), ReceivedAt: now}
		req.Header.Set(SignatureHeader, fmt.Sprintf("t=%d,v1=%s", now.Unix(), hex.EncodeToString(m.Sum(nil))))
		if err := testSource(t, 5*time.Minute).Verify(req); (err == nil) != c.ok {
			t.Errorf("%s: %v", name, err)
		}
	}
}
