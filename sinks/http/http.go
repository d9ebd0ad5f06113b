package httpsink

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"github.com/hookbridge/hookbridge/sinks"
	"github.com/hookbridge/hookbridge/tmpl"
)

// UserAgent is sent with every request unless headers set another.
const UserAgent = "hookbridge"

// IdempotencyKeyHeader carries the event id on every request.
const IdempotencyKeyHeader = "Idempotency-Key"

const (
	// errorBodyLimit is how much of a failed answer goes into the error.
	errorBodyLimit = 512
	// drainLimit is how much of an answer is read so the connection can be
	// reused; a longer answer closes the connection instead.
	drainLimit = 64 << 10
	// maxRetryAfter caps the wait an endpoint may ask for.
	maxRetryAfter = 24 * time.Hour
)

// Sink sends events to one HTTP endpoint. It is safe for concurrent use.
type Sink struct {
	name     string
	url      *tmpl.Template
	fixedURL *url.URL // url when it is not a template
	method   string
	headers  []header
	body     *tmpl.JSON
	binary   bool
	timeout  time.Duration
	client   *http.Client
}

type header struct {
	name  string
	value *tmpl.Template
}

// StatusError is a non-2xx answer.
type StatusError struct {
	Method string
	URL    string // without user info or query
	Code   int
	Status string // e.g. "422 Unprocessable Entity"
	Body   string // the first 512 bytes of the answer (and where a redirect led)

	answer []byte // the first sinks.AnswerLimit bytes of the answer, as they came
}

func (e *StatusError) Error() string {
	msg := fmt.Sprintf("%s %s: %s", e.Method, e.URL, e.Status)
	if e.Body != "" {
		msg += ": " + e.Body
	}
	return msg
}

// ResponseStatus and ResponseBody tell a dead-letter sink what the
// endpoint answered (sinks.Responded).
func (e *StatusError) ResponseStatus() int  { return e.Code }
func (e *StatusError) ResponseBody() []byte { return e.answer }

// Retryable reports whether the status is worth retrying: 408, 429, 5xx.
func (e *StatusError) Retryable() bool { return retryableStatus(e.Code) }

func retryableStatus(code int) bool {
	return code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500
}

func newSink(name string, c *Config) *Sink {
	s := &Sink{
		name:    name,
		url:     c.URL,
		method:  strings.ToUpper(c.Method),
		body:    c.Body,
		binary:  c.Body.IsZero() && c.Format == FormatBinary,
		timeout: c.Timeout,
		client:  &http.Client{Transport: newTransport(c.Timeout), CheckRedirect: keepMethodRedirects},
	}
	if s.body.IsZero() {
		s.body = nil
	}
	if c.URL.IsConstant() {
		s.fixedURL, _ = parseTarget(c.URL.String()) // checked by Validate
	}
	for name, value := range c.Headers {
		s.headers = append(s.headers, header{name: http.CanonicalHeaderKey(name), value: value})
	}
	sort.Slice(s.headers, func(i, j int) bool { return s.headers[i].name < s.headers[j].name })
	return s
}

// keepMethodRedirects follows only 307 and 308, which repeat the request
// as it was. Go would follow a 301, 302 or 303 with a GET and no body, and
// the event would be reported delivered when it was not; those answers are
// returned as they are instead.
func keepMethodRedirects(req *http.Request, via []*http.Request) error {
	if len(via) >= 5 {
		return errors.New("stopped after 5 redirects")
	}
	if req.Response != nil && (req.Response.StatusCode == http.StatusTemporaryRedirect || req.Response.StatusCode == http.StatusPermanentRedirect) {
		return nil
	}
	return http.ErrUseLastResponse
}

// newTransport is one connection pool per sink, sized for a handful of
// concurrent deliveries to one host. The request's context bounds the whole
// exchange; the dial and TLS limits only stop a dead host from using all of
// it.
func newTransport(timeout time.Duration) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone() // keeps proxy from the environment
	t.DialContext = (&net.Dialer{Timeout: min(timeout, 30*time.Second), KeepAlive: 30 * time.Second}).DialContext
	t.MaxIdleConns = 64
	t.MaxIdleConnsPerHost = 16
	t.IdleConnTimeout = 90 * time.Second
	t.TLSHandshakeTimeout = min(timeout, 10*time.Second)
	t.ExpectContinueTimeout = time.Second
	return t
}

// Deliver sends ev. A nil error means the endpoint answered 2xx.
func (s *Sink) Deliver(ctx context.Context, ev *event.Event) error {
	reqCtx, cancel := context.WithTimeoutCause(ctx, s.timeout, errTimedOut)
	defer cancel()
	req, err := s.NewRequest(reqCtx, ev)
	if err != nil {
		return err
	}
	target := redact(req.URL)
	resp, err := s.client.Do(req)
	if err != nil {
		return s.transportError(ctx, reqCtx, target, err)
	}
	defer drainAndClose(resp.Body)
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	answer, snippet, readErr := readAnswer(resp.Body)
	if readErr != nil && reqCtx.Err() != nil {
		snippet += " (answer cut short: " + context.Cause(reqCtx).Error() + ")"
	}
	if loc := resp.Header.Get("Location"); loc != "" && resp.StatusCode >= 300 && resp.StatusCode < 400 {
		if u, err := req.URL.Parse(loc); err == nil {
			snippet = strings.TrimSuffix("redirected to "+redact(u)+"; "+snippet, "; ")
		}
	}
	serr := &StatusError{Method: s.method, URL: target, Code: resp.StatusCode, Status: resp.Status, Body: snippet, answer: answer}
	if serr.Status == "" {
		serr.Status = strconv.Itoa(resp.StatusCode)
	}
	if !retryableStatus(resp.StatusCode) {
		return sinks.Permanent(serr)
	}
	if wait, ok := sinks.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now(), maxRetryAfter); ok {
		return sinks.RetryAfter(serr, wait)
	}
	return serr
}

var errTimedOut = errors.New("timed out")

// transportError explains a failed round trip; it is always retryable.
func (s *Sink) transportError(parent, reqCtx context.Context, target string, err error) error {
	if parent.Err() != nil {
		return fmt.Errorf("%s %s: %w", s.method, target, parent.Err())
	}
	if errors.Is(context.Cause(reqCtx), errTimedOut) {
		return fmt.Errorf("%s %s: no answer within %s: %w", s.method, target, s.timeout, context.DeadlineExceeded)
	}
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err // its text repeats the full URL, query and all
	}
	return fmt.Errorf("%s %s: %w", s.method, target, err)
}

// NewRequest builds the request Deliver sends for ev, without sending it;
// `bridge routes test` shows it. Errors are permanent: the same event always
// renders the same way.
func (s *Sink) NewRequest(ctx context.Context, ev *event.Event) (*http.Request, error) {
	view := tmpl.NewView(ev)
	target := s.fixedURL
	if target == nil {
		raw, err := s.url.Render(view)
		if err != nil {
			return nil, sinks.Permanent(fmt.Errorf("url: %w", err))
		}
		if target, err = parseTarget(raw); err != nil {
			return nil, sinks.Permanent(fmt.Errorf("url: %w", err))
		}
	}
	req, err := http.NewRequestWithContext(ctx, s.method, target.String(), nil)
	if err != nil {
		return nil, sinks.Permanent(fmt.Errorf("url: %w", err))
	}
	if err := s.writeBody(req, ev, view); err != nil {
		return nil, sinks.Permanent(err)
	}
	req.Header.Set("User-Agent", UserAgent)
	for _, h := range s.headers {
		v, err := h.value.Render(view)
		if err != nil {
			return nil, sinks.Permanent(fmt.Errorf("headers: %s: %w", h.name, err))
		}
		if !validHeaderValue(v) {
			return nil, sinks.Permanent(fmt.Errorf("headers: %s: the rendered value has a control character", h.name))
		}
		req.Header.Set(h.name, v)
	}
	req.Header.Set(IdempotencyKeyHeader, ev.ID())
	return req, nil
}

func (s *Sink) writeBody(req *http.Request, ev *event.Event, view *tmpl.View) error {
	if s.body != nil {
		b, err := s.body.Render(view)
		if err != nil {
			return fmt.Errorf("body: %w", err)
		}
		setBody(req, b)
		req.Header.Set("Content-Type", "application/json")
		return nil
	}
	if s.binary {
		if err := cehttp.WriteRequest(binding.WithForceBinary(context.Background()), binding.ToMessage(ev), req); err != nil {
			return fmt.Errorf("encoding the CloudEvent: %w", err)
		}
		return nil
	}
	// Structured: one JSON document, whatever bytes the payload holds.
	if err := cehttp.WriteRequest(binding.WithForceStructured(context.Background()), binding.ToMessage(sinks.ForJSONFormat(ev)), req); err != nil {
		return fmt.Errorf("encoding the CloudEvent: %w", err)
	}
	return nil
}

func setBody(req *http.Request, b []byte) {
	req.ContentLength = int64(len(b))
	req.Body = io.NopCloser(bytes.NewReader(b))
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
}

// Preview renders what Deliver would send for ev, with the values of
// credential headers hidden, for dry runs.
func (s *Sink) Preview(ev *event.Event) ([]byte, error) {
	req, err := s.NewRequest(context.Background(), ev)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	fmt.Fprintf(&out, "%s %s\n", req.Method, redact(req.URL))
	names := make([]string, 0, len(req.Header))
	for name := range req.Header {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		for _, v := range req.Header[name] {
			if sensitiveHeader(name) {
				v = "<hidden>"
			}
			fmt.Fprintf(&out, "%s: %s\n", name, v)
		}
	}
	if req.GetBody != nil {
		rc, err := req.GetBody()
		if err != nil {
			return nil, err
		}
		out.WriteByte('\n')
		_, _ = io.Copy(&out, rc)
		out.WriteByte('\n')
	}
	return out.Bytes(), nil
}

func sensitiveHeader(name string) bool {
	n := strings.ToLower(name)
	for _, word := range []string{"authorization", "cookie", "token", "secret", "key", "signature", "password"} {
		if strings.Contains(n, word) && n != "idempotency-key" {
			return true
		}
	}
	return false
}

// Close releases idle connections.
func (s *Sink) Close(context.Context) error {
	s.client.CloseIdleConnections()
	return nil
}

// readAnswer reads the start of a failed answer: up to sinks.AnswerLimit
// bytes as they came, for a dead-letter sink, and the first errorBodyLimit
// of them as printable text, for the error.
func readAnswer(body io.Reader) (raw []byte, text string, err error) {
	raw, err = io.ReadAll(io.LimitReader(body, sinks.AnswerLimit))
	return raw, answerText(raw[:min(len(raw), errorBodyLimit)]), err
}

// answerText is the start of an answer as printable text.
func answerText(b []byte) string {
	return strings.TrimSpace(strings.ToValidUTF8(string(b), string(utf8.RuneError)))
}

// drainAndClose reads what is left of an answer (up to drainLimit) so the
// connection goes back to the pool, then closes it.
func drainAndClose(body io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(body, drainLimit))
	_ = body.Close()
}

var (
	_ sinks.Sink   = (*Sink)(nil)
	_ sinks.Config = (*Config)(nil)
)
