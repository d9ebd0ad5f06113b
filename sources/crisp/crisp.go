package crisp

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/hookbridge/hookbridge/sources"
)

// Where Crisp puts its credentials.
const (
	SignatureHeader = "X-Crisp-Signature"
	TimestampHeader = "X-Crisp-Request-Timestamp"
	KeyParam        = "key"
)

// signatureLen is the length of a hex HMAC-SHA256.
const signatureLen = 2 * sha256.Size

// Source verifies and converts Crisp web hooks.
type Source struct {
	key       string // website hooks; empty: not accepted
	secret    []byte // plugin hooks; empty: not accepted
	tolerance time.Duration
}

// Verify accepts a website hook whose key query parameter matches key, or a
// plugin hook whose X-Crisp-Signature is right, whichever is configured.
func (s *Source) Verify(req *sources.Request) error {
	if req.Method != http.MethodPost {
		return fmt.Errorf("%w: %s (Crisp POSTs its web hooks)", sources.ErrMethodNotAllowed, req.Method)
	}
	var keyErr, sigErr error
	if s.key != "" {
		if keyErr = s.verifyKey(req); keyErr == nil {
			return nil
		}
	}
	if len(s.secret) == 0 {
		return keyErr
	}
	if sigErr = s.verifySignature(req); sigErr == nil {
		return nil
	}
	if keyErr == nil || !errors.Is(sigErr, sources.ErrMissingSignature) {
		return sigErr // the signature was offered: its fault is the one to report
	}
	if req.Query.Get(KeyParam) != "" {
		return keyErr // a key was offered, and no signature
	}
	return fmt.Errorf("%w: neither a %s query parameter nor a %s header", sources.ErrMissingSignature, KeyParam, SignatureHeader)
}

func (s *Source) verifyKey(req *sources.Request) error {
	got := req.Query.Get(KeyParam)
	if got == "" {
		return fmt.Errorf("%w: no %s query parameter", sources.ErrBadKey, KeyParam)
	}
	if !sources.EqualSecret(got, s.key) {
		return fmt.Errorf("%w: the %s query parameter does not match", sources.ErrBadKey, KeyParam)
	}
	return nil
}

func (s *Source) verifySignature(req *sources.Request) error {
	sig := strings.TrimSpace(req.Header.Get(SignatureHeader))
	if sig == "" {
		return fmt.Errorf("%w: no %s header", sources.ErrMissingSignature, SignatureHeader)
	}
	stamp := strings.TrimSpace(req.Header.Get(TimestampHeader))
	ts, err := ParseTimestamp(stamp)
	if err != nil {
		return err
	}
	if !sources.IsHexDigest(sig, sha256.Size) {
		return fmt.Errorf("%w: %s must be %d hex characters (HMAC-SHA256), got %d characters", sources.ErrMalformedSignature, SignatureHeader, signatureLen, len(sig))
	}
	if err := sources.CheckTimestamp(ts, req.ReceivedAt, s.tolerance); err != nil {
		return fmt.Errorf("%s %s: %w", TimestampHeader, stamp, err)
	}
	if sources.EqualHex(sig, s.mac(stamp, req.Body)) {
		return nil
	}
	for _, form := range sources.OtherJSONForms(req.Body) {
		if sources.EqualHex(sig, s.mac(stamp, form)) {
			return nil
		}
	}
	return fmt.Errorf("%w: %s is not the HMAC-SHA256 of [timestamp;body]", sources.ErrSignatureMismatch, SignatureHeader)
}

// mac is Crisp's signature: HMAC-SHA256 of "[<timestamp>;<body>]".
func (s *Source) mac(stamp string, body []byte) []byte {
	return sources.HMAC(sha256.New, s.secret, []byte("["+stamp+";"), body, []byte("]"))
}

// secondsBelow: a header value under this is unix seconds, anything from
// it up is milliseconds (10^12 ms is September 2001, 10^12 s is year 33658).
const secondsBelow = 1e12

// maxMillis is 9999-12-31T23:59:59.999Z.
const maxMillis = 253402300799999

// ParseTimestamp reads X-Crisp-Request-Timestamp: a positive integer, unix
// milliseconds as Crisp's payload timestamps are, or unix seconds.
func ParseTimestamp(stamp string) (time.Time, error) {
	if stamp == "" {
		return time.Time{}, fmt.Errorf("%w: no %s header", sources.ErrMalformedSignature, TimestampHeader)
	}
	n, ok := sources.ParseDigits(stamp)
	if !ok || n > maxMillis {
		return time.Time{}, fmt.Errorf("%w: %s is not a unix time", sources.ErrMalformedSignature, TimestampHeader)
	}
	if n < secondsBelow {
		return time.Unix(n, 0), nil
	}
	return time.UnixMilli(n), nil
}

// Sign sets what Crisp would send with req.Body at req.ReceivedAt: the key
// query parameter of a website hook when key is set, and the plugin hook
// headers (a millisecond timestamp and its signature) when secret is set.
func (s *Source) Sign(req *sources.Request) error {
	if req.Header == nil {
		req.Header = http.Header{}
	}
	if req.Query == nil {
		req.Query = url.Values{}
	}
	if s.key != "" {
		req.Query.Set(KeyParam, s.key)
	}
	if len(s.secret) > 0 {
		stamp := strconv.FormatInt(req.ReceivedAt.UnixMilli(), 10)
		req.Header.Set(TimestampHeader, stamp)
		req.Header.Set(SignatureHeader, hex.EncodeToString(s.mac(stamp, req.Body)))
	}
	req.Header.Set("Content-Type", "application/json")
	return nil
}

// Convert makes one CloudEvent of a web hook envelope.
func (s *Source) Convert(req *sources.Request) ([]*event.Event, error) {
	var envelope map[string]any
	if err := sources.DecodeObject(req.Body, &envelope); err != nil {
		return nil, err
	}
	name := text(envelope, "event")
	data, _ := envelope["data"].(map[string]any)
	website := text(envelope, "website_id")
	if website == "" {
		website = text(data, "website_id")
	}
	session := text(data, "session_id")

	id := sources.SHA256Hex(req.Body)
	if fingerprint := text(data, "fingerprint"); fingerprint != "" && website != "" && session != "" && isMessageIdentity(name) {
		id = website + ":" + session + ":" + name + ":" + fingerprint
	}
	t, ok := millis(envelope["timestamp"])
	if !ok {
		t, _ = millis(data["timestamp"])
	}
	if website == "" {
		website = "unknown"
	}
	subject := ""
	if session != "" {
		subject = "sessions/" + session
	}
	ev := sources.NewEvent(id, "chat.crisp."+sources.TypeSuffix(name),
		"https://app.crisp.chat/website/"+url.PathEscape(website), subject, t, req.Body)
	return []*event.Event{ev}, nil
}

// isMessageIdentity reports whether a message event happens once per
// message, so that the message's fingerprint identifies it. An edit
// (message:updated) can happen many times to one message.
func isMessageIdentity(name string) bool {
	return strings.HasPrefix(name, "message:") && name != "message:updated"
}

// millis reads a Crisp timestamp: unix milliseconds.
func millis(v any) (time.Time, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return time.Time{}, false
	}
	ms, err := strconv.ParseInt(n.String(), 10, 64)
	if err != nil || ms <= 0 || ms > maxMillis {
		return time.Time{}, false
	}
	return time.UnixMilli(ms).UTC(), true
}

// text is m[key] as trimmed text (strings, and numbers in their JSON spelling).
func text(m map[string]any, key string) string {
	return strings.TrimSpace(sources.String(m, key))
}
