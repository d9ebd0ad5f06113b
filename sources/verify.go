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
	"math"
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
//
// The bounds are compared as times, never through now.Sub(ts): a Duration
// holds only ±292 years, so Sub saturates for a timestamp further away
// than that (unix milliseconds read as seconds, or any absurd number), and
// negating the saturated minimum overflows back to itself, which let such a
// timestamp through as if it were fresh.
func CheckTimestamp(ts, now time.Time, tolerance time.Duration) error {
	if tolerance <= 0 {
		return nil
	}
	if ts.Before(now.Add(-tolerance)) || ts.After(now.Add(tolerance)) {
		return fmt.Errorf("%w: %s, tolerance %s", ErrStaleTimestamp, offset(ts, now), tolerance)
	}
	return nil
}

// offset says how far ts is from now, and on which side, for an operator
// reading the log.
func offset(ts, now time.Time) string {
	if d := now.Sub(ts); d != math.MinInt64 && d != math.MaxInt64 {
		if d < 0 {
			return fmt.Sprintf("%s after the receive time", (-d).Round(time.Second))
		}
		return fmt.Sprintf("%s before the receive time", d.Round(time.Second))
	}
	// Sub saturated. The unix seconds still tell the side: time.Unix of a
	// number near the int64 limit wraps its internal clock into the far
	// past, but Unix gives the number back.
	side := "before"
	if ts.Unix() > now.Unix() {
		side = "after"
	}
	return fmt.Sprintf("unix time %d, more than 292 years %s the receive time", ts.Unix(), side)
}

// CheckUnixSeconds is CheckTimestamp for a header that carries unix
// seconds as a whole number. When the number is refused but would be close
// to now read as milliseconds (or micro- or nanoseconds), the error says so:
// the sender's clock is then fine, its unit is not, and that is what the
// operator needs to know.
func CheckUnixSeconds(secs int64, now time.Time, tolerance time.Duration) error {
	err := CheckTimestamp(time.Unix(secs, 0), now, tolerance)
	if err != nil {
		if unit, at, ok := otherUnit(secs, now); ok {
			err = fmt.Errorf("%w; %d looks like unix %s (%s), where unix seconds are expected", err, secs, unit, at.UTC().Format(time.RFC3339Nano))
		}
	}
	return err
}

// otherUnit finds the unit smaller than a second in which n, a count since
// the unix epoch, is within a day of now; ok is false when there is none.
func otherUnit(n int64, now time.Time) (unit string, at time.Time, ok bool) {
	for _, u := range []struct {
		name string
		per  int64 // of the unit in a second
	}{{"milliseconds", 1e3}, {"microseconds", 1e6}, {"nanoseconds", 1e9}} {
		at = time.Unix(n/u.per, n%u.per*(1e9/u.per))
		if !at.Before(now.Add(-24*time.Hour)) && !at.After(now.Add(24*time.Hour)) {
			return u.name, at, true
		}
	}
	return "", time.Time{}, false
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
