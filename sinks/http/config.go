package httpsink

import (
	_ "embed"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/hookbridge/hookbridge/config"
	"github.com/hookbridge/hookbridge/sinks"
	"github.com/hookbridge/hookbridge/tmpl"
)

//go:embed example.yaml
var example string

// Type is the sink's `type:` value.
const Type = "http"

// The CloudEvents HTTP binding modes used when there is no body.
const (
	FormatStructured = "structured"
	FormatBinary     = "binary"
)

func init() {
	sinks.Register(sinks.Registration{
		Type:      Type,
		NewConfig: func() sinks.Config { return NewConfig() },
		Example:   example,
	})
}

// NewConfig returns a Config with its defaults filled in.
func NewConfig() *Config {
	return &Config{Method: http.MethodPost, Format: FormatStructured, Timeout: 10 * time.Second}
}

// Config is the http sink's own keys.
type Config struct {
	// URL is where events are sent; a template (secrets in it come from
	// ${ENV}). Required.
	URL *tmpl.Template `yaml:"url"`
	// Method is the HTTP method: POST, PUT, PATCH or DELETE. Default POST.
	Method string `yaml:"method"`
	// Headers are extra request headers; each value is a template. Default
	// none. Idempotency-Key is always the event id and cannot be set here.
	Headers map[string]*tmpl.Template `yaml:"headers"`
	// Body is a JSON document whose string leaves are templates, sent as
	// application/json. Default none: the CloudEvent itself is sent, as
	// Format says.
	Body *tmpl.JSON `yaml:"body"`
	// Format is the CloudEvents HTTP binding used when there is no body:
	// "structured" (application/cloudevents+json) or "binary" (ce-* headers,
	// the payload as the body). Default structured.
	Format string `yaml:"format"`
	// Timeout bounds one request, from connecting to reading the answer.
	// Default 10s.
	Timeout time.Duration `yaml:"timeout"`
}

// reservedHeaders are set by the sink itself.
var reservedHeaders = map[string]string{
	"Idempotency-Key": "is always the event id",
	"Content-Length":  "is computed from the body",
	"Host":            "comes from url",
}

// Validate implements config.Validator; it does no I/O.
func (c *Config) Validate() error {
	var errs []error
	if c.URL.IsZero() {
		errs = append(errs, config.Invalid("url", "is required and must not be empty"))
	} else if c.URL.IsConstant() {
		if _, err := parseTarget(c.URL.String()); err != nil {
			errs = append(errs, config.Invalid("url", "%v", err))
		}
	}
	switch strings.ToUpper(c.Method) {
	case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
	case "":
		errs = append(errs, config.Invalid("method", "is required and must not be empty"))
	default:
		errs = append(errs, config.Invalid("method", "%q is not one of POST, PUT, PATCH, DELETE", c.Method))
	}
	switch c.Format {
	case FormatStructured:
	case FormatBinary:
		if !c.Body.IsZero() {
			errs = append(errs, config.Invalid("format", "binary applies only when there is no body"))
		}
	default:
		errs = append(errs, config.Invalid("format", "%q is not structured or binary", c.Format))
	}
	for name, value := range c.Headers {
		canonical := http.CanonicalHeaderKey(name)
		switch {
		case !validHeaderName(name):
			errs = append(errs, config.Invalid("headers", "%q is not a valid header name", name))
		case reservedHeaders[canonical] != "":
			errs = append(errs, config.Invalid("headers", "%s %s", canonical, reservedHeaders[canonical]))
		case c.Body.IsZero() && (canonical == "Content-Type" || strings.HasPrefix(canonical, "Ce-")):
			errs = append(errs, config.Invalid("headers", "%s is set by the CloudEvents binding when there is no body", name))
		case value.IsConstant() && !validHeaderValue(value.String()):
			errs = append(errs, config.Invalid("headers", "the value of %s has a control character", name))
		}
	}
	if c.Timeout <= 0 {
		errs = append(errs, config.Invalid("timeout", "must be positive"))
	}
	return errors.Join(errs...)
}

// NewSink implements sinks.Config; it makes no network connection.
func (c *Config) NewSink(name string) (sinks.Sink, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return newSink(name, c), nil
}

// parseTarget checks a rendered url: absolute http(s) with a host.
func parseTarget(raw string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return nil, fmt.Errorf("not a URL: %w", errors.Unwrap(err))
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("%q must start with http:// or https://", redact(u))
	}
	if u.Host == "" {
		return nil, fmt.Errorf("%q has no host", redact(u))
	}
	return u, nil
}

// redact drops what may hold a secret (user info, query) from u for errors
// and logs.
func redact(u *url.URL) string {
	safe := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}
	s := safe.String()
	if u.RawQuery != "" {
		s += "?…"
	}
	return s
}

// validHeaderName reports whether s is an RFC 9110 token.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0 {
			continue
		}
		return false
	}
	return true
}

// validHeaderValue reports whether s can be sent as a header value: no
// control characters but horizontal tab.
func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}
