package kafka

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"maps"
	"sort"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/binding/format"
	"github.com/cloudevents/sdk-go/v2/binding/spec"
	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"
	kafkago "github.com/segmentio/kafka-go"

	"github.com/hookbridge/hookbridge/sinks"
)

// sdkMessage reads a Kafka message with sdk-go's own binding rules: its
// format registry for structured mode and its ce_-prefixed attribute table for
// binary mode. It is the "independent consumer" the package's FromMessage is
// checked against; it shares no code with binding.go.
type sdkMessage struct {
	value       []byte
	headers     map[string][]byte
	contentType string
	format      format.Format
	version     spec.Version
}

var sdkSpecs = spec.WithPrefix(HeaderPrefix)

func newSDKMessage(m kafkago.Message) *sdkMessage {
	sm := &sdkMessage{value: m.Value, headers: map[string][]byte{}}
	for _, h := range m.Headers {
		k := strings.ToLower(h.Key)
		sm.headers[k] = h.Value
		if k == "content-type" {
			sm.contentType = string(h.Value)
		}
	}
	if f := format.Lookup(sm.contentType); f != nil {
		sm.format = f
	} else {
		sm.version = sdkSpecs.Version(string(sm.headers[sdkSpecs.PrefixedSpecVersionName()]))
	}
	return sm
}

func (m *sdkMessage) ReadEncoding() binding.Encoding {
	switch {
	case m.format != nil:
		return binding.EncodingStructured
	case m.version != nil:
		return binding.EncodingBinary
	}
	return binding.EncodingUnknown
}

func (m *sdkMessage) ReadStructured(ctx context.Context, w binding.StructuredWriter) error {
	if m.format == nil {
		return binding.ErrNotStructured
	}
	return w.SetStructuredEvent(ctx, m.format, bytes.NewReader(m.value))
}

func (m *sdkMessage) ReadBinary(ctx context.Context, w binding.BinaryWriter) error {
	if m.version == nil {
		return binding.ErrNotBinary
	}
	for k, v := range m.headers {
		var err error
		switch {
		case k == "content-type":
			err = w.SetAttribute(m.version.AttributeFromKind(spec.DataContentType), string(v))
		case strings.HasPrefix(k, HeaderPrefix):
			if attr := m.version.Attribute(k); attr != nil {
				err = w.SetAttribute(attr, string(v))
			} else {
				err = w.SetExtension(strings.TrimPrefix(k, HeaderPrefix), string(v))
			}
		}
		if err != nil {
			return err
		}
	}
	if len(m.value) > 0 {
		return w.SetData(bytes.NewReader(m.value))
	}
	return nil
}

func (m *sdkMessage) GetAttribute(k spec.Kind) (spec.Attribute, any) {
	attr := m.version.AttributeFromKind(k)
	if attr == nil {
		return nil, nil
	}
	v, ok := m.headers[attr.PrefixedName()]
	if !ok {
		return attr, nil
	}
	return attr, string(v)
}

func (m *sdkMessage) GetExtension(name string) any {
	if v, ok := m.headers[HeaderPrefix+name]; ok {
		return string(v)
	}
	return nil
}

func (m *sdkMessage) Finish(error) error { return nil }

var (
	_ binding.Message               = (*sdkMessage)(nil)
	_ binding.MessageMetadataReader = (*sdkMessage)(nil)
)

// sdkDecode decodes m as an sdk-go consumer would.
func sdkDecode(m kafkago.Message) (*event.Event, error) {
	return binding.ToEvent(context.Background(), newSDKMessage(m))
}

// canonical is an event reduced to what both content modes carry: every
// attribute and extension in its canonical string form, and the data bytes.
func canonical(t testing.TB, ev *event.Event) map[string]string {
	t.Helper()
	out := map[string]string{
		"specversion": ev.SpecVersion(), "id": ev.ID(), "source": ev.Source(), "type": ev.Type(),
		"subject": ev.Subject(), "datacontenttype": ev.DataContentType(), "dataschema": ev.DataSchema(),
	}
	if !ev.Time().IsZero() {
		out["time"] = types.FormatTime(ev.Time())
	}
	for name, v := range ev.Extensions() {
		s, err := types.Format(v)
		if err != nil {
			t.Fatalf("extension %s: %v", name, err)
		}
		out["ext:"+name] = s
	}
	out["data"] = hex.EncodeToString(jsonValue(ev))
	return out
}

// jsonValue is ev's data, compacted when the JSON event format carries it as
// a JSON value: white space around and between its tokens is not part of
// the value, and a structured message does not keep it.
func jsonValue(ev *event.Event) []byte {
	data := ev.Data()
	if written, read := sinks.DataIsJSON(ev.DataContentType()); !written || !read || !json.Valid(data) || !utf8.Valid(data) {
		return data
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, data); err != nil {
		return data
	}
	return buf.Bytes()
}

func diffCanonical(a, b map[string]string) string {
	var keys []string
	for k := range a {
		keys = append(keys, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var d strings.Builder
	for _, k := range keys {
		if a[k] != b[k] {
			d.WriteString("\n  " + k + ": " + a[k] + " != " + b[k])
		}
	}
	return d.String()
}

func assertSameEvent(t testing.TB, what string, got, want *event.Event) {
	t.Helper()
	g, w := canonical(t, got), canonical(t, want)
	if !maps.Equal(g, w) {
		t.Errorf("%s differs:%s", what, diffCanonical(g, w))
	}
}
