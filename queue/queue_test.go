package queue

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cloudevent "github.com/cloudevents/sdk-go/v2/event"
	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/vfs"

	"github.com/hookbridge/hookbridge/eventcodec"
)

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// clock is a settable time source for dedup tests.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// openStore opens a store in dir and closes it when the test ends.
func openStore(t testing.TB, opts Options) *Store {
	t.Helper()
	if opts.Path == "" {
		opts.Path = t.TempDir()
	}
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	s, err := Open(opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func event(id string) []byte { return []byte(`{"specversion":"1.0","id":"` + id + `"}`) }

func item(id string, sinks ...string) Item { return Item{ID: id, Event: event(id), Sinks: sinks} }

func enqueue(t testing.TB, s *Store, items ...Item) []bool {
	t.Helper()
	dup, err := s.Enqueue(context.Background(), items)
	if err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	return dup
}

// next returns what Next hands out within a short wait (nil if nothing).
func next(t testing.TB, s *Store, sink string, max int) []Delivery {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	ds, err := s.Next(ctx, sink, max, 0)
	if errors.Is(err, context.DeadlineExceeded) {
		return nil
	}
	if err != nil {
		t.Fatalf("Next(%s): %v", sink, err)
	}
	return ds
}

// drain hands out and acknowledges everything pending for sink.
func drain(t testing.TB, s *Store, sink string) []Delivery {
	t.Helper()
	var all []Delivery
	for {
		ds := next(t, s, sink, 100)
		if len(ds) == 0 {
			return all
		}
		for _, d := range ds {
			if err := s.Ack(sink, d.Seq); err != nil {
				t.Fatalf("Ack(%s, %d): %v", sink, d.Seq, err)
			}
		}
		all = append(all, ds...)
	}
}

func countKeys(t testing.TB, s *Store, prefix string) int {
	t.Helper()
	n := 0
	if err := s.scan([]byte(prefix), func(_, _ []byte) error { n++; return nil }); err != nil {
		t.Fatalf("scan %s: %v", prefix, err)
	}
	return n
}

// assertEmpty checks that nothing is left of delivered events.
func assertEmpty(t testing.TB, s *Store) {
	t.Helper()
	for _, p := range []string{prefixEvent, prefixRefs, prefixPending} {
		if n := countKeys(t, s, p); n != 0 {
			t.Errorf("%d %s keys left, want 0", n, p)
		}
	}
	if st := s.Stats(); st.Events != 0 {
		t.Errorf("Stats.Events = %d, want 0", st.Events)
	}
}

func ids(ds []Delivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = string(d.Event)
	}
	return out
}

func seqs(ds []Delivery) []uint64 {
	out := make([]uint64, len(ds))
	for i, d := range ds {
		out[i] = d.Seq
	}
	return out
}

func TestEnqueueNextAck(t *testing.T) {
	s := openStore(t, Options{})
	dup := enqueue(t, s, item("a", "kafka", "slack"), item("b", "kafka"), Item{ID: "c"})
	if !slices.Equal(dup, []bool{false, false, false}) {
		t.Fatalf("dup = %v", dup)
	}
	st := s.Stats()
	if st.Pending["kafka"] != 2 || st.Pending["slack"] != 1 || st.Events != 2 {
		t.Fatalf("Stats = %+v, want kafka 2, slack 1, 2 events", st)
	}

	ds := next(t, s, "kafka", 10)
	if got, want := ids(ds), []string{string(event("a")), string(event("b"))}; !slices.Equal(got, want) {
		t.Fatalf("kafka got %q, want %q", got, want)
	}
	if ds[0].Seq >= ds[1].Seq || ds[0].Sink != "kafka" || ds[0].Attempts != 0 {
		t.Fatalf("deliveries %+v", ds)
	}
	if again := next(t, s, "kafka", 10); again != nil {
		t.Fatalf("in-flight deliveries handed out again: %v", seqs(again))
	}
	for _, d := range ds {
		if err := s.Ack("kafka", d.Seq); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Ack("kafka", ds[0].Seq); !errors.Is(err, ErrNotInFlight) {
		t.Fatalf("second Ack: %v, want ErrNotInFlight", err)
	}
	if st := s.Stats(); st.Pending["kafka"] != 0 || st.Events != 1 {
		t.Fatalf("after kafka acks Stats = %+v, want kafka 0, 1 event (a, still for slack)", st)
	}
	if got := drain(t, s, "slack"); len(got) != 1 || string(got[0].Event) != string(event("a")) {
		t.Fatalf("slack got %q", ids(got))
	}
	assertEmpty(t, s)
	if n := countKeys(t, s, prefixAccepted); n != 3 {
		t.Fatalf("%d dedup records, want 3", n)
	}
}

func TestEnqueueIsSyncedAndGroupCommitted(t *testing.T) {
	fs := newSyncCountingFS()
	s := openStore(t, Options{fs: fs})
	enqueue(t, s, item("first", "s")) // also persists the sequence lease
	before := fs.walSyncs.Load()
	enqueue(t, s, item("one", "s"))
	if got := fs.walSyncs.Load() - before; got != 1 {
		t.Fatalf("one Enqueue synced the WAL %d times, want 1", got)
	}

	const writers, each = 64, 20
	before = fs.walSyncs.Load()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if _, err := s.Enqueue(context.Background(), []Item{item(fmt.Sprintf("%d-%d", w, i), "s")}); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	syncs := fs.walSyncs.Load() - before
	if syncs == 0 || syncs > writers*each/4 {
		t.Fatalf("%d concurrent Enqueues used %d WAL syncs; want them shared (at most %d)", writers*each, syncs, writers*each/4)
	}
	t.Logf("%d concurrent Enqueues, %d WAL syncs (%.1f events per sync)", writers*each, syncs, float64(writers*each)/float64(syncs))

	// Settling does not sync each ack: the syncer syncs at most once per
	// settleSyncDelay. (Pebble also syncs a WAL it closes when its memtable
	// fills, which 1,282 acks may happen to reach.)
	before = fs.walSyncs.Load()
	start := time.Now()
	acked := len(drain(t, s, "s"))
	time.Sleep(3 * settleSyncDelay)
	most := int64(time.Since(start)/settleSyncDelay) + 2
	if got := fs.walSyncs.Load() - before; got < 1 || got > most {
		t.Fatalf("%d acks synced the WAL %d times, want between 1 and %d (one per %v at most)", acked, got, most, settleSyncDelay)
	}
}

func TestEnqueueRejectsBadItems(t *testing.T) {
	s := openStore(t, Options{})
	cases := []struct {
		name string
		item Item
	}{
		{"no id", Item{Event: event("x"), Sinks: []string{"a"}}},
		{"no event", Item{ID: "x", Sinks: []string{"a"}}},
		{"empty sink", Item{ID: "x", Event: event("x"), Sinks: []string{""}}},
		{"NUL in sink", Item{ID: "x", Event: event("x"), Sinks: []string{"a\x00b"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := s.Enqueue(context.Background(), []Item{tc.item}); err == nil {
				t.Fatal("Enqueue accepted a bad item")
			}
		})
	}
	if n := countKeys(t, s, prefixAccepted); n != 0 {
		t.Fatalf("%d dedup records written for rejected items", n)
	}
}

func TestDedup(t *testing.T) {
	const window = time.Hour
	cases := []struct {
		name    string
		first   []Item
		advance time.Duration
		second  []Item
		wantDup []bool
		pending int // for sink "s" after both
	}{
		{"repeat within window", []Item{item("x", "s")}, window - time.Nanosecond, []Item{item("x", "s")}, []bool{true}, 1},
		{"repeat after window", []Item{item("x", "s")}, window, []Item{item("x", "s")}, []bool{false}, 2},
		{"repeat in one call", nil, 0, []Item{item("x", "s"), item("y", "s"), item("x", "s")}, []bool{false, false, true}, 2},
		{"first had no sinks", []Item{{ID: "x"}}, time.Minute, []Item{item("x", "s")}, []bool{true}, 0},
		{"other ids unaffected", []Item{item("x", "s")}, 0, []Item{item("y", "s"), item("x", "s")}, []bool{false, true}, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clk := newClock()
			s := openStore(t, Options{DedupWindow: window, now: clk.Now})
			if tc.first != nil {
				if dup := enqueue(t, s, tc.first...); slices.Contains(dup, true) {
					t.Fatalf("first enqueue dup = %v", dup)
				}
			}
			clk.Advance(tc.advance)
			if dup := enqueue(t, s, tc.second...); !slices.Equal(dup, tc.wantDup) {
				t.Fatalf("dup = %v, want %v", dup, tc.wantDup)
			}
			if got := s.Stats().Pending["s"]; got != tc.pending {
				t.Fatalf("pending = %d, want %d", got, tc.pending)
			}
		})
	}
}

// TestDedupJanitor: a bucket of dedup records goes once the last
// acceptance it can hold has left the window, and not before.
func TestDedupJanitor(t *testing.T) {
	const window = time.Hour
	clk := newClock()
	s := openStore(t, Options{DedupWindow: window, now: clk.Now})
	width := time.Duration(s.buckets.width)
	// Start on a bucket boundary, so the test knows which bucket is whose.
	clk.Advance(time.Duration(s.buckets.last(s.buckets.of(clk.Now().UnixNano()))-clk.Now().UnixNano()) + 1)
	enqueue(t, s, item("old-1", "s"), item("old-2", "s"), Item{ID: "old-3"})
	clk.Advance(width)
	enqueue(t, s, item("young", "s"))

	clk.Advance(window - width) // old-* are exactly one window old: expired
	// old-1 comes back after expiring: accepted again, with a new record.
	if dup := enqueue(t, s, item("old-1", "s")); dup[0] {
		t.Fatal("expired id reported as duplicate")
	}
	if _, err := s.expireDedup(); err != nil {
		t.Fatal(err)
	}
	if got := countKeys(t, s, prefixAccepted); got != 5 {
		t.Fatalf("%d dedup records, want 5: the first bucket could hold acceptances still in the window", got)
	}
	clk.Advance(width - time.Nanosecond) // the first bucket's last instant is a window old
	if removed, err := s.expireDedup(); err != nil || !removed {
		t.Fatalf("janitor removed %v (%v), want the first bucket", removed, err)
	}
	// Left: young, and the new acceptance of old-1.
	if got := countKeys(t, s, prefixAccepted); got != 2 {
		t.Fatalf("%d dedup records, want 2", got)
	}
	dup := enqueue(t, s, item("old-1", "s"), item("old-2", "s"), item("young", "s"))
	if !slices.Equal(dup, []bool{true, false, true}) {
		t.Fatalf("dup = %v, want [true false true]", dup)
	}
	if removed, err := s.expireDedup(); err != nil || removed {
		t.Fatalf("second janitor run removed %v (%v), want nothing", removed, err)
	}

	clk.Advance(width - time.Nanosecond) // young's bucket: its last instant is a nanosecond short of a window old
	if removed, err := s.expireDedup(); err != nil || removed {
		t.Fatalf("janitor removed %v (%v) a bucket still in the window", removed, err)
	}
	clk.Advance(time.Nanosecond)
	if removed, err := s.expireDedup(); err != nil || !removed {
		t.Fatalf("janitor removed %v (%v), want young's bucket", removed, err)
	}
	if got := countKeys(t, s, prefixAccepted); got != 2 { // old-1 and old-2, accepted again
		t.Fatalf("%d dedup records, want 2", got)
	}
}

// TestDedupAfterClockStepsBack: acceptances recorded while the clock ran
// ahead are still found once it steps back, many buckets earlier, and a
// bucket written below what the janitor cleared is cleared again.
func TestDedupAfterClockStepsBack(t *testing.T) {
	const window = time.Hour
	clk := newClock()
	s := openStore(t, Options{DedupWindow: window, now: clk.Now})
	start := clk.Now()

	clk.Advance(30 * window) // 120 buckets ahead
	enqueue(t, s, item("ahead", "s"))
	if removed, err := s.expireDedup(); err != nil || !removed {
		t.Fatalf("janitor: %v (%v)", removed, err)
	}
	clk.Set(start)
	if dup := enqueue(t, s, item("ahead", "s"), item("now", "s")); !slices.Equal(dup, []bool{true, false}) {
		t.Fatalf("dup = %v, want [true false]: an acceptance 30 windows ahead is younger than the window", dup)
	}
	// Both are now in one generation of the filter, whose span covers 120
	// buckets: the lookups scan for the buckets that exist.
	if dup := enqueue(t, s, item("now", "s"), item("ahead", "s"), item("new", "s")); !slices.Equal(dup, []bool{true, true, false}) {
		t.Fatalf("dup = %v, want [true true false]", dup)
	}
	// "now" went into a bucket the janitor had cleared: it is cleared
	// again once that bucket leaves the window.
	clk.Advance(window + time.Duration(s.buckets.width))
	if removed, err := s.expireDedup(); err != nil || !removed {
		t.Fatalf("janitor after the clock stepped back: %v (%v)", removed, err)
	}
	if got := countKeys(t, s, prefixAccepted); got != 1 {
		t.Fatalf("%d dedup records, want 1 (ahead)", got)
	}
}

// TestOpenUpgradesFormat1 opens a store written by format 1, which kept
// d/<id> records and a t/<time><id> index: the ids within the window are
// still duplicates, the expired ones are not, and the format-1 keys are gone.
func TestOpenUpgradesFormat1(t *testing.T) {
	const window = time.Hour
	clk := newClock()
	dir := t.TempDir()
	db, err := pebble.Open(dir, &pebble.Options{FS: vfs.Default})
	if err != nil {
		t.Fatal(err)
	}
	now := clk.Now().UnixNano()
	for id, at := range map[string]int64{
		"recent":  now - int64(time.Minute),
		"old":     now - int64(window/2),
		"expired": now - int64(window),
	} {
		atValue := binary.BigEndian.AppendUint64(nil, uint64(at))
		must(t, db.Set(append([]byte("d/"), id...), atValue, nil))
		must(t, db.Set(append(append([]byte("t/"), atValue...), id...), nil, nil))
	}
	must(t, db.Set([]byte(keyFormat), binary.BigEndian.AppendUint64(nil, 1), nil))
	must(t, db.Close())

	s := openStore(t, Options{Path: dir, DedupWindow: window, now: clk.Now})
	if dup := enqueue(t, s, item("recent", "s"), item("old", "s"), item("expired", "s")); !slices.Equal(dup, []bool{true, true, false}) {
		t.Fatalf("after the upgrade dup = %v, want [true true false]", dup)
	}
	for _, prefix := range []string{legacyPrefixDedup, legacyPrefixExpiry} {
		if n := countKeys(t, s, prefix); n != 0 {
			t.Fatalf("%d %s keys left after the upgrade", n, prefix)
		}
	}
	if format, _, err := s.getUint64([]byte(keyFormat)); err != nil || format != storeFormat {
		t.Fatalf("format %d (%v) after the upgrade, want %d", format, err, storeFormat)
	}
}

func TestConcurrentDuplicateIDs(t *testing.T) {
	s := openStore(t, Options{})
	const writers, idCount = 32, 40
	var stored [idCount]atomic.Int32
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each writer sends every id, in its own order and in batches,
			// so writers hold claims the others are waiting for.
			order := rand.Perm(idCount)
			for len(order) > 0 {
				n := min(len(order), 1+w%5)
				var items []Item
				for _, i := range order[:n] {
					items = append(items, item(fmt.Sprintf("id-%d", i), "s"))
				}
				dup, err := s.Enqueue(context.Background(), items)
				if err != nil {
					t.Error(err)
					return
				}
				for k, i := range order[:n] {
					if !dup[k] {
						stored[i].Add(1)
					}
				}
				order = order[n:]
			}
		}()
	}
	wg.Wait()
	for i := range stored {
		if n := stored[i].Load(); n != 1 {
			t.Errorf("id-%d stored %d times, want 1", i, n)
		}
	}
	if got := len(drain(t, s, "s")); got != idCount {
		t.Fatalf("%d pending, want %d", got, idCount)
	}
}

func TestDuplicateWaitsForFirstCommit(t *testing.T) {
	cases := []struct {
		name       string
		firstErr   error
		wantSecond bool // dup reported to the second caller
	}{
		{"first commits", nil, true},
		{"first fails", errors.New("disk on fire"), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := openStore(t, Options{})
			entered := make(chan struct{})
			gate := make(chan error)
			var calls atomic.Int32
			s.commitHook = func() error {
				if calls.Add(1) == 1 {
					close(entered)
					return <-gate
				}
				return nil
			}
			type result struct {
				dup []bool
				err error
			}
			first, second := make(chan result, 1), make(chan result, 1)
			go func() {
				dup, err := s.Enqueue(context.Background(), []Item{item("x", "s")})
				first <- result{dup, err}
			}()
			<-entered
			go func() {
				dup, err := s.Enqueue(context.Background(), []Item{item("x", "s")})
				second <- result{dup, err}
			}()
			select {
			case r := <-second:
				t.Fatalf("second Enqueue returned %v, %v before the first committed", r.dup, r.err)
			case <-time.After(100 * time.Millisecond):
			}
			gate <- tc.firstErr
			r1, r2 := <-first, <-second
			if (r1.err != nil) != (tc.firstErr != nil) {
				t.Fatalf("first: %v, want error %v", r1.err, tc.firstErr)
			}
			if r2.err != nil {
				t.Fatalf("second: %v", r2.err)
			}
			if r2.dup[0] != tc.wantSecond {
				t.Fatalf("second dup = %v, want %v", r2.dup[0], tc.wantSecond)
			}
			if got := len(drain(t, s, "s")); got != 1 {
				t.Fatalf("%d stored, want exactly 1", got)
			}
		})
	}
}

func TestRestartRecovery(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, Options{Path: dir})
	for i := range 10 {
		enqueue(t, s, item(fmt.Sprintf("e%d", i), "a", "b"))
	}
	handed := next(t, s, "a", 4)
	if len(handed) != 4 {
		t.Fatalf("got %d, want 4", len(handed))
	}
	for _, d := range handed[:2] {
		if err := s.Ack("a", d.Seq); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Attempted("a", handed[2].Seq, 3, "connection refused"); err != nil {
		t.Fatal(err)
	}
	if got := len(drain(t, s, "b")); got != 10 {
		t.Fatalf("b delivered %d, want 10", got)
	}
	lastSeq := s.seqs.current() - 1
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openStore(t, Options{Path: dir})
	st := s.Stats()
	if st.Pending["a"] != 8 || st.Pending["b"] != 0 || st.Events != 8 {
		t.Fatalf("after restart Stats = %+v, want a 8, b 0, 8 events", st)
	}
	again := next(t, s, "a", 100)
	if len(again) != 8 || again[0].Seq != handed[2].Seq || !slices.IsSorted(seqs(again)) {
		t.Fatalf("after restart a got seqs %v, want 8 from %d ascending", seqs(again), handed[2].Seq)
	}
	if again[0].Attempts != 3 || again[1].Attempts != 0 {
		t.Fatalf("attempts %d, %d; want 3, 0", again[0].Attempts, again[1].Attempts)
	}
	if dup := enqueue(t, s, item("e0", "a"), item("new", "a")); !slices.Equal(dup, []bool{true, false}) {
		t.Fatalf("dup after restart = %v", dup)
	}
	fresh := next(t, s, "a", 10)
	if len(fresh) != 1 || fresh[0].Seq <= lastSeq {
		t.Fatalf("new event seq %v, want one above %d", seqs(fresh), lastSeq)
	}
	for _, d := range append(again, fresh...) {
		if err := s.Ack("a", d.Seq); err != nil {
			t.Fatal(err)
		}
	}
	assertEmpty(t, s)
}

func TestAbandonedDeliveriesAfterRestartWithoutClose(t *testing.T) {
	// Deliveries in flight when the process stops are handed out again; the
	// seq lease keeps new seqs above everything used before.
	dir := t.TempDir()
	s := openStore(t, Options{Path: dir})
	enqueue(t, s, item("a", "s"), item("b", "s"))
	first := next(t, s, "s", 10)
	if err := s.Ack("s", first[1].Seq); err != nil {
		t.Fatal(err)
	}
	// Stop as a crash would: no clean shutdown, so m/seq still holds the
	// lease written by the first Enqueue.
	s.closeOnce.Do(func() {
		close(s.closing)
		<-s.janitorDone
		s.closeMu.Lock()
		defer s.closeMu.Unlock()
		s.closed = true
		if err := s.db.Close(); err != nil {
			t.Fatal(err)
		}
	})

	s = openStore(t, Options{Path: dir})
	enqueue(t, s, item("c", "s"))
	got := drain(t, s, "s")
	if len(got) != 2 || got[0].Seq != first[0].Seq || got[1].Seq <= first[1].Seq {
		t.Fatalf("after crash got seqs %v, want %d then one above %d", seqs(got), first[0].Seq, first[1].Seq)
	}
	assertEmpty(t, s)
}

// A forward's reason and the destination's answer are in the record the
// dead-letter sink reads after a restart.
func TestForwardKeepsTheAnswerAcrossARestart(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, Options{Path: dir})
	enqueue(t, s, item("lead", "crm"))
	crm := next(t, s, "crm", 1)[0]
	why := Failure{Reason: "crm: rejected: 422", Status: 422, Answer: []byte(`{"error":"email is invalid"}`)}
	must(t, s.Forward("crm", crm.Seq, "dlq", why))
	must(t, s.Close())

	s = openStore(t, Options{Path: dir})
	dl := next(t, s, "dlq", 10)
	if len(dl) != 1 || dl[0].From != "crm" || !reflect.DeepEqual(dl[0].Failure(), why) {
		t.Fatalf("after a restart the dead-letter sink got %+v, want from crm with %+v", dl, why)
	}
}

func TestForwardBuryRejectReplay(t *testing.T) {
	clk := newClock()
	s := openStore(t, Options{now: clk.Now})
	enqueue(t, s, item("lead", "crm", "archive"))
	crm := next(t, s, "crm", 1)[0]
	if err := s.Attempted("crm", crm.Seq, 8, "HTTP 503"); err != nil {
		t.Fatal(err)
	}
	if err := s.Forward("crm", crm.Seq, "crm", Failure{Reason: "x"}); err == nil {
		t.Fatal("Forward to the same sink accepted")
	}
	if err := s.Forward("crm", crm.Seq, "dlq", Failure{Reason: "8 attempts: HTTP 503", Status: 503, Answer: []byte("busy")}); err != nil {
		t.Fatal(err)
	}
	if err := s.Ack("crm", crm.Seq); !errors.Is(err, ErrNotInFlight) {
		t.Fatalf("Ack after Forward: %v, want ErrNotInFlight", err)
	}
	dl := next(t, s, "dlq", 10)
	if len(dl) != 1 || dl[0].From != "crm" || dl[0].Reason != "8 attempts: HTTP 503" ||
		dl[0].Status != 503 || string(dl[0].Answer) != "busy" || dl[0].Attempts != 0 || !bytes.Equal(dl[0].Event, event("lead")) || dl[0].Seq <= crm.Seq {
		t.Fatalf("dead-letter sink got %+v", dl)
	}
	if st := s.Stats(); st.Pending["crm"] != 0 || st.Pending["dlq"] != 1 || st.Events != 1 {
		t.Fatalf("after forward Stats = %+v", st)
	}

	clk.Advance(time.Second)
	if err := s.Bury("dlq", dl[0].Seq, 2, "dlq unreachable"); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Second)
	if err := s.Reject("crisp", []byte("not json"), "invalid JSON"); err != nil {
		t.Fatal(err)
	}
	dead, err := s.DeadLetters(0)
	if err != nil {
		t.Fatal(err)
	}
	if len(dead) != 2 {
		t.Fatalf("%d dead letters, want 2", len(dead))
	}
	rejected, buried := dead[0], dead[1] // newest first
	if rejected.Source != "crisp" || string(rejected.Raw) != "not json" || rejected.Event != nil || rejected.Reason != "invalid JSON" {
		t.Fatalf("rejected = %+v", rejected)
	}
	if buried.Sink != "dlq" || buried.From != "crm" || buried.Attempts != 2 ||
		!buried.At.Equal(clk.Now().Add(-time.Second)) || buried.Reason != "dlq unreachable (dead-lettered by crm: 8 attempts: HTTP 503)" {
		t.Fatalf("buried = %+v", buried)
	}
	// Kept as the dead-letter sink was sent it: with the first sink and
	// its reason, so that a replay to dlq sends what it expects.
	want := map[string]any{"deadlettersink": "crm", "deadletterreason": "8 attempts: HTTP 503",
		"knativeerrordest": "crm", "knativeerrorcode": "503", "knativeerrordata": "YnVzeQ=="}
	if ev := storedEvent(t, buried.Event); ev.ID() != "lead" || !reflect.DeepEqual(ev.Extensions(), want) {
		t.Fatalf("buried event %s with %v, want %v", ev.ID(), ev.Extensions(), want)
	}
	if one, _ := s.DeadLetters(1); len(one) != 1 || one[0].Key != rejected.Key {
		t.Fatalf("DeadLetters(1) = %+v", one)
	}
	if st := s.Stats(); st.DeadLetters != 2 || st.Pending["dlq"] != 0 || st.Events != 1 {
		t.Fatalf("after bury Stats = %+v", st)
	}

	if err := s.Replay(rejected.Key, "crm"); err == nil {
		t.Fatal("replaying a rejected request body succeeded")
	}
	if err := s.Replay("00", "crm"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Replay of a bad key: %v, want ErrNotFound", err)
	}
	if err := s.Replay(buried.Key, "crm"); err != nil {
		t.Fatal(err)
	}
	if err := s.Replay(buried.Key, "crm"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second Replay: %v, want ErrNotFound", err)
	}
	// Replayed to the sink it came from, not the dead-letter sink: an
	// ordinary event again.
	replayed := drain(t, s, "crm")
	if len(replayed) != 1 || replayed[0].Attempts != 0 || replayed[0].From != "" {
		t.Fatalf("replayed = %+v", replayed)
	}
	if ev := storedEvent(t, replayed[0].Event); ev.ID() != "lead" || len(ev.Extensions()) != 0 {
		t.Fatalf("replayed event %s with %v", ev.ID(), ev.Extensions())
	}
	drain(t, s, "archive")
	assertEmpty(t, s)
	if st := s.Stats(); st.DeadLetters != 1 {
		t.Fatalf("dead letters = %d, want 1", st.DeadLetters)
	}
}

func TestSharedBodyReferenceCounts(t *testing.T) {
	s := openStore(t, Options{})
	enqueue(t, s, item("x", "a", "b", "c"), item("y", "a", "b"))
	if n := countKeys(t, s, prefixRefs); n != 2 {
		t.Fatalf("%d reference counts, want 2", n)
	}
	// The same body reaches dlq twice, from a and from b.
	for _, sink := range []string{"a", "b"} {
		ds := next(t, s, sink, 10)
		if err := s.Forward(sink, ds[0].Seq, "dlq", Failure{Reason: "gave up"}); err != nil {
			t.Fatal(err)
		}
		if err := s.AckAll(sink, ds[1].Seq); err != nil {
			t.Fatal(err)
		}
	}
	if st := s.Stats(); st.Events != 1 || st.Pending["dlq"] != 2 || st.Pending["c"] != 1 {
		t.Fatalf("Stats = %+v, want 1 event (x), dlq 2, c 1", st)
	}
	dl := next(t, s, "dlq", 10)
	if len(dl) != 2 || !bytes.Equal(dl[0].Event, event("x")) || !bytes.Equal(dl[1].Event, event("x")) || dl[0].From != "a" || dl[1].From != "b" {
		t.Fatalf("dlq got %+v", dl)
	}
	if err := s.AckAll("dlq", dl[0].Seq, dl[1].Seq, 12345); !errors.Is(err, ErrNotInFlight) {
		t.Fatalf("AckAll with an unknown seq: %v, want ErrNotInFlight", err)
	}
	if err := s.AckAll("dlq", dl[0].Seq, dl[1].Seq); err != nil {
		t.Fatalf("AckAll after a refused AckAll: %v (the refused one must ack nothing)", err)
	}
	if st := s.Stats(); st.Events != 1 {
		t.Fatalf("x deleted while c still has it: %+v", st)
	}
	if n := countKeys(t, s, prefixRefs); n != 0 {
		t.Fatalf("%d reference counts left for a body with one reference", n)
	}
	drain(t, s, "c")
	assertEmpty(t, s)
}

func TestBacklogIsNotLoaded(t *testing.T) {
	// A sink with a large backlog: memory holds only what was handed out.
	dir := t.TempDir()
	s := openStore(t, Options{Path: dir})
	const backlog = 5000
	items := make([]Item, 0, 500)
	for i := 0; i < backlog; {
		items = items[:0]
		for ; len(items) < cap(items); i++ {
			items = append(items, item(fmt.Sprint(i), "down"))
		}
		enqueue(t, s, items...)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, Options{Path: dir})
	ds := next(t, s, "down", 10)
	st := s.sink("down")
	st.mu.Lock()
	held := len(st.inFlight) + len(st.released)
	st.mu.Unlock()
	if len(ds) != 10 || held != 10 {
		t.Fatalf("handed out %d, tracking %d; want 10 and 10", len(ds), held)
	}
	if stats := s.Stats(); stats.Pending["down"] != backlog || stats.Events != backlog || stats.OldestPending.IsZero() {
		t.Fatalf("Stats = pending %d, events %d, oldest %v; want %d, %d, set",
			stats.Pending["down"], stats.Events, stats.OldestPending, backlog, backlog)
	}
}

func TestEnqueueWaitEndsWithContext(t *testing.T) {
	s := openStore(t, Options{})
	entered, gate := make(chan struct{}), make(chan error)
	var calls atomic.Int32
	s.commitHook = func() error {
		if calls.Add(1) == 1 {
			close(entered)
			return <-gate
		}
		return nil
	}
	done := make(chan error, 1)
	go func() { _, err := s.Enqueue(context.Background(), []Item{item("x", "s")}); done <- err }()
	<-entered
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if _, err := s.Enqueue(ctx, []Item{item("x", "s")}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("waiting Enqueue: %v, want DeadlineExceeded", err)
	}
	gate <- nil
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestReleaseHandsOutAgainFirst(t *testing.T) {
	s := openStore(t, Options{})
	for i := range 6 {
		enqueue(t, s, item(fmt.Sprint(i), "s"))
	}
	first := next(t, s, "s", 4)
	for _, i := range []int{3, 1} {
		if err := s.Release("s", first[i].Seq); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Release("s", first[1].Seq); !errors.Is(err, ErrNotInFlight) {
		t.Fatalf("second Release: %v", err)
	}
	got := next(t, s, "s", 3)
	want := []uint64{first[1].Seq, first[3].Seq, first[3].Seq + 1}
	if !slices.Equal(seqs(got), want) {
		t.Fatalf("after release got %v, want %v", seqs(got), want)
	}
	if st := s.Stats(); st.Pending["s"] != 6 {
		t.Fatalf("pending %d, want 6", st.Pending["s"])
	}
}

func TestNextWakes(t *testing.T) {
	cases := []struct {
		name  string
		setup func(t *testing.T, s *Store) func() // returns the action that must wake Next
	}{
		{"enqueue", func(t *testing.T, s *Store) func() {
			return func() { enqueue(t, s, item("x", "s")) }
		}},
		{"release", func(t *testing.T, s *Store) func() {
			enqueue(t, s, item("x", "s"))
			d := next(t, s, "s", 1)[0]
			return func() {
				if err := s.Release("s", d.Seq); err != nil {
					t.Error(err)
				}
			}
		}},
		{"forward", func(t *testing.T, s *Store) func() {
			enqueue(t, s, item("x", "other"))
			d := next(t, s, "other", 1)[0]
			return func() {
				if err := s.Forward("other", d.Seq, "s", Failure{Reason: "gave up"}); err != nil {
					t.Error(err)
				}
			}
		}},
		{"replay", func(t *testing.T, s *Store) func() {
			enqueue(t, s, item("x", "other"))
			d := next(t, s, "other", 1)[0]
			if err := s.Bury("other", d.Seq, 1, "gave up"); err != nil {
				t.Fatal(err)
			}
			dead, err := s.DeadLetters(1)
			if err != nil {
				t.Fatal(err)
			}
			return func() {
				if err := s.Replay(dead[0].Key, "s"); err != nil {
					t.Error(err)
				}
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := openStore(t, Options{})
			act := tc.setup(t, s)
			got := make(chan []Delivery, 1)
			go func() {
				ds, err := s.Next(context.Background(), "s", 10, 0)
				if err != nil {
					t.Error(err)
				}
				got <- ds
			}()
			select {
			case ds := <-got:
				t.Fatalf("Next returned %v with nothing pending", seqs(ds))
			case <-time.After(50 * time.Millisecond):
			}
			act()
			select {
			case ds := <-got:
				if len(ds) != 1 || !bytes.Equal(ds[0].Event, event("x")) {
					t.Fatalf("got %+v, want x", ds)
				}
			case <-time.After(2 * time.Second):
				t.Fatal("Next not woken")
			}
		})
	}
}

func TestNextReturnsOnCancelAndClose(t *testing.T) {
	s := openStore(t, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	errs := make(chan error, 2)
	go func() { _, err := s.Next(ctx, "s", 1, 0); errs <- err }()
	time.Sleep(20 * time.Millisecond)
	cancel()
	if err := <-errs; !errors.Is(err, context.Canceled) {
		t.Fatalf("after cancel: %v", err)
	}
	go func() { _, err := s.Next(context.Background(), "s", 1, 0); errs <- err }()
	time.Sleep(20 * time.Millisecond)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errs; !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
	if _, err := s.Enqueue(context.Background(), []Item{item("x", "s")}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Enqueue after Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestOrderUnderConcurrentEnqueue(t *testing.T) {
	// Writers commit out of seq order; a consumer must still see every
	// event exactly once and in increasing seq order.
	s := openStore(t, Options{})
	const writers, perWriter = 16, 100
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWriter {
				if _, err := s.Enqueue(context.Background(), []Item{item(fmt.Sprintf("%d-%d", w, i), "s", "t")}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	consume := func(sink string) error {
		seen := make(map[string]bool)
		var last uint64
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		for len(seen) < writers*perWriter {
			ds, err := s.Next(ctx, sink, 7, 0)
			if err != nil {
				return fmt.Errorf("%s after %d: %w", sink, len(seen), err)
			}
			for _, d := range ds {
				if d.Seq <= last {
					return fmt.Errorf("%s: seq %d after %d", sink, d.Seq, last)
				}
				last = d.Seq
				if seen[string(d.Event)] {
					return fmt.Errorf("%s: %s twice", sink, d.Event)
				}
				seen[string(d.Event)] = true
				if err := s.Ack(sink, d.Seq); err != nil {
					return err
				}
			}
		}
		return nil
	}
	errs := make(chan error, 2)
	go func() { errs <- consume("s") }()
	go func() { errs <- consume("t") }()
	wg.Wait()
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	assertEmpty(t, s)
}

func TestStatsOldestPending(t *testing.T) {
	clk := newClock()
	s := openStore(t, Options{now: clk.Now})
	if st := s.Stats(); !st.OldestPending.IsZero() {
		t.Fatalf("empty store OldestPending = %v", st.OldestPending)
	}
	t0 := clk.Now()
	enqueue(t, s, item("a", "s"))
	clk.Advance(time.Minute)
	enqueue(t, s, item("b", "s"), item("c", "s"))
	if got := s.Stats().OldestPending; !got.Equal(t0) {
		t.Fatalf("OldestPending = %v, want %v (backlog)", got, t0)
	}
	ds := next(t, s, "s", 2)
	if got := s.Stats().OldestPending; !got.Equal(t0) {
		t.Fatalf("OldestPending = %v, want %v (in flight)", got, t0)
	}
	if err := s.Ack("s", ds[0].Seq); err != nil {
		t.Fatal(err)
	}
	if got := s.Stats().OldestPending; !got.Equal(t0.Add(time.Minute)) {
		t.Fatalf("OldestPending = %v, want %v", got, t0.Add(time.Minute))
	}
}

// Each sink's oldest pending delivery is its own: a sink that has
// delivered its old events shows its newer ones' age, not another sink's
// backlog's, and a sink with nothing pending has no entry.
func TestStatsOldestPendingBySink(t *testing.T) {
	clk := newClock()
	s := openStore(t, Options{now: clk.Now})
	t0 := clk.Now()
	enqueue(t, s, item("a", "slow", "fast"))
	clk.Advance(time.Minute)
	enqueue(t, s, item("b", "slow", "fast"))
	clk.Advance(time.Minute)
	enqueue(t, s, item("c", "idle"))
	ds := next(t, s, "fast", 1)
	if got := s.Stats().OldestPendingBySink; !got["slow"].Equal(t0) || !got["fast"].Equal(t0) || !got["idle"].Equal(t0.Add(2*time.Minute)) {
		t.Fatalf("OldestPendingBySink = %v, want slow and fast at %v (fast's in flight), idle at %v", got, t0, t0.Add(2*time.Minute))
	}
	if err := s.Ack("fast", ds[0].Seq); err != nil {
		t.Fatal(err)
	}
	ds = next(t, s, "idle", 1)
	if err := s.Ack("idle", ds[0].Seq); err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	if got := st.OldestPendingBySink; len(got) != 2 || !got["slow"].Equal(t0) || !got["fast"].Equal(t0.Add(time.Minute)) {
		t.Fatalf("OldestPendingBySink = %v, want slow at %v, fast at %v, none for idle", got, t0, t0.Add(time.Minute))
	}
	if !st.OldestPending.Equal(t0) {
		t.Fatalf("OldestPending = %v, want %v", st.OldestPending, t0)
	}
}

func TestSettleErrors(t *testing.T) {
	s := openStore(t, Options{})
	enqueue(t, s, item("a", "s"))
	cases := []struct {
		name string
		call func() error
	}{
		{"ack unknown sink", func() error { return s.Ack("nope", 1) }},
		{"ack not handed out", func() error { return s.Ack("s", 1) }},
		{"attempted not handed out", func() error { return s.Attempted("s", 1, 1, "x") }},
		{"release not handed out", func() error { return s.Release("s", 1) }},
		{"forward not handed out", func() error { return s.Forward("s", 1, "dlq", Failure{Reason: "x"}) }},
		{"bury not handed out", func() error { return s.Bury("s", 1, 1, "x") }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); !errors.Is(err, ErrNotInFlight) {
				t.Fatalf("got %v, want ErrNotInFlight", err)
			}
		})
	}
	if got := len(drain(t, s, "s")); got != 1 {
		t.Fatalf("the event was disturbed: %d pending", got)
	}
}

func TestDeadLettersSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, Options{Path: dir})
	enqueue(t, s, item("a", "s"))
	d := next(t, s, "s", 1)[0]
	if err := s.Bury("s", d.Seq, 8, "gave up"); err != nil {
		t.Fatal(err)
	}
	if err := s.Reject("userecho", []byte("<xml/>"), "not JSON"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, Options{Path: dir})
	if st := s.Stats(); st.DeadLetters != 2 || st.Events != 0 {
		t.Fatalf("after restart Stats = %+v", st)
	}
	dead, err := s.DeadLetters(10)
	if err != nil || len(dead) != 2 {
		t.Fatalf("DeadLetters = %v, %v", dead, err)
	}
	if err := s.Replay(dead[1].Key, ""); err != nil {
		t.Fatal(err)
	}
	if got := drain(t, s, "s"); len(got) != 1 || !bytes.Equal(got[0].Event, event("a")) {
		t.Fatalf("replayed into its own sink: %q", ids(got))
	}
	assertEmpty(t, s)
}

func TestOpenRefusesWindowsOutOfRange(t *testing.T) {
	for _, w := range []time.Duration{-time.Second, MaxDedupWindow + time.Nanosecond} {
		if s, err := Open(Options{Path: t.TempDir(), DedupWindow: w, Logger: quietLogger()}); err == nil {
			_ = s.Close()
			t.Errorf("Open accepted a dedup window of %s", w)
		}
	}
	s := openStore(t, Options{DedupWindow: MaxDedupWindow})
	if dup := enqueue(t, s, item("x", "s"), item("x", "s")); !slices.Equal(dup, []bool{false, true}) {
		t.Fatalf("with the longest window dup = %v, want [false true]", dup)
	}
}

// TestOpenInUseSaysSo: a store another process holds open (another bridge
// on the same queue.path) is refused with an error that says why.
func TestOpenInUseSaysSo(t *testing.T) {
	if dir := os.Getenv("HOOKBRIDGE_TEST_HOLD_STORE"); dir != "" {
		// The other process: hold the store open until stdin closes.
		s, err := Open(Options{Path: dir, Logger: quietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		fmt.Println("open")
		io.Copy(io.Discard, os.Stdin)
		s.Close()
		return
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestOpenInUseSaysSo$")
	cmd.Env = append(os.Environ(), "HOOKBRIDGE_TEST_HOLD_STORE="+dir)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		cmd.Wait()
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "open\n" {
		t.Fatalf("the other process did not open the store: %q, %v", line, err)
	}

	s, err := Open(Options{Path: dir, Logger: quietLogger()})
	if err == nil {
		s.Close()
		t.Fatal("opened a store another process holds")
	}
	if !strings.Contains(err.Error(), "in use by another process") {
		t.Errorf("error %q does not say the store is in use", err)
	}
}

// DeadLettersBefore pages through the list, newest first: every entry
// once, in order, also when the entry a page ended with was replayed or
// removed before the next page was asked for.
func TestDeadLettersBeforePages(t *testing.T) {
	s := openStore(t, Options{})
	for i := range 7 {
		if i%2 == 0 { // rejected bodies and buried events alike
			if err := s.Reject("crisp", []byte(fmt.Sprint("body ", i)), "invalid JSON"); err != nil {
				t.Fatal(err)
			}
			continue
		}
		enqueue(t, s, item(fmt.Sprint("lead-", i), "crm"))
		taken := next(t, s, "crm", 1)[0]
		if err := s.Bury("crm", taken.Seq, 8, "HTTP 400"); err != nil {
			t.Fatal(err)
		}
	}
	all, err := s.DeadLetters(0)
	if err != nil || len(all) != 7 {
		t.Fatalf("DeadLetters(0): %d, %v", len(all), err)
	}
	var paged []string
	before := ""
	for {
		page, err := s.DeadLettersBefore(before, 3)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		for _, dl := range page {
			paged = append(paged, dl.Key)
		}
		before = page[len(page)-1].Key
	}
	for i, dl := range all {
		if i >= len(paged) || paged[i] != dl.Key {
			t.Fatalf("pages gave %v, want the keys of %v in order", paged, all)
		}
	}
	if len(paged) != len(all) {
		t.Fatalf("pages gave %d entries, want %d", len(paged), len(all))
	}

	// The page after a key that is gone (replayed) starts where it was.
	if all[1].Event == nil {
		t.Fatalf("entry 1 is not an event: %+v", all[1])
	}
	if err := s.Replay(all[1].Key, ""); err != nil {
		t.Fatal(err)
	}
	page, err := s.DeadLettersBefore(all[1].Key, 2)
	if err != nil || len(page) != 2 || page[0].Key != all[2].Key || page[1].Key != all[3].Key {
		t.Fatalf("after a removed key: %+v, %v", page, err)
	}
	if _, err := s.DeadLettersBefore("zz", 1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a bad key: %v, want ErrNotFound", err)
	}
}

// DeadLetter finds one entry by key; Discard removes it for good, once.
func TestDeadLetterLookupAndDiscard(t *testing.T) {
	s := openStore(t, Options{})
	enqueue(t, s, item("lead", "crm"))
	taken := next(t, s, "crm", 1)[0]
	if err := s.Bury("crm", taken.Seq, 8, "HTTP 400"); err != nil {
		t.Fatal(err)
	}
	if err := s.Reject("crisp", []byte("not json"), "invalid JSON"); err != nil {
		t.Fatal(err)
	}
	all, err := s.DeadLetters(0)
	if err != nil || len(all) != 2 {
		t.Fatalf("%d dead letters, %v", len(all), err)
	}
	for _, want := range all {
		got, err := s.DeadLetter(want.Key)
		if err != nil || got.Key != want.Key || got.Sink != want.Sink || got.Reason != want.Reason ||
			!bytes.Equal(got.Event, want.Event) || !bytes.Equal(got.Raw, want.Raw) || !got.At.Equal(want.At) {
			t.Fatalf("DeadLetter(%s) = %+v, %v; want %+v", want.Key, got, err, want)
		}
	}
	for _, dl := range all {
		if err := s.Discard(dl.Key); err != nil {
			t.Fatal(err)
		}
		if err := s.Discard(dl.Key); !errors.Is(err, ErrNotFound) {
			t.Fatalf("second discard: %v, want ErrNotFound", err)
		}
		if _, err := s.DeadLetter(dl.Key); !errors.Is(err, ErrNotFound) {
			t.Fatalf("lookup after discard: %v, want ErrNotFound", err)
		}
	}
	if left, _ := s.DeadLetters(0); len(left) != 0 || s.Stats().DeadLetters != 0 {
		t.Fatalf("after discarding all: %d listed, %d counted", len(left), s.Stats().DeadLetters)
	}
	if err := s.Replay(all[1].Key, ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("replay of a discarded event: %v, want ErrNotFound", err)
	}
	for _, bad := range []string{"", "zz", "00"} {
		if _, err := s.DeadLetter(bad); !errors.Is(err, ErrNotFound) {
			t.Errorf("DeadLetter(%q): %v", bad, err)
		}
		if err := s.Discard(bad); !errors.Is(err, ErrNotFound) {
			t.Errorf("Discard(%q): %v", bad, err)
		}
	}
}

func storedEvent(t *testing.T, b []byte) *cloudevent.Event {
	t.Helper()
	ev, err := eventcodec.Decode(b)
	if err != nil {
		t.Fatalf("stored event does not decode: %v", err)
	}
	return ev
}

// A dead letter a dead-letter sink gave up on, replayed to that sink, is a
// forward from the first sink again: the sink is told the same, and
// giving up once more keeps the first sink and its reason (so that
// replaying it elsewhere sends an ordinary event).
func TestReplayToTheDeadLetterSinkIsAForwardAgain(t *testing.T) {
	s := openStore(t, Options{})
	enqueue(t, s, item("lead", "crm"))
	crm := next(t, s, "crm", 1)[0]
	why := Failure{Reason: "crm: rejected: 422", Status: 422, Answer: []byte("no\n")}
	must(t, s.Forward("crm", crm.Seq, "dlq", why))
	for round := range 2 {
		d := next(t, s, "dlq", 1)[0]
		if d.From != "crm" || !reflect.DeepEqual(d.Failure(), why) {
			t.Fatalf("round %d: the dead-letter sink got from %q %+v, want from crm %+v", round, d.From, d.Failure(), why)
		}
		must(t, s.Bury("dlq", d.Seq, 2, "dlq: 2 attempt(s): 500"))
		dead, err := s.DeadLetters(0)
		if err != nil || len(dead) != 1 {
			t.Fatalf("round %d: dead letters %+v, %v", round, dead, err)
		}
		if dl := dead[0]; dl.Sink != "dlq" || dl.From != "crm" || dl.Reason != "dlq: 2 attempt(s): 500 (dead-lettered by crm: crm: rejected: 422)" {
			t.Fatalf("round %d: dead letter %+v", round, dl)
		}
		if round == 0 {
			must(t, s.Replay(dead[0].Key, "")) // to dlq, the sink that gave up
			continue
		}
		must(t, s.Replay(dead[0].Key, "other"))
		got := drain(t, s, "other")
		if ev := storedEvent(t, got[0].Event); got[0].From != "" || len(ev.Extensions()) != 0 {
			t.Fatalf("replayed elsewhere: from %q with %v, want an ordinary event", got[0].From, ev.Extensions())
		}
	}
}
