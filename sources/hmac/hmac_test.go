package hmacsource

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"hash"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"text/template"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/hookbridge/hookbridge/config"
	"github.com/hookbridge/hookbridge/sources"
	"github.com/hookbridge/hookbridge/sources/sourcetest"
)

// configs are the vector sets under testdata/, each with its config.yaml.
var configs = []string{"timestamped", "base64_body", "sha512_headers"}

type commonKeys struct {
	Type string `yaml:"type"`
}

// decodeConfig decodes a source's YAML mapping as the loader does: ${...}
// expanded, strict keys, then Validate, errors with line and column.
func decodeConfig(t testing.TB, name string, src []byte) (*Config, error) {
	t.Helper()
	var root yaml.Node
	if err := yaml.Unmarshal(src, &root); err != nil {
		t.Fatal(err)
	}
	node := root.Content[0]
	d := &config.Decoder{File: name}
	d.Expand(node, func(name string) (string, bool) { return "value-of-" + name, true })
	var common commonKeys
	cfg := NewConfig()
	d.DecodeInto(node, &common, cfg)
	d.Validate(node, cfg)
	if err := d.Err(); err != nil {
		return nil, err
	}
	if common.Type != "hmac" {
		t.Fatalf("%s: type %q", name, common.Type)
	}
	return cfg, nil
}

func loadConfig(t testing.TB, dir string) *Config {
	t.Helper()
	path := filepath.Join("testdata", dir, "config.yaml")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := decodeConfig(t, path, b)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func newSource(t testing.TB, cfg *Config) *Source {
	t.Helper()
	return sourcetest.New[*Source](t, cfg)
}

func TestVectors(t *testing.T) {
	for _, dir := range configs {
		t.Run(dir, func(t *testing.T) {
			sourcetest.Run(t, newSource(t, loadConfig(t, dir)), filepath.Join("testdata", dir))
		})
	}
}

func TestExampleDecodes(t *testing.T) {
	_, decoded := sourcetest.DecodeExample(t, "hmac", "from-env")
	cfg := decoded.(*Config)
	if cfg.Secret != "from-env" || cfg.Header != "X-Signature" || cfg.TypePath != "event" || cfg.TimestampHeader != "X-Timestamp" {
		t.Fatalf("decoded %+v", cfg)
	}
}

func TestConfigValidate(t *testing.T) {
	valid := func() *Config {
		c := NewConfig()
		c.Secret, c.Header, c.Source, c.EventType = "s", "X-Signature", "https://example.com", "com.example.x"
		return c
	}
	cases := []struct {
		name   string
		change func(c *Config)
		blame  []string
	}{
		{"valid", func(c *Config) {}, nil},
		{"everything", func(c *Config) {
			c.Algorithm, c.Encoding, c.Prefix = "SHA-512", "Base64", "v1="
			c.Payload, c.TimestampHeader = `{{ .Header "X-Id" }}.{{ .Timestamp }}.{{ .Body }}`, "X-Timestamp"
			c.EventType, c.TypePath, c.TypePrefix = "", "a.b", "com.example."
			c.IDPath, c.SubjectPath, c.SubjectPrefix, c.TimePath = "id", "data.id", "things/", "at"
		}, nil},
		{"empty", func(c *Config) { *c = Config{} }, []string{"secret", "header", "algorithm", "encoding", "payload", "source", "event_type"}},
		{"md5", func(c *Config) { c.Algorithm = "md5" }, []string{"algorithm"}},
		{"base32", func(c *Config) { c.Encoding = "base32" }, []string{"encoding"}},
		{"header with a space", func(c *Config) { c.Header = "X Signature" }, []string{"header"}},
		{"timestamp header with a colon", func(c *Config) {
			c.TimestampHeader, c.Payload = "X-Timestamp:", "{{ .Timestamp }}.{{ .Body }}"
		}, []string{"timestamp_header"}},
		// A timestamp outside the signature guards against no replay.
		{"timestamp header not signed", func(c *Config) { c.TimestampHeader = "X-Timestamp" }, []string{"payload"}},
		{"timestamp header signed through .Header", func(c *Config) {
			c.TimestampHeader, c.Payload = "X-Timestamp", `{{ .Header "x-timestamp" }}:{{ .Body }}`
		}, nil},
		{"prefix with a comma", func(c *Config) { c.Prefix = "a,b" }, []string{"prefix"}},
		{"negative tolerance", func(c *Config) { c.Tolerance = -time.Second }, []string{"tolerance"}},
		{"payload does not parse", func(c *Config) { c.Payload = "{{ .Body" }, []string{"payload"}},
		{"payload misspells a field", func(c *Config) { c.Payload = "{{ .Bodi }}" }, []string{"payload"}},
		{"payload without the body", func(c *Config) { c.Payload = "{{ .Timestamp }}"; c.TimestampHeader = "X-T" }, []string{"payload"}},
		{"empty payload", func(c *Config) { c.Payload = "" }, []string{"payload"}},
		{"timestamp without its header", func(c *Config) { c.Payload = "{{ .Timestamp }}.{{ .Body }}" }, []string{"payload"}},
		{"source not a URI", func(c *Config) { c.Source = "http://[::1" }, []string{"source"}},
		{"event_type and type_path", func(c *Config) { c.TypePath = "type" }, []string{"event_type"}},
		{"blank event_type", func(c *Config) { c.EventType = " " }, []string{"event_type"}},
		{"type_prefix without type_path", func(c *Config) { c.TypePrefix = "com.x." }, []string{"type_prefix"}},
		{"subject_prefix without subject_path", func(c *Config) { c.SubjectPrefix = "x/" }, []string{"subject_prefix"}},
		{"bad paths", func(c *Config) { c.IDPath, c.SubjectPath, c.TimePath = "a..b", ".a", "a." }, []string{"id_path", "subject_path", "time_path"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := valid()
			c.change(cfg)
			err := cfg.Validate()
			sourcetest.CheckBlamed(t, err, c.blame)
			if _, nerr := cfg.NewSource(); (nerr == nil) != (err == nil) {
				t.Fatalf("NewSource: %v", nerr)
			}
		})
	}
}

func TestConfigErrorsNameTheLine(t *testing.T) {
	_, err := decodeConfig(t, "bridge.yaml", []byte("type: hmac\nsecret: s\nheader: X-Sig\nalgorithm: md5\nencoding: hex\nsource: https://x\nevent_type: x\n"))
	if err == nil || !strings.Contains(err.Error(), "bridge.yaml:4:1: algorithm") {
		t.Fatalf("got %v", err)
	}
	_, err = decodeConfig(t, "bridge.yaml", []byte("type: hmac\nsecret: s\nheader: X-Sig\ntype_name: x\nsource: https://x\nevent_type: x\n"))
	if err == nil || !strings.Contains(err.Error(), `bridge.yaml:4:1: unknown key "type_name"`) {
		t.Fatalf("got %v", err)
	}
}

// TestBodyOnlyMatchesTemplate checks the unrendered fast path for
// "{{ .Body }}" against the template, on bodies that are not UTF-8 text.
func TestBodyOnlyMatchesTemplate(t *testing.T) {
	fast := loadConfig(t, "base64_body")
	slow := *fast
	slow.Payload = `{{ .Body }}{{ "" }}`
	fastSrc, slowSrc := newSource(t, fast), newSource(t, &slow)
	if !fastSrc.payload.bodyOnly || slowSrc.payload.bodyOnly {
		t.Fatal("bodyOnly detection is wrong")
	}
	for _, body := range [][]byte{nil, []byte("{}"), {0xff, 0xfe, 0, '{', 0x80}, []byte("{{ .Body }}")} {
		req := &sources.Request{Body: body, Header: http.Header{}}
		a, err := fastSrc.mac(req, "")
		if err != nil {
			t.Fatal(err)
		}
		b, err := slowSrc.mac(req, "")
		if err != nil {
			t.Fatal(err)
		}
		want := hmac.New(sha1.New, []byte(fast.Secret))
		want.Write(body)
		if !hmac.Equal(a, b) || !hmac.Equal(a, want.Sum(nil)) {
			t.Fatalf("%q: fast %x, template %x", body, a, b)
		}
	}
}

func TestSignMatchesOpenSSL(t *testing.T) {
	cases := []struct{ config, vector, header string }{
		{"timestamped", "order_paid", "X-Signature"},
		{"base64_body", "submission", "X-Hook-Signature"},
	}
	for _, c := range cases {
		t.Run(c.config, func(t *testing.T) {
			src := newSource(t, loadConfig(t, c.config))
			want := sourcetest.Load(t, filepath.Join("testdata", c.config, c.vector))
			req := &sources.Request{Method: http.MethodPost, Body: want.Body, ReceivedAt: want.ReceivedAt}
			if err := src.Sign(req); err != nil {
				t.Fatal(err)
			}
			if got := req.Header.Get(c.header); got != want.Header.Get(c.header) {
				t.Fatalf("Sign made %q; openssl made %q", got, want.Header.Get(c.header))
			}
			if err := src.Verify(req); err != nil {
				t.Fatal(err)
			}
		})
	}
	// Sign writes seconds where the provider sends milliseconds; both verify.
	src := newSource(t, loadConfig(t, "sha512_headers"))
	req := sourcetest.Load(t, "testdata/sha512_headers/contact_created")
	req.Header.Del("X-Sig")
	if err := src.Sign(req); err != nil {
		t.Fatal(err)
	}
	if err := src.Verify(req); err != nil {
		t.Fatal(err)
	}
}

func TestToleranceZeroTurnsTheCheckOff(t *testing.T) {
	cfg := loadConfig(t, "timestamped")
	req := sourcetest.Load(t, "testdata/timestamped/stale")
	if err := newSource(t, cfg).Verify(req); !errors.Is(err, sources.ErrStaleTimestamp) {
		t.Fatalf("with tolerance: %v", err)
	}
	cfg.Tolerance = 0
	if err := newSource(t, cfg).Verify(req); err != nil {
		t.Fatalf("tolerance 0: %v", err)
	}
}

func TestVerifyRejects(t *testing.T) {
	src := newSource(t, loadConfig(t, "timestamped"))
	good := sourcetest.Load(t, "testdata/timestamped/order_paid")
	sig := good.Header.Get("X-Signature")
	cases := []struct {
		name, sig, ts string
		want          error
	}{
		{"prefix in upper case", strings.ToUpper(sig[:7]) + sig[7:], "1795169730", nil},
		{"signature in upper case", strings.ToUpper(sig), "1795169730", nil},
		{"blank signature", "  ", "1795169730", sources.ErrMissingSignature},
		{"only commas", ",,", "1795169730", sources.ErrMalformedSignature},
		{"prefix alone", "sha256=", "1795169730", sources.ErrMalformedSignature},
		{"one of two lacks the prefix", sig + "," + sig[7:], "1795169730", sources.ErrMalformedSignature},
		{"not hex", "sha256=zz", "1795169730", sources.ErrSignatureMismatch},
		{"timestamp not a number", sig, "soon", sources.ErrMalformedSignature},
		{"timestamp with a sign", sig, "+1795169730", sources.ErrMalformedSignature},
		{"timestamp zero", sig, "0", sources.ErrMalformedSignature},
		{"timestamp in the future", sig, "1795170100", sources.ErrStaleTimestamp},
		{"timestamp changed within tolerance", sig, "1795169731", sources.ErrSignatureMismatch},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := *good
			req.Header = http.Header{"X-Signature": {c.sig}, "X-Timestamp": {c.ts}}
			err := src.Verify(&req)
			if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
}

// signedAt is base (the timestamped order_paid vector) with X-Timestamp
// set to stamp and signed here for it, so that stamp can be anything.
func signedAt(base *sources.Request, secret []byte, stamp string) *sources.Request {
	req := *base
	req.Header = base.Header.Clone()
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(stamp + "."))
	m.Write(req.Body)
	req.Header.Set("X-Timestamp", stamp)
	req.Header.Set("X-Signature", "sha256="+hex.EncodeToString(m.Sum(nil)))
	return &req
}

// A timestamp further away than a time.Duration reaches is stale however
// well it is signed, and the error names the header as it came.
func TestVerifyRefusesFarTimestamps(t *testing.T) {
	src := newSource(t, loadConfig(t, "timestamped"))
	base := sourcetest.Load(t, "testdata/timestamped/order_paid")
	for _, c := range []struct{ stamp, says string }{
		{"99999999999", "X-Timestamp 99999999999: timestamp outside tolerance: unix time 99999999999, more than 292 years after"},
		{"1795169730000000", "X-Timestamp 1795169730000000: timestamp outside tolerance: unix time 1795169730000, more than 292 years after"},
		{"9223372036854775807", "more than 292 years after"},
	} {
		err := src.Verify(signedAt(base, src.secret, c.stamp))
		if !errors.Is(err, sources.ErrStaleTimestamp) || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%s: %v, want a stale timestamp that says %q", c.stamp, err, c.says)
		}
	}
	for _, stamp := range []string{"1795169730", "1795169730000"} {
		if err := src.Verify(signedAt(base, src.secret, stamp)); err != nil {
			t.Errorf("%s, the receive time: %v", stamp, err)
		}
	}
}

func TestParseTimestamp(t *testing.T) {
	cases := []struct {
		in   string
		want time.Time
		ok   bool
	}{
		{"1795169730", time.Unix(1795169730, 0), true},
		{"1795169730123", time.UnixMilli(1795169730123), true},
		{"1000000000000", time.Unix(1000000000000, 0), true},
		{"1000000000001", time.UnixMilli(1000000000001), true},
		{"0", time.Time{}, false},
		{"-5", time.Time{}, false},
		{"1.5", time.Time{}, false},
		{" 1795169730", time.Time{}, false},
		{"", time.Time{}, false},
	}
	for _, c := range cases {
		got, err := ParseTimestamp(c.in)
		if (err == nil) != c.ok || !got.Equal(c.want) {
			t.Errorf("%q: got %v, %v", c.in, got, err)
		}
	}
}

func TestConvert(t *testing.T) {
	paths := newSource(t, loadConfig(t, "timestamped"))
	constant := newSource(t, loadConfig(t, "base64_body"))
	cases := []struct {
		name                        string
		src                         *Source
		body                        string
		id, typ, subject, eventTime string
	}{
		{"all paths", paths, `{"id":"e1","event":"Order:Paid","created_at":"2026-01-02T03:04:05+01:00","data":{"order_id":7}}`,
			"e1", "com.example.shop.order.paid", "orders/7", "2026-01-02T02:04:05Z"},
		{"numeric id and unix time", paths, `{"id":12,"event":"x","created_at":1767323045,"data":{"order_id":"A-1"}}`,
			"12", "com.example.shop.x", "orders/A-1", "2026-01-02T03:04:05Z"},
		{"nothing at the paths", paths, `{"data":{}}`,
			sources.SHA256Hex([]byte(`{"data":{}}`)), "com.example.shop.unknown", "", ""},
		{"values of the wrong kind", paths, `{"id":{"a":1},"event":[],"created_at":"soon","data":"x"}`,
			sources.SHA256Hex([]byte(`{"id":{"a":1},"event":[],"created_at":"soon","data":"x"}`)), "com.example.shop.unknown", "", ""},
		{"blank id", paths, `{"id":"  ","event":"x"}`, sources.SHA256Hex([]byte(`{"id":"  ","event":"x"}`)), "com.example.shop.x", "", ""},
		{"constant type", constant, `{"form":"f","event":"ignored"}`,
			sources.SHA256Hex([]byte(`{"form":"f","event":"ignored"}`)), "com.example.forms.submission", "forms/f", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			evs, err := c.src.Convert(&sources.Request{Body: []byte(c.body)})
			if err != nil {
				t.Fatal(err)
			}
			ev := evs[0]
			gotTime := ""
			if !ev.Time().IsZero() {
				gotTime = ev.Time().UTC().Format(time.RFC3339)
			}
			if len(evs) != 1 || ev.ID() != c.id || ev.Type() != c.typ || ev.Subject() != c.subject || gotTime != c.eventTime {
				t.Fatalf("got id %q type %q subject %q time %q", ev.ID(), ev.Type(), ev.Subject(), gotTime)
			}
			if err := ev.Validate(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// An id read at id_path keeps text that is not valid Unicode apart from
// its U+FFFD twin.
func TestInvalidUTF8KeepsEventsApart(t *testing.T) {
	src := newSource(t, loadConfig(t, "timestamped"))
	sourcetest.CheckInvalidTextIDs(t, src, `{"event":"order.paid","id":"<TEXT>","data":{"order_id":1}}`)
	nested := loadConfig(t, "timestamped")
	nested.IDPath = "data.delivery.id"
	sourcetest.CheckInvalidTextIDs(t, newSource(t, nested), `{"event":"order.paid","data":{"delivery":{"id":"<TEXT>"}}}`)
}

func TestConvertRejectsNonObjects(t *testing.T) {
	sourcetest.CheckNotObjects(t, newSource(t, loadConfig(t, "timestamped")))
}

// independentlySigned says whether one of the signatures in sigHeader is
// the HMAC of the payload each configuration documents, computed here
// without the package's code.
func independentlySigned(which string, secret []byte, sigHeader, ts, requestID string, body []byte) bool {
	var newHash func() hash.Hash
	var payload []byte
	prefix := ""
	switch which {
	case "timestamped":
		newHash, prefix = sha256.New, "sha256="
		payload = append([]byte(ts+"."), body...)
	case "base64_body":
		newHash, payload = sha1.New, body
	case "sha512_headers":
		newHash = sha512.New
		payload = append([]byte(requestID+":"+ts+":"), body...)
	}
	m := hmac.New(newHash, secret)
	m.Write(payload)
	want := m.Sum(nil)
	for _, sig := range strings.Split(sigHeader, ",") {
		sig = strings.TrimSpace(sig)
		if len(sig) < len(prefix) || !strings.EqualFold(sig[:len(prefix)], prefix) {
			continue
		}
		sig = strings.TrimSpace(sig[len(prefix):])
		var decoded [][]byte
		if which == "base64_body" {
			for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
				if b, err := enc.DecodeString(sig); err == nil {
					decoded = append(decoded, b)
				}
			}
		} else if b, err := hex.DecodeString(sig); err == nil {
			decoded = append(decoded, b)
		}
		for _, d := range decoded {
			if hmac.Equal(d, want) {
				return true
			}
		}
	}
	return false
}

func FuzzVerify(f *testing.F) {
	srcs := make([]*Source, len(configs))
	for i, dir := range configs {
		srcs[i] = newSource(f, loadConfig(f, dir))
		for _, req := range sourcetest.Seeds(f, filepath.Join("testdata", dir)) {
			ts := req.Header.Get(srcs[i].timestampHeader)
			f.Add(uint8(i), req.Header.Get(srcs[i].header), ts, req.Header.Get("X-Request-Id"), req.Body)
		}
	}
	received := time.Date(2026, 11, 20, 10, 15, 30, 0, time.UTC)
	secret, err := os.ReadFile("testdata/secret")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, which uint8, sigHeader, ts, requestID string, body []byte) {
		i := int(which) % len(srcs)
		src := srcs[i]
		h := http.Header{src.header: {sigHeader}, "X-Request-Id": {requestID}}
		if src.timestampHeader != "" {
			h.Set(src.timestampHeader, ts)
		}
		req := &sources.Request{Method: http.MethodPost, Header: h, Body: body, ReceivedAt: received}
		if err := src.Verify(req); err != nil {
			return
		}
		if src.timestampHeader != "" {
			n, err := strconv.ParseInt(h.Get(src.timestampHeader), 10, 64)
			if err != nil {
				t.Fatalf("accepted timestamp %q", ts)
			}
			at := time.Unix(n, 0)
			if n > 1e12 {
				at = time.UnixMilli(n)
			}
			if d := received.Sub(at).Abs(); d > src.tolerance {
				t.Fatalf("accepted timestamp %q, %s away", ts, d)
			}
		}
		if !independentlySigned(configs[i], secret, h.Get(src.header), h.Get(src.timestampHeader), h.Get("X-Request-Id"), body) {
			t.Fatalf("%s accepted %q for a payload it does not sign", configs[i], sigHeader)
		}
	})
}

// FuzzVerifyTimestamp signs every X-Timestamp it tries, so only the
// timestamp check stands between it and acceptance: a timestamp is accepted
// exactly when it is unix seconds, or milliseconds above 10^12, within the
// tolerance.
func FuzzVerifyTimestamp(f *testing.F) {
	src := newSource(f, loadConfig(f, "timestamped"))
	base := sourcetest.Load(f, "testdata/timestamped/order_paid")
	received := base.ReceivedAt
	at := received.Unix()
	for _, n := range []int64{at, at - 300, at + 300, at - 301, at + 301, at * 1000, at*1000 + 300000, at*1000 + 300001, at * 1000000, 99999999999, 1e12, math.MaxInt64} {
		f.Add(strconv.FormatInt(n, 10))
	}
	f.Add("99999999999999999999")
	f.Add("")
	f.Fuzz(func(t *testing.T, stamp string) {
		err := src.Verify(signedAt(base, src.secret, stamp))
		n, perr := strconv.ParseInt(stamp, 10, 64)
		perSecond := int64(1)
		if n > 1e12 {
			perSecond = 1000
		}
		digits := stamp != "" && strings.Trim(stamp, "0123456789") == ""
		if want := digits && perr == nil && n > 0 && sourcetest.Within(n, perSecond, received, src.tolerance); want != (err == nil) {
			t.Fatalf("X-Timestamp %q: %v, accepted=%v wanted", stamp, err, want)
		}
	})
}

func FuzzConvert(f *testing.F) {
	var srcs []*Source
	for _, dir := range configs {
		srcs = append(srcs, newSource(f, loadConfig(f, dir)))
		for _, req := range sourcetest.Seeds(f, filepath.Join("testdata", dir)) {
			f.Add(req.Body)
		}
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, src := range srcs {
			sourcetest.CheckConvert(t, src, &sources.Request{Body: body, ReceivedAt: time.Unix(1795169730, 0)})
		}
	})
}

func TestIsBodyOnly(t *testing.T) {
	cases := map[string]bool{
		"{{ .Body }}":               true,
		"{{.Body}}":                 true,
		"{{- .Body -}}":             true,
		" {{ .Body }}":              false,
		"{{ .Body }}\n":             false,
		"{{ .Timestamp }}":          false,
		`{{ .Body | printf "%s" }}`: false,
		"{{ $b := .Body }}{{ $b }}": false,
		"{{ .Body }}{{ .Body }}":    false,
	}
	for text, want := range cases {
		tmpl, err := template.New("p").Parse(text)
		if err != nil {
			t.Fatal(err)
		}
		if got := isBodyOnly(tmpl); got != want {
			t.Errorf("%q: got %v", text, got)
		}
	}
}
