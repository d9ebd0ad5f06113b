package httpsink

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"github.com/hookbridge/hookbridge/sinks"
	"github.com/hookbridge/hookbridge/sinks/sinktest"
)

// load decodes a sink's own keys the way the config loader does.
func load(t testing.TB, src string, env map[string]string) (*Config, error) {
	t.Helper()
	c := NewConfig()
	return c, sinktest.Decode(t, src, env, c)
}

func mustSink(t testing.TB, src string, env map[string]string) *Sink {
	t.Helper()
	c, err := load(t, src, env)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return sinktest.New[*Sink](t, c, "crm")
}

// recorder is an endpoint that keeps what it received and answers with
// status (default 200).
type recorder struct {
	mu      sync.Mutex
	reqs    []*http.Request
	bodies  [][]byte
	status  int
	headers http.Header
	answer  string
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	r.reqs = append(r.reqs, req)
	r.bodies = append(r.bodies, body)
	status, answer := r.status, r.answer
	for k, v := range r.headers {
		w.Header()[k] = v
	}
	r.mu.Unlock()
	if status == 0 {
		status = http.StatusOK
	}
	w.WriteHeader(status)
	_, _ = io.WriteString(w, answer)
}

func (r *recorder) last(t *testing.T) (*http.Request, []byte) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.reqs) != 1 {
		t.Fatalf("endpoint got %d requests, want 1", len(r.reqs))
	}
	return r.reqs[0], r.bodies[0]
}

// A dead-letter sink is told the start of a refused answer as it came:
// bytes that are not text, whitespace and all, up to sinks.AnswerLimit;
// the error's text shows the first 512 bytes as text.
func TestRefusedAnswerIsKeptAsItCame(t *testing.T) {
	answer := make([]byte, 3000)
	for i := range answer {
		answer[i] = byte(i)
	}
	answer[0] = '\n'
	rec := &recorder{status: http.StatusBadRequest, answer: string(answer)}
	srv := serve(t, rec)
	s := mustSink(t, "url: "+srv.URL, nil)
	err := s.Deliver(context.Background(), sinktest.LeadEvent(t, sinktest.AdaLead))
	status, body, ok := sinks.ResponseOf(err)
	if !ok || status != http.StatusBadRequest || !bytes.Equal(body, answer[:sinks.AnswerLimit]) {
		t.Fatalf("ResponseOf = %d, %d bytes (%q...), %v; want 400 and the first %d bytes as sent",
			status, len(body), body[:min(len(body), 8)], ok, sinks.AnswerLimit)
	}
	var serr *StatusError
	if !errors.As(err, &serr) || !utf8.ValidString(serr.Body) || len(serr.Body) > 3*errorBodyLimit {
		t.Errorf("the error's text is not the printable start of the answer: %q", err)
	}
}

func serve(t *testing.T, h http.Handler) *httptest.Server {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func TestExamplesAreValidConfigs(t *testing.T) {
	env := map[string]string{"HUBSPOT_TOKEN": "pat-na1-x", "CRM_URL": "https://crm.example.com", "CRM_API_KEY": "k"}
	snippets := sinktest.Examples(t, example)
	if len(snippets) < 3 {
		t.Fatalf("found %d examples, want example.yaml and two in doc.go", len(snippets))
	}
	for name, src := range snippets {
		t.Run(name, func(t *testing.T) {
			s := mustSink(t, ownKeys(t, src), env)
			if _, err := s.NewRequest(context.Background(), sinktest.LeadEvent(t, sinktest.AdaLead)); err != nil {
				t.Fatalf("rendering the lead: %v", err)
			}
		})
	}
}

func TestHubSpotExample(t *testing.T) {
	rec := &recorder{status: http.StatusCreated, answer: `{"id":"512"}`}
	srv := serve(t, rec)
	src := strings.Replace(ownKeys(t, example), "https://api.hubapi.com", srv.URL, 1)
	s := mustSink(t, src, map[string]string{"HUBSPOT_TOKEN": "pat-na1-secret"})

	if err := s.Deliver(context.Background(), sinktest.LeadEvent(t, sinktest.AdaLead)); err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	req, body := rec.last(t)
	if req.Method != http.MethodPost || req.URL.Path != "/crm/v3/objects/contacts" {
		t.Errorf("request line: %s %s", req.Method, req.URL.Path)
	}
	if got := req.Header.Get("Authorization"); got != "Bearer pat-na1-secret" {
		t.Errorf("Authorization = %q", got)
	}
	want := `{"properties":{"email":"ada@example.com","firstname":"Ada","lastname":"Lovelace","phone":"+44 20 7946 0958"}}`
	if string(body) != want {
		t.Errorf("body\n got %s\nwant %s", body, want)
	}
}

// ownKeys returns the keys of the one sink in an example, without type.
func ownKeys(t testing.TB, src string) string {
	t.Helper()
	return sinktest.OwnKeys(t, src, Type)
}

func TestValidate(t *testing.T) {
	cases := []struct {
		name, src, wantErr string
	}{
		{"minimal", "url: https://crm.example.com/leads", ""},
		{"templated url", `url: "https://crm.example.com/{{ .Data.kind }}"`, ""},
		{"binary without body", "url: http://x\nformat: binary", ""},
		{"lowercase method", "url: http://x\nmethod: put", ""},
		{"no url", "method: POST", "test.yaml:1:1: url: is required"},
		{"empty url from env", `url: "${CRM_URL:-}"`, "url: is required"},
		{"not http", "url: ftp://x/y", `must start with http:// or https://`},
		{"no host", "url: http:///path", "has no host"},
		{"GET", "url: http://x\nmethod: GET", `method: "GET" is not one of`},
		{"bad method", "url: http://x\nmethod: FETCH", `method: "FETCH" is not one of POST, PUT, PATCH, DELETE`},
		{"bad format", "url: http://x\nformat: batched", `format: "batched" is not structured or binary`},
		{"binary with body", "url: http://x\nformat: binary\nbody: {a: b}", "binary applies only when there is no body"},
		{"idempotency key header", "url: http://x\nheaders: {idempotency-key: x}", "Idempotency-Key is always the event id"},
		{"content type without body", "url: http://x\nheaders: {Content-Type: text/plain}", "set by the CloudEvents binding"},
		{"content type with body", "url: http://x\nheaders: {Content-Type: application/vnd.api+json}\nbody: {a: b}", ""},
		{"bad header name", "url: http://x\nheaders: {\"X Bad\": v}", `"X Bad" is not a valid header name`},
		{"header with newline", "url: http://x\nheaders: {X-A: \"a\\nb\"}", "control character"},
		{"zero timeout", "url: http://x\ntimeout: 0", "timeout: must be positive"},
		{"unknown key", "url: http://x\nverb: POST", `unknown key "verb"`},
		{"bad template", `url: "http://x/{{ .Data.a "`, "bad template"},
		{"bad body template", "url: http://x\nbody: {a: \"{{ if }}\"}", "bad template"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := load(t, tc.src, nil)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestBodyAndHeaders(t *testing.T) {
	rec := &recorder{status: http.StatusNoContent}
	srv := serve(t, rec)
	src := `
url: "` + srv.URL + `/leads/{{ .Data.SerialNumber }}?src={{ .Extensions.bridgesource }}"
method: PUT
headers:
  Authorization: "Bearer ${CRM_TOKEN}"
  X-Lead-Source: "{{ .Extensions.bridgesource }}/{{ .Data.ChatbotName }}"
body:
  email: "{{ .Data.Email }}"
  name: "{{ .Data.FirstName }} {{ .Data.LastName }}"
  note: "{{ .Data.Message }}"
  missing: "{{ .Data.NoSuchField }}"
  score: 7
  vip: true
  tags: ["lead", "{{ .Data.ChatbotName }}"]
  raw: "{{ .Data.Extra | toJson }}"
`
	s := mustSink(t, src, map[string]string{"CRM_TOKEN": "tok-123"})
	data := `{"SerialNumber":"HC-8842","ChatbotName":"Bot \"β\" <b>&</b>","FirstName":"Zoë","LastName":"O'Brien",` +
		`"Email":"zoe@example.com","Message":"line1\nline2\t\"quoted\" \\ back\u2028sep 😀 <script>alert(1)</script>",` +
		`"Extra":{"n":1.5,"list":[null,true]}}`
	ev := sinktest.LeadEvent(t, data)
	if err := s.Deliver(context.Background(), ev); err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	req, body := rec.last(t)

	wantBody := `{"email":"zoe@example.com","name":"Zoë O'Brien",` +
		`"note":"line1\nline2\t\"quoted\" \\ back\u2028sep 😀 <script>alert(1)</script>",` +
		`"missing":"","score":7,"vip":true,"tags":["lead","Bot \"β\" <b>&</b>"],` +
		`"raw":{"list":[null,true],"n":1.5}}`
	if string(body) != wantBody {
		t.Errorf("body\n got %s\nwant %s", body, wantBody)
	}
	var decoded map[string]any
	if err := json.Unmarshal(body, &decoded); err != nil {
		t.Fatalf("body is not JSON: %v", err)
	}
	if got := decoded["note"]; got != "line1\nline2\t\"quoted\" \\ back\u2028sep 😀 <script>alert(1)</script>" {
		t.Errorf("note decoded to %q", got)
	}

	checks := map[string]string{
		"Idempotency-Key": "13abbe36a2cb1fda",
		"User-Agent":      "hookbridge",
		"Content-Type":    "application/json",
		"Authorization":   "Bearer tok-123",
		"X-Lead-Source":   `helloclient/Bot "β" <b>&</b>`,
	}
	for name, want := range checks {
		if got := req.Header.Get(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	if req.Method != http.MethodPut || req.URL.Path != "/leads/HC-8842" || req.URL.Query().Get("src") != "helloclient" {
		t.Errorf("request line: %s %s", req.Method, req.URL)
	}
	if req.ContentLength != int64(len(body)) {
		t.Errorf("Content-Length = %d, body is %d bytes", req.ContentLength, len(body))
	}
}

func TestUserAgentCanBeOverridden(t *testing.T) {
	rec := &recorder{}
	srv := serve(t, rec)
	s := mustSink(t, "url: "+srv.URL+"\nheaders: {User-Agent: acme-bridge/2}\nbody: {a: b}", nil)
	if err := s.Deliver(context.Background(), sinktest.LeadEvent(t, sinktest.AdaLead)); err != nil {
		t.Fatal(err)
	}
	req, _ := rec.last(t)
	if got := req.Header.Get("User-Agent"); got != "acme-bridge/2" {
		t.Errorf("User-Agent = %q", got)
	}
}

// TestCloudEventsBinding decodes what was sent with sdk-go's own HTTP binding
// reader, which proves the request conforms to the CloudEvents HTTP binding.
func TestCloudEventsBinding(t *testing.T) {
	cases := []struct {
		format          string
		wantContentType string
		wantEncoding    binding.Encoding
	}{
		{FormatStructured, "application/cloudevents+json", binding.EncodingStructured},
		{FormatBinary, "application/json", binding.EncodingBinary},
	}
	for _, tc := range cases {
		t.Run(tc.format, func(t *testing.T) {
			var (
				mu       sync.Mutex
				got      *event.Event
				encoding binding.Encoding
				header   http.Header
			)
			srv := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				msg := cehttp.NewMessageFromHttpRequest(r)
				ev, err := binding.ToEvent(r.Context(), msg)
				if err != nil {
					http.Error(w, err.Error(), http.StatusBadRequest)
					return
				}
				mu.Lock()
				got, encoding, header = ev, msg.ReadEncoding(), r.Header.Clone()
				mu.Unlock()
				w.WriteHeader(http.StatusAccepted)
			}))
			s := mustSink(t, "url: "+srv.URL+"\nformat: "+tc.format, nil)
			sent := sinktest.LeadEvent(t, sinktest.AdaLead)
			sent.SetExtension("attempt", int32(3))
			if err := s.Deliver(context.Background(), sent); err != nil {
				t.Fatalf("Deliver: %v", err)
			}
			mu.Lock()
			defer mu.Unlock()
			if encoding != tc.wantEncoding {
				t.Errorf("encoding = %v, want %v", encoding, tc.wantEncoding)
			}
			if ct := header.Get("Content-Type"); ct != tc.wantContentType {
				t.Errorf("Content-Type = %q, want %q", ct, tc.wantContentType)
			}
			if header.Get("Idempotency-Key") != sent.ID() {
				t.Errorf("Idempotency-Key = %q", header.Get("Idempotency-Key"))
			}
			if tc.format == FormatBinary {
				for name, want := range map[string]string{"Ce-Id": sent.ID(), "Ce-Specversion": "1.0", "Ce-Type": "com.helloclient.lead", "Ce-Bridgesource": "helloclient"} {
					if header.Get(name) != want {
						t.Errorf("%s = %q, want %q", name, header.Get(name), want)
					}
				}
			}
			if err := got.Validate(); err != nil {
				t.Errorf("received event is invalid: %v", err)
			}
			// The time survives to the second and zone; compare the rest as JSON.
			wantJSON, _ := json.Marshal(sent)
			gotJSON, _ := json.Marshal(got)
			var a, b map[string]any
			_ = json.Unmarshal(wantJSON, &a)
			_ = json.Unmarshal(gotJSON, &b)
			if a["attempt"] != nil {
				b["attempt"] = a["attempt"] // extension types are strings on the wire
			}
			wa, _ := json.Marshal(a)
			wb, _ := json.Marshal(b)
			if string(wa) != string(wb) {
				t.Errorf("round trip changed the event\n sent %s\n  got %s", wa, wb)
			}
		})
	}
}

// Data that would break the structured event (not the JSON its type says,
// or bytes that are not UTF-8 inside JSON strings) goes as data_base64:
// the destination gets one valid JSON document and every byte of the data.
func TestStructuredCarriesDataThatIsNotJSONAsBase64(t *testing.T) {
	for name, data := range map[string][]byte{
		"not JSON":           []byte(`{"cut": "shor`),
		"JSON, not UTF-8":    []byte("{\"name\": \"Ad\xff\xfea\"}"),
		"JSON, UTF-8 (kept)": []byte(`{"name":"Ada"}`),
	} {
		rec := &recorder{}
		srv := serve(t, rec)
		s := mustSink(t, "url: "+srv.URL, nil)
		ev := sinktest.LeadEvent(t, sinktest.AdaLead)
		ev.DataEncoded = data
		if err := s.Deliver(context.Background(), ev); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		body := rec.bodies[0]
		if !json.Valid(body) || !utf8.Valid(body) {
			t.Fatalf("%s: sent %q, not a valid UTF-8 JSON document", name, body)
		}
		var got struct {
			Data       json.RawMessage `json:"data"`
			DataBase64 []byte          `json:"data_base64"`
		}
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatal(err)
		}
		if json.Valid(data) && utf8.Valid(data) {
			if string(got.Data) != string(data) || got.DataBase64 != nil {
				t.Errorf("%s: data %s, data_base64 %q; want the JSON as data", name, got.Data, got.DataBase64)
			}
		} else if !bytes.Equal(got.DataBase64, data) || got.Data != nil {
			t.Errorf("%s: data %s, data_base64 %q; want the bytes as data_base64", name, got.Data, got.DataBase64)
		}
	}
}

func TestStatusOutcome(t *testing.T) {
	cases := []struct {
		status    int
		retryable bool // false with ok: permanent
		ok        bool
	}{
		{200, false, true}, {201, false, true}, {202, false, true}, {204, false, true},
		{400, false, false}, {401, false, false}, {403, false, false}, {404, false, false},
		{409, false, false}, {410, false, false}, {422, false, false},
		{408, true, false}, {429, true, false}, {500, true, false}, {502, true, false}, {503, true, false}, {504, true, false},
	}
	rec := &recorder{}
	srv := serve(t, rec)
	s := mustSink(t, "url: "+srv.URL+"\nbody: {email: \"{{ .Data.Email }}\"}", nil)
	for _, tc := range cases {
		t.Run(http.StatusText(tc.status), func(t *testing.T) {
			rec.mu.Lock()
			rec.status, rec.answer = tc.status, `{"message":"Property values were not valid"}`
			rec.mu.Unlock()
			err := s.Deliver(context.Background(), sinktest.LeadEvent(t, sinktest.AdaLead))
			switch {
			case tc.ok:
				if err != nil {
					t.Fatalf("err = %v, want nil", err)
				}
				return
			case err == nil:
				t.Fatalf("err = nil for %d", tc.status)
			case sinks.IsPermanent(err) == tc.retryable:
				t.Fatalf("permanent = %v for %d (%v)", sinks.IsPermanent(err), tc.status, err)
			}
			var serr *StatusError
			if !errors.As(err, &serr) || serr.Code != tc.status {
				t.Fatalf("err = %#v, want a StatusError %d", err, tc.status)
			}
			if !strings.Contains(err.Error(), http.StatusText(tc.status)) || !strings.Contains(err.Error(), "Property values were not valid") {
				t.Errorf("error text lacks status or answer: %v", err)
			}
			if status, answer, ok := sinks.ResponseOf(err); !ok || status != tc.status || string(answer) != `{"message":"Property values were not valid"}` {
				t.Errorf("ResponseOf = %d, %q, %v; want %d and the answer", status, answer, ok, tc.status)
			}
			if _, ok := sinks.RetryAfterOf(err); ok {
				t.Errorf("RetryAfter without a Retry-After header")
			}
		})
	}
}

func TestErrorTextKeepsFirst512BytesAndNoSecrets(t *testing.T) {
	answer := strings.Repeat("a", 500) + "0123456789ABCDEFGHIJ" + strings.Repeat("z", 4000)
	rec := &recorder{status: 422, answer: answer}
	srv := serve(t, rec)
	s := mustSink(t, "url: "+srv.URL+"/contacts?hapikey=s3cret\nbody: {a: b}", nil)
	err := s.Deliver(context.Background(), sinktest.LeadEvent(t, sinktest.AdaLead))
	if !sinks.IsPermanent(err) {
		t.Fatalf("err = %v, want permanent", err)
	}
	msg := err.Error()
	if !strings.Contains(msg, "422 Unprocessable Entity") || !strings.HasSuffix(msg, strings.Repeat("a", 500)+"0123456789AB") {
		t.Errorf("error text: %.120s…%s", msg, msg[len(msg)-20:])
	}
	if strings.Contains(msg, "s3cret") {
		t.Errorf("error text shows the query: %s", msg[:80])
	}
}

func TestRetryAfter(t *testing.T) {
	in := func(d time.Duration) string { return time.Now().Add(d).UTC().Format(http.TimeFormat) }
	cases := []struct {
		name   string
		value  func() string
		status int
		want   time.Duration
		slack  time.Duration
	}{
		{"seconds on 429", func() string { return "3" }, 429, 3 * time.Second, 0},
		{"seconds on 503", func() string { return "120" }, 503, 2 * time.Minute, 0},
		{"http date", func() string { return in(10 * time.Second) }, 503, 10 * time.Second, 2 * time.Second},
		{"date in the past", func() string { return in(-time.Hour) }, 429, 0, 0},
		{"seconds past the cap", func() string { return "99999999999999999999" }, 503, maxRetryAfter, 0},
	}
	rec := &recorder{}
	srv := serve(t, rec)
	s := mustSink(t, "url: "+srv.URL, nil)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec.mu.Lock()
			rec.status, rec.headers = tc.status, http.Header{"Retry-After": {tc.value()}}
			rec.mu.Unlock()
			err := s.Deliver(context.Background(), sinktest.LeadEvent(t, sinktest.AdaLead))
			if err == nil || sinks.IsPermanent(err) {
				t.Fatalf("err = %v, want retryable", err)
			}
			got, ok := sinks.RetryAfterOf(err)
			if !ok {
				t.Fatalf("no RetryAfter in %v", err)
			}
			if got > tc.want || got < tc.want-tc.slack {
				t.Errorf("RetryAfter = %v, want %v (-%v)", got, tc.want, tc.slack)
			}
		})
	}
}

func TestNetworkErrorIsRetryable(t *testing.T) {
	s := mustSink(t, "url: http://"+sinktest.ClosedAddr(t)+"/hook?token=s3cret", nil)
	err := s.Deliver(context.Background(), sinktest.LeadEvent(t, sinktest.AdaLead))
	if err == nil || sinks.IsPermanent(err) {
		t.Fatalf("err = %v, want retryable", err)
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Errorf("error shows the query: %v", err)
	}
}

func TestConnectionDroppedIsRetryable(t *testing.T) {
	srv := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			_ = conn.Close()
		}
	}))
	s := mustSink(t, "url: "+srv.URL, nil)
	err := s.Deliver(context.Background(), sinktest.LeadEvent(t, sinktest.AdaLead))
	if err == nil || sinks.IsPermanent(err) {
		t.Fatalf("err = %v, want retryable", err)
	}
}

func TestTimeoutIsRetryable(t *testing.T) {
	srv := sinktest.HangingServer(t)
	s := mustSink(t, "url: "+srv.URL+"\ntimeout: 150ms", nil)
	start := time.Now()
	err := s.Deliver(context.Background(), sinktest.LeadEvent(t, sinktest.AdaLead))
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("Deliver took %v with a 150ms timeout", elapsed)
	}
	if err == nil || sinks.IsPermanent(err) {
		t.Fatalf("err = %v, want retryable", err)
	}
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "no answer within 150ms") {
		t.Errorf("err = %v, want a timeout", err)
	}
}

func TestCallerCancelIsNotPermanent(t *testing.T) {
	srv := sinktest.HangingServer(t)
	s := mustSink(t, "url: "+srv.URL, nil)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	err := s.Deliver(ctx, sinktest.LeadEvent(t, sinktest.AdaLead))
	if !errors.Is(err, context.Canceled) || sinks.IsPermanent(err) {
		t.Fatalf("err = %v, want context.Canceled, not permanent", err)
	}
}

func TestRenderErrorsArePermanent(t *testing.T) {
	rec := &recorder{}
	srv := serve(t, rec)
	cases := []struct{ name, src string }{
		{"url renders to nothing", `url: "{{ .Data.NoSuchURL }}"`},
		{"url renders to another scheme", `url: "{{ .Data.Email }}"`},
		{"header renders a newline", "url: " + srv.URL + "\nheaders: {X-Note: \"{{ .Data.Message }}\"}\nbody: {a: b}"},
		{"template fails", "url: " + srv.URL + "\nbody: {a: \"{{ fail \\\"no\\\" }}\"}"},
		{"field of a string", "url: " + srv.URL + "\nbody: {a: \"{{ .Data.FirstName.Initial }}\"}"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := mustSink(t, tc.src, nil)
			err := s.Deliver(context.Background(), sinktest.LeadEvent(t, sinktest.AdaLead))
			if err == nil || !sinks.IsPermanent(err) {
				t.Fatalf("err = %v, want permanent", err)
			}
		})
	}
	if len(rec.reqs) != 0 {
		t.Errorf("%d requests sent for events that did not render", len(rec.reqs))
	}
}

func TestPreviewHidesCredentials(t *testing.T) {
	s := mustSink(t, ownKeys(t, example), map[string]string{"HUBSPOT_TOKEN": "pat-secret"})
	out, err := s.Preview(sinktest.LeadEvent(t, sinktest.AdaLead))
	if err != nil {
		t.Fatal(err)
	}
	text := string(out)
	for _, want := range []string{"POST https://api.hubapi.com/crm/v3/objects/contacts", "Authorization: <hidden>", "Idempotency-Key: 13abbe36a2cb1fda", `"email":"ada@example.com"`} {
		if !strings.Contains(text, want) {
			t.Errorf("preview lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "pat-secret") {
		t.Errorf("preview shows the token:\n%s", text)
	}
}

func TestRegistered(t *testing.T) {
	r, ok := sinks.Lookup(Type)
	if !ok || r.Example == "" {
		t.Fatalf("http sink not registered: %+v", r)
	}
	c := r.NewConfig().(*Config)
	if c.Method != "POST" || c.Format != FormatStructured || c.Timeout != 10*time.Second {
		t.Errorf("defaults: %+v", c)
	}
}

func TestRedirects(t *testing.T) {
	rec := &recorder{status: http.StatusCreated}
	target := serve(t, rec)
	srv := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		switch r.URL.Path {
		case "/moved":
			http.Redirect(w, r, target.URL+"/login?next=x", http.StatusFound)
		case "/temporary":
			http.Redirect(w, r, target.URL+"/contacts", http.StatusTemporaryRedirect)
		}
	}))

	s := mustSink(t, "url: "+srv.URL+"/moved\nbody: {email: \"{{ .Data.Email }}\"}", nil)
	err := s.Deliver(context.Background(), sinktest.LeadEvent(t, sinktest.AdaLead))
	if !sinks.IsPermanent(err) || !strings.Contains(err.Error(), "302 Found: redirected to "+target.URL+"/login?…") {
		t.Fatalf("302: err = %v, want permanent naming where it led", err)
	}
	if len(rec.reqs) != 0 {
		t.Fatal("a 302 was followed (as a GET)")
	}

	s = mustSink(t, "url: "+srv.URL+"/temporary\nbody: {email: \"{{ .Data.Email }}\"}", nil)
	if err := s.Deliver(context.Background(), sinktest.LeadEvent(t, sinktest.AdaLead)); err != nil {
		t.Fatalf("307: %v", err)
	}
	req, body := rec.last(t)
	if req.Method != http.MethodPost || string(body) != `{"email":"ada@example.com"}` || req.Header.Get("Idempotency-Key") == "" {
		t.Errorf("307 followed as %s with %q", req.Method, body)
	}
}

// TestConcurrentDeliveries shares one sink and one event between goroutines,
// as the delivery loop and fan-out do; run with -race.
func TestConcurrentDeliveries(t *testing.T) {
	rec := &recorder{}
	srv := serve(t, rec)
	templated := mustSink(t, "url: \""+srv.URL+"/{{ .Data.SerialNumber }}\"\nheaders: {X-Who: \"{{ .Data.FirstName }}\"}\nbody: {e: \"{{ .Data.Email }}\"}", nil)
	binary := mustSink(t, "url: "+srv.URL+"\nformat: binary", nil)
	structured := mustSink(t, "url: "+srv.URL, nil)
	ev := sinktest.LeadEvent(t, sinktest.AdaLead)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		for _, s := range []*Sink{templated, binary, structured} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := s.Deliver(context.Background(), ev); err != nil {
					t.Error(err)
				}
			}()
		}
	}
	wg.Wait()
	if len(rec.reqs) != 24 {
		t.Errorf("endpoint got %d requests, want 24", len(rec.reqs))
	}
}
