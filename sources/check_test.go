package sources

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/hookbridge/hookbridge/config"
)

// blamed is the field a check's error blames, "" for nil.
func blamed(t *testing.T, err error) string {
	t.Helper()
	if err == nil {
		return ""
	}
	var fe *config.FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("%v is not a FieldError", err)
	}
	return fe.Field + ": " + fe.Msg
}

func TestChecks(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want string // "" for no error
	}{
		{"absolute URI", CheckAbsoluteURI("account", "https://acme.helpcrunch.com", "https://x.example"), ""},
		{"absolute URI missing", CheckAbsoluteURI("account", " ", "https://x.example"), "account: is required and must not be empty"},
		{"relative URI", CheckAbsoluteURI("account", "acme.helpcrunch.com", "https://x.example"), `account: must be an absolute URI such as https://x.example, got "acme.helpcrunch.com"`},
		{"URI without host", CheckAbsoluteURI("account", "https://", "https://x.example"), `account: must be an absolute URI such as https://x.example, got "https://"`},
		{"URI that does not parse", CheckAbsoluteURI("account", "%zz", "https://x.example"), `account: must be an absolute URI such as https://x.example, got "%zz"`},
		{"URI reference", CheckURIRef("source", "/orders"), ""},
		{"URI reference missing", CheckURIRef("source", ""), "source: is required and must not be empty"},
		{"URI reference that does not parse", CheckURIRef("source", "%zz"), `source: is not a URI: parse "%zz": invalid URL escape "%zz"`},
		{"path", CheckPath("id_path", "data.id"), ""},
		{"no path", CheckPath("id_path", ""), ""},
		{"path ending in a dot", CheckPath("id_path", "data."), `id_path: "data." is not a dotted path such as data.id`},
		{"path of dots", CheckPath("id_path", ".."), `id_path: ".." is not a dotted path such as data.id`},
		{"set value", CheckNotBlank("key", "k"), ""},
		{"empty value", CheckNotBlank("key", ""), ""},
		{"blank value", CheckNotBlank("key", " \t"), "key: must not be blank"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := blamed(t, c.err); got != c.want {
				t.Fatalf("got %q, want %q", got, c.want)
			}
		})
	}
}

func TestIsHexDigest(t *testing.T) {
	cases := []struct {
		sig  string
		size int
		want bool
	}{
		{"deadbeef", 4, true},
		{"DEADBEEF", 4, true},
		{"deadbee", 4, false},
		{"deadbeef00", 4, false},
		{"deadbeez", 4, false},
		{"", 0, true},
		{" deadbeef", 4, false},
	}
	for _, c := range cases {
		if got := IsHexDigest(c.sig, c.size); got != c.want {
			t.Errorf("IsHexDigest(%q, %d) = %v", c.sig, c.size, got)
		}
	}
}

func TestParseDigits(t *testing.T) {
	cases := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"1795169730", 1795169730, true},
		{"007", 7, true},
		{"9223372036854775807", 9223372036854775807, true},
		{"9223372036854775808", 0, false},
		{"0", 0, false},
		{"", 0, false},
		{"+1", 0, false},
		{"-1", 0, false},
		{" 1", 0, false},
		{"1.5", 0, false},
		{"1e9", 0, false},
	}
	for _, c := range cases {
		got, ok := ParseDigits(c.in)
		if got != c.want || ok != c.ok {
			t.Errorf("ParseDigits(%q) = %d, %v; want %d, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

// FuzzParseDigits: ParseDigits accepts exactly the positive decimal int64s
// spelt in ASCII digits alone.
func FuzzParseDigits(f *testing.F) {
	for _, seed := range []string{"1795169730", "007", "0", "+1", "-1", " 1", "1.5", "9223372036854775808"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, ok := ParseDigits(s)
		want, err := strconv.ParseInt(s, 10, 64)
		digitsOnly := s != "" && strings.Trim(s, "0123456789") == ""
		if ok != (err == nil && want > 0 && digitsOnly) || ok && n != want || !ok && n != 0 {
			t.Fatalf("ParseDigits(%q) = %d, %v", s, n, ok)
		}
	})
}

func TestCheckSecrets(t *testing.T) {
	short := func(s string) error {
		if len(s) < 4 {
			return errors.New("is too short")
		}
		return nil
	}
	cases := []struct {
		name  string
		one   string
		many  []string
		check func(string) error
		want  []string
	}{
		{"one", "s3cret", nil, nil, nil},
		{"several", "", []string{"new", "old"}, nil, nil},
		{"neither", "", nil, nil, []string{"secret: is required unless secrets is given"}},
		{"both", "s3cret", []string{"new"}, nil, []string{"secrets: and secret exclude each other: list every secret under secrets"}},
		{"empty entry", "", []string{"new", ""}, nil, []string{"secrets: entry 2 is empty"}},
		{"one checked", "abc", nil, short, []string{"secret: is too short"}},
		{"entries checked", "", []string{"abcd", "ab", ""}, short, []string{"secrets: entry 2: is too short", "secrets: entry 3 is empty"}},
	}
	for _, c := range cases {
		var got []string
		for _, err := range CheckSecrets("secret", c.one, "secrets", c.many, c.check) {
			got = append(got, blamed(t, err))
		}
		if strings.Join(got, "\n") != strings.Join(c.want, "\n") {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}
	if got := SecretKeys("one", []string{"a", "b"}); len(got) != 1 || string(got[0]) != "one" {
		t.Errorf("SecretKeys with one: %q", got)
	}
	if got := SecretKeys("", []string{"a", "b"}); len(got) != 2 || string(got[0]) != "a" || string(got[1]) != "b" {
		t.Errorf("SecretKeys with several: %q", got)
	}
}
