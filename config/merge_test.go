package config

import (
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

func parseDoc(t *testing.T, src string) *yaml.Node {
	t.Helper()
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(src), &n); err != nil {
		t.Fatal(err)
	}
	return &n
}

// Merged pairs follow YAML's merge type: the mapping's own keys win, then
// the earlier mappings of a list; merges inside merged mappings count too.
func TestMergeKeys(t *testing.T) {
	root := parseDoc(t, `
base: &base {name: base, retries: 1, wait: 1s}
more: &more {<<: *base, retries: 2, tags: [m]}
many:
  own: {<<: *base, name: own}
  list: {<<: [*more, {name: listed, on: true}, *base]}
  nested: {<<: *more}
  literal:
    <<: {limit: 1KiB}
    name: literal
`)
	d := &Decoder{File: "f.yaml"}
	d.Merge(root)
	var o struct {
		Base inner            `yaml:"base"`
		More inner            `yaml:"more"`
		Many map[string]inner `yaml:"many"`
	}
	d.Decode(root.Content[0], &o)
	if err := d.Err(); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]inner{
		"own":     {Name: "own", Retries: 1, Wait: 1e9},
		"list":    {Name: "base", Retries: 2, Wait: 1e9, On: true, Tags: []string{"m"}},
		"nested":  {Name: "base", Retries: 2, Wait: 1e9, Tags: []string{"m"}},
		"literal": {Name: "literal", Limit: 1024},
	} {
		got := o.Many[name]
		if got.Name != want.Name || got.Retries != want.Retries || got.Wait != want.Wait || got.On != want.On ||
			got.Limit != want.Limit || strings.Join(got.Tags, ",") != strings.Join(want.Tags, ",") {
			t.Errorf("%s: got %+v, want %+v", name, got, want)
		}
	}
	if o.More.Name != "base" || o.More.Retries != 2 {
		t.Errorf("more: %+v", o.More)
	}
}

// A mistake in a merged mapping is reported where it is written, once for
// each mapping that merges it, naming that mapping's line; a merge of
// something else than mappings is an error where the merge is written; a
// quoted "<<" is an ordinary key.
func TestMergeErrors(t *testing.T) {
	root := parseDoc(t, `defaults: &d {retries: many, nope: 1}
list: &l [1, 2]
many:
  a: {<<: *d, name: a}
  b: {<<: *d, name: b}
  c: {<<: *l}
  e: {<<: [*d, x]}
  f: {<<: scalar}
  g: {"<<": *d}
`)
	d := &Decoder{File: "f.yaml"}
	d.Merge(root)
	var o struct {
		Defaults inner            `yaml:"defaults"`
		List     []int            `yaml:"list"`
		Many     map[string]inner `yaml:"many"`
	}
	d.Decode(root.Content[0], &o)
	var got []string
	for _, e := range d.Err().(Errors) {
		got = append(got, e.Error())
	}
	want := []string{
		`f.yaml:1:24: "many" is not a whole number`,
		`f.yaml:1:24: "many" is not a whole number (merged into the mapping at line 4)`,
		`f.yaml:1:24: "many" is not a whole number (merged into the mapping at line 5)`,
		`f.yaml:1:24: "many" is not a whole number (merged into the mapping at line 7)`,
		`f.yaml:1:30: unknown key "nope" (known keys: headers, limit, name, on, retries, tags, wait)`,
		`f.yaml:1:30: unknown key "nope" (known keys: headers, limit, name, on, retries, tags, wait) (merged into the mapping at line 4)`,
		`f.yaml:1:30: unknown key "nope" (known keys: headers, limit, name, on, retries, tags, wait) (merged into the mapping at line 5)`,
		`f.yaml:1:30: unknown key "nope" (known keys: headers, limit, name, on, retries, tags, wait) (merged into the mapping at line 7)`,
		`f.yaml:6:11: a merge (<<) list holds mappings (<<: [*a, *b]), not "1"`,
		`f.yaml:6:11: a merge (<<) list holds mappings (<<: [*a, *b]), not "2"`,
		`f.yaml:7:16: a merge (<<) list holds mappings (<<: [*a, *b]), not "x"`,
		`f.yaml:8:11: a merge (<<) takes a mapping (<<: *defaults) or a list of them, not "scalar"`,
		`f.yaml:9:7: unknown key "<<" (known keys: headers, limit, name, on, retries, tags, wait)`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
