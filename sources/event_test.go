package sources

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"
)

func TestDecodeObject(t *testing.T) {
	for _, ok := range []string{`{}`, ` {"a":1} `, "{\"a\":[1,{\"b\":null}]}\n"} {
		var m map[string]any
		if err := DecodeObject([]byte(ok), &m); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{``, `[]`, `"x"`, `{}}`, `{}]`, `{} {}`, `{"a":`, `{} x`, `null`,
		"\v{}", "{}\f", "\u00a0{}", "{}\u0085", "{}\x00"} {
		var m map[string]any
		if err := DecodeObject([]byte(bad), &m); !errors.Is(err, ErrNotJSON) {
			t.Errorf("%q: got %v, want ErrNotJSON", bad, err)
		}
	}
}

// FuzzDecodeObject: DecodeObject accepts exactly the bodies that are valid
// JSON and an object, so what it accepts can be an event's data as it is.
func FuzzDecodeObject(f *testing.F) {
	for _, seed := range []string{`{}`, ` {"a":1} `, `{}}`, `{} }0`, `{} ]`, "\v{}", `{"a":"\xff"}`, `[]`, `null`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var m map[string]any
		err := DecodeObject(body, &m)
		if err != nil && !errors.Is(err, ErrNotJSON) {
			t.Fatalf("%q: error %v does not wrap ErrNotJSON", body, err)
		}
		object := json.Valid(body) && bytes.TrimLeft(body, " \t\r\n")[0] == '{'
		if (err == nil) != object {
			t.Fatalf("%q: DecodeObject error %v; valid JSON object %v", body, err, object)
		}
	})
}

func TestTypeSuffix(t *testing.T) {
	for in, want := range map[string]string{
		"message:send":   "message.send",
		"Tags: Replaced": "tags.replaced",
		"chat.new":       "chat.new",
		"..a//b..":       "a.b",
		"ticket_status":  "ticket_status",
		"Überraschung!":  "berraschung",
		"":               "unknown",
		":::":            "unknown",
	} {
		if got := TypeSuffix(in); got != want {
			t.Errorf("TypeSuffix(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseTime(t *testing.T) {
	want := time.Date(2026, 11, 20, 10, 15, 30, 0, time.UTC)
	for _, in := range []any{"2026-11-20T10:15:30Z", "2026-11-20 10:15:30", "1795169730", "1795169730000", float64(1795169730)} {
		got, ok := ParseTime(in)
		if !ok || !got.Equal(want) {
			t.Errorf("ParseTime(%v) = %v, %v", in, got, ok)
		}
	}
	frac, ok := ParseTime("1795169730.5")
	if !ok || !frac.Equal(want.Add(500*time.Millisecond)) {
		t.Errorf("fractional seconds: %v %v", frac, ok)
	}
	for _, in := range []any{"soon", "-5", true, nil, "12abc", "9999-12-31T23:00:00-05:00", "0001-01-01T00:00:00Z", "1.x"} {
		if _, ok := ParseTime(in); ok {
			t.Errorf("ParseTime(%v) accepted", in)
		}
	}
}

func TestEqualHelpers(t *testing.T) {
	mac := []byte{0xde, 0xad, 0xbe, 0xef}
	if !EqualHex("DEADBEEF", mac) || !EqualHex("deadbeef", mac) || EqualHex("deadbe", mac) || EqualHex("zz", mac) {
		t.Fatal("EqualHex")
	}
	if !EqualBase64("3q2+7w==", mac) || !EqualBase64("3q2-7w", mac) || EqualBase64("3q2+", mac) {
		t.Fatal("EqualBase64")
	}
	if EqualSecret("", "") || !EqualSecret("k", "k") || EqualSecret("k", "K") {
		t.Fatal("EqualSecret")
	}
}

// FuzzDecodeFields: DecodeFields accepts exactly what DecodeObject accepts,
// and hands over, key by key, the values DecodeObject puts in a map: the
// last value of each key when all are wanted, and nothing of keys not
// wanted.
func FuzzDecodeFields(f *testing.F) {
	for _, seed := range []string{`{}`, ` {"a":1} `, `{"a":"x","a":[1,{"b":null}]}`, `{"\u00e9":"\ud800","b":"\\n"}`, `{"\ud800":1,"\udc00x":2,"\ud83d\ude00":3,"\ud83dz":4}`,
		`{"a":-0.5e3,"b":true,"c":false,"d":null,"e":{"f":"g"}}`, `{}}`, `{"a":`, `{"a":"\xff"}`, `[]`, string(leadBody)} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var want map[string]any
		wantErr := DecodeObject(body, &want)
		got := map[string]any{}
		err := DecodeFields(body, func(string) bool { return true }, func(k string, v any) { got[k] = v })
		if (err == nil) != (wantErr == nil) || (err != nil && !errors.Is(err, ErrNotJSON)) {
			t.Fatalf("%q: DecodeFields error %v, DecodeObject error %v", body, err, wantErr)
		}
		if err != nil {
			return
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: DecodeFields gave %#v, DecodeObject %#v", body, got, want)
		}
		none := 0
		if err := DecodeFields(body, func(string) bool { return false }, func(string, any) { none++ }); err != nil || none != 0 {
			t.Fatalf("%q: wanting no key: error %v, %d values", body, err, none)
		}
	})
}

func BenchmarkDecodeFields(b *testing.B) {
	want := map[string]bool{"Type": true, "SerialNumber": true, "SessionID": true, "CreateTime": true}
	b.SetBytes(int64(len(leadBody)))
	b.ReportAllocs()
	for b.Loop() {
		n := 0
		if err := DecodeFields(leadBody, func(k string) bool { return want[k] }, func(string, any) { n++ }); err != nil || n != 4 {
			b.Fatal(err, n)
		}
	}
}

func TestIsPathHead(t *testing.T) {
	paths := []string{"data.object.id", "type", "", "meta."}
	for key, want := range map[string]bool{"data": true, "type": true, "meta": true, "object": false, "id": false, "": false, "data.object": false} {
		if got := IsPathHead(key, paths...); got != want {
			t.Errorf("IsPathHead(%q) = %v, want %v", key, got, want)
		}
	}
}
