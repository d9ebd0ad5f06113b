package queue

import (
	"iter"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/bits-and-blooms/bloom/v3"
)

// Sizing of the dedup filter.
const (
	// DefaultDedupMemory is the memory the dedup filter may use unless
	// Options.DedupMemory says otherwise. At about 2.25 bytes per id
	// (14.4 bits at 0.1% false positives, kept for up to 1.25 windows)
	// 4 MiB could remember about 1.9 million ids per window; a fresh
	// store's first generation grows by doubling, with more bits per id in
	// each further filter, and filled the budget at about 1.4 million (16
	// ids a second around the clock with the default 24 h window). Beyond
	// that the newest filter takes ids past its capacity: more and more ids
	// are looked up in Pebble (by the Bloom filter formula about 6% at
	// twice its capacity, half at four times, up to all of them), each
	// lookup about 150 µs of CPU under load (BENCHMARKS.md, "a cliff").
	// The memory is taken as ids arrive, so only a busy bridge holds all
	// of it, and it lives in the Go heap, which grows to twice what is
	// live: a full filter adds about 8 MB to a bridge that must stay under
	// 100 MB.
	DefaultDedupMemory = 4 << 20

	// dedupFilterSlices is how many generations one window is cut into.
	// An id is forgotten between 1 and 1+1/slices windows after it was
	// accepted, and a query tests up to slices+1 generations: 4 trades 25%
	// extra memory against about five filters to test.
	dedupFilterSlices = 4

	// dedupFilterFalsePositive is the false-positive rate of a
	// generation's first filter when full. Each further filter of the
	// same generation gets half the rate of the one before, as in a
	// scalable Bloom filter, so a generation stays under twice this rate
	// however much it grows. A query's rate is about the sum over the
	// generations it tests: under 0.5% in steady traffic. Every false
	// positive is a Pebble lookup, which under load cost about 100 µs of
	// CPU (the tables' filter and index blocks are read back): at 1%
	// (which fit 2.8 million ids in the same memory) those lookups were
	// 2.6% of the bridge's CPU at full load.
	dedupFilterFalsePositive = 0.001

	// dedupFilterMinIDs is the capacity of the smallest filter (about
	// 7 KiB): the first one of a store, or one in a quiet generation. A
	// smaller budget gets smaller filters, at most 1/16 of it.
	dedupFilterMinIDs = 4096
)

// dedupFilter answers "was this id accepted within the dedup window?" with
// "no" or "maybe", so that only a "maybe" costs a Pebble lookup. It never
// answers "no" for an id accepted within the window. A "maybe" comes with
// the span of time the id may have been accepted in, so that the lookup
// reads only the dedup-record buckets of that span.
//
// Ids go into time-sliced generations of Bloom filters: a new generation
// starts every window/dedupFilterSlices, and a generation is dropped once
// the newest id in it has left the window. A generation grows like a
// scalable Bloom filter: when its newest filter is full it adds one twice
// as big. It starts with room for as many ids as the previous generation
// took, so in steady traffic each generation is one filter.
//
// Every accepted id is either in a live generation or was accepted at or
// before unknownThrough: the newest acceptance among the generations
// dropped so far. While that time is within the window the filter is
// blind: it answers "maybe" to everything. A generation that has left the
// window moves unknownThrough out of the window too; a clock that moves
// back makes the filter blind, as it should.
//
// When a new filter would exceed the memory budget, the newest filter takes
// ids past its capacity (a new generation's ids go to the one before): it
// answers "maybe" more often as it fills, and the budget is freed as old
// generations leave the window. The filter is blind only when not even the
// smallest filter fits the budget, or after Open rebuilt it from a window
// that held more ids than its budget sizes filters for plus the overfill
// rebuild allows.
type dedupFilter struct {
	window time.Duration
	slice  time.Duration // span of one generation
	budget int           // bytes the filters may use
	minIDs uint          // capacity of the smallest filter

	mu             sync.RWMutex
	gens           []*filterGeneration // oldest first
	bytes          int                 // used by the filters in gens
	unknownThrough int64               // unix nanos; see above
}

// filterGeneration holds the ids accepted during one slice of time.
type filterGeneration struct {
	start    int64                // earliest acceptance time in it
	latest   int64                // newest acceptance time in it
	filters  []*bloom.BloomFilter // the last one takes new ids
	capacity uint                 // ids the last filter was sized for
	room     uint                 // ids the last filter takes before it is full
	ids      uint                 // ids added to the generation
}

func newDedupFilter(window time.Duration, budget int) *dedupFilter {
	return &dedupFilter{
		window:         window,
		slice:          max(window/dedupFilterSlices, 1),
		budget:         budget,
		minIDs:         max(min(dedupFilterMinIDs, uint(budget)*8/bitsPerID(0)/16), 1),
		unknownThrough: minTime,
	}
}

// minTime is an acceptance time before every window.
const minTime = -1 << 63

// within reports whether an id accepted at is still remembered at now, as
// Store.withinWindow decides it.
func (f *dedupFilter) within(now, at int64) bool {
	return time.Unix(0, now).Sub(time.Unix(0, at)) < f.window
}

// mayContain reports whether id may have been accepted within the window
// before now; false means it was not. When it may have been, from and
// through bound when: the span of the generations whose filters hold it, and
// all times up to unknownThrough while that is within the window.
func (f *dedupFilter) mayContain(id idDigest, now int64) (from, through int64, maybe bool) {
	key := id[:]
	from, through = math.MaxInt64, math.MinInt64
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.within(now, f.unknownThrough) {
		from, through, maybe = minTime, f.unknownThrough, true
	}
	for _, g := range f.gens {
		if g.start >= from && g.latest <= through {
			continue // spanned already
		}
		for _, bf := range g.filters {
			if bf.Test(key) {
				from, through, maybe = min(from, g.start), max(through, g.latest), true
				break
			}
		}
	}
	return from, through, maybe
}

// add records ids accepted at at. The caller adds an id before its
// acceptance is committed.
func (f *dedupFilter) add(at int64, ids []idDigest) {
	f.mu.Lock()
	defer f.mu.Unlock()
	g := f.generationFor(at)
	for i := range ids {
		if g = f.insert(g, at, ids[i][:]); g == nil {
			return // the rest were accepted at the same time: unknown too
		}
	}
}

// rebuild fills the empty filter from seq, which yields acceptances newest
// bucket first, as Open reads them from the dedup records (within a bucket,
// in id order). Once the budget is spent it overfills the last filter it
// made, as the running filter does (see insert), up to twice that filter's
// capacity (about 6% false positives by the Bloom filter formula), and
// stops there: the ids not yet read stay unknown (the caller forgets the
// rest of the bucket it stopped in), and the cost of Open stays bounded by
// the budget however many ids the window holds. The id is only read during
// the call.
func (f *dedupFilter) rebuild(seq iter.Seq2[int64, []byte]) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var newestFirst []*filterGeneration
	var g *filterGeneration
	var newerIDs uint // ids of the generation after g
	spent := false    // the budget is: ids go into g's last filter past its capacity
	var over uint     // ids added past that capacity
	for at, id := range seq {
		if !spent && (g == nil || time.Unix(0, g.latest).Sub(time.Unix(0, at)) >= f.slice) {
			if g != nil {
				newerIDs = g.ids
			}
			g = &filterGeneration{start: at, latest: at}
			newestFirst = append(newestFirst, g)
		}
		if g.room == 0 && !spent && !f.grow(g, newerIDs) {
			spent = true
			if len(g.filters) == 0 {
				// A generation without room for a filter of its own: its
				// ids go to the newer one.
				newestFirst = newestFirst[:len(newestFirst)-1]
				if len(newestFirst) == 0 {
					f.unknownThrough = max(f.unknownThrough, at)
					break
				}
				g = newestFirst[len(newestFirst)-1]
			}
		}
		if spent {
			if over >= g.capacity {
				f.unknownThrough = max(f.unknownThrough, at)
				break
			}
			over++
		} else {
			g.room--
		}
		g.start, g.latest = min(g.start, at), max(g.latest, at)
		g.filters[len(g.filters)-1].Add(id)
		g.ids++
	}
	slices.Reverse(newestFirst)
	f.gens = newestFirst
}

// generationFor drops the generations that have left the window at at and
// returns the one that takes ids accepted at at, starting a new one when
// the newest is a slice old.
func (f *dedupFilter) generationFor(at int64) *filterGeneration {
	for len(f.gens) > 0 && !f.within(at, f.gens[0].latest) {
		f.dropOldest()
	}
	if n := len(f.gens); n > 0 {
		g := f.gens[n-1]
		if time.Unix(0, at).Sub(time.Unix(0, g.start)) < f.slice {
			g.start, g.latest = min(g.start, at), max(g.latest, at) // a clock may step back
			return g
		}
	}
	g := &filterGeneration{start: at, latest: at}
	f.gens = append(f.gens, g)
	return g
}

// insert adds id, accepted at at, to g, the newest generation. It returns
// the generation that takes the next id accepted at at, or nil when even a
// lone smallest filter exceeds the budget: id is then only counted in
// unknownThrough.
//
// Over budget, the newest filter takes ids past its capacity rather than a
// generation being forgotten: forgetting one would make the filter answer
// "maybe" to every id until that generation's ids had left the window,
// which under load cost each request a Pebble lookup of about 150 µs. An
// overfilled Bloom filter still never answers "no" for an id it holds; its
// false positives grow with every id (by the formula, a 0.1% filter gives
// about 6% at twice its capacity, 50% at four times), and the budget is freed as the oldest
// generations leave the window.
func (f *dedupFilter) insert(g *filterGeneration, at int64, id []byte) *filterGeneration {
	if g.room == 0 && !f.grow(g, f.previousIDs()) && len(g.filters) == 0 {
		// A new generation without room for a filter of its own: its ids
		// go to the generation before, which then lasts as long as they do.
		n := len(f.gens)
		if n < 2 {
			f.dropOldest() // g: nothing to fill
			return nil
		}
		f.gens[n-1] = nil
		f.gens = f.gens[:n-1]
		g = f.gens[n-2]
		g.latest = max(g.latest, at)
	}
	g.filters[len(g.filters)-1].Add(id)
	if g.room > 0 {
		g.room--
	}
	g.ids++
	return g
}

// dropOldest drops the oldest generation; its ids become unknown.
func (f *dedupFilter) dropOldest() {
	g := f.gens[0]
	f.unknownThrough = max(f.unknownThrough, g.latest)
	for _, bf := range g.filters {
		f.bytes -= bitSetBytes(bf.Cap())
	}
	f.gens[0] = nil // let its filters go
	f.gens = f.gens[1:]
}

// previousIDs is how many ids the generation before the newest took.
func (f *dedupFilter) previousIDs() uint {
	if n := len(f.gens); n > 1 {
		return f.gens[n-2].ids
	}
	return 0
}

// grow gives g a new filter: with room for hint ids (what a neighbouring
// generation took) when g has none, else twice g's newest, and never past
// the budget. It reports false when the smallest filter does not fit.
func (f *dedupFilter) grow(g *filterGeneration, hint uint) bool {
	stage := len(g.filters)
	want := max(f.minIDs, hint)
	if stage > 0 {
		want = max(f.minIDs, 2*g.capacity)
	}
	free := max(f.budget-f.bytes, 0)
	ids := min(want, uint(free)*8/bitsPerID(stage))
	if ids < f.minIDs {
		return false
	}
	m, k := bloom.EstimateParameters(ids, falsePositiveRate(stage))
	if bitSetBytes(m) > free {
		return false
	}
	g.filters = append(g.filters, bloom.New(m, k))
	g.capacity, g.room = ids, ids
	f.bytes += bitSetBytes(m)
	return true
}

// forgetThrough records that ids accepted at or before at are not in the
// filter (Open rebuilds it only from the acceptances within the window).
func (f *dedupFilter) forgetThrough(at int64) {
	f.mu.Lock()
	f.unknownThrough = max(f.unknownThrough, at)
	f.mu.Unlock()
}

// usage returns the bytes the filters hold and whether the filter is blind
// at now.
func (f *dedupFilter) usage(now int64) (bytes int, blind bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.bytes, f.within(now, f.unknownThrough)
}

// falsePositiveRate is the rate of a generation's filter number stage.
func falsePositiveRate(stage int) float64 {
	return dedupFilterFalsePositive / float64(uint64(1)<<min(stage, 30))
}

// bitsPerID bounds the bits a filter of the given stage needs per id of
// capacity (10 for the first, then about 1.5 more for each stage).
func bitsPerID(stage int) uint {
	const n = 1 << 16
	m, _ := bloom.EstimateParameters(n, falsePositiveRate(stage))
	return (m + n - 1) / n
}

// bitSetBytes is the memory of a filter of m bits.
func bitSetBytes(m uint) int {
	return int((m + 63) / 64 * 8)
}
