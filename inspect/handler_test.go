package inspect

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/hookbridge/hookbridge/queue"
	"github.com/hookbridge/hookbridge/sinks"
)

const testToken = "s3cret-admin-token"

func newEvent(t testing.TB, id, subject string) (*event.Event, []byte) {
	t.Helper()
	ev := event.New()
	ev.SetID(id)
	ev.SetSource("https://helloclient.com/chatbots/HC-8842")
	ev.SetType("com.helloclient.lead")
	ev.SetSubject(subject)
	ev.SetTime(time.Date(2026, 11, 20, 10, 15, 0, 0, time.UTC))
	ev.SetExtension(ExtBridgeSource, "helloclient")
	if err := ev.SetData("application/json", json.RawMessage(`{"FirstName":"Ada","Note":"<img src=x onerror=alert(1)>"}`)); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return &ev, b
}

type fixture struct {
	t    *testing.T
	q    *queue.Store
	rec  *Recorder
	srv  *httptest.Server
	auth string
}

// newFixture opens a real store and serves the inspector over HTTP.
func newFixture(t *testing.T, token string, running []string) *fixture {
	t.Helper()
	return newFixtureWith(t, token, func(o *Options) {
		if running != nil {
			o.Sinks = func() []string { return running }
		}
	})
}

// newFixtureWith is newFixture with options set by set.
func newFixtureWith(t *testing.T, token string, set func(*Options)) *fixture {
	t.Helper()
	q, err := queue.Open(queue.Options{Path: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	rec := NewRecorder(10)
	opts := Options{Recorder: rec, Queue: q, Token: func() string { return token }}
	set(&opts)
	h, err := NewHandler(opts)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(Prefix, h)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	f := &fixture{t: t, q: q, rec: rec, srv: srv}
	if token != "" {
		f.auth = "Bearer " + token
	}
	return f
}

func (f *fixture) do(method, path string, body []byte, header map[string]string) (int, []byte) {
	f.t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		f.t.Fatal(err)
	}
	if f.auth != "" {
		req.Header.Set("Authorization", f.auth)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (f *fixture) getJSON(path string, into any) {
	f.t.Helper()
	code, body := f.do(http.MethodGet, path, nil, nil)
	if code != http.StatusOK {
		f.t.Fatalf("GET %s: %d %s", path, code, body)
	}
	if err := json.Unmarshal(body, into); err != nil {
		f.t.Fatalf("GET %s: %v in %s", path, err, body)
	}
}

// bury queues ev for sink, takes it as a delivery loop would, and buries it.
func (f *fixture) bury(ev *event.Event, encoded []byte, sink, reason string, record bool) {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := f.q.Enqueue(ctx, []queue.Item{{ID: Key(ev), Event: encoded, Sinks: []string{sink}}}); err != nil {
		f.t.Fatal(err)
	}
	if record {
		f.rec.Accepted("helloclient", ev, []string{sink}, encoded)
	}
	ds, err := f.q.Next(ctx, sink, 1, 0)
	if err != nil || len(ds) != 1 {
		f.t.Fatalf("next: %v %d", err, len(ds))
	}
	f.rec.Attempted(sink, ev, 1, sinks.Permanent(errors.New(reason)), true, "store")
	if err := f.q.Bury(sink, ds[0].Seq, 1, sink+": rejected: "+reason); err != nil {
		f.t.Fatal(err)
	}
}

func TestTokenIsRequiredEverywhere(t *testing.T) {
	f := newFixture(t, testToken, nil)
	f.auth = ""
	cases := []struct {
		name   string
		method string
		path   string
		header string
		want   int
	}{
		{"page without token", "GET", "/inspector/", "", 401},
		{"page with token in query", "GET", "/inspector/?token=" + testToken, "", 200},
		{"page with wrong token in query", "GET", "/inspector/?token=" + testToken + "x", "", 401},
		{"page with token prefix in query", "GET", "/inspector/?token=" + testToken[:4], "", 401},
		{"page with bearer", "GET", "/inspector/", "Bearer " + testToken, 200},
		{"page with empty query token", "GET", "/inspector/?token=", "", 401},
		{"api without token", "GET", "/inspector/api/events", "", 401},
		{"api with token in query", "GET", "/inspector/api/events?token=" + testToken, "", 401},
		{"api with wrong bearer", "GET", "/inspector/api/events", "Bearer nope", 401},
		{"api with basic scheme", "GET", "/inspector/api/events", "Basic " + testToken, 401},
		{"api with bearer", "GET", "/inspector/api/events", "Bearer " + testToken, 200},
		{"replay with token in query", "POST", "/inspector/api/deadletters/00/replay?token=" + testToken, "", 401},
		{"unknown path without token", "GET", "/inspector/api/nope", "", 401},
		{"unknown path with bearer", "GET", "/inspector/api/nope", "Bearer " + testToken, 404},
		{"stats with bearer", "GET", "/inspector/api/stats", "Bearer " + testToken, 200},
		{"sinks without token", "GET", "/inspector/api/sinks", "", 401},
		{"sinks with bearer", "GET", "/inspector/api/sinks", "Bearer " + testToken, 501},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := map[string]string{}
			if c.header != "" {
				h["Authorization"] = c.header
			}
			code, body := f.do(c.method, c.path, nil, h)
			if code != c.want {
				t.Fatalf("%s %s: %d %s, want %d", c.method, c.path, code, body, c.want)
			}
			if code == 401 && bytes.Contains(body, []byte(testToken)) {
				t.Fatalf("the 401 answer shows the token: %s", body)
			}
		})
	}
}

func TestNoTokenMeansOpen(t *testing.T) {
	f := newFixture(t, "", nil)
	if code, body := f.do("GET", "/inspector/api/events", nil, nil); code != 200 {
		t.Fatalf("%d %s", code, body)
	}
}

func TestPageIsSelfContainedAndLockedDown(t *testing.T) {
	f := newFixture(t, "", nil)
	resp, err := http.Get(f.srv.URL + "/inspector/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("%d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	csp := resp.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "connect-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	// The policy allows exactly the inline script and stylesheet served.
	for _, tag := range []string{"script", "style"} {
		m := regexp.MustCompile(`(?s)<`+tag+`>(.*?)</`+tag+`>`).FindAllSubmatch(page, -1)
		if len(m) != 1 {
			t.Fatalf("%d inline <%s> elements, want 1", len(m), tag)
		}
		sum := sha256.Sum256(m[0][1])
		if !strings.Contains(csp, tag+"-src 'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'") {
			t.Errorf("CSP %q does not allow the inline %s", csp, tag)
		}
		if len(m[0][1]) < 500 {
			t.Errorf("inline %s is only %d bytes: not inlined?", tag, len(m[0][1]))
		}
	}
	// No CDN, no remote resource.
	if regexp.MustCompile(`(?i)(src|href)\s*=\s*"?(https?:)?//`).Match(page) {
		t.Error("the page loads something from another host")
	}
	// Nothing from a webhook may be parsed as HTML.
	for _, sink := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"} {
		if strings.Contains(pageJS, sink) {
			t.Errorf("the script uses %s", sink)
		}
	}
	for _, h := range []string{"X-Content-Type-Options", "Referrer-Policy", "X-Frame-Options", "Cache-Control"} {
		if resp.Header.Get(h) == "" {
			t.Errorf("no %s header", h)
		}
	}
	if resp, err := http.Get(f.srv.URL + "/inspector/other.js"); err != nil || resp.StatusCode != 404 {
		t.Errorf("unknown file: %v %v", err, resp.StatusCode)
	}
}

func TestEventsShowStatusAttemptsAndEvent(t *testing.T) {
	f := newFixture(t, testToken, nil)
	delivered, deliveredJSON := newEvent(t, "lead-1", "sessions/a b/c")
	retrying, retryingJSON := newEvent(t, "lead-2", "sessions/2")
	f.rec.Accepted("helloclient", delivered, []string{"archive", "crm"}, deliveredJSON)
	f.rec.Accepted("helloclient", retrying, []string{"crm"}, retryingJSON)
	f.rec.Attempted("archive", delivered, 1, nil, true, "")
	f.rec.Attempted("crm", delivered, 1, errors.New("503 Service Unavailable"), false, "")
	f.rec.Attempted("crm", delivered, 2, nil, true, "")
	f.rec.Attempted("crm", retrying, 1, errors.New("timeout"), false, "")

	var list struct{ Events []Entry }
	f.getJSON("/inspector/api/events", &list)
	if len(list.Events) != 2 || list.Events[0].ID != "lead-2" || list.Events[1].ID != "lead-1" {
		t.Fatalf("events %+v, want lead-2 then lead-1", list.Events)
	}
	if got := list.Events[1].Status; got["archive"] != StatusDelivered || got["crm"] != StatusDelivered {
		t.Errorf("status of lead-1 %v", got)
	}
	if got := list.Events[0].Status["crm"]; got != StatusRetrying {
		t.Errorf("status of lead-2 at crm %q", got)
	}
	if list.Events[0].Event != nil {
		t.Error("the list carries whole events")
	}

	var one Entry
	f.getJSON("/inspector/api/events/"+url.PathEscape(Key(delivered)), &one)
	if one.Key != Key(delivered) || len(one.Attempts) != 3 || one.Attempts[1].Error != "503 Service Unavailable" || one.Attempts[1].Outcome != OutcomeFailed {
		t.Fatalf("entry %+v", one)
	}
	var ce map[string]any
	if err := json.Unmarshal(one.Event, &ce); err != nil || ce["id"] != "lead-1" || ce["subject"] != "sessions/a b/c" {
		t.Fatalf("event %s: %v", one.Event, err)
	}

	if code, _ := f.do("GET", "/inspector/api/events/"+url.PathEscape("nobody 1"), nil, nil); code != 404 {
		t.Errorf("unknown key answered %d", code)
	}
	if code, _ := f.do("GET", "/inspector/api/events?limit=-1", nil, nil); code != 400 {
		t.Errorf("bad limit answered %d", code)
	}
	f.getJSON("/inspector/api/events?limit=1", &list)
	if len(list.Events) != 1 {
		t.Errorf("limit=1 gave %d events", len(list.Events))
	}
}

func TestDeadLettersListEventsAndRejectedBodies(t *testing.T) {
	f := newFixture(t, testToken, nil)
	ev, encoded := newEvent(t, "lead-dead", "sessions/9")
	f.bury(ev, encoded, "crm", "400 Bad Request", true)
	if err := f.q.Reject("crisp", []byte("not json <script>"), "body is not JSON"); err != nil {
		t.Fatal(err)
	}
	if err := f.q.Reject("crisp", []byte{0xff, 0xfe, 0x00}, "body is not JSON"); err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("é"), rawPreviewLimit) // 2 bytes each: the cut falls inside one
	if err := f.q.Reject("crisp", big, "body is not JSON"); err != nil {
		t.Fatal(err)
	}

	var list struct {
		DeadLetters []DeadLetterView `json:"dead_letters"`
		Total       int
	}
	f.getJSON("/inspector/api/deadletters", &list)
	if list.Total != 4 || len(list.DeadLetters) != 4 {
		t.Fatalf("%d dead letters (total %d), want 4", len(list.DeadLetters), list.Total)
	}
	bigView, binary, text, evView := list.DeadLetters[0], list.DeadLetters[1], list.DeadLetters[2], list.DeadLetters[3]
	if !evView.Replayable || evView.Sink != "crm" || evView.Source != "helloclient" || evView.EventID != "lead-dead" ||
		evView.EventKey != Key(ev) || evView.Attempts != 1 || !strings.Contains(evView.Reason, "400 Bad Request") || evView.At.IsZero() {
		t.Errorf("event dead letter %+v", evView)
	}
	if !bytes.Equal(evView.Event, encoded) {
		t.Errorf("event %s, want %s", evView.Event, encoded)
	}
	if text.Replayable || text.Source != "crisp" || text.Raw != "not json <script>" || text.Reason != "body is not JSON" {
		t.Errorf("rejected body %+v", text)
	}
	if binary.Raw != "" || binary.RawBase64 != base64.StdEncoding.EncodeToString([]byte{0xff, 0xfe, 0x00}) {
		t.Errorf("binary body %+v", binary)
	}
	if !bigView.RawTruncated || bigView.RawSize != len(big) || len(bigView.Raw) != rawPreviewLimit || bigView.RawBase64 != "" {
		t.Errorf("big body: truncated %v size %d shown %d base64 %d", bigView.RawTruncated, bigView.RawSize, len(bigView.Raw), len(bigView.RawBase64))
	}

	// Pages of 3: the whole list in order, and an empty last page when the
	// list ends with a full page.
	var keys []string
	for _, dl := range list.DeadLetters {
		keys = append(keys, dl.Key)
	}
	var paged []string
	path := "/inspector/api/deadletters?limit=3"
	for pages := 0; ; pages++ {
		var page struct {
			DeadLetters []DeadLetterView `json:"dead_letters"`
			Total       int
			Next        string
		}
		f.getJSON(path, &page)
		for _, dl := range page.DeadLetters {
			paged = append(paged, dl.Key)
		}
		if page.Total != 4 || pages > 2 {
			t.Fatalf("page %d: total %d", pages, page.Total)
		}
		if page.Next == "" {
			break
		}
		if page.Next != paged[len(paged)-1] {
			t.Fatalf("next %q is not the page's last key %q", page.Next, paged[len(paged)-1])
		}
		path = "/inspector/api/deadletters?limit=3&before=" + page.Next
	}
	if !slices.Equal(paged, keys) {
		t.Errorf("pages gave %v, want %v", paged, keys)
	}
	if code, body := f.do("GET", "/inspector/api/deadletters?before=nothex", nil, nil); code != http.StatusBadRequest {
		t.Errorf("a bad before: %d %s, want 400", code, body)
	}

	// The brief list (what the page polls) leaves the bodies out; one
	// dead letter is fetched whole when shown.
	var brief struct {
		DeadLetters []DeadLetterView `json:"dead_letters"`
	}
	f.getJSON("/inspector/api/deadletters?brief=1", &brief)
	if len(brief.DeadLetters) != 4 {
		t.Fatalf("brief list of %d", len(brief.DeadLetters))
	}
	for i, dl := range brief.DeadLetters {
		if dl.Event != nil || dl.Raw != "" || dl.RawBase64 != "" || dl.Key != keys[i] || dl.Reason == "" {
			t.Errorf("brief entry %d carries a body or lacks its fields: %+v", i, dl)
		}
	}
	var one DeadLetterView
	f.getJSON("/inspector/api/deadletters/"+evView.Key, &one)
	if one.Key != evView.Key || !bytes.Equal(one.Event, encoded) || one.EventID != "lead-dead" {
		t.Errorf("one dead letter: %+v", one)
	}
	f.getJSON("/inspector/api/deadletters/"+text.Key, &one)
	if one.Raw != "not json <script>" {
		t.Errorf("one rejected body: %+v", one)
	}
	if code, _ := f.do("GET", "/inspector/api/deadletters/"+strings.Repeat("0", 32), nil, nil); code != http.StatusNotFound {
		t.Errorf("an unknown key: %d, want 404", code)
	}
}

func TestReplayQueuesTheEventAgain(t *testing.T) {
	f := newFixture(t, testToken, []string{"archive", "crm"})
	ev, encoded := newEvent(t, "lead-replay", "sessions/7")
	f.bury(ev, encoded, "crm", "400 Bad Request", true)
	other, otherJSON := newEvent(t, "lead-other", "sessions/8")
	f.bury(other, otherJSON, "crm", "400 Bad Request", false) // as after a restart: the recorder never saw it
	if err := f.q.Reject("crisp", []byte("nope"), "body is not JSON"); err != nil {
		t.Fatal(err)
	}
	var list struct {
		DeadLetters []DeadLetterView `json:"dead_letters"`
	}
	f.getJSON("/inspector/api/deadletters", &list)
	keys := map[string]string{}
	for _, dl := range list.DeadLetters {
		keys[dl.EventID] = dl.Key
	}
	replay := func(key, query, body string, header map[string]string) (int, []byte) {
		return f.do("POST", "/inspector/api/deadletters/"+key+"/replay"+query, []byte(body), header)
	}

	cases := []struct {
		name    string
		key     string
		query   string
		body    string
		header  map[string]string
		want    int
		errPart string
	}{
		{"rejected body", keys[""], "", "", nil, 409, "not an event"},
		{"unknown key", "00000000000000000000000000000000", "", "", nil, 404, "no dead letter"},
		{"malformed key", "zz", "", "", nil, 404, "no dead letter"},
		{"sink not running", keys["lead-replay"], "?sink=gone", "", nil, 409, "not running"},
		{"bad body", keys["lead-replay"], "", "{", nil, 400, "body"},
		{"cross-site browser", keys["lead-replay"], "", "", map[string]string{"Sec-Fetch-Site": "cross-site"}, 403, "cross-origin"},
		{"foreign origin", keys["lead-replay"], "", "", map[string]string{"Origin": "https://evil.example"}, 403, "cross-origin"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, body := replay(c.key, c.query, c.body, c.header)
			if code != c.want || !strings.Contains(string(body), c.errPart) {
				t.Fatalf("%d %s, want %d with %q", code, body, c.want, c.errPart)
			}
		})
	}
	if n := f.q.Stats().DeadLetters; n != 3 {
		t.Fatalf("%d dead letters after refused replays, want 3", n)
	}

	// To the sink that gave up, from the page (same origin).
	code, body := replay(keys["lead-replay"], "", "", map[string]string{"Sec-Fetch-Site": "same-origin"})
	if code != 200 {
		t.Fatalf("replay: %d %s", code, body)
	}
	var res ReplayResult
	if err := json.Unmarshal(body, &res); err != nil || res.Sink != "crm" || res.EventKey != Key(ev) || res.EventID != "lead-replay" {
		t.Fatalf("replay answer %s: %v", body, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ds, err := f.q.Next(ctx, "crm", 10, 0)
	if err != nil || len(ds) != 1 || !bytes.Equal(ds[0].Event, encoded) || ds[0].Attempts != 0 {
		t.Fatalf("crm's queue after replay: %v %+v", err, ds)
	}
	e, _ := f.rec.Get(Key(ev))
	if last := e.Attempts[len(e.Attempts)-1]; last.Outcome != OutcomeReplayed || last.Sink != "crm" || e.Status["crm"] != StatusPending {
		t.Fatalf("recorder after replay: %+v", e)
	}
	if code, body := replay(keys["lead-replay"], "", "", nil); code != 404 {
		t.Fatalf("second replay: %d %s", code, body)
	}

	// To another sink, named in the body, of an event the recorder never saw.
	code, body = replay(keys["lead-other"], "", `{"sink":"archive"}`, nil)
	if code != 200 {
		t.Fatalf("replay to archive: %d %s", code, body)
	}
	ds, err = f.q.Next(ctx, "archive", 10, 0)
	if err != nil || len(ds) != 1 || !bytes.Equal(ds[0].Event, otherJSON) {
		t.Fatalf("archive's queue after replay: %v %+v", err, ds)
	}
	e, ok := f.rec.Get(Key(other))
	if !ok || e.Source != "helloclient" || e.Status["archive"] != StatusPending || len(e.Sinks) != 1 {
		t.Fatalf("recorder after replaying a forgotten event: %v %+v", ok, e)
	}
	if n := f.q.Stats().DeadLetters; n != 1 {
		t.Fatalf("%d dead letters left, want the rejected body only", n)
	}
}

func TestNewHandlerNeedsRecorderAndQueue(t *testing.T) {
	if _, err := NewHandler(Options{}); err == nil {
		t.Fatal("no error without a recorder and a queue")
	}
}

// FuzzAuthorized checks that only the exact token opens the API.
func FuzzAuthorized(f *testing.F) {
	for _, s := range []string{"", testToken, testToken + " ", " " + testToken, strings.ToUpper(testToken), testToken[:5], "Bearer " + testToken} {
		f.Add(s, true)
		f.Add(s, false)
	}
	h, err := NewHandler(Options{Recorder: NewRecorder(1), Queue: &queue.Store{}, Token: func() string { return testToken }})
	if err != nil {
		f.Fatal(err)
	}
	hh := h.(*handler)
	f.Fuzz(func(t *testing.T, got string, inQuery bool) {
		r := httptest.NewRequest("GET", "/inspector/", nil)
		if inQuery {
			r.URL.RawQuery = url.Values{"token": {got}}.Encode()
		} else {
			r.Header.Set("Authorization", "Bearer "+got)
		}
		if hh.authorized(r) != (got == testToken) {
			t.Fatalf("token %q (query %v): authorized %v", got, inQuery, !(got == testToken))
		}
	})
}

// DELETE deadletters/{key} removes a dead letter for good: with the token,
// from the same origin only, once.
func TestDiscardRemovesADeadLetter(t *testing.T) {
	f := newFixture(t, testToken, nil)
	ev, encoded := newEvent(t, "lead-discard", "sessions/3")
	f.bury(ev, encoded, "crm", "400 Bad Request", true)
	if err := f.q.Reject("crisp", []byte("not json"), "body is not JSON"); err != nil {
		t.Fatal(err)
	}
	dls, err := f.q.DeadLetters(0)
	if err != nil || len(dls) != 2 {
		t.Fatalf("%d dead letters, %v", len(dls), err)
	}
	path := func(key string) string { return "/inspector/api/deadletters/" + key }

	if code, body := f.do("DELETE", path(dls[0].Key), nil, map[string]string{"Origin": "https://evil.example"}); code != http.StatusForbidden {
		t.Errorf("cross-origin DELETE: %d %s, want 403", code, body)
	}
	auth := f.auth
	f.auth = ""
	if code, _ := f.do("DELETE", path(dls[0].Key), nil, nil); code != http.StatusUnauthorized {
		t.Errorf("DELETE without the token: %d, want 401", code)
	}
	f.auth = auth
	if n := f.q.Stats().DeadLetters; n != 2 {
		t.Fatalf("%d dead letters after refused DELETEs, want 2", n)
	}
	for _, dl := range dls { // the rejected body and the event alike
		if code, body := f.do("DELETE", path(dl.Key), nil, nil); code != http.StatusOK || !strings.Contains(string(body), dl.Key) {
			t.Fatalf("DELETE %s: %d %s", dl.Key, code, body)
		}
		if code, _ := f.do("DELETE", path(dl.Key), nil, nil); code != http.StatusNotFound {
			t.Errorf("second DELETE %s: %d, want 404", dl.Key, code)
		}
	}
	if n := f.q.Stats().DeadLetters; n != 0 {
		t.Fatalf("%d dead letters after discarding both", n)
	}
}

// GET sinks lists the running sinks the bridge tells of, by name, each
// with its circuit breaker and lag as told and its pending deliveries and
// their age as the queue holds them; a sink that is not running is not
// listed, even with events waiting for it.
func TestSinksShowCircuitPendingAndLag(t *testing.T) {
	lag := int64(42)
	measured := time.Date(2026, 11, 20, 10, 16, 0, 0, time.UTC)
	states := []SinkState{
		{Name: "crm", Type: "http", Circuit: "open", Delivered: 7, FailedAttempts: 12, DeadLettered: 1},
		{Name: "archive", Type: "file", Circuit: "off"},
		{Name: "kafka-events", Type: "kafka", Circuit: "closed", Lag: &lag, LagMeasured: &measured},
	}
	var calls int
	f := newFixtureWith(t, testToken, func(o *Options) {
		o.SinkStates = func() []SinkState { calls++; return states }
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	before := time.Now()
	for i, sinks := range [][]string{{"crm", "archive"}, {"crm"}, {"gone"}} {
		ev, enc := newEvent(t, fmt.Sprint("lead-", i), "sessions/s1")
		if _, err := f.q.Enqueue(ctx, []queue.Item{{ID: Key(ev), Event: enc, Sinks: sinks}}); err != nil {
			t.Fatal(err)
		}
	}
	// archive delivers its event: nothing pending for it any more.
	ds, err := f.q.Next(ctx, "archive", 1, 0)
	if err != nil || len(ds) != 1 {
		t.Fatalf("next: %v %d", err, len(ds))
	}
	if err := f.q.Ack("archive", ds[0].Seq); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)

	var got struct {
		Sinks []struct {
			Name                 string     `json:"name"`
			Type                 string     `json:"type"`
			Circuit              string     `json:"circuit"`
			Pending              int        `json:"pending"`
			OldestPending        *time.Time `json:"oldest_pending"`
			OldestPendingSeconds *float64   `json:"oldest_pending_seconds"`
			Lag                  *int64     `json:"lag"`
			LagMeasured          *time.Time `json:"lag_measured"`
			Delivered            int64      `json:"delivered"`
			FailedAttempts       int64      `json:"failed_attempts"`
			DeadLettered         int64      `json:"dead_lettered"`
		} `json:"sinks"`
	}
	f.getJSON("/inspector/api/sinks", &got)
	if calls != 1 {
		t.Errorf("SinkStates called %d times for one request", calls)
	}
	var names []string
	for _, s := range got.Sinks {
		names = append(names, s.Name)
	}
	if want := []string{"archive", "crm", "kafka-events"}; !slices.Equal(names, want) {
		t.Fatalf("sinks %v, want %v", names, want)
	}
	archive, crm, kafka := got.Sinks[0], got.Sinks[1], got.Sinks[2]
	if archive.Type != "file" || archive.Circuit != "off" || archive.Pending != 0 || archive.OldestPending != nil || archive.OldestPendingSeconds != nil || archive.Lag != nil {
		t.Errorf("archive = %+v, want file, off, nothing pending, no lag", archive)
	}
	if crm.Type != "http" || crm.Circuit != "open" || crm.Pending != 2 || crm.Delivered != 7 || crm.FailedAttempts != 12 || crm.DeadLettered != 1 {
		t.Errorf("crm = %+v, want http, open, 2 pending, 7 delivered, 12 failed attempts, 1 dead-lettered", crm)
	}
	if crm.OldestPending == nil || crm.OldestPending.Before(before.Add(-time.Second)) || crm.OldestPending.After(time.Now()) {
		t.Errorf("crm oldest_pending = %v, want the first event's acceptance, after %v", crm.OldestPending, before)
	}
	if crm.OldestPendingSeconds == nil || *crm.OldestPendingSeconds < 0.02 || *crm.OldestPendingSeconds > 5 {
		t.Errorf("crm oldest_pending_seconds = %v, want the age of the first event", crm.OldestPendingSeconds)
	}
	if kafka.Lag == nil || *kafka.Lag != 42 || kafka.LagMeasured == nil || !kafka.LagMeasured.Equal(measured) || kafka.Circuit != "closed" {
		t.Errorf("kafka-events = %+v, want closed, lag 42 measured at %v", kafka, measured)
	}
}

// A JSON answer, even when the bridge tells of no running sink.
func TestSinksWithNoneRunning(t *testing.T) {
	f := newFixtureWith(t, "", func(o *Options) { o.SinkStates = func() []SinkState { return nil } })
	code, body := f.do(http.MethodGet, "/inspector/api/sinks", nil, nil)
	if code != http.StatusOK || strings.TrimSpace(string(body)) != `{"sinks":[]}` {
		t.Fatalf("GET sinks: %d %s, want 200 {\"sinks\":[]}", code, body)
	}
	f = newFixture(t, "", nil)
	code, body = f.do(http.MethodGet, "/inspector/api/sinks", nil, nil)
	if code != http.StatusNotImplemented || !strings.Contains(string(body), `"error"`) {
		t.Fatalf("GET sinks without SinkStates: %d %s, want 501 with an error", code, body)
	}
}
