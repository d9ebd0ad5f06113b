package sources

import (
	"errors"
	"math"
	"math/big"
	"strings"
	"testing"
	"time"
)

// now is a receive time; 1796305481000 is it in unix milliseconds.
var now = time.UnixMilli(1796305481000)

func TestCheckTimestamp(t *testing.T) {
	const tol = 5 * time.Minute
	cases := []struct {
		name  string
		ts    time.Time
		tol   time.Duration
		stale bool
	}{
		{"now", now, tol, false},
		{"at the tolerance before", now.Add(-tol), tol, false},
		{"at the tolerance after", now.Add(tol), tol, false},
		{"a nanosecond too early", now.Add(-tol - 1), tol, true},
		{"a nanosecond too late", now.Add(tol + 1), tol, true},
		// Further than a time.Duration reaches: now.Sub saturates there.
		{"unix milliseconds read as seconds", time.Unix(1796305481000, 0), tol, true},
		{"99999999999 seconds, the year 5138", time.Unix(99999999999, 0), tol, true},
		{"the largest int64 in seconds", time.Unix(math.MaxInt64, 0), tol, true},
		{"the first second of 1970", time.Unix(1, 0), tol, true},
		{"the zero time", time.Time{}, tol, true},
		{"a tolerance as long as a Duration", time.Unix(1796305481000, 0), math.MaxInt64, true},
		{"tolerance 0 turns the check off", time.Unix(1796305481000, 0), 0, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := CheckTimestamp(c.ts, now, c.tol)
			if c.stale != errors.Is(err, ErrStaleTimestamp) || !c.stale && err != nil {
				t.Fatalf("got %v, stale=%v wanted", err, c.stale)
			}
			if c.stale && Reason(err) != "stale_timestamp" {
				t.Fatalf("reason %q", Reason(err))
			}
		})
	}
}

func TestCheckTimestampSaysHowFar(t *testing.T) {
	for _, c := range []struct {
		ts   time.Time
		want string
	}{
		{now.Add(-time.Hour), "1h0m0s before the receive time, tolerance 5m0s"},
		{now.Add(390 * time.Second), "6m30s after the receive time"},
		{time.Unix(1796305481000, 0), "unix time 1796305481000, more than 292 years after the receive time"},
		{time.Unix(math.MaxInt64, 0), "unix time 9223372036854775807, more than 292 years after the receive time"},
		{time.Time{}, "unix time -62135596800, more than 292 years before the receive time"},
	} {
		err := CheckTimestamp(c.ts, now, 5*time.Minute)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want it to say %q", c.ts, err, c.want)
		}
	}
}

func TestCheckUnixSecondsNamesTheUnit(t *testing.T) {
	for _, c := range []struct {
		secs int64
		want string // "" : no unit named
	}{
		{1796305481000, "1796305481000 looks like unix milliseconds (2026-12-03T13:44:41Z)"},
		{1796305481000123, "looks like unix microseconds (2026-12-03T13:44:41.000123Z)"},
		{1796305481000123456, "looks like unix nanoseconds (2026-12-03T13:44:41.000123456Z)"},
		{99999999999, ""},
		{1796305481 - 3600, ""},
	} {
		err := CheckUnixSeconds(c.secs, now, 5*time.Minute)
		if !errors.Is(err, ErrStaleTimestamp) {
			t.Fatalf("%d: %v", c.secs, err)
		}
		if named := strings.Contains(err.Error(), "looks like"); named != (c.want != "") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%d: %v, want it to say %q", c.secs, err, c.want)
		}
	}
	if err := CheckUnixSeconds(1796305481, now, 5*time.Minute); err != nil {
		t.Fatalf("the receive time in seconds: %v", err)
	}
}

// FuzzCheckTimestamp checks CheckTimestamp against arithmetic that cannot
// overflow: a timestamp is accepted exactly when it is within the
// tolerance of the receive time, however far away it is.
func FuzzCheckTimestamp(f *testing.F) {
	f.Add(int64(1796305481000), uint32(0), int64(1796305481), uint32(0), int64(5*time.Minute))
	f.Add(int64(99999999999), uint32(0), int64(1796305481), uint32(0), int64(5*time.Minute))
	f.Add(int64(math.MaxInt64), uint32(999999999), int64(1796305481), uint32(0), int64(5*time.Minute))
	f.Add(int64(math.MinInt64), uint32(0), int64(1796305481), uint32(0), int64(math.MaxInt64))
	f.Add(int64(1796305481+300), uint32(0), int64(1796305481), uint32(0), int64(5*time.Minute))
	f.Add(int64(1796305481+300), uint32(1), int64(1796305481), uint32(0), int64(5*time.Minute))
	f.Fuzz(func(t *testing.T, sec int64, nsec uint32, nowSec int64, nowNsec uint32, tol int64) {
		// The receive time is a clock's reading: years 1970 to 9999.
		if nowSec < 0 || nowSec > 253402300799 {
			return
		}
		ts := time.Unix(sec, int64(nsec%1e9))
		at := time.Unix(nowSec, int64(nowNsec%1e9))
		err := CheckTimestamp(ts, at, time.Duration(tol))
		if err != nil && !errors.Is(err, ErrStaleTimestamp) {
			t.Fatalf("an error that is not a stale timestamp: %v", err)
		}
		within := tol <= 0 || nanosApart(ts, at).CmpAbs(big.NewInt(tol)) <= 0
		if within != (err == nil) {
			t.Fatalf("ts %d.%09d, now %d.%09d, tolerance %s: within=%v but got %v",
				sec, nsec%1e9, nowSec, nowNsec%1e9, time.Duration(tol), within, err)
		}
	})
}

// nanosApart is ts-now in nanoseconds, from their unix seconds and
// nanoseconds, in arithmetic that cannot overflow.
func nanosApart(ts, now time.Time) *big.Int {
	nanos := func(t time.Time) *big.Int {
		n := new(big.Int).Mul(big.NewInt(t.Unix()), big.NewInt(1e9))
		return n.Add(n, big.NewInt(int64(t.Nanosecond())))
	}
	return new(big.Int).Sub(nanos(ts), nanos(now))
}
