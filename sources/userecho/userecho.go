package userecho

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"net/http"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/hookbridge/hookbridge/sources"
)

// SignatureHeader carries UserEcho's request signature.
const SignatureHeader = "X-UE-Signature"

// Source verifies and converts UserEcho webhooks.
type Source struct {
	secret  []byte // empty: requests are not checked
	account string
}

// Verify checks X-UE-Signature, the hex HMAC-SHA1 (or HMAC-SHA256) of the
// raw body, when a secret is configured.
func (s *Source) Verify(req *sources.Request) error {
	if req.Method != http.MethodPost {
		return fmt.Errorf("%w: %s (UserEcho POSTs its webhooks)", sources.ErrMethodNotAllowed, req.Method)
	}
	if len(s.secret) == 0 {
		return nil
	}
	sig := strings.TrimSpace(req.Header.Get(SignatureHeader))
	if sig == "" {
		return fmt.Errorf("%w: no %s header", sources.ErrMissingSignature, SignatureHeader)
	}
	h, name := Algorithm(sig)
	if h == nil {
		return fmt.Errorf("%w: %s must be 40 (HMAC-SHA1) or 64 (HMAC-SHA256) hex characters, got %d characters", sources.ErrMalformedSignature, SignatureHeader, len(sig))
	}
	if !sources.EqualHex(sig, sources.HMAC(h, s.secret, req.Body)) {
		return fmt.Errorf("%w: %s is not the %s of the body", sources.ErrSignatureMismatch, SignatureHeader, name)
	}
	return nil
}

// Algorithm tells the HMAC hash by the hex signature's length: 40
// characters SHA-1, 64 SHA-256. It returns nil for anything else,
// including a signature that is not hex.
func Algorithm(sig string) (func() hash.Hash, string) {
	if _, err := hex.DecodeString(sig); err != nil {
		return nil, ""
	}
	switch len(sig) {
	case 2 * sha1.Size:
		return sha1.New, "HMAC-SHA1"
	case 2 * sha256.Size:
		return sha256.New, "HMAC-SHA256"
	}
	return nil, ""
}

// Sign sets X-UE-Signature as UserEcho does (HMAC-SHA1) when a secret is
// configured.
func (s *Source) Sign(req *sources.Request) error {
	if req.Header == nil {
		req.Header = http.Header{}
	}
	if len(s.secret) > 0 {
		req.Header.Set(SignatureHeader, hex.EncodeToString(sources.HMAC(sha1.New, s.secret, req.Body)))
	}
	req.Header.Set("Content-Type", "application/json")
	return nil
}

// Convert makes one CloudEvent of a webhook envelope.
func (s *Source) Convert(req *sources.Request) ([]*event.Event, error) {
	var envelope map[string]any
	if err := sources.DecodeObject(req.Body, &envelope); err != nil {
		return nil, err
	}
	hook := text(envelope, "hook")
	data, _ := envelope["data"].(map[string]any)
	objectID := text(data, "id")
	created := text(envelope, "created")
	if created == "" {
		created = text(data, "created")
	}
	id := sources.SHA256Hex(req.Body)
	if hook != "" && objectID != "" && created != "" {
		id = hook + ":" + objectID + ":" + created
	}
	ev := sources.NewEvent(id, "com.userecho."+sources.TypeSuffix(hook), s.account,
		subject(hook, objectID), eventTime(envelope, data), req.Body)
	return []*event.Event{ev}, nil
}

// subject is topics/<id> or comments/<id>, by the hook's object.
func subject(hook, id string) string {
	if id == "" {
		return ""
	}
	switch kind, _, _ := strings.Cut(hook, "."); kind {
	case "topic":
		return "topics/" + id
	case "comment":
		return "comments/" + id
	}
	return ""
}

// eventTime is the envelope's created, else the object's (the same
// fallback as the id's), when it is a time that a CloudEvent can carry
// (years 1970 to 9999).
func eventTime(envelope, data map[string]any) time.Time {
	for _, created := range []any{envelope["created"], data["created"]} {
		if t, ok := sources.ParseTime(created); ok && t.Year() >= 1970 && t.Year() <= 9999 {
			return t
		}
	}
	return time.Time{}
}

// text is m[key] as trimmed text (strings, and numbers in their JSON spelling).
func text(m map[string]any, key string) string {
	return strings.TrimSpace(sources.String(m, key))
}
