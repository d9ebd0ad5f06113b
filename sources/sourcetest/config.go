package sourcetest

import (
	"errors"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/hookbridge/hookbridge/config"
	"github.com/hookbridge/hookbridge/sources"
)

// Common is the keys every source has beside its provider's own, as the
// config loader reads them.
type Common struct {
	Type      string      `yaml:"type"`
	Path      string      `yaml:"path"`
	AllowIPs  []string    `yaml:"allow_ips"`
	BodyLimit config.Size `yaml:"body_limit"`
}

// DecodeExample decodes the example registered for typ as the config loader
// does: the one source the example defines, every ${VAR} expanded to
// envValue, strict keys shared between Common and the provider's config,
// then Validate. Any error fails the test, and so does a type: other than typ.
func DecodeExample(t testing.TB, typ, envValue string) (Common, sources.Config) {
	t.Helper()
	reg, ok := sources.Lookup(typ)
	if !ok {
		t.Fatalf("%s is not registered", typ)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(reg.Example), &doc); err != nil {
		t.Fatalf("%s example: %v", typ, err)
	}
	if len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode || len(doc.Content[0].Content) != 2 {
		t.Fatalf("the %s example must define exactly one source", typ)
	}
	node := doc.Content[0].Content[1]
	d := &config.Decoder{File: "example.yaml"}
	d.Merge(node)
	d.Expand(node, func(string) (string, bool) { return envValue, true })
	var common Common
	cfg := reg.NewConfig()
	d.DecodeInto(node, &common, cfg)
	d.Validate(node, cfg)
	if err := d.Err(); err != nil {
		t.Fatal(err)
	}
	if common.Type != typ {
		t.Fatalf("the %s example has type %q", typ, common.Type)
	}
	return common, cfg
}

// New validates cfg and builds its source, which must be an S.
func New[S sources.Source](t testing.TB, cfg sources.Config) S {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	src, err := cfg.NewSource()
	if err != nil {
		t.Fatal(err)
	}
	s, ok := src.(S)
	if !ok {
		t.Fatalf("NewSource made a %T", src)
	}
	return s
}

// CheckBlamed asserts that err, returned by a Validate method, blames
// exactly the fields want, in order; every error it joins must be a
// config.FieldError. A nil err blames none.
func CheckBlamed(t testing.TB, err error, want []string) {
	t.Helper()
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else if err != nil {
		errs = []error{err}
	}
	var got []string
	for _, e := range errs {
		var fe *config.FieldError
		if !errors.As(e, &fe) {
			t.Fatalf("%v is not a FieldError", e)
		}
		got = append(got, fe.Field)
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("blamed %v, want %v (%v)", got, want, err)
	}
}
