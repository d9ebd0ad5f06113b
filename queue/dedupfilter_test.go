package queue

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
)

// newIDs returns n items with ids prefix0, prefix1, ... and no sinks.
func newIDs(prefix string, n int) []Item {
	items := make([]Item, n)
	for i := range items {
		items[i] = Item{ID: prefix + strconv.Itoa(i)}
	}
	return items
}

// maybe is f.mayContain of id's digest, without the span.
func maybe(f *dedupFilter, id string, now int64) bool {
	_, _, ok := f.mayContain(digestOf(id), now)
	return ok
}

func digests(ids ...string) []idDigest {
	ds := make([]idDigest, len(ids))
	for i, id := range ids {
		ds[i] = digestOf(id)
	}
	return ds
}

func countTrue(bs []bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}

func TestDedupFilterSkipsLookupOfNewIDs(t *testing.T) {
	s := openStore(t, Options{})
	const n = 5000
	for i := range n / 500 {
		if dup := enqueue(t, s, newIDs(fmt.Sprintf("new-%d-", i), 500)...); slices.Contains(dup, true) {
			t.Fatalf("new ids reported as duplicates: %v", dup)
		}
	}
	// The filter holds 5000 ids: a few false positives may be looked up,
	// at most 0.1% of the ids per filter tested. (With 1%, these ids made
	// 13 lookups.)
	if gets := s.dedupGets.Load(); gets > n/1000 {
		t.Fatalf("%d of %d new ids were looked up in the store, want at most %d", gets, n, n/1000)
	}

	before := s.dedupGets.Load()
	for i := range n / 500 {
		if dup := enqueue(t, s, newIDs(fmt.Sprintf("new-%d-", i), 500)...); countTrue(dup) != 500 {
			t.Fatalf("%d of 500 repeated ids reported as duplicates", countTrue(dup))
		}
	}
	if gets := s.dedupGets.Load() - before; gets != n {
		t.Fatalf("%d lookups for %d repeated ids, want one each", gets, n)
	}
	if st := s.Stats(); st.DedupFilterBlind || st.DedupFilterBytes <= 0 || st.DedupFilterBytes > DefaultDedupMemory {
		t.Fatalf("Stats: filter blind %v, %d bytes; want not blind, within the budget", st.DedupFilterBlind, st.DedupFilterBytes)
	}
}

func TestDedupFilterWindowEdges(t *testing.T) {
	const window = time.Hour
	clk := newClock()
	s := openStore(t, Options{DedupWindow: window, now: clk.Now})
	enqueue(t, s, item("x", "s"))
	// Cross several generations (a quarter window each) while x is young.
	for range 7 {
		clk.Advance(window / 8)
		enqueue(t, s, item(fmt.Sprintf("filler-%v", clk.Now()), "s"))
	}
	clk.Advance(window/8 - time.Nanosecond) // x is one window old less 1ns
	if dup := enqueue(t, s, item("x", "s")); !dup[0] {
		t.Fatal("x accepted again 1ns before its window ended")
	}
	clk.Advance(time.Nanosecond)
	if dup := enqueue(t, s, item("x", "s")); dup[0] {
		t.Fatal("x reported as duplicate a full window after it was accepted")
	}
	clk.Advance(window - time.Nanosecond)
	if dup := enqueue(t, s, item("x", "s")); !dup[0] {
		t.Fatal("x's second acceptance forgotten within its window")
	}
}

func TestDedupFilterRebuiltAtOpen(t *testing.T) {
	const window = time.Hour
	clk := newClock()
	opts := Options{Path: t.TempDir(), DedupWindow: window, now: clk.Now}
	s := openStore(t, opts)
	enqueue(t, s, item("old", "s"))
	clk.Advance(window / 2)
	young := newIDs("young-", 1000)
	enqueue(t, s, young...)
	clk.Advance(window/2 - time.Nanosecond)
	enqueue(t, s, item("edge", "s"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	clk.Advance(time.Nanosecond) // old has left the window, edge is brand new
	s = openStore(t, opts)
	if dup := enqueue(t, s, young...); countTrue(dup) != len(young) {
		t.Fatalf("after restart %d of %d ids accepted half a window ago reported as duplicates", countTrue(dup), len(young))
	}
	if dup := enqueue(t, s, item("edge", "s"), item("old", "s")); !slices.Equal(dup, []bool{true, false}) {
		t.Fatalf("after restart dup(edge, old) = %v, want [true false]", dup)
	}
	// The filter was rebuilt, not left answering "maybe": new ids skip the lookup.
	before := s.dedupGets.Load()
	if dup := enqueue(t, s, newIDs("fresh-", 1000)...); slices.Contains(dup, true) {
		t.Fatal("new ids reported as duplicates after restart")
	}
	if gets := s.dedupGets.Load() - before; gets > 20 {
		t.Fatalf("after restart %d of 1000 new ids were looked up, want few", gets)
	}
}

// TestDedupFilterOverfilledUnderTinyBudget: a filter over its budget takes
// ids past its capacity instead of going blind: every duplicate is still
// caught, new ids are still spared some lookups, and the memory stays
// within the budget.
func TestDedupFilterOverfilledUnderTinyBudget(t *testing.T) {
	const window = time.Hour
	clk := newClock()
	// Room for a few hundred ids at the filter's designed rate.
	s := openStore(t, Options{DedupWindow: window, now: clk.Now, DedupMemory: 1 << 10})
	first := newIDs("first-", 2000)
	if dup := enqueue(t, s, first...); slices.Contains(dup, true) {
		t.Fatal("new ids reported as duplicates")
	}
	if st := s.Stats(); st.DedupFilterBlind || st.DedupFilterBytes > 1<<10 {
		t.Fatalf("over budget: blind %v, %d bytes; want overfilled, within 1 KiB", st.DedupFilterBlind, st.DedupFilterBytes)
	}
	clk.Advance(window / 2)
	late := newIDs("late-", 10) // a later generation, with no room of its own
	enqueue(t, s, late...)
	if st := s.Stats(); st.DedupFilterBlind || st.DedupFilterBytes > 1<<10 {
		t.Fatalf("a new generation over budget: blind %v, %d bytes", st.DedupFilterBlind, st.DedupFilterBytes)
	}

	clk.Advance(window/2 - time.Nanosecond)
	if dup := enqueue(t, s, first...); countTrue(dup) != len(first) {
		t.Fatalf("overfilled filter: %d of %d duplicates caught", countTrue(dup), len(first))
	}
	if dup := enqueue(t, s, late...); countTrue(dup) != len(late) {
		t.Fatalf("overfilled filter: %d of %d later duplicates caught", countTrue(dup), len(late))
	}
	// 2010 ids in filters made for a few hundred answer "maybe" to most
	// new ids (96 of these 100), but not to all, as a blind filter does.
	before := s.dedupGets.Load()
	if dup := enqueue(t, s, newIDs("probe-", 100)...); slices.Contains(dup, true) {
		t.Fatal("new ids reported as duplicates")
	}
	if gets := s.dedupGets.Load() - before; gets >= 100 {
		t.Fatalf("overfilled filter: %d of 100 new ids looked up, want fewer than all", gets)
	}

	// A window after the first ids, they are new again; the later ones
	// are still caught.
	clk.Advance(time.Nanosecond)
	if dup := enqueue(t, s, first...); slices.Contains(dup, true) {
		t.Fatal("ids a window old reported as duplicates")
	}
	if dup := enqueue(t, s, late...); countTrue(dup) != len(late) {
		t.Fatalf("%d of %d later duplicates caught", countTrue(dup), len(late))
	}
	if st := s.Stats(); st.DedupFilterBytes > 1<<10 {
		t.Fatalf("%d bytes, over the budget", st.DedupFilterBytes)
	}
}

// TestDedupMatchesModel runs random traffic (new ids, repeats, bursts,
// restarts) against a map of acceptance times, moving a fake clock in steps
// that often land exactly on the window's edge, with a filter that fits, one
// that is overfilled (and blind for a while after each restart, when it is
// rebuilt within its budget), and one that never fits.
func TestDedupMatchesModel(t *testing.T) {
	const window, burst = time.Hour, 1000
	for _, tc := range []struct {
		name   string
		budget int
	}{
		{"default budget", 0},
		{"tiny budget", 1 << 10}, // overfilled, and blind after a restart
		{"no room", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seed := uint64(time.Now().UnixNano())
			rng := rand.New(rand.NewPCG(seed, 1))
			t.Logf("seed %d", seed)
			clk := newClock()
			opts := Options{Path: t.TempDir(), DedupWindow: window, now: clk.Now, DedupMemory: tc.budget}
			s := openStore(t, opts)
			accepted := make(map[string]time.Time)
			var used []string
			nextID := 0
			steps := []time.Duration{0, time.Nanosecond, window / 8, window / 4, window / 2, window - window/8, window}
			for step := range 300 {
				clk.Advance(steps[rng.IntN(len(steps))])
				if step%60 == 59 {
					if err := s.Close(); err != nil {
						t.Fatal(err)
					}
					s = openStore(t, opts)
				}
				if rng.IntN(4) == 0 {
					if _, err := s.expireDedup(); err != nil {
						t.Fatal(err)
					}
				}
				n := 1 + rng.IntN(12)
				if rng.IntN(20) == 0 {
					n = burst // new ids, more than the tiny budget holds
				}
				items := make([]Item, n)
				for i := range items {
					if len(used) > 0 && n < burst && rng.IntN(2) == 0 {
						items[i].ID = used[max(len(used)-400, 0)+rng.IntN(min(len(used), 400))]
					} else {
						items[i].ID = "id-" + strconv.Itoa(nextID)
						nextID++
						used = append(used, items[i].ID)
					}
				}
				now := clk.Now()
				want := make([]bool, n)
				for i, it := range items {
					at, ok := accepted[it.ID]
					want[i] = ok && now.Sub(at) < window
					if !want[i] {
						accepted[it.ID] = now
					}
				}
				if got := enqueue(t, s, items...); !slices.Equal(got, want) {
					t.Fatalf("step %d: dup = %v, want %v", step, got, want)
				}
				if st := s.Stats(); tc.budget > 0 && st.DedupFilterBytes > tc.budget {
					t.Fatalf("step %d: filter holds %d bytes, over its budget of %d", step, st.DedupFilterBytes, tc.budget)
				}
			}
		})
	}
}

// TestConcurrentEnqueueAcrossGenerations has writers race on the same ids
// while the clock moves through several generations within one window:
// every id is stored exactly once.
func TestConcurrentEnqueueAcrossGenerations(t *testing.T) {
	const window = time.Hour
	clk := newClock()
	s := openStore(t, Options{DedupWindow: window, now: clk.Now})
	const writers, ids = 8, 400
	stored := make([]int, ids)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range ids {
				id := (i + w*ids/writers) % ids
				if w == 0 && i%10 == 0 {
					clk.Advance(window / 50) // 40 steps: 0.8 windows
				}
				dup, err := s.Enqueue(context.Background(), []Item{item(strconv.Itoa(id), "s")})
				if err != nil {
					t.Error(err)
					return
				}
				if !dup[0] {
					mu.Lock()
					stored[id]++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	for id, n := range stored {
		if n != 1 {
			t.Fatalf("id %d stored %d times, want 1", id, n)
		}
	}
	if got := s.Stats().Pending["s"]; got != ids {
		t.Fatalf("%d pending, want %d", got, ids)
	}
}

func TestDedupFilterGenerations(t *testing.T) {
	const window = time.Hour
	start := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC).UnixNano()
	f := newDedupFilter(window, DefaultDedupMemory)
	at := start
	for i := range 10 * dedupFilterSlices * 4 { // ten windows, four adds a generation
		f.add(at, digests("id-"+strconv.Itoa(i)))
		at += int64(window / dedupFilterSlices / 4)
	}
	if len(f.gens) > dedupFilterSlices+2 {
		t.Fatalf("%d generations live, want at most %d", len(f.gens), dedupFilterSlices+2)
	}
	last := at - int64(window/dedupFilterSlices/4)
	if bytes, _ := f.usage(last); bytes > (dedupFilterSlices+2)*bitSetBytes(f.minIDs*bitsPerID(0)) {
		t.Fatalf("%d bytes held by %d generations of one small filter each", bytes, len(f.gens))
	}
	// The last ids are remembered; the first are gone and answer "no".
	lastID := "id-" + strconv.Itoa(10*dedupFilterSlices*4-1)
	if !maybe(f, lastID, last) {
		t.Fatal("newest id forgotten")
	}
	if maybe(f, "id-0", last) {
		t.Fatal("id ten windows old still in the filter")
	}
	// A clock that moves back makes the dropped ids young again: "maybe".
	if !maybe(f, "id-0", start) {
		t.Fatal("clock moved back before dropped generations: answered no")
	}
}

func TestDedupFilterGrowsWithinGeneration(t *testing.T) {
	f := newDedupFilter(time.Hour, DefaultDedupMemory)
	ids := make([]string, 3*dedupFilterMinIDs)
	for i := range ids {
		ids[i] = "id-" + strconv.Itoa(i)
	}
	f.add(1, digests(ids...))
	if len(f.gens) != 1 || len(f.gens[0].filters) != 2 {
		t.Fatalf("%d generations, want 1 with 2 filters (%d and %d ids)", len(f.gens), dedupFilterMinIDs, 2*dedupFilterMinIDs)
	}
	for _, id := range ids {
		if !maybe(f, id, 2) {
			t.Fatalf("%s lost", id)
		}
	}
	// The next generation starts with room for as many as the last one took.
	f.add(1+int64(time.Hour/dedupFilterSlices), digests("next"))
	if g := f.gens[len(f.gens)-1]; g.capacity != uint(len(ids)) {
		t.Fatalf("next generation sized for %d ids, want %d", g.capacity, len(ids))
	}
}

// BenchmarkDedupLookup compares the check of a new id against a store of
// 200k dedup records: the filter (with the lookup on its rare "maybe") and
// the Pebble lookup alone.
func BenchmarkDedupLookup(b *testing.B) {
	s := openStore(b, Options{})
	fillDedupRecords(b, s, "stored-", 200_000)
	now := s.now()
	ids := make([]string, 1<<16)
	for i := range ids {
		ids[i] = fmt.Sprintf("6f1c8a52-1b3e-4e07-9d2a-%012d", i) // UUID-shaped, all new
	}
	stored := make([]string, 1<<16)
	for i := range stored {
		stored[i] = "stored-" + strconv.Itoa(i*3)
	}
	b.Run("filter", func(b *testing.B) {
		b.ReportAllocs()
		for i := range b.N {
			if dup, err := s.acceptedWithin(digestOf(ids[i%len(ids)]), now); err != nil || dup {
				b.Fatal(dup, err)
			}
		}
	})
	b.Run("pebble", func(b *testing.B) {
		bucket := s.buckets.of(now.UnixNano())
		b.ReportAllocs()
		for i := range b.N {
			if _, found, err := s.acceptedAt(digestOf(ids[i%len(ids)]), bucket, bucket); err != nil || found {
				b.Fatal(found, err)
			}
		}
	})
	b.Run("filter/stored", func(b *testing.B) {
		b.ReportAllocs()
		for i := range b.N {
			if dup, err := s.acceptedWithin(digestOf(stored[i%len(stored)]), now); err != nil || !dup {
				b.Fatal(dup, err)
			}
		}
	})
}

// TestDedupFilterRebuildRemembersWhatItSkipped: Open rebuilds the filter
// from the acceptances within the window only; if the clock then moves
// back, the skipped ones are young again and must be looked up.
func TestDedupFilterRebuildRemembersWhatItSkipped(t *testing.T) {
	const window = time.Hour
	clk := newClock()
	s := openStore(t, Options{DedupWindow: window, now: clk.Now})
	enqueue(t, s, item("x", "s"))
	clk.Advance(window)
	s.dedup = newDedupFilter(window, DefaultDedupMemory)
	if err := s.rebuildDedupFilter(); err != nil {
		t.Fatal(err)
	}
	if bytes, _ := s.dedup.usage(clk.Now().UnixNano()); bytes != 0 {
		t.Fatalf("rebuilt from an expired acceptance: %d bytes", bytes)
	}
	if maybe(s.dedup, "x", clk.Now().UnixNano()) {
		t.Fatal("expired id answered maybe")
	}
	if !maybe(s.dedup, "x", clk.Now().Add(-time.Minute).UnixNano()) {
		t.Fatal("clock moved back to when x was young: answered no")
	}
}

// TestDedupFilterRebuildOverfills: a window somewhat over the budget is
// rebuilt at Open into an overfilled filter, as the running bridge held it,
// instead of one blind to the ids that did not fit.
func TestDedupFilterRebuildOverfills(t *testing.T) {
	const window, budget = time.Hour, 64 << 10
	// How many ids of one moment a rebuild takes before it stops.
	probe := newDedupFilter(window, budget)
	taken := -1 // the id it stops at is not taken
	probe.rebuild(func(yield func(int64, []byte) bool) {
		for taken = 0; yield(1, []byte("probe-"+strconv.Itoa(taken))); taken++ {
		}
	})
	ids := taken - 500
	clk := newClock()
	opts := Options{Path: t.TempDir(), DedupWindow: window, now: clk.Now, DedupMemory: budget}
	s := openStore(t, opts)
	accepted := newIDs("old-", ids)
	for i := 0; i < ids; i += 1000 {
		enqueue(t, s, accepted[i:min(i+1000, ids)]...)
	}
	must(t, s.Close())

	clk.Advance(time.Minute)
	s = openStore(t, opts)
	var held, room uint
	for _, g := range s.dedup.gens {
		held, room = held+g.ids, room+g.room
	}
	if held != uint(ids) || room != 0 {
		t.Fatalf("rebuilt filter holds %d ids with room for %d more; want all %d, past what the budget sized it for", held, room, ids)
	}
	if st := s.Stats(); st.DedupFilterBlind || st.DedupFilterBytes > budget {
		t.Fatalf("rebuilt: blind %v, %d bytes of a %d budget", st.DedupFilterBlind, st.DedupFilterBytes, budget)
	}
	if dup := enqueue(t, s, accepted...); countTrue(dup) != ids {
		t.Fatalf("after restart %d of %d duplicates caught", countTrue(dup), ids)
	}
	before := s.dedupGets.Load()
	if dup := enqueue(t, s, newIDs("new-", 2000)...); slices.Contains(dup, true) {
		t.Fatal("new ids reported as duplicates")
	}
	if gets := s.dedupGets.Load() - before; gets > 200 {
		t.Fatalf("%d of 2000 new ids looked up; an overfilled filter should rule out most", gets)
	}
	t.Logf("%d of 2000 new ids looked up", s.dedupGets.Load()-before)
}

// TestDedupFilterRebuildKeepsNewest: when the window holds more ids than
// the budget, Open keeps the newest and is blind only until the older ones
// have left the window.
func TestDedupFilterRebuildKeepsNewest(t *testing.T) {
	const window = time.Hour
	clk := newClock()
	opts := Options{Path: t.TempDir(), DedupWindow: window, now: clk.Now, DedupMemory: 1 << 10}
	s := openStore(t, opts)
	old := newIDs("old-", 2000)
	enqueue(t, s, old...)
	clk.Advance(window / 2)
	late := newIDs("late-", 100)
	enqueue(t, s, late...)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	clk.Advance(time.Minute)
	s = openStore(t, opts)
	if !s.Stats().DedupFilterBlind {
		t.Fatal("rebuilt over budget: filter not blind while the ids it left out are within the window")
	}
	if dup := enqueue(t, s, append(old, late...)...); countTrue(dup) != len(old)+len(late) {
		t.Fatalf("after restart %d of %d duplicates caught", countTrue(dup), len(old)+len(late))
	}

	clk.Advance(window/2 - time.Minute) // old has left the window; late has not
	if st := s.Stats(); st.DedupFilterBlind {
		t.Fatal("still blind after the ids left out have left the window")
	}
	if dup := enqueue(t, s, late...); countTrue(dup) != len(late) {
		t.Fatalf("newest ids after restart: %d of %d duplicates caught", countTrue(dup), len(late))
	}
	before := s.dedupGets.Load()
	if dup := enqueue(t, s, newIDs("new-", 100)...); slices.Contains(dup, true) {
		t.Fatal("new ids reported as duplicates")
	}
	if gets := s.dedupGets.Load() - before; gets > 5 {
		t.Fatalf("%d of 100 new ids looked up", gets)
	}
}
