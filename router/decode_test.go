package router

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/hookbridge/hookbridge/config"
)

// Every mistake in one document is reported, each at its own line and column.
const manyMistakes = `routes:
  - name: leads
    filters:
      - exact: {type: com.helloclient.lead}
      - regex: {type: ".*"}
      - {exact: {type: a}, prefix: {type: b}}
      - {}
      - cesql: "type = = 'x'"
      - exact: {Type: x}
      - exact: {data.items: [1, 2]}
      - prefix: {type: ""}
      - not: [{exact: {type: a}}]
      - any: []
    sinks: [slack, crm]
    color: red
  - name: leads
    sinks: []
  - filters: [{exact: {type: x}}]
  - name: ""
    sinks: [a, a, {x: 1}]
  - just-a-string
`

func TestDecodeReportsEveryMistakeWithPosition(t *testing.T) {
	d := &config.Decoder{File: "bridge.yaml"}
	routes := Decode(d, routesNode(t, manyMistakes))
	err := d.Err()
	if err == nil {
		t.Fatal("no errors")
	}
	want := []struct {
		pos string
		msg string
	}{
		{"5:9", `route "leads": unknown filter dialect "regex" (known dialects: all, any, cesql, exact, not, prefix, suffix)`},
		{"6:28", `route "leads": a filter takes exactly one dialect, found exact and prefix`},
		{"7:9", `route "leads": empty filter`},
		{"8:16", `route "leads": invalid CESQL expression "type = = 'x'"`},
		{"9:17", `route "leads": exact: "Type" is not a CloudEvents attribute name`},
		{"10:29", `route "leads": exact value for data.items must be a string, found a list`},
		{"11:24", `route "leads": prefix value for type must not be empty`},
		{"12:14", `route "leads": not takes one filter, found a list`},
		{"13:14", `route "leads": any needs at least one filter`},
		{"15:5", `route "leads": unknown key "color" (known keys: filters, name, sinks)`},
		{"16:11", `route "leads": duplicate route name (first at line 2)`},
		{"17:12", `route "leads": sinks must name at least one sink`},
		{"18:5", `route #3: name is required`},
		{"18:5", `route #3: sinks is required`},
		{"19:11", `route #4: name must not be empty`},
		{"20:16", `route #4: sink "a" is listed twice`},
		{"20:19", `route #4: a sink must be named by a string, found a mapping`},
		{"21:5", `routes: each route must be a mapping with name, filters and sinks, found "just-a-string"`},
	}
	errs := d.Errs
	if len(errs) != len(want) {
		t.Errorf("got %d errors, want %d:\n%v", len(errs), len(want), err)
	}
	for i := 0; i < min(len(errs), len(want)); i++ {
		e := errs[i]
		pos := fmt.Sprintf("%d:%d", e.Line, e.Column)
		if pos != want[i].pos || !strings.HasPrefix(e.Msg, want[i].msg) || e.File != "bridge.yaml" {
			t.Errorf("error %d = %s:%s: %s\nwant      bridge.yaml:%s: %s...", i, e.File, pos, e.Msg, want[i].pos, want[i].msg)
		}
	}

	// Every mapping entry comes back, so that its sinks can be checked too,
	// but a route with a mistake matches nothing.
	if len(routes) != 4 {
		t.Fatalf("got %d routes, want 4", len(routes))
	}
	var refs []string
	for _, ref := range SinkRefs(routes) {
		refs = append(refs, fmt.Sprintf("%s/%s@%d:%d", ref.Route, ref.Sink, ref.Node.Line, ref.Node.Column))
	}
	if wantRefs := []string{"leads/slack@14:13", "leads/crm@14:20", "/a@20:13"}; !slices.Equal(refs, wantRefs) {
		t.Errorf("SinkRefs = %q, want %q", refs, wantRefs)
	}
	lead := parseEvent(t, leadJSON)
	if matched, sinks := New(routes).Match(lead); matched != nil || sinks != nil {
		t.Errorf("routes with mistakes matched: %v %v", matched, sinks)
	}
}

func TestDecodeMistakes(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		at   string // the error is where this text first occurs in doc
		msg  string // and its message contains this
	}{
		{"routes not a list", "routes: {a: 1}\n", "{a: 1}", "routes must be a list of routes, found a mapping"},
		{"filters not a list", "routes:\n  - {name: r, sinks: [s], filters: {exact: {type: a}}}\n", "{exact", "filters must be a list of filters, found a mapping"},
		{"filter not a mapping", "routes:\n  - {name: r, sinks: [s], filters: [exact]}\n", "exact]", `a filter must be a mapping with one of the keys all, any, cesql, exact, not, prefix, suffix; found "exact"`},
		{"exact not a mapping", "routes:\n  - {name: r, sinks: [s], filters: [{exact: type}]}\n", "type}", `exact must map attribute names to values, found "type"`},
		{"exact empty", "routes:\n  - {name: r, sinks: [s], filters: [{exact: {}}]}\n", "{}}", "exact needs at least one attribute"},
		{"duplicate attribute", "routes:\n  - {name: r, sinks: [s], filters: [{exact: {type: a, type: b}}]}\n", "type: b", `duplicate key "type"`},
		{"duplicate route key", "routes:\n  - {name: r, sinks: [s], name: q}\n", "name: q", `duplicate key "name"`},
		{"non-scalar key", "routes:\n  - {name: r, sinks: [s], filters: [{exact: {[a]: b}}]}\n", "[a]", "a key must be a plain name, found a list"},
		{"data alone", "routes:\n  - {name: r, sinks: [s], filters: [{exact: {data: x}}]}\n", "data: x", `"data" is the whole payload`},
		{"data empty segment", "routes:\n  - {name: r, sinks: [s], filters: [{exact: {data..x: y}}]}\n", "data..x", `data path "data..x" has an empty segment`},
		{"data trailing dot", "routes:\n  - {name: r, sinks: [s], filters: [{suffix: {data.x.: y}}]}\n", "data.x.", `data path "data.x." has an empty segment`},
		{"attribute with dash", "routes:\n  - {name: r, sinks: [s], filters: [{prefix: {bridge-source: y}}]}\n", "bridge-source", `"bridge-source" is not a CloudEvents attribute name`},
		{"null value", "routes:\n  - {name: r, sinks: [s], filters: [{exact: {type: null}}]}\n", "null", "exact value for type must be a string, found nothing"},
		{"hex number", "routes:\n  - {name: r, sinks: [s], filters: [{exact: {data.n: 0x1F}}]}\n", "0x1F", "0x1F for data.n is a number JSON spells differently"},
		{"empty suffix", "routes:\n  - {name: r, sinks: [s], filters: [{suffix: {subject: ''}}]}\n", "''", "suffix value for subject must not be empty"},
		{"cesql mapping", "routes:\n  - {name: r, sinks: [s], filters: [{cesql: {a: b}}]}\n", "{a: b}", "cesql must be an expression string, found a mapping"},
		{"cesql empty", "routes:\n  - {name: r, sinks: [s], filters: [{cesql: '  '}]}\n", "'  '", "cesql expression must not be empty"},
		{"cesql syntax", "routes:\n  - {name: r, sinks: [s], filters: [{cesql: 'type = = 1'}]}\n", "'type", `invalid CESQL expression "type = = 1": syntax error at column 8: extraneous input '='`},
		{"cesql incomplete", "routes:\n  - {name: r, sinks: [s], filters: [{cesql: 'type = '}]}\n", "'type", `invalid CESQL expression "type = ": syntax error at column 8: mismatched input '<EOF>' expecting {`},
		{"cesql not a condition", "routes:\n  - {name: r, sinks: [s], filters: [{cesql: 'type'}]}\n", "'type", `invalid CESQL expression "type": it yields a string, not true or false`},
		{"cesql unknown function", "routes:\n  - {name: r, sinks: [s], filters: [{cesql: 'NOSUCHFN(type) = 1'}]}\n", "'NOSUCHFN", `invalid CESQL expression "NOSUCHFN(type) = 1": no such function`},
		{"cesql data path", "routes:\n  - {name: r, sinks: [s], filters: [{cesql: \"data.Email = 'x'\"}]}\n", "\"data", `invalid CESQL expression "data.Email = 'x'": syntax error at column 5: token recognition error at: '.'`},
		{"all not a list", "routes:\n  - {name: r, sinks: [s], filters: [{all: {exact: {type: a}}}]}\n", "{exact", "all must be a list of filters, found a mapping"},
		{"nested mistake", "routes:\n  - name: r\n    sinks: [s]\n    filters:\n      - any:\n          - not:\n              all:\n                - exact: {type: a}\n                - exact: {tyPe: b}\n", "tyPe", `"tyPe" is not a CloudEvents attribute name`},
		{"name a list", "routes:\n  - {name: [r], sinks: [s]}\n", "[r]", "name must be a string, found a list"},
		{"name null", "routes:\n  - {name: ~, sinks: [s]}\n", "~", "name must be a string, found nothing"},
		{"sinks not a list", "routes:\n  - {name: r, sinks: s}\n", "s}", `sinks must be a list of sink names, found "s"`},
		{"sink empty", "routes:\n  - {name: r, sinks: [' ']}\n", "' '", "a sink name must not be empty"},
		{"sink null", "routes:\n  - name: r\n    sinks:\n      - ~\n", "~", "a sink must be named by a string, found nothing"},
		{"route refers to the list", "routes: &r [*r]\n", "&r", "each route must be a mapping with name, filters and sinks, found a list"},
		{"filter refers to itself", "routes:\n  - {name: r, sinks: [s], filters: [&f {not: *f}]}\n", "&f", "refers to itself"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := &config.Decoder{File: "f.yaml"}
			Decode(d, routesNode(t, tt.doc))
			if len(d.Errs) != 1 {
				t.Fatalf("got %d errors, want 1:\n%v", len(d.Errs), d.Err())
			}
			e := d.Errs[0]
			got := fmt.Sprintf("%d:%d", e.Line, e.Column)
			if want := position(t, tt.doc, tt.at); got != want || !strings.Contains(e.Msg, tt.msg) {
				t.Fatalf("error = %s: %s\nwant    %s: ...%s...", got, e.Msg, want, tt.msg)
			}
		})
	}
}

// position returns the line:col where text first occurs in doc.
func position(t *testing.T, doc, text string) string {
	t.Helper()
	for i, line := range strings.Split(doc, "\n") {
		if col := strings.Index(line, text); col >= 0 {
			return fmt.Sprintf("%d:%d", i+1, col+1)
		}
	}
	t.Fatalf("%q not in doc", text)
	return ""
}

func TestDecodeValid(t *testing.T) {
	tests := []struct {
		name   string
		doc    string
		routes []string
	}{
		{"null routes", "routes:\n", nil},
		{"empty list", "routes: []\n", nil},
		{"null filters", "routes:\n  - {name: r, filters: ~, sinks: [s]}\n", []string{"r"}},
		{"aliases reuse filters", `
filters: &leads [{exact: {type: com.helloclient.lead}}]
routes:
  - {name: a, filters: *leads, sinks: [s]}
  - {name: b, filters: *leads, sinks: [t]}
`, []string{"a", "b"}},
		{"numbers and booleans", `
routes:
  - {name: r, filters: [{exact: {data.n: -1.5e3, data.ok: True, attempts: 3}}], sinks: [s]}
`, []string{"r"}},
		{"cesql that is a YAML boolean", "routes:\n  - {name: r, filters: [{cesql: true}], sinks: [s]}\n", []string{"r"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var names []string
			for _, r := range decodeRoutes(t, tt.doc) {
				names = append(names, r.Name)
			}
			if !slices.Equal(names, tt.routes) {
				t.Fatalf("routes = %q, want %q", names, tt.routes)
			}
		})
	}
}

func TestDecodeNormalizesValues(t *testing.T) {
	routes := decodeRoutes(t, `
routes:
  - {name: r, filters: [{exact: {data.n: -1.5e3, data.ok: True, attempts: 3}}], sinks: [s]}
`)
	var got []string
	for _, test := range routes[0].filters[0].tests {
		got = append(got, test.attr.name+"="+test.value)
	}
	if want := []string{"data.n=-1.5e3", "data.ok=true", "attempts=3"}; !slices.Equal(got, want) {
		t.Fatalf("tests = %q, want %q", got, want)
	}
}
