package kafkaqueue

import (
	"errors"
	"maps"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/hookbridge/hookbridge/eventcodec"
	"github.com/hookbridge/hookbridge/queue"
)

// The dead-letter topic's records are listed newest first, page by page,
// as the embedded store lists its dead letters; a replay queues the event
// again for one sink, with its attempts reset, and a replayed or discarded
// dead letter is no longer listed, by any replica.
func TestDeadLettersListReplayDiscard(t *testing.T) {
	brokers := newCluster(t, 2)
	q := openQueue(t, brokers, nil)
	subscribe(t, q, "a", "b")
	ev0, ev1 := newEvent(0, "t.ab"), newEvent(1, "t.ab")
	enqueue(t, q, ev0, ev1)
	ack(t, q, "b", take(t, q, "b", 2, 15*time.Second)...)
	ds := take(t, q, "a", 2, 15*time.Second)
	byID := map[string]queue.Delivery{}
	for _, d := range ds {
		byID[decode(t, d).ID()] = d
	}
	if err := q.Bury("a", byID["ev-000"].Seq, 3, "gave up after 3 attempts"); err != nil {
		t.Fatal(err)
	}
	waitDeadLetters(t, q, 1)
	if err := q.Forward("a", byID["ev-001"].Seq, "dl", queue.Failure{Reason: "boom"}); err != nil {
		t.Fatal(err)
	}
	fw := take(t, q, "dl", 1, time.Second)
	if err := q.Bury("dl", fw[0].Seq, 1, "dl is down"); err != nil {
		t.Fatal(err)
	}
	waitDeadLetters(t, q, 2)
	time.Sleep(5 * time.Millisecond) // the broker times are in milliseconds
	if err := q.Reject("helloclient", []byte("not json"), "verified, but not JSON"); err != nil {
		t.Fatal(err)
	}

	list, err := q.DeadLettersBefore("", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 3 {
		t.Fatalf("listed %d dead letters, want 3: %+v", len(list), list)
	}
	raw, dl1, dl0 := list[0], list[1], list[2]
	// Another replica counts them from the topic.
	q2 := openQueue(t, brokers, func(o *Options) { o.LagInterval = 50 * time.Millisecond })
	waitDeadLetters(t, q2, 3)
	if string(raw.Raw) != "not json" || raw.Event != nil || raw.Source != "helloclient" || raw.Reason != "verified, but not JSON" {
		t.Errorf("newest: %+v, want the rejected body", raw)
	}
	for _, c := range []struct {
		dl             queue.DeadLetter
		id, sink, from string
		reason         string
		attempts       int
		exts           map[string]any // the event's extensions
	}{
		// Kept as the dead-letter sink was sent it, so that a replay to
		// it sends the same.
		{dl1, "ev-001", "dl", "a", "dl is down (dead-lettered by a: boom)", 1,
			map[string]any{"deadlettersink": "a", "deadletterreason": "boom", "knativeerrordest": "a"}},
		{dl0, "ev-000", "a", "", "gave up after 3 attempts", 3, map[string]any{}},
	} {
		if c.dl.Sink != c.sink || c.dl.From != c.from || c.dl.Reason != c.reason || c.dl.Attempts != c.attempts || c.dl.Raw != nil || c.dl.At.IsZero() {
			t.Errorf("dead letter of %s: %+v", c.id, c.dl)
		}
		ev, err := eventcodec.Decode(c.dl.Event)
		if err != nil {
			t.Fatalf("dead letter of %s: %v", c.id, err)
		}
		sameEvent(t, ev, newEvent(map[string]int{"ev-000": 0, "ev-001": 1}[c.id], "t.ab"))
		if exts := ev.Extensions(); !maps.Equal(exts, c.exts) {
			t.Errorf("dead letter of %s has the extensions %v, want %v", c.id, exts, c.exts)
		}
	}
	for before, want := range map[string][]queue.DeadLetter{raw.Key: {dl1, dl0}, dl1.Key: {dl0}, dl0.Key: nil} {
		page, err := q.DeadLettersBefore(before, 0)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.EqualFunc(page, want, func(a, b queue.DeadLetter) bool { return a.Key == b.Key }) {
			t.Errorf("after %s: %d listed, want %d", before, len(page), len(want))
		}
	}
	if page, err := q.DeadLettersBefore("", 2); err != nil || len(page) != 2 || page[1].Key != dl1.Key {
		t.Errorf("the first page of 2: %+v, %v", page, err)
	}
	if page, err := q.DeadLettersBefore("", 1); err != nil || len(page) != 1 || page[0].Key != raw.Key {
		t.Errorf("the first page of 1: %+v, %v", page, err) // kept while reading: the newest only
	}
	if got, err := q.DeadLetter(dl0.Key); err != nil || got.Key != dl0.Key || got.Sink != "a" {
		t.Errorf("DeadLetter(%s): %+v, %v", dl0.Key, got, err)
	}
	for _, key := range []string{"nonsense", "1.0.99"} {
		if _, err := q.DeadLetter(key); !errors.Is(err, queue.ErrNotFound) {
			t.Errorf("DeadLetter(%q): %v, want ErrNotFound", key, err)
		}
	}

	// Replayed to the sink that gave up, with its attempts reset; sink b
	// does not get it, though the routes send it there too.
	if err := q.Replay(dl0.Key, ""); err != nil {
		t.Fatal(err)
	}
	again := take(t, q, "a", 1, 15*time.Second)
	if id := decode(t, again[0]).ID(); id != "ev-000" || again[0].Attempts != 0 {
		t.Errorf("replayed: %s with %d attempts, want ev-000 with 0", id, again[0].Attempts)
	}
	ack(t, q, "a", again...)
	// Replayed to a sink named, not the dead-letter sink that gave up.
	if err := q.Replay(dl1.Key, "a"); err != nil {
		t.Fatal(err)
	}
	again = take(t, q, "a", 1, 15*time.Second)
	if ev := decode(t, again[0]); ev.ID() != "ev-001" || len(ev.Extensions()) != 0 {
		t.Errorf("replayed: %s with %v, want ev-001 as an ordinary event", ev.ID(), ev.Extensions())
	}
	ack(t, q, "a", again...)
	takeNone(t, q, "dl", 300*time.Millisecond)
	for _, key := range []string{dl0.Key, dl1.Key} {
		if err := q.Replay(key, ""); !errors.Is(err, queue.ErrNotFound) {
			t.Errorf("a second Replay(%s): %v, want ErrNotFound", key, err)
		}
	}
	if err := q.Replay(raw.Key, "a"); err == nil || errors.Is(err, queue.ErrNotFound) {
		t.Errorf("Replay of a rejected body: %v, want an error that says why", err)
	}
	if err := q.Discard(raw.Key); err != nil {
		t.Fatal(err)
	}
	if err := q.Discard(raw.Key); !errors.Is(err, queue.ErrNotFound) {
		t.Errorf("a second Discard: %v, want ErrNotFound", err)
	}

	for name, r := range map[string]*Queue{"q": q, "q2": q2} {
		if left, err := r.DeadLettersBefore("", 0); err != nil || len(left) != 0 {
			t.Errorf("%s lists %d dead letters after every one was replayed or discarded (%v)", name, len(left), err)
		}
	}
	if n := q.Stats().DeadLetters; n != 0 {
		t.Errorf("%d dead letters counted after every one was replayed or discarded", n)
	}
	waitDeadLetters(t, q2, 0)
	takeNone(t, q, "b", 300*time.Millisecond) // routed there too, but not replayed there
}

// A dead letter a dead-letter sink gave up on, replayed to that sink, is a
// forward from the first sink again: the sink is told the same, and giving
// up once more keeps the first sink and its reason.
func TestReplayToTheDeadLetterSinkIsAForwardAgain(t *testing.T) {
	brokers := newCluster(t, 1)
	q := openQueue(t, brokers, nil)
	subscribe(t, q, "a", "dl")
	enqueue(t, q, newEvent(0, "t.a"))
	d := take(t, q, "a", 1, 15*time.Second)[0]
	why := queue.Failure{Reason: "a: rejected: 422", Status: 422, Answer: []byte("no\n")}
	if err := q.Forward("a", d.Seq, "dl", why); err != nil {
		t.Fatal(err)
	}
	for round := range 2 {
		fw := take(t, q, "dl", 1, 15*time.Second)[0]
		if fw.From != "a" || !reflect.DeepEqual(fw.Failure(), why) {
			t.Fatalf("round %d: the dead-letter sink got %s, want from a with %+v", round, describe(fw), why)
		}
		if err := q.Bury("dl", fw.Seq, 2, "dl: 2 attempt(s): 500"); err != nil {
			t.Fatal(err)
		}
		waitDeadLetters(t, q, 1)
		list, err := q.DeadLettersBefore("", 0)
		if err != nil || len(list) != 1 {
			t.Fatalf("round %d: listed %+v, %v", round, list, err)
		}
		if dl := list[0]; dl.Sink != "dl" || dl.From != "a" || dl.Reason != "dl: 2 attempt(s): 500 (dead-lettered by a: a: rejected: 422)" {
			t.Fatalf("round %d: dead letter %+v", round, dl)
		}
		if round == 0 {
			if err := q.Replay(list[0].Key, ""); err != nil { // to dl, the sink that gave up
				t.Fatal(err)
			}
			waitDeadLetters(t, q, 0)
		}
	}
}

// On one replica, a replay and a discard of one dead letter at the same
// moment do not both happen: one of them finds it gone.
func TestReplayAndDiscardAtOnce(t *testing.T) {
	brokers := newCluster(t, 1)
	q := openQueue(t, brokers, nil)
	subscribe(t, q, "a")
	const n = 4
	for i := range n {
		enqueue(t, q, newEvent(i, "t.a"))
	}
	for _, d := range take(t, q, "a", n, 15*time.Second) {
		if err := q.Bury("a", d.Seq, 1, "gave up"); err != nil {
			t.Fatal(err)
		}
	}
	waitDeadLetters(t, q, n)
	list, err := q.DeadLettersBefore("", 0)
	if err != nil || len(list) != n {
		t.Fatalf("listed %d, %v", len(list), err)
	}
	for _, dl := range list {
		errs := make(chan error, 2)
		go func() { errs <- q.Replay(dl.Key, "") }()
		go func() { errs <- q.Discard(dl.Key) }()
		first, second := <-errs, <-errs
		if (first == nil) == (second == nil) || !errors.Is(errors.Join(first, second), queue.ErrNotFound) {
			t.Errorf("replay and discard of %s: %v and %v, want one done and one ErrNotFound", dl.Key, first, second)
		}
		if err := q.Replay(dl.Key, ""); !errors.Is(err, queue.ErrNotFound) {
			t.Errorf("%s is still there: %v", dl.Key, err)
		}
	}
}

// With nothing dead-lettered yet (no dead-letter topic), the list is empty.
func TestDeadLettersBeforeAny(t *testing.T) {
	_, brokers := newStateCluster(t)
	q := openQueue(t, brokers, nil)
	list, err := q.DeadLettersBefore("", 0)
	if err != nil || len(list) != 0 {
		t.Fatalf("%d listed, %v; want none", len(list), err)
	}
}

// waitDeadLetters waits until q counts n dead letters.
func waitDeadLetters(t testing.TB, q *Queue, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for q.Stats().DeadLetters != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d dead letters written, want %d", q.Stats().DeadLetters, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A dead letter's key reads back as written; anything else is refused as
// not found, never misread.
func FuzzParseDeadLetterKey(f *testing.F) {
	for _, s := range []string{"1764748800000000000.0.0", "1.2.3", "..", "-1.0.0", "1.-2.3", "1.2", "1.2.3.4", "x.y.z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		pos, err := parseDeadLetterKey(key)
		if err != nil {
			if !errors.Is(err, queue.ErrNotFound) {
				t.Fatalf("%q: %v, want ErrNotFound", key, err)
			}
			return
		}
		if pos.partition < 0 || pos.offset < 0 {
			t.Fatalf("%q: %+v", key, pos)
		}
		again, err := parseDeadLetterKey(deadLetterKey(time.Unix(0, pos.at), pos.partition, pos.offset))
		if err != nil || again != pos {
			t.Fatalf("%q: %+v written and read back as %+v (%v)", key, pos, again, err)
		}
	})
}
