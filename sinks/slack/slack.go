package slack

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
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
	"rate_limited":        true, // chat.postMessage's own spelling of it
	"internal_error":      true,
	"fatal_error":         true,
	"service_unavailable": true,
	"request_timeout":     true,
	"team_added_to_org":   true,
}

// threadGoneErrors are the chat.postMessage refusals of a reply whose
// thread cannot be replied to any more (its parent was deleted, or its ts
// is not one Slack knows): the reply starts a new thread instead.
var threadGoneErrors = map[string]bool{
	"thread_not_found":  true,
	"message_not_found": true,
	"invalid_thread_ts": true,
}

// errThreadGone marks a refusal in threadGoneErrors.
var errThreadGone = errors.New("the thread's parent message is gone")

// Sink posts events to Slack. It is safe for concurrent use.
type Sink struct {
	name       string
	webhookURL string          // webhook mode
	api        *slackgo.Client // token mode
	secrets    []string        // what an answer must not repeat (scrub): the webhook URL and its path, or the token
	channel    *tmpl.Template
	text       *tmpl.Template
	blocks     *tmpl.JSON
	username   string
	iconEmoji  string
	escape     bool
	timeout    time.Duration
	client     *http.Client

	// Threads (token mode with thread_key only).
	threadKey      *tmpl.Template
	replyBroadcast bool
	threadTTL      time.Duration
	threadPath     string
	now            func() time.Time
	keys           keyLocks
	storeMu        sync.Mutex
	shared         sinks.SharedState // the replicas' shared state, when the bridge offers one
	store          threadMap         // opened by Start or the first threaded delivery
	closed         bool
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
		now:       time.Now,
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
		s.secrets = []string{s.webhookURL}
		if u, err := url.Parse(s.webhookURL); err == nil && len(u.Path) > 1 {
			s.secrets = append(s.secrets, u.Path) // /services/T…/B…/<secret>
		}
		return s
	}
	s.secrets = []string{strings.TrimSpace(c.Token)}
	apiURL := strings.TrimSpace(c.APIURL)
	if !strings.HasSuffix(apiURL, "/") {
		apiURL += "/" // slack-go appends the method name
	}
	s.api = slackgo.New(strings.TrimSpace(c.Token), slackgo.OptionAPIURL(apiURL), slackgo.OptionHTTPClient(s.client))
	if !c.ThreadKey.IsZero() {
		s.threadKey = c.ThreadKey
		s.replyBroadcast = c.ReplyBroadcast
		s.threadTTL = c.ThreadTTL
		s.threadPath = c.threadStorePath(name)
	}
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
	return s.render(tmpl.NewView(ev))
}

func (s *Sink) render(view *tmpl.View) (*slackgo.WebhookMessage, error) {
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
	view := tmpl.NewView(ev)
	msg, err := s.render(view)
	if err != nil {
		return err
	}
	if s.api == nil {
		return s.postWebhook(ctx, msg)
	}
	key, err := s.renderThreadKey(view)
	if err != nil {
		return err
	}
	if key == "" {
		_, err := s.post(ctx, msg, msg.Channel, "")
		return err
	}
	return s.deliverThreaded(ctx, ev, msg, key)
}

// renderThreadKey renders thread_key over the payload as it came (the key
// is never shown, so it is not escaped); "" means no thread.
func (s *Sink) renderThreadKey(view *tmpl.View) (string, error) {
	if s.threadKey == nil {
		return "", nil
	}
	key, err := s.threadKey.Render(view)
	if err != nil {
		return "", sinks.Permanent(fmt.Errorf("thread_key: %w", err))
	}
	return strings.TrimSpace(key), nil
}

// deliverThreaded posts msg in the thread of key in msg's channel, or
// starts that thread. The deliveries of one key take turns: a second event
// of a new conversation waits for the first one's parent.
//
// The parent is remembered once Slack has answered with its ts: a post
// Slack made but whose answer never came (a timeout, a crash before the
// store's fsync) is retried as any delivery is, and so posts a second
// parent, under which the later events then go.
func (s *Sink) deliverThreaded(ctx context.Context, ev *event.Event, msg *slackgo.WebhookMessage, key string) error {
	st, err := s.threads()
	if err != nil {
		return fmt.Errorf("slack sink %q: %w", s.name, err)
	}
	unlock, err := s.keys.lock(ctx, msg.Channel+"\x00"+key)
	if err != nil {
		return fmt.Errorf("slack sink %q: waiting for the earlier messages of thread %q: %w", s.name, key, err)
	}
	defer unlock()
	log := slog.Default().With("sink", s.name, "thread_key", key, "id", ev.ID())
	th, found, err := st.get(ctx, msg.Channel, key)
	if err != nil {
		return fmt.Errorf("slack sink %q: %w", s.name, err)
	}
	if found {
		p, err := s.post(ctx, msg, th.Channel, th.TS)
		switch {
		case err == nil && p.unthreaded():
			// Slack posts a reply whose parent was deleted in the channel
			// instead, un-threaded: that message is the new parent.
			log.Info("slack thread's parent is gone; the reply was posted to the channel and starts a new thread",
				"channel", p.channel, "old_ts", th.TS, "ts", p.ts)
			s.remember(ctx, st, log, msg.Channel, key, p)
			return nil
		case err == nil:
			if err := st.put(ctx, msg.Channel, key, th, false); err != nil {
				log.Warn("slack thread store: could not note the thread's latest message; it may expire early", "err", err)
			}
			return nil
		case errors.Is(err, errThreadGone):
			log.Info("slack thread's parent is gone; starting a new thread", "channel", th.Channel, "old_ts", th.TS, "err", err)
			if err := st.forget(ctx, msg.Channel, key); err != nil {
				return fmt.Errorf("slack sink %q: %w", s.name, err)
			}
		default:
			return err
		}
	}
	p, err := s.post(ctx, msg, msg.Channel, "")
	if err != nil {
		return err // nothing remembered: the retry starts the thread
	}
	log.Info("slack thread started", "channel", p.channel, "ts", p.ts)
	s.remember(ctx, st, log, msg.Channel, key, p)
	return nil
}

// remember stores the thread whose parent p is. The message is in Slack
// whatever happens here, so a failure is logged, not returned: a retry
// would post it again.
func (s *Sink) remember(ctx context.Context, st threadMap, log *slog.Logger, channel, key string, p posted) {
	if p.channel == "" || p.ts == "" {
		log.Warn("slack answered without the message's channel and ts; the next message of this key starts another thread")
		return
	}
	if err := st.put(ctx, channel, key, thread{Channel: p.channel, TS: p.ts}, true); err != nil {
		log.Error("slack thread store: could not remember the thread; the next message of this key starts another one", "err", err)
	}
}

// threads opens the thread map on first use: in the replicas' shared
// state when the bridge offered one, else the store on disk.
func (s *Sink) threads() (threadMap, error) {
	s.storeMu.Lock()
	defer s.storeMu.Unlock()
	if s.closed {
		return nil, errClosed
	}
	if s.store == nil {
		log := slog.Default().With("sink", s.name)
		if s.shared != nil {
			s.store = newSharedThreads(s.shared, s.name, s.threadTTL, s.now, log)
			return s.store, nil
		}
		st, err := openThreadStore(s.threadPath, s.threadTTL, s.now, log)
		if err != nil {
			return nil, err
		}
		s.store = st
	}
	return s.store, nil
}

// UseSharedState keeps the sink's threads in the state every replica
// shares (queue type kafka) instead of thread_store on this bridge's disk,
// so that a conversation that moves to another replica stays in its
// thread. The bridge calls it before Start.
func (s *Sink) UseSharedState(st sinks.SharedState) {
	s.storeMu.Lock()
	defer s.storeMu.Unlock()
	s.shared = st
}

// Start opens the thread store of a sink with thread_key, so a store that
// cannot be opened is said at start. Deliveries before Start open it
// themselves.
func (s *Sink) Start(context.Context) error {
	if s.threadKey == nil {
		return nil
	}
	if _, err := s.threads(); err != nil {
		return fmt.Errorf("slack sink %q: %w", s.name, err)
	}
	return nil
}

func (s *Sink) postWebhook(ctx context.Context, msg *slackgo.WebhookMessage) error {
	reqCtx, cancel := context.WithTimeoutCause(ctx, s.timeout, errTimedOut)
	defer cancel()
	answer := &answer{}
	reqCtx = context.WithValue(reqCtx, answerKey{}, answer)
	err := slackgo.PostWebhookCustomHTTPContext(reqCtx, s.webhookURL, s.client, msg)
	if err == nil {
		return nil
	}
	return s.explain(ctx, reqCtx, "incoming webhook", answer, err)
}

// posted is Slack's answer to a chat.postMessage.
type posted struct {
	channel, ts string
	echoed      bool   // the answer holds the message (with its ts)
	threadTS    string // the message's thread_ts, as the answer's message holds it
	asked       string // the thread_ts the post asked for
}

// unthreaded reports whether a reply was posted to the channel instead of
// its thread: Slack does that, without an error, when the parent was
// deleted, and then echoes the message without a thread_ts.
func (p posted) unthreaded() bool {
	// An answer without the message says nothing about its thread.
	return p.asked != "" && p.echoed && p.threadTS == ""
}

// post sends msg with chat.postMessage to channel, as a reply in the
// thread of threadTS unless that is "".
func (s *Sink) post(ctx context.Context, msg *slackgo.WebhookMessage, channel, threadTS string) (posted, error) {
	reqCtx, cancel := context.WithTimeoutCause(ctx, s.timeout, errTimedOut)
	defer cancel()
	answer := &answer{}
	reqCtx = context.WithValue(reqCtx, answerKey{}, answer)
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
	if threadTS != "" {
		opts = append(opts, slackgo.MsgOptionTS(threadTS))
		if s.replyBroadcast {
			opts = append(opts, slackgo.MsgOptionBroadcast())
		}
	}
	respChannel, ts, m, err := s.api.PostMessageWithResponseContext(reqCtx, channel, opts...)
	if err != nil {
		return posted{}, s.explain(ctx, reqCtx, "chat.postMessage", answer, err)
	}
	return posted{channel: respChannel, ts: ts, echoed: m.Timestamp != "", threadTS: m.ThreadTimestamp, asked: threadTS}, nil
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
	// An answer goes into the error and to a dead-letter sink; a page
	// that echoes the request (a proxy's) must not carry the secret along.
	ans.body, ans.raw = s.scrub(ans.body), []byte(s.scrub(string(ans.raw)))
	var limited *slackgo.RateLimitedError
	if errors.As(err, &limited) {
		e := sinks.WithResponse(fmt.Errorf("slack %s: %w", method, err), http.StatusTooManyRequests, ans.raw)
		return sinks.RetryAfter(e, min(max(limited.RetryAfter, 0), maxRetryAfter))
	}
	var refused slackgo.SlackErrorResponse
	if errors.As(err, &refused) {
		e := fmt.Errorf("slack %s: %s", method, refused.Err)
		if msgs := refused.ResponseMetadata.Messages; len(msgs) > 0 {
			// Which block or limit (invalid_blocks says where).
			e = fmt.Errorf("slack %s: %s: %s", method, refused.Err, strings.Join(msgs, "; "))
		}
		if threadGoneErrors[refused.Err] {
			e = fmt.Errorf("%w: %w", e, errThreadGone)
		}
		if ans.status != 0 { // Slack's refusal, as it came (with a 200)
			e = sinks.WithResponse(e, ans.status, ans.raw)
		}
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
		e = sinks.WithResponse(e, status, ans.raw)
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

// scrub replaces the sink's secrets in text.
func (s *Sink) scrub(text string) string {
	for _, secret := range s.secrets {
		if secret != "" {
			text = strings.ReplaceAll(text, secret, "<secret>")
		}
	}
	return text
}

func (s *Sink) webhookURLOrNone() string {
	if s.webhookURL == "" {
		return "\x00none"
	}
	return s.webhookURL
}

// Preview renders the message as Slack would receive it, for dry runs,
// with the thread key it would be threaded by (not sent) as thread_key.
func (s *Sink) Preview(ev *event.Event) ([]byte, error) {
	view := tmpl.NewView(ev)
	msg, err := s.render(view)
	if err != nil {
		return nil, err
	}
	key, err := s.renderThreadKey(view)
	if err != nil {
		return nil, err
	}
	return json.MarshalIndent(struct {
		*slackgo.WebhookMessage
		ThreadKey string `json:"thread_key,omitempty"`
	}{msg, key}, "", "  ")
}

// Close closes the thread store and releases idle connections. It is safe
// without Start and more than once; deliveries after it fail, retryably.
func (s *Sink) Close(context.Context) error {
	s.storeMu.Lock()
	st := s.store
	s.store, s.closed = nil, true
	s.storeMu.Unlock()
	s.client.CloseIdleConnections()
	if st != nil {
		if err := st.close(); err != nil {
			return fmt.Errorf("slack sink %q: %w", s.name, err)
		}
	}
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
	body       string // the start of a refused answer, as text
	raw        []byte // the start of the answer, as it came
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
	// The start of every answer, as it came: a refusal's reaches a
	// dead-letter sink, a 200's too when it says ok: false.
	head, _ := io.ReadAll(io.LimitReader(resp.Body, sinks.AnswerLimit))
	ans.raw = head
	if resp.StatusCode != http.StatusOK {
		ans.body = strings.TrimSpace(strings.ToValidUTF8(string(head[:min(len(head), errorBodyLimit)]), string(utf8.RuneError)))
	}
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(head), resp.Body), resp.Body}
	return resp, nil
}

var (
	_ sinks.Sink    = (*Sink)(nil)
	_ sinks.Starter = (*Sink)(nil)
	_ sinks.Config  = (*Config)(nil)
)
