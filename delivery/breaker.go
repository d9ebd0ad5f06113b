package delivery

import (
	"context"
	"sync"
	"time"
)

// circuitState is a sink's circuit breaker state, as the gauge
// hookbridge_sink_circuit_state shows it.
type circuitState int

const (
	// circuitClosed: deliveries go as usual.
	circuitClosed circuitState = iota
	// circuitOpen: no delivery is sent until the cooldown has passed; the
	// first one to go then is the probe.
	circuitOpen
	// circuitHalfOpen: the probe is under way; every other delivery waits
	// for its result.
	circuitHalfOpen
)

func (s circuitState) String() string {
	switch s {
	case circuitClosed:
		return CircuitClosed
	case circuitOpen:
		return CircuitOpen
	case circuitHalfOpen:
		return CircuitHalfOpen
	}
	return "unknown"
}

// outcome is what one send tells of the destination's health.
type outcome int

const (
	// outcomeNeutral: nothing, as when every event was rejected for good
	// (a CRM's 400 is about the event, and a template that renders empty
	// never reached the destination) or the send was abandoned by a stop.
	outcomeNeutral outcome = iota
	// outcomeSuccess: the destination took at least one event.
	outcomeSuccess
	// outcomeFailure: it took none, and at least one failed retryably.
	outcomeFailure
)

// ticket is a send's leave to go, from admit or wait; done takes it back
// with the send's outcome. Every ticket must be handed back, a probe's
// above all: the breaker lets no other send go until it is.
type ticket struct{ probe bool }

// transition is one change of a breaker's state, for the loop's metrics and
// log.
type transition struct {
	from, to circuitState
	// failures is how many sends failed in a row, when it opened from closed.
	failures int
	// cooldown is how long it stays open, when it opened; err is the
	// failure that opened it.
	cooldown time.Duration
	err      error
	// openFor is how long it was not closed, when it closed.
	openFor time.Duration
}

// breaker is a sink's circuit breaker (see CircuitBreaker): the delivery
// loop asks it before every send to the sink and tells it every send's
// outcome. A nil *breaker lets everything through.
type breaker struct {
	cfg      CircuitBreaker
	now      func() time.Time
	onChange func(transition) // called with mu held, in order; must not block

	mu       sync.Mutex
	state    circuitState
	failures int           // sends failed in a row while closed
	cooldown time.Duration // the open period's, before any Retry-After
	until    time.Time     // open: when the probe may go
	openedAt time.Time     // when it last opened from closed
	// succeeded: a send has reached the destination since the breaker was
	// made (its loop started).
	succeeded bool
	changed   chan struct{} // closed and replaced at every change of state
}

// newBreaker makes a closed breaker; cfg must be valid. now is the clock
// (time.Now unless a test sets one); onChange, if not nil, hears every
// change of state.
func newBreaker(cfg CircuitBreaker, now func() time.Time, onChange func(transition)) *breaker {
	if now == nil {
		now = time.Now
	}
	if onChange == nil {
		onChange = func(transition) {}
	}
	return &breaker{cfg: cfg, now: now, onChange: onChange, changed: make(chan struct{})}
}

// set moves to tr.to and tells onChange; mu is held.
func (b *breaker) set(tr transition) {
	tr.from = b.state
	b.state = tr.to
	close(b.changed)
	b.changed = make(chan struct{})
	b.onChange(tr)
}

// admit says whether a send may go now. ok: it may, with t. Otherwise it
// must wait for wait when that is above 0 (the rest of the cooldown), else
// until changed is closed (the probe's result). probe false never takes the
// probe: a caller that could not send it at once lets another send it.
func (b *breaker) admit(probe bool) (t ticket, ok bool, wait time.Duration, changed <-chan struct{}) {
	if b == nil {
		return ticket{}, true, 0, nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case circuitClosed:
		return ticket{}, true, 0, nil
	case circuitOpen:
		if d := b.until.Sub(b.now()); d > 0 {
			return ticket{}, false, d, b.changed
		}
		if probe {
			b.set(transition{to: circuitHalfOpen})
			return ticket{probe: true}, true, 0, nil
		}
	}
	return ticket{}, false, 0, b.changed
}

// wait returns a ticket once a send may go, waiting while the breaker is
// open or a probe is under way, or ctx's error. The caller then sends and
// hands the ticket back to done.
func (b *breaker) wait(ctx context.Context) (ticket, error) {
	for {
		t, ok, d, changed := b.admit(true)
		if ok {
			return t, nil
		}
		var timer *time.Timer
		var expired <-chan time.Time
		if d > 0 {
			timer = time.NewTimer(d)
			expired = timer.C
		}
		select {
		case <-ctx.Done():
			if timer != nil {
				timer.Stop()
			}
			return ticket{}, ctx.Err()
		case <-changed:
		case <-expired:
		}
		if timer != nil {
			timer.Stop()
		}
	}
}

// done takes back the ticket of a send with its outcome. cause is the
// failure (outcomeFailure) and hint the longest Retry-After it carried:
// the breaker opens for its cooldown or for hint, whichever is longer, but
// not for a hint beyond max_cooldown.
func (b *breaker) done(t ticket, o outcome, cause error, hint time.Duration) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if o == outcomeSuccess {
		b.succeeded = true
	}
	if t.probe {
		switch o {
		case outcomeSuccess:
			b.failures = 0
			b.set(transition{to: circuitClosed, openFor: b.now().Sub(b.openedAt)})
		case outcomeFailure:
			b.cooldown = min(2*b.cooldown, b.cfg.MaxCooldown)
			b.open(cause, hint, 0)
		default:
			// The probe said nothing: the next send is the probe, at once.
			b.until = b.now()
			b.set(transition{to: circuitOpen})
		}
		return
	}
	if b.state != circuitClosed {
		// Sent before it opened: the probe decides, not this.
		return
	}
	switch o {
	case outcomeSuccess:
		b.failures = 0
	case outcomeFailure:
		b.failures++
		if b.failures >= b.cfg.Failures {
			b.cooldown = b.cfg.Cooldown
			b.openedAt = b.now()
			b.open(cause, hint, b.failures)
			b.failures = 0
		}
	}
}

// open opens the breaker for b.cooldown, or hint if longer, up to
// max_cooldown; mu is held.
func (b *breaker) open(cause error, hint time.Duration, failures int) {
	d := max(b.cooldown, min(hint, b.cfg.MaxCooldown))
	b.until = b.now().Add(d)
	b.set(transition{to: circuitOpen, failures: failures, cooldown: d, err: cause})
}

// mayGiveUp says whether an event out of attempts may be dead-lettered
// after a failed send: only while the breaker is closed, and, for an event
// that had spent attempts before its loop read it (carried), only once the
// sink has taken an event since the breaker was made. A breaker starts
// closed, also after a restart in the middle of an outage; the events it
// held before had spent their attempts on probes, and their first
// failures after the restart say no more than the probes did. True for a
// nil breaker (off).
func (b *breaker) mayGiveUp(carried bool) bool {
	if b == nil {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state == circuitClosed && (b.succeeded || !carried)
}

// current is the breaker's state, closed for a nil breaker.
// label is the state as logs and the inspector name it, "off" for a
// sink without a breaker.
func (b *breaker) label() string {
	if b == nil {
		return CircuitOff
	}
	return b.current().String()
}

func (b *breaker) current() circuitState {
	if b == nil {
		return circuitClosed
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state
}
