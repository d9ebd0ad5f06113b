package bridge

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/hookbridge/hookbridge/internal/testcert"
	"github.com/hookbridge/hookbridge/sinks"
	"github.com/hookbridge/hookbridge/sources"
	"gopkg.in/yaml.v3"
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

// TestREADMEExamplesAreOneValidConfig: users copy the README's YAML
// examples, so together they must make a file `bridge validate` accepts.
// The blocks are merged key by key (two of them add sinks; one that starts
// with "# instead" replaces the sections it sets), the variables
// they use are set, and the secret file and certificates they read are made.
func TestREADMEExamplesAreOneValidConfig(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "kafka-password"), []byte("pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(readme), "${file:/run/secrets/", "${file:"+dir+"/")
	// The HTTPS example's certificate, where it says.
	const certDir = "/etc/letsencrypt/live/hooks.example.com/"
	certFile, keyFile, _ := testcert.Write(t, dir)
	text = strings.ReplaceAll(text, certDir+"fullchain.pem", certFile)
	text = strings.ReplaceAll(text, certDir+"privkey.pem", keyFile)
	// The kafka sink's CA bundle, read when the config is loaded: any PEM
	// certificate will do.
	text = strings.ReplaceAll(text, "/etc/hookbridge/kafka-ca.pem", certFile)
	merged := map[string]any{}
	blocks := strings.Split(text, "```yaml\n")[1:]
	for i, block := range blocks {
		block, _, _ = strings.Cut(block, "```")
		var doc map[string]any
		if err := yaml.Unmarshal([]byte(block), &doc); err != nil {
			t.Fatalf("README yaml block %d: %v\n%s", i+1, err, block)
		}
		for k, v := range doc {
			if strings.HasPrefix(block, "# instead") {
				merged[k] = v
				continue
			}
			prev, ok := merged[k].(map[string]any)
			add, isMap := v.(map[string]any)
			if !ok || !isMap {
				if _, dup := merged[k]; dup {
					t.Fatalf("README yaml block %d sets %s again", i+1, k)
				}
				merged[k] = v
				continue
			}
			for name, entry := range add {
				if _, dup := prev[name]; dup {
					t.Fatalf("README yaml block %d defines %s.%s again", i+1, k, name)
				}
				prev[name] = entry
			}
		}
	}
	if len(blocks) < 5 || merged["sources"] == nil || merged["sinks"] == nil || merged["routes"] == nil {
		t.Fatalf("found %d yaml blocks, without sources, sinks and routes: has the README changed shape?", len(blocks))
	}
	out, err := yaml.Marshal(merged)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "readme.yaml")
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, v := range regexp.MustCompile(`\$\{([A-Z][A-Z0-9_]*)\}`).FindAllStringSubmatch(string(out), -1) {
		value := "readme-" + strings.ToLower(v[1])
		switch {
		case strings.HasSuffix(v[1], "_URL"):
			value = "https://hooks.slack.com/services/T000/B000/readme"
		case strings.HasSuffix(v[1], "_BROKERS"):
			value = "127.0.0.1:9092"
		case v[1] == "STANDARDWEBHOOKS_SECRET":
			value = "whsec_cmVhZG1lLWJpbGxpbmctc2VjcmV0"
		case v[1] == "STRIPE_WEBHOOK_SECRET":
			value = "whsec_readme-stripe-secret"
		}
		t.Setenv(v[1], value)
	}
	if _, err := Load(path); err != nil {
		t.Fatalf("the README's examples together are not a valid config:\n%v\n\n%s", err, out)
	}
}
