package hmacsource

import (
	"crypto/hmac"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash"
	"net/http"
	"strconv"
	"strings"
	"text/template"
	"text/template/parse"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/hookbridge/hookbridge/sources"
)

// Source verifies and converts the webhooks of one HMAC-signing provider.
type Source struct {
	secret          []byte
	header          string
	newHash         func() hash.Hash
	encoding        Encoding
	prefix          string
	payload         *payloadTemplate
	timestampHeader string
	tolerance       time.Duration

	source        string
	eventType     string
	typePath      string
	typePrefix    string
	idPath        string
	subjectPath   string
	subjectPrefix string
	timePath      string
}

// Verify checks the signature header against the HMAC of the rendered
// payload, and the timestamp header against the tolerance.
func (s *Source) Verify(req *sources.Request) error {
	raw := req.Header.Get(s.header)
	if strings.TrimSpace(raw) == "" {
		return fmt.Errorf("%w: no %s header", sources.ErrMissingSignature, s.header)
	}
	sigs, err := SplitSignatures(raw, s.prefix)
	if err != nil {
		return fmt.Errorf("%s: %w", s.header, err)
	}
	timestamp := ""
	if s.timestampHeader != "" {
		timestamp = req.Header.Get(s.timestampHeader)
		if timestamp == "" {
			return fmt.Errorf("%w: no %s header", sources.ErrMalformedSignature, s.timestampHeader)
		}
		t, err := ParseTimestamp(timestamp)
		if err != nil {
			return fmt.Errorf("%w: %s: %v", sources.ErrMalformedSignature, s.timestampHeader, err)
		}
		if err := sources.CheckTimestamp(t, req.ReceivedAt, s.tolerance); err != nil {
			return fmt.Errorf("%s %s: %w", s.timestampHeader, timestamp, err)
		}
	}
	mac, err := s.mac(req, timestamp)
	if err != nil {
		return err
	}
	ok := false
	for _, sig := range sigs {
		// Check every candidate so timing does not depend on which matched.
		if s.equal(sig, mac) {
			ok = true
		}
	}
	if !ok {
		return fmt.Errorf("%w: %s is not the HMAC of the payload", sources.ErrSignatureMismatch, s.header)
	}
	return nil
}

func (s *Source) equal(sig string, mac []byte) bool {
	if s.encoding == Base64 {
		return sources.EqualBase64(sig, mac)
	}
	return sources.EqualHex(sig, mac)
}

// mac is the HMAC of the signed payload of req.
func (s *Source) mac(req *sources.Request, timestamp string) ([]byte, error) {
	if s.payload.bodyOnly {
		return sources.HMAC(s.newHash, s.secret, req.Body), nil
	}
	// The template renders straight into the HMAC.
	m := hmac.New(s.newHash, s.secret)
	data := &templateData{body: string(req.Body), timestamp: timestamp, header: req.Header}
	if err := s.payload.tmpl.Execute(m, data); err != nil {
		return nil, fmt.Errorf("rendering the signed payload: %w", err)
	}
	return m.Sum(nil), nil
}

// SplitSignatures splits a signature header into its comma-separated
// signatures and strips prefix (matched without regard to case) from each.
// A signature without the prefix, or a header with no signature at all, is
// malformed.
func SplitSignatures(header, prefix string) ([]string, error) {
	var out []string
	for _, part := range strings.Split(header, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if prefix != "" {
			if len(part) < len(prefix) || !strings.EqualFold(part[:len(prefix)], prefix) {
				return nil, fmt.Errorf("%w: a signature lacks the prefix %q", sources.ErrMalformedSignature, prefix)
			}
			part = strings.TrimSpace(part[len(prefix):])
			if part == "" {
				continue
			}
		}
		out = append(out, part)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no signature", sources.ErrMalformedSignature)
	}
	return out, nil
}

// ParseTimestamp reads a timestamp header: unix seconds, or milliseconds
// when the number is over 1e12.
func ParseTimestamp(s string) (time.Time, error) {
	n, ok := sources.ParseDigits(s)
	if !ok {
		return time.Time{}, fmt.Errorf("%q is not a unix time", s)
	}
	if n > 1e12 {
		return time.UnixMilli(n), nil
	}
	return time.Unix(n, 0), nil
}

// Sign sets the signature header (and the timestamp header, to
// req.ReceivedAt in unix seconds) as the provider would.
func (s *Source) Sign(req *sources.Request) error {
	if req.Header == nil {
		req.Header = http.Header{}
	}
	timestamp := ""
	if s.timestampHeader != "" {
		timestamp = strconv.FormatInt(req.ReceivedAt.Unix(), 10)
		req.Header.Set(s.timestampHeader, timestamp)
	}
	mac, err := s.mac(req, timestamp)
	if err != nil {
		return err
	}
	sig := hex.EncodeToString(mac)
	if s.encoding == Base64 {
		sig = base64.StdEncoding.EncodeToString(mac)
	}
	req.Header.Set(s.header, s.prefix+sig)
	req.Header.Set("Content-Type", "application/json")
	return nil
}

// Convert makes one CloudEvent of the JSON payload.
func (s *Source) Convert(req *sources.Request) ([]*event.Event, error) {
	payload, err := sources.DecodePicked(req.Body, s.readsKey)
	if err != nil {
		return nil, err
	}
	typ := s.eventType
	if typ == "" {
		typ = s.typePrefix + sources.TypeSuffix(pathText(payload, s.typePath))
	}
	id := pathText(payload, s.idPath)
	if id == "" {
		id = sources.SHA256Hex(req.Body)
	}
	subject := ""
	if v := pathText(payload, s.subjectPath); v != "" {
		subject = s.subjectPrefix + v
	}
	var t time.Time
	if s.timePath != "" {
		if v, ok := sources.Path(payload, s.timePath); ok {
			t, _ = sources.ParseTime(v)
		}
	}
	return []*event.Event{sources.NewEvent(id, typ, s.source, subject, t, req.Body)}, nil
}

// readsKey reports whether Convert reads the payload's top-level key.
func (s *Source) readsKey(key string) bool {
	return sources.IsPathHead(key, s.typePath, s.idPath, s.subjectPath, s.timePath)
}

// pathText is sources.PathText, with booleans as true/false too.
func pathText(m map[string]any, path string) string {
	if path != "" {
		if v, ok := sources.Path(m, path); ok {
			if b, isBool := v.(bool); isBool {
				return strconv.FormatBool(b)
			}
		}
	}
	return sources.PathText(m, path)
}

// payloadTemplate renders the signed payload.
type payloadTemplate struct {
	tmpl *template.Template
	// bodyOnly is set when the template is just {{ .Body }}: the body is
	// then signed as it is, without rendering.
	bodyOnly bool
}

// templateData is what the payload template sees.
type templateData struct {
	body          string
	timestamp     string
	header        http.Header
	usedBody      bool
	usedTimestamp bool
	// usedHeaders, when not nil (a probe at load), records the headers
	// .Header read, by canonical name.
	usedHeaders map[string]bool
}

// Body is the raw request body.
func (d *templateData) Body() string {
	d.usedBody = true
	return d.body
}

// Timestamp is the timestamp header's value as sent.
func (d *templateData) Timestamp() string {
	d.usedTimestamp = true
	return d.timestamp
}

// Header is the value of the named request header.
func (d *templateData) Header(name string) string {
	if d.usedHeaders != nil {
		d.usedHeaders[http.CanonicalHeaderKey(name)] = true
	}
	return d.header.Get(name)
}

// isBodyOnly reports whether t is exactly {{ .Body }} (spaces aside).
func isBodyOnly(t *template.Template) bool {
	if t.Tree == nil || len(t.Tree.Root.Nodes) != 1 {
		return false
	}
	action, ok := t.Tree.Root.Nodes[0].(*parse.ActionNode)
	if !ok || len(action.Pipe.Decl) != 0 || len(action.Pipe.Cmds) != 1 || len(action.Pipe.Cmds[0].Args) != 1 {
		return false
	}
	field, ok := action.Pipe.Cmds[0].Args[0].(*parse.FieldNode)
	return ok && len(field.Ident) == 1 && field.Ident[0] == "Body"
}

// Interface guards.
var (
	_ sources.Source = (*Source)(nil)
	_ sources.Signer = (*Source)(nil)
	_ sources.Config = (*Config)(nil)
)
