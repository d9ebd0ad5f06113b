// Package sourcetest runs a source against recorded test vectors and fuzzes
// it. A vector is a folder under testdata/ holding:
//
//	request.json  {"method","path","query","headers","remote_ip","received_at"}
//	body          the raw request body, byte for byte
//	want.json     {"reason": "<sources.Reason>"} for a request that must be
//	              rejected, or {"events": [<structured CloudEvents>], "reply": "..."}
//
// Signatures in request.json are computed by each provider's testdata/gen.sh
// with openssl, never by the code under test. Set SOURCETEST_UPDATE=1 to
// write the events a source makes into want.json (then review the diff).
//
// It also holds what provider tests share besides vectors: decoding the
// registered example as the loader does, building a source from a config,
// the fields a Validate error blames, and the checks every converter passes.
package sourcetest

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/hookbridge/hookbridge/sources"
)

// RequestFile is request.json.
type RequestFile struct {
	Method     string              `json:"method"`
	Path       string              `json:"path"`
	Query      map[string][]string `json:"query,omitempty"`
	Headers    map[string]string   `json:"headers,omitempty"`
	RemoteIP   string              `json:"remote_ip,omitempty"`
	ReceivedAt time.Time           `json:"received_at"`
}

// Want is want.json.
type Want struct {
	Reason string            `json:"reason,omitempty"`
	Events []json.RawMessage `json:"events,omitempty"`
	Reply  *string           `json:"reply,omitempty"`
}

// Load reads the vector in dir into a Request.
func Load(t testing.TB, dir string) *sources.Request {
	t.Helper()
	var rf RequestFile
	readJSON(t, filepath.Join(dir, "request.json"), &rf)
	body, err := os.ReadFile(filepath.Join(dir, "body"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	req := &sources.Request{
		Method: rf.Method, Path: rf.Path, Header: http.Header{}, Query: url.Values(rf.Query),
		Body: body, ReceivedAt: rf.ReceivedAt,
	}
	if req.Method == "" {
		req.Method = http.MethodPost
	}
	if req.Query == nil {
		req.Query = url.Values{}
	}
	for k, v := range rf.Headers {
		req.Header.Set(k, v)
	}
	if rf.RemoteIP != "" {
		req.RemoteIP = netip.MustParseAddr(rf.RemoteIP)
	}
	return req
}

func readJSON(t testing.TB, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// Run checks src against every vector folder under dir (usually "testdata").
func Run(t *testing.T, src sources.Source, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	ran := 0
	for _, e := range entries {
		caseDir := filepath.Join(dir, e.Name())
		if !e.IsDir() {
			continue
		}
		if _, err := os.Stat(filepath.Join(caseDir, "request.json")); err != nil {
			continue
		}
		ran++
		t.Run(e.Name(), func(t *testing.T) { runCase(t, src, caseDir) })
	}
	if ran == 0 {
		t.Fatalf("no test vectors under %s", dir)
	}
}

func runCase(t *testing.T, src sources.Source, dir string) {
	req := Load(t, dir)
	var want Want
	readJSON(t, filepath.Join(dir, "want.json"), &want)
	if hs, ok := src.(sources.Handshaker); ok && hs.IsHandshake(req) {
		reply, err := hs.Handshake(req)
		checkReason(t, err, want.Reason)
		if err == nil && want.Reply != nil && string(reply.Body) != *want.Reply {
			t.Fatalf("handshake reply %q, want %q", reply.Body, *want.Reply)
		}
		return
	}
	err := src.Verify(req)
	if want.Reason != "" {
		checkReason(t, err, want.Reason)
		return
	}
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	evs, err := src.Convert(req)
	if err != nil {
		t.Fatalf("Convert: %v", err)
	}
	got := make([]json.RawMessage, len(evs))
	for i, ev := range evs {
		if err := ev.Validate(); err != nil {
			t.Fatalf("event %d is not a valid CloudEvent: %v", i, err)
		}
		b, err := json.MarshalIndent(ev, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		got[i] = b
	}
	if os.Getenv("SOURCETEST_UPDATE") == "1" {
		want.Events = got
		b, _ := json.MarshalIndent(want, "", "  ")
		if err := os.WriteFile(filepath.Join(dir, "want.json"), append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if len(got) != len(want.Events) {
		t.Fatalf("made %d events, want %d", len(got), len(want.Events))
	}
	for i := range got {
		if !sameJSON(t, got[i], want.Events[i]) {
			t.Errorf("event %d:\n got %s\nwant %s", i, got[i], want.Events[i])
		}
	}
	if want.Reply != nil {
		r, ok := src.(sources.Replier)
		if !ok {
			t.Fatalf("want reply %q but the source gives none", *want.Reply)
		}
		if body := string(r.SuccessReply().Body); body != *want.Reply {
			t.Fatalf("reply %q, want %q", body, *want.Reply)
		}
	}
}

func checkReason(t *testing.T, err error, want string) {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("accepted; want rejection %q", want)
	}
	if got := sources.Reason(err); got != want {
		t.Fatalf("rejected as %q (%v), want %q", got, err, want)
	}
}

func sameJSON(t *testing.T, a, b []byte) bool {
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatal(err)
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}

// Seeds returns the request bodies and signature-bearing headers of every
// vector under dir, as fuzz seeds.
func Seeds(t testing.TB, dir string) []*sources.Request {
	entries, _ := os.ReadDir(dir)
	var out []*sources.Request
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	for _, n := range names {
		if _, err := os.Stat(filepath.Join(dir, n, "request.json")); err == nil {
			out = append(out, Load(t, filepath.Join(dir, n)))
		}
	}
	return out
}

// CheckConvert is the invariant a fuzz target asserts for any body: Convert
// never panics, and when it succeeds every event is a valid CloudEvent whose
// id, type, source and subject are UTF-8, whose data is valid JSON, and
// which reads back from its JSON form (as the queue stores it) with the
// same id, type, source, subject and data.
func CheckConvert(t *testing.T, src sources.Source, req *sources.Request) {
	evs, err := src.Convert(req)
	if err != nil {
		return
	}
	for i, ev := range evs {
		checkEvent(t, i, ev)
	}
}

func checkEvent(t *testing.T, i int, ev *event.Event) {
	if err := ev.Validate(); err != nil {
		t.Fatalf("event %d invalid: %v", i, err)
	}
	// Attributes that are not UTF-8 are not CloudEvents strings: sinks
	// refuse them (a Kafka header must be UTF-8), and two ids that differ
	// only in bad bytes are one id to any JSON reader.
	for _, a := range [][2]string{{"id", ev.ID()}, {"type", ev.Type()}, {"source", ev.Source()}, {"subject", ev.Subject()}} {
		if !utf8.ValidString(a[1]) {
			t.Fatalf("event %d: %s %q is not UTF-8", i, a[0], a[1])
		}
	}
	if !json.Valid(ev.Data()) {
		t.Fatalf("event %d data is not JSON: %q", i, ev.Data())
	}
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatalf("event %d does not marshal: %v", i, err)
	}
	// The queue stores events in this form: it must read back.
	var back event.Event
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("event %d does not read back: %v\n%s", i, err, b)
	}
	if back.ID() != ev.ID() || back.Type() != ev.Type() || back.Source() != ev.Source() || back.Subject() != ev.Subject() || !SameJSON(back.Data(), ev.Data()) {
		t.Fatalf("event %d changed on the way through JSON:\n id %q/%q type %q/%q\n source %q/%q subject %q/%q\n data %s\n back %s",
			i, ev.ID(), back.ID(), ev.Type(), back.Type(), ev.Source(), back.Source(), ev.Subject(), back.Subject(), compact(ev.Data()), compact(back.Data()))
	}
}

// compact is data without insignificant white space, for messages.
func compact(data []byte) string {
	var b bytes.Buffer
	if err := json.Compact(&b, data); err != nil {
		return string(data)
	}
	return b.String()
}

// SameJSON reports whether a and b are the same JSON value. sdk-go writes
// event data re-encoded (compacted, with <>& escaped), so that, not the
// provider's bytes, is what must survive the queue.
func SameJSON(a, b []byte) bool {
	var x, y any
	da, db := json.NewDecoder(bytes.NewReader(a)), json.NewDecoder(bytes.NewReader(b))
	da.UseNumber()
	db.UseNumber()
	if da.Decode(&x) != nil || db.Decode(&y) != nil {
		return bytes.Equal(a, b)
	}
	return reflect.DeepEqual(x, y)
}
