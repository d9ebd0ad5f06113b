package slack

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cloudevents/sdk-go/v2/event"
	slackgo "github.com/slack-go/slack"

	"github.com/hookbridge/hookbridge/sinks"
	"github.com/hookbridge/hookbridge/tmpl"
)

const (
	// errorBodyLimit is how much of a refused answer goes into the error.
	errorBodyLimit = 512
	// maxRetryAfter caps the wait Slack may ask for.
	maxRetryAfter = time.Hour
)

// transientErrors are chat.postMessage error codes worth retrying.
var transientErrors = map[string]bool{
	"ratelimited":         true,
	"internal_error":      true,
	"fatal_error":         true,
	"service_unavailable": true,
	"request_timeout":     true,
	"team_added_to_org":   true,
}

// Sink posts events to Slack. It is safe for concurrent use.
type Sink struct {
	name       string
	webhookURL string          // webhook mode
	api        *slackgo.Client // token mode
	channel    *tmpl.Template
	text       *tmpl.Template
	blocks     *tmpl.JSON
	username   string
	iconEmoji  string
	escape     bool
	timeout    time.Duration
	client     *http.Client
}

func newSink(name string, c *Config) *Sink {
	s := &Sink{
		name:      name,
		channel:   c.Channel,
		text:      c.Text,
		blocks:    c.Blocks,
		username:  c.Username,
		iconEmoji: c.IconEmoji,
		escape:    c.EscapeData,
		timeout:   c.Timeout,
		client: &http.Client{
			Transport: &recordingTransport{base: newTransport(c.Timeout)},
			// A redirect that turns the POST into a GET would answer 200
			// without posting anything; it is an error instead.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	if s.blocks.IsZero() {
		s.blocks = nil
	}
	if strings.TrimSpace(c.WebhookURL) != "" {
		s.webhookURL = strings.TrimSpace(c.WebhookURL)
		return s
	}
	apiURL := strings.TrimSpace(c.APIURL)
	if !strings.HasSuffix(apiURL, "/") {
		apiURL += "/" // slack-go appends the method name
	}
	s.api = slackgo.New(strings.TrimSpace(c.Token), slackgo.OptionAPIURL(apiURL), slackgo.OptionHTTPClient(s.client))
	return s
}

func newTransport(timeout time.Duration) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone() // keeps proxy from the environment
	t.DialContext = (&net.Dialer{Timeout: min(timeout, 30*time.Second), KeepAlive: 30 * time.Second}).DialContext
	t.MaxIdleConns = 16
	t.MaxIdleConnsPerHost = 8
	t.IdleConnTimeout = 90 * time.Second
	t.TLSHandshakeTimeout = min(timeout, 10*time.Second)
	return t
}

// Render builds the message Deliver posts for ev, without posting it;
// `bridge routes test` shows it. Errors are permanent: the same event always
// renders the same way.
func (s *Sink) Render(ev *event.Event) (*slackgo.WebhookMessage, error) {
	view := tmpl.NewView(ev)
	if s.escape {
		view = escapedView(view)
	}
	msg := &slackgo.WebhookMessage{Username: s.username, IconEmoji: s.iconEmoji}
	var err error
	if msg.Channel, err = s.channel.Render(view); err != nil {
		return nil, sinks.Permanent(fmt.Errorf("channel: %w", err))
	}
	msg.Channel = strings.TrimSpace(msg.Channel)
	if s.api != nil && msg.Channel == "" {
		return nil, sinks.Permanent(fmt.Errorf("channel: %q rendered empty", s.channel.String()))
	}
	if msg.Text, err = s.text.Render(view); err != nil {
		return nil, sinks.Permanent(fmt.Errorf("text: %w", err))
	}
	if s.blocks != nil {
		if msg.Blocks, err = RenderBlocks(s.blocks, view); err != nil {
			return nil, sinks.Permanent(err)
		}
	}
	if strings.TrimSpace(msg.Text) == "" && msg.Blocks == nil {
		return nil, sinks.Permanent(fmt.Errorf("text: %q rendered empty and there are no blocks", s.text.String()))
	}
	return msg, nil
}

// RenderBlocks renders a blocks template and checks the result is Block Kit:
// a list of blocks (or a mapping holding one under "blocks"), each with a
// type. An empty list gives nil.
func RenderBlocks(blocks *tmpl.JSON, view *tmpl.View) (*slackgo.Blocks, error) {
	raw, err := blocks.Render(view)
	if err != nil {
		return nil, fmt.Errorf("blocks: %w", err)
	}
	if trimmed := bytes.TrimSpace(raw); len(trimmed) > 0 && trimmed[0] == '{' {
		var payload struct {
			Blocks json.RawMessage `json:"blocks"`
		}
		if err := json.Unmarshal(trimmed, &payload); err != nil {
			return nil, fmt.Errorf("blocks: %w", err)
		}
		if payload.Blocks == nil {
			return nil, errors.New("blocks: a mapping must hold a blocks list")
		}
		raw = payload.Blocks
	}
	if trimmed := bytes.TrimSpace(raw); len(trimmed) == 0 || trimmed[0] != '[' {
		return nil, errors.New("blocks: must be a list of blocks")
	}
	var out slackgo.Blocks
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("blocks: not Block Kit: %w", err)
	}
	for i, b := range out.BlockSet {
		if b == nil || b.BlockType() == "" {
			return nil, fmt.Errorf("blocks: block %d has no type", i+1)
		}
	}
	if len(out.BlockSet) == 0 {
		return nil, nil
	}
	return &out, nil
}

// Deliver posts ev. A nil error means Slack accepted the message.
func (s *Sink) Deliver(ctx context.Context, ev *event.Event) error {
	msg, err := s.Render(ev)
	if err != nil {
		return err
	}
	reqCtx, cancel := context.WithTimeoutCause(ctx, s.timeout, errTimedOut)
	defer cancel()
	answer := &answer{}
	reqCtx = context.WithValue(reqCtx, answerKey{}, answer)
	method := "incoming webhook"
	if s.api == nil {
		err = slackgo.PostWebhookCustomHTTPContext(reqCtx, s.webhookURL, s.client, msg)
	} else {
		method = "chat.postMessage"
		opts := []slackgo.MsgOption{slackgo.MsgOptionText(msg.Text, false)}
		if msg.Blocks != nil {
			opts = append(opts, slackgo.MsgOptionBlocks(msg.Blocks.BlockSet...))
		}
		if msg.Username != "" {
			opts = append(opts, slackgo.MsgOptionUsername(msg.Username))
		}
		if msg.IconEmoji != "" {
			opts = append(opts, slackgo.MsgOptionIconEmoji(msg.IconEmoji))
		}
		_, _, err = s.api.PostMessageContext(reqCtx, msg.Channel, opts...)
	}
	if err == nil {
		return nil
	}
	return s.explain(ctx, reqCtx, method, answer, err)
}

var errTimedOut = errors.New("timed out")

// explain turns slack-go's error into one the delivery loop can act on.
func (s *Sink) explain(parent, reqCtx context.Context, method string, ans *answer, err error) error {
	if parent.Err() != nil {
		return fmt.Errorf("slack %s: %w", method, parent.Err())
	}
	if errors.Is(context.Cause(reqCtx), errTimedOut) {
		return fmt.Errorf("slack %s: no answer within %s: %w", method, s.timeout, context.DeadlineExceeded)
	}
	var limited *slackgo.RateLimitedError
	if errors.As(err, &limited) {
		return sinks.RetryAfter(fmt.Errorf("slack %s: %w", method, err), min(max(limited.RetryAfter, 0), maxRetryAfter))
	}
	var refused slackgo.SlackErrorResponse
	if errors.As(err, &refused) {
		e := fmt.Errorf("slack %s: %s", method, refused.Err)
		if transientErrors[refused.Err] {
			return e
		}
		return sinks.Permanent(e)
	}
	status := ans.status
	var statusErr slackgo.StatusCodeError
	if errors.As(err, &statusErr) {
		status = statusErr.Code
	}
	if status != 0 && status != http.StatusOK {
		e := fmt.Errorf("slack %s: %d %s", method, status, http.StatusText(status))
		if ans.body != "" {
			e = fmt.Errorf("%w: %s", e, ans.body)
		}
		if status != http.StatusRequestTimeout && status != http.StatusTooManyRequests && status < 500 {
			return sinks.Permanent(e)
		}
		if wait, ok := sinks.ParseRetryAfter(ans.retryAfter, time.Now(), maxRetryAfter); ok {
			return sinks.RetryAfter(e, wait)
		}
		return e
	}
	// A network failure, or a 200 that was not the answer Slack gives.
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err // its text holds the URL, and a webhook URL is a secret
	}
	return fmt.Errorf("slack %s: %s", method, strings.ReplaceAll(err.Error(), s.webhookURLOrNone(), "<webhook_url>"))
}

func (s *Sink) webhookURLOrNone() string {
	if s.webhookURL == "" {
		return "\x00none"
	}
	return s.webhookURL
}

// Preview renders the message as Slack would receive it, for dry runs.
func (s *Sink) Preview(ev *event.Event) ([]byte, error) {
	msg, err := s.Render(ev)
	if err != nil {
		return nil, err
	}
	return json.MarshalIndent(msg, "", "  ")
}

// Close releases idle connections.
func (s *Sink) Close(context.Context) error {
	s.client.CloseIdleConnections()
	return nil
}

// escapedView is v with every string in the payload and the extensions
// escaped as Slack asks: & < > as HTML entities, nothing else.
func escapedView(v *tmpl.View) *tmpl.View {
	c := *v
	c.Data = escapeValue(v.Data)
	c.Extensions = make(map[string]any, len(v.Extensions))
	for k, x := range v.Extensions {
		c.Extensions[k] = escapeValue(x)
	}
	return &c
}

var slackEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

func escapeValue(x any) any {
	switch x := x.(type) {
	case string:
		return slackEscaper.Replace(x)
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, v := range x {
			m[k] = escapeValue(v)
		}
		return m
	case []any:
		l := make([]any, len(x))
		for i, v := range x {
			l[i] = escapeValue(v)
		}
		return l
	default:
		return x
	}
}

// answer is what recordingTransport saw of Slack's reply to one post, for
// errors slack-go reports without it.
type answer struct {
	status     int
	retryAfter string
	body       string
}

type answerKey struct{}

// recordingTransport notes the status, Retry-After and the start of the
// body of a refused answer in the request's *answer.
type recordingTransport struct {
	base http.RoundTripper
}

func (t *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	ans, _ := req.Context().Value(answerKey{}).(*answer)
	if err != nil || ans == nil {
		return resp, err
	}
	ans.status = resp.StatusCode
	ans.retryAfter = resp.Header.Get("Retry-After")
	if resp.StatusCode != http.StatusOK {
		head, _ := io.ReadAll(io.LimitReader(resp.Body, errorBodyLimit))
		ans.body = strings.TrimSpace(strings.ToValidUTF8(string(head), string(utf8.RuneError)))
		resp.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(head), resp.Body), resp.Body}
	}
	return resp, nil
}

var (
	_ sinks.Sink   = (*Sink)(nil)
	_ sinks.Config = (*Config)(nil)
)
