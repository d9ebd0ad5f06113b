package router

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
	"gopkg.in/yaml.v3"

	"github.com/hookbridge/hookbridge/config"
)

// referenceDecode is the plain way to read a payload: one json.Decoder
// value with json.Number, and nothing after it. The scanner must agree.
func referenceDecode(data []byte) (any, bool) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, false
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, false
	}
	return v, true
}

// referenceLookup walks a decoded payload.
func referenceLookup(v any, path []pathSegment) (string, bool) {
	for _, seg := range path {
		switch node := v.(type) {
		case map[string]any:
			next, ok := node[seg.key]
			if !ok {
				return "", false
			}
			v = next
		case []any:
			if seg.index < 0 || seg.index >= len(node) {
				return "", false
			}
			v = node[seg.index]
		default:
			return "", false
		}
	}
	switch x := v.(type) {
	case string:
		return x, true
	case json.Number:
		return string(x), true
	case bool:
		if x {
			return "true", true
		}
		return "false", true
	}
	return "", false
}

var fuzzPaths = []string{"a", "a.b", "a.b.c", "a.0", "a.1.b", "a.01", "0", "b", "é", "a.b.c.d.e"}

// checkScan compares the scanner with the reference for payload and paths.
func checkScan(t *testing.T, payload []byte, paths []string) {
	t.Helper()
	var segs [][]pathSegment
	for _, p := range paths {
		attr, problem := parseAttribute("data." + p)
		if problem != "" {
			continue
		}
		segs = append(segs, attr.path)
	}
	root, slots := pathTrie(segs)
	n := 0
	for _, s := range slots {
		n = max(n, s+1)
	}
	values := make([]dataValue, n)
	valid := scanPayload(payload, root, values)
	decoded, wantValid := referenceDecode(payload)
	if valid != wantValid {
		t.Fatalf("payload %q: scanner valid=%v, encoding/json valid=%v", payload, valid, wantValid)
	}
	if !valid {
		return
	}
	for i, path := range segs {
		want, wantFound := referenceLookup(decoded, path)
		v := values[slots[i]]
		if v.found != wantFound || (v.found && string(v.bytes(payload)) != want) {
			t.Fatalf("payload %q path %v: scanner (%v, %q), encoding/json (%v, %q)",
				payload, path, v.found, v.bytes(payload), wantFound, want)
		}
	}
}

func TestScanAgreesWithEncodingJSON(t *testing.T) {
	deep := func(n int) []byte {
		return []byte(strings.Repeat("[", n) + strings.Repeat("]", n))
	}
	tests := []struct {
		name    string
		payload []byte
	}{
		{"object", []byte(`{"a": {"b": "x", "c": 1}}`)},
		{"whitespace", []byte(" \t\r\n{ \"a\" : { \"b\" : \"x\" } } \n")},
		{"duplicate key replaces subtree", []byte(`{"a": {"b": "x"}, "a": "y"}`)},
		{"duplicate key keeps later subtree", []byte(`{"a": "y", "a": {"b": "x"}}`)},
		{"array index", []byte(`{"a": ["x", {"b": true}]}`)},
		{"object with numeric keys", []byte(`{"a": {"0": "x", "01": "y"}}`)},
		{"escapes", []byte(`{"a": {"b": "line\nquote\" \u00e9 \ud83d\ude00 \/"}}`)},
		{"escaped key", []byte(`{"\u0061": {"b": "x"}}`)},
		{"lone surrogate", []byte(`{"a": "\ud800"}`)},
		{"invalid utf-8", []byte("{\"a\": \"\xff\xfe\"}")},
		{"invalid utf-8 key", []byte("{\"\xe9\": \"x\"}")},
		{"non-ascii key", []byte(`{"é": "x"}`)},
		{"numbers", []byte(`{"a": -0.0e+10, "b": 12345678901234567890123}`)},
		{"null", []byte(`{"a": null, "b": false}`)},
		{"top-level scalar", []byte(`"a"`)},
		{"top-level null", []byte(`null`)},
		{"empty", []byte(``)},
		{"only space", []byte(`   `)},
		{"trailing value", []byte(`{"a": "x"} {}`)},
		{"trailing garbage", []byte(`{"a": "x"}x`)},
		{"leading zero", []byte(`{"a": 01}`)},
		{"bare minus", []byte(`{"a": -}`)},
		{"dot without digits", []byte(`{"a": 1.}`)},
		{"exponent without digits", []byte(`{"a": 1e+}`)},
		{"trailing comma", []byte(`{"a": 1,}`)},
		{"control character", []byte("{\"a\": \"x\ty\"}")},
		{"bad escape", []byte(`{"a": "\x"}`)},
		{"short unicode escape", []byte(`{"a": "\u12"}`)},
		{"unterminated", []byte(`{"a": "x`)},
		{"single quotes", []byte(`{'a': 'x'}`)},
		{"truncated literal", []byte(`{"a": tru}`)},
		{"deepest allowed", deep(maxNestingDepth)},
		{"too deep", deep(maxNestingDepth + 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkScan(t, tt.payload, fuzzPaths)
		})
	}
}

// FuzzMatch feeds arbitrary payloads to data-path lookups: the scanner must
// never panic and must agree with encoding/json, and Match must be consistent
// with it.
func FuzzMatch(f *testing.F) {
	seeds := []string{
		`{"a": {"b": "x"}}`, `{"a": ["x", {"b": 1.50}]}`, `{"a": true, "b": null}`,
		`{"a": {"b": "x"}, "a": 1}`, `{"\u0061": "\ud83d\ude00"}`, `[[[]]]`, `{"a": 1e999}`,
		`{"a": "x"} trailing`, "{\"a\": \"\xff\"}", ``, `"a"`,
	}
	var lead event.Event
	if err := json.Unmarshal([]byte(leadJSON), &lead); err != nil {
		f.Fatal(err)
	}
	seeds = append(seeds, string(lead.Data()))
	for _, s := range seeds {
		f.Add([]byte(s), "a.b")
	}
	f.Add([]byte(`{"x": {"y": ["z"]}}`), "x.y.0")

	f.Fuzz(func(t *testing.T, payload []byte, path string) {
		checkScan(t, payload, append([]string{path}, fuzzPaths...))

		attr, problem := parseAttribute("data." + path)
		if problem != "" {
			return
		}
		decoded, valid := referenceDecode(payload)
		want, found := referenceLookup(decoded, attr.path)
		found = found && valid

		test := func(kind filterKind, value string) filter {
			return filter{kind: kind, tests: []attributeTest{{attr: attr, value: value}}}
		}
		r := New([]Route{
			{Name: "exact", Sinks: []string{"e"}, filters: []filter{test(kindExact, want)}},
			{Name: "prefix", Sinks: []string{"p"}, filters: []filter{test(kindPrefix, want)}},
			{Name: "suffix", Sinks: []string{"s"}, filters: []filter{test(kindSuffix, want)}},
			{Name: "not", Sinks: []string{"n"}, filters: []filter{{kind: kindNot, children: []filter{test(kindExact, want)}}}},
			{Name: "other", Sinks: []string{"o"}, filters: []filter{test(kindExact, want+"\x00")}},
			{Name: "all", Sinks: []string{"e"}},
		})
		ev := event.New()
		ev.SetID("1")
		ev.SetSource("urn:fuzz")
		ev.SetType("fuzz")
		ev.DataEncoded = payload
		routes, _ := r.Match(&ev)
		got := strings.Join(routes, ",")
		wantRoutes := "not,all"
		if found {
			wantRoutes = "exact,prefix,suffix,all"
		}
		if got != wantRoutes {
			t.Fatalf("payload %q path %q (found=%v value %q): routes %s, want %s", payload, path, found, want, got, wantRoutes)
		}
	})
}

// FuzzDecode feeds arbitrary YAML to Decode, which must never panic, must
// place every error, and must only return usable routes when it reports none.
func FuzzDecode(f *testing.F) {
	for _, seed := range []string{
		fanOutRoutes,
		manyMistakes,
		"routes:\n  - {name: r, filters: [{all: [{any: [{not: {exact: {data.a.0: x}}}]}]}], sinks: [s]}\n",
		"routes:\n  - {name: r, filters: [{cesql: \"type LIKE 'a%' AND EXISTS subject\"}], sinks: [s]}\n",
		"routes: &r [{name: a, sinks: [s], filters: [{all: *r}]}]\n",
		"a: &a [x, x]\nb: &b [*a, *a, *a]\nc: &c [*b, *b, *b]\nroutes: [{name: r, sinks: [s], filters: [{any: [*c, *c]}]}]\n",
		"routes:\n  - {name: r, sinks: [s], filters: [{cesql: 'type = '}]}\n",
		"routes: ~\n",
	} {
		f.Add(seed)
	}
	events := []*event.Event{}
	for _, s := range []string{leadJSON, helpcrunchJSON, crispJSON} {
		var ev event.Event
		if err := json.Unmarshal([]byte(s), &ev); err != nil {
			f.Fatal(err)
		}
		events = append(events, &ev)
	}

	f.Fuzz(func(t *testing.T, doc string) {
		var root yaml.Node
		if yaml.Unmarshal([]byte(doc), &root) != nil {
			return
		}
		node := &root
		if _, v := config.Lookup(&root, "routes"); v != nil {
			node = v
		}
		d := &config.Decoder{File: "fuzz.yaml"}
		routes := Decode(d, node)
		for _, e := range d.Errs {
			if e.Line <= 0 || e.Column <= 0 {
				t.Fatalf("error without a position: %v", e)
			}
		}
		for _, ref := range SinkRefs(routes) {
			if ref.Node == nil {
				t.Fatalf("sink reference %v without a node", ref)
			}
		}
		r := New(routes)
		for _, ev := range events {
			r.Match(ev)
		}
		if len(d.Errs) > 0 {
			return
		}
		names := map[string]bool{}
		for _, route := range routes {
			if route.Name == "" || names[route.Name] || len(route.Sinks) == 0 {
				t.Fatalf("Decode reported no error but returned route %+v", route)
			}
			names[route.Name] = true
		}
	})
}
