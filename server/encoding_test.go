package server

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

func compress(t testing.TB, coding string, b []byte) []byte {
	var buf bytes.Buffer
	var w interface {
		Write([]byte) (int, error)
		Close() error
	}
	switch coding {
	case "gzip":
		w = gzip.NewWriter(&buf)
	case "zlib":
		w = zlib.NewWriter(&buf)
	case "flate":
		w, _ = flate.NewWriter(&buf, flate.DefaultCompression)
	default:
		t.Fatalf("no coding %s", coding)
	}
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func TestDecodeBody(t *testing.T) {
	payload := []byte(`{"lead":"` + strings.Repeat("x", 1000) + `"}`)
	header := func(v ...string) http.Header {
		h := http.Header{}
		for _, line := range v {
			h.Add("Content-Encoding", line)
		}
		return h
	}
	for _, c := range []struct {
		name   string
		header http.Header
		body   []byte
		limit  int64
		want   []byte
		err    error // nil, or a sentinel; "other" below for any other error
		other  bool
	}{
		{"none", header(), payload, 2000, payload, nil, false},
		{"identity", header("identity"), payload, 2000, payload, nil, false},
		{"gzip", header("gzip"), compress(t, "gzip", payload), 2000, payload, nil, false},
		{"x-gzip, any case", header("X-GZip"), compress(t, "gzip", payload), 2000, payload, nil, false},
		{"deflate as zlib", header("deflate"), compress(t, "zlib", payload), 2000, payload, nil, false},
		{"deflate bare", header("deflate"), compress(t, "flate", payload), 2000, payload, nil, false},
		{"two codings, undone in reverse", header("deflate, gzip"), compress(t, "gzip", compress(t, "zlib", payload)), 2000, payload, nil, false},
		{"two header lines are one list", header("deflate", "gzip"), compress(t, "gzip", compress(t, "zlib", payload)), 2000, payload, nil, false},
		{"exactly at the limit", header("gzip"), compress(t, "gzip", payload), int64(len(payload)), payload, nil, false},
		{"one byte over the limit", header("gzip"), compress(t, "gzip", payload), int64(len(payload)) - 1, nil, errDecodedTooLarge, false},
		{"brotli", header("br"), payload, 2000, nil, errUnsupportedEncoding, false},
		{"gzip then br", header("gzip, br"), payload, 2000, nil, errUnsupportedEncoding, false},
		{"not gzip", header("gzip"), payload, 2000, nil, nil, true},
		{"gzip cut short", header("gzip"), compress(t, "gzip", payload)[:40], 2000, nil, nil, true},
		{"not deflate", header("deflate"), payload, 2000, nil, nil, true},
		{"a charset given as the coding", header("UTF-8"), payload, 2000, payload, nil, false},
		{"three codings", header("gzip, gzip, gzip"), compress(t, "gzip", compress(t, "gzip", compress(t, "gzip", payload))), 2000, nil, errUnsupportedEncoding, false},
		{"an unknown coding among known ones", header("br, gzip"), compress(t, "gzip", payload), 2000, nil, errUnsupportedEncoding, false},
		{"an empty body", header("gzip"), nil, 2000, nil, nil, false},
	} {
		got, err := decodeBody(c.header, c.body, c.limit)
		switch {
		case c.err != nil || c.other:
			if err == nil || (c.err != nil && !errors.Is(err, c.err)) {
				t.Errorf("%s: err %v, want %v", c.name, err, c.err)
			}
		case err != nil:
			t.Errorf("%s: %v", c.name, err)
		case !bytes.Equal(got, c.want):
			t.Errorf("%s: decoded %d bytes, want the %d of the payload", c.name, len(got), len(c.want))
		}
	}
}

// Whatever the body and codings, decoding never returns more than the
// limit, and a body without a coding comes back as it was.
func FuzzDecodeBody(f *testing.F) {
	f.Add("gzip", compress(f, "gzip", []byte(`{"a":1}`)), int64(100))
	f.Add("deflate", compress(f, "zlib", []byte(`{"a":1}`)), int64(3))
	f.Add("deflate, gzip", compress(f, "gzip", compress(f, "flate", []byte(`{}`))), int64(10))
	f.Add("", []byte(`{}`), int64(1))
	f.Fuzz(func(t *testing.T, coding string, body []byte, limit int64) {
		if limit < 0 || limit > 1<<20 {
			return
		}
		h := http.Header{}
		h.Set("Content-Encoding", coding)
		out, err := decodeBody(h, body, limit)
		if err != nil {
			return
		}
		if len(contentCodings(h)) > 0 && int64(len(out)) > limit {
			t.Fatalf("decoded %d bytes past the limit %d", len(out), limit)
		}
		if len(contentCodings(h)) == 0 && !bytes.Equal(out, body) {
			t.Fatalf("no coding, and the body changed")
		}
	})
}

// What fasthttp says of a request it cannot read is logged without the
// request's bytes, which may hold a key or a signature.
func TestReadErrorKeepsNoRequestText(t *testing.T) {
	for _, err := range []error{
		fmt.Errorf("error when reading request headers: cannot parse Content-Length: non-numeric chars found. Buffer size=101, contents: %q", "POST /x?key=SECRET HTTP/1.1\r\n"),
		fmt.Errorf("cannot find http request method in %q", "GARBAGE?key=SECRET"),
		fmt.Errorf("error when reading request headers: %w. Buffer size=%d", errors.New("small read buffer"), 4096),
	} {
		got := readError(err)
		if strings.Contains(got, "SECRET") || got == "" {
			t.Errorf("readError(%q) = %q", err, got)
		}
	}
	if got := readError(errors.New("timeout")); got != "timeout" {
		t.Errorf("a plain error became %q", got)
	}
}
