package sources

import (
	"errors"
	"fmt"
	"slices"
	"testing"
)

// Reasons is every name Reason gives, and no other: the bridge exports a
// source's failure counter at 0 under each, so a name missing there would
// appear only with its first failure, and one Reason never gives would be
// a series that cannot move.
func TestReasonsAreWhatReasonGives(t *testing.T) {
	given := map[string]bool{}
	for _, err := range []error{ErrMissingSignature, ErrMalformedSignature, ErrSignatureMismatch, ErrStaleTimestamp, ErrBadKey, ErrMethodNotAllowed, errors.New("a source's own")} {
		reason := Reason(fmt.Errorf("%w: with detail", err))
		if !slices.Contains(Reasons(), reason) {
			t.Errorf("Reason gives %q for %v, and Reasons lacks it", reason, err)
		}
		if given[reason] {
			t.Errorf("Reason gives %q for two errors", reason)
		}
		given[reason] = true
	}
	for _, r := range Reasons() {
		if !given[r] {
			t.Errorf("Reasons has %q, which Reason never gives", r)
		}
	}
}
