package slack

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookbridge/hookbridge/sinks"
	"github.com/hookbridge/hookbridge/sinks/sinktest"
)

const webhookPath = "/services/T0001/B0001/abcdefSECRET"

// fakeSlack speaks the two Slack endpoints the sink uses: an incoming
// webhook, which answers "ok", and the Web API's chat.postMessage, which
// takes a form and answers JSON. reply, when set, answers instead.
type fakeSlack struct {
	mu       sync.Mutex
	webhooks []map[string]any
	posts    []url.Values
	reply    func(w http.ResponseWriter, r *http.Request)
}

func (f *fakeSlack) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	reply := f.reply
	switch r.URL.Path {
	case webhookPath:
		var msg map[string]any
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" || json.Unmarshal(body, &msg) != nil {
			f.mu.Unlock()
			http.Error(w, "invalid_payload", http.StatusBadRequest)
			return
		}
		f.webhooks = append(f.webhooks, msg)
	case "/api/chat.postMessage":
		form, err := url.ParseQuery(string(body))
		if err != nil || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
			f.mu.Unlock()
			http.Error(w, "bad form", http.StatusBadRequest)
			return
		}
		f.posts = append(f.posts, form)
	default:
		f.mu.Unlock()
		http.Error(w, "no_service", http.StatusNotFound)
		return
	}
	f.mu.Unlock()
	if reply != nil {
		reply(w, r)
		return
	}
	if r.URL.Path == webhookPath {
		_, _ = io.WriteString(w, "ok")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"ok":true,"channel":"C0SALES","ts":"1795169730.000100","message":{"text":"x"}}`)
}

func (f *fakeSlack) setReply(reply func(w http.ResponseWriter, r *http.Request)) {
	f.mu.Lock()
	f.reply = reply
	f.mu.Unlock()
}

func startSlack(t *testing.T) (*fakeSlack, *httptest.Server) {
	f := &fakeSlack{}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

// load decodes a sink's own keys as the config loader does.
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
	return sinktest.New[*Sink](t, c, "slack-sales")
}

// ownKeys returns the keys of the one sink in an example, without type.
func ownKeys(t testing.TB, src string) string {
	t.Helper()
	return sinktest.OwnKeys(t, src, Type)
}

func TestExamplesAreValidConfigs(t *testing.T) {
	env := map[string]string{"SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T/B/X", "SLACK_BOT_TOKEN": "xoxb-1"}
	snippets := sinktest.Examples(t, example)
	if len(snippets) != 2 {
		t.Fatalf("found %d examples, want example.yaml and one in doc.go", len(snippets))
	}
	for name, src := range snippets {
		t.Run(name, func(t *testing.T) {
			s := mustSink(t, ownKeys(t, src), env)
			if _, err := s.Render(sinktest.LeadEvent(t, sinktest.AdaLead)); err != nil {
				t.Fatalf("rendering the lead: %v", err)
			}
		})
	}
}

func TestRegistered(t *testing.T) {
	r, ok := sinks.Lookup(Type)
	if !ok || r.Example == "" {
		t.Fatalf("slack sink not registered: %+v", r)
	}
	c := r.NewConfig().(*Config)
	if c.APIURL != DefaultAPIURL || !c.EscapeData || c.Timeout != 10*time.Second {
		t.Errorf("defaults: %+v", c)
	}
}

func TestValidate(t *testing.T) {
	cases := []struct{ name, src, wantErr string }{
		{"webhook", "webhook_url: https://hooks.slack.com/services/T/B/X\ntext: hi", ""},
		{"token and channel", "token: xoxb-1\nchannel: C0SALES\ntext: hi", ""},
		{"enterprise api url", "token: xoxb-1\nchannel: C1\napi_url: https://acme.enterprise.slack.com/api\ntext: hi", ""},
		{"neither", "text: hi", "test.yaml:1:1: webhook_url: either webhook_url or token"},
		{"empty from env", "webhook_url: \"${SLACK_WEBHOOK_URL:-}\"\ntext: hi", "either webhook_url or token"},
		{"both", "webhook_url: https://h/x\ntoken: xoxb-1\nchannel: C1\ntext: hi", "token: give either webhook_url or token, not both"},
		{"token without channel", "token: xoxb-1\ntext: hi", "channel: is required with token"},
		{"no text", "webhook_url: https://h/x", "text: is required"},
		{"webhook not a URL", "webhook_url: hooks.slack.com/services/x\ntext: hi", "webhook_url: must start with https://"},
		{"api_url with webhook", "webhook_url: https://h/x\napi_url: https://a/api/\ntext: hi", "api_url: applies only with token"},
		{"bad api_url", "token: x\nchannel: C1\napi_url: slack\ntext: hi", "api_url: must start with https://"},
		{"zero timeout", "webhook_url: https://h/x\ntext: hi\ntimeout: 0", "timeout: must be positive"},
		{"bad text template", "webhook_url: https://h/x\ntext: \"{{ .Data.x \"", "bad template"},
		{"unknown key", "webhook_url: https://h/x\ntext: hi\nicon: x", `unknown key "icon"`},
		// Blocks that could never render to a list of blocks fail at load,
		// not at every event's delivery.
		{"blocks not a list", "webhook_url: https://h/x\ntext: hi\nblocks: {type: section}", "blocks: a mapping must hold a blocks list"},
		{"blocks a plain template", "webhook_url: https://h/x\ntext: hi\nblocks: \"{{ .Data }}\"", "blocks: must be a list of blocks"},
		{"builder export whose blocks are not a list", "webhook_url: https://h/x\ntext: hi\nblocks: {blocks: {type: section}}", "blocks: the mapping's blocks must be a list"},
		{"blocks from a toJson template", "webhook_url: https://h/x\ntext: hi\nblocks: \"{{ .Data.blocks | toJson }}\"", ""},
		{"builder export", "webhook_url: https://h/x\ntext: hi\nblocks: {blocks: [{type: divider}]}", ""},
		{"duplicate key in a block", "webhook_url: https://h/x\ntext: hi\nblocks: [{type: section, type: divider}]", `duplicate key "type"`},
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
			if strings.Contains(err.Error(), "hooks.slack.com") {
				t.Errorf("error shows the webhook URL: %v", err)
			}
		})
	}
}

// TestWebhookNewLeadAlert posts the example's new-lead alert and checks the
// exact JSON the incoming webhook receives.
func TestWebhookNewLeadAlert(t *testing.T) {
	fake, srv := startSlack(t)
	s := mustSink(t, ownKeys(t, example), map[string]string{"SLACK_WEBHOOK_URL": srv.URL + webhookPath})
	if err := s.Deliver(context.Background(), sinktest.LeadEvent(t, sinktest.AdaLead)); err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	want := decode(t, `{
	  "text": "New lead: Ada Lovelace (ada@example.com)",
	  "replace_original": false, "delete_original": false,
	  "blocks": [
	    {"type": "header", "text": {"type": "plain_text", "text": "New lead"}},
	    {"type": "section", "fields": [
	      {"type": "mrkdwn", "text": "*Name*\nAda Lovelace"},
	      {"type": "mrkdwn", "text": "*Email*\nada@example.com"},
	      {"type": "mrkdwn", "text": "*Phone*\n+44 20 7946 0958"},
	      {"type": "mrkdwn", "text": "*Chatbot*\nAcme Sales Assistant"}
	    ]},
	    {"type": "section", "text": {"type": "mrkdwn", "text": "*What they wrote*\nDo you ship to \"Zürich\"?\nI'd like a quote."}},
	    {"type": "context", "elements": [{"type": "mrkdwn", "text": "Hello Client · sessions/9f1c2e7a · 2026-11-20 10:15 UTC"}]}
	  ]
	}`)
	fake.mu.Lock()
	defer fake.mu.Unlock()
	if len(fake.webhooks) != 1 {
		t.Fatalf("webhook got %d posts", len(fake.webhooks))
	}
	if got := fake.webhooks[0]; !reflect.DeepEqual(got, want) {
		g, _ := json.MarshalIndent(got, "", "  ")
		t.Errorf("webhook received\n%s", g)
	}
}

func decode(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("bad expected JSON: %v", err)
	}
	return m
}

func TestMissingFieldsRenderBlank(t *testing.T) {
	fake, srv := startSlack(t)
	s := mustSink(t, ownKeys(t, example), map[string]string{"SLACK_WEBHOOK_URL": srv.URL + webhookPath})
	lead := `{"Type":"lead","SerialNumber":"HC-9","SessionID":"s1","FirstName":"Grace","Email":"grace@example.com"}`
	if err := s.Deliver(context.Background(), sinktest.LeadEvent(t, lead)); err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	fake.mu.Lock()
	defer fake.mu.Unlock()
	raw, _ := json.Marshal(fake.webhooks[0])
	if strings.Contains(string(raw), "no value") || strings.Contains(string(raw), "<nil>") {
		t.Errorf("placeholder in message: %s", raw)
	}
	if !strings.Contains(string(raw), `*Chatbot*\nHC-9`) || !strings.Contains(string(raw), `"New lead: Grace  (grace@example.com)"`) {
		t.Errorf("message: %s", raw)
	}
}

func TestPostMessage(t *testing.T) {
	fake, srv := startSlack(t)
	src := `
token: "${SLACK_BOT_TOKEN}"
api_url: ` + srv.URL + `/api
channel: "{{ if eq .Type \"com.helloclient.lead\" }}C0SALES{{ else }}C0SUPPORT{{ end }}"
username: Hookbridge
icon_emoji: ":incoming_envelope:"
text: "New lead: {{ .Data.FirstName }}: {{ .Data.Message }}"
blocks:
  blocks:
    - type: section
      text: {type: mrkdwn, text: "*{{ .Data.FirstName }}* wrote:\n{{ .Data.Message }}"}
    - type: divider
`
	s := mustSink(t, src, map[string]string{"SLACK_BOT_TOKEN": "xoxb-test-token"})
	if err := s.Deliver(context.Background(), sinktest.LeadEvent(t, sinktest.AdaLead)); err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	fake.mu.Lock()
	defer fake.mu.Unlock()
	if len(fake.posts) != 1 {
		t.Fatalf("chat.postMessage got %d calls", len(fake.posts))
	}
	form := fake.posts[0]
	wantForm := map[string]string{
		"token":      "xoxb-test-token",
		"channel":    "C0SALES",
		"text":       "New lead: Ada: Do you ship to \"Zürich\"?\nI'd like a quote.",
		"username":   "Hookbridge",
		"icon_emoji": ":incoming_envelope:",
	}
	for k, want := range wantForm {
		if got := form.Get(k); got != want {
			t.Errorf("form %s = %q, want %q", k, got, want)
		}
	}
	var blocks []map[string]any
	if err := json.Unmarshal([]byte(form.Get("blocks")), &blocks); err != nil {
		t.Fatalf("blocks form value is not JSON: %v: %q", err, form.Get("blocks"))
	}
	wantBlocks := []map[string]any{
		{"type": "section", "text": map[string]any{"type": "mrkdwn", "text": "*Ada* wrote:\nDo you ship to \"Zürich\"?\nI'd like a quote."}},
		{"type": "divider"},
	}
	if !reflect.DeepEqual(blocks, wantBlocks) {
		t.Errorf("blocks = %s", form.Get("blocks"))
	}
}

func TestPayloadTextArrivesIntact(t *testing.T) {
	message := "She said \"hi\" & 'bye'\n\tnew line, tab, ünïcödé, 日本語, emoji 😀, <!channel> <https://evil.example|your bank>, \\ backslash"
	data, _ := json.Marshal(map[string]any{"FirstName": message})
	cases := []struct {
		name, escape, want string
	}{
		{"escaped", "true", "She said \"hi\" &amp; 'bye'\n\tnew line, tab, ünïcödé, 日本語, emoji 😀, &lt;!channel&gt; &lt;https://evil.example|your bank&gt;, \\ backslash"},
		{"raw", "false", message},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fake, srv := startSlack(t)
			s := mustSink(t, "webhook_url: "+srv.URL+webhookPath+"\nescape_data: "+tc.escape+
				"\ntext: \"{{ .Data.FirstName }}\"\nblocks: [{type: section, text: {type: plain_text, text: \"{{ .Data.FirstName }}\"}}]", nil)
			if err := s.Deliver(context.Background(), sinktest.LeadEvent(t, string(data))); err != nil {
				t.Fatalf("Deliver: %v", err)
			}
			fake.mu.Lock()
			defer fake.mu.Unlock()
			msg := fake.webhooks[0]
			if msg["text"] != tc.want {
				t.Errorf("text\n got %q\nwant %q", msg["text"], tc.want)
			}
			block := msg["blocks"].([]any)[0].(map[string]any)["text"].(map[string]any)["text"]
			if block != tc.want {
				t.Errorf("block text\n got %q\nwant %q", block, tc.want)
			}
		})
	}
}

func TestSlackAnswers(t *testing.T) {
	type outcome int
	const (
		ok outcome = iota
		retryable
		permanent
	)
	status := func(code int, header, body string) func(http.ResponseWriter, *http.Request) {
		return func(w http.ResponseWriter, r *http.Request) {
			if header != "" {
				w.Header().Set("Retry-After", header)
			}
			w.WriteHeader(code)
			_, _ = io.WriteString(w, body)
		}
	}
	apiError := func(code string) func(http.ResponseWriter, *http.Request) {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"ok":false,"error":"`+code+`"}`)
		}
	}
	cases := []struct {
		name    string
		token   bool
		reply   func(http.ResponseWriter, *http.Request)
		want    outcome
		wait    time.Duration // RetryAfter wanted; 0 for none
		errText string
	}{
		{"webhook ok", false, nil, ok, 0, ""},
		{"api ok", true, nil, ok, 0, ""},
		{"webhook 429 Retry-After 7", false, status(429, "7", "rate_limited"), retryable, 7 * time.Second, "rate limit"},
		{"api 429 Retry-After 7", true, status(429, "7", ""), retryable, 7 * time.Second, "rate limit"},
		{"webhook 429 Retry-After date", false, func(w http.ResponseWriter, r *http.Request) {
			status(429, time.Now().Add(30*time.Second).UTC().Format(http.TimeFormat), "")(w, r)
		}, retryable, 30 * time.Second, "429"},
		{"webhook 429 without Retry-After", false, status(429, "", ""), retryable, 0, "429"},
		{"webhook 500", false, status(500, "", "<html>oops</html>"), retryable, 0, "500"},
		{"webhook 502 from a proxy that echoes the request", false, func(w http.ResponseWriter, r *http.Request) {
			status(502, "", "<html>upstream failed for POST http://"+r.Host+r.URL.Path+"</html>")(w, r)
		}, retryable, 0, "upstream failed for POST <secret>"},
		{"api 500", true, status(500, "", ""), retryable, 0, "500"},
		{"api 503 Retry-After", true, status(503, "2", "<html>maintenance</html>"), retryable, 2 * time.Second, "503"},
		{"webhook 404 channel_not_found", false, status(404, "", "channel_not_found"), permanent, 0, "404 Not Found: channel_not_found"},
		{"webhook 400 invalid_blocks", false, status(400, "", "invalid_blocks"), permanent, 0, "invalid_blocks"},
		{"webhook 403 action_prohibited", false, status(403, "", "action_prohibited"), permanent, 0, "action_prohibited"},
		{"webhook 410 channel_is_archived", false, status(410, "", "channel_is_archived"), permanent, 0, "channel_is_archived"},
		{"api channel_not_found", true, apiError("channel_not_found"), permanent, 0, "chat.postMessage: channel_not_found"},
		{"api invalid_auth", true, apiError("invalid_auth"), permanent, 0, "invalid_auth"},
		{"api invalid_blocks", true, apiError("invalid_blocks"), permanent, 0, "invalid_blocks"},
		{"api internal_error", true, apiError("internal_error"), retryable, 0, "internal_error"},
		{"api ratelimited", true, apiError("ratelimited"), retryable, 0, "ratelimited"},
		{"api rate_limited", true, apiError("rate_limited"), retryable, 0, "rate_limited"},
		{"api invalid_blocks with Slack's explanation", true, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"ok":false,"error":"invalid_blocks","response_metadata":{"messages":["[ERROR] must be less than 3001 characters [json-pointer:/blocks/2/text/text]"]}}`)
		}, permanent, 0, "invalid_blocks: [ERROR] must be less than 3001 characters [json-pointer:/blocks/2/text/text]"},
		{"webhook 302 to a login page", false, func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/login", http.StatusFound)
		}, permanent, 0, "302 Found"},
		{"api 200 not JSON", true, status(200, "", "<html>proxy login</html>"), retryable, 0, "chat.postMessage"},
	}
	fake, srv := startSlack(t)
	webhook := mustSink(t, "webhook_url: "+srv.URL+webhookPath+"\ntext: \"lead {{ .Data.Email }}\"", nil)
	api := mustSink(t, "token: xoxb-1\nchannel: C1\napi_url: "+srv.URL+"/api/\ntext: \"lead {{ .Data.Email }}\"", nil)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fake.setReply(tc.reply)
			s := webhook
			if tc.token {
				s = api
			}
			err := s.Deliver(context.Background(), sinktest.LeadEvent(t, sinktest.AdaLead))
			switch {
			case tc.want == ok:
				if err != nil {
					t.Fatalf("err = %v, want nil", err)
				}
				return
			case err == nil:
				t.Fatal("err = nil")
			case sinks.IsPermanent(err) != (tc.want == permanent):
				t.Fatalf("permanent = %v, want %v: %v", sinks.IsPermanent(err), tc.want == permanent, err)
			}
			if !strings.Contains(err.Error(), tc.errText) {
				t.Errorf("error %q lacks %q", err, tc.errText)
			}
			if strings.Contains(err.Error(), "SECRET") {
				t.Errorf("error shows the webhook URL: %v", err)
			}
			if _, answer, _ := sinks.ResponseOf(err); strings.Contains(string(answer), "SECRET") {
				t.Errorf("the answer a dead-letter sink would be told shows the webhook URL: %q", answer)
			}
			// A refused answer's status (in the case's name; an API
			// refusal comes with a 200) and body reach a dead-letter sink.
			refused, err2 := strconv.Atoi(strings.Fields(tc.name)[1])
			if err2 != nil && tc.token {
				refused = http.StatusOK
			}
			status, answer, ok := sinks.ResponseOf(err)
			if ok != (refused >= 300 || err2 != nil && tc.token) || ok && status != refused {
				t.Errorf("ResponseOf = %d, %q, %v", status, answer, ok)
			}
			if ok && refused == http.StatusOK && !strings.HasPrefix(string(answer), `{"ok":false,"error":`) {
				t.Errorf("ResponseOf answer %q, want Slack's refusal as it came", answer)
			}
			if tc.name == "webhook 404 channel_not_found" && string(answer) != "channel_not_found" {
				t.Errorf("ResponseOf answer %q, want channel_not_found", answer)
			}
			wait, has := sinks.RetryAfterOf(err)
			if has != (tc.wait != 0) || wait > tc.wait || wait < tc.wait-2*time.Second {
				t.Errorf("RetryAfterOf = %v, %v; want %v", wait, has, tc.wait)
			}
		})
	}
}

func TestNetworkErrorIsRetryableAndHidesWebhookURL(t *testing.T) {
	s := mustSink(t, "webhook_url: http://"+sinktest.ClosedAddr(t)+webhookPath+"\ntext: hi", nil)
	err := s.Deliver(context.Background(), sinktest.LeadEvent(t, sinktest.AdaLead))
	if err == nil || sinks.IsPermanent(err) {
		t.Fatalf("err = %v, want retryable", err)
	}
	if strings.Contains(err.Error(), "SECRET") {
		t.Errorf("error shows the webhook URL: %v", err)
	}
}

func TestTimeoutIsRetryable(t *testing.T) {
	srv := sinktest.HangingServer(t)
	s := mustSink(t, "webhook_url: "+srv.URL+webhookPath+"\ntext: hi\ntimeout: 100ms", nil)
	err := s.Deliver(context.Background(), sinktest.LeadEvent(t, sinktest.AdaLead))
	if err == nil || sinks.IsPermanent(err) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want a retryable timeout", err)
	}
}

func TestRenderErrorsArePermanent(t *testing.T) {
	fake, srv := startSlack(t)
	cases := []struct{ name, src string }{
		{"text fails", `text: "{{ .Data.FirstName.Initial }}"`},
		{"empty text without blocks", `text: "{{ .Data.Nothing }}"`},
		{"block without type", "text: hi\nblocks: [{text: {type: mrkdwn, text: x}}]"},
		{"block of the wrong shape", "text: hi\nblocks: [{type: section, fields: \"{{ .Data.FirstName }}\"}]"},
		{"blocks from data not blocks", "text: hi\nblocks: [\"{{ .Data.FirstName | toJson }}\"]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := mustSink(t, "webhook_url: "+srv.URL+webhookPath+"\n"+tc.src, nil)
			err := s.Deliver(context.Background(), sinktest.LeadEvent(t, sinktest.AdaLead))
			if err == nil || !sinks.IsPermanent(err) {
				t.Fatalf("err = %v, want permanent", err)
			}
		})
	}
	if len(fake.webhooks) != 0 {
		t.Errorf("%d messages posted for events that did not render", len(fake.webhooks))
	}
	t.Run("api channel renders empty", func(t *testing.T) {
		s := mustSink(t, "token: x\nchannel: \"{{ .Data.Nothing }}\"\napi_url: "+srv.URL+"/api/\ntext: hi", nil)
		if err := s.Deliver(context.Background(), sinktest.LeadEvent(t, sinktest.AdaLead)); !sinks.IsPermanent(err) {
			t.Fatalf("err = %v, want permanent", err)
		}
	})
}

func TestBlocksOnlyMessage(t *testing.T) {
	fake, srv := startSlack(t)
	s := mustSink(t, "webhook_url: "+srv.URL+webhookPath+"\ntext: \"{{ .Data.Nothing }}\"\nblocks: [{type: divider}]", nil)
	if err := s.Deliver(context.Background(), sinktest.LeadEvent(t, sinktest.AdaLead)); err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	if len(fake.webhooks) != 1 {
		t.Fatalf("got %d posts", len(fake.webhooks))
	}
}

func TestPreview(t *testing.T) {
	s := mustSink(t, ownKeys(t, example), map[string]string{"SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T/B/SECRET"})
	out, err := s.Preview(sinktest.LeadEvent(t, sinktest.AdaLead))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), `"text": "New lead: Ada Lovelace (ada@example.com)"`) || strings.Contains(string(out), "SECRET") {
		t.Errorf("preview:\n%s", out)
	}
}

// TestConcurrentDeliveries shares one sink and one event between goroutines,
// as the delivery loop and fan-out do; run with -race.
func TestConcurrentDeliveries(t *testing.T) {
	fake, srv := startSlack(t)
	webhook := mustSink(t, ownKeys(t, example), map[string]string{"SLACK_WEBHOOK_URL": srv.URL + webhookPath})
	api := mustSink(t, "token: x\nchannel: \"{{ .Data.SerialNumber }}\"\napi_url: "+srv.URL+"/api/\ntext: \"{{ .Data.Message }}\"", nil)
	ev := sinktest.LeadEvent(t, `{"SerialNumber":"C1","FirstName":"<b>","Message":"a & b","Email":"x@y"}`)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		for _, s := range []*Sink{webhook, api} {
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
	fake.mu.Lock()
	defer fake.mu.Unlock()
	if len(fake.webhooks) != 8 || len(fake.posts) != 8 {
		t.Errorf("got %d webhook posts and %d API posts, want 8 each", len(fake.webhooks), len(fake.posts))
	}
	for _, p := range fake.posts {
		if p.Get("text") != "a &amp; b" {
			t.Errorf("text = %q (escaped twice or not at all)", p.Get("text"))
		}
	}
}
