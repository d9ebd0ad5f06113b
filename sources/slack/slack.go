package slack

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"mime"
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
	if err := sources.CheckUnixSeconds(secs, req.ReceivedAt, s.tolerance); err != nil {
		return fmt.Errorf("%s: %w", TimestampHeader, err)
	}
	if !sources.SignedByAny(sig, s.keys, func(key []byte) []byte { return mac(key, stamp, req.Body) }) {
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

// Sign sets X-Slack-Request-Timestamp to req.ReceivedAt, X-Slack-Signature
// under the first secret, and the content type (JSON, or a form for a body
// that is not a JSON object), as Slack sends them.
func (s *Source) Sign(req *sources.Request) error {
	if req.Header == nil {
		req.Header = http.Header{}
	}
	// Events are JSON; interactivity requests and slash commands are forms.
	if looksLikeJSON(req.Body) {
		req.Header.Set("Content-Type", "application/json")
	} else {
		req.Header.Set("Content-Type", FormContentType)
	}
	stamp := strconv.FormatInt(req.ReceivedAt.Unix(), 10)
	req.Header.Set(TimestampHeader, stamp)
	req.Header.Set(SignatureHeader, version+"="+hex.EncodeToString(mac(s.keys[0], stamp, req.Body)))
	return nil
}

// looksLikeJSON reports whether body starts as a JSON object does.
func looksLikeJSON(body []byte) bool {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	return len(trimmed) > 0 && trimmed[0] == '{'
}

// HandshakeMethod is POST: Slack's URL verification is posted as its
// events are.
func (s *Source) HandshakeMethod() string { return http.MethodPost }

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
	if isForm(req) {
		return convertForm(req)
	}
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

// FormContentType is the content type of Slack's interactivity requests and
// slash commands.
const FormContentType = "application/x-www-form-urlencoded"

// isForm reports whether req is form-encoded, as interactivity requests and
// slash commands are.
func isForm(req *sources.Request) bool {
	mt, _, _ := mime.ParseMediaType(req.Header.Get("Content-Type"))
	return mt == FormContentType
}

// convertForm makes one CloudEvent of an interactivity request (its payload
// field holds the JSON) or of a slash command (its fields are the payload).
// Slack gives neither an id: a retry repeats the body, so its SHA-256 is the
// id.
func convertForm(req *sources.Request) ([]*event.Event, error) {
	form, err := url.ParseQuery(string(req.Body))
	if err != nil {
		return nil, fmt.Errorf("form-encoded request: %w", err)
	}
	id := sources.SHA256Hex(req.Body)
	if form.Has("payload") {
		data := []byte(form.Get("payload"))
		p, err := sources.DecodePicked(data, func(k string) bool {
			return k == "type" || k == "team" || k == "channel" || k == "message" || k == "user"
		})
		if err != nil {
			return nil, fmt.Errorf("interactivity request: the payload field: %w", err)
		}
		typ := "com.slack.interaction." + sources.TypeSuffix(sources.PathText(p, "type"))
		ev := sources.NewEvent(id, typ, workspace(sources.PathText(p, "team.id")),
			subject(sources.PathText(p, "channel.id"), sources.PathText(p, "message.ts"), sources.PathText(p, "user.id")),
			time.Time{}, data)
		return []*event.Event{ev}, nil
	}
	command := strings.TrimSpace(form.Get("command"))
	if command == "" {
		return nil, fmt.Errorf("a form-encoded request with neither a payload field (interactivity) nor a command field (slash command)")
	}
	fields := make(map[string]string, len(form))
	for k, v := range form {
		fields[k] = v[0]
	}
	data, err := json.Marshal(fields)
	if err != nil {
		return nil, fmt.Errorf("slash command: %w", err)
	}
	typ := "com.slack.command." + sources.TypeSuffix(strings.TrimPrefix(command, "/"))
	ev := sources.NewEvent(id, typ, workspace(strings.TrimSpace(form.Get("team_id"))),
		subject(strings.TrimSpace(form.Get("channel_id")), "", strings.TrimSpace(form.Get("user_id"))),
		time.Time{}, data)
	return []*event.Event{ev}, nil
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
	return workspace(sources.PathText(p, "team_id"))
}

// workspace is the source naming the workspace with team id team.
func workspace(team string) string {
	if team == "" {
		return "https://app.slack.com"
	}
	return SourcePrefix + url.PathEscape(team)
}

// subjectOf names what the event is about: a channel (and the message, by
// its ts, when there is one), else a user.
func subjectOf(p map[string]any) string {
	return subject(
		first(p, "event.channel", "event.channel.id", "event.item.channel", "event.channel_id"),
		first(p, "event.ts", "event.item.ts"),
		first(p, "event.user", "event.user.id", "event.user_id"))
}

// subject is channels/<channel>[/messages/<ts>], else users/<user>, else "".
func subject(channel, ts, user string) string {
	switch {
	case channel != "" && ts != "":
		return "channels/" + url.PathEscape(channel) + "/messages/" + url.PathEscape(ts)
	case channel != "":
		return "channels/" + url.PathEscape(channel)
	case user != "":
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
