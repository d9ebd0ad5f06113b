package inspect

import (
	"encoding/json"
	"slices"
	"sync"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
)

// Outcomes of an Attempt.
const (
	OutcomeDelivered    = "delivered"     // the sink took the event
	OutcomeFailed       = "failed"        // the sink failed; the event will be tried again
	OutcomeDeadLettered = "dead_lettered" // the sink gave up; see Attempt.DeadLetter
	OutcomeReplayed     = "replayed"      // a dead letter was queued again for the sink
)

// Statuses of an event at one sink, as Entry.Status reports them.
const (
	StatusPending      = "pending"       // queued, not tried yet (or replayed)
	StatusRetrying     = "retrying"      // tried, failed, will be tried again
	StatusDelivered    = "delivered"     // delivered
	StatusDeadLettered = "dead_lettered" // given up on
)

// ExtBridgeSource is the CloudEvent extension naming the bridge source (the
// YAML name) that received an event.
const ExtBridgeSource = "bridgesource"

// Attempt is one delivery try of an event at a sink (or its replay).
type Attempt struct {
	Sink       string    `json:"sink"`
	Attempt    int       `json:"attempt"`
	At         time.Time `json:"at"`
	Outcome    string    `json:"outcome"` // one of the Outcome constants
	Error      string    `json:"error,omitempty"`
	DeadLetter string    `json:"dead_letter,omitempty"` // where a dead-lettered event went: a sink, or "store"
}

// Entry is one recent event.
type Entry struct {
	Key      string            `json:"key"`
	Source   string            `json:"source"` // the bridge source (YAML name)
	ID       string            `json:"id"`
	Type     string            `json:"type"`
	Subject  string            `json:"subject"`
	Time     time.Time         `json:"time"`
	Received time.Time         `json:"received"`
	Sinks    []string          `json:"sinks"`
	Attempts []Attempt         `json:"attempts"`
	Status   map[string]string `json:"status"` // per sink (routed, dead-letter or replay target): one of the Status constants
	Event    json.RawMessage   `json:"event,omitempty"`
}

// DefaultMaxEventBytes bounds the bytes of the events a Recorder keeps: a
// thousand chat logs of a megabyte each would otherwise hold a gigabyte.
const DefaultMaxEventBytes = 8 << 20

// Recorder keeps the last events the bridge accepted and what happened to
// them. It is bounded: the oldest entries are forgotten when it holds cap
// entries, or when their events take more than maxBytes (the newest entry
// is always kept).
type Recorder struct {
	mu       sync.Mutex
	cap      int
	maxBytes int
	ring     []*Entry // a circular buffer of cap: n entries from start, oldest first
	start    int
	n        int
	bytes    int // of the kept entries' events
	byKey    map[string]*Entry
	// ids counts the entries per event id. Most events whose delivery a
	// draining backlog reports were forgotten long ago: their id rules them
	// out without building their key.
	ids map[string]int
	now func() time.Time
}

// NewRecorder keeps up to capacity events (1000 when capacity <= 0).
func NewRecorder(capacity int) *Recorder {
	if capacity <= 0 {
		capacity = 1000
	}
	return &Recorder{cap: capacity, maxBytes: DefaultMaxEventBytes, ring: make([]*Entry, capacity), byKey: make(map[string]*Entry, capacity), ids: make(map[string]int, capacity), now: time.Now}
}

// Key identifies an event: its source and id, as the queue's dedup does.
func Key(ev *event.Event) string { return ev.Source() + " " + ev.ID() }

// Accepted records an event the queue has just taken for sinks.
func (r *Recorder) Accepted(source string, ev *event.Event, sinks []string, encoded []byte) {
	e := r.newEntry(source, ev, sinks, encoded)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byKey[e.Key] == nil {
		r.add(e)
	}
}

// Replayed records that a dead-lettered event was queued again for sink. An
// event the recorder has forgotten (or never saw, before a restart) is
// recorded anew, so that its new delivery can be followed. Record it before
// queueing the event: the delivery loop may try it at once.
func (r *Recorder) Replayed(ev *event.Event, sink string, encoded []byte) {
	r.replayed(ev, sink, encoded)
}

// replayed is Replayed, and returns a func that takes the record back when
// the replay could not be queued.
func (r *Recorder) replayed(ev *event.Event, sink string, encoded []byte) (undo func()) {
	source, _ := ev.Extensions()[ExtBridgeSource].(string)
	fresh := r.newEntry(source, ev, []string{sink}, encoded)
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.byKey[fresh.Key]
	if e == nil {
		e = fresh
		r.add(e)
	}
	addedSink := !slices.Contains(e.Sinks, sink)
	if addedSink {
		e.Sinks = append(e.Sinks, sink)
	}
	mark := Attempt{Sink: sink, At: r.now(), Outcome: OutcomeReplayed}
	e.Attempts = append(e.Attempts, mark)
	return func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if i := slices.Index(e.Attempts, mark); i >= 0 {
			e.Attempts = slices.Delete(e.Attempts, i, i+1)
		}
		if addedSink {
			if i := slices.Index(e.Sinks, sink); i >= 0 {
				e.Sinks = slices.Delete(e.Sinks, i, i+1)
			}
		}
	}
}

func (r *Recorder) newEntry(source string, ev *event.Event, sinks []string, encoded []byte) *Entry {
	return &Entry{
		Key: Key(ev), Source: source, ID: ev.ID(), Type: ev.Type(), Subject: ev.Subject(),
		Time: ev.Time(), Received: r.now(), Sinks: append([]string(nil), sinks...), Event: encoded,
	}
}

// add stores e, forgetting the oldest entries while the recorder is over
// its bounds. Called with r.mu held.
func (r *Recorder) add(e *Entry) {
	if r.n == r.cap {
		r.dropOldest()
	}
	r.ring[(r.start+r.n)%r.cap] = e
	r.n++
	r.bytes += len(e.Event)
	r.byKey[e.Key] = e
	r.ids[e.ID]++
	for r.bytes > r.maxBytes && r.n > 1 {
		r.dropOldest()
	}
}

// dropOldest forgets the oldest entry. Called with r.mu held.
func (r *Recorder) dropOldest() {
	old := r.ring[r.start]
	r.ring[r.start] = nil
	r.start = (r.start + 1) % r.cap
	r.n--
	r.bytes -= len(old.Event)
	delete(r.byKey, old.Key)
	if r.ids[old.ID]--; r.ids[old.ID] <= 0 {
		delete(r.ids, old.ID)
	}
}

// Attempted implements delivery.Observer.
func (r *Recorder) Attempted(sink string, ev *event.Event, attempt int, err error, final bool, deadLetter string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ids[ev.ID()] == 0 {
		return
	}
	e := r.byKey[Key(ev)]
	if e == nil {
		return
	}
	a := Attempt{Sink: sink, Attempt: attempt, At: r.now(), Outcome: OutcomeDelivered}
	switch {
	case err != nil && final:
		a.Outcome, a.Error, a.DeadLetter = OutcomeDeadLettered, err.Error(), deadLetter
	case err != nil:
		a.Outcome, a.Error = OutcomeFailed, err.Error()
	}
	e.Attempts = append(e.Attempts, a)
}

// Recent returns up to limit entries (all when limit <= 0), newest first,
// without their events.
func (r *Recorder) Recent(limit int) []Entry {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.n
	if limit <= 0 || limit > n {
		limit = n
	}
	out := make([]Entry, 0, limit)
	for i := 0; i < limit; i++ {
		e := snapshot(r.ring[(r.start+n-1-i)%r.cap])
		e.Event = nil
		out = append(out, e)
	}
	return out
}

// Get returns one entry with its event.
func (r *Recorder) Get(key string) (Entry, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.byKey[key]
	if e == nil {
		return Entry{}, false
	}
	return snapshot(e), true
}

// snapshot copies e so that the caller may read it without the lock, and
// works out its status per sink. Called with r.mu held.
func snapshot(e *Entry) Entry {
	c := *e
	c.Sinks = append([]string(nil), e.Sinks...)
	c.Attempts = append([]Attempt(nil), e.Attempts...)
	c.Status = make(map[string]string, len(e.Sinks))
	for _, s := range e.Sinks {
		c.Status[s] = StatusPending
	}
	for _, a := range e.Attempts {
		switch a.Outcome {
		case OutcomeDelivered:
			c.Status[a.Sink] = StatusDelivered
		case OutcomeFailed:
			c.Status[a.Sink] = StatusRetrying
		case OutcomeDeadLettered:
			c.Status[a.Sink] = StatusDeadLettered
		case OutcomeReplayed:
			c.Status[a.Sink] = StatusPending
		}
	}
	return c
}
