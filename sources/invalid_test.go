package sources

import (
	"bytes"
	"encoding/json"
	"regexp"
	"testing"
	"unicode/utf8"
)

func TestEscapeInvalid(t *testing.T) {
	for in, want := range map[string]string{
		"":                 "",
		"msg_1":            "msg_1",
		`a\b`:              `a\b`, // valid: as it is, backslash and all
		"Zürich \ufffd":    "Zürich \ufffd",
		"utf8-\xff\xfe-x":  `utf8-\xff\xfe-x`,
		"utf8-\xfe\xfd-x":  `utf8-\xfe\xfd-x`,
		`a\b` + "\xff":     `a\\b\xff`,
		"\xed\xa0\x80":     `\xed\xa0\x80`, // a surrogate in UTF-8 is not UTF-8
		"\xc3":             `\xc3`,         // cut short
		"é\xe9":            `é\xe9`,        // Latin-1 after UTF-8
		"\ufffd\xff\ufffd": "\ufffd\\xff\ufffd",
	} {
		if got := EscapeInvalid(in); got != want {
			t.Errorf("EscapeInvalid(%q) = %q, want %q", in, got, want)
		}
	}
}

// decodeID is what DecodeObject reads as body's "id".
func decodeID(t *testing.T, body string) string {
	t.Helper()
	var m map[string]any
	if err := DecodeObject([]byte(body), &m); err != nil {
		t.Fatalf("%q: %v", body, err)
	}
	id, _ := m["id"].(string)
	return id
}

func TestDecodeObjectKeepsInvalidTextApart(t *testing.T) {
	for body, want := range map[string]string{
		// The two ids HelpCrunch sent, which both read as "utf8-\ufffd\ufffd-x".
		"{\"id\":\"utf8-\xff\xfe-x\"}": `utf8-\xff\xfe-x`,
		"{\"id\":\"utf8-\xfe\xfd-x\"}": `utf8-\xfe\xfd-x`,
		// Valid strings read as they always did.
		`{"id":"utf8-\ufffd\ufffd-x"}`:    "utf8-\ufffd\ufffd-x",
		`{"id":"a\\b\u00e9\ud83d\ude00"}`: "a\\bé😀",
		`{"id":"\\ud800"}`:                `\ud800`, // an escaped backslash, then text
		// Lone surrogates, in lower case whatever their spelling.
		`{"id":"a\ud800"}`:            `a\ud800`,
		`{"id":"a\uDC00b"}`:           `a\udc00b`,
		`{"id":"\udc00\ud800"}`:       `\udc00\ud800`, // low then high: no pair
		`{"id":"\ud800\u0041"}`:       `\ud800A`,
		`{"id":"\ud800\ud800\udc00"}`: "\\ud800\U00010000",
		// Backslashes of a rendered string are doubled, so no text spells an escape.
		"{\"id\":\"a\\\\\xff\"}":        `a\\\xff`,
		"{\"id\":\"\xff\\\\x\\\"\\n\"}": "\\xff\\\\x\"\n",
		// Only the strings that need it are rendered; keys too.
		"{\"k\\\\\":\"\\\\\",\"id\":\"\xff\",\"n\":[1,\"\xfe\"]}": `\xff`,
	} {
		if got := decodeID(t, body); got != want {
			t.Errorf("%q: id %q, want %q", body, got, want)
		}
	}
	var m map[string]any
	if err := DecodeObject([]byte("{\"i\xffd\":1,\"i\xfed\":2}"), &m); err != nil || m[`i\xffd`] == nil || m[`i\xfed`] == nil {
		t.Fatalf("keys: %v %v", m, err)
	}
}

func TestEscapeInvalidJSON(t *testing.T) {
	// A body with nothing to render is returned itself, not a copy: the
	// decoding of every valid payload is untouched.
	for _, body := range [][]byte{leadBody, []byte(`{"a":"\ud83d\ude00","b":"\\ud800"}`), []byte(`{}`), nil} {
		if got := EscapeInvalidJSON(body); len(body) > 0 && &got[0] != &body[0] || !bytes.Equal(got, body) {
			t.Errorf("%q came back as %q, or copied", body, got)
		}
	}
	// Strings that are not well formed are left for the decoder to refuse.
	for _, body := range []string{"{\"a\":\"\xff\\q\"}", "{\"a\":\"\xff\x01\"}", "{\"a\":\"\xff\\u12\"}", "{\"a\":\"\xff", "{\"a\":\"\xff\\"} {
		if got := EscapeInvalidJSON([]byte(body)); string(got) != body {
			t.Errorf("%q became %q", body, got)
		}
		var m map[string]any
		if DecodeObject([]byte(body), &m) == nil {
			t.Errorf("%q decoded", body)
		}
	}
	if got := string(EscapeInvalidJSON([]byte("[\"\xff\", 1, \"ok\", \"\\udfff\"]"))); got != `["\\xff", 1, "ok", "\\udfff"]` {
		t.Errorf("got %s", got)
	}
}

// FuzzEscapeInvalidJSON: the rewrite keeps a JSON text valid exactly when
// it was, leaves every valid string as it is, makes every string UTF-8 with
// no lone surrogate, is done once for good, and keeps two strings that
// differ in their bytes apart.
func FuzzEscapeInvalidJSON(f *testing.F) {
	for _, seed := range []string{`{"a":"b"}`, "{\"id\":\"utf8-\xff\xfe-x\"}", `{"a":"\ud800\udc00\udc00"}`, "[\"\\\\\xff\"]",
		`"\u00e9"`, "{\"\xff\":[\"\xfe\",{\"\\ud800\":null}]}", "\"\xff\\q\"", string(leadBody)} {
		f.Add([]byte(seed), []byte("x\xff"))
	}
	f.Fuzz(func(t *testing.T, body, other []byte) {
		out := EscapeInvalidJSON(body)
		if json.Valid(out) != json.Valid(body) {
			t.Fatalf("%q: valid %v, rewritten %q: valid %v", body, json.Valid(body), out, json.Valid(out))
		}
		if !json.Valid(body) {
			return
		}
		if !utf8.Valid(out) {
			t.Fatalf("%q became %q, not UTF-8", body, out)
		}
		if again := EscapeInvalidJSON(out); !bytes.Equal(again, out) {
			t.Fatalf("%q became %q, then %q", body, out, again)
		}
		var before, after any
		if err := json.Unmarshal(body, &before); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(out, &after); err != nil {
			t.Fatalf("%q became %q: %v", body, out, err)
		}
		if !mayNeedRendering(body) && !bytes.Equal(out, body) {
			t.Fatalf("%q, with nothing to render, became %q", body, out)
		}
		// Two strings of plain bytes (no quote, backslash or control
		// character, so their bytes are the string) read apart when their
		// bytes differ, and a valid one reads as it is.
		a, b := plainString(body), plainString(other)
		if a == nil || b == nil {
			return
		}
		ra, rb := decodeString(t, a), decodeString(t, b)
		if (ra == rb) != bytes.Equal(a, b) {
			t.Fatalf("%q and %q read as %q and %q", a, b, ra, rb)
		}
		if utf8.Valid(a) && ra != string(a) {
			t.Fatalf("the valid %q read as %q", a, ra)
		}
	})
}

// mayNeedRendering reports, apart from the code under test, whether body
// may hold text that is not valid Unicode: bytes that are not UTF-8, or
// something like a \u escape of a surrogate (a valid pair too, to keep
// this simple).
func mayNeedRendering(body []byte) bool {
	return !utf8.Valid(body) || surrogateLike.Match(body)
}

var surrogateLike = regexp.MustCompile(`\\u[dD][89a-fA-F]`)

// plainString is s as the content of a JSON string when its bytes need no
// escape, else nil.
func plainString(s []byte) []byte {
	for _, c := range s {
		if c < 0x20 || c == '"' || c == '\\' {
			return nil
		}
	}
	return s
}

// decodeString is what DecodeObject reads as the string whose content is s.
func decodeString(t *testing.T, s []byte) string {
	var m map[string]any
	if err := DecodeObject(append(append([]byte(`{"s":"`), s...), `"}`...), &m); err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return m["s"].(string)
}

func FuzzEscapeInvalid(f *testing.F) {
	for _, seed := range []string{"", "msg_1", "utf8-\xff\xfe-x", `a\b` + "\xff", "\xed\xa0\x80", "é"} {
		f.Add(seed, "utf8-\xfe\xfd-x")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		ra, rb := EscapeInvalid(a), EscapeInvalid(b)
		if !utf8.ValidString(ra) || utf8.ValidString(a) && ra != a {
			t.Fatalf("%q rendered as %q", a, ra)
		}
		// Apart from a valid string that spells out escapes, which a
		// rendering may equal, strings render apart.
		if utf8.ValidString(a) == utf8.ValidString(b) && (ra == rb) != (a == b) {
			t.Fatalf("%q and %q rendered as %q and %q", a, b, ra, rb)
		}
		// The rendering of a string in a header is that of the same
		// bytes in a JSON body.
		if p := plainString([]byte(a)); p != nil && decodeString(t, p) != ra {
			t.Fatalf("%q: %q in a header, %q in a body", a, ra, decodeString(t, p))
		}
	})
}
