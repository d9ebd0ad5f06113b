package queue

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// deliveryModel is what the store must hold, kept the simple way: every
// pending delivery as a record of its own.
type deliveryModel struct {
	pending map[string][]*modelRecord // per sink, not handed out
	held    map[string][]*modelRecord // per sink, handed out (in flight)
	dead    []*modelRecord            // buried, not replayed
}

type modelRecord struct {
	id       string
	body     []byte
	seq      uint64 // once handed out
	attempts int    // persisted attempts
	from     string
	// carried marks a record that carries its own body (the event went to
	// one sink, or was forwarded from such a record, or replayed); others
	// share their event's body with the records of the same id.
	carried bool
}

// events is how many bodies the store should count: one per record that
// carries its own, one per event whose shared body some record still uses.
func (m *deliveryModel) events() int {
	n := 0
	shared := make(map[string]bool)
	for _, recs := range []map[string][]*modelRecord{m.pending, m.held} {
		for _, rs := range recs {
			for _, r := range rs {
				if r.carried {
					n++
				} else {
					shared[r.id] = true
				}
			}
		}
	}
	return n + len(shared)
}

// TestDeliveriesMatchModel runs random sequences of every operation on
// deliveries (enqueue to one or several sinks, hand out, acknowledge,
// record an attempt, release, forward to a dead-letter sink, bury, replay,
// restart) against a model, checking every body handed out, the counts
// after every step, and an empty store at the end. It covers both ways a
// body is kept: inside the pending record of an event that goes to one sink,
// and shared by the records of an event that goes to several.
func TestDeliveriesMatchModel(t *testing.T) {
	for run := range 4 {
		t.Run(fmt.Sprint(run), func(t *testing.T) {
			seed := uint64(time.Now().UnixNano())
			t.Logf("seed %d", seed)
			testDeliveriesMatchModel(t, rand.New(rand.NewPCG(seed, uint64(run))))
		})
	}
}

func testDeliveriesMatchModel(t *testing.T, rng *rand.Rand) {
	sinks := []string{"a", "b", "c"}
	const dlq = "dlq"
	opts := Options{Path: t.TempDir()}
	s := openStore(t, opts)
	m := &deliveryModel{pending: map[string][]*modelRecord{}, held: map[string][]*modelRecord{}}
	nextID := 0

	// pickHeld removes and returns a random handed-out record, or nil.
	pickHeld := func() (string, *modelRecord) {
		var names []string
		for name, rs := range m.held {
			if len(rs) > 0 {
				names = append(names, name)
			}
		}
		if len(names) == 0 {
			return "", nil
		}
		slices.Sort(names)
		name := names[rng.IntN(len(names))]
		i := rng.IntN(len(m.held[name]))
		r := m.held[name][i]
		m.held[name] = slices.Delete(m.held[name], i, i+1)
		return name, r
	}

	for step := range 400 {
		switch op := rng.IntN(100); {
		case op < 25: // enqueue one to three events, each to one to three sinks
			var items []Item
			for range 1 + rng.IntN(3) {
				id := fmt.Sprintf("ev-%d", nextID)
				nextID++
				targets := slices.Clone(sinks)
				rng.Shuffle(len(targets), func(i, j int) { targets[i], targets[j] = targets[j], targets[i] })
				targets = targets[:1+rng.IntN(len(targets))]
				items = append(items, Item{ID: id, Event: []byte(`{"id":"` + id + `","n":` + fmt.Sprint(rng.IntN(1e6)) + `}`), Sinks: targets})
			}
			if dup := enqueue(t, s, items...); slices.Contains(dup, true) {
				t.Fatalf("step %d: new ids reported as duplicates: %v", step, dup)
			}
			for _, it := range items {
				for _, sink := range it.Sinks {
					m.pending[sink] = append(m.pending[sink], &modelRecord{id: it.ID, body: it.Event, carried: len(it.Sinks) == 1})
				}
			}
		case op < 45: // hand out
			sink := append(slices.Clone(sinks), dlq)[rng.IntN(len(sinks)+1)]
			// Sometimes within a byte limit: of about one event, or a few.
			ds, err := s.TryNext(sink, 1+rng.IntN(4), []int{0, 0, 1, 60, 150}[rng.IntN(5)])
			must(t, err)
			for _, d := range ds {
				// A record handed out before keeps its seq; the others are
				// handed out in the order they were made, as the model
				// lists them (one event may be pending twice for a sink,
				// once as itself and once replayed).
				i := slices.IndexFunc(m.pending[sink], func(r *modelRecord) bool { return r.seq == d.Seq })
				if i < 0 {
					i = slices.IndexFunc(m.pending[sink], func(r *modelRecord) bool { return r.seq == 0 })
				}
				if i < 0 {
					t.Fatalf("step %d: %s handed out %+v, which the model does not hold pending", step, sink, d)
				}
				if r := m.pending[sink][i]; !bytes.Equal(r.body, d.Event) || r.from != d.From || r.attempts != d.Attempts {
					t.Fatalf("step %d: %s handed out %+v, the model's next is %+v", step, sink, d, r)
				}
				r := m.pending[sink][i]
				r.seq = d.Seq
				m.pending[sink] = slices.Delete(m.pending[sink], i, i+1)
				m.held[sink] = append(m.held[sink], r)
			}
		case op < 60: // acknowledge one, or all of a sink's
			sink, r := pickHeld()
			if r == nil {
				continue
			}
			if rng.IntN(3) > 0 {
				must(t, s.Ack(sink, r.seq))
				continue
			}
			seqs := []uint64{r.seq}
			for _, o := range m.held[sink] {
				seqs = append(seqs, o.seq)
			}
			must(t, s.AckAll(sink, seqs...))
			m.held[sink] = nil
		case op < 70: // a failed attempt, then maybe released
			sink, r := pickHeld()
			if r == nil {
				continue
			}
			r.attempts++
			must(t, s.Attempted(sink, r.seq, r.attempts, "HTTP 503"))
			if rng.IntN(2) == 0 {
				must(t, s.Release(sink, r.seq))
				m.pending[sink] = append(m.pending[sink], r)
			} else {
				m.held[sink] = append(m.held[sink], r)
			}
		case op < 78: // forward to the dead-letter sink
			sink, r := pickHeld()
			if r == nil {
				continue
			}
			if sink == dlq {
				m.held[sink] = append(m.held[sink], r)
				continue
			}
			must(t, s.Forward(sink, r.seq, dlq, Failure{Reason: "gave up"}))
			m.pending[dlq] = append(m.pending[dlq], &modelRecord{id: r.id, body: r.body, from: sink, carried: r.carried})
		case op < 85: // bury
			sink, r := pickHeld()
			if r == nil {
				continue
			}
			must(t, s.Bury(sink, r.seq, r.attempts, "gave up"))
			m.dead = append(m.dead, r)
		case op < 92: // replay a dead letter to a sink
			dead, err := s.DeadLetters(0)
			must(t, err)
			if len(dead) != len(m.dead) {
				t.Fatalf("step %d: %d dead letters, model %d", step, len(dead), len(m.dead))
			}
			if len(dead) == 0 {
				continue
			}
			d := dead[rng.IntN(len(dead))]
			i := slices.IndexFunc(m.dead, func(r *modelRecord) bool { return bytes.Equal(r.body, d.Event) })
			if i < 0 {
				t.Fatalf("step %d: dead letter %+v not in the model", step, d)
			}
			id := m.dead[i].id
			m.dead = slices.Delete(m.dead, i, i+1)
			target := sinks[rng.IntN(len(sinks))]
			must(t, s.Replay(d.Key, target))
			m.pending[target] = append(m.pending[target], &modelRecord{id: id, body: d.Event, carried: true})
		default: // restart: what was handed out is pending again
			must(t, s.Close())
			s = openStore(t, opts)
			for sink, rs := range m.held {
				m.pending[sink] = append(m.pending[sink], rs...)
				m.held[sink] = nil
			}
		}

		st := s.Stats()
		for _, sink := range append(slices.Clone(sinks), dlq) {
			if want := len(m.pending[sink]) + len(m.held[sink]); st.Pending[sink] != want {
				t.Fatalf("step %d: Stats.Pending[%s] = %d, model %d", step, sink, st.Pending[sink], want)
			}
		}
		if st.Events != m.events() || st.DeadLetters != len(m.dead) {
			t.Fatalf("step %d: Stats.Events %d, DeadLetters %d; model %d, %d", step, st.Events, st.DeadLetters, m.events(), len(m.dead))
		}
	}

	// Everything still pending is delivered with its body, once more after
	// a restart for good measure, and the store is left empty.
	must(t, s.Close())
	s = openStore(t, opts)
	for _, sink := range append(slices.Clone(sinks), dlq) {
		want := append(m.pending[sink], m.held[sink]...)
		got := drain(t, s, sink)
		if len(got) != len(want) {
			t.Fatalf("%s drained %d, model %d", sink, len(got), len(want))
		}
		for _, d := range got {
			i := slices.IndexFunc(want, func(r *modelRecord) bool { return bytes.Equal(r.body, d.Event) && r.from == d.From })
			if i < 0 {
				t.Fatalf("%s drained %+v, not in the model", sink, d)
			}
			want = slices.Delete(want, i, i+1)
		}
	}
	assertEmpty(t, s)
}
