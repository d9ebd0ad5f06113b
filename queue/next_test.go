package queue

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"
)

func TestTryNextDoesNotWait(t *testing.T) {
	s := openStore(t, Options{})
	start := time.Now()
	if ds, err := s.TryNext("crm", 10, 0); err != nil || len(ds) != 0 {
		t.Fatalf("empty queue: %v %v", ids(ds), err)
	}
	if time.Since(start) > time.Second {
		t.Fatal("TryNext waited")
	}
	enqueue(t, s, item("a", "crm"), item("b", "crm"), item("c", "crm"))
	ds, err := s.TryNext("crm", 2, 0)
	if err != nil || !slices.Equal(ids(ds), []string{string(event("a")), string(event("b"))}) {
		t.Fatalf("first two: %v %v", ids(ds), err)
	}
	// What is in flight is not handed out again.
	ds, err = s.TryNext("crm", 10, 0)
	if err != nil || !slices.Equal(ids(ds), []string{string(event("c"))}) {
		t.Fatalf("the rest: %v %v", ids(ds), err)
	}
	if ds, _ := s.TryNext("crm", 10, 0); len(ds) != 0 {
		t.Fatalf("everything is in flight, got %v", ids(ds))
	}
	if _, err := s.TryNext("bad\x00name", 1, 0); err == nil {
		t.Fatal("a bad sink name must be refused")
	}
}

// TestNextWithinMaxBytes: with a byte limit, Next hands out events while
// they fit (the first whatever its size), in seq order, for single-sink
// records (whose bodies are known while scanning), shared bodies (known
// only once read) and released deliveries alike; what did not fit comes
// first next time.
func TestNextWithinMaxBytes(t *testing.T) {
	s := openStore(t, Options{})
	big := func(id string, n int, sinks ...string) Item {
		return Item{ID: id, Event: fmt.Appendf(nil, `{"id":%q,"pad":"%0*d"}`, id, n, 0), Sinks: sinks}
	}
	var items []Item
	for i := range 6 {
		items = append(items, big(fmt.Sprint("solo-", i), 1000, "k"))
	}
	for i := range 6 {
		items = append(items, big(fmt.Sprint("shared-", i), 1000, "k", "other"))
	}
	items = append(items, big("huge", 5000, "k"))
	enqueue(t, s, items...)

	idsOf := func(ds []Delivery) []string {
		var out []string
		for _, d := range ds {
			var ev struct{ ID string }
			json.Unmarshal(d.Event, &ev)
			out = append(out, ev.ID)
		}
		return out
	}
	next := func(maxBytes int) []Delivery {
		t.Helper()
		ds, err := s.TryNext("k", 100, maxBytes)
		if err != nil {
			t.Fatal(err)
		}
		return ds
	}
	// About 1 KB each: three fit in 3,500 bytes.
	first := next(3500)
	if got := idsOf(first); !slices.Equal(got, []string{"solo-0", "solo-1", "solo-2"}) {
		t.Fatalf("first take: %v", got)
	}
	// Release one: it comes back first, beside what fits after it.
	if err := s.Release("k", first[2].Seq); err != nil {
		t.Fatal(err)
	}
	if got := idsOf(next(3500)); !slices.Equal(got, []string{"solo-2", "solo-3", "solo-4"}) {
		t.Fatalf("after a release: %v", got)
	}
	if got := idsOf(next(3500)); !slices.Equal(got, []string{"solo-5", "shared-0", "shared-1"}) {
		t.Fatalf("into the shared bodies: %v", got)
	}
	if got := idsOf(next(3500)); !slices.Equal(got, []string{"shared-2", "shared-3", "shared-4"}) {
		t.Fatalf("shared bodies: %v", got)
	}
	// The huge one does not fit beside shared-5; alone it is handed out whole.
	if got := idsOf(next(3500)); !slices.Equal(got, []string{"shared-5"}) {
		t.Fatalf("before the huge one: %v", got)
	}
	if got := idsOf(next(3500)); !slices.Equal(got, []string{"huge"}) {
		t.Fatalf("the huge one: %v", got)
	}
	if ds := next(3500); len(ds) != 0 {
		t.Fatalf("left over: %v", idsOf(ds))
	}
	// Without a limit, everything pending at once.
	if got := idsOf(drain(t, s, "other")); len(got) != 6 {
		t.Fatalf("the other sink got %v", got)
	}
}
