package bridge

import (
	"log/slog"
	"math"
	"runtime/debug"
	"testing"
)

func TestMemoryLimitFromFileAndEnvironment(t *testing.T) {
	cases := []struct {
		name  string
		extra string
		env   map[string]string
		limit int64
		from  string
		set   bool
	}{
		{"default", "", nil, 64 << 20, "default", true},
		{"default grows with the dedup filter", "queue: {dedup_memory: 36MiB}\n", nil, 96 << 20, "default", true},
		{"a smaller dedup filter keeps the default", "queue: {dedup_memory: 1MiB}\n", nil, 64 << 20, "default", true},
		{"GOMEMLIMIT is left to the runtime", "", map[string]string{"GOMEMLIMIT": "200MiB"}, 0, "GOMEMLIMIT", false},
		{"an empty GOMEMLIMIT is not set", "", map[string]string{"GOMEMLIMIT": ""}, 64 << 20, "default", true},
		{"the file wins over GOMEMLIMIT", "memory_limit: 256MiB\n", map[string]string{"GOMEMLIMIT": "200MiB"}, 256 << 20, "memory_limit", true},
		{"0 turns it off", "memory_limit: 0\n", nil, math.MaxInt64, "memory_limit", true},
		{"the kafka queue has no dedup filter", "queue: {type: kafka, brokers: [\"k:9092\"]}\n", nil, 64 << 20, "default", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, errs := parse(t, base+c.extra, nil)
			if errs != nil {
				t.Fatal(errs)
			}
			limit, from, set := f.memoryLimit(func(k string) (string, bool) { v, ok := c.env[k]; return v, ok })
			if limit != c.limit || from != c.from || set != c.set {
				t.Fatalf("got %d from %s (set %v), want %d from %s (set %v)", limit, from, set, c.limit, c.from, c.set)
			}
		})
	}
}

// TestApplyMemoryLimitSetsTheRuntimes checks that an App that manages the
// limit sets it on the runtime, follows a change of the file, and that one
// that does not leaves the runtime's alone.
func TestApplyMemoryLimitSetsTheRuntimes(t *testing.T) {
	was := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(was) })
	noEnv := func(string) (string, bool) { return "", false }

	a := New("c.yaml")
	a.log = slog.New(slog.DiscardHandler)
	f, errs := parse(t, base+"memory_limit: 48MiB\n", nil)
	if errs != nil {
		t.Fatal(errs)
	}
	a.applyMemoryLimit(f, noEnv)
	if got := debug.SetMemoryLimit(-1); got != was {
		t.Fatalf("an App that does not manage the limit changed it to %d", got)
	}
	a.ManageMemoryLimit()
	a.applyMemoryLimit(f, noEnv)
	if got := debug.SetMemoryLimit(-1); got != 48<<20 {
		t.Fatalf("limit %d, want 48MiB", got)
	}
	if f, errs = parse(t, base, nil); errs != nil {
		t.Fatal(errs)
	}
	a.applyMemoryLimit(f, noEnv)
	if got := debug.SetMemoryLimit(-1); got != int64(DefaultMemoryLimit) {
		t.Fatalf("after the key left the file: limit %d, want the default", got)
	}
}
