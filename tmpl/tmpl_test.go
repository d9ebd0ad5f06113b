package tmpl

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"gopkg.in/yaml.v3"
)

func lead(data string) *event.Event {
	ev := event.New()
	ev.SetID("id-1")
	ev.SetType("com.helloclient.lead")
	ev.SetSource("https://helloclient.com/chatbots/HC-1")
	ev.SetSubject("sessions/s-1")
	ev.SetTime(time.Date(2026, 11, 20, 10, 15, 0, 0, time.UTC))
	ev.SetExtension("bridgesource", "helloclient")
	ev.SetDataContentType(event.ApplicationJSON)
	ev.DataEncoded = []byte(data)
	return &ev
}

func TestRender(t *testing.T) {
	ev := lead(`{"FirstName":"Ada","Nested":{"N":12345678901234567890},"Tags":["a","b"],"City":"Zürіch 東京!"}`)
	cases := []struct{ tmpl, want string }{
		{"plain text", "plain text"},
		{"{{ .Data.FirstName }} {{ .Data.Missing }}!", "Ada !"},
		{"{{ .Extensions.bridgesource }}/{{ .Type }}/{{ .Subject }}/{{ .ID }}", "helloclient/com.helloclient.lead/sessions/s-1/id-1"},
		{"{{ .Data.Nested.N }}", "12345678901234567890"},
		{`{{ .Time.Format "2006-01-02" }}`, "2026-11-20"},
		{`{{ .Data.Missing | default "none" }}`, "none"},
		{`{{ .Data.FirstName | upper }}`, "ADA"},
		{`{{ index .Data.Tags 1 }}`, "b"},
		// A key missing from the payload renders as nothing, however deep
		// the path goes below it.
		{"[{{ .Data.Missing.Deeper.Still }}]", "[]"},
		{"[{{ .Data.Nested.Missing.Deeper }}]", "[]"},
		{"[{{ .Extensions.nope.deeper }}]", "[]"},
		{`{{ .Data.Missing.Deeper | default "none" }}`, "none"},
		{`{{ if .Data.Missing.Deeper }}yes{{ else }}no{{ end }}`, "no"},
		{`{{ with .Data.Nested.Missing }}yes{{ else }}no{{ end }}`, "no"},
		// trunc counts characters, never cutting one in half.
		{`{{ .Data.City | trunc 4 }}`, "Zürі"},
		{`{{ .Data.City | trunc -3 }}`, "東京!"},
		{`{{ .Data.City | trunc 100 }}`, "Zürіch 東京!"},
	}
	v := NewView(ev)
	for _, c := range cases {
		got, err := MustParse(c.tmpl).Render(v)
		if err != nil || got != c.want {
			t.Errorf("%q: got %q, %v; want %q", c.tmpl, got, err, c.want)
		}
	}
}

func TestParseErrorsAndYAML(t *testing.T) {
	if _, err := Parse("{{ .Data.X "); err == nil || !strings.Contains(err.Error(), "bad template") {
		t.Fatalf("got %v", err)
	}
	if _, err := Parse("{{ nosuchfunc }}"); err == nil {
		t.Fatal("an unknown function must fail at parse time")
	}
	// A field no event has, or a template never defined, would fail every
	// rendering: found at load. What depends on the payload is not.
	for text, bad := range map[string]bool{
		"{{ .Nope }}":                           true,
		"{{ .data.Email }}":                     true,
		"{{ $.Subjct }}":                        true,
		"{{ (.Nope).X }}":                       true,
		`{{ if .Nope }}x{{ end }}`:              true,
		`{{ template "missing" }}`:              true,
		`{{ upper .Dta.Email }}`:                true,
		"{{ .Data.Anything.Deeper }}":           false,
		"{{ .Extensions.whatever }}":            false,
		`{{ .Time.Format "2006" }}`:             false,
		"{{ with .Data }}{{ .Email }}{{ end }}": false,
		"{{ range .Data.Tags }}{{ .Name }}{{ else }}{{ .ID }}{{ end }}": false,
		`{{ define "x" }}{{ .Email }}{{ end }}{{ template "x" .Data }}`: false,
		"{{ $.ID }} {{ .Event.ID }}":                                    false,
	} {
		_, err := Parse(text)
		if bad != (err != nil) {
			t.Errorf("%s: %v, want an error: %v", text, err, bad)
		}
	}
	var holder struct {
		T *Template `yaml:"t"`
	}
	if err := yaml.Unmarshal([]byte("t: '{{ .ID'"), &holder); err == nil {
		t.Fatal("yaml accepted a bad template")
	}
	if err := yaml.Unmarshal([]byte("t: 'x-{{ .ID }}'"), &holder); err != nil || holder.T.String() != "x-{{ .ID }}" {
		t.Fatalf("%v %v", holder.T, err)
	}
}

func TestNonJSONDataIsAString(t *testing.T) {
	ev := lead(`not json`)
	got, err := MustParse("{{ .Data }}").RenderEvent(ev)
	if err != nil || got != "not json" {
		t.Fatalf("got %q %v", got, err)
	}
}

func renderJSON(t *testing.T, src string, ev *event.Event) (string, error) {
	t.Helper()
	var j JSON
	if err := yaml.Unmarshal([]byte(src), &j); err != nil {
		t.Fatal(err)
	}
	b, err := j.Render(NewView(ev))
	return string(b), err
}

func TestJSONBody(t *testing.T) {
	ev := lead(`{"Email":"a\"b@example.com","Note":"line1\nline2 <b>&</b> é","Score":7,"Obj":{"k":[1,true,null]}}`)
	got, err := renderJSON(t, `
email: "{{ .Data.Email }}"
note: "{{ .Data.Note }}"
score: 7
vip: true
nothing: null
list: ["{{ .Data.Score }}", 2]
raw: "{{ .Data.Obj | toJson }}"
missing: "{{ .Data.Nope }}"
`, ev)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"email":"a\"b@example.com","note":"line1\nline2 <b>&</b> é","score":7,"vip":true,"nothing":null,"list":["7",2],"raw":{"k":[1,true,null]},"missing":""}`
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

// Every bad leaf is reported, each at its own node.
func TestJSONBadTemplatesAreErrorsAtTheirNodes(t *testing.T) {
	var j JSON
	err := yaml.Unmarshal([]byte("a: {b: \"{{ .X \"}\nc: [1, \"{{ end }}\"]\nd: ok\n"), &j)
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok {
		t.Fatalf("got %v, want every mistake joined", err)
	}
	var got []string
	for _, e := range joined.Unwrap() {
		var ne *NodeError
		if !errors.As(e, &ne) {
			t.Fatalf("%v is not a *NodeError", e)
		}
		got = append(got, fmt.Sprintf("%d:%d %v", ne.YAMLNode().Line, ne.YAMLNode().Column, e))
	}
	want := []string{
		`1:8 b: bad template: 1: unclosed action`,
		`2:8 c: bad template: 1: unexpected {{end}}`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func FuzzJSONBody(f *testing.F) {
	f.Add(`{"Email":"x@y","Note":"\u2028<>&\"\\"}`)
	f.Add(`{"Obj":{"a":[1,2,{"b":null}]}}`)
	f.Add(`not json at all`)
	var j JSON
	if err := yaml.Unmarshal([]byte("e: '{{ .Data.Email }}'\nn: ['{{ .Data.Note }}']\no: '{{ .Data.Obj | toJson }}'\nd: '{{ .Data }}'\n"), &j); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data string) {
		b, err := j.Render(NewView(lead(data)))
		if err == nil && !json.Valid(b) {
			t.Fatalf("rendered invalid JSON %s from %q", b, data)
		}
	})
}

func TestAttributesViewLeavesDataUndecoded(t *testing.T) {
	ev := lead(`{"FirstName":"Ada"}`)
	full, attrs := NewView(ev), NewAttributesView(ev)
	if attrs.Data != nil || attrs.Event != ev {
		t.Fatalf("Data %#v, Event %p; want nil and the event itself (%p)", attrs.Data, attrs.Event, ev)
	}
	if string(ev.Data()) != `{"FirstName":"Ada"}` {
		t.Fatalf("the event's payload changed: %q", ev.Data())
	}
	full.Data, full.Event = nil, ev
	if got, want := fmt.Sprintf("%+v", *attrs), fmt.Sprintf("%+v", *full); got != want {
		t.Fatalf("attributes differ from NewView's:\n%s\n%s", got, want)
	}
}

// A body with a key twice, or a merge key, is refused at load: JSON has no
// merge keys, and the key would be sent twice.
func TestJSONRefusesDuplicateAndMergeKeys(t *testing.T) {
	for src, want := range map[string]string{
		"email: a\nemail: b\n":                              `duplicate key "email"`,
		"base: &b {x: 1}\nbody: {<<: *b, y: 2}\n":           "merge keys (<<) are not supported",
		"nested: {list: [{k: 1, k: 2}]}\n":                  `duplicate key "k"`,
		"email: \"{{ .Data.Email }}\"\nname: \"{{ .ID }}\"": "",
	} {
		var j JSON
		err := yaml.Unmarshal([]byte(src), &j)
		if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
			t.Errorf("%q: %v, want %q", src, err, want)
		}
	}
}

// A value that contains itself through an alias is an error, not an
// endless tree.
func TestJSONThatContainsItselfIsAnError(t *testing.T) {
	for _, src := range []string{"&b {x: *b}", "&l [1, *l]", "{a: &m {b: [*m]}}"} {
		var n yaml.Node
		if err := yaml.Unmarshal([]byte(src), &n); err != nil {
			t.Fatal(err)
		}
		var j JSON
		err := j.UnmarshalYAML(n.Content[0])
		if err == nil || !strings.Contains(err.Error(), "the value contains itself") {
			t.Errorf("%s: %v", src, err)
		}
	}
	// The same mapping twice, side by side, is not a cycle.
	var j JSON
	if err := yaml.Unmarshal([]byte("{a: &m {k: v}, b: *m}"), &j); err != nil {
		t.Errorf("an alias used twice: %v", err)
	}
}

// Aliases of aliases cannot make a body build without end: past a bound,
// it is an error, found quickly.
func TestJSONAliasBombIsAnError(t *testing.T) {
	src := "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
	prev := "a"
	for _, name := range []string{"b", "c", "d", "e", "f", "g"} {
		src += fmt.Sprintf("%s: &%s [*%s, *%s, *%s, *%s, *%s, *%s, *%s, *%s, *%s, *%s]\n", name, name, prev, prev, prev, prev, prev, prev, prev, prev, prev, prev)
		prev = name
	}
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(src), &n); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var j JSON
	err := j.UnmarshalYAML(n.Content[0])
	if err == nil || !strings.Contains(err.Error(), "nodes once its aliases are followed") {
		t.Fatalf("err = %v", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("took %s", took)
	}
}
