package sources

import (
	"errors"
	"net/http"
	"net/netip"
	"net/url"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
)

// Request is an owned copy of one webhook request: nothing in it aliases the
// HTTP server's buffers.
type Request struct {
	Method     string
	Path       string
	Header     http.Header // canonical keys
	Query      url.Values
	Body       []byte
	RemoteIP   netip.Addr // the client, after trusted proxies
	ReceivedAt time.Time  // the clock sources use for tolerances
}

// Reply is an answer a source gives the provider instead of the default empty 200.
type Reply struct {
	Status      int
	ContentType string
	Body        []byte
	// RetryAfter, when positive, is sent as Retry-After in whole seconds.
	RetryAfter time.Duration
}

// Source verifies and converts one provider's webhooks.
type Source interface {
	// Verify checks that req comes from the provider. An error is answered
	// with 401; wrap one of the Err* reasons below so it can be counted.
	Verify(req *Request) error
	// Convert turns a verified request into one or more CloudEvents. An error
	// is answered with 400 and the raw body is kept as a dead letter. It may
	// leave Time zero (the receive time is used) and need not set the
	// bridgesource extension (the server sets it).
	Convert(req *Request) ([]*event.Event, error)
}

// Replier is implemented by sources whose provider expects a particular
// success answer (Hello Client's {"status":"success"}).
type Replier interface {
	SuccessReply() Reply
}

// Handshaker is implemented by sources whose provider verifies the endpoint
// with a request that carries no event (Socialboards' GET challenge). An
// error is answered with 401.
type Handshaker interface {
	// IsHandshake says whether req is a handshake rather than an event.
	IsHandshake(req *Request) bool
	Handshake(req *Request) (Reply, error)
	// HandshakeMethod is the HTTP method of the handshake, which the
	// listener lists in its Allow header beside POST.
	HandshakeMethod() string
}

// Signer is implemented by sources that can sign a payload as their provider
// would, so `bridge send` can exercise a real setup. Sign sets the headers or
// query parameters the provider sends with req.Body at req.ReceivedAt.
type Signer interface {
	Sign(req *Request) error
}

// HandshakeMaker is implemented by sources whose `bridge send` first performs
// the provider's handshake; it returns that request.
type HandshakeMaker interface {
	MakeHandshake(now time.Time) (*Request, error)
}

// Reasons a request fails verification. Sources wrap them with detail
// (fmt.Errorf("%w: ...", ErrSignatureMismatch)); metrics count by reason.
var (
	ErrMissingSignature   = errors.New("missing signature")
	ErrMalformedSignature = errors.New("malformed signature")
	ErrSignatureMismatch  = errors.New("signature does not match")
	ErrStaleTimestamp     = errors.New("timestamp outside tolerance")
	ErrBadKey             = errors.New("key missing or wrong")
	ErrMethodNotAllowed   = errors.New("method not allowed")
)

// Reasons lists every name Reason gives, so that a source's failure
// counters can be exported at 0 for each before the first failure.
func Reasons() []string {
	return []string{"missing_signature", "malformed_signature", "signature_mismatch", "stale_timestamp", "bad_key", "method_not_allowed", "other"}
}

// Reason names the verification failure err wraps, for metrics and logs:
// one of Reasons.
func Reason(err error) string {
	switch {
	case errors.Is(err, ErrMissingSignature):
		return "missing_signature"
	case errors.Is(err, ErrMalformedSignature):
		return "malformed_signature"
	case errors.Is(err, ErrSignatureMismatch):
		return "signature_mismatch"
	case errors.Is(err, ErrStaleTimestamp):
		return "stale_timestamp"
	case errors.Is(err, ErrBadKey):
		return "bad_key"
	case errors.Is(err, ErrMethodNotAllowed):
		return "method_not_allowed"
	}
	return "other"
}
