package sources

import (
	"bytes"
	"encoding/json"
	"io"
	"math"
	"strconv"
	"unicode/utf8"
)

// StringifyForm is body as JavaScript writes it with
// JSON.stringify(JSON.parse(body)): compact, keys in their order, strings
// with only the escapes JSON requires (no "\/", no \uXXXX for a printable
// character), numbers in JavaScript's shortest form (1.50 as 1.5, 1E3 as
// 1000, -0 as 0). Providers written in JavaScript sign that form of what
// they send, so a body another program re-encoded on its way (a proxy, a
// PHP relay escaping slashes) verifies in this form when not as it came.
// ok is false when body is not one JSON value, or holds a number
// JavaScript cannot represent.
func StringifyForm(body []byte) (out []byte, ok bool) {
	if !json.Valid(body) {
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	type level struct {
		object bool
		n      int // tokens written in it: keys and values
	}
	var stack []level
	out = make([]byte, 0, len(body))
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return out, true
		}
		if err != nil {
			return nil, false
		}
		if d, isDelim := tok.(json.Delim); isDelim && (d == '}' || d == ']') {
			stack = stack[:len(stack)-1]
			out = append(out, byte(d))
			continue
		}
		if len(stack) > 0 {
			top := &stack[len(stack)-1]
			switch {
			case top.object && top.n%2 == 1:
				out = append(out, ':')
			case top.n > 0:
				out = append(out, ',')
			}
			top.n++
		}
		switch v := tok.(type) {
		case json.Delim:
			out = append(out, byte(v))
			stack = append(stack, level{object: v == '{'})
		case string:
			out = appendJSString(out, v)
		case json.Number:
			f, err := strconv.ParseFloat(string(v), 64)
			if err != nil || math.IsInf(f, 0) {
				return nil, false
			}
			out = appendJSNumber(out, f)
		case bool:
			out = strconv.AppendBool(out, v)
		case nil:
			out = append(out, "null"...)
		}
	}
}

// appendJSString appends s quoted as JSON.stringify quotes it: '"' and '\'
// escaped, \b \f \n \r \t by name, other control characters as \u00xx,
// everything else as it is.
func appendJSString(out []byte, s string) []byte {
	const hex = "0123456789abcdef"
	out = append(out, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			_, size := utf8.DecodeRuneInString(s[i:])
			out = append(out, s[i:i+size]...)
			i += size
			continue
		}
		switch c {
		case '"', '\\':
			out = append(out, '\\', c)
		case '\b':
			out = append(out, '\\', 'b')
		case '\f':
			out = append(out, '\\', 'f')
		case '\n':
			out = append(out, '\\', 'n')
		case '\r':
			out = append(out, '\\', 'r')
		case '\t':
			out = append(out, '\\', 't')
		default:
			if c < 0x20 {
				out = append(out, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			} else {
				out = append(out, c)
			}
		}
		i++
	}
	return append(out, '"')
}

// appendJSNumber appends f as JavaScript's Number.prototype.toString
// writes it (ECMA-262, Number::toString): the shortest digits that read
// back as f, in fixed notation from 1e-6 up to below 1e21, else as
// d.ddde±n.
func appendJSNumber(out []byte, f float64) []byte {
	if f == 0 {
		return append(out, '0') // -0 too
	}
	if f < 0 {
		out = append(out, '-')
		f = -f
	}
	// Shortest digits and exponent: "d.dddde±xx".
	e := strconv.AppendFloat(nil, f, 'e', -1, 64)
	mant, exp, _ := bytes.Cut(e, []byte("e"))
	digits := append([]byte{mant[0]}, bytes.TrimPrefix(mant[1:], []byte("."))...)
	x, _ := strconv.Atoi(string(exp))
	k, n := len(digits), x+1 // f = 0.digits × 10^n
	switch {
	case k <= n && n <= 21:
		out = append(out, digits...)
		for range n - k {
			out = append(out, '0')
		}
	case 0 < n && n <= 21:
		out = append(out, digits[:n]...)
		out = append(out, '.')
		out = append(out, digits[n:]...)
	case -6 < n && n <= 0:
		out = append(out, '0', '.')
		for range -n {
			out = append(out, '0')
		}
		out = append(out, digits...)
	default:
		out = append(out, digits[0])
		if k > 1 {
			out = append(out, '.')
			out = append(out, digits[1:]...)
		}
		out = append(out, 'e')
		if n-1 >= 0 {
			out = append(out, '+')
		}
		out = strconv.AppendInt(out, int64(n-1), 10)
	}
	return out
}

// OtherJSONForms are the forms of a JSON body a provider that signs
// JSON.stringify of its payload may have signed, besides the body as it
// came: the compact form (the same bytes, whitespace removed) and the
// StringifyForm (strings and numbers as JavaScript writes them), each only
// when it differs from the forms before it. Verifiers try them in order
// after the raw body.
func OtherJSONForms(body []byte) [][]byte {
	var forms [][]byte
	var compact bytes.Buffer
	if json.Compact(&compact, body) == nil && !bytes.Equal(compact.Bytes(), body) {
		forms = append(forms, compact.Bytes())
	}
	if s, ok := StringifyForm(body); ok && !bytes.Equal(s, body) && !bytes.Equal(s, compact.Bytes()) {
		forms = append(forms, s)
	}
	return forms
}
