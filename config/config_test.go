package config

import (
	"errors"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

type inner struct {
	Name    string        `yaml:"name"`
	Retries int           `yaml:"retries"`
	Wait    time.Duration `yaml:"wait"`
	Limit   Size          `yaml:"limit"`
	On      bool          `yaml:"on"`
	Tags    []string      `yaml:"tags"`
	Headers map[string]string
}

type outer struct {
	Inner inner            `yaml:"inner"`
	Many  map[string]inner `yaml:"many"`
	Raw   yaml.Node        `yaml:"raw"`
}

func parse(t *testing.T, src string) *yaml.Node {
	t.Helper()
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(src), &n); err != nil {
		t.Fatal(err)
	}
	return n.Content[0]
}

func TestDecodeValues(t *testing.T) {
	d := &Decoder{File: "f.yaml"}
	var o outer
	d.Decode(parse(t, `
inner: {name: a, retries: 3, wait: 1m30s, limit: 2MiB, on: true, tags: [x, y], headers: {A: b}}
many:
  one: {name: b, wait: 0}
raw: {anything: [1, 2]}
`), &o)
	if err := d.Err(); err != nil {
		t.Fatal(err)
	}
	want := inner{Name: "a", Retries: 3, Wait: 90 * time.Second, Limit: 2 << 20, On: true, Tags: []string{"x", "y"}, Headers: map[string]string{"A": "b"}}
	if o.Inner.Name != want.Name || o.Inner.Retries != 3 || o.Inner.Wait != want.Wait || o.Inner.Limit != want.Limit || !o.Inner.On || len(o.Inner.Tags) != 2 || o.Inner.Headers["A"] != "b" {
		t.Fatalf("got %+v", o.Inner)
	}
	if o.Many["one"].Name != "b" || o.Raw.Kind != yaml.MappingNode {
		t.Fatalf("got %+v", o)
	}
}

func TestDecodeReportsEveryErrorWithPosition(t *testing.T) {
	d := &Decoder{File: "f.yaml"}
	var o outer
	d.Decode(parse(t, `inner:
  name: a
  retires: 3
  wait: soon
many:
  one: {limit: lots, on: maybe}
`), &o)
	err := d.Err()
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("got %v", err)
	}
	want := []string{
		`f.yaml:3:3: unknown key "retires"`,
		`f.yaml:4:9: "soon" is not a duration`,
		`f.yaml:6:16: "lots" is not a size`,
		`f.yaml:6:26: "maybe" is not true or false`,
	}
	if len(errs) != len(want) {
		t.Fatalf("got %d errors:\n%v", len(errs), err)
	}
	for i, w := range want {
		if !strings.HasPrefix(errs[i].Error(), w) {
			t.Errorf("error %d: %q, want prefix %q", i, errs[i].Error(), w)
		}
	}
}

// Booleans are YAML's: strconv's 0, 1, t and f are mistakes, not false
// and true (enabled: 0 switched a sink off).
func TestDecodeBooleans(t *testing.T) {
	for src, want := range map[string]bool{"true": true, "True": true, "TRUE": true, "false": false, "False": false, "FALSE": false} {
		d := &Decoder{File: "f.yaml"}
		var in inner
		d.Decode(parse(t, "on: "+src), &in)
		if err := d.Err(); err != nil || in.On != want {
			t.Errorf("on: %s decoded as %v, %v; want %v", src, in.On, err, want)
		}
	}
	for _, src := range []string{"0", "1", "t", "f", "yes", "no", "off"} {
		d := &Decoder{File: "f.yaml"}
		var in inner
		d.Decode(parse(t, "on: "+src), &in)
		if err := d.Err(); err == nil || !strings.Contains(err.Error(), "is not true or false") {
			t.Errorf("on: %s: error %v, want one that says it is not true or false", src, err)
		}
	}
}

func TestDecodeIntoSplitsKeys(t *testing.T) {
	type common struct {
		Type string `yaml:"type"`
	}
	type own struct {
		Secret string `yaml:"secret"`
	}
	d := &Decoder{File: "f.yaml"}
	var c common
	var o own
	d.DecodeInto(parse(t, "{type: x, secret: s, extra: 1}"), &c, &o)
	if c.Type != "x" || o.Secret != "s" {
		t.Fatalf("got %+v %+v", c, o)
	}
	if err := d.Err(); err == nil || !strings.Contains(err.Error(), `unknown key "extra"`) || !strings.Contains(err.Error(), "known keys: secret, type") {
		t.Fatalf("got %v", err)
	}
}

type validated struct {
	Secret string `yaml:"secret"`
	Other  string `yaml:"other"`
}

func (v *validated) Validate() error {
	return errors.Join(Required("secret", v.Secret), Required("missing", ""))
}

func TestValidateBlamesTheField(t *testing.T) {
	d := &Decoder{File: "f.yaml"}
	n := parse(t, "other: x\nsecret: ''\n")
	var v validated
	d.Decode(n, &v)
	d.Validate(n, &v)
	errs := d.Err().(Errors)
	if len(errs) != 2 || errs[0].Line != 1 || errs[1].Line != 2 || !strings.Contains(errs[1].Msg, "secret") {
		t.Fatalf("got %v", errs)
	}
}

func TestExpand(t *testing.T) {
	env := map[string]string{"A": "alpha", "EMPTY": ""}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	cases := []struct{ in, want, err string }{
		{"${A}", "alpha", ""},
		{"x-${A}-y", "x-alpha-y", ""},
		{"${B:-dflt}", "dflt", ""},
		{"${EMPTY:-dflt}", "dflt", ""},
		{"${EMPTY}", "", ""},
		{"$${A}", "${A}", ""},
		{"${B}", "", "B is not set"},
		{"${A", "", "unterminated"},
		{"${1X}", "", "not a valid variable"},
		{"{{ .Data.A }} ${A}", "{{ .Data.A }} alpha", ""},
		{"${B:-${A}}", "", "a default cannot hold another ${...}"},
		{"${B:-x}-${A}", "x-alpha", ""},
	}
	for _, c := range cases {
		got, err := ExpandString(c.in, lookup)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: got %q, %v; want error %q", c.in, got, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%q: got %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}

func TestExpandTypesUnquotedValues(t *testing.T) {
	d := &Decoder{File: "f.yaml"}
	root := parse(t, "on: ${FLAG:-false}\nname: \"${FLAG:-false}\"\nn: ${N}\n")
	d.Expand(root, func(k string) (string, bool) {
		if k == "N" {
			return "42", true
		}
		return "", false
	})
	var v struct {
		On   bool   `yaml:"on"`
		Name string `yaml:"name"`
		N    int    `yaml:"n"`
	}
	d.Decode(root, &v)
	if err := d.Err(); err != nil || v.On || v.Name != "false" || v.N != 42 {
		t.Fatalf("got %+v %v", v, err)
	}
}

func TestExpandMissingVariableHasPosition(t *testing.T) {
	d := &Decoder{File: "f.yaml"}
	d.Expand(parse(t, "a: 1\nb:\n  c: ${NOPE}\n"), func(string) (string, bool) { return "", false })
	errs := d.Err().(Errors)
	if len(errs) != 1 || errs[0].Line != 3 || errs[0].Column != 6 {
		t.Fatalf("got %v", errs)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]Size{"1MiB": 1 << 20, "512KB": 512000, "10": 10, "1.5KiB": 1536, "2G": 2 << 30} {
		got, err := ParseSize(in)
		if err != nil || got != want {
			t.Errorf("%s: got %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "lots", "-1MB", "MB", "NaN", "Inf", "+Inf", "1e300", "1e30B", "9EiB"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
	// String writes the largest binary unit that divides the size, and
	// ParseSize reads it back.
	for size, want := range map[Size]string{1 << 30: "1GiB", 3 << 29: "1536MiB", 1 << 20: "1MiB", 1536: "1536B", 64 << 10: "64KiB", 7: "7B"} {
		if got := size.String(); got != want {
			t.Errorf("Size(%d).String() = %q, want %q", int64(size), got, want)
		}
		if back, err := ParseSize(size.String()); err != nil || back != size {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", size.String(), back, err, int64(size))
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add("inner: {name: a, retries: 3}\nmany: {x: {tags: [a]}}\n")
	f.Add("inner: [1, 2]\nraw: &a {b: *a}\n")
	f.Add("inner: {wait: ${X:-1s}, limit: 1MiB}\n")
	f.Add("d: &d {name: a}\ninner: {<<: [*d, {on: true}], retries: 1}\n")
	f.Add("inner: &i {<<: *i, name: a}\nmany: {x: {<<: [1, *i]}}\n")
	f.Fuzz(func(t *testing.T, src string) {
		var n yaml.Node
		if yaml.Unmarshal([]byte(src), &n) != nil || len(n.Content) == 0 {
			return
		}
		d := &Decoder{File: "f"}
		d.Merge(&n)
		d.Expand(&n, func(string) (string, bool) { return "v", true })
		var o outer
		d.Decode(n.Content[0], &o)
		for _, e := range d.Errs {
			if e.Msg == "" {
				t.Fatal("an error without a message")
			}
		}
	})
}

func TestUnsetVariableIsReportedOnce(t *testing.T) {
	d := &Decoder{File: "f.yaml"}
	n := parse(t, "secret: ${NOPE}\nother: x\n")
	d.Expand(n, func(string) (string, bool) { return "", false })
	var v validated
	d.Decode(n, &v)
	d.Validate(n, &v)
	errs := d.Err().(Errors)
	// The unset variable, and the field that is really missing; not a second complaint about secret.
	all := errs.Error()
	if len(errs) != 2 || !strings.Contains(all, "NOPE is not set") || !strings.Contains(all, "missing:") || strings.Contains(all, "secret:") {
		t.Fatalf("got %v", errs)
	}
}

func TestParseFileMode(t *testing.T) {
	for in, want := range map[string]FileMode{"644": 0o644, "0644": 0o644, "0o600": 0o600, " 640 ": 0o640, "0": 0, "777": 0o777, "0O755": 0o755} {
		if got, err := ParseFileMode(in); err != nil || got != want {
			t.Errorf("ParseFileMode(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0o", "1000", "0o1777", "648", "rw-r--r--", "-1", "0x1a4", "6 4 4"} {
		if got, err := ParseFileMode(in); err == nil {
			t.Errorf("ParseFileMode(%q) = %v, want an error", in, got)
		}
	}
	var v struct {
		Perm FileMode `yaml:"perm"`
	}
	d := &Decoder{File: "f"}
	var n yaml.Node
	if err := yaml.Unmarshal([]byte("perm: 640\n"), &n); err != nil {
		t.Fatal(err)
	}
	d.Decode(n.Content[0], &v)
	if len(d.Errs) > 0 || v.Perm != 0o640 {
		t.Errorf("perm: 640 decoded as %v (errors %v), want 0640", v.Perm, d.Errs)
	}
}

func FuzzParseFileMode(f *testing.F) {
	for _, s := range []string{"644", "0o600", "0777", "1000", "", "9"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseFileMode(s)
		if err != nil {
			return
		}
		if m > 0o777 {
			t.Fatalf("ParseFileMode(%q) = %o, beyond the permission bits", s, m)
		}
		if back, err := ParseFileMode(m.String()); err != nil || back != m {
			t.Fatalf("%q parsed as %v, which parses back as %v, %v", s, m, back, err)
		}
	})
}
