package server

import (
	"bufio"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

func prefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

func TestClientIP(t *testing.T) {
	lb := prefixes("127.0.0.1/32", "10.0.0.0/8")
	cases := []struct {
		name, remote, xff, want string
		trusted                 []netip.Prefix
	}{
		{"no proxy trusted: the peer, whatever the header says", "203.0.113.9", "198.51.100.1", "203.0.113.9", nil},
		{"untrusted peer: header ignored", "203.0.113.9", "198.51.100.1", "203.0.113.9", lb},
		{"trusted peer: the client it forwards", "127.0.0.1", "198.51.100.1", "198.51.100.1", lb},
		{"right-most untrusted hop wins over a spoofed left one", "127.0.0.1", "6.6.6.6, 198.51.100.1, 10.1.2.3", "198.51.100.1", lb},
		{"every hop trusted: the left-most", "127.0.0.1", "10.0.0.5, 10.0.0.6", "10.0.0.5", lb},
		{"garbage hop stops the walk at the last good one", "127.0.0.1", "198.51.100.1, not-an-ip", "127.0.0.1", lb},
		{"IPv4-mapped IPv6 is unmapped", "127.0.0.1", "::ffff:198.51.100.7", "198.51.100.7", lb},
		{"no header", "127.0.0.1", "", "127.0.0.1", lb},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := ClientIP(netip.MustParseAddr(c.remote), c.xff, c.trusted)
			if got.String() != c.want {
				t.Fatalf("got %s, want %s", got, c.want)
			}
		})
	}
}

func FuzzClientIP(f *testing.F) {
	f.Add("127.0.0.1", "198.51.100.1, 10.1.2.3")
	f.Add("10.0.0.1", ",,, ::1 ,")
	f.Add("203.0.113.9", "1.2.3.4")
	trusted := prefixes("127.0.0.1/32", "10.0.0.0/8")
	f.Fuzz(func(t *testing.T, remote, xff string) {
		r, err := netip.ParseAddr(remote)
		if err != nil {
			return
		}
		got := ClientIP(r, xff, trusted)
		// An untrusted peer is always the answer, whatever it sends.
		if !contains(trusted, r) && got != r {
			t.Fatalf("untrusted peer %s made the client %s", r, got)
		}
		// The answer is the peer or one of the header's addresses.
		if got == r {
			return
		}
		for _, hop := range strings.Split(xff, ",") {
			if a, err := netip.ParseAddr(strings.TrimSpace(hop)); err == nil && a.Unmap() == got {
				return
			}
		}
		t.Fatalf("client %s is neither the peer nor in %q", got, xff)
	})
}

func TestRequireToken(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(200) })
	h := RequireToken(func() string { return "s3cret" }, ok, "/healthz")
	cases := []struct {
		name, method, target, auth string
		want                       int
	}{
		{"open path", "GET", "/healthz", "", 200},
		{"no token", "GET", "/metrics", "", 401},
		{"wrong token", "GET", "/metrics", "Bearer nope", 401},
		{"right token", "GET", "/metrics", "Bearer s3cret", 200},
		{"page with query token", "GET", "/inspector/?token=s3cret", "", 200},
		{"query token only opens the page", "GET", "/inspector/api/events?token=s3cret", "", 401},
		{"query token not for POST", "POST", "/inspector/?token=s3cret", "", 401},
	}
	for _, c := range cases {
		req := httptest.NewRequest(c.method, c.target, nil)
		if c.auth != "" {
			req.Header.Set("Authorization", c.auth)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != c.want {
			t.Errorf("%s: %d, want %d", c.name, rec.Code, c.want)
		}
	}
	if rec := httptest.NewRecorder(); true {
		RequireToken(func() string { return "" }, ok).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		if rec.Code != 200 {
			t.Errorf("no token configured must require nothing, got %d", rec.Code)
		}
	}
	// Without a token, the inspector and pprof answer only a Host that is
	// an address: a name could be a rebinding page's.
	noToken := RequireToken(func() string { return "" }, ok, "/healthz")
	for _, c := range []struct {
		host, path string
		want       int
	}{
		{"127.0.0.1:9090", "/inspector/api/events", 200},
		{"[::1]:9090", "/inspector/", 200},
		{"localhost:9090", "/debug/pprof/", 200},
		{"10.0.0.7", "/inspector/api/deadletters/x/replay", 200},
		{"evil.example:9090", "/inspector/api/events", 403},
		{"evil.example:9090", "/debug/pprof/profile", 403},
		{"evil.example:9090", "/metrics", 200},
		{"evil.example:9090", "/healthz", 200},
	} {
		req := httptest.NewRequest("GET", c.path, nil)
		req.Host = c.host
		rec := httptest.NewRecorder()
		noToken.ServeHTTP(rec, req)
		if rec.Code != c.want {
			t.Errorf("no token, Host %s, %s: %d, want %d", c.host, c.path, rec.Code, c.want)
		}
	}
	// With a token, a name is fine: the token is what a page lacks.
	req := httptest.NewRequest("GET", "/inspector/api/events", nil)
	req.Host = "bridge-admin.internal:9090"
	req.Header.Set("Authorization", "Bearer s3cret")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 200 {
		t.Errorf("token and a name: %d", rec.Code)
	}
}

// The listener's copy of the headers matches what net/http reads from the
// same bytes: canonical names, repeated headers in order, empty values.
func TestCopyHeaderMatchesNetHTTP(t *testing.T) {
	raw := "POST /webhooks/hc?x=1 HTTP/1.1\r\n" +
		"Host: bridge.example\r\n" +
		"content-type: application/json\r\n" +
		"x-helloclient-signature: abc123\r\n" +
		"X-Multi: one\r\n" +
		"x-multi: two\r\n" +
		"X-Empty:\r\n" +
		"User-Agent: provider/1.0\r\n" +
		"Content-Length: 2\r\n\r\n{}"
	var fr fasthttp.Request
	if err := fr.Read(bufio.NewReader(strings.NewReader(raw))); err != nil {
		t.Fatal(err)
	}
	got := copyHeader(&fr.Header)
	want, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
	if err != nil {
		t.Fatal(err)
	}
	want.Header.Set("Host", want.Host) // net/http moves Host out of the map
	for name, values := range want.Header {
		if !slices.Equal(got[name], values) {
			t.Errorf("%s: got %q, want %q", name, got[name], values)
		}
	}
	for name := range got {
		if _, ok := want.Header[name]; !ok {
			t.Errorf("extra header %s: %q", name, got[name])
		}
	}
	if got.Get("X-Helloclient-Signature") != "abc123" {
		t.Errorf("lookup by canonical name failed: %v", got)
	}
}

// FuzzCopyHeader checks the one-buffer copy against copying each header on
// its own: same names, same values in the same order.
func FuzzCopyHeader(f *testing.F) {
	f.Add("X-Webhook-Signature", "t=1,v1=ab", "x-multi", "one", "X-Multi", "two")
	f.Add("", "", "A", "", "a", "b")
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2, k3, v3 string) {
		var h fasthttp.RequestHeader
		for _, kv := range [][2]string{{k1, v1}, {k2, v2}, {k3, v3}} {
			h.Add(kv[0], kv[1])
		}
		want := http.Header{}
		h.VisitAll(func(k, v []byte) {
			want[string(k)] = append(want[string(k)], string(v))
		})
		got := copyHeader(&h)
		if len(got) != len(want) {
			t.Fatalf("got %q, want %q", got, want)
		}
		for name, values := range want {
			if !slices.Equal(got[name], values) {
				t.Fatalf("%q: got %q, want %q", name, got[name], values)
			}
		}
	})
}
