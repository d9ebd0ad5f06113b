package stripe

import (
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

// SignatureHeader carries Stripe's timestamp and signatures.
const SignatureHeader = "Stripe-Signature"

// ExtLivemode is the extension that says whether the event happened in
// live mode ("true") or in a sandbox or test mode ("false").
const ExtLivemode = "stripelivemode"

// dashboard is the source of events from no account in particular; an
// account's events are under dashboard/<account id>.
const dashboard = "https://dashboard.stripe.com"

// thinObject is the object of a thin event, which names the object it is
// about instead of carrying it.
const thinObject = "v2.core.event"

// Source verifies and converts Stripe's webhooks.
type Source struct {
	keys      [][]byte
	tolerance time.Duration
	source    string // the CloudEvent source of an event without its own account
}

// Signature is a parsed Stripe-Signature header.
type Signature struct {
	Timestamp int64    // t
	V1        []string // every v1 signature, hex; Stripe sends one per active secret
	HasV0     bool     // whether there was a v0 (a test-mode signature, never accepted)
}

// ParseSignature reads "t=<unix>,v1=<hex>[,v1=<hex>...][,v0=<hex>]". Other
// schemes, elements that are not key=value, and v1s that are not 64 hex
// digits are skipped, as Stripe asks (and its own libraries do), so that a
// future scheme does not break the endpoint and a valid v1 beside them is
// still checked. The error wraps sources.ErrMalformedSignature, or
// sources.ErrMissingSignature when there is no v1.
func ParseSignature(header string) (Signature, error) {
	var sig Signature
	haveT := false
	badV1 := 0
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || k == "" {
			continue
		}
		switch k {
		case "t":
			if haveT {
				return Signature{}, fmt.Errorf("%w: %s has more than one t=", sources.ErrMalformedSignature, SignatureHeader)
			}
			n, ok := sources.ParseDigits(v)
			if !ok {
				return Signature{}, fmt.Errorf("%w: t=%q is not a unix time in seconds", sources.ErrMalformedSignature, v)
			}
			sig.Timestamp, haveT = n, true
		case "v1":
			if !sources.IsHexDigest(v, sha256.Size) {
				badV1++
				continue
			}
			sig.V1 = append(sig.V1, v)
		case "v0":
			sig.HasV0 = true
		}
	}
	if !haveT {
		return Signature{}, fmt.Errorf("%w: no t= in %s", sources.ErrMalformedSignature, SignatureHeader)
	}
	if len(sig.V1) == 0 {
		if badV1 > 0 {
			return Signature{}, fmt.Errorf("%w: no v1 of %s is 64 hex digits", sources.ErrMalformedSignature, SignatureHeader)
		}
		if sig.HasV0 {
			return Signature{}, fmt.Errorf("%w: %s has only v0, a test-mode signature that is not accepted; Stripe signs with v1", sources.ErrMissingSignature, SignatureHeader)
		}
		return Signature{}, fmt.Errorf("%w: no v1= in %s", sources.ErrMissingSignature, SignatureHeader)
	}
	return sig, nil
}

// Verify checks Stripe-Signature: some v1 must be the hex HMAC-SHA256 of
// "<t>.<raw body>" under a configured secret, and t must be within the
// tolerance of the receive time. The signature is checked first, so a stale
// timestamp is reported only for a request Stripe really signed.
func (s *Source) Verify(req *sources.Request) error {
	header := req.Header.Get(SignatureHeader)
	if strings.TrimSpace(header) == "" {
		return fmt.Errorf("%w: no %s header (is this a Stripe webhook endpoint?)", sources.ErrMissingSignature, SignatureHeader)
	}
	sig, err := ParseSignature(header)
	if err != nil {
		return err
	}
	prefix := []byte(strconv.FormatInt(sig.Timestamp, 10) + ".")
	match := false
	for _, key := range s.keys {
		mac := sources.HMAC(sha256.New, key, prefix, req.Body)
		// Compare every pair, so timing does not depend on which matched.
		for _, v1 := range sig.V1 {
			if sources.EqualHex(v1, mac) {
				match = true
			}
		}
	}
	if !match {
		return fmt.Errorf("%w: no v1 of %s is the HMAC-SHA256 of <t>.<body> under a configured signing secret", sources.ErrSignatureMismatch, SignatureHeader)
	}
	if err := sources.CheckUnixSeconds(sig.Timestamp, req.ReceivedAt, s.tolerance); err != nil {
		return fmt.Errorf("%s t=%d: %w", SignatureHeader, sig.Timestamp, err)
	}
	return nil
}

// Sign sets Stripe-Signature for req.Body at req.ReceivedAt with one v1 per
// configured secret, as Stripe signs while an endpoint's secret is rolled.
func (s *Source) Sign(req *sources.Request) error {
	if req.Header == nil {
		req.Header = http.Header{}
	}
	ts := strconv.FormatInt(req.ReceivedAt.Unix(), 10)
	var b strings.Builder
	b.WriteString("t=" + ts)
	for _, key := range s.keys {
		b.WriteString(",v1=" + hex.EncodeToString(sources.HMAC(sha256.New, key, []byte(ts+"."), req.Body)))
	}
	req.Header.Set(SignatureHeader, b.String())
	if req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	return nil
}

// readsKey reports whether Convert reads the event's top-level key.
func readsKey(key string) bool {
	switch key {
	case "id", "object", "type", "created", "account", "context", "livemode", "data", "related_object":
		return true
	}
	return false
}

// Convert makes one CloudEvent of the event: a snapshot event (object
// "event", the changed object in data.object) or a thin event (object
// "v2.core.event", which names the changed object in related_object).
func (s *Source) Convert(req *sources.Request) ([]*event.Event, error) {
	p, err := sources.DecodePicked(req.Body, readsKey)
	if err != nil {
		return nil, err
	}
	id := sources.PathText(p, "id")
	if id == "" {
		id = sources.SHA256Hex(req.Body)
	}
	typ := "com.stripe." + sources.TypeSuffix(sources.PathText(p, "type"))
	account := sources.PathText(p, "account")
	kindPath, idPath := "data.object.object", "data.object.id"
	if sources.PathText(p, "object") == thinObject {
		// A thin event names its account in context, when it has one.
		account = sources.PathText(p, "context")
		kindPath, idPath = "related_object.type", "related_object.id"
	}
	t, _ := sources.ParseTime(p["created"]) // unix seconds, or RFC 3339 in a thin event
	ev := sources.NewEvent(id, typ, s.sourceOf(account), subject(sources.PathText(p, kindPath), sources.PathText(p, idPath)), t, req.Body)
	if live, ok := p["livemode"].(bool); ok {
		ev.SetExtension(ExtLivemode, strconv.FormatBool(live))
	}
	return []*event.Event{ev}, nil
}

// sourceOf is the CloudEvent source of an event of account ("" when the
// event names none: the configured account's, or the dashboard's).
func (s *Source) sourceOf(account string) string {
	if account == "" {
		return s.source
	}
	// Escaped, so any value makes a URI that reads back unchanged.
	return dashboard + "/" + url.PathEscape(account)
}

// subject is "<kind, pluralised>/<id>" (customers/cus_123,
// checkout.sessions/cs_123), the id alone when the kind is missing or not
// shaped as Stripe's object names are, and "" without an id.
func subject(kind, id string) string {
	if id == "" {
		return ""
	}
	if !isObjectName(kind) {
		return id
	}
	return plural(kind) + "/" + id
}

// isObjectName reports whether s is shaped as Stripe's object names are:
// lower-case words of letters, digits and _, joined by dots.
func isObjectName(s string) bool {
	if s == "" {
		return false
	}
	for _, part := range strings.Split(s, ".") {
		if part == "" {
			return false
		}
		for _, r := range part {
			if !('a' <= r && r <= 'z' || '0' <= r && r <= '9' || r == '_') {
				return false
			}
		}
	}
	return true
}

// plural pluralises the last word of an object name as Stripe's API paths
// do: customer → customers, checkout.session → checkout.sessions,
// capability → capabilities.
func plural(kind string) string {
	n := len(kind)
	if n >= 2 && kind[n-1] == 'y' && !strings.ContainsRune("aeiou._", rune(kind[n-2])) {
		return kind[:n-1] + "ies"
	}
	return kind + "s"
}

// Interface guards.
var (
	_ sources.Source = (*Source)(nil)
	_ sources.Signer = (*Source)(nil)
	_ sources.Config = (*Config)(nil)
)
