package hmacsource

import (
	_ "embed"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"text/template"
	"time"

	"github.com/hookbridge/hookbridge/config"
	"github.com/hookbridge/hookbridge/sources"
)

//go:embed example.yaml
var example string

func init() {
	sources.Register(sources.Registration{
		Type:      "hmac",
		NewConfig: func() sources.Config { return NewConfig() },
		Example:   example,
	})
}

// Defaults of the optional keys.
const (
	DefaultAlgorithm = "sha256"
	DefaultEncoding  = "hex"
	DefaultPayload   = "{{ .Body }}"
	DefaultTolerance = 5 * time.Minute
)

// Config is the hmac source's own keys.
type Config struct {
	// Secret is the shared signing secret. Required.
	Secret string `yaml:"secret"`
	// Header carries the signature, e.g. X-Signature. Required.
	Header string `yaml:"header"`
	// Algorithm is sha1, sha256 or sha512. Default sha256.
	Algorithm string `yaml:"algorithm"`
	// Encoding of the signature: hex or base64. Default hex.
	Encoding string `yaml:"encoding"`
	// Prefix precedes each signature in the header, e.g. "sha256="; a
	// signature without it is malformed. Default none.
	Prefix string `yaml:"prefix"`
	// Payload is a Go template of the signed bytes over .Body (the raw
	// body), .Timestamp (the timestamp header's value) and .Header "Name".
	// Default "{{ .Body }}".
	Payload string `yaml:"payload"`
	// TimestampHeader carries the signing time in unix seconds, or
	// milliseconds when over 1e12. Default none (no replay check).
	TimestampHeader string `yaml:"timestamp_header"`
	// Tolerance is how far the timestamp may be from the receive time; used
	// only with TimestampHeader. Default 5m; 0 turns the check off.
	Tolerance time.Duration `yaml:"tolerance"`
	// Source is the CloudEvent source URI. Required.
	Source string `yaml:"source"`
	// EventType is a constant CloudEvent type. One of EventType and
	// TypePath is required.
	EventType string `yaml:"event_type"`
	// TypePath is a dotted JSON path whose value, as a type suffix, is
	// appended to TypePrefix. Default none.
	TypePath string `yaml:"type_path"`
	// TypePrefix goes before the TypePath value, e.g. "com.example.".
	// Default none.
	TypePrefix string `yaml:"type_prefix"`
	// IDPath is a dotted JSON path of the provider's delivery id. Default:
	// the SHA-256 of the body.
	IDPath string `yaml:"id_path"`
	// SubjectPath is a dotted JSON path of the subject. Default none.
	SubjectPath string `yaml:"subject_path"`
	// SubjectPrefix goes before the subject value, e.g. "orders/". Default none.
	SubjectPrefix string `yaml:"subject_prefix"`
	// TimePath is a dotted JSON path of the event time. Default: the
	// receive time.
	TimePath string `yaml:"time_path"`
}

// NewConfig returns a Config with the defaults filled in.
func NewConfig() *Config {
	return &Config{
		Algorithm: DefaultAlgorithm,
		Encoding:  DefaultEncoding,
		Payload:   DefaultPayload,
		Tolerance: DefaultTolerance,
	}
}

// Validate implements config.Validator.
func (c *Config) Validate() error {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	add(config.Required("secret", c.Secret))
	add(checkHeaderName("header", c.Header, true))
	if _, err := sources.HashFunc(c.Algorithm); err != nil {
		add(config.Invalid("algorithm", "%v", err))
	}
	if _, err := parseEncoding(c.Encoding); err != nil {
		add(config.Invalid("encoding", "%v", err))
	}
	if strings.Contains(c.Prefix, ",") {
		add(config.Invalid("prefix", "must not contain ',' (it separates signatures)"))
	}
	add(checkHeaderName("timestamp_header", c.TimestampHeader, false))
	if c.Tolerance < 0 {
		add(config.Invalid("tolerance", "must not be negative"))
	}
	if _, err := compilePayload(c.Payload, c.TimestampHeader); err != nil {
		add(config.Invalid("payload", "%v", err))
	}
	add(sources.CheckURIRef("source", c.Source))
	switch {
	case c.EventType == "" && c.TypePath == "":
		add(config.Invalid("event_type", "is required unless type_path is given"))
	case c.EventType != "" && c.TypePath != "":
		add(config.Invalid("event_type", "excludes type_path: give one of them"))
	case strings.TrimSpace(c.EventType) == "" && c.EventType != "":
		add(config.Invalid("event_type", "must not be blank"))
	}
	if c.TypePrefix != "" && c.TypePath == "" {
		add(config.Invalid("type_prefix", "needs type_path"))
	}
	for _, p := range []struct{ key, path string }{
		{"type_path", c.TypePath}, {"id_path", c.IDPath}, {"subject_path", c.SubjectPath}, {"time_path", c.TimePath},
	} {
		add(sources.CheckPath(p.key, p.path))
	}
	if c.SubjectPrefix != "" && c.SubjectPath == "" {
		add(config.Invalid("subject_prefix", "needs subject_path"))
	}
	return errors.Join(errs...)
}

// NewSource implements sources.Config.
func (c *Config) NewSource() (sources.Source, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	newHash, _ := sources.HashFunc(c.Algorithm)
	enc, _ := parseEncoding(c.Encoding)
	payload, _ := compilePayload(c.Payload, c.TimestampHeader)
	return &Source{
		secret:          []byte(c.Secret),
		header:          c.Header,
		newHash:         newHash,
		encoding:        enc,
		prefix:          c.Prefix,
		payload:         payload,
		timestampHeader: c.TimestampHeader,
		tolerance:       c.Tolerance,
		source:          c.Source,
		eventType:       strings.TrimSpace(c.EventType),
		typePath:        c.TypePath,
		typePrefix:      c.TypePrefix,
		idPath:          c.IDPath,
		subjectPath:     c.SubjectPath,
		subjectPrefix:   c.SubjectPrefix,
		timePath:        c.TimePath,
	}, nil
}

// Encoding is how a signature is written in its header.
type Encoding int

// Signature encodings.
const (
	Hex Encoding = iota
	Base64
)

func parseEncoding(s string) (Encoding, error) {
	switch strings.ToLower(s) {
	case "hex":
		return Hex, nil
	case "base64":
		return Base64, nil
	}
	return 0, fmt.Errorf("unknown encoding %q (hex or base64)", s)
}

func checkHeaderName(key, name string, required bool) error {
	if name == "" {
		if required {
			return config.Required(key, name)
		}
		return nil
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("!#$%&'*+-.^_`|~", r)) {
			return config.Invalid(key, "%q is not an HTTP header name", name)
		}
	}
	return nil
}

// compilePayload parses the signed-payload template and tries it once, so a
// misspelt field, a .Timestamp without a timestamp header, or a timestamp
// header the signature does not cover fails at load.
func compilePayload(text, timestampHeader string) (*payloadTemplate, error) {
	haveTimestamp := timestampHeader != ""
	t, err := template.New("payload").Option("missingkey=error").Parse(text)
	if err != nil {
		return nil, err
	}
	probe := &templateData{header: map[string][]string{}, usedHeaders: map[string]bool{}}
	if err := t.Execute(discard{}, probe); err != nil {
		return nil, err
	}
	if !probe.usedBody {
		return nil, errors.New("must include {{ .Body }}: a signature that does not cover the body proves nothing about it")
	}
	if probe.usedTimestamp && !haveTimestamp {
		return nil, errors.New("uses .Timestamp but timestamp_header is not set")
	}
	if haveTimestamp && !probe.usedTimestamp && !probe.usedHeaders[http.CanonicalHeaderKey(timestampHeader)] {
		// The tolerance would then check a header anyone may rewrite: a
		// captured request replayed with a fresh timestamp would pass.
		return nil, errors.New("must include {{ .Timestamp }} when timestamp_header is set: a timestamp the signature does not cover guards against no replay")
	}
	return &payloadTemplate{tmpl: t, bodyOnly: isBodyOnly(t)}, nil
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
