package queue

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// blockFirstCommit makes the store's first commit wait until the returned
// release is called with the error that commit is to fail with (nil: it
// goes ahead); later commits fail with later(call) when it is set. calls
// counts the commits, and entered is closed once the first one waits.
func blockFirstCommit(s *Store, later func(call int32) error) (entered chan struct{}, release func(error), calls *atomic.Int32) {
	entered = make(chan struct{})
	gate := make(chan error)
	calls = new(atomic.Int32)
	s.commitHook = func() error {
		n := calls.Add(1)
		if n == 1 {
			close(entered)
			return <-gate
		}
		if later != nil {
			return later(n)
		}
		return nil
	}
	return entered, func(err error) { gate <- err }, calls
}

// waitQueued waits until n commit jobs are queued behind the leader.
func waitQueued(t *testing.T, s *Store, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.committer.mu.Lock()
		queued := len(s.committer.queued)
		s.committer.mu.Unlock()
		if queued == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d commit jobs queued, want %d", queued, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// enqueueAll runs one Enqueue per id concurrently and returns their errors
// once all have returned.
func enqueueAll(s *Store, ids []string, sinks ...string) <-chan []error {
	out := make(chan []error, 1)
	errs := make([]error, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = s.Enqueue(context.Background(), []Item{item(id, sinks...)})
		}()
	}
	go func() { wg.Wait(); out <- errs }()
	return out
}

// bodies are the stored events of ids, as ids(deliveries) lists them.
func bodies(idList []string) []string {
	out := make([]string, len(idList))
	for i, id := range idList {
		out[i] = string(event(id))
	}
	return out
}

func names(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%03d", prefix, i)
	}
	return out
}

func TestEnqueuesWaitingForACommitShareTheNextOne(t *testing.T) {
	s := openStore(t, Options{})
	entered, release, calls := blockFirstCommit(s, nil)
	first := enqueueAll(s, []string{"first"}, "a", "b")
	<-entered

	// While the first commit is in progress, 20 more callers arrive, each
	// with one event for one or two sinks.
	later := names("e", 20)
	var rest []<-chan []error
	for i, id := range later {
		sinks := []string{"a"}
		if i%2 == 0 {
			sinks = []string{"a", "b"}
		}
		rest = append(rest, enqueueAll(s, []string{id}, sinks...))
	}
	waitQueued(t, s, len(later))
	release(nil)
	for _, ch := range append(rest, first) {
		for _, err := range <-ch {
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	if got := calls.Load(); got != 2 {
		t.Fatalf("%d commits for 21 Enqueue calls, want 2: the first, then one for all that waited", got)
	}

	gotA, gotB := ids(drain(t, s, "a")), ids(drain(t, s, "b"))
	wantA := append([]string{"first"}, later...)
	wantB := []string{"first"}
	for i, id := range later {
		if i%2 == 0 {
			wantB = append(wantB, id)
		}
	}
	slices.Sort(gotA[1:])
	slices.Sort(gotB[1:])
	if !slices.Equal(gotA, bodies(wantA)) || !slices.Equal(gotB, bodies(wantB)) {
		t.Fatalf("delivered a: %v\nb: %v\nwant a: %v\nb: %v", gotA, gotB, wantA, wantB)
	}
	assertEmpty(t, s)
	for _, id := range later {
		if dup := enqueue(t, s, item(id, "a")); !dup[0] {
			t.Fatalf("%s accepted again after a shared commit; want a duplicate", id)
		}
	}
}

func TestCommitGroupIsBounded(t *testing.T) {
	s := openStore(t, Options{})
	entered, release, calls := blockFirstCommit(s, nil)
	first := enqueueAll(s, []string{"first"}, "a")
	<-entered
	waiting := enqueueAll(s, names("e", maxCommitGroup+1), "a")
	waitQueued(t, s, maxCommitGroup+1)
	release(nil)
	for _, ch := range []<-chan []error{first, waiting} {
		for _, err := range <-ch {
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	if got := calls.Load(); got != 3 {
		t.Fatalf("%d commits, want 3: the first, a full group of %d, and the one left over", got, maxCommitGroup)
	}
	if got := len(drain(t, s, "a")); got != maxCommitGroup+2 {
		t.Fatalf("delivered %d events, want %d", got, maxCommitGroup+2)
	}
}

func TestFailedGroupCommitFailsEveryCallerInIt(t *testing.T) {
	s := openStore(t, Options{})
	diskFull := errors.New("disk full")
	entered, release, calls := blockFirstCommit(s, func(call int32) error {
		if call == 2 {
			return diskFull
		}
		return nil
	})
	first := enqueueAll(s, []string{"first"}, "a")
	<-entered
	failed := names("e", 10)
	waiting := enqueueAll(s, failed, "a")
	waitQueued(t, s, len(failed))
	release(nil)
	if err := (<-first)[0]; err != nil {
		t.Fatal(err)
	}
	for i, err := range <-waiting {
		if !errors.Is(err, diskFull) {
			t.Fatalf("Enqueue of %s: %v, want the group's commit error", failed[i], err)
		}
	}
	if got := calls.Load(); got != 2 {
		t.Fatalf("%d commits, want 2", got)
	}

	// Nothing of the failed group was stored: the same ids are accepted
	// anew, and the sink gets them after the first.
	for _, id := range failed {
		if dup := enqueue(t, s, item(id, "a")); dup[0] {
			t.Fatalf("%s reported a duplicate after its commit failed", id)
		}
	}
	if got, want := ids(drain(t, s, "a")), bodies(append([]string{"first"}, failed...)); !slices.Equal(got, want) {
		t.Fatalf("delivered %v, want %v", got, want)
	}
	assertEmpty(t, s)
}
