package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"github.com/hookbridge/hookbridge/metrics"
	"github.com/hookbridge/hookbridge/sources"
)

// ExtBridgeSource is the extension naming the YAML source an event came through.
const ExtBridgeSource = "bridgesource"

// Endpoint is one configured source, served at its path.
type Endpoint struct {
	Name      string
	Source    sources.Source
	AllowIPs  []netip.Prefix // empty: any client
	BodyLimit int64          // bytes
}

// Table is the set of endpoints in force; it is swapped whole on reload.
type Table struct {
	Endpoints      map[string]*Endpoint // by path
	TrustedProxies []netip.Prefix
}

// Ingester durably queues converted events.
type Ingester interface {
	// Ingest returns only once every event is durably queued (or was a
	// duplicate); an error means nothing can be promised and is answered 503.
	Ingest(ctx context.Context, source string, evs []*event.Event) error
	// Reject keeps the raw body of a verified request that could not be
	// converted, so nothing a provider sent is lost.
	Reject(source string, raw []byte, reason string) error
}

// Options are the `server` keys the listener needs.
type Options struct {
	BodyLimit    int64 // the largest body any endpoint accepts
	ReadTimeout  time.Duration
	WriteTimeout time.Duration
	IdleTimeout  time.Duration
	// TLS, when not nil, makes the listener serve HTTPS only.
	TLS *tls.Config
}

// Server is the webhook listener.
type Server struct {
	app   *fiber.App
	table atomic.Pointer[Table]
	ing   Ingester
	log   *slog.Logger
	m     *metrics.Metrics
	now   func() time.Time
	conns connTracker
	tls   *tls.Config
}

// New makes the listener; Serve starts it.
func New(opts Options, ing Ingester, log *slog.Logger, m *metrics.Metrics) *Server {
	s := &Server{ing: ing, log: log, m: m, now: time.Now, tls: opts.TLS}
	s.table.Store(&Table{Endpoints: map[string]*Endpoint{}})
	s.app = fiber.New(fiber.Config{
		BodyLimit:             int(readLimit(opts.BodyLimit)),
		ReadTimeout:           opts.ReadTimeout,
		WriteTimeout:          opts.WriteTimeout,
		IdleTimeout:           opts.IdleTimeout,
		DisableStartupMessage: true,
		ErrorHandler:          s.errorHandler,
		// The request line and headers must fit in it (fasthttp answers
		// 431 past it). Fiber's 4 KiB is less than a provider's long
		// signature headers plus what load balancers and tracing add.
		ReadBufferSize: readBufferSize,
		// A multipart Content-Type is the sender's word, not a reason to
		// parse the body before it is verified (a body that is not
		// multipart would be refused unread, and not kept).
		DisablePreParseMultipartForm: true,
	})
	s.app.Use(s.handle)
	return s
}

// readBufferSize bounds a request's line and headers together, as
// nginx's large_client_header_buffers (8 KiB each) and Go's net/http
// (1 MiB) do; 16 KiB takes every provider's headers with room to spare.
const readBufferSize = 16 << 10

// readLimit is how much of a body the listener reads before it gives up on
// the request. fasthttp refuses a body over its limit without reading it and
// closes the connection, so a client still sending it gets a reset instead of
// the 413. Reading somewhat more than any source accepts (as net/http's
// server does) lets Handle answer an oversize body with a clean 413; only a
// body far over every limit is cut off.
func readLimit(bodyLimit int64) int64 {
	if bodyLimit <= 0 {
		return 0 // Fiber's default
	}
	return bodyLimit + max(bodyLimit, 256<<10)
}

// SetTable swaps the endpoints in force; requests under way finish with the old ones.
func (s *Server) SetTable(t *Table) { s.table.Store(t) }

// Serve serves on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	// Under TLS the tracker sees the connections above it: a client that
	// completed its handshake (Go's HTTP transport does as it dials) and
	// sent no request is as silent as one that sent nothing.
	if s.tls != nil {
		ln = tls.NewListener(ln, s.tls)
	}
	return s.app.Listener(&trackingListener{Listener: ln, t: &s.conns})
}

// Shutdown stops accepting and waits for requests under way until ctx ends.
// Connections idle between requests are closed at once, and those whose
// client has sent nothing once they are silentConnGrace old.
func (s *Server) Shutdown(ctx context.Context) error {
	done := make(chan error, 1)
	go func() { done <- s.app.ShutdownWithContext(ctx) }()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			return err
		case <-tick.C:
			s.conns.closeSilent(time.Now().Add(-silentConnGrace))
		}
	}
}

func (s *Server) errorHandler(c *fiber.Ctx, err error) error {
	code := http.StatusInternalServerError
	var fe *fiber.Error
	if errors.As(err, &fe) {
		code = fe.Code
	}
	switch {
	case silent(c.Context().Conn()):
		// No request began: a connection opened and left unused until
		// the read timeout, or closed by Shutdown.
		s.log.Debug("connection closed before any request", "remote", remoteAddr(c), "err", err)
	case code == http.StatusRequestEntityTooLarge:
		s.log.Warn("rejected webhook: body over the server's limit", "path", c.Path(), "remote", remoteAddr(c), "status", code,
			"read_limit", s.app.Config().BodyLimit)
		s.m.Requests.WithLabelValues("", strconv.Itoa(code)).Inc()
	default:
		// A request fasthttp could not read (headers too large, a body
		// that stopped coming): its path is not known.
		s.log.Warn("rejected request", "status", code, "remote", remoteAddr(c), "err", readError(err))
		s.m.Requests.WithLabelValues("", strconv.Itoa(code)).Inc()
	}
	return c.Status(code).SendString(http.StatusText(code))
}

// handle copies the request out of fasthttp's reused buffers and answers it.
func (s *Server) handle(c *fiber.Ctx) error {
	received := s.now()
	t := s.table.Load()
	path := c.Path()
	ep := t.Endpoints[path]
	if ep == nil {
		ep = t.Endpoints[strings.TrimSuffix(path, "/")]
	}
	if ep == nil {
		// Most often a provider given the wrong URL: say so where the
		// operator looks.
		s.log.Warn("rejected request: no webhook source at this path", "path", path, "method", c.Method(), "remote", remoteAddr(c), "status", 404)
		s.m.Requests.WithLabelValues("", "404").Inc()
		return c.Status(http.StatusNotFound).SendString("no webhook source at this path")
	}
	remote := remoteAddr(c)
	req := &sources.Request{
		Method: c.Method(),
		Path:   path,
		Header: copyHeader(&c.Request().Header),
		// As sent: Handle undoes a Content-Encoding itself, within the
		// source's limit (Fiber's Body would inflate it without one).
		Body:       append([]byte(nil), c.Request().Body()...),
		ReceivedAt: received,
	}
	req.RemoteIP = ClientIP(remote, forwardedFor(req.Header), t.TrustedProxies)
	if args := c.Request().URI().QueryArgs(); args.Len() > 0 {
		req.Query = make(url.Values, args.Len())
		args.VisitAll(func(k, v []byte) {
			req.Query.Add(string(k), string(v))
		})
	}
	reply := s.Handle(c.UserContext(), ep, req)
	s.m.Requests.WithLabelValues(ep.Name, strconv.Itoa(reply.Status)).Inc()
	s.m.RequestDuration.WithLabelValues(ep.Name).Observe(time.Since(received).Seconds())
	if reply.ContentType != "" {
		c.Set(fiber.HeaderContentType, reply.ContentType)
	}
	if reply.RetryAfter > 0 {
		c.Set(fiber.HeaderRetryAfter, strconv.Itoa(int(math.Ceil(reply.RetryAfter.Seconds()))))
	}
	switch reply.Status {
	case http.StatusMethodNotAllowed:
		allow := http.MethodPost
		if hs, ok := ep.Source.(sources.Handshaker); ok && hs.HandshakeMethod() != http.MethodPost {
			allow = hs.HandshakeMethod() + ", " + http.MethodPost
		}
		c.Set(fiber.HeaderAllow, allow)
	case http.StatusUnsupportedMediaType:
		c.Set(fiber.HeaderAcceptEncoding, SupportedEncodings)
	}
	return c.Status(reply.Status).Send(reply.Body)
}

// RetryAfterUnqueued is the Retry-After of a 503 for a request whose events
// could not be queued: long enough for a load balancer that polls /readyz
// to send the provider's retry to another replica, short enough for a
// passing storage fault.
const RetryAfterUnqueued = 10 * time.Second

// unavailable is the 503 asking the provider to retry.
func unavailable(msg string) sources.Reply {
	r := text(http.StatusServiceUnavailable, msg)
	r.RetryAfter = RetryAfterUnqueued
	return r
}

// copyHeader copies fasthttp's reused header buffers into an http.Header
// with two allocations for all the bytes and one for all the values: the
// names and values are laid end to end in one string and sliced from it.
// fasthttp has already put the names in canonical form.
func copyHeader(h *fasthttp.RequestHeader) http.Header {
	n, size := 0, 0
	h.VisitAll(func(k, v []byte) {
		n++
		size += len(k) + len(v)
	})
	buf := make([]byte, 0, size)
	h.VisitAll(func(k, v []byte) {
		buf = append(append(buf, k...), v...)
	})
	all := string(buf)
	out := make(http.Header, n)
	values := make([]string, n)
	i, off := 0, 0
	h.VisitAll(func(k, v []byte) {
		key := all[off : off+len(k)]
		values[i] = all[off+len(k) : off+len(k)+len(v)]
		off += len(k) + len(v)
		if prev, ok := out[key]; ok {
			out[key] = append(prev, values[i])
		} else {
			out[key] = values[i : i+1 : i+1]
		}
		i++
	})
	return out
}

func remoteAddr(c *fiber.Ctx) netip.Addr {
	ip := c.Context().RemoteIP()
	if a, ok := netip.AddrFromSlice(ip); ok {
		return a.Unmap()
	}
	return netip.Addr{}
}

// ReasonIPNotAllowed is the verification failure of a request from an
// address not in the source's allow_ips, which the listener checks before
// the source sees the request.
const ReasonIPNotAllowed = "ip_not_allowed"

// VerificationReasons lists every reason
// hookbridge_verification_failures_total counts a source's failures under:
// the source's (sources.Reasons) and the listener's own.
func VerificationReasons() []string {
	return append(sources.Reasons(), ReasonIPNotAllowed)
}

func text(status int, msg string) sources.Reply {
	return sources.Reply{Status: status, ContentType: "text/plain; charset=utf-8", Body: []byte(msg)}
}

// Handle answers one webhook request for ep. It is the whole of the
// listener's logic, apart from copying the request out of Fiber.
func (s *Server) Handle(ctx context.Context, ep *Endpoint, req *sources.Request) sources.Reply {
	// Only requests that are turned away or fail are logged: the logger
	// with the request's attributes is made then, not for every request.
	log := func() *slog.Logger { return s.log.With("source", ep.Name, "remote", req.RemoteIP.String()) }
	if len(ep.AllowIPs) > 0 && !contains(ep.AllowIPs, req.RemoteIP) {
		log().Warn("rejected webhook: client IP not in allow_ips", "status", 403)
		s.m.VerificationFailures.WithLabelValues(ep.Name, ReasonIPNotAllowed).Inc()
		return text(http.StatusForbidden, "client address not allowed")
	}
	if ep.BodyLimit > 0 && int64(len(req.Body)) > ep.BodyLimit {
		log().Warn("rejected webhook: body over the source's limit", "status", 413, "bytes", len(req.Body), "limit", ep.BodyLimit)
		return text(http.StatusRequestEntityTooLarge, "body too large")
	}
	if len(contentCodings(req.Header)) > 0 {
		if reply, ok := s.decode(ep, req, log); !ok {
			return reply
		}
	}
	if hs, ok := ep.Source.(sources.Handshaker); ok && hs.IsHandshake(req) {
		reply, err := hs.Handshake(req)
		if err != nil {
			log().Warn("rejected handshake", "status", 401, "reason", sources.Reason(err), "err", err)
			s.m.VerificationFailures.WithLabelValues(ep.Name, sources.Reason(err)).Inc()
			return text(http.StatusUnauthorized, "handshake rejected")
		}
		log().Info("answered the provider's handshake")
		if reply.Status == 0 {
			reply.Status = http.StatusOK
		}
		return reply
	}
	if req.Method != http.MethodPost {
		log().Warn("rejected webhook: method not allowed", "status", 405, "method", req.Method)
		return text(http.StatusMethodNotAllowed, "webhooks are POSTed")
	}
	if err := ep.Source.Verify(req); err != nil {
		log().Warn("rejected webhook: not authentic", "status", 401, "reason", sources.Reason(err), "err", err)
		s.m.VerificationFailures.WithLabelValues(ep.Name, sources.Reason(err)).Inc()
		if errors.Is(err, sources.ErrBadKey) {
			return text(http.StatusUnauthorized, "key not accepted")
		}
		return text(http.StatusUnauthorized, "signature verification failed")
	}
	evs, err := ep.Source.Convert(req)
	if err != nil {
		log().Warn("rejected webhook: verified but not convertible; raw body kept as a dead letter", "status", 400, "err", err)
		if rerr := s.ing.Reject(ep.Name, req.Body, err.Error()); rerr != nil {
			log().Error("could not keep the rejected body; asking the provider to retry", "err", rerr)
			return unavailable("could not store the request")
		}
		return text(http.StatusBadRequest, fmt.Sprintf("payload not understood: %v", err))
	}
	for _, ev := range evs {
		if ev.Time().IsZero() {
			ev.SetTime(req.ReceivedAt.UTC())
		}
		ev.SetExtension(ExtBridgeSource, ep.Name)
	}
	if err := s.ing.Ingest(ctx, ep.Name, evs); err != nil {
		log().Error("could not queue events; answering 503 so the provider retries", "status", 503, "err", err)
		return unavailable("could not queue the event, retry later")
	}
	if r, ok := ep.Source.(sources.Replier); ok {
		reply := r.SuccessReply()
		if reply.Status == 0 {
			reply.Status = http.StatusOK
		}
		return reply
	}
	return sources.Reply{Status: http.StatusOK}
}

// decode replaces req.Body with its decoded form (decodeBody), or says
// what to answer when it cannot be: 415 for a coding the listener does not
// undo, 413 past the source's limit, 400 for a body that is not what its
// Content-Encoding says. Such a body is not kept: it was never verified.
func (s *Server) decode(ep *Endpoint, req *sources.Request, log func() *slog.Logger) (sources.Reply, bool) {
	limit := ep.BodyLimit
	if limit <= 0 {
		limit = defaultDecodeLimit
	}
	body, err := decodeBody(req.Header, req.Body, limit)
	switch {
	case err == nil:
		req.Body = body
		req.Header.Del("Content-Encoding")
		return sources.Reply{}, true
	case errors.Is(err, errUnsupportedEncoding):
		log().Warn("rejected webhook: Content-Encoding not supported", "status", 415, "err", err)
		return text(http.StatusUnsupportedMediaType, fmt.Sprintf("Content-Encoding not supported; use one of %s or none", SupportedEncodings)), false
	case errors.Is(err, errDecodedTooLarge):
		log().Warn("rejected webhook: decoded body over the source's limit", "status", 413, "bytes", len(req.Body), "limit", limit, "err", err)
		return text(http.StatusRequestEntityTooLarge, "body too large once decoded"), false
	default:
		log().Warn("rejected webhook: body does not decode as its Content-Encoding says", "status", 400, "content_encoding", req.Header.Get("Content-Encoding"), "err", err)
		return text(http.StatusBadRequest, fmt.Sprintf("body does not decode as its Content-Encoding says: %v", err)), false
	}
}

// defaultDecodeLimit bounds a decoded body for an endpoint without a limit.
const defaultDecodeLimit = 1 << 20

// readError is what is logged of a request fasthttp could not read:
// its own words, without the request's bytes it quotes (a request line
// with a ?key=, signature headers), which may hold secrets.
func readError(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, ". Buffer size="); i >= 0 {
		msg = msg[:i]
	}
	if i := strings.IndexAny(msg, "\"'"); i >= 0 {
		msg = strings.TrimRight(msg[:i], " :.=") + " (the request's text is not logged)"
	}
	return msg
}

func contains(prefixes []netip.Prefix, a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	for _, p := range prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// forwardedFor is the request's X-Forwarded-For list: several header lines
// are one list, in their order (RFC 9110, 5.3). Reading only the first
// line would let a client's forged line pass for the proxy's, behind a
// proxy that adds a line of its own rather than appending to the client's.
func forwardedFor(h http.Header) string {
	lines := h.Values(fiber.HeaderXForwardedFor)
	if len(lines) == 1 {
		return lines[0]
	}
	return strings.Join(lines, ",")
}

// ClientIP is the address of the client: the connection's peer, or, when
// the peer is a trusted proxy, the right-most X-Forwarded-For entry that is
// not itself a trusted proxy.
func ClientIP(remote netip.Addr, xff string, trusted []netip.Prefix) netip.Addr {
	if xff == "" || !contains(trusted, remote) {
		return remote
	}
	client := remote
	hops := strings.Split(xff, ",")
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return client
		}
		a = a.Unmap()
		client = a
		if !contains(trusted, a) {
			return a
		}
	}
	return client
}
