// Package tmpl renders Go text/template templates over a CloudEvent, for
// Kafka topics and keys, Slack messages, CRM bodies and file paths.
//
// A template sees .ID .Type .Source .Subject .Time .DataContentType
// .SpecVersion, .Data (the payload decoded from JSON) and .Extensions, plus
// the Sprig function library (default, upper, toJson, date, ...). A key that
// is missing from the payload renders as nothing, not "<no value>".
package tmpl

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"text/template"
	"time"

	"github.com/Masterminds/sprig/v3"
	"github.com/cloudevents/sdk-go/v2/event"
	"gopkg.in/yaml.v3"
)

// View is what a template sees of one event. Build it once per event with
// NewView and render every template of a sink against it.
type View struct {
	ID              string
	Type            string
	Source          string
	Subject         string
	Time            time.Time
	DataContentType string
	SpecVersion     string
	Data            any
	Extensions      map[string]any
	Event           *event.Event `json:"-"`
}

// NewView decodes the event's payload once. A payload that is not JSON is
// given to templates as a string.
func NewView(ev *event.Event) *View {
	v := &View{
		ID: ev.ID(), Type: ev.Type(), Source: ev.Source(), Subject: ev.Subject(),
		Time: ev.Time(), DataContentType: ev.DataContentType(), SpecVersion: ev.SpecVersion(),
		Extensions: ev.Extensions(), Event: ev,
	}
	if v.Extensions == nil {
		v.Extensions = map[string]any{}
	}
	if data := ev.Data(); len(data) > 0 {
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		var x any
		if err := dec.Decode(&x); err == nil {
			v.Data = x
		} else {
			v.Data = string(data)
		}
	}
	return v
}

// NewAttributesView is NewView without the payload decoded (Data is nil),
// for templates that never read .Data: decoding it is most of the cost of
// a view. .Event is still the whole event.
func NewAttributesView(ev *event.Event) *View {
	bare := *ev
	bare.DataEncoded = nil
	v := NewView(&bare)
	v.Event = ev
	return v
}

// Template is one parsed template. Its zero value renders "".
type Template struct {
	text string
	t    *template.Template
	memo *attrMemo // set when the template reads nothing but attributes
}

// FuncMap is the helper functions templates have: Sprig's, plus toJson
// (compact JSON) kept under that name for Slack and CRM payloads, and a
// trunc that counts characters (Sprig's counts bytes, and cuts a
// character of a name in Zürich or 東京 in half).
func FuncMap() template.FuncMap {
	fm := sprig.TxtFuncMap()
	fm["trunc"] = truncate
	return fm
}

// truncate is trunc: the first n characters of s, or for a negative n the
// last -n.
func truncate(n int, s string) string {
	r := []rune(s)
	switch {
	case n >= 0 && len(r) > n:
		return string(r[:n])
	case n < 0 && len(r) > -n:
		return string(r[len(r)+n:])
	}
	return s
}

// Parse parses text; a text without actions is kept as a constant.
func Parse(text string) (*Template, error) {
	t := &Template{text: text}
	if !strings.Contains(text, "{{") {
		return t, nil
	}
	parsed, err := template.New("").Funcs(FuncMap()).Parse(text)
	if err != nil {
		return nil, fmt.Errorf("bad template: %s", strings.TrimPrefix(err.Error(), "template: :"))
	}
	if err := checkFields(parsed.Tree, func(name string) bool { return parsed.Lookup(name) != nil }); err != nil {
		return nil, fmt.Errorf("bad template: %v", err)
	}
	t.t = parsed
	if len(parsed.Templates()) == 1 {
		if refs, ok := attributeRefs(parsed.Tree); ok {
			t.memo = &attrMemo{refs: refs, m: make(map[string]string)}
		}
	}
	return t, nil
}

// MustParse is Parse for constant templates in code and tests.
func MustParse(text string) *Template {
	t, err := Parse(text)
	if err != nil {
		panic(err)
	}
	return t
}

// UnmarshalYAML parses the template at load time, so a bad one is a config
// error with its line.
func (t *Template) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("expected a template string")
	}
	p, err := Parse(n.Value)
	if err != nil {
		return err
	}
	*t = *p
	return nil
}

// String is the template's source text.
func (t *Template) String() string {
	if t == nil {
		return ""
	}
	return t.text
}

// IsZero reports whether no template was given.
func (t *Template) IsZero() bool { return t == nil || t.text == "" }

// IsConstant reports whether the template has no actions.
func (t *Template) IsConstant() bool { return t == nil || t.t == nil }

// Render executes the template against v.
func (t *Template) Render(v *View) (string, error) {
	if t == nil {
		return "", nil
	}
	if t.t == nil {
		return t.text, nil
	}
	var b strings.Builder
	if err := t.t.Execute(&b, v); err != nil {
		return "", fmt.Errorf("rendering %q: %w", t.text, err)
	}
	return strings.ReplaceAll(b.String(), "<no value>", ""), nil
}

// RenderEvent is Render over a fresh view of ev. A template without actions
// skips building the view (and decoding the payload); one that reads
// nothing but attributes and string extensions, such as
// "webhooks.{{ .Extensions.bridgesource }}", skips it too once it has
// rendered the same values before: it remembers its last 1024 distinct
// renderings.
func (t *Template) RenderEvent(ev *event.Event) (string, error) {
	if t.IsConstant() {
		return t.String(), nil
	}
	if out, ok, err := t.RenderAttributes(ev); ok {
		return out, err
	}
	return t.Render(NewView(ev))
}
