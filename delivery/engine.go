package delivery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/hookbridge/hookbridge/eventcodec"
	"github.com/hookbridge/hookbridge/metrics"
	"github.com/hookbridge/hookbridge/queue"
	"github.com/hookbridge/hookbridge/sinks"
)

// Queue is what the engine needs of the durable queue.
type Queue interface {
	Next(ctx context.Context, sink string, max, maxBytes int) ([]queue.Delivery, error)
	TryNext(sink string, max, maxBytes int) ([]queue.Delivery, error)
	Ack(sink string, seq uint64) error
	AckAll(sink string, seqs ...uint64) error
	Attempted(sink string, seq uint64, attempts int, lastErr string) error
	Release(sink string, seq uint64) error
	Forward(from string, seq uint64, to string, why queue.Failure) error
	Bury(sink string, seq uint64, attempts int, reason string) error
}

// relinquisher is a queue that can take back deliveries it handed out (a
// Kafka queue whose rebalance gave their partition to another replica).
// Right before each send, first attempts included, the loop asks it which
// of the deliveries are still its own, and drops the others unsent: a
// delivery waiting for its batch, a rate limit, the circuit breaker or a
// retry can be taken back at once, and only one being sent is waited for.
type relinquisher interface {
	// Relinquished ends and reports each delivery of seqs that the queue
	// took back; the others are under way until their attempt ends
	// (Attempted, Release, or settled).
	Relinquished(sink string, seqs []uint64) []bool
}

// Extensions set on an event delivered to a dead-letter sink.
const (
	ExtDeadLetterSink   = queue.ExtDeadLetterSink
	ExtDeadLetterReason = queue.ExtDeadLetterReason
)

// Observer hears about every delivery attempt, for the event inspector.
// Its methods are called from the delivery loops and must not block.
type Observer interface {
	// Attempted reports one try of ev at sink: err is nil when delivered.
	// final is true when the loop will not try this event again (delivered,
	// dead-lettered, or stopped); deadLetter then names where it went.
	Attempted(sink string, ev *event.Event, attempt int, err error, final bool, deadLetter string)
}

// Engine runs one delivery loop per sink.
type Engine struct {
	q   Queue
	log *slog.Logger
	m   *metrics.Metrics
	obs Observer

	mu    sync.Mutex
	loops map[string]*loop
	// counts are each sink's deliveries since New, kept across its loop's
	// restarts.
	counts map[string]*counts
}

// counts are a sink's deliveries, as DeliveryCounts.
type counts struct{ delivered, failed, deadLettered atomic.Int64 }

// DeliveryCounts are a sink's deliveries since the engine was made, as
// hookbridge_deliveries_total counts them: events delivered, attempts
// failed, events dead-lettered.
type DeliveryCounts struct {
	Delivered, Failed, DeadLettered int64
}

// New makes an engine over q.
func New(q Queue, log *slog.Logger, m *metrics.Metrics) *Engine {
	if log == nil {
		log = slog.Default()
	}
	if m == nil {
		m = metrics.New()
	}
	return &Engine{q: q, log: log, m: m, loops: map[string]*loop{}, counts: map[string]*counts{}}
}

type loop struct {
	name   string
	sink   sinks.Sink
	batch  sinks.BatchSink
	prep   sinks.Preparer     // nil unless the sink prepares batches apart from sending them
	pipe   sinks.Pipeliner    // nil unless the sink's client keeps several batches in order
	dec    eventcodec.Decoder // used by the reader goroutine alone
	pace   *pacer
	cb     *breaker // nil: circuit_breaker off
	policy Policy
	e      *Engine
	n      *counts
	log    *slog.Logger

	stop     context.CancelFunc // no new work, no more waiting
	kill     context.CancelFunc // abandon in-flight deliveries
	stopCtx  context.Context
	killCtx  context.Context
	finished chan struct{}
}

// Observe sets the observer of every delivery attempt; call it before Start.
func (e *Engine) Observe(o Observer) { e.obs = o }

func (e *Engine) observe(sink string, ev *event.Event, attempt int, err error, final bool, deadLetter string) {
	if e.obs != nil && ev != nil {
		e.obs.Attempted(sink, ev, attempt, err, final, deadLetter)
	}
}

// Start begins delivering to sink under name. A loop already running under
// that name must be stopped first.
func (e *Engine) Start(name string, sink sinks.Sink, p Policy) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, running := e.loops[name]; running {
		return fmt.Errorf("delivery to %s is already running", name)
	}
	def := DefaultPolicy()
	if p.Retry.MaxAttempts == 0 {
		p.Retry = def.Retry
	}
	n := e.counts[name]
	if n == nil {
		n = &counts{}
		e.counts[name] = n
	}
	l := &loop{name: name, sink: sink, policy: p, e: e, n: n, log: e.log.With("sink", name), finished: make(chan struct{})}
	l.batch, _ = sink.(sinks.BatchSink)
	l.prep, _ = sink.(sinks.Preparer)
	l.pipe, _ = sink.(sinks.Pipeliner)
	if l.batch == nil {
		l.pipe = nil
	}
	if l.policy.BatchSize == 0 {
		l.policy.BatchSize = 500
	}
	if l.batch == nil {
		l.policy.BatchSize = 1
	}
	l.pace = newPacer(l.policy.RateLimit.PerSecond)
	if l.pace.limiter != nil && l.policy.BatchSize > l.pace.burst {
		// Batches no larger than a burst flow at the rate instead of
		// waiting, taken, for their whole size's worth.
		l.policy.BatchSize = l.pace.burst
	}
	e.m.CircuitState.WithLabelValues(name).Set(float64(circuitClosed))
	if !l.policy.CircuitBreaker.Off {
		l.policy.CircuitBreaker = l.policy.CircuitBreaker.orDefault()
		l.cb = newBreaker(l.policy.CircuitBreaker, time.Now, l.circuitChanged)
	}
	if l.policy.Concurrency == 0 {
		switch {
		case l.pipe != nil:
			l.policy.Concurrency = 2
		case l.batch != nil:
			l.policy.Concurrency = 1
		default:
			l.policy.Concurrency = 4
		}
	}
	workers, depth := l.policy.Concurrency, 1
	if l.pipe != nil {
		// One worker starts every batch, so the client gets them in the
		// queue's order; Concurrency of them may await their answers.
		workers, depth = 1, l.policy.Concurrency
	}
	l.stopCtx, l.stop = context.WithCancel(context.Background())
	l.killCtx, l.kill = context.WithCancel(context.Background())
	// One reader takes batches from the queue and decodes them while the
	// workers deliver: a worker finishing a batch finds the next one ready,
	// topped up with what arrived meanwhile. With one worker the sink still
	// sees the queue's order.
	ready := make(chan request)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		l.read(ready)
	}()
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if l.prep != nil || l.pipe != nil {
				l.pipeline(ready, depth)
				return
			}
			batch := make(chan []item, 1)
			for {
				select {
				case ready <- request{reply: batch}:
				case <-l.stopCtx.Done():
					return
				}
				items, ok := <-batch
				if !ok {
					return
				}
				l.deliver(items, nil, ticket{})
			}
		}()
	}
	go func() {
		wg.Wait()
		close(l.finished)
	}()
	e.loops[name] = l
	return nil
}

// Stop stops the loop of one sink: it takes no new events, lets deliveries
// under way finish until ctx ends, then abandons them (they stay queued).
func (e *Engine) Stop(ctx context.Context, name string) {
	e.mu.Lock()
	l := e.loops[name]
	delete(e.loops, name)
	e.mu.Unlock()
	if l != nil {
		l.shutdown(ctx)
	}
}

// StopAll stops every loop, in parallel, within ctx.
func (e *Engine) StopAll(ctx context.Context) {
	e.mu.Lock()
	loops := e.loops
	e.loops = map[string]*loop{}
	e.mu.Unlock()
	var wg sync.WaitGroup
	for _, l := range loops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.shutdown(ctx)
		}()
	}
	wg.Wait()
}

// Running lists the sinks with a running loop.
func (e *Engine) Running() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]string, 0, len(e.loops))
	for n := range e.loops {
		out = append(out, n)
	}
	return out
}

// Circuit breaker states as CircuitStates reports them.
const (
	CircuitClosed   = "closed"
	CircuitOpen     = "open"
	CircuitHalfOpen = "half-open"
	CircuitOff      = "off" // the sink's circuit_breaker is off
)

// CircuitStates reports the circuit breaker state of every sink with a
// running loop: CircuitClosed, CircuitOpen, CircuitHalfOpen, or CircuitOff.
func (e *Engine) CircuitStates() map[string]string {
	e.mu.Lock()
	loops := make([]*loop, 0, len(e.loops))
	for _, l := range e.loops {
		loops = append(loops, l)
	}
	e.mu.Unlock()
	out := make(map[string]string, len(loops))
	for _, l := range loops {
		if l.cb == nil {
			out[l.name] = CircuitOff
			continue
		}
		out[l.name] = l.cb.current().String()
	}
	return out
}

// Counts reports the deliveries of every sink that has run since New,
// running or not.
func (e *Engine) Counts() map[string]DeliveryCounts {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]DeliveryCounts, len(e.counts))
	for name, n := range e.counts {
		out[name] = DeliveryCounts{Delivered: n.delivered.Load(), Failed: n.failed.Load(), DeadLettered: n.deadLettered.Load()}
	}
	return out
}

func (l *loop) shutdown(ctx context.Context) {
	l.stop()
	select {
	case <-l.finished:
	case <-ctx.Done():
		l.kill()
		<-l.finished
	}
	l.kill()
	l.e.m.CircuitState.DeleteLabelValues(l.name)
}

// circuitChanged shows a change of the sink's circuit breaker on /metrics,
// and in the log when it opens or closes.
func (l *loop) circuitChanged(tr transition) {
	l.e.m.CircuitState.WithLabelValues(l.name).Set(float64(tr.to))
	switch {
	case tr.to == circuitOpen && tr.from == circuitClosed:
		l.e.m.CircuitOpenings.WithLabelValues(l.name).Inc()
		l.log.Warn("circuit breaker open: holding deliveries to the sink until a probe succeeds",
			"failures_in_a_row", tr.failures, "cooldown", tr.cooldown.String(), "err", tr.err)
	case tr.to == circuitOpen && tr.err != nil:
		l.log.Warn("circuit breaker probe failed: holding deliveries longer", "cooldown", tr.cooldown.String(), "err", tr.err)
	case tr.to == circuitClosed:
		l.log.Info("circuit breaker closed: the probe succeeded, delivering again", "held_for", tr.openFor.Round(time.Millisecond).String())
	}
}

type item struct {
	d  queue.Delivery
	ev *event.Event
	// carried: the event had spent attempts when the loop read it.
	carried bool
}

// request is a worker asking the reader for its next batch.
type request struct {
	reply chan<- []item
	// fullOnly asks for a full batch only: a batch that is not full is kept,
	// to grow, and the reply is nil.
	fullOnly bool
}

// read hands batches of decoded events to the workers until the loop stops.
// It takes a batch as soon as one is pending, and when a worker asks for it
// adds what has arrived since, up to the batch size: the read overlaps the
// sink's work, and a sink that takes batches still gets full ones. A batch
// taken but not handed over when the loop stops is released.
func (l *loop) read(ready <-chan request) {
	var worker *request // a worker waiting for its batch
	defer func() {
		if worker != nil {
			close(worker.reply)
		}
	}()
	for {
		ds, err := l.e.q.Next(l.stopCtx, l.name, l.policy.BatchSize, MaxBatchBytes)
		taken := time.Now()
		if err != nil {
			if l.stopCtx.Err() == nil {
				l.log.Error("reading the queue", "err", err)
				select {
				case <-time.After(time.Second):
				case <-l.stopCtx.Done():
				}
				continue
			}
			return
		}
		items := l.decode(ds)
		if !l.fill(items, taken) {
			return
		}
		for {
			for worker == nil {
				select {
				case r := <-ready:
					worker = &r
				case <-l.stopCtx.Done():
					l.releaseAll(items)
					return
				}
			}
			if room, roomBytes := l.policy.BatchSize-len(items), MaxBatchBytes-batchBytes(items); room > 0 && roomBytes > 0 {
				more, err := l.e.q.TryNext(l.name, room, roomBytes)
				if err != nil {
					l.log.Error("reading the queue", "err", err)
				}
				items = append(items, l.decode(more)...)
			}
			if worker.fullOnly && !l.full(items) {
				worker.reply <- nil
				worker = nil
				continue
			}
			break
		}
		if len(items) == 0 {
			continue // all unreadable and given up: the worker waits on
		}
		worker.reply <- items
		worker = nil
	}
}

// MaxBatchBytes bounds the events of one batch: a backlog of chat logs of
// a megabyte each, read 500 at a time, took the bridge past a gigabyte.
// The first event of a batch joins it whatever its size, and a top-up may
// add one more event beyond the bound.
const MaxBatchBytes = 2 << 20

// batchBytes is the size of items' stored events.
func batchBytes(items []item) int {
	n := 0
	for _, it := range items {
		n += len(it.d.Event)
	}
	return n
}

// full reports whether a batch need not wait to grow: it has batch_size
// events, or half of MaxBatchBytes (big events rarely fill it exactly).
func (l *loop) full(items []item) bool {
	return len(items) >= l.policy.BatchSize || batchBytes(items) >= MaxBatchBytes/2
}

// fill lets a batching sink's batch that is not full wait until batch_wait
// after it was taken, so that what arrives meanwhile joins it when the
// worker asks. It reports false, having released the items, when the loop
// stops meanwhile.
func (l *loop) fill(items []item, taken time.Time) bool {
	if l.batch == nil || l.policy.BatchWait <= 0 || len(items) == 0 || l.full(items) {
		return true
	}
	wait := time.Until(taken.Add(l.policy.BatchWait))
	if wait <= 0 {
		return true
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-l.stopCtx.Done():
		l.releaseAll(items)
		return false
	}
}

// decode reads the stored events of ds; one that cannot be read is given up
// at once, as no attempt could deliver it.
func (l *loop) decode(ds []queue.Delivery) []item {
	items := make([]item, 0, len(ds))
	for _, d := range ds {
		ev, err := l.dec.Decode(d.Event) // what Ingest encoded
		if err != nil {
			l.giveUp(item{d: d}, fmt.Errorf("stored event is unreadable: %w", err))
			continue
		}
		if d.From != "" {
			queue.SetDeadLetterExtensions(ev, d.From, d.Failure())
		}
		items = append(items, item{d: d, ev: ev, carried: d.Attempts > 0})
	}
	return items
}

// prepared is a batch made ready by the sink, waiting to be sent or, for a
// Pipeliner, started and awaiting its answer.
type prepared struct {
	items []item
	send  func(context.Context) []error
	tk    ticket // the circuit breaker's leave to send it
}

// pipeline is a worker of a sink that prepares batches apart from sending
// them. While a sender goroutine sends one batch, it takes the next one if
// it is already full and prepares it; a batch that is not full is left with
// the reader to grow until a send ends, as with any batching sink.
//
// For a Preparer, batches are sent one at a time (depth 1), in the order
// they were taken. For a Pipeliner, this worker starts each batch itself,
// in the order taken, while up to depth-1 batches before it await their
// answers; the sender settles them in the same order. A batch taken and not
// handed over when the loop stops is released.
func (l *loop) pipeline(ready chan<- request, depth int) {
	sendq := make(chan prepared, depth)
	settled := make(chan struct{}, depth) // one per batch the sender is done with
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		for p := range sendq {
			l.deliver(p.items, p.send, p.tk)
			settled <- struct{}{}
		}
	}()
	defer func() {
		close(sendq)
		<-sent
	}()
	batch := make(chan []item, 1)
	inflight := 0 // batches handed to the sender and not yet settled
	// settle waits for the sender to finish a batch; false when the loop stops.
	settle := func() bool {
		select {
		case <-settled:
			inflight--
			return true
		case <-l.stopCtx.Done():
			return false
		}
	}
	for {
		for drained := false; !drained; {
			select {
			case <-settled:
				inflight--
			default:
				drained = true
			}
		}
		select {
		case ready <- request{reply: batch, fullOnly: inflight > 0}:
		case <-l.stopCtx.Done():
			return
		}
		items, ok := <-batch
		if !ok {
			return
		}
		if items == nil { // not full: let it grow while a send ends
			if !settle() {
				return
			}
			continue
		}
		if err := l.pace.wait(l.stopCtx, len(items)); err != nil {
			l.releaseAll(items)
			return
		}
		var send func(context.Context) []error
		if l.pipe == nil {
			send = l.prepare(items) // no I/O: done while a send is under way
		}
		for inflight >= depth {
			if !settle() {
				l.releaseAll(items)
				return
			}
		}
		// The circuit breaker's leave comes last: a probe taken here must be
		// sent at once. While batches are in flight, their retries come
		// first (the sender settles in order), so this batch may take only
		// a closed breaker's leave, and otherwise waits for them.
		var tk ticket
		for {
			if inflight == 0 {
				var err error
				if tk, err = l.cb.wait(l.stopCtx); err != nil {
					l.releaseAll(items)
					return
				}
				break
			}
			var ok bool
			if tk, ok, _, _ = l.cb.admit(false); ok {
				break
			}
			if !settle() {
				l.releaseAll(items)
				return
			}
		}
		if kept := l.stillOwn(items); len(kept) < len(items) {
			items = kept
			if len(items) == 0 {
				l.cb.done(tk, outcomeNeutral, nil, 0)
				continue
			}
			if l.pipe == nil {
				send = l.prepare(items)
			}
		}
		if l.pipe != nil {
			send = l.start(items)
		}
		sendq <- prepared{items: items, send: send, tk: tk} // has room: inflight < depth
		inflight++
	}
}

// start runs the sink's StartBatch, turning a panic into a retryable error
// for every event of the batch. What it returns waits for the answer.
func (l *loop) start(items []item) (wait func(context.Context) []error) {
	defer func() {
		if r := recover(); r != nil {
			err := fmt.Errorf("sink panicked: %v", r)
			wait = func(context.Context) []error { return sameError(len(items), err) }
		}
	}()
	return l.pipe.StartBatch(l.killCtx, events(items))
}

// prepare runs the sink's PrepareBatch, turning a panic into a retryable
// error for every event of the batch.
func (l *loop) prepare(items []item) (send func(context.Context) []error) {
	defer func() {
		if r := recover(); r != nil {
			err := fmt.Errorf("sink panicked: %v", r)
			send = func(context.Context) []error { return sameError(len(items), err) }
		}
	}()
	return l.prep.PrepareBatch(events(items))
}

func events(items []item) []*event.Event {
	evs := make([]*event.Event, len(items))
	for i, it := range items {
		evs[i] = it.ev
	}
	return evs
}

func sameError(n int, err error) []error {
	errs := make([]error, n)
	for i := range errs {
		errs[i] = err
	}
	return errs
}

// deliver tries items until each is delivered, dead-lettered, or the loop
// stops (then they are released, still queued). The first attempt uses
// send when it is not nil: the batch as the sink prepared it, already let
// through by the circuit breaker with tk. Every other attempt waits for
// the breaker's leave first: while it is open, items wait here, spending
// no attempt.
func (l *loop) deliver(items []item, send func(context.Context) []error, tk ticket) {
	for len(items) > 0 {
		if send == nil {
			var err error
			if tk, err = l.cb.wait(l.stopCtx); err != nil {
				l.releaseAll(items)
				return
			}
			if err := l.pace.wait(l.killCtx, len(items)); err != nil {
				l.cb.done(tk, outcomeNeutral, nil, 0)
				l.releaseAll(items)
				return
			}
			if items = l.stillOwn(items); len(items) == 0 {
				l.cb.done(tk, outcomeNeutral, nil, 0)
				return
			}
		}
		errs := l.send(items, send)
		send = nil
		o, cause, after := l.judge(errs)
		l.cb.done(tk, o, cause, after)
		// While the breaker is open, an event out of attempts is not given
		// up: the destination is down, not refusing it. It waits with the
		// others, and its next send, once the breaker has closed, is its
		// last unless it succeeds. One that came out of the queue with
		// attempts spent (held through a restart) waits, too, until the
		// sink has taken an event since the loop started.
		var retry []item
		var wait time.Duration
		delivered := make([]uint64, 0, len(items))
		for i, it := range items {
			err := errs[i]
			if err == nil {
				l.e.m.Deliveries.WithLabelValues(l.name, "delivered").Inc()
				l.n.delivered.Add(1)
				l.e.observe(l.name, it.ev, it.d.Attempts+1, nil, true, "")
				delivered = append(delivered, it.d.Seq)
				continue
			}
			l.e.m.Deliveries.WithLabelValues(l.name, "failed").Inc()
			l.n.failed.Add(1)
			it.d.Attempts++
			if l.killCtx.Err() != nil && errors.Is(err, context.Canceled) {
				// Abandoned by a stop, not a failure of the sink: try again later.
				it.d.Attempts--
				l.release(it)
				continue
			}
			if sinks.IsPermanent(err) || (it.d.Attempts >= l.policy.Retry.MaxAttempts && l.cb.mayGiveUp(it.carried)) {
				l.giveUp(it, err)
				continue
			}
			l.e.observe(l.name, it.ev, it.d.Attempts, err, false, "")
			if aerr := l.e.q.Attempted(l.name, it.d.Seq, it.d.Attempts, err.Error()); aerr != nil {
				l.log.Error("recording an attempt", "id", it.ev.ID(), "err", aerr)
			}
			hint, _ := sinks.RetryAfterOf(err)
			if w := l.policy.Retry.Backoff(it.d.Attempts, hint); wait == 0 || w < wait {
				wait = w
			}
			l.log.Warn("delivery failed, will retry", "id", it.ev.ID(), "attempt", it.d.Attempts, "max_attempts", l.policy.Retry.MaxAttempts, "circuit", l.cb.label(), "err", err)
			l.e.m.Retries.WithLabelValues(l.name).Inc()
			retry = append(retry, it)
		}
		if len(delivered) > 0 {
			// One write for the whole batch.
			if aerr := l.e.q.AckAll(l.name, delivered...); aerr != nil {
				l.log.Error("acknowledging delivered events", "count", len(delivered), "err", aerr)
			}
		}
		if len(retry) == 0 {
			return
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-l.stopCtx.Done():
			t.Stop()
			for _, it := range retry {
				l.release(it)
			}
			return
		}
		items = retry
	}
}

// judge tells what one send's results say of the destination's health: a
// batch counts as one send, a success if the destination took any of its
// events (the others failed for reasons of their own), a failure if it
// took none and any failed retryably. cause is then the first such
// failure, and hint the longest Retry-After among them.
func (l *loop) judge(errs []error) (o outcome, cause error, hint time.Duration) {
	for _, err := range errs {
		switch {
		case err == nil:
			return outcomeSuccess, nil, 0
		case sinks.IsPermanent(err), l.killCtx.Err() != nil && errors.Is(err, context.Canceled):
			continue
		}
		if cause == nil {
			cause = err
		}
		if h, ok := sinks.RetryAfterOf(err); ok && h > hint {
			hint = h
		}
	}
	if cause != nil {
		return outcomeFailure, cause, hint
	}
	return outcomeNeutral, nil, 0
}

// send delivers items once, paced already: with prepared, the sink's
// prepared batch, when it is not nil; else in one DeliverBatch call, or one
// Deliver per event.
func (l *loop) send(items []item, prepared func(context.Context) []error) []error {
	start := time.Now()
	defer func() { l.e.m.DeliveryDuration.WithLabelValues(l.name).Observe(time.Since(start).Seconds()) }()
	if prepared != nil || (l.batch != nil && len(items) > 1) {
		var errs []error
		if prepared != nil {
			errs = safeSend(l.killCtx, prepared, len(items))
		} else {
			errs = safeBatch(l.killCtx, l.batch, events(items))
		}
		if len(errs) != len(items) {
			errs = sameError(len(items), fmt.Errorf("sink returned %d results for %d events", len(errs), len(items)))
		}
		return errs
	}
	errs := make([]error, len(items))
	for i, it := range items {
		errs[i] = safeDeliver(l.killCtx, l.sink, it.ev)
	}
	return errs
}

// safeDeliver turns a sink's panic into a retryable error, so one bad sink
// cannot take the bridge down.
func safeDeliver(ctx context.Context, s sinks.Sink, ev *event.Event) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("sink panicked: %v", r)
		}
	}()
	return s.Deliver(ctx, ev)
}

func safeBatch(ctx context.Context, s sinks.BatchSink, evs []*event.Event) []error {
	return safeSend(ctx, func(ctx context.Context) []error { return s.DeliverBatch(ctx, evs) }, len(evs))
}

func safeSend(ctx context.Context, send func(context.Context) []error, n int) (errs []error) {
	defer func() {
		if r := recover(); r != nil {
			errs = sameError(n, fmt.Errorf("sink panicked: %v", r))
		}
	}()
	return send(ctx)
}

// stillOwn drops the items the queue took back while they waited to be
// sent (see relinquisher); the queue counts the others under way.
func (l *loop) stillOwn(items []item) []item {
	r, ok := l.e.q.(relinquisher)
	if !ok {
		return items
	}
	seqs := make([]uint64, len(items))
	for i, it := range items {
		seqs[i] = it.d.Seq
	}
	gone := r.Relinquished(l.name, seqs)
	kept := items[:0:0]
	var dropped []string // ids, for the log: a batch can hold hundreds
	for i, it := range items {
		if gone[i] {
			dropped = append(dropped, it.ev.ID())
			continue
		}
		kept = append(kept, it)
	}
	if len(dropped) > 0 {
		const shown = 5
		l.log.Info("deliveries waiting to be sent were taken back by the queue (their partition was handed back in a rebalance); not sent",
			"count", len(dropped), "ids", dropped[:min(len(dropped), shown)])
	}
	return kept
}

func (l *loop) releaseAll(items []item) {
	for _, it := range items {
		l.release(it)
	}
}

func (l *loop) release(it item) {
	if err := l.e.q.Release(l.name, it.d.Seq); err != nil {
		l.log.Error("releasing an event", "seq", it.d.Seq, "err", err)
	}
}

// giveUp dead-letters an event: to the dead-letter sink when there is one
// (and this is not already a dead letter), else into the dead-letter store.
func (l *loop) giveUp(it item, cause error) {
	reason := fmt.Sprintf("%s: %d attempt(s): %v", l.name, it.d.Attempts, cause)
	if sinks.IsPermanent(cause) {
		reason = fmt.Sprintf("%s: rejected: %v", l.name, cause)
	}
	id := ""
	if it.ev != nil {
		id = it.ev.ID()
	}
	l.e.m.Deliveries.WithLabelValues(l.name, "dead_lettered").Inc()
	l.n.deadLettered.Add(1)
	l.e.m.DeadLetters.WithLabelValues(l.name).Inc()
	if dl := l.policy.DeadLetter; dl != "" && it.d.From == "" {
		l.e.observe(l.name, it.ev, it.d.Attempts, cause, true, dl)
		l.log.Error("giving up, forwarding to the dead-letter sink", "id", id, "dead_letter", dl, "reason", reason)
		why := queue.Failure{Reason: reason}
		if status, answer, ok := sinks.ResponseOf(cause); ok {
			why.Status, why.Answer = status, answer
		}
		if err := l.e.q.Forward(l.name, it.d.Seq, dl, why); err != nil {
			l.log.Error("forwarding to the dead-letter sink", "id", id, "err", err)
		}
		return
	}
	// A dead letter this dead-letter sink gave up on keeps the first
	// reason too: the queue adds it, with the sink that gave up first.
	l.e.observe(l.name, it.ev, it.d.Attempts, cause, true, "store")
	l.log.Error("giving up, keeping the event in the dead-letter store", "id", id, "reason", reason)
	if err := l.e.q.Bury(l.name, it.d.Seq, it.d.Attempts, reason); err != nil {
		l.log.Error("burying an event", "id", id, "err", err)
	}
}
