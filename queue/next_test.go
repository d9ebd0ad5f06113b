package queue

import (
	"slices"
	"testing"
	"time"
)

func TestTryNextDoesNotWait(t *testing.T) {
	s := openStore(t, Options{})
	start := time.Now()
	if ds, err := s.TryNext("crm", 10); err != nil || len(ds) != 0 {
		t.Fatalf("empty queue: %v %v", ids(ds), err)
	}
	if time.Since(start) > time.Second {
		t.Fatal("TryNext waited")
	}
	enqueue(t, s, item("a", "crm"), item("b", "crm"), item("c", "crm"))
	ds, err := s.TryNext("crm", 2)
	if err != nil || !slices.Equal(ids(ds), []string{string(event("a")), string(event("b"))}) {
		t.Fatalf("first two: %v %v", ids(ds), err)
	}
	// What is in flight is not handed out again.
	ds, err = s.TryNext("crm", 10)
	if err != nil || !slices.Equal(ids(ds), []string{string(event("c"))}) {
		t.Fatalf("the rest: %v %v", ids(ds), err)
	}
	if ds, _ := s.TryNext("crm", 10); len(ds) != 0 {
		t.Fatalf("everything is in flight, got %v", ids(ds))
	}
	if _, err := s.TryNext("bad\x00name", 1); err == nil {
		t.Fatal("a bad sink name must be refused")
	}
}
