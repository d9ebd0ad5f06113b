package github

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/hookbridge/hookbridge/sources"
)

// The headers GitHub sends with every delivery.
const (
	SignatureHeader = "X-Hub-Signature-256"
	EventHeader     = "X-GitHub-Event"
	DeliveryHeader  = "X-GitHub-Delivery"
)

// signaturePrefix starts X-Hub-Signature-256.
const signaturePrefix = "sha256="

// Source verifies and converts GitHub webhooks.
type Source struct {
	keys [][]byte
}

// Verify checks X-Hub-Signature-256 against the HMAC-SHA256 of the raw body
// under every configured secret.
func (s *Source) Verify(req *sources.Request) error {
	header := strings.TrimSpace(req.Header.Get(SignatureHeader))
	if header == "" {
		if req.Header.Get("X-Hub-Signature") != "" {
			return fmt.Errorf("%w: only the SHA-1 X-Hub-Signature, which is not accepted; GitHub sends %s when the hook has a secret", sources.ErrMissingSignature, SignatureHeader)
		}
		return fmt.Errorf("%w: no %s header (has the hook a secret?)", sources.ErrMissingSignature, SignatureHeader)
	}
	return sources.CheckSHA256Signature(SignatureHeader, header, signaturePrefix, s.keys, req.Body)
}

// Sign sets X-Hub-Signature-256 under the first secret, and X-GitHub-Event
// and X-GitHub-Delivery when req has none, as GitHub sends them.
func (s *Source) Sign(req *sources.Request) error {
	if req.Header == nil {
		req.Header = http.Header{}
	}
	if req.Header.Get(EventHeader) == "" {
		req.Header.Set(EventHeader, guessEvent(req.Body))
	}
	if req.Header.Get(DeliveryHeader) == "" {
		sum := sources.SHA256Hex(req.Body)
		req.Header.Set(DeliveryHeader, sum[:8]+"-"+sum[8:12]+"-"+sum[12:16]+"-"+sum[16:20]+"-"+sum[20:32])
	}
	if req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set(SignatureHeader, signaturePrefix+hex.EncodeToString(sources.HMAC(sha256.New, s.keys[0], req.Body)))
	return nil
}

// guessEvent names the event a payload is, from its shape, for bridge send.
func guessEvent(body []byte) string {
	var top map[string]json.RawMessage
	if json.Unmarshal(body, &top) != nil {
		return "ping"
	}
	has := func(k string) bool { _, ok := top[k]; return ok }
	switch {
	case has("zen"):
		return "ping"
	case has("pull_request"):
		return "pull_request"
	case has("issue") && has("comment"):
		return "issue_comment"
	case has("issue"):
		return "issues"
	case has("commits") && has("ref"):
		return "push"
	}
	return "ping"
}

// Convert makes one CloudEvent of the delivery.
func (s *Source) Convert(req *sources.Request) ([]*event.Event, error) {
	body, err := payload(req)
	if err != nil {
		return nil, err
	}
	p, err := sources.DecodePicked(body, readsKey)
	if err != nil {
		return nil, err
	}
	typ := "com.github." + sources.TypeSuffix(req.Header.Get(EventHeader)) // "unknown" when there is none
	if action := sources.PathText(p, "action"); action != "" {
		typ += "." + sources.TypeSuffix(action)
	}
	// A header's bytes need not be UTF-8: rendered, so the id is, and two
	// ids stay two wherever the event is written as JSON.
	id := sources.EscapeInvalid(strings.TrimSpace(req.Header.Get(DeliveryHeader)))
	if id == "" {
		id = sources.SHA256Hex(req.Body)
	}
	// No time: GitHub's payloads carry none of their own, and the receive
	// time is the default.
	return []*event.Event{sources.NewEvent(id, typ, sourceOf(p), subjectOf(p), time.Time{}, body)}, nil
}

// payload is the JSON of the delivery: the body, or, for a form-encoded
// delivery, its payload field.
func payload(req *sources.Request) ([]byte, error) {
	mt, _, _ := mime.ParseMediaType(req.Header.Get("Content-Type"))
	if mt != "application/x-www-form-urlencoded" {
		return req.Body, nil
	}
	form, err := url.ParseQuery(string(req.Body))
	if err != nil {
		return nil, fmt.Errorf("form-encoded delivery: %w", err)
	}
	p := form.Get("payload")
	if p == "" {
		return nil, fmt.Errorf("form-encoded delivery without a payload field")
	}
	return []byte(p), nil
}

// readsKey reports whether Convert reads the payload's top-level key.
func readsKey(key string) bool {
	switch key {
	case "action", "repository", "organization", "pull_request", "issue", "discussion", "release", "ref":
		return true
	}
	return false
}

func sourceOf(p map[string]any) string {
	if u := sources.PathText(p, "repository.html_url"); u != "" {
		// A web address on github.com or an Enterprise Server host; anything
		// else (the payload is the sender's) is not a source to name.
		if parsed, err := url.Parse(u); err == nil && (parsed.Scheme == "https" || parsed.Scheme == "http") && parsed.Host != "" {
			return parsed.String()
		}
	}
	if login := sources.PathText(p, "organization.login"); login != "" {
		return "https://github.com/" + url.PathEscape(login)
	}
	return "https://github.com"
}

func subjectOf(p map[string]any) string {
	for _, k := range []struct{ path, prefix string }{
		{"pull_request.number", "pulls/"},
		{"issue.number", "issues/"},
		{"discussion.number", "discussions/"},
		{"release.tag_name", "releases/"},
	} {
		if v := sources.PathText(p, k.path); v != "" {
			return k.prefix + v
		}
	}
	return sources.PathText(p, "ref")
}

// Interface guards.
var (
	_ sources.Source = (*Source)(nil)
	_ sources.Signer = (*Source)(nil)
	_ sources.Config = (*Config)(nil)
)
