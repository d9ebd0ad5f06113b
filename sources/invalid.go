package sources

import (
	"bytes"
	"encoding/json"
	"strings"
	"unicode/utf8"
)

// Text that is not valid Unicode, in a provider's payload or a header,
// must not make two events one.
//
// encoding/json reads each byte that is not part of valid UTF-8, and each
// \u escape of a lone UTF-16 surrogate (\ud800 with no \udc00-\udfff after
// it, or a \udc00-\udfff alone), as U+FFFD. Two payloads that differ only
// there decode alike, so an id taken from them ("utf8-\xff\xfe-x" and
// "utf8-\xfe\xfd-x" both read as "utf8-\ufffd\ufffd-x") was the same, and
// the second event was dropped as a duplicate of the first.
//
// The decoders of this package render such text instead, deterministically
// from the bytes that came, so a provider's retry renders the same:
//
//   - each byte that is not part of valid UTF-8 as the four characters \xhh,
//   - each lone surrogate as the six characters \uhhhh,
//   - and, in such a string only, each backslash as \\,
//
// with lower-case hex. The rendered string is valid UTF-8, differs from the
// U+FFFD form, and no two different strings render alike (the rendering
// reads back unambiguously). A string that is valid Unicode is left
// exactly as it is, so everything taken from a valid payload, ids above
// all, is what it always was. A rendered string can equal a valid one only
// if that one spells the same escapes out itself, which no provider's id
// does; that is the one collision left, and it cannot be closed without
// changing the ids of valid payloads.

// EscapeInvalid returns s rendered as described above when it holds bytes
// that are not valid UTF-8, and s itself when it is valid: for ids a
// source takes from a header, which arrives as raw bytes.
func EscapeInvalid(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			writeByteEscape(&b, s[i])
		} else {
			writeRune(&b, r)
		}
		i += size
	}
	return b.String()
}

// EscapeInvalidJSON returns body with each JSON string that holds text
// that is not valid Unicode rewritten to hold its rendering, as described
// above; every other byte stays as it is. A body with no such string is
// returned itself, not copied. The rewrite keeps a valid JSON text valid
// and an invalid one invalid: a string with a bad escape or a control
// character is left as it is, for the decoder to refuse.
func EscapeInvalidJSON(body []byte) []byte {
	if utf8.Valid(body) && !mayHoldSurrogateEscape(body) {
		return body
	}
	var out []byte // nil until a string is rewritten
	done := 0      // body[:done] is in out
	for i := 0; i < len(body); i++ {
		if body[i] != '"' {
			continue
		}
		end, ok := stringEnd(body, i+1)
		if !ok {
			break // unterminated: the decoder refuses the body
		}
		if rendered, ok := renderJSONString(body[i+1 : end]); ok {
			if out == nil {
				out = make([]byte, 0, len(body)+16)
			}
			out = append(out, body[done:i]...)
			out = append(out, rendered...)
			done = end + 1
		}
		i = end
	}
	if out == nil {
		return body
	}
	return append(out, body[done:]...)
}

// mayHoldSurrogateEscape reports whether body holds \u followed by d8-df,
// which may be a lone surrogate; valid pairs and escaped backslashes are
// told apart later, on the rare body that holds one.
func mayHoldSurrogateEscape(body []byte) bool {
	for i := 0; ; {
		j := bytes.Index(body[i:], []byte(`\u`))
		if j < 0 {
			return false
		}
		j += i
		if j+3 < len(body) && (body[j+2] == 'd' || body[j+2] == 'D') && isSurrogateDigit(body[j+3]) {
			return true
		}
		i = j + 2
	}
}

func isSurrogateDigit(c byte) bool {
	return '8' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// stringEnd is the index of the quote that ends the JSON string whose
// content starts at from; ok is false when it is not terminated.
func stringEnd(body []byte, from int) (end int, ok bool) {
	for j := from; j < len(body); j++ {
		switch body[j] {
		case '\\':
			j++
		case '"':
			return j, true
		}
	}
	return 0, false
}

// renderJSONString returns the JSON string (quoted) that holds the
// rendering of content, a JSON string's raw content, when content is well
// formed and holds text that is not valid Unicode; ok is false otherwise.
func renderJSONString(content []byte) (quoted []byte, ok bool) {
	invalid, wellFormed := scanJSONString(content, nil)
	if !invalid || !wellFormed {
		return nil, false
	}
	var b strings.Builder
	b.Grow(len(content) + 8)
	scanJSONString(content, &b)
	quoted, err := json.Marshal(b.String()) // valid UTF-8 now: read back exactly
	if err != nil {
		return nil, false
	}
	return quoted, true
}

// scanJSONString walks a JSON string's raw content as encoding/json
// unquotes it. It reports whether the content holds text that is not
// valid Unicode, and whether it is well formed (known escapes only, no
// control characters). When b is not nil it writes the rendering there.
func scanJSONString(content []byte, b *strings.Builder) (invalid, wellFormed bool) {
	for i := 0; i < len(content); {
		c := content[i]
		switch {
		case c == '\\':
			r, n, lone, ok := readEscape(content[i:])
			if !ok {
				return invalid, false
			}
			invalid = invalid || lone
			if b != nil {
				if lone {
					writeSurrogateEscape(b, r)
				} else {
					writeRune(b, r)
				}
			}
			i += n
		case c < 0x20:
			return invalid, false
		case c < utf8.RuneSelf:
			if b != nil {
				b.WriteByte(c)
			}
			i++
		default:
			r, size := utf8.DecodeRune(content[i:])
			if r == utf8.RuneError && size == 1 {
				invalid = true
				if b != nil {
					writeByteEscape(b, c)
				}
			} else if b != nil {
				b.WriteRune(r)
			}
			i += size
		}
	}
	return invalid, true
}

// readEscape reads the escape that s starts with: the rune it stands for
// and its length. A \u escape of a surrogate pairs with a \u escape of the
// other half right after it, as encoding/json pairs them; else it is lone,
// and r is the surrogate itself.
func readEscape(s []byte) (r rune, n int, lone, ok bool) {
	if len(s) < 2 {
		return 0, 0, false, false
	}
	switch s[1] {
	case '"', '\\', '/':
		return rune(s[1]), 2, false, true
	case 'b':
		return '\b', 2, false, true
	case 'f':
		return '\f', 2, false, true
	case 'n':
		return '\n', 2, false, true
	case 'r':
		return '\r', 2, false, true
	case 't':
		return '\t', 2, false, true
	case 'u':
		r, ok := hex4(s[2:])
		if !ok {
			return 0, 0, false, false
		}
		if r < 0xd800 || r > 0xdfff {
			return r, 6, false, true
		}
		if r < 0xdc00 && len(s) >= 12 && s[6] == '\\' && s[7] == 'u' {
			if low, ok := hex4(s[8:]); ok && 0xdc00 <= low && low <= 0xdfff {
				return 0x10000 + (r-0xd800)<<10 + (low - 0xdc00), 12, false, true
			}
		}
		return r, 6, true, true
	}
	return 0, 0, false, false
}

// hex4 reads the four hex digits s starts with.
func hex4(s []byte) (rune, bool) {
	if len(s) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range s[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

const lowerHex = "0123456789abcdef"

// writeRune writes a valid rune of a string being rendered: a backslash
// doubled, so that the escapes below cannot be spelled by the text itself.
func writeRune(b *strings.Builder, r rune) {
	if r == '\\' {
		b.WriteString(`\\`)
		return
	}
	b.WriteRune(r)
}

// writeByteEscape writes a byte that is not part of valid UTF-8 as \xhh.
func writeByteEscape(b *strings.Builder, c byte) {
	b.WriteString(`\x`)
	b.WriteByte(lowerHex[c>>4])
	b.WriteByte(lowerHex[c&0xf])
}

// writeSurrogateEscape writes a lone surrogate as \uhhhh.
func writeSurrogateEscape(b *strings.Builder, r rune) {
	b.WriteString(`\u`)
	for shift := 12; shift >= 0; shift -= 4 {
		b.WriteByte(lowerHex[r>>shift&0xf])
	}
}
