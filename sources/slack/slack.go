package slack

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/hookbridge/hookbridge/sources"
)

// The headers Slack sends with every request.
const (
	SignatureHeader   = "X-Slack-Signature"
	TimestampHeader   = "X-Slack-Request-Timestamp"
	RetryNumHeader    = "X-Slack-Retry-Num"
	RetryReasonHeader = "X-Slack-Retry-Reason"
)

// version is the signature scheme Slack uses: it starts the signed base
// string and the signature header.
const version = "v0"

// TypeURLVerification is the top-level type of the request with which Slack
// checks a new Request URL.
const TypeURLVerification = "url_verification"

// TypeEventCallback is the top-level type of a request carrying an event.
const TypeEventCallback = "event_callback"

// SourcePrefix starts each event's source; the workspace's team id follows.
const SourcePrefix = "https://app.slack.com/client/"

// Source verifies and converts Slack Events API requests.
type Source struct {
	keys      [][]byte
	tolerance time.Duration
}

// Verify checks X-Slack-Signature, "v0=" and the hex HMAC-SHA256 of
// "v0:<X-Slack-Request-Timestamp>:<body>", under every configured secret,
// and that the timestamp is within the tolerance of the receive time.
func (s *Source) Verify(req *sources.Request) error {
	header := strings.TrimSpace(req.Header.Get(SignatureHeader))
	if header == "" {
		return fmt.Errorf("%w: no %s header (is the request from Slack?)", sources.ErrMissingSignature, SignatureHeader)
	}
	sig, ok := strings.CutPrefix(header, version+"=")
	if !ok || !sources.IsHexDigest(sig, sha256.Size) {
		return fmt.Errorf("%w: %s is not %s=<64 hex digits>", sources.ErrMalformedSignature, SignatureHeader, version)
	}
	stamp := strings.TrimSpace(req.Header.Get(TimestampHeader))
	if stamp == "" {
		return fmt.Errorf("%w: no %s header, which the signature covers", sources.ErrMalformedSignature, TimestampHeader)
	}
	secs, ok := sources.ParseDigits(stamp)
	if !ok || secs > maxUnix {
		return fmt.Errorf("%w: %s is not a unix time in seconds", sources.ErrMalformedSignature, TimestampHeader)
	}
	if err := sources.CheckTimestamp(time.Unix(secs, 0), req.ReceivedAt, s.tolerance); err != nil {
		return fmt.Errorf("%s: %w", TimestampHeader, err)
	}
	match := false
	for _, key := range s.keys {
		// Check every key so timing does not depend on which matched.
		if sources.EqualHex(sig, mac(key, stamp, req.Body)) {
			match = true
		}
	}
	if !match {
		return fmt.Errorf("%w: %s is not the HMAC-SHA256 of v0:<timestamp>:<body> under a configured secret", sources.ErrSignatureMismatch, SignatureHeader)
	}
	return nil
}

// maxUnix is 9999-12-31T23:59:59Z.
const maxUnix = 253402300799

// mac is Slack's signature of body sent at stamp.
func mac(key []byte, stamp string, body []byte) []byte {
	return sources.HMAC(sha256.New, key, []byte(version+":"+stamp+":"), body)
}

// Sign sets X-Slack-Request-Timestamp to req.ReceivedAt and
// X-Slack-Signature under the first secret, as Slack sends them.
func (s *Source) Sign(req *sources.Request) error {
	if req.Header == nil {
		req.Header = http.Header{}
	}
	if req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	stamp := strconv.FormatInt(req.ReceivedAt.Unix(), 10)
	req.Header.Set(TimestampHeader, stamp)
	req.Header.Set(SignatureHeader, version+"="+hex.EncodeToString(mac(s.keys[0], stamp, req.Body)))
	return nil
}

// IsHandshake reports whether req is Slack's URL verification: a POST whose
// JSON type is url_verification.
func (s *Source) IsHandshake(req *sources.Request) bool {
	// Most requests are events: the body is decoded only when the name can
	// be in it (Slack does not escape ASCII letters in its JSON).
	if req.Method != http.MethodPost || !bytes.Contains(req.Body, []byte(TypeURLVerification)) {
		return false
	}
	top, err := sources.DecodePicked(req.Body, func(k string) bool { return k == "type" })
	return err == nil && sources.String(top, "type") == TypeURLVerification
}

// Handshake verifies the URL verification request as any other and answers
// it with its challenge, as plain text. It is not an event.
func (s *Source) Handshake(req *sources.Request) (sources.Reply, error) {
	if err := s.Verify(req); err != nil {
		return sources.Reply{}, err
	}
	top, err := sources.DecodePicked(req.Body, func(k string) bool { return k == "challenge" })
	challenge, _ := top["challenge"].(string)
	if err != nil || challenge == "" {
		return sources.Reply{
			Status:      http.StatusBadRequest,
			ContentType: "text/plain; charset=utf-8",
			Body:        []byte("url_verification without a challenge"),
		}, nil
	}
	return sources.Reply{Status: http.StatusOK, ContentType: "text/plain; charset=utf-8", Body: []byte(challenge)}, nil
}

// Convert makes one CloudEvent of the request.
func (s *Source) Convert(req *sources.Request) ([]*event.Event, error) {
	p, err := sources.DecodePicked(req.Body, readsKey)
	if err != nil {
		return nil, err
	}
	top := sources.String(p, "type")
	var typ, subject string
	if top == TypeEventCallback {
		typ = "com.slack." + sources.TypeSuffix(sources.PathText(p, "event.type"))
		if sub := sources.PathText(p, "event.subtype"); sub != "" {
			typ += "." + sources.TypeSuffix(sub)
		}
		subject = subjectOf(p)
	} else {
		typ = "com.slack." + sources.TypeSuffix(top)
	}
	id := sources.PathText(p, "event_id")
	if id == "" {
		// A retry repeats the body byte for byte.
		id = sources.SHA256Hex(req.Body)
	}
	t, _ := sources.ParseTime(p["event_time"]) // zero without one: the receive time
	return []*event.Event{sources.NewEvent(id, typ, sourceOf(p), subject, t, req.Body)}, nil
}

// readsKey reports whether Convert reads the payload's top-level key.
func readsKey(key string) bool {
	switch key {
	case "type", "event_id", "event_time", "team_id", "event":
		return true
	}
	return false
}

// sourceOf names the workspace the event happened in.
func sourceOf(p map[string]any) string {
	team := sources.PathText(p, "team_id")
	if team == "" {
		return "https://app.slack.com"
	}
	return SourcePrefix + url.PathEscape(team)
}

// subjectOf names what the event is about: a channel (and the message, by
// its ts, when there is one), else a user.
func subjectOf(p map[string]any) string {
	channel := first(p, "event.channel", "event.channel.id", "event.item.channel", "event.channel_id")
	if channel != "" {
		s := "channels/" + url.PathEscape(channel)
		if ts := first(p, "event.ts", "event.item.ts"); ts != "" {
			s += "/messages/" + url.PathEscape(ts)
		}
		return s
	}
	if user := first(p, "event.user", "event.user.id", "event.user_id"); user != "" {
		return "users/" + url.PathEscape(user)
	}
	return ""
}

// first is the first of paths with a text value in p.
func first(p map[string]any, paths ...string) string {
	for _, path := range paths {
		if v := sources.PathText(p, path); v != "" {
			return v
		}
	}
	return ""
}

// Interface guards.
var (
	_ sources.Source     = (*Source)(nil)
	_ sources.Signer     = (*Source)(nil)
	_ sources.Handshaker = (*Source)(nil)
	_ sources.Config     = (*Config)(nil)
)
