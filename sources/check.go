package sources

import (
	"net/url"
	"strings"

	"github.com/hookbridge/hookbridge/config"
)

// Checks that providers' Validate methods share. Each returns nil or a
// config.FieldError blaming field.

// CheckAbsoluteURI requires value to be a URI with a scheme and a host, such
// as an account address that becomes the CloudEvent source; example is shown
// in the error ("https://acme.helpcrunch.com").
func CheckAbsoluteURI(field, value, example string) error {
	if err := config.Required(field, value); err != nil {
		return err
	}
	if u, err := url.Parse(value); err != nil || u.Scheme == "" || u.Host == "" {
		return config.Invalid(field, "must be an absolute URI such as %s, got %q", example, value)
	}
	return nil
}

// CheckURIRef requires value to be a URI reference, as a CloudEvent source is.
func CheckURIRef(field, value string) error {
	if err := config.Required(field, value); err != nil {
		return err
	}
	if _, err := url.Parse(value); err != nil {
		return config.Invalid(field, "is not a URI: %v", err)
	}
	// url.Parse lets through what RFC 3986 does not (a space, a quote):
	// every CloudEvent would carry an invalid source.
	if i := strings.IndexAny(value, notInURIs); i >= 0 {
		return config.Invalid(field, "%q is not a URI: %q may not appear in one unescaped", value, value[i])
	}
	return nil
}

// notInURIs are characters RFC 3986 does not allow in a URI unescaped.
const notInURIs = " \t\r\n\"<>\\^`{|}"

// CheckPath accepts an empty path or a dotted JSON path (data.id) as
// Path reads it: no empty part.
func CheckPath(field, path string) error {
	if path == "" {
		return nil
	}
	for _, part := range strings.Split(path, ".") {
		if part == "" {
			return config.Invalid(field, "%q is not a dotted path such as data.id", path)
		}
	}
	return nil
}

// CheckNotBlank rejects a value that is set but only white space; whether
// an empty value is allowed is left to the caller.
func CheckNotBlank(field, value string) error {
	if value != "" && strings.TrimSpace(value) == "" {
		return config.Invalid(field, "must not be blank")
	}
	return nil
}

// CheckSecrets checks the signing secrets of a source that takes one under
// oneKey (secret) or several under manyKey (secrets) while they are
// rotated: exactly one of the two is set, no entry is empty, and each
// passes check when check is not nil. Errors never quote a secret.
func CheckSecrets(oneKey, one, manyKey string, many []string, check func(secret string) error) []error {
	var errs []error
	switch {
	case one == "" && len(many) == 0:
		errs = append(errs, config.Invalid(oneKey, "is required unless %s is given", manyKey))
	case one != "" && len(many) > 0:
		errs = append(errs, config.Invalid(manyKey, "and %s exclude each other: list every secret under %s", oneKey, manyKey))
	case one != "" && check != nil:
		if err := check(one); err != nil {
			errs = append(errs, config.Invalid(oneKey, "%v", err))
		}
	}
	for i, s := range many {
		if s == "" {
			errs = append(errs, config.Invalid(manyKey, "entry %d is empty", i+1))
		} else if check != nil {
			if err := check(s); err != nil {
				errs = append(errs, config.Invalid(manyKey, "entry %d: %v", i+1, err))
			}
		}
	}
	return errs
}

// SecretKeys is the HMAC keys of a source that takes one secret or several
// (see CheckSecrets): the bytes of one when it is set, else of each of many.
func SecretKeys(one string, many []string) [][]byte {
	if one != "" {
		return [][]byte{[]byte(one)}
	}
	keys := make([][]byte, len(many))
	for i, s := range many {
		keys[i] = []byte(s)
	}
	return keys
}
