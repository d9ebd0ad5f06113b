package kafkaqueue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/hookbridge/hookbridge/internal/testlog"
	"github.com/hookbridge/hookbridge/metrics"
	"github.com/hookbridge/hookbridge/queue"
	"github.com/hookbridge/hookbridge/sinks/kafka"
)

// Every event routed to a sink reaches it exactly once, unchanged; the
// records on the ingress topic are CloudEvents in binary mode keyed by the
// item id.
func TestRoundTrip(t *testing.T) {
	brokers := newCluster(t, 3)
	q := openQueue(t, brokers, nil)
	subscribe(t, q, "a", "b")

	types := []string{"t.a", "t.b", "t.ab", "t.none"}
	var evs []*event.Event
	want := map[string]map[string]*event.Event{"a": {}, "b": {}}
	for i := range 40 {
		ev := newEvent(i, types[i%len(types)])
		evs = append(evs, ev)
		for _, s := range routeByType(ev) {
			want[s][ev.ID()] = ev
		}
	}
	start := time.Now()
	enqueue(t, q, evs[:25]...)
	enqueue(t, q, evs[25:]...)

	for _, sink := range []string{"a", "b"} {
		ds := take(t, q, sink, len(want[sink]), 15*time.Second)
		got := map[string]bool{}
		for _, d := range ds {
			if d.Sink != sink || d.From != "" || d.Attempts != 0 {
				t.Errorf("delivery %s", describe(d))
			}
			ev := decode(t, d)
			if got[ev.ID()] {
				t.Errorf("%s: %s delivered twice", sink, ev.ID())
			}
			got[ev.ID()] = true
			w := want[sink][ev.ID()]
			if w == nil {
				t.Errorf("%s: %s is not routed there", sink, ev.ID())
				continue
			}
			sameEvent(t, ev, w)
		}
		ack(t, q, sink, ds...)
		takeNone(t, q, sink, 300*time.Millisecond)
	}
	t.Logf("delivered in %v", time.Since(start))

	msgs := readTopic(t, brokers, ingress, len(evs))
	// Each group commits every partition to its end: past the records
	// routed elsewhere too.
	ends := map[int]int64{}
	for _, m := range msgs {
		ends[m.Partition] = max(ends[m.Partition], m.Offset+1)
	}
	for _, g := range []string{group + ".a", group + ".b"} {
		waitCommittedAll(t, brokers, g, ends)
	}
	byKey := map[string]*event.Event{}
	for _, ev := range evs {
		byKey[itemID(ev)] = ev
	}
	for _, m := range msgs {
		w := byKey[string(m.Key)]
		if w == nil {
			t.Errorf("record with key %q", m.Key)
			continue
		}
		delete(byKey, string(m.Key))
		h := headerMap(t, m)
		if h["ce_specversion"] != "1.0" || h["ce_id"] != w.ID() || h["ce_type"] != w.Type() || h["ce_source"] != w.Source() {
			t.Errorf("record %q: headers %v", m.Key, h)
		}
		ev, err := kafka.FromMessage(m)
		if err != nil {
			t.Fatalf("record %q: %v", m.Key, err)
		}
		sameEvent(t, ev, w)
	}
}

// A record is committed only once its delivery ended, and only past
// records whose deliveries all ended: a new member of the group gets the
// rest again.
func TestCommitOnlyAfterDelivery(t *testing.T) {
	brokers := newCluster(t, 1)
	q := openQueue(t, brokers, nil)
	subscribe(t, q, "a")
	evs := newEvents(10, "t.a")
	enqueue(t, q, evs...)
	ds := take(t, q, "a", 10, 15*time.Second)
	if got, want := idsOf(t, ds), idsOfEvents(evs); !slices.Equal(got, want) {
		t.Fatalf("delivered %v, want %v", got, want)
	}
	ack(t, q, "a", ds[:5]...)
	waitCommitted(t, brokers, group+".a", 5)
	time.Sleep(4 * q.o.CommitInterval) // no further commit comes
	if got := committed(t, brokers, group+".a", 0)[0]; got != 5 {
		t.Fatalf("committed %d with records 5.. not acked", got)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if got := committed(t, brokers, group+".a", 0)[0]; got != 5 {
		t.Fatalf("committed %d after Close with records 5.. not acked", got)
	}

	// A new replica gets the five not acked, and they alone.
	q2 := openQueue(t, brokers, nil)
	subscribe(t, q2, "a")
	ds = take(t, q2, "a", 5, 15*time.Second)
	if got, want := idsOf(t, ds), idsOfEvents(evs[5:]); !slices.Equal(got, want) {
		t.Fatalf("after reopening: delivered %v, want %v", got, want)
	}
	takeNone(t, q2, "a", 300*time.Millisecond)

	// Out of order: record 6 acked, 5 not: nothing moves.
	ack(t, q2, "a", ds[1])
	time.Sleep(4 * q2.o.CommitInterval)
	if got := committed(t, brokers, group+".a", 0)[0]; got != 5 {
		t.Fatalf("committed %d with record 5 not acked", got)
	}
	// Then 5 acked: the commit moves past both.
	ack(t, q2, "a", ds[0])
	waitCommitted(t, brokers, group+".a", 7)
	if err := q2.Close(); err != nil {
		t.Fatal(err)
	}
	q3 := openQueue(t, brokers, nil)
	subscribe(t, q3, "a")
	ds = take(t, q3, "a", 3, 15*time.Second)
	if got, want := idsOf(t, ds), idsOfEvents(evs[7:]); !slices.Equal(got, want) {
		t.Fatalf("after reopening again: delivered %v, want %v", got, want)
	}
}

// A sink new to the config starts at the records written since it
// subscribed, not at the start of the topic: adding a Slack sink does not
// replay the retention's old leads into it. Once placed, its group resumes
// where it stopped.
func TestNewSinkStartsAtItsSubscription(t *testing.T) {
	for _, tc := range []struct {
		name   string
		margin time.Duration
		old    int // of the 6 events written just before, how many it gets
	}{
		{"no margin", time.Nanosecond, 0},
		{"default margin", 0, 6}, // a minute before: racing replicas cover each other
	} {
		t.Run(tc.name, func(t *testing.T) {
			brokers := newCluster(t, 3)
			q := openQueue(t, brokers, func(o *Options) { o.NewGroupMargin = tc.margin })
			before := newEvents(6, "t.a")
			enqueue(t, q, before...)          // before a existed
			time.Sleep(10 * time.Millisecond) // record times are in milliseconds
			subscribe(t, q, "a")
			if tc.old == 0 {
				waitCommittedAll(t, brokers, group+".a", endOffsets(t, brokers))
			}
			later := []*event.Event{newEvent(100, "t.a"), newEvent(101, "t.a")}
			enqueue(t, q, later...)
			want := idsOfEvents(append(before[:tc.old:tc.old], later...))
			got := idsOf(t, take(t, q, "a", len(want), 15*time.Second))
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Fatalf("a new sink got %v, want %v", got, want)
			}
			takeNone(t, q, "a", 300*time.Millisecond)
		})
	}
}

// Close commits what settled since the last commit.
func TestCloseCommits(t *testing.T) {
	brokers := newCluster(t, 1)
	q := openQueue(t, brokers, func(o *Options) { o.CommitInterval = time.Hour })
	subscribe(t, q, "a")
	evs := newEvents(4, "t.a")
	enqueue(t, q, evs...)
	ds := take(t, q, "a", 4, 15*time.Second)
	ack(t, q, "a", ds[:3]...)
	// 0 is where the new group was placed at Subscribe.
	if got := committed(t, brokers, group+".a", 0)[0]; got != 0 {
		t.Fatalf("committed %d before Close, with a commit interval of an hour", got)
	}
	waiting := make(chan error, 1)
	go func() {
		_, err := q.Next(context.Background(), "a", 1, 0)
		waiting <- err
	}()
	time.Sleep(50 * time.Millisecond)
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-waiting:
		if !errors.Is(err, queue.ErrClosed) {
			t.Errorf("Next waiting at Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Next still waiting after Close")
	}
	if got := committed(t, brokers, group+".a", 0)[0]; got != 3 {
		t.Fatalf("committed %d after Close, want 3", got)
	}
	if _, err := q.Next(context.Background(), "a", 1, 0); !errors.Is(err, queue.ErrClosed) {
		t.Errorf("Next after Close: %v", err)
	}
	if err := q.Subscribe("b"); !errors.Is(err, queue.ErrClosed) {
		t.Errorf("Subscribe after Close: %v", err)
	}
}

// A provider's retry (the same id enqueued again) is delivered once within
// the dedup window, its record committed all the same; with no window, it
// is delivered twice.
func TestDedup(t *testing.T) {
	for _, tc := range []struct {
		window time.Duration
		want   []string
	}{
		{time.Minute, []string{"ev-000", "ev-001"}},
		{0, []string{"ev-000", "ev-000", "ev-001"}},
	} {
		t.Run(tc.window.String(), func(t *testing.T) {
			brokers := newCluster(t, 1)
			var dropped atomic.Int32
			q := openQueue(t, brokers, func(o *Options) {
				o.DedupWindow = tc.window
				o.OnDuplicate = func(sink string, ev *event.Event) {
					if sink == "a" && ev.ID() == "ev-000" {
						dropped.Add(1)
					}
				}
			})
			subscribe(t, q, "a")
			ev := newEvent(0, "t.a")
			enqueue(t, q, ev)
			enqueue(t, q, ev)
			enqueue(t, q, newEvent(1, "t.a")) // behind both in the one partition
			ds := take(t, q, "a", len(tc.want), 15*time.Second)
			if got := idsOf(t, ds); !slices.Equal(got, tc.want) {
				t.Fatalf("delivered %v, want %v", got, tc.want)
			}
			takeNone(t, q, "a", 200*time.Millisecond)
			ack(t, q, "a", ds...)
			waitCommitted(t, brokers, group+".a", 3)
			if got, want := int(dropped.Load()), 3-len(tc.want); got != want {
				t.Errorf("OnDuplicate heard %d duplicates, want %d", got, want)
			}
		})
	}
}

// A provider's retry that a replica reads after another one (or itself,
// before a restart) delivered the first copy is still a duplicate: the
// reader reads back the ids before the first record it takes.
func TestDedupAcrossReplicas(t *testing.T) {
	for _, tc := range []struct {
		lookback int
		want     []string
	}{
		{0, []string{"ev-001"}}, // the default lookback
		{1, []string{"ev-000", "ev-001"}},
	} {
		t.Run(fmt.Sprint(tc.lookback), func(t *testing.T) {
			brokers := newCluster(t, 1)
			edit := func(o *Options) { o.DedupWindow, o.DedupLookback = time.Minute, tc.lookback }
			q1 := openQueue(t, brokers, edit)
			subscribe(t, q1, "a")
			enqueue(t, q1, newEvent(0, "t.a"))
			enqueue(t, q1, newEvent(2, "t.b")) // not for a: read and settled
			ack(t, q1, "a", take(t, q1, "a", 1, 15*time.Second)...)
			waitCommitted(t, brokers, group+".a", 2)
			if err := q1.Close(); err != nil {
				t.Fatal(err)
			}

			q2 := openQueue(t, brokers, edit)
			enqueue(t, q2, newEvent(0, "t.a")) // the provider's retry
			enqueue(t, q2, newEvent(1, "t.a"))
			subscribe(t, q2, "a")
			ds := take(t, q2, "a", len(tc.want), 15*time.Second)
			if got := idsOf(t, ds); !slices.Equal(got, tc.want) {
				t.Fatalf("delivered %v, want %v", got, tc.want)
			}
			takeNone(t, q2, "a", 200*time.Millisecond)
		})
	}
}

// A delivery a sink gives up on goes to the dead-letter topic with the
// dead-letter extensions, and its record is committed: no replica
// delivers it again.
func TestBury(t *testing.T) {
	brokers := newCluster(t, 1)
	q := openQueue(t, brokers, nil)
	subscribe(t, q, "a")
	ev0, ev1 := newEvent(0, "t.a"), newEvent(1, "t.a")
	enqueue(t, q, ev0, ev1)
	ds := take(t, q, "a", 2, 15*time.Second)
	if err := q.Attempted("a", ds[0].Seq, 2, "503"); err != nil {
		t.Fatal(err)
	}
	if err := q.Bury("a", ds[0].Seq, 3, "gave up after 3 attempts"); err != nil {
		t.Fatal(err)
	}
	// The second is forwarded to a dead-letter sink, which gives up too.
	if err := q.Forward("a", ds[1].Seq, "dl", queue.Failure{Reason: "boom"}); err != nil {
		t.Fatal(err)
	}
	fw := take(t, q, "dl", 1, time.Second)
	if err := q.Bury("dl", fw[0].Seq, 1, "dl is down"); err != nil {
		t.Fatal(err)
	}
	if err := q.Bury("a", ds[0].Seq, 3, "again"); err == nil {
		t.Error("Bury of a delivery no longer in flight succeeded")
	}

	msgs := readTopic(t, brokers, deadLetter, 2)
	for i, tc := range []struct {
		ev      *event.Event
		headers map[string]string // beside the event's
	}{
		{ev0, map[string]string{"ce_deadlettersink": "a", "ce_deadletterreason": "gave up after 3 attempts", "hookbridge_attempts": "3"}},
		// As the dead-letter sink was sent it; who gave up last and why
		// in headers of their own.
		{ev1, map[string]string{"ce_deadlettersink": "a", "ce_deadletterreason": "boom", "ce_knativeerrordest": "a",
			"hookbridge_sink": "dl", "hookbridge_reason": "dl is down (dead-lettered by a: boom)", "hookbridge_from": "a", "hookbridge_attempts": "1"}},
	} {
		m := msgs[i]
		if string(m.Key) != itemID(tc.ev) {
			t.Errorf("dead letter %d: key %q, want %q", i, m.Key, itemID(tc.ev))
		}
		h := headerMap(t, m)
		for k, v := range tc.headers {
			if h[k] != v {
				t.Errorf("dead letter %d: header %s %q, want %q (headers %v)", i, k, h[k], v, h)
			}
		}
		got, err := kafka.FromMessage(m)
		if err != nil {
			t.Fatalf("dead letter %d: %v", i, err)
		}
		sameEvent(t, got, tc.ev)
	}
	waitCommitted(t, brokers, group+".a", 2)
	if st := q.Stats(); st.DeadLetters != 2 || st.Events != 0 || !st.OldestPending.IsZero() || len(st.OldestPendingBySink) != 0 {
		t.Errorf("Stats %+v", st)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}

	// Another replica delivers neither again: the next event is the first.
	q2 := openQueue(t, brokers, nil)
	subscribe(t, q2, "a")
	enqueue(t, q2, newEvent(2, "t.a"))
	if got := idsOf(t, take(t, q2, "a", 1, 15*time.Second)); got[0] != "ev-002" {
		t.Fatalf("after reopening: delivered %v first", got)
	}
}

// A request body that could not be converted goes to the dead-letter topic
// as it came, with its source and the reason.
func TestReject(t *testing.T) {
	brokers := newCluster(t, 1)
	q := openQueue(t, brokers, nil)
	raw := []byte(`{"lead": not json`)
	if err := q.Reject("helloclient", raw, "invalid JSON"); err != nil {
		t.Fatal(err)
	}
	m := readTopic(t, brokers, deadLetter, 1)[0]
	if string(m.Value) != string(raw) {
		t.Errorf("value %q, want %q", m.Value, raw)
	}
	h := headerMap(t, m)
	if len(h) != 2 || h[HeaderSource] != "helloclient" || h[HeaderReason] != "invalid JSON" {
		t.Errorf("headers %v", h)
	}
	if st := q.Stats(); st.DeadLetters != 1 {
		t.Errorf("Stats().DeadLetters = %d", st.DeadLetters)
	}
	readTopic(t, brokers, ingress, 0)
}

// A delivery forwarded to a dead-letter sink reaches it with where it came
// from and why; its record is committed only once that sink acks it.
func TestForward(t *testing.T) {
	brokers := newCluster(t, 1)
	q := openQueue(t, brokers, nil)
	subscribe(t, q, "a")
	ev := newEvent(0, "t.a")
	enqueue(t, q, ev)
	d := take(t, q, "a", 1, 15*time.Second)[0]
	if err := q.Forward("a", d.Seq, "a", queue.Failure{Reason: "x"}); err == nil {
		t.Error("Forward to itself succeeded")
	}
	if err := q.Forward("a", d.Seq, "dl", queue.Failure{Reason: "HTTP 400", Status: 400, Answer: []byte("bad email")}); err != nil {
		t.Fatal(err)
	}
	if err := q.Ack("a", d.Seq); err == nil {
		t.Error("Ack of a forwarded delivery succeeded")
	}
	fw := take(t, q, "dl", 1, time.Second)[0]
	if fw.Sink != "dl" || fw.From != "a" || fw.Reason != "HTTP 400" || fw.Status != 400 || string(fw.Answer) != "bad email" || fw.Attempts != 0 {
		t.Errorf("forwarded delivery %s", describe(fw))
	}
	sameEvent(t, decode(t, fw), ev)
	time.Sleep(4 * q.o.CommitInterval)
	if got := committed(t, brokers, group+".a", 0)[0]; got != 0 {
		t.Fatalf("committed %d before the dead-letter sink acked", got)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}

	// Not acked by dl: another replica delivers it to a again.
	q2 := openQueue(t, brokers, nil)
	subscribe(t, q2, "a")
	d = take(t, q2, "a", 1, 15*time.Second)[0]
	sameEvent(t, decode(t, d), ev)
	if err := q2.Forward("a", d.Seq, "dl", queue.Failure{Reason: "HTTP 400"}); err != nil {
		t.Fatal(err)
	}
	fw = take(t, q2, "dl", 1, time.Second)[0]
	ack(t, q2, "dl", fw)
	waitCommitted(t, brokers, group+".a", 1)
}

// Release hands a delivery back ahead of every later one, with the
// attempts noted.
func TestRelease(t *testing.T) {
	brokers := newCluster(t, 1)
	q := openQueue(t, brokers, nil)
	subscribe(t, q, "a")
	evs := newEvents(5, "t.a")
	enqueue(t, q, evs...)
	waitPending(t, q, "a", 5)

	ds, err := q.Next(context.Background(), "a", 2, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := idsOf(t, ds); !slices.Equal(got, []string{"ev-000", "ev-001"}) {
		t.Fatalf("Next(2) = %v", got)
	}
	if err := q.Attempted("a", ds[1].Seq, 2, "timeout"); err != nil {
		t.Fatal(err)
	}
	if err := q.Release("a", ds[1].Seq); err != nil {
		t.Fatal(err)
	}
	if err := q.Release("a", ds[1].Seq); !errors.Is(err, queue.ErrNotInFlight) {
		t.Errorf("second Release: %v", err)
	}
	rest, err := q.Next(context.Background(), "a", 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := idsOf(t, rest); !slices.Equal(got, []string{"ev-001", "ev-002", "ev-003", "ev-004"}) {
		t.Fatalf("after Release: Next = %v", got)
	}
	if rest[0].Seq != ds[1].Seq || rest[0].Attempts != 2 {
		t.Errorf("released delivery came back as %s", describe(rest[0]))
	}
	// Released in reverse order, they come back in seq order.
	for _, i := range []int{3, 1} {
		if err := q.Release("a", rest[i].Seq); err != nil {
			t.Fatal(err)
		}
	}
	again, err := q.TryNext("a", 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := idsOf(t, again); !slices.Equal(got, []string{"ev-002", "ev-004"}) {
		t.Fatalf("after two Releases: Next = %v", got)
	}
}

// Two replicas in one group share the partitions: together they deliver
// each event once. When one leaves with deliveries not acked, the other
// delivers those again, and only those, within the session timeout.
func TestReplicas(t *testing.T) {
	brokers := newCluster(t, 3)
	q1 := openQueue(t, brokers, nil)
	// q2 commits only when it closes: when it takes q1's partitions over,
	// it reads its own again too, from the start, and must skip them.
	q2 := openQueue(t, brokers, func(o *Options) { o.CommitInterval = time.Hour })
	subscribe(t, q1, "a")
	subscribe(t, q2, "a")
	waitMembers(t, brokers, group+".a", 2)

	evs := newEvents(30, "t.a")
	enqueue(t, q1, evs...)
	got := map[*Queue][]queue.Delivery{}
	deadline := time.Now().Add(15 * time.Second)
	for len(got[q1])+len(got[q2]) < len(evs) {
		if time.Now().After(deadline) {
			t.Fatalf("delivered %d + %d of %d", len(got[q1]), len(got[q2]), len(evs))
		}
		for _, q := range []*Queue{q1, q2} {
			ds, err := q.TryNext("a", 100, 0)
			if err != nil {
				t.Fatal(err)
			}
			got[q] = append(got[q], ds...)
		}
		time.Sleep(10 * time.Millisecond)
	}
	seen := map[string]*Queue{}
	for _, q := range []*Queue{q1, q2} {
		if len(got[q]) == 0 {
			t.Errorf("a replica got no share")
		}
		for _, id := range idsOf(t, got[q]) {
			if seen[id] != nil {
				t.Errorf("%s delivered twice", id)
			}
			seen[id] = q
		}
	}
	for _, q := range []*Queue{q1, q2} {
		takeNone(t, q, "a", 200*time.Millisecond)
	}
	ack(t, q2, "a", got[q2]...)

	// q1 leaves with its deliveries not acked: q2 takes them over.
	left := time.Now()
	if err := q1.Close(); err != nil {
		t.Fatal(err)
	}
	again := take(t, q2, "a", len(got[q1]), q2.o.SessionTimeout)
	t.Logf("taken over in %v", time.Since(left))
	want := idsOf(t, got[q1])
	slices.Sort(want)
	have := idsOf(t, again)
	slices.Sort(have)
	if !slices.Equal(have, want) {
		t.Fatalf("q2 delivered %v again, want %v", have, want)
	}
	takeNone(t, q2, "a", 300*time.Millisecond)
}

// A replica that holds records of partitions a rebalance gives to another
// hands them back before the other starts: each record is delivered once,
// by one replica, none is lost (nor taken for a duplicate of itself when
// the replica that kept its partition reads it again), and the offsets
// end at the partitions' ends, never moving back.
func TestRebalanceDeliversEachRecordOnce(t *testing.T) {
	brokers := newCluster(t, 4)
	withDedup := func(o *Options) { o.DedupWindow = time.Hour } // as the bridge runs it
	q1 := openQueue(t, brokers, withDedup)
	subscribe(t, q1, "a")
	waitMembers(t, brokers, group+".a", 1)
	evs := spreadEvents(300, "t.a", 40)
	enqueue(t, q1, evs...)
	ends := endOffsets(t, brokers, 4)

	// Each replica delivers one event at a time, as a slow sink would, so
	// that the first holds most of the records when the second joins.
	var mu sync.Mutex
	deliveries := map[string][]string{} // id -> the replicas that delivered it
	deliver := func(q *Queue, name string, stop <-chan struct{}) {
		for {
			select {
			case <-stop:
				return
			default:
			}
			ds, err := q.TryNext("a", 1, 0)
			if err != nil {
				t.Error(err)
				return
			}
			if len(ds) == 0 {
				time.Sleep(5 * time.Millisecond)
				continue
			}
			if ds = send(t, q, "a", ds); len(ds) == 0 {
				continue // handed back in a rebalance
			}
			time.Sleep(3 * time.Millisecond)
			mu.Lock()
			for _, id := range idsOf(t, ds) {
				deliveries[id] = append(deliveries[id], name)
			}
			mu.Unlock()
			ack(t, q, "a", ds...)
		}
	}
	delivered := func() (n int) {
		mu.Lock()
		defer mu.Unlock()
		return len(deliveries)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { deliver(q1, "q1", stop) })
	for delivered() < 20 {
		time.Sleep(5 * time.Millisecond)
	}

	q2 := openQueue(t, brokers, withDedup)
	subscribe(t, q2, "a")
	wg.Go(func() { deliver(q2, "q2", stop) })
	waitMembers(t, brokers, group+".a", 2)
	deadline := time.Now().Add(20 * time.Second)
	for delivered() < len(evs) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	waitCommittedAll(t, brokers, group+".a", ends)
	time.Sleep(5 * q1.o.CommitInterval) // nothing more arrives, no commit moves back
	close(stop)
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	by := map[string]int{}
	for _, id := range idsOfEvents(evs) {
		switch ds := deliveries[id]; len(ds) {
		case 0:
			t.Errorf("%s not delivered", id)
		case 1:
			by[ds[0]]++
		default:
			t.Errorf("%s delivered %d times, by %v", id, len(ds), ds)
		}
	}
	if by["q2"] == 0 {
		t.Errorf("q2 delivered nothing: no partition moved to it")
	}
	if got := committed(t, brokers, group+".a", 0, 1, 2, 3); !maps.Equal(got, ends) {
		t.Errorf("committed %v, want the ends %v", got, ends)
	}
	t.Logf("delivered %d by q1, %d by q2", by["q1"], by["q2"])
}

// Deliveries under way when a rebalance begins are waited for, and
// committed with the ending generation, before the partitions move: the
// replica that takes a partition over is not handed them again.
func TestRebalanceWaitsForDeliveriesUnderWay(t *testing.T) {
	brokers, q1, evs, held := oneReplicaHolding(t, 2, 20, nil)
	underWay := send(t, q1, "a", held)

	q2 := openQueue(t, brokers, nil)
	subscribe(t, q2, "a")
	joined := time.Now()
	acked := make(chan time.Duration)
	go func() {
		time.Sleep(q1.o.SessionTimeout / 4) // within the wait, half the rebalance timeout
		ack(t, q1, "a", underWay...)
		acked <- time.Since(joined)
	}()
	waitMembers(t, brokers, group+".a", 2)
	t.Logf("deliveries under way ended %v after the second replica joined", <-acked)

	more := make([]*event.Event, 10)
	for i := range more {
		more[i] = newEvent(100+i, "t.a")
		more[i].SetSubject(fmt.Sprintf("sessions/%d", 100+i))
	}
	enqueue(t, q1, more...)
	ends := endOffsets(t, brokers, 2)
	old := map[string]bool{}
	for _, id := range idsOfEvents(evs) {
		old[id] = true
	}
	left := map[string]bool{}
	for _, id := range idsOfEvents(more) {
		left[id] = true
	}
	byQ2 := 0
	deadline := time.Now().Add(15 * time.Second)
	for len(left) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d of the new events not delivered", len(left))
		}
		for _, q := range []*Queue{q1, q2} {
			ds, err := q.TryNext("a", 100, 0)
			if err != nil {
				t.Fatal(err)
			}
			for _, id := range idsOf(t, ds) {
				if old[id] {
					t.Errorf("%s handed out again after its delivery ended", id)
				}
				delete(left, id)
				if q == q2 {
					byQ2++
				}
			}
			ack(t, q, "a", ds...)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if byQ2 == 0 {
		t.Errorf("q2 delivered none of the new events: no partition moved to it")
	}
	waitCommittedAll(t, brokers, group+".a", ends)
}

// Deliveries handed out and not under way (waiting for their batch, a
// rate limit, an open circuit breaker) are taken back at once when a
// rebalance begins: the partitions move without waiting for them, and the
// replica that held them learns, when it comes to send them, that they are
// no longer its own. Each record is then delivered once, by the replica
// its partition went to.
func TestRebalanceTakesBackDeliveriesNotUnderWay(t *testing.T) {
	var logs testlog.Buffer
	// q1 holds every event, and sends none.
	brokers, q1, evs, waiting := oneReplicaHolding(t, 2, 20, func(o *Options) {
		o.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})

	q2 := openQueue(t, brokers, nil)
	subscribe(t, q2, "a")
	joined := time.Now()
	by := map[string][]string{} // id -> the replicas that delivered it
	deliver := func(q *Queue, name string) {
		for _, d := range send(t, q, "a", tryNext(t, q, "a")) {
			id := decode(t, d).ID()
			by[id] = append(by[id], name)
			ack(t, q, "a", d)
		}
	}
	deadline := joined.Add(15 * time.Second)
	for len(by) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no record moved to the second replica")
		}
		deliver(q2, "q2")
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("the second replica was handed its first record %v after it joined", time.Since(joined))
	// The first replica comes to send what it held: none of it is its own
	// any more (its partitions were all handed back in the rebalance, and
	// those it kept are read again).
	for i, gone := range q1.Relinquished("a", seqsOf(waiting)) {
		if !gone {
			t.Errorf("%s was not taken back", decode(t, waiting[i]).ID())
		}
	}
	for len(by) < len(evs) && time.Now().Before(deadline) {
		deliver(q1, "q1")
		deliver(q2, "q2")
		time.Sleep(10 * time.Millisecond)
	}
	count := map[string]int{}
	for _, id := range idsOfEvents(evs) {
		if ds := by[id]; len(ds) != 1 {
			t.Errorf("%s delivered %d times, by %v", id, len(ds), ds)
		} else {
			count[ds[0]]++
		}
	}
	if count["q1"] == 0 || count["q2"] == 0 {
		t.Errorf("delivered %d by q1 and %d by q2: want some by each", count["q1"], count["q2"])
	}
	if strings.Contains(logs.String(), "deliveries still under way") {
		t.Errorf("the rebalance waited for deliveries that were not under way:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "handed back the records not delivered") {
		t.Errorf("the hand-back is not logged:\n%s", logs.String())
	}
}

// A delivery being retried when a rebalance begins is handed back; the
// replica that reads its record again goes on with the attempts spent,
// whether the partition stayed with the replica that spent them (the
// sticky assignment keeps most where they were) or moved to another, which
// reads them from the shared state.
func TestRebalanceKeepsAttempts(t *testing.T) {
	brokers, q1, evs, held := oneReplicaHolding(t, 4, 20, nil)
	for _, d := range send(t, q1, "a", held) {
		if err := q1.Attempted("a", d.Seq, 3, "503 Service Unavailable"); err != nil {
			t.Fatal(err)
		}
	}

	q2 := openQueue(t, brokers, nil)
	subscribe(t, q2, "a")
	waitMembers(t, brokers, group+".a", 2)
	attempts := map[string]map[string]int{"q1": {}, "q2": {}} // replica -> id -> attempts handed out with
	deadline := time.Now().Add(15 * time.Second)
	for len(attempts["q1"])+len(attempts["q2"]) < len(evs) {
		if time.Now().After(deadline) {
			t.Fatalf("delivered %d and %d of %d", len(attempts["q1"]), len(attempts["q2"]), len(evs))
		}
		for name, q := range map[string]*Queue{"q1": q1, "q2": q2} {
			for _, d := range send(t, q, "a", tryNext(t, q, "a")) {
				attempts[name][decode(t, d).ID()] = d.Attempts
				ack(t, q, "a", d)
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	for name := range attempts {
		if len(attempts[name]) == 0 {
			t.Errorf("%s delivered none: want some by each replica", name)
		}
		for id, n := range attempts[name] {
			if n != 3 {
				t.Errorf("%s handed out %s with %d attempts spent, want 3", name, id, n)
			}
		}
	}
	// Delivered, their records' attempts leave the shared state.
	waitAttemptsKept(t, q2)
}

// Large records fill MaxHeldBytes long before MaxHeld: the reader holds
// what fits (and one record even when it alone is over), and acks let it
// read on.
func TestMaxHeldBytes(t *testing.T) {
	brokers := newCluster(t, 1)
	q := openQueue(t, brokers, func(o *Options) { o.MaxHeldBytes = 50 << 10 })
	subscribe(t, q, "a")
	evs := newEvents(12, "t.a")
	note := strings.Repeat("chat log line\n", 10<<10/14) // about 10 KiB a record
	for i, ev := range evs {
		if i == 11 {
			note = strings.Repeat("x", 80<<10) // one record over the bound by itself
		}
		if err := ev.SetData(event.ApplicationJSON, map[string]any{"n": i, "note": note}); err != nil {
			t.Fatal(err)
		}
	}
	enqueue(t, q, evs...)
	waitPending(t, q, "a", 5) // 5 x 10 KiB: the bound
	time.Sleep(300 * time.Millisecond)
	if n := q.Stats().Pending["a"]; n != 5 {
		t.Fatalf("%d records held, want 5 (50 KiB of 10 KiB records)", n)
	}
	var delivered []string
	for len(delivered) < len(evs) {
		ds := take(t, q, "a", 1, 5*time.Second)
		delivered = append(delivered, idsOf(t, ds)...)
		ack(t, q, "a", ds...)
	}
	if want := idsOfEvents(evs); !slices.Equal(delivered, want) {
		t.Errorf("delivered %v, want %v", delivered, want)
	}
}

// A sink's reader holds at most MaxHeld records not settled; acks let it
// read on.
func TestMaxHeld(t *testing.T) {
	brokers := newCluster(t, 3)
	q := openQueue(t, brokers, func(o *Options) { o.MaxHeld = 10 })
	subscribe(t, q, "a")
	evs := newEvents(50, "t.a")
	enqueued := time.Now()
	enqueue(t, q, evs...)
	waitPending(t, q, "a", 10)
	if st := q.Stats(); st.Events != 10 || st.OldestPending.Before(enqueued.Add(-time.Second)) || st.OldestPending.After(time.Now()) {
		t.Errorf("Stats: %d events, oldest %v (enqueued at %v)", st.Events, st.OldestPending, enqueued)
	} else if got := st.OldestPendingBySink; len(got) != 1 || !got["a"].Equal(st.OldestPending) {
		t.Errorf("Stats: oldest by sink %v, want a's at %v", got, st.OldestPending)
	}
	ds := take(t, q, "a", 3, time.Second) // in flight count as held too
	time.Sleep(300 * time.Millisecond)
	if n := q.Stats().Pending["a"]; n != 10 {
		t.Fatalf("%d deliveries held, want 10", n)
	}
	ds = append(ds, take(t, q, "a", 7, time.Second)...)
	takeNone(t, q, "a", 200*time.Millisecond)

	acked := ds[:4]
	ack(t, q, "a", acked...)
	ds = append(ds[4:], take(t, q, "a", 4, 5*time.Second)...)
	takeNone(t, q, "a", 200*time.Millisecond)
	if n := q.Stats().Pending["a"]; n != 10 {
		t.Fatalf("%d deliveries held after 4 acks, want 10", n)
	}

	// Acking as they come, every event arrives once.
	seen := map[string]bool{}
	for _, id := range append(idsOf(t, acked), idsOf(t, ds)...) {
		seen[id] = true
	}
	ack(t, q, "a", ds...)
	for len(seen) < len(evs) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		ds, err := q.Next(ctx, "a", 100, 0)
		cancel()
		if err != nil {
			t.Fatalf("after %d: %v", len(seen), err)
		}
		if n := q.Stats().Pending["a"]; n > 10 {
			t.Fatalf("%d deliveries held", n)
		}
		for _, id := range idsOf(t, ds) {
			if seen[id] {
				t.Fatalf("%s delivered twice", id)
			}
			seen[id] = true
		}
		ack(t, q, "a", ds...)
	}
}

func TestDedupWindow(t *testing.T) {
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return t0.Add(d) }

	t.Run("expiry", func(t *testing.T) {
		d := newDedupWindow(time.Minute, 100)
		for _, step := range []struct {
			key  string
			at   time.Duration
			seen bool
		}{
			{"x", 0, false},
			{"x", 30 * time.Second, true},
			{"y", 40 * time.Second, false},
			{"x", 59 * time.Second, true},
			{"x", 60 * time.Second, false}, // a window after it was read: forgotten, read anew
			{"y", 99 * time.Second, true},
			{"y", 100 * time.Second, false},
			{"x", 119 * time.Second, true},
		} {
			if got := d.seen(step.key, at(step.at)); got != step.seen {
				t.Fatalf("seen(%s) at %v = %v, want %v", step.key, step.at, got, step.seen)
			}
		}
		if len(d.at) != 2 || len(d.order) != 2 {
			t.Errorf("remembers %d keys, %d in order, want 2", len(d.at), len(d.order))
		}
	})

	t.Run("max ids", func(t *testing.T) {
		d := newDedupWindow(time.Hour, 3)
		for i, key := range []string{"a", "b", "c"} {
			if d.seen(key, at(time.Duration(i)*time.Second)) {
				t.Fatalf("%s seen before it was read", key)
			}
		}
		// Full: looking up the ids it holds forgets none of them.
		for range 2 {
			for _, key := range []string{"a", "b", "c"} {
				if !d.seen(key, at(10*time.Second)) {
					t.Fatalf("%s forgotten with 3 ids read and room for 3", key)
				}
			}
		}
		// A fourth id pushes out the oldest.
		if d.seen("d", at(20*time.Second)) {
			t.Fatal("d seen before it was read")
		}
		if len(d.at) != 3 || len(d.order) != 3 {
			t.Errorf("remembers %d keys, %d in order, want 3", len(d.at), len(d.order))
		}
		for _, key := range []string{"b", "c", "d"} {
			if !d.seen(key, at(21*time.Second)) {
				t.Errorf("%s forgotten", key)
			}
		}
		if d.seen("a", at(22*time.Second)) {
			t.Error("a still remembered past the limit")
		}
	})
}

// Every subscribed sink has its hookbridge_queue_pending series from the
// start, at 0 while this replica holds nothing for it, as with the embedded
// queue, so that an alert on it sees a 0 and not an absent series; a sink
// that leaves the config loses its series.
func TestPendingOfEverySubscribedSinkIsExported(t *testing.T) {
	brokers := newCluster(t, 1)
	q := openQueue(t, brokers, nil)
	m := metrics.New()
	m.WatchQueue(func() metrics.QueueStats {
		st := q.Stats()
		return metrics.QueueStats{Pending: st.Pending, OldestPending: st.OldestPending, DeadLetters: st.DeadLetters}
	})
	series := func() map[string]float64 {
		t.Helper()
		families, err := m.Registry.Gather()
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]float64{}
		for _, f := range families {
			if f.GetName() != "hookbridge_queue_pending" {
				continue
			}
			for _, s := range f.GetMetric() {
				for _, l := range s.GetLabel() {
					if l.GetName() == "sink" {
						out[l.GetValue()] = s.GetGauge().GetValue()
					}
				}
			}
		}
		return out
	}

	if got := series(); len(got) != 0 {
		t.Errorf("before any sink subscribed: %v", got)
	}
	subscribe(t, q, "a", "b")
	if got, want := series(), map[string]float64{"a": 0, "b": 0}; !maps.Equal(got, want) {
		t.Errorf("subscribed, nothing read: %v, want %v", got, want)
	}
	enqueue(t, q, newEvent(1, "t.a"))
	waitPending(t, q, "a", 1)
	if got, want := series(), map[string]float64{"a": 1, "b": 0}; !maps.Equal(got, want) {
		t.Errorf("one event held for a: %v, want %v", got, want)
	}
	q.Unsubscribe("b")
	if got, want := series(), map[string]float64{"a": 1}; !maps.Equal(got, want) {
		t.Errorf("after b left: %v, want %v", got, want)
	}
}

// Unsubscribe drops the sink's own deliveries, to be read again when it
// returns (each once, even when it leaves while its reader is busy), and
// sends deliveries other sinks forwarded to it to the dead-letter topic.
func TestUnsubscribe(t *testing.T) {
	brokers := newCluster(t, 1)
	q := openQueue(t, brokers, nil)
	subscribe(t, q, "b")
	fwd := newEvent(9999, "t.b")
	enqueue(t, q, fwd)
	d := take(t, q, "b", 1, 15*time.Second)[0]
	if err := q.Forward("b", d.Seq, "a", queue.Failure{Reason: "HTTP 400"}); err != nil {
		t.Fatal(err)
	}

	evs := newEvents(2000, "t.a")
	// Leave while the reader is pushing deliveries, several times.
	for round := range 5 {
		subscribe(t, q, "a")
		if round == 0 {
			// a's new group starts after the record forwarded above.
			waitCommitted(t, brokers, group+".a", 1)
			enqueue(t, q, evs...)
		}
		waitPending(t, q, "a", 20*(round+1), true)
		q.Unsubscribe("a")
		if n := q.Stats().Pending["a"]; n != 0 {
			t.Fatalf("round %d: %d deliveries pending for a after Unsubscribe", round, n)
		}
		if round == 0 {
			m := readTopic(t, brokers, deadLetter, 1)[0]
			h := headerMap(t, m)
			if string(m.Key) != itemID(fwd) || h["ce_deadlettersink"] != "b" || h["ce_deadletterreason"] != "HTTP 400" ||
				h["hookbridge_sink"] != "a" || h["hookbridge_reason"] != "a: no longer in the config (dead-lettered by b: HTTP 400)" {
				t.Errorf("dead letter %q: headers %v", m.Key, h)
			}
			// Nothing else is for b: its group commits the whole partition.
			waitCommitted(t, brokers, group+".b", int64(len(evs)+1))
		}
	}
	time.Sleep(50 * time.Millisecond)
	if n := q.Stats().Pending["a"]; n != 0 {
		t.Fatalf("%d deliveries pending for a after Unsubscribe", n)
	}

	subscribe(t, q, "a")
	seen := map[string]bool{}
	for len(seen) < len(evs) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		ds, err := q.Next(ctx, "a", 500, 0)
		cancel()
		if err != nil {
			t.Fatalf("after %d: %v", len(seen), err)
		}
		for _, id := range idsOf(t, ds) {
			if seen[id] {
				t.Fatalf("%s delivered twice", id)
			}
			seen[id] = true
		}
		ack(t, q, "a", ds...)
	}
	takeNone(t, q, "a", 200*time.Millisecond)
}

// A broker that takes the connection and never answers gets Enqueue an
// error within WriteTimeout, so the provider is answered 503 in time
// rather than waiting for kafka-go's retries.
func TestEnqueueGivesUpInTime(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() }) // held open, never answered
		}
	}()
	q := openQueue(t, []string{ln.Addr().String()}, func(o *Options) { o.WriteTimeout = 300 * time.Millisecond })
	start := time.Now()
	_, err = q.Enqueue(context.Background(), []queue.Item{itemOf(t, newEvent(0, "t.a"))})
	took := time.Since(start)
	if err == nil {
		t.Fatal("Enqueue to a silent broker succeeded")
	}
	if took > 2*time.Second {
		t.Errorf("Enqueue took %s to give up, with a write timeout of 300ms", took)
	}
	t.Logf("gave up after %s: %v", took, err)
}

func TestOpenAndEnqueueCheck(t *testing.T) {
	for _, o := range []Options{
		{Topic: ingress, Group: group, Route: routeByType},
		{Brokers: []string{"127.0.0.1:1"}, Group: group, Route: routeByType},
		{Brokers: []string{"127.0.0.1:1"}, Topic: ingress, Route: routeByType},
		{Brokers: []string{"127.0.0.1:1"}, Topic: ingress, Group: group},
	} {
		if q, err := Open(o); err == nil {
			_ = q.Close()
			t.Errorf("Open(%+v) succeeded", o)
		}
	}
	if q := openQueue(t, []string{"127.0.0.1:1"}, nil); q.o.DeadLetterTopic != deadLetter || q.o.Topic != ingress {
		t.Errorf("topics %s, %s", q.o.Topic, q.o.DeadLetterTopic)
	}

	// A batch with an item that is not right is refused whole.
	brokers := newCluster(t, 1)
	q := openQueue(t, brokers, nil)
	item := itemOf(t, newEvent(0, "t.a"))
	for _, bad := range []queue.Item{
		{ID: "", Event: item.Event},
		{ID: item.ID},
		{ID: item.ID, Event: []byte("not an event")},
	} {
		if _, err := q.Enqueue(context.Background(), []queue.Item{item, bad}); err == nil {
			t.Errorf("Enqueue of %q, %q succeeded", bad.ID, bad.Event)
		}
	}
	readTopic(t, brokers, ingress, 0)
}

// Every connection the queue makes (ingest, each sink's group, placing a
// new group, reading ids back, dead letters, measuring lag) goes over TLS
// with SASL when the brokers ask for them.
func TestOverTLSAndSASL(t *testing.T) {
	brokerOpts, secureConn := tlsAndSASL(t)
	brokers := newCluster(t, 1, brokerOpts...)
	secure := func(o *Options) {
		secureConn(o)
		o.DedupWindow = time.Minute
		fastLag(o)
	}
	q1 := openQueue(t, brokers, secure)
	subscribe(t, q1, "a")
	enqueue(t, q1, newEvent(0, "t.a"), newEvent(1, "t.a"))
	ds := take(t, q1, "a", 2, 15*time.Second)
	ack(t, q1, "a", ds[0])
	if err := q1.Bury("a", ds[1].Seq, 3, "HTTP 400"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for q1.Stats().DeadLetters != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the dead letter was not written")
		}
		time.Sleep(10 * time.Millisecond)
	}
	waitLag(t, q1, "a", 0)
	if err := q1.Close(); err != nil { // commits both
		t.Fatal(err)
	}
	// A second replica starts after both, and reads back the ids before
	// where it starts: the provider's retry of ev-000 is a duplicate.
	q2 := openQueue(t, brokers, secure)
	enqueue(t, q2, newEvent(0, "t.a"), newEvent(2, "t.a"))
	subscribe(t, q2, "a")
	if got := idsOf(t, take(t, q2, "a", 1, 15*time.Second)); !slices.Equal(got, []string{"ev-002"}) {
		t.Fatalf("second replica got %v, want [ev-002]", got)
	}
}
