package sources

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
)

// ErrNotJSON is returned (wrapped) by converters whose body is not a JSON object.
var ErrNotJSON = errors.New("body is not a JSON object")

// NewEvent makes a CloudEvent 1.0 with a JSON payload. data must be valid
// JSON; it is kept as it is, so the payload downstream is the provider's own bytes.
func NewEvent(id, typ, source, subject string, t time.Time, data []byte) *event.Event {
	ev := event.New(event.CloudEventsVersionV1)
	ev.SetID(id)
	ev.SetType(typ)
	ev.SetSource(source)
	if subject != "" {
		ev.SetSubject(subject)
	}
	if !t.IsZero() {
		ev.SetTime(t.UTC())
	}
	ev.SetDataContentType(event.ApplicationJSON)
	ev.DataEncoded = data
	return &ev
}

// jsonSpace is the white space JSON allows around a value; bytes.TrimSpace
// would also take \v, \f and Unicode spaces, which make a body invalid JSON.
const jsonSpace = " \t\r\n"

// DecodeObject decodes a JSON object body into out (a map or struct), with
// numbers kept exact, and wraps ErrNotJSON unless the body is exactly one
// JSON object: nothing but JSON white space may stand around it, so a body
// it accepts is valid JSON and can be an event's data as it is.
func DecodeObject(body []byte, out any) error {
	trimmed := bytes.TrimLeft(body, jsonSpace)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return fmt.Errorf("%w", ErrNotJSON)
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.UseNumber()
	if err := dec.Decode(out); err != nil {
		return fmt.Errorf("%w: %v", ErrNotJSON, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%w: trailing data after the object", ErrNotJSON)
	}
	return nil
}

// String returns m[key] as a string: strings as they are, numbers in their
// JSON spelling, anything else "".
func String(m map[string]any, key string) string {
	return ValueString(m[key])
}

// ValueString is String for a value already looked up.
func ValueString(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case json.Number:
		return v.String()
	case float64:
		return fmt.Sprint(v)
	case bool:
		if v {
			return "true"
		}
		return "false"
	}
	return ""
}

// Path walks a dotted path (a.b.c) through nested JSON objects.
func Path(m map[string]any, path string) (any, bool) {
	var cur any = m
	for len(path) > 0 {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		key := path
		if i := bytes.IndexByte([]byte(path), '.'); i >= 0 {
			key, path = path[:i], path[i+1:]
		} else {
			path = ""
		}
		cur, ok = obj[key]
		if !ok {
			return nil, false
		}
	}
	return cur, true
}

// ParseTime reads a provider timestamp: RFC 3339 strings, or unix seconds
// (whole or fractional) or milliseconds as a number or numeric string. ok is
// false when it is none of these, or falls outside the years 1970 to 9999
// (which a CloudEvent's RFC 3339 time cannot be read back from).
func ParseTime(v any) (time.Time, bool) {
	var s string
	switch x := v.(type) {
	case string:
		s = strings.TrimSpace(x)
	case json.Number:
		s = x.String()
	case float64:
		s = strconv.FormatFloat(x, 'f', -1, 64)
	default:
		return time.Time{}, false
	}
	t, ok := parseTime(s)
	if !ok || t.Year() < 1970 || t.Year() > 9999 {
		return time.Time{}, false
	}
	return t, true
}

func parseTime(s string) (time.Time, bool) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), true
	}
	for _, layout := range []string{"2006-01-02 15:04:05", "2006-01-02T15:04:05"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), true
		}
	}
	whole, frac, hasFrac := strings.Cut(s, ".")
	n, err := strconv.ParseInt(whole, 10, 64)
	if err != nil || n <= 0 || (hasFrac && !digits(frac)) {
		return time.Time{}, false
	}
	if n > 1e12 {
		if hasFrac {
			return time.Time{}, false
		}
		return time.UnixMilli(n).UTC(), true
	}
	var nanos int64
	if hasFrac {
		f, _ := strconv.ParseFloat("0."+frac, 64)
		nanos = int64(f * 1e9)
	}
	return time.Unix(n, nanos).UTC(), true
}

func digits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// TypeSuffix turns a provider's event name into the last part of a
// CloudEvent type: lower case, with ':', '/' and spaces as '.', runs of
// separators folded into one, no dot at either end, and anything else
// outside [a-z0-9._-] dropped ("message:send" -> "message.send",
// "Tags: Replaced" -> "tags.replaced").
func TypeSuffix(name string) string {
	b := make([]byte, 0, len(name))
	dot := func() {
		if len(b) > 0 && b[len(b)-1] != '.' {
			b = append(b, '.')
		}
	}
	for _, r := range name {
		switch {
		case r >= 'A' && r <= 'Z':
			b = append(b, byte(r-'A'+'a'))
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '_', r == '-':
			b = append(b, byte(r))
		case r == '.' || r == ' ' || r == ':' || r == '/':
			dot()
		}
	}
	for len(b) > 0 && b[len(b)-1] == '.' {
		b = b[:len(b)-1]
	}
	if len(b) == 0 {
		return "unknown"
	}
	return string(b)
}
