package queue

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	"github.com/cockroachdb/pebble"

	"github.com/hookbridge/hookbridge/internal/wire"
)

// Delivery is one pending (event, sink) pair.
type Delivery struct {
	Seq      uint64
	Sink     string
	Event    []byte
	Attempts int    // attempts made so far (persisted)
	From     string // for a dead-letter forward: the sink that gave up; else ""
	Reason   string // for a dead-letter forward: why
	Status   int    // for a dead-letter forward: the status of the destination's last answer; 0 without one
	Answer   []byte // for a dead-letter forward: the start of that answer's body
}

// Failure is what a dead-letter forward says of the sink that gave up.
func (d Delivery) Failure() Failure {
	return Failure{Reason: d.Reason, Status: d.Status, Answer: d.Answer}
}

// Next waits until at least one delivery for sink is pending and not already
// handed out (in flight), then returns up to max of them in seq order,
// marking them in flight. Deliveries released with Release come first. It
// returns ctx.Err() when ctx ends and ErrClosed when the store closes. After
// a restart nothing is in flight, so everything pending is handed out again.
//
// With maxBytes > 0 the events returned take at most maxBytes, but for the
// first, which is returned whatever its size: a backlog of large events is
// handed out a few at a time, not max of them at once.
func (s *Store) Next(ctx context.Context, sink string, max, maxBytes int) ([]Delivery, error) {
	if err := checkSinkName(sink); err != nil {
		return nil, err
	}
	if max < 1 {
		max = 1
	}
	st := s.sink(sink)
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		// Take the channel before looking, so a record committed while we
		// look still wakes us.
		wake := st.waitChan()
		out, err := s.take(st, max, maxBytes)
		if err != nil || len(out) > 0 {
			return out, err
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-s.closing:
			return nil, ErrClosed
		}
	}
}

// TryNext is Next without the wait: it returns at once, with nothing when
// no delivery for sink is pending.
func (s *Store) TryNext(sink string, max, maxBytes int) ([]Delivery, error) {
	if err := checkSinkName(sink); err != nil {
		return nil, err
	}
	if max < 1 {
		return nil, nil
	}
	return s.take(s.sink(sink), max, maxBytes)
}

// fits reports whether an event of n bytes joins picks of size bytes under
// maxBytes (<= 0: no limit); the first always does.
func fits(picks, size, n, maxBytes int) bool {
	return picks == 0 || maxBytes <= 0 || size+n <= maxBytes
}

type pick struct {
	seq uint64
	h   *held
}

// take hands out up to max deliveries of st, of at most maxBytes (see
// Next): released ones first, then pending records from the cursor up to
// the visible seq.
func (s *Store) take(st *sinkState, max, maxBytes int) ([]Delivery, error) {
	if err := s.begin(); err != nil {
		return nil, err
	}
	defer s.end()
	st.scanMu.Lock()
	defer st.scanMu.Unlock()

	st.mu.Lock()
	n := min(max, len(st.order))
	picks := make([]pick, 0, n)
	size := 0 // bytes of the bodies known before the read: those in the records
	for _, seq := range st.order[:n] {
		h := st.released[seq]
		if !fits(len(picks), size, len(h.body), maxBytes) {
			break
		}
		picks = append(picks, pick{seq: seq, h: h})
		size += len(h.body)
		delete(st.released, seq)
	}
	st.order = st.order[len(picks):]
	cursor := st.cursor
	st.mu.Unlock()
	released := slices.Clone(picks)
	var buried []uint64
	giveBack := func() { // on failure: released deliveries stay released
		st.mu.Lock()
		for _, p := range released {
			if !slices.Contains(buried, p.seq) {
				st.release(p.seq, p.h)
			}
		}
		st.mu.Unlock()
	}

	newCursor := cursor
	if len(picks) < max && len(picks) == n {
		visible := s.seqs.visible()
		if cursor <= visible {
			var err error
			picks, newCursor, err = s.scanPending(st, picks, max, maxBytes, size, cursor, visible)
			if err != nil {
				giveBack()
				return nil, err
			}
		}
	}

	bodies, err := s.readBodies(picks)
	if err != nil {
		giveBack()
		return nil, err
	}
	out := make([]Delivery, 0, len(picks))
	kept := make([]pick, 0, len(picks))
	for i, p := range picks {
		body := bodies[i]
		if body == nil {
			// Only a damaged store gets here; keep the record visible in
			// the dead-letter list rather than wedging the sink.
			if err := s.buryOrphan(st, p.seq, p.h); err != nil {
				giveBack()
				return nil, err
			}
			buried = append(buried, p.seq)
			continue
		}
		kept = append(kept, p)
		out = append(out, Delivery{
			Seq:      p.seq,
			Sink:     st.name,
			Event:    body,
			Attempts: p.h.attempts,
			From:     p.h.from,
			Reason:   p.h.reason,
			Status:   p.h.status,
			Answer:   p.h.answer,
		})
	}

	// The size of a body several sinks share is known once read: what no
	// longer fits goes back, to be handed out first next time.
	fit := len(out)
	if maxBytes > 0 {
		size = 0
		for i, d := range out {
			if !fits(i, size, len(d.Event), maxBytes) {
				fit = i
				break
			}
			size += len(d.Event)
		}
	}
	st.mu.Lock()
	for _, p := range kept[:fit] {
		st.inFlight[p.seq] = p.h
	}
	for _, p := range kept[fit:] {
		st.release(p.seq, p.h)
	}
	st.cursor = newCursor
	st.mu.Unlock()
	return out[:fit], nil
}

// scanPending appends the pending records of st from cursor through visible
// to picks, up to max in all and while the bodies they carry fit maxBytes
// beside the size already picked, and returns the new cursor.
func (s *Store) scanPending(st *sinkState, picks []pick, max, maxBytes, size int, cursor, visible uint64) ([]pick, uint64, error) {
	iter, err := s.db.NewIter(&pebble.IterOptions{
		LowerBound: pendingKey(nil, st.name, cursor),
		UpperBound: pendingKey(nil, st.name, visible+1),
	})
	if err != nil {
		return picks, cursor, fmt.Errorf("queue: next %s: %w", st.name, err)
	}
	newCursor := cursor // nothing picked yet; past visible once the scan reaches its end
	for iter.First(); iter.Valid() && len(picks) < max; iter.Next() {
		_, seq, ok := parsePendingKey(iter.Key())
		if !ok {
			continue
		}
		rec, err := decodePendingRecord(iter.Value())
		if err != nil {
			// Deliver what can be delivered: the body is keyed by seq.
			// Assume the worst for settling it: overwritten, and sharing
			// its body (so the stored reference count decides).
			s.log.Error("queue: damaged pending record; delivering with default state",
				"sink", st.name, "seq", seq, "error", err)
			rec = pendingRecord{Rewritten: true, Shared: true}
		}
		if !fits(len(picks), size, len(rec.Body), maxBytes) {
			break // this record starts the next take
		}
		size += len(rec.Body)
		picks = append(picks, pick{seq: seq, h: heldFrom(seq, rec)})
		newCursor = seq + 1
	}
	if !iter.Valid() {
		newCursor = visible + 1
	}
	if err := iter.Close(); err != nil {
		return picks, cursor, fmt.Errorf("queue: next %s: %w", st.name, err)
	}
	return picks, newCursor, nil
}

// readBodies returns the event body of each pick: the one its pending
// record carries, or else e/<ref>, read with one iterator for all of them
// (cheaper than a Get each). A missing body is nil.
func (s *Store) readBodies(picks []pick) ([][]byte, error) {
	bodies := make([][]byte, len(picks))
	var lo, hi uint64
	stored := false
	for i, p := range picks {
		switch {
		case p.h.body != nil:
			bodies[i] = p.h.body
		case !stored:
			lo, hi, stored = p.h.ref, p.h.ref, true
		default:
			lo, hi = min(lo, p.h.ref), max(hi, p.h.ref)
		}
	}
	if !stored {
		return bodies, nil
	}
	iter, err := s.db.NewIter(&pebble.IterOptions{LowerBound: eventKey(nil, lo), UpperBound: eventKey(nil, hi+1)})
	if err != nil {
		return nil, fmt.Errorf("queue: read events: %w", err)
	}
	var key []byte
	for i, p := range picks {
		if p.h.body != nil {
			continue
		}
		key = eventKey(key, p.h.ref)
		if !iter.SeekGE(key) || !bytes.Equal(iter.Key(), key) {
			continue
		}
		v, err := iter.ValueAndErr()
		if err != nil {
			break
		}
		body, err := decodeEvent(v)
		if err != nil {
			s.log.Error("queue: damaged event record", "seq", p.h.ref, "error", err)
			continue
		}
		bodies[i] = append(make([]byte, 0, len(body)), body...)
	}
	if err := iter.Close(); err != nil {
		return nil, fmt.Errorf("queue: read events: %w", err)
	}
	return bodies, nil
}

// eventBody returns the body of a held delivery, reading e/<ref> into a new
// slice unless the record carries it.
func (s *Store) eventBody(h *held) ([]byte, error) {
	if h.body != nil {
		return h.body, nil
	}
	v, closer, err := s.db.Get(eventKey(nil, h.ref))
	if err != nil {
		return nil, err
	}
	defer closer.Close()
	body, err := decodeEvent(v)
	if err != nil {
		return nil, err
	}
	return append([]byte(nil), body...), nil
}

// release puts a handed-out delivery back, to be handed out again before
// anything past the cursor. Called with st.mu held.
func (st *sinkState) release(seq uint64, h *held) {
	st.released[seq] = h
	i, _ := slices.BinarySearch(st.order, seq)
	st.order = slices.Insert(st.order, i, seq)
}

// settle takes a delivery out of the in-flight set so that exactly one
// settling operation acts on it; restore puts it back if that fails.
func (s *Store) settle(sink string, seq uint64) (*sinkState, *held, error) {
	if err := checkSinkName(sink); err != nil {
		return nil, nil, err
	}
	st := s.lookupSink(sink)
	if st == nil {
		return nil, nil, fmt.Errorf("%w: %s/%d", ErrNotInFlight, sink, seq)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	h, ok := st.inFlight[seq]
	if !ok {
		return nil, nil, fmt.Errorf("%w: %s/%d", ErrNotInFlight, sink, seq)
	}
	delete(st.inFlight, seq)
	return st, h, nil
}

func (st *sinkState) restore(seq uint64, h *held) {
	st.mu.Lock()
	st.inFlight[seq] = h
	st.mu.Unlock()
}

// deletePending removes a pending record. A record written once is removed
// with SingleDelete, which lets compaction drop both the record and its
// deletion as soon as they meet (usually in the memtable). It builds the key
// in buf, which the batch copies, and returns buf for the next key.
func deletePending(batch *pebble.Batch, buf []byte, sink string, seq uint64, h *held) []byte {
	key := pendingKey(buf, sink, seq)
	if h.rewritten {
		_ = batch.Delete(key, nil)
	} else {
		_ = batch.SingleDelete(key, nil)
	}
	return key
}

// dropPending removes pending records of sink and releases their references
// to event bodies, deleting each body with its last reference, in one batch.
// extra adds more operations to the same batch.
func (s *Store) dropPending(sink string, picks []pick, extra func(*pebble.Batch)) error {
	// Lock the reference counts of shared bodies, in stripe order so that
	// concurrent calls cannot deadlock.
	var stripes []int
	for _, p := range picks {
		if p.h.shared {
			stripes = append(stripes, int(p.h.ref%uint64(len(s.refLocks))))
		}
	}
	slices.Sort(stripes)
	stripes = slices.Compact(stripes)
	for _, i := range stripes {
		s.refLocks[i].Lock()
	}
	defer func() {
		for _, i := range stripes {
			s.refLocks[i].Unlock()
		}
	}()

	counts, err := s.readRefs(picks)
	if err != nil {
		return err
	}
	batch := s.db.NewBatch()
	defer batch.Close()
	// The q/ keys first, then the e/ keys: each run is in seq order, so
	// every memtable insert lands next to the one before it.
	var key []byte
	for _, p := range picks {
		key = deletePending(batch, key, sink, p.seq, p.h)
	}
	gone := 0
	for _, p := range picks {
		if p.h.body != nil { // the record carried the body
			gone++
			continue
		}
		if p.h.shared {
			counts[p.h.ref].refs--
			continue
		}
		// The only reference; e/ keys are written exactly once.
		key = eventKey(key, p.h.ref)
		_ = batch.SingleDelete(key, nil)
		gone++
	}
	for ref, rs := range counts {
		key := refsKey(nil, ref)
		switch {
		case rs.refs <= 0:
			_ = batch.SingleDelete(eventKey(nil, ref), nil)
			gone++
			if rs.stored {
				_ = batch.Delete(key, nil)
			}
		case rs.refs == 1:
			if rs.stored {
				_ = batch.Delete(key, nil) // no record: one reference
			}
		default:
			_ = batch.Set(key, appendUvarint(uint64(rs.refs)), nil)
		}
	}
	if extra != nil {
		extra(batch)
	}
	if err := batch.Commit(pebble.NoSync); err != nil {
		return err
	}
	s.noteUnsynced()
	s.events.Add(int64(-gone))
	return nil
}

// refState is the reference count of a shared event body.
type refState struct {
	refs   int64
	stored bool // r/<seq> exists; without it the count is 1
}

// readRefs reads the reference counts of the shared bodies of picks, with
// one iterator (acknowledged batches are in seq order).
func (s *Store) readRefs(picks []pick) (map[uint64]*refState, error) {
	var refs []uint64
	for _, p := range picks {
		if p.h.shared {
			refs = append(refs, p.h.ref)
		}
	}
	if len(refs) == 0 {
		return nil, nil
	}
	slices.Sort(refs)
	refs = slices.Compact(refs)
	counts := make(map[uint64]*refState, len(refs))
	iter, err := s.db.NewIter(&pebble.IterOptions{
		LowerBound: refsKey(nil, refs[0]),
		UpperBound: refsKey(nil, refs[len(refs)-1]+1),
	})
	if err != nil {
		return nil, fmt.Errorf("read reference counts: %w", err)
	}
	var key []byte
	for _, ref := range refs {
		rs := &refState{refs: 1}
		counts[ref] = rs
		key = refsKey(key, ref)
		if !iter.SeekGE(key) || !bytes.Equal(iter.Key(), key) {
			continue
		}
		v, err := iter.ValueAndErr()
		if err != nil {
			break
		}
		d := wire.NewReader(v, errCorrupt)
		n := d.Uvarint()
		if err := d.Finish(); err != nil || n > math.MaxInt32 {
			_ = iter.Close()
			return nil, fmt.Errorf("reference count of %d: %w", ref, errCorrupt)
		}
		rs.refs, rs.stored = int64(n), true
	}
	if err := iter.Close(); err != nil {
		return nil, fmt.Errorf("read reference counts: %w", err)
	}
	return counts, nil
}

func appendUvarint(v uint64) []byte { return binary.AppendUvarint(nil, v) }

// Ack forgets a delivered (sink, seq); the event body is deleted with its
// last pending record. Not synced: after a crash the delivery may be handed
// out again (at-least-once).
func (s *Store) Ack(sink string, seq uint64) error {
	return s.AckAll(sink, seq)
}

// AckAll acknowledges several in-flight deliveries of sink in one write:
// all of them, or none when one is not in flight.
func (s *Store) AckAll(sink string, seqs ...uint64) error {
	if err := checkSinkName(sink); err != nil {
		return err
	}
	if err := s.begin(); err != nil {
		return err
	}
	defer s.end()
	st := s.lookupSink(sink)
	if st == nil {
		return fmt.Errorf("%w: %s/%v", ErrNotInFlight, sink, seqs)
	}
	picks := make([]pick, 0, len(seqs))
	st.mu.Lock()
	for _, seq := range seqs {
		h, ok := st.inFlight[seq]
		if !ok {
			for _, p := range picks {
				st.inFlight[p.seq] = p.h
			}
			st.mu.Unlock()
			return fmt.Errorf("%w: %s/%d", ErrNotInFlight, sink, seq)
		}
		delete(st.inFlight, seq)
		picks = append(picks, pick{seq: seq, h: h})
	}
	st.mu.Unlock()
	if err := s.dropPending(sink, picks, nil); err != nil {
		st.mu.Lock()
		for _, p := range picks {
			st.inFlight[p.seq] = p.h
		}
		st.mu.Unlock()
		return fmt.Errorf("queue: ack %s: %w", sink, err)
	}
	st.addPending(-len(picks))
	return nil
}

// Attempted persists the attempt count and last error of an in-flight
// delivery, which stays in flight.
func (s *Store) Attempted(sink string, seq uint64, attempts int, lastErr string) error {
	if attempts < 0 {
		return fmt.Errorf("queue: attempted %s/%d: negative attempts %d", sink, seq, attempts)
	}
	if err := checkSinkName(sink); err != nil {
		return err
	}
	if err := s.begin(); err != nil {
		return err
	}
	defer s.end()
	st := s.lookupSink(sink)
	if st == nil {
		return fmt.Errorf("%w: %s/%d", ErrNotInFlight, sink, seq)
	}
	// Hold st.mu through the write so that a concurrent Ack cannot delete
	// the record first and have this write bring it back.
	st.mu.Lock()
	defer st.mu.Unlock()
	h, ok := st.inFlight[seq]
	if !ok {
		return fmt.Errorf("%w: %s/%d", ErrNotInFlight, sink, seq)
	}
	next := *h
	next.attempts, next.lastErr, next.rewritten = attempts, lastErr, true
	if err := s.db.Set(pendingKey(nil, sink, seq), next.record(seq).encode(), pebble.NoSync); err != nil {
		return fmt.Errorf("queue: attempted %s/%d: %w", sink, seq, err)
	}
	s.noteUnsynced()
	*h = next
	return nil
}

// Release puts an in-flight delivery back: it stays pending and Next hands
// it out again, before any delivery with a higher seq.
func (s *Store) Release(sink string, seq uint64) error {
	st, h, err := s.settle(sink, seq)
	if err != nil {
		return err
	}
	st.mu.Lock()
	st.release(seq, h)
	st.mu.Unlock()
	st.notify()
	return nil
}

// Forward moves an in-flight delivery from sink from to sink to (its
// dead-letter sink) in one atomic write: the record leaves from and a new
// pending record for to, carrying from and why and sharing the event
// body (or carrying it, as the record it replaces did), is queued behind
// to's current backlog.
func (s *Store) Forward(from string, seq uint64, to string, why Failure) error {
	if err := checkSinkName(to); err != nil {
		return err
	}
	if to == from {
		return fmt.Errorf("queue: forward %s/%d to itself", from, seq)
	}
	if err := s.begin(); err != nil {
		return err
	}
	defer s.end()
	st, h, err := s.settle(from, seq)
	if err != nil {
		return err
	}
	target := s.sink(to)
	sp, err := s.seqs.reserve(1, []string{to})
	if err != nil {
		st.restore(seq, h)
		return fmt.Errorf("queue: forward %s/%d: %w", from, seq, err)
	}
	rec := pendingRecord{At: h.at, Ref: h.ref, Shared: h.shared, From: from, Reason: why.Reason,
		Status: why.Status, Answer: why.Answer}
	if h.body != nil {
		rec.Ref, rec.Body = 0, h.body
	}
	batch := s.db.NewBatch()
	deletePending(batch, nil, from, seq, h)
	_ = batch.Set(pendingKey(nil, to, sp.first), rec.encode(), nil)
	answered := s.formatFor(batch, rec)
	err = batch.Commit(pebble.NoSync)
	_ = batch.Close()
	if err == nil {
		if answered {
			s.answered.Store(true)
		}
		s.noteUnsynced()
		st.addPending(-1)
		target.addPending(1)
	}
	s.wakeSinks(s.seqs.finish(sp))
	if err != nil {
		st.restore(seq, h)
		return fmt.Errorf("queue: forward %s/%d: %w", from, seq, err)
	}
	return nil
}

// formatFor adds m/format = answeredFormat to batch when rec is the first
// pending record of the store that carries an answer, which a format-4
// bridge cannot read, and reports whether it did; once the batch is
// committed the caller sets s.answered.
func (s *Store) formatFor(batch *pebble.Batch, rec pendingRecord) bool {
	if (rec.Status == 0 && len(rec.Answer) == 0) || s.answered.Load() {
		return false
	}
	_ = batch.Set([]byte(keyFormat), appendUint64(nil, answeredFormat), nil)
	return true
}

// Bury moves an in-flight delivery into the store's dead-letter list (for a
// sink without a dead-letter sink), with a copy of the event.
func (s *Store) Bury(sink string, seq uint64, attempts int, reason string) error {
	if err := s.begin(); err != nil {
		return err
	}
	defer s.end()
	st, h, err := s.settle(sink, seq)
	if err != nil {
		return err
	}
	if err := s.bury(sink, seq, h, attempts, reason); err != nil {
		st.restore(seq, h)
		return fmt.Errorf("queue: bury %s/%d: %w", sink, seq, err)
	}
	st.addPending(-1)
	return nil
}

func (s *Store) bury(sink string, seq uint64, h *held, attempts int, reason string) error {
	body, err := s.eventBody(h)
	if err != nil {
		return err
	}
	n, err := s.seqs.unique()
	if err != nil {
		return err
	}
	at := s.now().UnixNano()
	rec := deadRecord{At: at, Attempts: attempts, Sink: sink, From: h.from, Reason: reason, Event: body}
	if h.from != "" {
		if h.reason != "" {
			rec.Reason = fmt.Sprintf("%s (dead-lettered by %s: %s)", reason, h.from, h.reason)
		}
		// Kept as this dead-letter sink was sent it, with the sink that
		// gave up first and why, so that a replay to it (the default)
		// sends what a dead-letter sink expects. A replay elsewhere
		// takes them off again (Replay).
		rec.Event = withDeadLetterExtensions(body, h.from, Failure{Reason: h.reason, Status: h.status, Answer: h.answer})
	}
	err = s.dropPending(sink, []pick{{seq: seq, h: h}}, func(b *pebble.Batch) {
		_ = b.Set(deadKey(at, n), rec.encode(), nil)
	})
	if err != nil {
		return err
	}
	s.deadLetters.Add(1)
	return nil
}

// buryOrphan dead-letters a pending record whose event body is missing.
func (s *Store) buryOrphan(st *sinkState, seq uint64, h *held) error {
	s.log.Error("queue: pending record without an event body; dead-lettering it", "sink", st.name, "seq", seq)
	n, err := s.seqs.unique()
	if err != nil {
		return err
	}
	at := s.now().UnixNano()
	rec := deadRecord{At: at, Attempts: h.attempts, Sink: st.name, From: h.from,
		Reason: fmt.Sprintf("queue: event body %d missing from the store", h.ref)}
	batch := s.db.NewBatch()
	defer batch.Close()
	deletePending(batch, nil, st.name, seq, h)
	_ = batch.Set(deadKey(at, n), rec.encode(), nil)
	if err := batch.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("queue: dead-letter %s/%d: %w", st.name, seq, err)
	}
	s.noteUnsynced()
	st.addPending(-1)
	s.deadLetters.Add(1)
	return nil
}
