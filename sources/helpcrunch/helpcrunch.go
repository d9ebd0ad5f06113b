package helpcrunch

import (
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/hookbridge/hookbridge/sources"
)

// SignatureHeader carries HelpCrunch's request signature.
const SignatureHeader = "X-HelpCrunch-Signature"

// signatureLen is the length of a hex HMAC-SHA1.
const signatureLen = 2 * sha1.Size

// Source verifies and converts HelpCrunch webhooks.
type Source struct {
	secret  []byte
	account string
}

// Verify checks X-HelpCrunch-Signature: the hex HMAC-SHA1 of the raw body.
func (s *Source) Verify(req *sources.Request) error {
	if req.Method != http.MethodPost {
		return fmt.Errorf("%w: %s (HelpCrunch POSTs its webhooks)", sources.ErrMethodNotAllowed, req.Method)
	}
	sig := strings.TrimSpace(req.Header.Get(SignatureHeader))
	if sig == "" {
		return fmt.Errorf("%w: no %s header", sources.ErrMissingSignature, SignatureHeader)
	}
	if !sources.IsHexDigest(sig, sha1.Size) {
		return fmt.Errorf("%w: %s must be %d hex characters (HMAC-SHA1), got %d characters", sources.ErrMalformedSignature, SignatureHeader, signatureLen, len(sig))
	}
	if !sources.EqualHex(sig, sources.HMAC(sha1.New, s.secret, req.Body)) {
		return fmt.Errorf("%w: %s is not the HMAC-SHA1 of the body", sources.ErrSignatureMismatch, SignatureHeader)
	}
	return nil
}

// Sign sets X-HelpCrunch-Signature as HelpCrunch would for req.Body.
func (s *Source) Sign(req *sources.Request) error {
	if req.Header == nil {
		req.Header = http.Header{}
	}
	req.Header.Set(SignatureHeader, hex.EncodeToString(sources.HMAC(sha1.New, s.secret, req.Body)))
	req.Header.Set("Content-Type", "application/json")
	return nil
}

// Convert makes one CloudEvent of a webhook envelope.
func (s *Source) Convert(req *sources.Request) ([]*event.Event, error) {
	var envelope map[string]any
	if err := sources.DecodeObject(req.Body, &envelope); err != nil {
		return nil, err
	}
	name := strings.TrimSpace(sources.String(envelope, "event"))
	data, _ := envelope["eventData"].(map[string]any)
	id, err := eventID(envelope, name, data)
	if err != nil {
		return nil, err
	}
	ev := sources.NewEvent(
		id,
		"com.helpcrunch."+sources.TypeSuffix(name),
		s.account,
		subject(name, data),
		eventTime(envelope, name, data),
		req.Body,
	)
	return []*event.Event{ev}, nil
}

// eventID is the envelope's id, which HelpCrunch keeps across the retries
// of one event. Without one it is the SHA-256 of what a retry does not
// change: the event name, createdAt and eventData (attempts and
// lastAttemptAt are left out).
func eventID(envelope map[string]any, name string, data map[string]any) (string, error) {
	if id := strings.TrimSpace(sources.String(envelope, "id")); id != "" {
		return id, nil
	}
	stable, err := json.Marshal(map[string]any{ // map keys marshal sorted: stable bytes
		"event":     name,
		"createdAt": envelope["createdAt"],
		"eventData": envelope["eventData"],
	})
	if err != nil {
		return "", fmt.Errorf("%w: %v", sources.ErrNotJSON, err)
	}
	return sources.SHA256Hex(stable), nil
}

// subject names the object the event is about, by the first part of the
// event name: chats/<id>, customers/<id> or chats/<chat_id>/messages/<id>.
func subject(name string, data map[string]any) string {
	kind, _, _ := strings.Cut(name, ".")
	switch kind {
	case "chat":
		if id := firstOf(data, "id", "chat_id", "chatId"); id != "" {
			return "chats/" + id
		}
		if id := nested(data, "chat", "id"); id != "" {
			return "chats/" + id
		}
	case "customer":
		if id := firstOf(data, "id"); id != "" {
			return "customers/" + id
		}
	case "message":
		chat := firstOf(data, "chat_id", "chatId")
		if chat == "" {
			chat = nested(data, "chat", "id")
		}
		msg := nested(data, "message", "id")
		switch {
		case chat != "" && msg != "":
			return "chats/" + chat + "/messages/" + msg
		case chat != "":
			return "chats/" + chat
		}
	}
	return ""
}

// eventTime is the envelope's createdAt (unix seconds); a message event
// without one falls back to the message's own createdAt.
func eventTime(envelope map[string]any, name string, data map[string]any) time.Time {
	if t, ok := unixSeconds(envelope["createdAt"]); ok {
		return t
	}
	if strings.HasPrefix(name, "message.") {
		if msg, ok := data["message"].(map[string]any); ok {
			if t, ok := unixSeconds(msg["createdAt"]); ok {
				return t
			}
		}
	}
	return time.Time{}
}

// maxUnix is 9999-12-31T23:59:59Z: later times have no RFC 3339 spelling.
const maxUnix = 253402300799

// unixSeconds reads HelpCrunch's timestamps: unix seconds as a number
// (1638953588) or as a string with a fraction ("1638953586.915").
func unixSeconds(v any) (time.Time, bool) {
	var s string
	switch x := v.(type) {
	case json.Number:
		s = x.String()
	case string:
		s = strings.TrimSpace(x)
	default:
		return time.Time{}, false
	}
	whole, frac, _ := strings.Cut(s, ".")
	sec, err := strconv.ParseInt(whole, 10, 64)
	if err != nil || sec <= 0 || sec > maxUnix || !digits(frac) {
		return time.Time{}, false
	}
	if len(frac) > 9 {
		frac = frac[:9]
	}
	nsec := int64(0)
	if frac != "" {
		n, _ := strconv.ParseInt(frac+strings.Repeat("0", 9-len(frac)), 10, 64)
		nsec = n
	}
	return time.Unix(sec, nsec).UTC(), true
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// firstOf returns the first of keys that holds a string or number.
func firstOf(m map[string]any, keys ...string) string {
	for _, k := range keys {
		if v := strings.TrimSpace(sources.String(m, k)); v != "" {
			return v
		}
	}
	return ""
}

// nested returns m[outer][inner] as text.
func nested(m map[string]any, outer, inner string) string {
	o, _ := m[outer].(map[string]any)
	return strings.TrimSpace(sources.String(o, inner))
}
