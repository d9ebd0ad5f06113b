package sources

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash"
	"strconv"
	"strings"
	"time"
)

// HashFunc returns the constructor for a hash named sha1, sha256 or sha512.
func HashFunc(name string) (func() hash.Hash, error) {
	switch strings.ToLower(strings.ReplaceAll(name, "-", "")) {
	case "sha1":
		return sha1.New, nil
	case "sha256":
		return sha256.New, nil
	case "sha512":
		return sha512.New, nil
	}
	return nil, fmt.Errorf("unknown algorithm %q (sha1, sha256 or sha512)", name)
}

// HMAC computes the HMAC of the concatenated parts.
func HMAC(h func() hash.Hash, key []byte, parts ...[]byte) []byte {
	m := hmac.New(h, key)
	for _, p := range parts {
		m.Write(p)
	}
	return m.Sum(nil)
}

// EqualHex reports, in constant time, whether sig is the hex encoding
// (either case) of mac.
func EqualHex(sig string, mac []byte) bool {
	got, err := hex.DecodeString(strings.TrimSpace(sig))
	if err != nil {
		return false
	}
	return hmac.Equal(got, mac)
}

// EqualBase64 reports, in constant time, whether sig is the standard or
// URL-safe base64 encoding (padded or not) of mac.
func EqualBase64(sig string, mac []byte) bool {
	sig = strings.TrimSpace(sig)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if got, err := enc.DecodeString(sig); err == nil {
			return hmac.Equal(got, mac)
		}
	}
	return false
}

// EqualSecret reports, in constant time, whether got equals want. An empty
// want never matches.
func EqualSecret(got, want string) bool {
	if want == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// CheckTimestamp returns ErrStaleTimestamp when ts is further than tolerance
// from now in either direction; tolerance 0 turns the check off.
func CheckTimestamp(ts, now time.Time, tolerance time.Duration) error {
	if tolerance <= 0 {
		return nil
	}
	d := now.Sub(ts)
	if d < 0 {
		d = -d
	}
	if d > tolerance {
		return fmt.Errorf("%w: %s from the receive time, tolerance %s", ErrStaleTimestamp, d.Round(time.Second), tolerance)
	}
	return nil
}

// IsHexDigest reports whether sig is the hex encoding (either case) of
// exactly size bytes, the form of a hex HMAC of that hash size.
func IsHexDigest(sig string, size int) bool {
	if len(sig) != 2*size {
		return false
	}
	_, err := hex.DecodeString(sig)
	return err == nil
}

// ParseDigits reads a timestamp header's number: a positive int64 written in
// ASCII digits alone (no sign, space, or fraction), as signed content
// carries it.
func ParseDigits(s string) (int64, bool) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, false
	}
	return n, true
}

// SHA256Hex is the hex SHA-256 of the concatenated parts; sources use it for
// ids of providers that give none.
func SHA256Hex(parts ...[]byte) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write(p)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// SignedByAny reports whether the hex signature sig is mac(key) for any of
// keys (the secrets of a source while they are rotated). Every key is
// tried, so the time taken does not tell which one matched.
func SignedByAny(sig string, keys [][]byte, mac func(key []byte) []byte) bool {
	match := false
	for _, key := range keys {
		if EqualHex(sig, mac(key)) {
			match = true
		}
	}
	return match
}

// CheckSHA256Signature checks value, the signature header name carries: prefix
// (such as "sha256=") and the hex HMAC-SHA256 of body under one of keys, as
// GitHub's and Meta's X-Hub-Signature-256 are. A missing header is the
// caller's to report, with what its provider sends.
func CheckSHA256Signature(name, value, prefix string, keys [][]byte, body []byte) error {
	sig, ok := strings.CutPrefix(value, prefix)
	if !ok || !IsHexDigest(sig, sha256.Size) {
		return fmt.Errorf("%w: %s is not %s<64 hex digits>", ErrMalformedSignature, name, prefix)
	}
	if !SignedByAny(sig, keys, func(key []byte) []byte { return HMAC(sha256.New, key, body) }) {
		return fmt.Errorf("%w: %s is not the HMAC-SHA256 of the body under a configured secret", ErrSignatureMismatch, name)
	}
	return nil
}
