package standardwebhooks

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/hookbridge/hookbridge/sources"
)

// The headers of the specification.
const (
	IDHeader        = "Webhook-Id"
	TimestampHeader = "Webhook-Timestamp"
	SignatureHeader = "Webhook-Signature"
)

// Source verifies and converts Standard Webhooks.
type Source struct {
	keys      [][]byte
	tolerance time.Duration

	source        string
	typePath      string
	typePrefix    string
	timePath      string
	subjectPath   string
	subjectPrefix string
}

// Verify checks webhook-signature against the HMAC-SHA256 of
// "<webhook-id>.<webhook-timestamp>.<body>" under every configured secret,
// and webhook-timestamp against the tolerance.
func (s *Source) Verify(req *sources.Request) error {
	header := req.Header.Get(SignatureHeader)
	if strings.TrimSpace(header) == "" {
		return fmt.Errorf("%w: no %s header", sources.ErrMissingSignature, SignatureHeader)
	}
	sigs, err := ParseSignatures(header)
	if err != nil {
		return err
	}
	id := req.Header.Get(IDHeader)
	if strings.TrimSpace(id) == "" {
		return fmt.Errorf("%w: no %s header", sources.ErrMalformedSignature, IDHeader)
	}
	rawTS := req.Header.Get(TimestampHeader)
	ts, err := ParseTimestamp(rawTS)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", sources.ErrMalformedSignature, TimestampHeader, err)
	}
	if err := sources.CheckUnixSeconds(ts.Unix(), req.ReceivedAt, s.tolerance); err != nil {
		return fmt.Errorf("%s: %w", TimestampHeader, err)
	}
	ok := false
	for _, key := range s.keys {
		mac := signature(key, id, rawTS, req.Body)
		for _, sig := range sigs {
			// Check every pair so timing does not depend on which matched.
			if sources.EqualBase64(sig, mac) {
				ok = true
			}
		}
	}
	if !ok {
		return fmt.Errorf("%w: no v1 entry of %s is the HMAC-SHA256 of the message under a configured secret", sources.ErrSignatureMismatch, SignatureHeader)
	}
	return nil
}

func signature(key []byte, id, timestamp string, body []byte) []byte {
	return sources.HMAC(sha256.New, key, []byte(id), []byte{'.'}, []byte(timestamp), []byte{'.'}, body)
}

// ParseSignatures returns the base64 signatures of the v1 entries of a
// webhook-signature header ("v1,<base64> v1a,<base64> ..."). Entries of
// other versions are skipped; a header with no v1 entry is missing a
// signature we can check, and one with no "version,signature" entry at all
// is malformed.
func ParseSignatures(header string) ([]string, error) {
	var v1 []string
	wellFormed := false
	for _, entry := range strings.Fields(header) {
		version, sig, ok := strings.Cut(entry, ",")
		if !ok || version == "" || sig == "" {
			continue
		}
		wellFormed = true
		if version == "v1" {
			v1 = append(v1, sig)
		}
	}
	if !wellFormed {
		return nil, fmt.Errorf("%w: %s has no version,signature entry", sources.ErrMalformedSignature, SignatureHeader)
	}
	if len(v1) == 0 {
		return nil, fmt.Errorf("%w: %s has no v1 (HMAC-SHA256) entry", sources.ErrMissingSignature, SignatureHeader)
	}
	return v1, nil
}

// ParseTimestamp reads webhook-timestamp: unix seconds, written as plain
// decimal digits (the signed content uses the header as sent).
func ParseTimestamp(s string) (time.Time, error) {
	n, ok := sources.ParseDigits(s)
	if !ok {
		return time.Time{}, fmt.Errorf("%q is not a unix time in seconds", s)
	}
	return time.Unix(n, 0), nil
}

// Sign sets webhook-id (unless req has one), webhook-timestamp (to
// req.ReceivedAt) and webhook-signature, with one v1 entry per configured
// secret, as a provider rotating its secret does.
func (s *Source) Sign(req *sources.Request) error {
	if req.Header == nil {
		req.Header = http.Header{}
	}
	ts := strconv.FormatInt(req.ReceivedAt.Unix(), 10)
	id := req.Header.Get(IDHeader)
	if id == "" {
		// Of the body alone: sending the same payload again is a retry of
		// the same message, which keeps its webhook-id (and is dropped as a
		// duplicate), as the sender's own retries are.
		id = "msg_" + sources.SHA256Hex(req.Body)[:27]
		req.Header.Set(IDHeader, id)
	}
	entries := make([]string, len(s.keys))
	for i, key := range s.keys {
		entries[i] = "v1," + base64.StdEncoding.EncodeToString(signature(key, id, ts, req.Body))
	}
	req.Header.Set(TimestampHeader, ts)
	req.Header.Set(SignatureHeader, strings.Join(entries, " "))
	req.Header.Set("Content-Type", "application/json")
	return nil
}

// Convert makes one CloudEvent of the JSON payload; its id is webhook-id.
func (s *Source) Convert(req *sources.Request) ([]*event.Event, error) {
	payload, err := sources.DecodePicked(req.Body, s.readsKey)
	if err != nil {
		return nil, err
	}
	// A header's bytes need not be UTF-8: rendered, so the id is, and two
	// ids stay two wherever the event is written as JSON.
	id := sources.EscapeInvalid(strings.TrimSpace(req.Header.Get(IDHeader)))
	if id == "" {
		id = sources.SHA256Hex(req.Body)
	}
	// Normalised as every source's event names are (lower case, spaces,
	// ':' and '/' as '.'), so "Customer Created" is customer.created.
	typ := sources.TypeSuffix(sources.PathText(payload, s.typePath))
	subject := ""
	if v := sources.PathText(payload, s.subjectPath); v != "" {
		subject = s.subjectPrefix + v
	}
	var t time.Time
	if s.timePath != "" {
		if v, ok := sources.Path(payload, s.timePath); ok {
			t, _ = sources.ParseTime(v)
		}
	}
	return []*event.Event{sources.NewEvent(id, s.typePrefix+typ, s.source, subject, t, req.Body)}, nil
}

// readsKey reports whether Convert reads the payload's top-level key.
func (s *Source) readsKey(key string) bool {
	return sources.IsPathHead(key, s.typePath, s.subjectPath, s.timePath)
}

// Interface guards.
var (
	_ sources.Source = (*Source)(nil)
	_ sources.Signer = (*Source)(nil)
	_ sources.Config = (*Config)(nil)
)
