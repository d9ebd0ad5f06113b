package server

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// SupportedEncodings are the Content-Encodings the listener undoes.
const SupportedEncodings = "gzip, deflate"

var (
	// errUnsupportedEncoding is a Content-Encoding the listener cannot
	// undo: 415, as RFC 9110 (15.5.16) asks.
	errUnsupportedEncoding = errors.New("unsupported Content-Encoding")
	// errDecodedTooLarge is a body whose decoded form is over the limit.
	errDecodedTooLarge = errors.New("decoded body over the limit")
)

// decodeBody undoes the request's Content-Encoding (RFC 9110, 8.4), the
// codings in the reverse of the order they were applied. A provider signs
// its payload, not the bytes its HTTP library compressed it into, so the
// decoded body is what is verified and queued. At most limit bytes are
// decoded: a body of a few hundred kilobytes that inflates to gigabytes
// stops there, at a cost of limit bytes of memory.
func decodeBody(h http.Header, body []byte, limit int64) ([]byte, error) {
	codings := contentCodings(h)
	// Every layer costs up to limit bytes and the CPU to make them, and a
	// request can list thousands: no sender compresses twice over.
	if len(codings) > maxCodings {
		return nil, fmt.Errorf("%w: %d codings (%s); at most %d", errUnsupportedEncoding, len(codings), strings.Join(codings, ", "), maxCodings)
	}
	for _, c := range codings {
		if !supportedCoding(c) {
			return nil, fmt.Errorf("%w %q (the listener undoes %s)", errUnsupportedEncoding, c, SupportedEncodings)
		}
	}
	if len(body) == 0 {
		return body, nil // nothing was compressed; the checks after say what is missing
	}
	for i := len(codings) - 1; i >= 0; i-- {
		var err error
		if body, err = decodeOne(codings[i], body, limit); err != nil {
			return nil, err
		}
	}
	return body, nil
}

// maxCodings is the most content codings a body may carry.
const maxCodings = 2

// contentCodings is the Content-Encoding list, lower case, without the
// values that leave the body as it is: several header lines are one list
// (RFC 9110, 5.3).
func contentCodings(h http.Header) []string {
	var out []string
	for _, line := range h.Values("Content-Encoding") {
		for _, c := range strings.Split(line, ",") {
			if c = strings.ToLower(strings.TrimSpace(c)); c != "" && !identityCoding(c) {
				out = append(out, c)
			}
		}
	}
	return out
}

// identityCoding is "identity", or a charset or transfer name that some
// HTTP clients put in Content-Encoding by mistake ("utf-8"): the body is
// as it was sent, and refusing it would refuse every delivery of such a
// provider for a header that changes nothing.
func identityCoding(c string) bool {
	switch c {
	case "identity", "utf-8", "utf8", "binary", "8bit", "7bit":
		return true
	}
	return false
}

// decoders are the codings the listener undoes, each making a reader of
// the decoded bytes.
var decoders = map[string]func(body []byte) (io.Reader, error){
	"gzip":   gunzip,
	"x-gzip": gunzip,
	"deflate": func(body []byte) (io.Reader, error) {
		// HTTP's deflate is the zlib format (RFC 9110, 8.4.1.2); some
		// senders send bare deflate data, which is taken too.
		zr, err := zlib.NewReader(bytes.NewReader(body))
		if errors.Is(err, zlib.ErrHeader) {
			return flate.NewReader(bytes.NewReader(body)), nil
		}
		return zr, err
	},
}

func gunzip(body []byte) (io.Reader, error) { return gzip.NewReader(bytes.NewReader(body)) }

func supportedCoding(c string) bool { return decoders[c] != nil }

func decodeOne(coding string, body []byte, limit int64) ([]byte, error) {
	r, err := decoders[coding](body)
	if err != nil {
		return nil, readErr(coding, err)
	}
	out, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, readErr(coding, err)
	}
	if int64(len(out)) > limit {
		return nil, fmt.Errorf("%w: %s body inflates past %d bytes", errDecodedTooLarge, coding, limit)
	}
	return out, nil
}

// readErr says which coding failed where the decompressor's own words do
// not (they do, "gzip: invalid header", but for data cut short).
func readErr(coding string, err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return fmt.Errorf("%s data ends early: %w", coding, err)
	}
	return err
}
