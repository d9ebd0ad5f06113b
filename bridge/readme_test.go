package bridge

import (
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/hookbridge/hookbridge/sinks"
	"github.com/hookbridge/hookbridge/sources"
)

// TestEveryConfigKeyIsInTheREADME keeps the README's configuration
// reference in step with the keys the bridge accepts: every key of the
// file's sections, of every source and sink, and of their common keys must
// be named there. A key is named when it appears in backquotes, alone or at
// the end of a dotted path (`retry.max_attempts`), or as a key in one of the
// README's YAML examples.
func TestEveryConfigKeyIsInTheREADME(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	documented := documentedKeys(string(readme))

	type part struct {
		where string
		v     any
	}
	parts := []part{
		{"the file's sections", fileShape{}},
		{"every source", SourceCommon{}},
		{"every sink", SinkCommon{}},
	}
	for _, typ := range sources.Types() {
		r, _ := sources.Lookup(typ)
		parts = append(parts, part{"source type " + typ, r.NewConfig()})
	}
	for _, typ := range sinks.Types() {
		r, _ := sinks.Lookup(typ)
		parts = append(parts, part{"sink type " + typ, r.NewConfig()})
	}
	if len(parts) < 3+6+4 {
		t.Fatalf("only %d parts: are the registries filled (sources/all, sinks/all)?", len(parts))
	}
	for _, p := range parts {
		keys := yamlKeys(reflect.TypeOf(p.v), "")
		if len(keys) == 0 {
			t.Errorf("%s: no keys found in %T", p.where, p.v)
		}
		for _, k := range keys {
			if !documented[k] && !documented[k[strings.LastIndexByte(k, '.')+1:]] {
				t.Errorf("%s: key %q is not in the README", p.where, k)
			}
		}
	}
}

// TestNoOwnKeyIsShadowedByACommonKey: a source's or sink's own key with
// the name of a key every source or sink has could never be set, since the
// common key takes it (config.Decoder.DecodeInto gives a key to the first
// struct that declares it).
func TestNoOwnKeyIsShadowedByACommonKey(t *testing.T) {
	check := func(kind, typ string, common, own any) {
		shared := yamlKeys(reflect.TypeOf(common), "")
		for _, k := range yamlKeys(reflect.TypeOf(own), "") {
			if slices.Contains(shared, k) {
				t.Errorf("%s type %s: its own key %q is shadowed by the key every %s has", kind, typ, k, kind)
			}
		}
	}
	for _, typ := range sources.Types() {
		r, _ := sources.Lookup(typ)
		check("source", typ, SourceCommon{}, r.NewConfig())
	}
	for _, typ := range sinks.Types() {
		r, _ := sinks.Lookup(typ)
		check("sink", typ, SinkCommon{}, r.NewConfig())
	}
}

var (
	backquoted = regexp.MustCompile("`([a-z_][a-z0-9_.]*)`")
	yamlKey    = regexp.MustCompile(`(?m)(?:^\s*(?:-\s+)?|[{,]\s*)([a-z_][a-z0-9_]*):`)
)

// documentedKeys collects what the README names as keys, each dotted path
// also under its last element and its prefixes.
func documentedKeys(readme string) map[string]bool {
	keys := map[string]bool{}
	for _, m := range backquoted.FindAllStringSubmatch(readme, -1) {
		keys[m[1]] = true
		keys[m[1][strings.LastIndexByte(m[1], '.')+1:]] = true
		for i, c := range m[1] {
			if c == '.' {
				keys[m[1][:i]] = true // retry.max_attempts names retry too
			}
		}
	}
	for _, block := range strings.Split(readme, "```yaml")[1:] {
		block, _, _ = strings.Cut(block, "```")
		for _, m := range yamlKey.FindAllStringSubmatch(block, -1) {
			keys[m[1]] = true
		}
	}
	return keys
}

// yamlKeys lists the YAML keys of a struct type, nested ones as dotted
// paths under prefix; inline structs add their keys at the same level.
func yamlKeys(t reflect.Type, prefix string) []string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return nil
	}
	var keys []string
	for i := range t.NumField() {
		f := t.Field(i)
		tag, ok := f.Tag.Lookup("yaml")
		if !ok || tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if slices.Contains(strings.Split(opts, ","), "inline") {
			keys = append(keys, yamlKeys(ft, prefix)...)
			continue
		}
		if name == "" {
			continue
		}
		key := prefix + name
		keys = append(keys, key)
		if ft.Kind() == reflect.Struct && ft.PkgPath() != "time" && !strings.HasSuffix(ft.PkgPath(), "/config") {
			keys = append(keys, yamlKeys(ft, key+".")...)
		}
	}
	return keys
}
