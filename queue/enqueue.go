package queue

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	cloudevent "github.com/cloudevents/sdk-go/v2/event"
	"github.com/cockroachdb/pebble"
)

// Item is one event to queue.
type Item struct {
	ID    string   // CloudEvent id, the dedup key
	Event []byte   // the event, encoded by eventcodec (opaque to the queue)
	Sinks []string // the sinks it must be delivered to; none: only the dedup record is written
	// CloudEvent is the event Event encodes, when the caller has it: a
	// queue that writes events in another form (the Kafka queue) uses it
	// rather than decoding Event again. The embedded store ignores it.
	CloudEvent *cloudevent.Event
}

// claim marks an event id that an Enqueue is working on.
// Whoever finds an id claimed waits for done, then reads accepted.
type claim struct {
	done     chan struct{}
	accepted bool // the id is stored (now or earlier); false: the owner failed, try again
}

type claimed struct {
	index int // into the items
	id    string
	c     *claim
}

type waiter struct {
	index int
	c     *claim
}

// Enqueue durably stores items (fsync'd, group-committed with concurrent
// callers) before returning. dup[i] is true when items[i].ID was already
// accepted within the dedup window, or earlier in items; nothing is stored
// for it.
//
// When two calls race with the same new id, exactly one stores it; the other
// waits until the first has committed and then reports dup, or stores the
// item itself if the first failed. On error nothing is reported: some items
// may be stored, and a retry reports those as duplicates.
func (s *Store) Enqueue(ctx context.Context, items []Item) (dup []bool, err error) {
	for i := range items {
		if items[i].ID == "" {
			return nil, fmt.Errorf("queue: item %d has no id", i)
		}
		if len(items[i].Sinks) > 0 && len(items[i].Event) == 0 {
			return nil, fmt.Errorf("queue: item %d (%s) has no event", i, items[i].ID)
		}
		for _, sink := range items[i].Sinks {
			if err := checkSinkName(sink); err != nil {
				return nil, err
			}
		}
	}
	if err := s.begin(); err != nil {
		return nil, err
	}
	defer s.end()

	dup = make([]bool, len(items))
	todo := make([]int, len(items))
	for i := range todo {
		todo[i] = i
	}
	for len(todo) > 0 {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		mine, waits := s.claimItems(items, todo, dup)
		if len(mine) > 0 {
			err := s.store(items, mine, dup)
			s.releaseClaims(mine, err == nil)
			if err != nil {
				return nil, err
			}
		}
		// Wait only after our own claims are released: two calls holding
		// each other's ids must not wait on each other.
		todo = todo[:0]
		for _, w := range waits {
			select {
			case <-w.c.done:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			if w.c.accepted {
				dup[w.index] = true
			} else {
				todo = append(todo, w.index)
			}
		}
	}
	return dup, nil
}

// claimItems claims the ids of items[todo] that nobody else is accepting.
// It returns the claims taken and the claims of others to wait for; an id
// repeated within todo is marked dup.
func (s *Store) claimItems(items []Item, todo []int, dup []bool) (mine []claimed, waits []waiter) {
	s.claimMu.Lock()
	defer s.claimMu.Unlock()
	for _, i := range todo {
		id := items[i].ID
		if c, ok := s.claims[id]; ok {
			if slices.ContainsFunc(mine, func(m claimed) bool { return m.c == c }) {
				dup[i] = true
			} else {
				waits = append(waits, waiter{index: i, c: c})
			}
			continue
		}
		c := &claim{done: make(chan struct{})}
		s.claims[id] = c
		mine = append(mine, claimed{index: i, id: id, c: c})
	}
	return mine, waits
}

func (s *Store) releaseClaims(cs []claimed, accepted bool) {
	s.claimMu.Lock()
	defer s.claimMu.Unlock()
	for _, m := range cs {
		m.c.accepted = accepted
		delete(s.claims, m.id)
		close(m.c.done)
	}
}

// store writes the claimed items that are not duplicates in one synced batch.
func (s *Store) store(items []Item, mine []claimed, dup []bool) error {
	now := s.now()
	at := now.UnixNano()
	fresh := make([]int, 0, len(mine))
	digests := make([]idDigest, 0, len(mine))
	events := 0
	var sinks []string
	for _, m := range mine {
		d := digestOf(m.id)
		isDup, err := s.acceptedWithin(d, now)
		if err != nil {
			return err
		}
		if isDup {
			dup[m.index] = true
			continue
		}
		fresh = append(fresh, m.index)
		digests = append(digests, d)
		if len(items[m.index].Sinks) > 0 {
			events++
			sinks = append(sinks, items[m.index].Sinks...)
		}
	}
	if len(fresh) == 0 {
		return nil
	}
	// Duplicates need no space; new events are refused before the disk fills.
	if err := s.space.check(now); err != nil {
		return err
	}
	slices.Sort(sinks)
	sinks = slices.Compact(sinks)

	var sp *span
	if events > 0 {
		var err error
		if sp, err = s.seqs.reserve(events, sinks); err != nil {
			return err
		}
	}
	// Into the filter before the commit, so that no later Enqueue of these
	// ids can miss them; if the commit fails they are false positives.
	s.dedup.add(at, digests)
	s.noteAcceptedBucket(s.buckets.of(at))
	job := &commitJob{items: items, fresh: fresh, digests: digests, at: at, sp: sp}
	err := s.commit(job)
	if err == nil {
		s.events.Add(int64(events))
		for sink, n := range job.perSink {
			s.sink(sink).addPending(n)
		}
	}
	if sp != nil {
		s.wakeSinks(s.seqs.finish(sp))
	}
	return err
}

// uniqueSinks drops repeated names (the caller should not pass any, but a
// repeat would leave the event's reference count too high to ever reach zero).
func uniqueSinks(sinks []string) []string {
	for i := 1; i < len(sinks); i++ {
		if slices.Contains(sinks[:i], sinks[i]) {
			out := slices.Clone(sinks)
			slices.Sort(out)
			return slices.Compact(out)
		}
	}
	return sinks
}

// setPendingInline writes a pending record that carries its body (header,
// from pendingRecord.appendHeader, then body) without copying the body
// twice.
func setPendingInline(batch *pebble.Batch, key, header, body []byte) {
	op := batch.SetDeferred(len(key), len(header)+len(body))
	copy(op.Key, key)
	copy(op.Value[copy(op.Value, header):], body)
	_ = op.Finish()
}

// setEvent writes e/<seq> without copying the body twice.
func setEvent(batch *pebble.Batch, key, body []byte) {
	op := batch.SetDeferred(len(key), 1+len(body))
	copy(op.Key, key)
	op.Value[0] = eventRecordVersion
	copy(op.Value[1:], body)
	_ = op.Finish()
}

func (s *Store) withinWindow(now time.Time, acceptedAt int64) bool {
	return now.Sub(time.Unix(0, acceptedAt)) < s.window
}

// acceptedWithin reports whether the id with this digest was accepted
// within the window before now. The dedup filter answers most new ids
// without a lookup, and tells the others which buckets to read.
func (s *Store) acceptedWithin(id idDigest, now time.Time) (bool, error) {
	from, through, maybe := s.dedup.mayContain(id, now.UnixNano())
	if !maybe {
		return false, nil
	}
	oldest := now.Add(-s.window).UnixNano() + 1 // the earliest acceptance still within the window
	lo := s.buckets.of(max(from, oldest))
	hi := min(s.buckets.of(through), s.newestBucket.Load())
	if lo > hi {
		return false, nil
	}
	s.dedupGets.Add(1)
	at, found, err := s.acceptedAt(id, lo, hi)
	if err != nil {
		return false, fmt.Errorf("queue: dedup lookup: %w", err)
	}
	return found && s.withinWindow(now, at), nil
}

// maxBucketGets is the most buckets a lookup reads one by one; a wider span
// (only after the clock stepped back) is scanned for the buckets that exist.
const maxBucketGets = 16

// acceptedAt returns the newest acceptance of id recorded in buckets lo
// through hi.
func (s *Store) acceptedAt(id idDigest, lo, hi int64) (at int64, found bool, err error) {
	if hi-lo < maxBucketGets {
		var key []byte
		for b := hi; b >= lo; b-- { // newest first: a provider's retry is found at once
			key = acceptedKey(key, b, id[:])
			v, found, err := s.getUint64(key)
			if err != nil || found {
				return int64(v), found, err
			}
		}
		return 0, false, nil
	}
	iter, err := s.db.NewIter(&pebble.IterOptions{
		LowerBound: acceptedKey(nil, lo, ""),
		UpperBound: prefixEnd([]byte(prefixAccepted)),
	})
	if err != nil {
		return 0, false, err
	}
	defer iter.Close()
	for b := lo; b <= hi; {
		want := acceptedKey(nil, b, id[:])
		if !iter.SeekGE(want) {
			break
		}
		next, _, ok := splitAcceptedKey(iter.Key())
		switch {
		case !ok || next > hi:
			b = hi + 1
		case bytes.Equal(iter.Key(), want):
			if len(iter.Value()) != 8 {
				return 0, false, fmt.Errorf("%w: dedup record %q", errCorrupt, iter.Key())
			}
			at, found = int64(binary.BigEndian.Uint64(iter.Value())), true
			b++ // a newer bucket may hold a newer acceptance
		case next > b:
			b = next // skip the empty buckets
		default:
			b++
		}
	}
	return at, found, iter.Error()
}

// noteAcceptedBucket records that a dedup record goes into bucket b, before
// it is committed: lookups read up to the newest bucket, and the janitor
// deletes again below a bucket written after it was cleared (the clock
// stepped back a window).
func (s *Store) noteAcceptedBucket(b int64) {
	for cur := s.newestBucket.Load(); b > cur && !s.newestBucket.CompareAndSwap(cur, b); cur = s.newestBucket.Load() {
	}
	for cur := s.expiredBelow.Load(); b < cur && !s.expiredBelow.CompareAndSwap(cur, b); cur = s.expiredBelow.Load() {
	}
}

// janitor removes expired dedup records every interval until Close.
func (s *Store) janitor(interval time.Duration) {
	defer close(s.janitorDone)
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-s.closing:
			return
		case <-ticker.C:
		}
		if removed, err := s.expireDedup(); err != nil && !errors.Is(err, ErrClosed) {
			s.log.Warn("queue: removing expired dedup records failed", "error", err)
		} else if removed {
			s.log.Debug("queue: removed expired dedup records")
		}
	}
}

// expireDedup removes the buckets of dedup records that have all left the
// window with one range deletion, which Pebble applies by dropping the
// tables it covers, instead of the janitor deleting, and compactions
// carrying, a tombstone per id. It reports whether it issued one.
func (s *Store) expireDedup() (bool, error) {
	if err := s.begin(); err != nil {
		return false, err
	}
	defer s.end()
	s.janitorMu.Lock()
	defer s.janitorMu.Unlock()

	cutoff := s.now().Add(-s.window).UnixNano() // accepted at or before cutoff: expired
	below := s.buckets.of(cutoff) + 1
	if s.buckets.last(below-1) > cutoff {
		below-- // the cutoff's own bucket holds later acceptances too
	}
	done := s.expiredBelow.Load()
	if below <= done {
		return false, nil
	}
	err := s.db.DeleteRange([]byte(prefixAccepted), acceptedKey(nil, below, ""), pebble.NoSync)
	if err != nil {
		return false, fmt.Errorf("queue: expire dedup records: %w", err)
	}
	s.expiredBelow.CompareAndSwap(done, below) // unless a bucket below was written meanwhile
	return true, nil
}
