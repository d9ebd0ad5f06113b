package sourcetest

import (
	"bufio"
	"encoding/json"
	"errors"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/hookbridge/hookbridge/sources"
)

// ReadFile returns the file at path as a string (a secret or key under
// testdata/).
func ReadFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// CheckIDs compares the id of the one event in each vector's want.json with
// the id listed for it in dir/ids.txt ("<vector> <id>" a line), which
// gen.sh works out on its own from the provider's documented rule.
func CheckIDs(t *testing.T, dir string) {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "ids.txt"))
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
		var w Want
		readJSON(t, filepath.Join(dir, name, "want.json"), &w)
		if len(w.Events) != 1 {
			t.Fatalf("%s: want.json holds %d events", name, len(w.Events))
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

// ConvertOne converts req, which must give exactly one valid CloudEvent.
func ConvertOne(t testing.TB, src sources.Source, req *sources.Request) *event.Event {
	t.Helper()
	evs, err := src.Convert(req)
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

// Fields are what a test expects of an event besides its id. Time is in
// RFC 3339 with the fraction it has, "" for none.
type Fields struct {
	Type, Source, Subject, Time string
	Data                        string // the request body, as it must be kept
}

// CheckFields asserts that ev has the fields want.
func CheckFields(t testing.TB, ev *event.Event, want Fields) {
	t.Helper()
	got := Fields{Type: ev.Type(), Source: ev.Source(), Subject: ev.Subject(), Data: string(ev.Data())}
	if !ev.Time().IsZero() {
		got.Time = ev.Time().Format(time.RFC3339Nano)
	}
	if got != want {
		t.Fatalf("event\n got %+v\nwant %+v", got, want)
	}
}

// notObjects are bodies that are not exactly one JSON object: none, other
// values, cut short, two objects, stray bytes or white space JSON does not
// allow after or before the object.
var notObjects = []string{
	``, `[]`, `"x"`, `null`, `a=b`, `{"a":`, `{"a":1} {"b":2}`, `{} {}`,
	`{}}`, `{"a":1}]`, `{} ]`, "{}\x00", "\v{}", "{}\f", "\u00a0{}",
}

// CheckNotObjects asserts that Convert rejects, with sources.ErrNotJSON,
// every body that is not one JSON object, and each of extra.
func CheckNotObjects(t *testing.T, src sources.Source, extra ...string) {
	t.Helper()
	for _, body := range append(append([]string(nil), notObjects...), extra...) {
		req := &sources.Request{Method: http.MethodPost, Header: http.Header{}, Query: url.Values{}, Body: []byte(body)}
		if _, err := src.Convert(req); !errors.Is(err, sources.ErrNotJSON) {
			t.Errorf("%q: got %v, want ErrNotJSON", body, err)
		}
	}
}

// IDCase is two deliveries of a provider's payload and whether they must
// be the same event (a retry) or different ones.
type IDCase struct {
	Name  string
	A, B  string // request bodies
	Same  bool   // whether A and B must get the same id
	WantA string // A's id; "" when it is the body's SHA-256
}

// CheckIDStability converts both bodies of each case (received at
// received) and checks their ids.
func CheckIDStability(t *testing.T, src sources.Source, received time.Time, cases []IDCase) {
	t.Helper()
	convert := func(t *testing.T, body string) *event.Event {
		return ConvertOne(t, src, &sources.Request{Method: http.MethodPost, Body: []byte(body), ReceivedAt: received})
	}
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			a, b := convert(t, c.A), convert(t, c.B)
			if (a.ID() == b.ID()) != c.Same {
				t.Fatalf("ids %q and %q; same=%v wanted", a.ID(), b.ID(), c.Same)
			}
			want := c.WantA
			if want == "" {
				want = sources.SHA256Hex([]byte(c.A))
			}
			if a.ID() != want {
				t.Fatalf("id %q, want %q", a.ID(), want)
			}
		})
	}
}

// ID is an IDCase, for positional tables.
func ID(name, a, b string, same bool, wantA string) IDCase {
	return IDCase{Name: name, A: a, B: b, Same: same, WantA: wantA}
}

// Within reports whether n units since the unix epoch, perSecond of them
// in a second (1 for seconds, 1000 for milliseconds), is within tolerance
// of at. It works in arithmetic that cannot overflow, unlike a
// time.Duration, so fuzz targets can check a source's timestamp check
// against it for any number a header may carry.
func Within(n, perSecond int64, at time.Time, tolerance time.Duration) bool {
	ns := new(big.Int).Mul(big.NewInt(n), big.NewInt(1e9))
	ns.Quo(ns, big.NewInt(perSecond))
	atNs := new(big.Int).Mul(big.NewInt(at.Unix()), big.NewInt(1e9))
	atNs.Add(atNs, big.NewInt(int64(at.Nanosecond())))
	return ns.Sub(ns, atNs).CmpAbs(big.NewInt(int64(tolerance))) <= 0
}

// invalidTexts are contents of a JSON string (as raw bytes go in a body)
// that encoding/json reads alike or nearly so, because it replaces text
// that is not valid Unicode with U+FFFD. The last two are the same text,
// spelt in two ways: what encoding/json makes of the others.
var invalidTexts = []struct{ name, raw string }{
	{"bytes ff fe", "utf8-\xff\xfe-x"},
	{"bytes fe fd", "utf8-\xfe\xfd-x"},
	{"a backslash, then byte ff", `utf8-\\` + "\xff-x"},
	{"byte ff, then a backslash", "utf8-\xff" + `\\-x`},
	{"a surrogate written in UTF-8", "utf8-\xed\xa0\x80-x"},
	{"lone surrogates dc00 d800", `utf8-\udc00\ud800-x`},
	{"lone surrogates dfff dbff", `utf8-\udfff\udbff-x`},
	{"U+FFFD escaped", `utf8-\ufffd\ufffd-x`},
	{"U+FFFD in UTF-8", "utf8-\ufffd\ufffd-x"},
}

// CheckInvalidTextIDs converts body with <TEXT> replaced by each of a set
// of strings that hold text that is not valid Unicode (bytes that are not
// UTF-8, lone surrogates) and by U+FFFD, and checks that the ids stay
// apart: each is valid UTF-8, the same again for the same body (a retry),
// and different for every different string, so that no event is dropped
// as a duplicate of another. (The two spellings of U+FFFD may get one id,
// or two where the id is the body's hash.) Put <TEXT> where the source
// reads (part of) the id from.
func CheckInvalidTextIDs(t *testing.T, src sources.Source, body string) {
	t.Helper()
	if !strings.Contains(body, "<TEXT>") {
		t.Fatal("the body has no <TEXT>")
	}
	convert := func(raw string) string {
		req := &sources.Request{Method: http.MethodPost, Header: http.Header{}, Query: url.Values{},
			Body: []byte(strings.ReplaceAll(body, "<TEXT>", raw)), ReceivedAt: time.Unix(1795169730, 0)}
		return ConvertOne(t, src, req).ID()
	}
	ids := make([]string, len(invalidTexts))
	for i, c := range invalidTexts {
		ids[i] = convert(c.raw)
		if !utf8.ValidString(ids[i]) {
			t.Errorf("%s: id %q is not UTF-8", c.name, ids[i])
		}
		if again := convert(c.raw); again != ids[i] {
			t.Errorf("%s: id %q, then %q for the same body", c.name, ids[i], again)
		}
	}
	twins := len(invalidTexts) - 2 // the two spellings of U+FFFD
	for i := range ids {
		for j := i + 1; j < len(ids); j++ {
			if i < twins && ids[i] == ids[j] {
				t.Errorf("%s and %s: the same id %q", invalidTexts[i].name, invalidTexts[j].name, ids[i])
			}
		}
	}
}

// CheckInvalidHeaderIDs converts req with its header name set to each of
// the strings of CheckInvalidTextIDs, as raw bytes (a header's bytes need
// not be UTF-8), and checks that the ids are valid UTF-8, the same again
// for the same header, and all different.
func CheckInvalidHeaderIDs(t *testing.T, src sources.Source, req *sources.Request, name string) {
	t.Helper()
	seen := map[string]string{}
	for _, c := range invalidTexts {
		r := *req
		r.Header = req.Header.Clone()
		r.Header.Set(name, c.raw)
		id := ConvertOne(t, src, &r).ID()
		if !utf8.ValidString(id) {
			t.Errorf("%s: id %q is not UTF-8", c.name, id)
		}
		if again := ConvertOne(t, src, &r).ID(); again != id {
			t.Errorf("%s: id %q, then %q for the same header", c.name, id, again)
		}
		if other, dup := seen[id]; dup {
			t.Errorf("%s and %s: the same id %q", other, c.name, id)
		}
		seen[id] = c.name
	}
}
