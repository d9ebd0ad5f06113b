package inspect

import (
	"errors"
	"fmt"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
)

func TestRecorderKeepsTheLatestEvents(t *testing.T) {
	r := NewRecorder(3)
	for i := 1; i <= 5; i++ {
		ev, b := newEvent(t, fmt.Sprintf("ev-%d", i), "s")
		r.Accepted("helloclient", ev, []string{"archive"}, b)
	}
	dup, b := newEvent(t, "ev-5", "s")
	r.Accepted("helloclient", dup, []string{"other"}, b) // a duplicate changes nothing
	got := r.Recent(0)
	var ids []string
	for _, e := range got {
		ids = append(ids, e.ID)
	}
	if fmt.Sprint(ids) != "[ev-5 ev-4 ev-3]" {
		t.Fatalf("recent %v, want [ev-5 ev-4 ev-3]", ids)
	}
	if len(got[0].Sinks) != 1 || got[0].Sinks[0] != "archive" {
		t.Errorf("sinks %v after a duplicate", got[0].Sinks)
	}
	first, _ := newEvent(t, "ev-1", "s")
	if _, ok := r.Get(Key(first)); ok {
		t.Error("the oldest event is still there")
	}
	// Attempts of a forgotten event are ignored.
	r.Attempted("archive", first, 1, nil, true, "")
}

// Two sources may send the same id: each event keeps its own attempts,
// also once the other is forgotten, and a forgotten id leaves nothing
// behind.
func TestRecorderAttemptsOfEventsSharingAnID(t *testing.T) {
	r := NewRecorder(2)
	a, b := newEvent(t, "same", "s")
	other, ob := newEvent(t, "same", "s")
	other.SetSource("https://crisp.chat/websites/w1")
	r.Accepted("helloclient", a, []string{"archive"}, b)
	r.Accepted("crisp", other, []string{"archive"}, ob)
	r.Attempted("archive", other, 1, nil, true, "")
	third, tb := newEvent(t, "third", "s")
	r.Accepted("helloclient", third, []string{"archive"}, tb) // forgets a
	r.Attempted("archive", a, 1, nil, true, "")               // ignored
	r.Attempted("archive", other, 2, nil, true, "")
	if _, ok := r.Get(Key(a)); ok {
		t.Fatal("the oldest event is still there")
	}
	e, ok := r.Get(Key(other))
	if !ok || len(e.Attempts) != 2 {
		t.Fatalf("the other source's event: %v, %+v; want its two attempts", ok, e.Attempts)
	}
	fourth, fb := newEvent(t, "fourth", "s")
	r.Accepted("helloclient", fourth, []string{"archive"}, fb) // forgets other
	if n := len(r.ids); n != 2 || r.ids["same"] != 0 {
		t.Errorf("ids %v, want third and fourth only", r.ids)
	}
}

func TestRecorderStatusPerSink(t *testing.T) {
	fail := errors.New("boom")
	cases := []struct {
		name     string
		attempts func(r *Recorder, ev *event.Event)
		want     map[string]string
	}{
		{"untried", func(r *Recorder, ev *event.Event) {}, map[string]string{"a": StatusPending, "b": StatusPending}},
		{"delivered and retrying", func(r *Recorder, ev *event.Event) {
			r.Attempted("a", ev, 1, nil, true, "")
			r.Attempted("b", ev, 1, fail, false, "")
		}, map[string]string{"a": StatusDelivered, "b": StatusRetrying}},
		{"forwarded to a dead-letter sink", func(r *Recorder, ev *event.Event) {
			r.Attempted("a", ev, 3, fail, true, "dl")
			r.Attempted("dl", ev, 1, nil, true, "")
		}, map[string]string{"a": StatusDeadLettered, "b": StatusPending, "dl": StatusDelivered}},
		{"replayed then delivered", func(r *Recorder, ev *event.Event) {
			r.Attempted("a", ev, 1, fail, true, "store")
			r.Replayed(ev, "a", nil)
			r.Attempted("a", ev, 1, nil, true, "")
		}, map[string]string{"a": StatusDelivered, "b": StatusPending}},
		{"replayed, not yet tried", func(r *Recorder, ev *event.Event) {
			r.Attempted("b", ev, 1, fail, true, "store")
			r.Replayed(ev, "b", nil)
		}, map[string]string{"a": StatusPending, "b": StatusPending}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := NewRecorder(10)
			ev, b := newEvent(t, "x", "s")
			r.Accepted("helloclient", ev, []string{"a", "b"}, b)
			c.attempts(r, ev)
			e, ok := r.Get(Key(ev))
			if !ok || fmt.Sprint(e.Status) != fmt.Sprint(c.want) {
				t.Fatalf("status %v, want %v", e.Status, c.want)
			}
		})
	}
}

func TestRecorderTakesBackAFailedReplay(t *testing.T) {
	r := NewRecorder(10)
	ev, b := newEvent(t, "x", "s")
	r.Accepted("helloclient", ev, []string{"a"}, b)
	r.Attempted("a", ev, 1, errors.New("400"), true, "store")
	before, _ := r.Get(Key(ev))

	undo := r.replayed(ev, "b", b)
	during, _ := r.Get(Key(ev))
	if during.Status["b"] != StatusPending || len(during.Attempts) != 2 {
		t.Fatalf("during the replay: %+v", during)
	}
	undo()
	after, _ := r.Get(Key(ev))
	if fmt.Sprint(after.Sinks, after.Attempts, after.Status) != fmt.Sprint(before.Sinks, before.Attempts, before.Status) {
		t.Fatalf("after undo\n got %v %v %v\nwant %v %v %v", after.Sinks, after.Attempts, after.Status, before.Sinks, before.Attempts, before.Status)
	}
}

// The recorder forgets its oldest entries once their events take more than
// its byte budget, and keeps the newest even when it alone is over it.
func TestRecorderKeepsItsEventsWithinItsByteBudget(t *testing.T) {
	r := NewRecorder(100)
	r.maxBytes = 1000
	body := func(n int) []byte { return fmt.Appendf(nil, `{"pad":"%0*d"}`, n-10, 0) }
	for i := 1; i <= 5; i++ {
		ev, _ := newEvent(t, fmt.Sprintf("ev-%d", i), "s")
		r.Accepted("helloclient", ev, []string{"archive"}, body(300))
	}
	recent := func() string {
		var ids []string
		for _, e := range r.Recent(0) {
			ids = append(ids, e.ID)
		}
		return fmt.Sprint(ids)
	}
	if got := recent(); got != "[ev-5 ev-4 ev-3]" {
		t.Fatalf("recent %s with 300-byte events and a 1000-byte budget, want [ev-5 ev-4 ev-3]", got)
	}
	if r.bytes != 900 {
		t.Errorf("%d bytes kept, want 900", r.bytes)
	}
	big, _ := newEvent(t, "big", "s")
	r.Accepted("helloclient", big, []string{"archive"}, body(5000))
	if got := recent(); got != "[big]" {
		t.Errorf("recent %s after an event over the whole budget, want [big]", got)
	}
	if e, ok := r.Get(Key(big)); !ok || len(e.Event) != 5000 {
		t.Errorf("the newest event is not kept whole")
	}
	for i := 6; i <= 8; i++ {
		ev, _ := newEvent(t, fmt.Sprintf("ev-%d", i), "s")
		r.Accepted("helloclient", ev, []string{"archive"}, body(300))
	}
	if got := recent(); got != "[ev-8 ev-7 ev-6]" || r.bytes != 900 || len(r.ids) != 3 || len(r.byKey) != 3 {
		t.Errorf("recent %s, %d bytes, %d ids, %d keys; want [ev-8 ev-7 ev-6], 900, 3, 3", got, r.bytes, len(r.ids), len(r.byKey))
	}
}
