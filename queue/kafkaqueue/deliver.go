package kafkaqueue

import (
	"context"
	"fmt"
	"sort"

	"github.com/hookbridge/hookbridge/queue"
)

// sinkQueue is one sink's deliveries, in memory. Guarded by Queue.mu.
type sinkQueue struct {
	pending  []*entry // not handed out, in seq order
	inFlight map[uint64]*entry
	wake     chan struct{} // closed when deliveries arrive
}

// entry is one delivery of a record's event to a sink.
type entry struct {
	seq      uint64
	body     []byte // eventcodec form
	attempts int
	// underWay: the delivery loop is sending it (Relinquished found it
	// still this replica's, and its attempt has not ended). A delivery
	// handed out and not under way (waiting for its batch, a rate limit,
	// the circuit breaker, a retry's back-off) can be taken back at once.
	underWay bool
	from     string // the sink that forwarded it here, for a dead letter
	why      queue.Failure
	rec      *record
}

func (q *Queue) sinkLocked(name string) *sinkQueue {
	s := q.sinks[name]
	if s == nil {
		s = &sinkQueue{inFlight: map[uint64]*entry{}, wake: make(chan struct{})}
		q.sinks[name] = s
	}
	return s
}

func (s *sinkQueue) push(e *entry) {
	s.pending = append(s.pending, e)
	s.wakeAll()
}

func (s *sinkQueue) wakeAll() {
	close(s.wake)
	s.wake = make(chan struct{})
}

// take hands out up to max pending deliveries, taking at most maxBytes
// (but for the first) when maxBytes > 0.
func (s *sinkQueue) take(sink string, limit, maxBytes int) []queue.Delivery {
	n, size := 0, 0
	for n < len(s.pending) && n < max(1, limit) {
		b := len(s.pending[n].body)
		if maxBytes > 0 && n > 0 && size+b > maxBytes {
			break
		}
		size += b
		n++
	}
	if n == 0 {
		return nil
	}
	ds := make([]queue.Delivery, n)
	for i, e := range s.pending[:n] {
		e.underWay = false
		s.inFlight[e.seq] = e
		ds[i] = queue.Delivery{Seq: e.seq, Sink: sink, Event: e.body, Attempts: e.attempts,
			From: e.from, Reason: e.why.Reason, Status: e.why.Status, Answer: e.why.Answer}
		s.pending[i] = nil
	}
	s.pending = s.pending[n:]
	return ds
}

// Next waits until sink has deliveries not handed out, then hands out up
// to max of them in seq order, released ones first.
func (q *Queue) Next(ctx context.Context, sink string, max, maxBytes int) ([]queue.Delivery, error) {
	for {
		q.mu.Lock()
		if q.closed {
			q.mu.Unlock()
			return nil, queue.ErrClosed
		}
		s := q.sinkLocked(sink)
		ds := s.take(sink, max, maxBytes)
		wake := s.wake
		q.mu.Unlock()
		if len(ds) > 0 {
			return ds, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-wake:
		}
	}
}

// TryNext is Next without the wait: none pending, none returned.
func (q *Queue) TryNext(sink string, max, maxBytes int) ([]queue.Delivery, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return nil, queue.ErrClosed
	}
	return q.sinkLocked(sink).take(sink, max, maxBytes), nil
}

// inFlight takes the in-flight delivery (sink, seq) out of sink's list. q.mu held.
func (q *Queue) inFlight(sink string, seq uint64) (*sinkQueue, *entry, error) {
	s := q.sinks[sink]
	if s == nil || s.inFlight[seq] == nil {
		return nil, nil, fmt.Errorf("%w: %s/%d", queue.ErrNotInFlight, sink, seq)
	}
	e := s.inFlight[seq]
	delete(s.inFlight, seq)
	return s, e, nil
}

// Ack ends a delivery.
func (q *Queue) Ack(sink string, seq uint64) error { return q.AckAll(sink, seq) }

// AckAll ends several in-flight deliveries of sink: all of them, or none
// when one is not in flight.
func (q *Queue) AckAll(sink string, seqs ...uint64) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	s := q.sinks[sink]
	for _, seq := range seqs {
		if s == nil || s.inFlight[seq] == nil {
			return fmt.Errorf("%w: %s/%d", queue.ErrNotInFlight, sink, seq)
		}
	}
	for _, seq := range seqs {
		if e := s.inFlight[seq]; e != nil {
			delete(s.inFlight, seq)
			e.rec.r.settle(e.rec)
		}
	}
	return nil
}

// Attempted notes the attempts of an in-flight delivery (the last error is
// the delivery loop's to log), and keeps them in the shared state in the
// background: the replica that reads the record again, after a rebalance
// or a restart, goes on from there. A dead-letter sink's deliveries are
// counted in memory only.
func (q *Queue) Attempted(sink string, seq uint64, attempts int, _ string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	s := q.sinks[sink]
	if s == nil || s.inFlight[seq] == nil {
		return fmt.Errorf("%w: %s/%d", queue.ErrNotInFlight, sink, seq)
	}
	e := s.inFlight[seq]
	e.attempts = attempts
	e.underWay = false // the attempt has ended: a retry waits
	if e.from == "" && !e.rec.p.gone {
		e.rec.kept = true
		q.attempts.put(e.rec.attemptsKey(), attempts)
	}
	return nil
}

// Relinquished reports, for each of sink's in-flight deliveries seqs,
// whether the queue took it back: its record was handed back in a
// rebalance (or the delivery is no longer in flight at all). Those are
// ended here; the delivery loop drops them instead of sending them. The
// others are under way from now until their attempt ends (Attempted,
// Release, or settled): a rebalance waits for them, for a while.
func (q *Queue) Relinquished(sink string, seqs []uint64) []bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	gone := make([]bool, len(seqs))
	s := q.sinks[sink]
	for i, seq := range seqs {
		var e *entry
		if s != nil {
			e = s.inFlight[seq]
		}
		switch {
		case e == nil:
			gone[i] = true
		case e.rec.handedBack():
			delete(s.inFlight, seq)
			gone[i] = true
		default:
			e.underWay = true
		}
	}
	return gone
}

// Release hands an in-flight delivery back: Next hands it out again before
// any delivery with a higher seq. When its record's generation is ending,
// it is dropped instead, to be read again by the partition's next holder.
func (q *Queue) Release(sink string, seq uint64) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	s, e, err := q.inFlight(sink, seq)
	if err != nil {
		return err
	}
	if e.rec.handedBack() {
		return nil
	}
	i := sort.Search(len(s.pending), func(i int) bool { return s.pending[i].seq > e.seq })
	s.pending = append(s.pending, nil)
	copy(s.pending[i+1:], s.pending[i:])
	s.pending[i] = e
	s.wakeAll()
	return nil
}

// Forward moves an in-flight delivery of from to the sink to (its
// dead-letter sink), behind to's backlog. Its record settles when the
// delivery to to ends.
func (q *Queue) Forward(from string, seq uint64, to string, why queue.Failure) error {
	if to == from {
		return fmt.Errorf("kafkaqueue: forward %s/%d to itself", from, seq)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	_, e, err := q.inFlight(from, seq)
	if err != nil {
		return err
	}
	if e.rec.handedBack() {
		return nil
	}
	q.seq++
	q.sinkLocked(to).push(&entry{seq: q.seq, body: e.body, rec: e.rec, from: from, why: why})
	return nil
}

// Bury writes an in-flight delivery to the dead-letter topic, in the
// background; its record settles once the brokers have it.
func (q *Queue) Bury(sink string, seq uint64, attempts int, reason string) error {
	q.mu.Lock()
	_, e, err := q.inFlight(sink, seq)
	q.mu.Unlock()
	if err != nil {
		return err
	}
	e.attempts = attempts
	q.bury(sink, e, reason)
	return nil
}
