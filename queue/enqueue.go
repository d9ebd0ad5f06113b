package queue

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cockroachdb/pebble"
)

// Item is one event to queue.
type Item struct {
	ID    string   // CloudEvent id, the dedup key
	Event []byte   // the event in structured JSON form (opaque to the queue)
	Sinks []string // the sinks it must be delivered to; none: only the dedup record is written
}

// claim marks an event id that an Enqueue (or the janitor) is working on.
// Whoever finds an id claimed waits for done, then reads accepted.
type claim struct {
	done     chan struct{}
	accepted bool // the id is stored (now or earlier); false: the owner failed, try again
}

type claimed struct {
	index int // into the items, or -1 for the janitor
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

// tryClaim claims id unless someone else holds it.
func (s *Store) tryClaim(id string) (claimed, bool) {
	s.claimMu.Lock()
	defer s.claimMu.Unlock()
	if _, ok := s.claims[id]; ok {
		return claimed{}, false
	}
	c := &claim{done: make(chan struct{})}
	s.claims[id] = c
	return claimed{index: -1, id: id, c: c}, true
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
	freshIDs := make([]string, 0, len(mine))
	events := 0
	var sinks []string
	for _, m := range mine {
		isDup, err := s.acceptedWithin(m.id, now)
		if err != nil {
			return err
		}
		if isDup {
			dup[m.index] = true
			continue
		}
		fresh = append(fresh, m.index)
		freshIDs = append(freshIDs, m.id)
		if len(items[m.index].Sinks) > 0 {
			events++
			sinks = append(sinks, items[m.index].Sinks...)
		}
	}
	if len(fresh) == 0 {
		return nil
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
	s.dedup.add(at, freshIDs)
	job := &commitJob{items: items, fresh: fresh, at: at, sp: sp}
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

// acceptedWithin reports whether id was accepted within the window before
// now. The dedup filter answers most new ids without a lookup.
func (s *Store) acceptedWithin(id string, now time.Time) (bool, error) {
	if !s.dedup.mayContain(id, now.UnixNano()) {
		return false, nil
	}
	s.dedupGets.Add(1)
	prev, found, err := s.dedupAt(id)
	if err != nil {
		return false, err
	}
	return found && s.withinWindow(now, prev), nil
}

// dedupAt returns when id was accepted, if it has a dedup record.
func (s *Store) dedupAt(id string) (int64, bool, error) {
	v, found, err := s.getUint64(dedupKey(nil, id))
	if err != nil {
		return 0, false, fmt.Errorf("queue: dedup lookup: %w", err)
	}
	return int64(v), found, nil
}

// janitor removes expired dedup records until Close.
func (s *Store) janitor(interval time.Duration) {
	defer close(s.janitorDone)
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		if n, err := s.expireDedup(); err != nil && !errors.Is(err, ErrClosed) {
			s.log.Warn("queue: removing expired dedup records failed", "error", err)
		} else if n > 0 {
			s.log.Debug("queue: removed expired dedup records", "count", n)
		}
		select {
		case <-s.closing:
			return
		case <-ticker.C:
		}
	}
}

// expireDedupBatch is how many expiry entries one janitor batch removes.
const expireDedupBatch = 1024

// expireDedup removes the dedup records accepted a full window ago or more,
// walking the t/ index from where it stopped last time. It returns how many
// index entries it removed.
func (s *Store) expireDedup() (int, error) {
	if err := s.begin(); err != nil {
		return 0, err
	}
	defer s.end()
	s.janitorMu.Lock()
	defer s.janitorMu.Unlock()

	cutoff := s.now().Add(-s.window).UnixNano() // accepted at or before cutoff: expired
	upper := expiryKey(nil, cutoff+1, "")
	if bytes.Compare(s.expiryFrom, upper) >= 0 {
		return 0, nil
	}
	iter, err := s.db.NewIter(&pebble.IterOptions{LowerBound: s.expiryFrom, UpperBound: upper})
	if err != nil {
		return 0, err
	}
	defer iter.Close()

	batch := s.db.NewBatch()
	defer batch.Close()
	var held []claimed
	heldIDs := make(map[string]bool)
	var resume []byte // where the next run starts once this batch is committed
	removed := 0
	flush := func() error {
		err := batch.Commit(pebble.NoSync)
		s.releaseClaims(held, false)
		held = held[:0]
		clear(heldIDs)
		batch.Reset()
		if err == nil && resume != nil {
			s.expiryFrom = resume
		}
		return err
	}
	for iter.First(); iter.Valid(); iter.Next() {
		key := iter.Key()
		at, id, ok := parseExpiryKey(key)
		if !ok {
			_ = batch.Delete(key, nil)
			continue
		}
		if !heldIDs[id] {
			c, ok := s.tryClaim(id)
			if !ok {
				break // an Enqueue is accepting this id right now; resume here next time
			}
			held = append(held, c)
			heldIDs[id] = true
		}
		// A newer acceptance of the same id (after this one expired) has its
		// own expiry entry; keep its dedup record.
		if cur, found, err := s.dedupAt(id); err != nil {
			_ = flush()
			return removed, err
		} else if found && cur == at {
			_ = batch.Delete(dedupKey(nil, id), nil)
		}
		_ = batch.Delete(key, nil)
		removed++
		resume = append(append(resume[:0:0], key...), 0)
		if batch.Count() >= expireDedupBatch {
			if err := flush(); err != nil {
				return removed, err
			}
		}
	}
	if err := iter.Error(); err != nil {
		_ = flush()
		return removed, err
	}
	return removed, flush()
}
