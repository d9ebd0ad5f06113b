package sinks

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	cases := []struct {
		name  string
		in    string
		limit time.Duration
		want  time.Duration
		ok    bool
	}{
		{"seconds", "3", 24 * time.Hour, 3 * time.Second, true},
		{"zero with spaces", " 0 ", 24 * time.Hour, 0, true},
		{"IMF date", "Fri, 20 Nov 2026 10:00:30 GMT", 24 * time.Hour, 30 * time.Second, true},
		{"RFC 850 date", "Friday, 20-Nov-26 10:01:00 GMT", 24 * time.Hour, time.Minute, true},
		{"date in the past", "Fri, 20 Nov 2026 09:00:00 GMT", 24 * time.Hour, 0, true},
		{"seconds past uint64", "99999999999999999999", 24 * time.Hour, 24 * time.Hour, true},
		{"seconds over the limit", "3601", time.Hour, time.Hour, true},
		{"seconds at the limit", "3600", time.Hour, time.Hour, true},
		{"date past the limit", "Fri, 20 Nov 2026 12:00:00 GMT", time.Hour, time.Hour, true},
		{"negative", "-1", 24 * time.Hour, 0, false},
		{"fraction", "1.5", 24 * time.Hour, 0, false},
		{"word", "soon", 24 * time.Hour, 0, false},
		{"empty", "", 24 * time.Hour, 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := ParseRetryAfter(tc.in, now, tc.limit)
			if got != tc.want || ok != tc.ok {
				t.Errorf("ParseRetryAfter(%q, %v) = %v, %v; want %v, %v", tc.in, tc.limit, got, ok, tc.want, tc.ok)
			}
		})
	}
}

// FuzzParseRetryAfter: any header value gives no wait or a wait within
// [0, limit], for a limit of an hour (Slack's) or a day (the HTTP sink's).
func FuzzParseRetryAfter(f *testing.F) {
	for _, seed := range []string{"3", "0", "-5", "1e3", "Wed, 21 Oct 2015 07:28:00 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "99999999999999999999999", " 7 ", "3601"} {
		f.Add(seed, false)
		f.Add(seed, true)
	}
	now := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, v string, day bool) {
		limit := time.Hour
		if day {
			limit = 24 * time.Hour
		}
		d, ok := ParseRetryAfter(v, now, limit)
		if !ok && d != 0 {
			t.Fatalf("%q: not ok but %v", v, d)
		}
		if d < 0 || d > limit {
			t.Fatalf("%q: wait %v out of [0, %v]", v, d, limit)
		}
	})
}

func TestMarks(t *testing.T) {
	base := errors.New("refused")
	if Permanent(nil) != nil || RetryAfter(nil, time.Second) != nil {
		t.Fatal("marking nil must give nil")
	}
	if !IsPermanent(Permanent(base)) || IsPermanent(base) || !errors.Is(Permanent(base), base) {
		t.Fatal("Permanent")
	}
	wait, ok := RetryAfterOf(RetryAfter(base, 7*time.Second))
	if !ok || wait != 7*time.Second {
		t.Fatalf("RetryAfterOf = %v, %v", wait, ok)
	}
	if _, ok := RetryAfterOf(base); ok {
		t.Fatal("RetryAfterOf found a wait in an unmarked error")
	}
	if WithResponse(nil, 500, nil) != nil {
		t.Fatal("marking nil must give nil")
	}
	answered := RetryAfter(fmt.Errorf("slack: %w", WithResponse(base, 503, []byte("busy"))), time.Second)
	if status, body, ok := ResponseOf(answered); !ok || status != 503 || string(body) != "busy" || !errors.Is(answered, base) {
		t.Fatalf("ResponseOf = %d, %q, %v", status, body, ok)
	}
	if _, body, _ := ResponseOf(WithResponse(base, 500, make([]byte, 3*AnswerLimit))); len(body) != AnswerLimit {
		t.Fatalf("ResponseOf kept %d bytes of a long answer, want %d", len(body), AnswerLimit)
	}
	if _, _, ok := ResponseOf(Permanent(base)); ok {
		t.Fatal("ResponseOf found an answer in an error without one")
	}
}
