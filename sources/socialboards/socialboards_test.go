package socialboards

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hookbridge/hookbridge/sources"
	"github.com/hookbridge/hookbridge/sources/sourcetest"
)

func newSource(t testing.TB, cfg *Config) *Source {
	t.Helper()
	return sourcetest.New[*Source](t, cfg)
}

func testSource(t testing.TB) *Source {
	return newSource(t, &Config{VerifyToken: sourcetest.ReadFile(t, "testdata/verify_token"), Key: sourcetest.ReadFile(t, "testdata/secret")})
}

func TestVectors(t *testing.T) {
	sourcetest.Run(t, testSource(t), "testdata")
}

func TestConfigValidate(t *testing.T) {
	cases := []struct {
		name      string
		cfg       Config
		badFields []string
	}{
		{"key", Config{VerifyToken: "t", Key: "k"}, nil},
		{"allow_unsigned", Config{VerifyToken: "t", AllowUnsigned: true}, nil},
		{"nothing", Config{}, []string{"verify_token", "key"}},
		{"no guard", Config{VerifyToken: "t"}, []string{"key"}},
		{"key and allow_unsigned", Config{VerifyToken: "t", Key: "k", AllowUnsigned: true}, []string{"allow_unsigned"}},
		{"blank verify_token", Config{VerifyToken: "  ", Key: "k"}, []string{"verify_token"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.cfg.Validate()
			sourcetest.CheckBlamed(t, err, c.badFields)
		})
	}
}

func TestNeedsAllowIPs(t *testing.T) {
	if (&Config{VerifyToken: "t", Key: "k"}).NeedsAllowIPs() {
		t.Fatal("a source with a key does not need allow_ips")
	}
	if !(&Config{VerifyToken: "t", AllowUnsigned: true}).NeedsAllowIPs() {
		t.Fatal("an unsigned source needs allow_ips")
	}
}

func TestExampleDecodes(t *testing.T) {
	common, decoded := sourcetest.DecodeExample(t, "socialboards", "from-env")
	cfg := decoded.(*Config)
	if common.Type != "socialboards" || cfg.Key == "" || cfg.VerifyToken == "" {
		t.Fatalf("decoded %q %+v", common.Type, cfg)
	}
}

func TestUnsignedAcceptsPostsWithoutKey(t *testing.T) {
	src := newSource(t, &Config{VerifyToken: "t", AllowUnsigned: true})
	req := sourcetest.Load(t, "testdata/missing_key")
	if err := src.Verify(req); err != nil {
		t.Fatal(err)
	}
	req.Method = http.MethodPut
	if err := src.Verify(req); !errors.Is(err, sources.ErrMethodNotAllowed) {
		t.Fatalf("PUT: %v", err)
	}
}

func TestIsHandshake(t *testing.T) {
	src := testSource(t)
	cases := []struct {
		name   string
		method string
		query  string
		want   bool
	}{
		{"GET with challenge", http.MethodGet, "challenge=1&verifyToken=x", true},
		{"GET with challenge only", http.MethodGet, "challenge=1", true},
		{"GET without challenge", http.MethodGet, "verifyToken=x", false},
		{"GET with empty challenge", http.MethodGet, "challenge=&verifyToken=x", false},
		{"POST with challenge", http.MethodPost, "challenge=1&verifyToken=x", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			q, _ := url.ParseQuery(c.query)
			if got := src.IsHandshake(&sources.Request{Method: c.method, Query: q}); got != c.want {
				t.Fatalf("got %v", got)
			}
		})
	}
}

func TestMakeHandshakeIsAnswered(t *testing.T) {
	src := testSource(t)
	now := time.Date(2026, 11, 20, 10, 15, 30, 123456789, time.UTC)
	req, err := src.MakeHandshake(now)
	if err != nil {
		t.Fatal(err)
	}
	if !src.IsHandshake(req) {
		t.Fatalf("MakeHandshake made %+v, not a handshake", req)
	}
	reply, err := src.Handshake(req)
	if err != nil {
		t.Fatal(err)
	}
	if reply.Status != http.StatusOK || !strings.HasPrefix(reply.ContentType, "text/plain") || string(reply.Body) != req.Query.Get(ChallengeParam) {
		t.Fatalf("reply %+v to challenge %q", reply, req.Query.Get(ChallengeParam))
	}
	if req.Query.Get(KeyParam) != sourcetest.ReadFile(t, "testdata/secret") {
		t.Fatal("the handshake goes to the endpoint URL, which carries the key")
	}
}

func TestSignThenVerify(t *testing.T) {
	src := testSource(t)
	want := sourcetest.Load(t, "testdata/ticket_status_change")
	req := &sources.Request{Method: http.MethodPost, Body: want.Body, ReceivedAt: want.ReceivedAt}
	if err := src.Sign(req); err != nil {
		t.Fatal(err)
	}
	if req.Query.Get(KeyParam) != want.Query.Get(KeyParam) {
		t.Fatalf("Sign set key %q; gen.sh set %q", req.Query.Get(KeyParam), want.Query.Get(KeyParam))
	}
	if err := src.Verify(req); err != nil {
		t.Fatal(err)
	}
}

func TestConvertFields(t *testing.T) {
	src := testSource(t)
	cases := []struct {
		name, body                        string
		wantType, wantSource, wantSubject string
	}{
		{"documented", `{"CommunityName":"acme","EventType":"ticket_status_change","TicketId":42,"Events":[]}`,
			"com.socialboards.ticket_status_change", "https://inbox.socialboards.com/acme", "tickets/42"},
		{"community with a space", `{"CommunityName":"Acme Support","EventType":"x","TicketId":"7"}`,
			"com.socialboards.x", "https://inbox.socialboards.com/Acme%20Support", "tickets/7"},
		{"keys in another case", `{"communityName":"acme","eventType":"Ticket_Created","ticketId":9}`,
			"com.socialboards.ticket_created", "https://inbox.socialboards.com/acme", "tickets/9"},
		{"ticket id from the first event", `{"CommunityName":"acme","EventType":"x","Events":[{"Ticket":{"Id":5}},{"Ticket":{"Id":6}}]}`,
			"com.socialboards.x", "https://inbox.socialboards.com/acme", "tickets/5"},
		{"no names", `{}`, "com.socialboards.unknown", "https://inbox.socialboards.com/unknown", ""},
		{"names of the wrong kind", `{"CommunityName":{},"EventType":[1],"TicketId":true,"Events":"x"}`,
			"com.socialboards.unknown", "https://inbox.socialboards.com/unknown", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := &sources.Request{Body: []byte(c.body), ReceivedAt: time.Now()}
			evs, err := src.Convert(req)
			if err != nil {
				t.Fatal(err)
			}
			ev := evs[0]
			if len(evs) != 1 || ev.Type() != c.wantType || ev.Source() != c.wantSource || ev.Subject() != c.wantSubject {
				t.Fatalf("got type %q source %q subject %q", ev.Type(), ev.Source(), ev.Subject())
			}
			if ev.ID() != sources.SHA256Hex([]byte(c.body)) || !ev.Time().IsZero() {
				t.Fatalf("id %q time %v: want the body's SHA-256 and no time", ev.ID(), ev.Time())
			}
			if err := ev.Validate(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestConvertRejectsNonObjects(t *testing.T) {
	sourcetest.CheckNotObjects(t, testSource(t), `CommunityName=acme`)
}

func FuzzVerify(f *testing.F) {
	src := testSource(f)
	for _, req := range sourcetest.Seeds(f, "testdata") {
		f.Add(req.Method, req.Query.Get(KeyParam), req.Query.Get(ChallengeParam), req.Query.Get(VerifyTokenParam))
	}
	key, token := sourcetest.ReadFile(f, "testdata/secret"), sourcetest.ReadFile(f, "testdata/verify_token")
	f.Fuzz(func(t *testing.T, method, keyParam, challenge, tokenParam string) {
		req := &sources.Request{
			Method: method,
			Query:  url.Values{KeyParam: {keyParam}, ChallengeParam: {challenge}, VerifyTokenParam: {tokenParam}},
			Header: http.Header{},
		}
		if src.IsHandshake(req) {
			reply, err := src.Handshake(req)
			if err != nil {
				return
			}
			if tokenParam != token || string(reply.Body) != challenge || reply.Status != http.StatusOK {
				t.Fatalf("answered handshake token %q challenge %q with %+v", tokenParam, challenge, reply)
			}
			return
		}
		if err := src.Verify(req); err != nil {
			return
		}
		if method != http.MethodPost || keyParam != key {
			t.Fatalf("accepted %s with key %q", method, keyParam)
		}
	})
}

func FuzzConvert(f *testing.F) {
	src := testSource(f)
	for _, req := range sourcetest.Seeds(f, "testdata") {
		f.Add(req.Body)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		sourcetest.CheckConvert(t, src, &sources.Request{Body: body, ReceivedAt: time.Unix(1795169730, 0)})
	})
}
