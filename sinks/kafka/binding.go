package kafka

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/url"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"
	kafkago "github.com/segmentio/kafka-go"

	"github.com/hookbridge/hookbridge/sinks"
)

// Mode is a content mode of the CloudEvents Kafka protocol binding.
type Mode string

const (
	// ModeBinary puts every attribute and extension in a ce_<name> header,
	// datacontenttype in content-type, and the data bytes as the value.
	ModeBinary Mode = "binary"
	// ModeStructured puts the whole event, in the JSON event format, in the
	// value, with content-type application/cloudevents+json.
	ModeStructured Mode = "structured"
)

const (
	// HeaderPrefix prefixes the attribute headers of binary mode.
	HeaderPrefix = "ce_"
	// HeaderContentType carries datacontenttype in binary mode and the event
	// format's media type in structured mode.
	HeaderContentType = "content-type"
	// ContentTypeStructuredJSON is the content-type of a structured message.
	ContentTypeStructuredJSON = "application/cloudevents+json; charset=UTF-8"

	mediaTypeCloudEvents      = "application/cloudevents"
	mediaTypeCloudEventsJSON  = "application/cloudevents+json"
	mediaTypeCloudEventsBatch = "application/cloudevents-batch+json"
)

// ErrNotCloudEvent is returned (wrapped) by FromMessage for a message that
// carries neither a structured CloudEvents content-type nor a ce_specversion
// header.
var ErrNotCloudEvent = errors.New("kafka message is not a CloudEvent")

// ToMessage maps ev to a Kafka message in the given content mode, per the
// CloudEvents Kafka protocol binding. It fills Headers and Value only: the
// caller chooses the Topic and Key. ev is not modified.
//
// In binary mode the value is the data bytes as they are (no value when the
// event has no data), content-type is datacontenttype, and every other
// attribute and extension is a ce_<name> header holding its canonical string
// form (time in RFC 3339, UTC). In structured mode the value is the event in
// the JSON event format; JSON data is written as JSON (never data_base64), and
// other data as a string when it is text, else as data_base64.
func ToMessage(ev *event.Event, mode Mode) (kafkago.Message, error) {
	if ev == nil {
		return kafkago.Message{}, errors.New("no event")
	}
	if err := ev.Validate(); err != nil {
		return kafkago.Message{}, fmt.Errorf("invalid CloudEvent: %w", err)
	}
	return toMessage(ev, mode, nil)
}

// toMessage is ToMessage for an event already known to be valid. The sink
// uses it for the events of its queue: every source's events are validated
// by the source tests, and the full validation (which re-serializes the
// source URI and parses the media type) was a twentieth of the sink's CPU.
// It still refuses an event without the attributes every message needs.
// sources, when not nil, remembers source strings across calls.
func toMessage(ev *event.Event, mode Mode, sources *sourceStrings) (kafkago.Message, error) {
	if ev.SpecVersion() != event.CloudEventsVersionV1 {
		v1 := ev.Clone()
		v1.SetSpecVersion(event.CloudEventsVersionV1)
		ev = &v1
	}
	if strings.TrimSpace(ev.ID()) == "" || strings.TrimSpace(ev.Type()) == "" {
		return kafkago.Message{}, errors.New("invalid CloudEvent: id and type are required")
	}
	switch mode {
	case ModeBinary, "":
		source := sources.of(ev)
		if source == "" {
			return kafkago.Message{}, errors.New("invalid CloudEvent: source is required")
		}
		return binaryMessage(ev, source)
	case ModeStructured:
		if ev.Source() == "" {
			return kafkago.Message{}, errors.New("invalid CloudEvent: source is required")
		}
		return structuredMessage(ev)
	}
	return kafkago.Message{}, fmt.Errorf("unknown content mode %q (want binary or structured)", mode)
}

// sourceStrings remembers the string form of the last source URI asked for.
// The events of a batch mostly share their source, and the URI's String
// builds a new string on every call. It is not safe for concurrent use.
type sourceStrings struct {
	u   url.URL
	s   string
	set bool
}

func (c *sourceStrings) of(ev *event.Event) string {
	v1, ok := ev.Context.(*event.EventContextV1)
	if c == nil || !ok {
		return ev.Source()
	}
	if !c.set || c.u != v1.Source.URL {
		c.u, c.s, c.set = v1.Source.URL, v1.Source.String(), true
	}
	return c.s
}

// Header names of the context attributes in binary mode.
const (
	headerSpecVersion = HeaderPrefix + "specversion"
	headerID          = HeaderPrefix + "id"
	headerSource      = HeaderPrefix + "source"
	headerType        = HeaderPrefix + "type"
	headerSubject     = HeaderPrefix + "subject"
	headerTime        = HeaderPrefix + "time"
	headerDataSchema  = HeaderPrefix + "dataschema"
)

func binaryMessage(ev *event.Event, source string) (kafkago.Message, error) {
	exts := extensionsOf(ev)
	// An event has few extensions (the bridge sets one): names and values
	// stay on the stack up to eight.
	var namesBuf, valuesBuf [8]string
	names := namesBuf[:0]
	for name := range exts {
		names = append(names, name)
	}
	sort.Strings(names)
	extValues := valuesBuf[:0]
	size := len(ev.SpecVersion()) + len(ev.ID()) + len(source) + len(ev.Type()) +
		len(ev.Subject()) + len(ev.DataSchema()) + len(ev.DataContentType())
	for _, name := range names {
		v, err := types.Format(exts[name])
		if err != nil {
			return kafkago.Message{}, fmt.Errorf("extension %q: %w", name, err)
		}
		extValues = append(extValues, v)
		size += len(v)
	}
	t := ev.Time()
	if !t.IsZero() {
		size += len(time.RFC3339Nano)
	}

	// Every value is appended to one buffer and each header slices its own
	// part: one allocation for all the values of a message.
	buf := make([]byte, 0, size)
	headers := make([]kafkago.Header, 0, 8+len(names))
	push := func(key string, start int) error {
		value := buf[start:len(buf):len(buf)]
		if !utf8.Valid(value) {
			return fmt.Errorf("header %s: value is not UTF-8", key)
		}
		headers = append(headers, kafkago.Header{Key: key, Value: value})
		return nil
	}
	add := func(key, value string) error {
		start := len(buf)
		buf = append(buf, value...)
		return push(key, start)
	}
	// specversion, id, source and type are required; the rest only when set.
	for _, a := range [...]struct{ key, value string }{
		{headerSpecVersion, ev.SpecVersion()},
		{headerID, ev.ID()},
		{headerSource, source},
		{headerType, ev.Type()},
	} {
		if err := add(a.key, a.value); err != nil {
			return kafkago.Message{}, err
		}
	}
	if subject := ev.Subject(); subject != "" {
		if err := add(headerSubject, subject); err != nil {
			return kafkago.Message{}, err
		}
	}
	if !t.IsZero() {
		// The canonical string form of a timestamp (RFC 3339, UTC), as
		// types.FormatTime writes it, without a string of its own.
		start := len(buf)
		buf = t.UTC().AppendFormat(buf, time.RFC3339Nano)
		if err := push(headerTime, start); err != nil {
			return kafkago.Message{}, err
		}
	}
	for _, a := range [...]struct{ key, value string }{
		{headerDataSchema, ev.DataSchema()},
		{HeaderContentType, ev.DataContentType()},
	} {
		if a.value == "" {
			continue
		}
		if err := add(a.key, a.value); err != nil {
			return kafkago.Message{}, err
		}
	}
	for i, name := range names {
		if err := add(HeaderPrefix+name, extValues[i]); err != nil {
			return kafkago.Message{}, err
		}
	}
	msg := kafkago.Message{Headers: headers}
	if data := ev.Data(); len(data) > 0 {
		msg.Value = data
	}
	return msg, nil
}

// extensionsOf reads ev's extensions without the copy Event.Extensions makes.
func extensionsOf(ev *event.Event) map[string]any {
	if c, ok := ev.Context.(*event.EventContextV1); ok {
		return c.Extensions
	}
	return ev.Extensions()
}

func structuredMessage(ev *event.Event) (kafkago.Message, error) {
	if err := checkNoDataExtension(ev); err != nil {
		return kafkago.Message{}, err
	}
	out := sinks.ForJSONFormat(ev)
	value, err := out.MarshalJSON()
	if err != nil {
		return kafkago.Message{}, fmt.Errorf("encoding the event as JSON: %w", err)
	}
	// sdk-go writes JSON data as it came, so a provider's pretty-printed
	// body (or its trailing newline) would make the value span lines, which
	// line-based consumers (kcat, jq -c pipelines) split. Compact it then,
	// as the file sink does; newlines inside strings are escaped already.
	if bytes.IndexByte(value, '\n') >= 0 || bytes.IndexByte(value, '\r') >= 0 {
		var compact bytes.Buffer
		if err := json.Compact(&compact, value); err != nil {
			return kafkago.Message{}, fmt.Errorf("encoding the event as JSON: %w", err)
		}
		value = compact.Bytes()
	}
	return kafkago.Message{
		Headers: []kafkago.Header{{Key: HeaderContentType, Value: []byte(ContentTypeStructuredJSON)}},
		Value:   value,
	}, nil
}

// FromMessage decodes a Kafka message made by any producer that follows the
// CloudEvents Kafka protocol binding. A content-type starting with
// application/cloudevents means structured mode (only the JSON format is
// understood); otherwise the message must carry ce_specversion and is read in
// binary mode. Only spec version 1.0 is accepted. Header names are matched
// case-insensitively; a repeated attribute header is an error. Extensions of
// a binary message come back as strings, as binary mode carries them. The
// message's key, topic and offset are not part of the event. A message that
// is not a CloudEvent at all gives an error wrapping ErrNotCloudEvent.
func FromMessage(msg kafkago.Message) (*event.Event, error) {
	var contentType string
	haveContentType := false
	for _, h := range msg.Headers {
		if strings.EqualFold(h.Key, HeaderContentType) {
			if haveContentType {
				return nil, errors.New("content-type header repeated")
			}
			contentType, haveContentType = string(h.Value), true
		}
	}
	if len(contentType) >= len(mediaTypeCloudEvents) && strings.EqualFold(contentType[:len(mediaTypeCloudEvents)], mediaTypeCloudEvents) {
		return fromStructured(contentType, msg.Value)
	}
	return fromBinary(msg)
}

func fromStructured(contentType string, value []byte) (*event.Event, error) {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return nil, fmt.Errorf("content-type %q: %w", contentType, err)
	}
	switch mt {
	case mediaTypeCloudEventsJSON:
	case mediaTypeCloudEventsBatch:
		return nil, errors.New("batched content mode is not part of the Kafka binding")
	default:
		return nil, fmt.Errorf("unsupported event format %q", mt)
	}
	if !utf8.Valid(value) {
		return nil, errors.New("structured CloudEvent is not UTF-8 JSON")
	}
	ev := event.New()
	if err := json.Unmarshal(value, &ev); err != nil {
		return nil, fmt.Errorf("decoding structured CloudEvent: %w", err)
	}
	if v := ev.SpecVersion(); v != event.CloudEventsVersionV1 {
		return nil, fmt.Errorf("unsupported specversion %q", v)
	}
	if err := ev.Validate(); err != nil {
		return nil, fmt.Errorf("invalid CloudEvent: %w", err)
	}
	// sdk-go lower-cases unknown members into extensions, so "Data" would
	// become an extension that no JSON event could carry next to data.
	if err := checkNoDataExtension(&ev); err != nil {
		return nil, fmt.Errorf("decoding structured CloudEvent: %w", err)
	}
	return &ev, nil
}

// checkNoDataExtension refuses an extension named as the JSON event format's
// data members: written beside the data, it would stand for it.
func checkNoDataExtension(ev *event.Event) error {
	for _, name := range []string{"data", "data_base64"} {
		if _, ok := extensionsOf(ev)[name]; ok {
			return fmt.Errorf("extension %q is reserved for the data in the JSON event format", name)
		}
	}
	return nil
}

func fromBinary(msg kafkago.Message) (*event.Event, error) {
	attrs := make(map[string]string, len(msg.Headers))
	var contentType *string
	for _, h := range msg.Headers {
		key := strings.ToLower(h.Key)
		if key == HeaderContentType {
			s := string(h.Value)
			contentType = &s
			continue
		}
		name, ok := strings.CutPrefix(key, HeaderPrefix)
		if !ok {
			continue
		}
		if _, dup := attrs[name]; dup {
			return nil, fmt.Errorf("header %s repeated", key)
		}
		if !utf8.Valid(h.Value) {
			return nil, fmt.Errorf("header %s is not UTF-8", key)
		}
		attrs[name] = string(h.Value)
	}
	version, ok := attrs["specversion"]
	if !ok {
		return nil, fmt.Errorf("%w: no %sspecversion header and no application/cloudevents content-type", ErrNotCloudEvent, HeaderPrefix)
	}
	if version != event.CloudEventsVersionV1 {
		return nil, fmt.Errorf("unsupported specversion %q", version)
	}
	ev := event.New(event.CloudEventsVersionV1)
	ec := ev.Context.(*event.EventContextV1)
	for name, value := range attrs {
		var err error
		switch name {
		case "specversion":
		case "id":
			err = ec.SetID(value)
		case "source":
			err = ec.SetSource(value)
		case "type":
			err = ec.SetType(value)
		case "subject":
			err = ec.SetSubject(value)
		case "dataschema":
			err = ec.SetDataSchema(value)
		case "datacontenttype":
			// Not the binding's header for it, but unambiguous: content-type,
			// when present, wins below.
			err = ec.SetDataContentType(value)
		case "time":
			t, perr := types.ParseTime(value)
			if perr == nil {
				err = ec.SetTime(t)
			} else {
				err = perr
			}
		default:
			err = ec.SetExtension(name, value)
		}
		if err != nil {
			return nil, fmt.Errorf("header %s%s: %w", HeaderPrefix, name, err)
		}
	}
	if contentType != nil {
		_ = ec.SetDataContentType(*contentType)
	}
	if len(msg.Value) > 0 {
		ev.DataEncoded = bytes.Clone(msg.Value)
	}
	if err := ev.Validate(); err != nil {
		return nil, fmt.Errorf("invalid CloudEvent: %w", err)
	}
	return &ev, nil
}
