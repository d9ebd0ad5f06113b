package queue

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/vfs"
)

// TestSingleSinkRecordCarriesBody follows an event that goes to one sink
// through every way a delivery can end, across restarts: its pending record
// carries the body, no e/ record is written, and the body survives retries,
// a forward to a dead-letter sink, burial and replay.
func TestSingleSinkRecordCarriesBody(t *testing.T) {
	dir := t.TempDir()
	clk := newClock()
	s := openStore(t, Options{Path: dir, now: clk.Now})
	enqueue(t, s, item("solo", "crm"), item("both", "crm", "archive"))
	if n := countKeys(t, s, prefixEvent); n != 1 {
		t.Fatalf("%d e/ records, want 1 (the event shared by two sinks)", n)
	}
	st := s.Stats()
	if st.Events != 2 || st.Pending["crm"] != 2 || st.Pending["archive"] != 1 {
		t.Fatalf("Stats = %+v, want 2 events, crm 2, archive 1", st)
	}
	ds := next(t, s, "crm", 10)
	if len(ds) != 2 || !bytes.Equal(ds[0].Event, event("solo")) || !bytes.Equal(ds[1].Event, event("both")) {
		t.Fatalf("crm got %+v", ds)
	}
	must(t, s.Attempted("crm", ds[0].Seq, 3, "HTTP 503"))
	must(t, s.Release("crm", ds[0].Seq))
	must(t, s.Close())

	// After a restart the retried record still carries its body and its
	// attempts, and Open counts it among the events.
	s = openStore(t, Options{Path: dir, now: clk.Now})
	if st := s.Stats(); st.Events != 2 {
		t.Fatalf("after restart Events = %d, want 2", st.Events)
	}
	ds = next(t, s, "crm", 1)
	if len(ds) != 1 || !bytes.Equal(ds[0].Event, event("solo")) || ds[0].Attempts != 3 {
		t.Fatalf("after restart crm got %+v", ds)
	}
	must(t, s.Forward("crm", ds[0].Seq, "dlq", Failure{Reason: "3 attempts: HTTP 503"}))
	dl := next(t, s, "dlq", 1)
	if len(dl) != 1 || !bytes.Equal(dl[0].Event, event("solo")) || dl[0].From != "crm" {
		t.Fatalf("dlq got %+v", dl)
	}
	if st := s.Stats(); st.Events != 2 || st.Pending["dlq"] != 1 || st.Pending["crm"] != 1 {
		t.Fatalf("after forward Stats = %+v", st)
	}
	must(t, s.Bury("dlq", dl[0].Seq, 1, "dlq unreachable"))
	if st := s.Stats(); st.Events != 1 || st.DeadLetters != 1 {
		t.Fatalf("after bury Stats = %+v", st)
	}
	dead, err := s.DeadLetters(0)
	must(t, err)
	if len(dead) != 1 || storedEvent(t, dead[0].Event).ID() != "solo" {
		t.Fatalf("dead letters %+v", dead)
	}
	must(t, s.Replay(dead[0].Key, "crm"))
	if n := countKeys(t, s, prefixEvent); n != 1 {
		t.Fatalf("replay wrote an e/ record: %d, want 1", n)
	}
	got := drain(t, s, "crm")
	if len(got) != 2 || !bytes.Equal(got[0].Event, event("both")) || storedEvent(t, got[1].Event).ID() != "solo" {
		t.Fatalf("crm drained %+v", got)
	}
	drain(t, s, "archive")
	assertEmpty(t, s)
}

// TestOpenUpgradesFormats2And3 opens stores written by formats 2 and 3,
// whose dedup records held the id itself (format 2 under a/, with every
// body in e/; format 3 under z/, with a single-sink event's body in its
// pending record). The ids within the window are still duplicates, the
// expired one is not, the old keys are gone, and what was pending is
// delivered with its body.
func TestOpenUpgradesFormats2And3(t *testing.T) {
	for _, format := range []uint64{2, 3} {
		t.Run(fmt.Sprint("format", format), func(t *testing.T) { testUpgrade(t, format) })
	}
}

func testUpgrade(t *testing.T, format uint64) {
	const window = time.Hour
	clk := newClock()
	dir := t.TempDir()
	db, err := pebble.Open(dir, &pebble.Options{FS: vfs.Default})
	must(t, err)
	now := clk.Now().UnixNano()
	width := int64(window / dedupFilterSlices)
	legacy := map[uint64]string{2: legacyPrefixAccepted, 3: legacyPrefixAcceptedV3}[format]
	for id, at := range map[string]int64{
		"recent":  now - int64(time.Minute),
		"old":     now - int64(window/2),
		"expired": now - int64(window),
	} {
		key := binary.BigEndian.AppendUint64([]byte(legacy), uint64(at/width)^1<<63)
		must(t, db.Set(append(key, id...), binary.BigEndian.AppendUint64(nil, uint64(at)), nil))
	}
	// Seq 5 went to one sink, seq 6 to two.
	if format == 2 {
		must(t, db.Set(eventKey(nil, 5), append([]byte{eventRecordVersion}, event("five")...), nil))
		must(t, db.Set(pendingKey(nil, "s", 5), pendingRecord{At: now}.encode(), nil))
	} else {
		must(t, db.Set(pendingKey(nil, "s", 5), pendingRecord{At: now, Body: event("five")}.encode(), nil))
		must(t, db.Set([]byte(keyBucketWidth), binary.BigEndian.AppendUint64(nil, uint64(width)), nil))
	}
	must(t, db.Set(eventKey(nil, 6), append([]byte{eventRecordVersion}, event("six")...), nil))
	must(t, db.Set(refsKey(nil, 6), binary.AppendUvarint(nil, 2), nil))
	for _, sink := range []string{"s", "t"} {
		must(t, db.Set(pendingKey(nil, sink, 6), pendingRecord{At: now, Shared: true}.encode(), nil))
	}
	must(t, db.Set([]byte(keySeqTerm), binary.BigEndian.AppendUint64(nil, 7), nil))
	must(t, db.Set([]byte(keyFormat), binary.BigEndian.AppendUint64(nil, format), nil))
	must(t, db.Close())

	s := openStore(t, Options{Path: dir, DedupWindow: window, now: clk.Now})
	if n := countKeys(t, s, legacy); n != 0 {
		t.Fatalf("%d %s keys left after the upgrade", n, legacy)
	}
	if n := countKeys(t, s, prefixAccepted); n != 2 {
		t.Fatalf("%d dedup records after the upgrade, want 2", n)
	}
	if format, _, err := s.getUint64([]byte(keyFormat)); err != nil || format != storeFormat {
		t.Fatalf("format %d (%v) after the upgrade, want %d", format, err, storeFormat)
	}
	if st := s.Stats(); st.Events != 2 || st.Pending["s"] != 2 || st.Pending["t"] != 1 {
		t.Fatalf("after the upgrade Stats = %+v", st)
	}
	if dup := enqueue(t, s, item("recent", "s"), item("old", "s"), item("expired", "s")); !slices.Equal(dup, []bool{true, true, false}) {
		t.Fatalf("after the upgrade dup = %v, want [true true false]", dup)
	}
	got := drain(t, s, "s")
	if len(got) != 3 || got[0].Seq != 5 || !bytes.Equal(got[0].Event, event("five")) ||
		got[1].Seq != 6 || !bytes.Equal(got[1].Event, event("six")) || !bytes.Equal(got[2].Event, event("expired")) {
		t.Fatalf("s drained %+v", got)
	}
	if got := drain(t, s, "t"); len(got) != 1 || !bytes.Equal(got[0].Event, event("six")) {
		t.Fatalf("t drained %+v", got)
	}
	assertEmpty(t, s)
	must(t, s.Close())

	// The upgraded store opens as it is, the ids still duplicates.
	s = openStore(t, Options{Path: dir, DedupWindow: window, now: clk.Now})
	if dup := enqueue(t, s, item("recent"), item("old"), item("expired")); !slices.Equal(dup, []bool{true, true, true}) {
		t.Fatalf("after reopening dup = %v, want all true", dup)
	}
}

// TestDedupBucketWidthOutlivesTheWindow reopens a store with a different
// dedup window: its records stay in the buckets they were written in, so
// an id accepted before is still found with a wider window, and expires
// with a narrower one.
func TestDedupBucketWidthOutlivesTheWindow(t *testing.T) {
	dir := t.TempDir()
	clk := newClock()
	s := openStore(t, Options{Path: dir, DedupWindow: time.Hour, now: clk.Now})
	enqueue(t, s, item("early"))
	clk.Advance(50 * time.Minute)
	enqueue(t, s, item("late"))
	must(t, s.Close())

	// A day-long window: both ids are duplicates, though a day's bucket
	// numbers are 24 times smaller than an hour's.
	clk.Advance(20 * time.Minute)
	s = openStore(t, Options{Path: dir, DedupWindow: 24 * time.Hour, now: clk.Now})
	if dup := enqueue(t, s, item("early"), item("late")); !slices.Equal(dup, []bool{true, true}) {
		t.Fatalf("with a wider window dup = %v, want [true true]", dup)
	}
	must(t, s.Close())

	// A ten-minute window: early (80 minutes ago) has expired, late
	// (30 minutes ago) too; the janitor removes both buckets.
	s = openStore(t, Options{Path: dir, DedupWindow: 10 * time.Minute, now: clk.Now})
	if dup := enqueue(t, s, item("early"), item("late")); !slices.Equal(dup, []bool{false, false}) {
		t.Fatalf("with a narrower window dup = %v, want [false false]", dup)
	}
	clk.Advance(26 * time.Minute) // past the window and the 15-minute bucket of the re-accepted ids
	if _, err := s.expireDedup(); err != nil {
		t.Fatal(err)
	}
	if n := countKeys(t, s, prefixAccepted); n != 0 {
		t.Fatalf("%d dedup records left after they all expired", n)
	}
}

// A store stays at format 4, which older bridges open, until a forward
// carries a destination's answer: that record and format 5 are written
// together, and a store of a format newer than 5 is refused.
func TestFormat5ComesWithTheFirstAnswer(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, Options{Path: dir})
	format := func() uint64 {
		t.Helper()
		v, found, err := s.getUint64([]byte(keyFormat))
		if err != nil || !found {
			t.Fatalf("m/format: %d, %v, %v", v, found, err)
		}
		return v
	}
	enqueue(t, s, item("a", "crm"), item("b", "crm"))
	ds := next(t, s, "crm", 2)
	must(t, s.Forward("crm", ds[0].Seq, "dlq", Failure{Reason: "crm: 3 attempt(s): connection refused"}))
	if f := format(); f != 4 {
		t.Fatalf("format %d after a forward without an answer, want 4", f)
	}
	must(t, s.Forward("crm", ds[1].Seq, "dlq", Failure{Reason: "crm: rejected", Status: 422, Answer: []byte("no")}))
	if f := format(); f != 5 {
		t.Fatalf("format %d after a forward with an answer, want 5", f)
	}
	must(t, s.Close())

	s = openStore(t, Options{Path: dir})
	if got := drain(t, s, "dlq"); len(got) != 2 || got[1].Status != 422 {
		t.Fatalf("after reopening, the dead-letter sink got %+v", got)
	}
	must(t, s.db.Set([]byte(keyFormat), appendUint64(nil, 6), pebble.Sync))
	must(t, s.Close())
	if _, err := Open(Options{Path: dir, Logger: quietLogger()}); err == nil || !strings.Contains(err.Error(), "store format 6") {
		t.Fatalf("Open of a format 6 store: %v, want a refusal that names the format", err)
	}
}
