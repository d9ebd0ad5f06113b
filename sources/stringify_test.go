package sources

import (
	"bytes"
	"encoding/json"
	"os"
	"reflect"
	"testing"
)

// The vectors are what Node.js's JSON.stringify(JSON.parse(in)) wrote
// (testdata/stringify.js).
func TestStringifyFormMatchesJavaScript(t *testing.T) {
	data, err := os.ReadFile("testdata/stringify.json")
	if err != nil {
		t.Fatal(err)
	}
	var vectors []struct{ In, Want string }
	if err := json.Unmarshal(data, &vectors); err != nil {
		t.Fatal(err)
	}
	if len(vectors) < 10 {
		t.Fatalf("%d vectors", len(vectors))
	}
	for _, v := range vectors {
		got, ok := StringifyForm([]byte(v.In))
		if !ok || string(got) != v.Want {
			t.Errorf("%s:\n got %s (%v)\nwant %s", v.In, got, ok, v.Want)
		}
	}
	for _, bad := range []string{``, `{`, `{"a":1}{}`, `1 2`, `[1e999]`, "{\"a\":\"\x00\"}"} {
		if out, ok := StringifyForm([]byte(bad)); ok {
			t.Errorf("%q: accepted as %q", bad, out)
		}
	}
}

func FuzzStringifyForm(f *testing.F) {
	data, err := os.ReadFile("testdata/stringify.json")
	if err != nil {
		f.Fatal(err)
	}
	var vectors []struct{ In string }
	_ = json.Unmarshal(data, &vectors)
	for _, v := range vectors {
		f.Add([]byte(v.In))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		out, ok := StringifyForm(body)
		if !ok {
			return
		}
		if !json.Valid(out) {
			t.Fatalf("%q gave invalid JSON %q", body, out)
		}
		again, ok := StringifyForm(out)
		if !ok || !bytes.Equal(again, out) {
			t.Fatalf("not a fixed point: %q then %q", out, again)
		}
		var a, b any
		if json.Unmarshal(body, &a) != nil || json.Unmarshal(out, &b) != nil || !reflect.DeepEqual(a, b) {
			t.Fatalf("%q and %q hold different values", body, out)
		}
	})
}
