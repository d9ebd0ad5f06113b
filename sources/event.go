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
	"unicode/utf8"

	"github.com/cloudevents/sdk-go/v2/event"
	jsoniter "github.com/json-iterator/go"
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
// it accepts is valid JSON and can be an event's data as it is. A string
// holding text that is not valid Unicode decodes to its rendering by
// EscapeInvalidJSON (\xhh for a byte that is not UTF-8), not to U+FFFD, so
// that ids taken from two such strings stay apart.
func DecodeObject(body []byte, out any) error {
	trimmed := bytes.TrimLeft(EscapeInvalidJSON(body), jsonSpace)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return ErrNotJSON
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

// DecodeFields is DecodeObject for a converter that reads only a few of the
// object's keys: it accepts and rejects exactly the bodies DecodeObject does,
// then calls fn, in the order they appear, with each top-level key for which
// want reports true and its value as DecodeObject would have put it in a
// map[string]any (strings, json.Number, bool, nil, []any, map[string]any).
// The values of other keys are stepped over without being decoded.
//
// A lead's body is a flat object of a dozen keys of which Convert reads three
// or four: decoding the whole of it into a map made 43% of the objects an
// accepted webhook allocated.
func DecodeFields(body []byte, want func(key string) bool, fn func(key string, value any)) error {
	// Rendered first, as DecodeObject renders it: every string, key or
	// value, is then valid UTF-8, which jsoniter and encoding/json read
	// alike.
	trimmed := bytes.TrimLeft(EscapeInvalidJSON(body), jsonSpace)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return ErrNotJSON
	}
	if !json.Valid(trimmed) {
		// The slow way, for encoding/json's account of what is wrong.
		var m map[string]any
		if err := DecodeObject(trimmed, &m); err != nil {
			return err
		}
		return fmt.Errorf("%w: not valid JSON", ErrNotJSON)
	}
	it := jsoniter.ConfigDefault.BorrowIterator(trimmed)
	defer jsoniter.ConfigDefault.ReturnIterator(it)
	var err error
	// The body is valid JSON, so the walk itself cannot fail.
	it.ReadObjectCB(func(it *jsoniter.Iterator, key string) bool {
		if !want(key) {
			it.Skip()
			return true
		}
		var v any
		if v, err = decodeValue(it.SkipAndReturnBytes()); err != nil {
			return false
		}
		fn(key, v)
		return true
	})
	if err == nil && it.Error != nil && it.Error != io.EOF {
		err = fmt.Errorf("%w: %v", ErrNotJSON, it.Error)
	}
	return err
}

// DecodePicked is DecodeFields gathered into a map: the body's top-level
// keys for which want reports true, with their values.
func DecodePicked(body []byte, want func(key string) bool) (map[string]any, error) {
	m := map[string]any{}
	if err := DecodeFields(body, want, func(k string, v any) { m[k] = v }); err != nil {
		return nil, err
	}
	return m, nil
}

// IsPathHead reports whether key is the first key of one of the dotted
// paths (as Path reads them): the top-level keys a converter that reads
// those paths wants from DecodeFields.
func IsPathHead(key string, paths ...string) bool {
	for _, p := range paths {
		if head, _, _ := strings.Cut(p, "."); p != "" && head == key {
			return true
		}
	}
	return false
}

// decodeValue decodes one valid JSON value as encoding/json does into an
// interface with UseNumber. Plain strings, numbers and literals are made
// directly.
func decodeValue(raw []byte) (any, error) {
	if len(raw) == 0 {
		return nil, fmt.Errorf("%w: a value is missing", ErrNotJSON)
	}
	switch c := raw[0]; {
	case c == '"':
		inner := raw[1 : len(raw)-1]
		if bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner) {
			return string(inner), nil
		}
	case c == '-' || '0' <= c && c <= '9':
		return json.Number(raw), nil
	case c == 't':
		return true, nil
	case c == 'f':
		return false, nil
	case c == 'n':
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotJSON, err)
	}
	return v, nil
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

// PathText is the value at a dotted path as text: strings (trimmed) as they
// are, numbers in their JSON spelling, anything else (and an empty path) "".
func PathText(m map[string]any, path string) string {
	if path == "" {
		return ""
	}
	v, ok := Path(m, path)
	if !ok {
		return ""
	}
	switch x := v.(type) {
	case string:
		return strings.TrimSpace(x)
	case json.Number:
		return x.String()
	}
	return ""
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
