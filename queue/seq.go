package queue

import (
	"fmt"
	"sync"
)

// seqLeaseStep is how many sequence numbers one persisted lease covers.
const seqLeaseStep = 1 << 20

// seqTracker hands out sequence numbers and knows up to which seq every
// pending record is committed.
//
// Writers commit concurrently, so seq 7 may become visible before seq 6. A
// Next scan that saw 7 and moved its cursor past 6 would skip 6 until the next
// restart; scans therefore stop at visible(), the highest seq below which
// every reserved span has finished (committed or failed).
type seqTracker struct {
	mu      sync.Mutex
	next    uint64             // next seq to hand out
	leased  uint64             // seqs below this are covered by the persisted lease
	persist func(uint64) error // writes the lease (m/seq) durably
	open    []*span            // reserved and not yet finished, in seq order
}

// span is a run of seqs reserved by one write, and the sinks it adds records for.
type span struct {
	first, last uint64
	sinks       []string
	done        bool
}

// lease makes sure seqs below upTo are covered by a persisted lease, so a
// seq is never reused after a crash. Called with t.mu held.
func (t *seqTracker) lease(upTo uint64) error {
	if upTo <= t.leased {
		return nil
	}
	term := upTo + seqLeaseStep
	if err := t.persist(term); err != nil {
		return fmt.Errorf("queue: persist sequence lease: %w", err)
	}
	t.leased = term
	return nil
}

// reserve hands out n consecutive seqs whose pending records are not visible
// to Next until finish is called.
func (t *seqTracker) reserve(n int, sinks []string) (*span, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.lease(t.next + uint64(n)); err != nil {
		return nil, err
	}
	sp := &span{first: t.next, last: t.next + uint64(n) - 1, sinks: sinks}
	t.next += uint64(n)
	t.open = append(t.open, sp)
	return sp, nil
}

// unique hands out one seq that never carries a pending record.
func (t *seqTracker) unique() (uint64, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.lease(t.next + 1); err != nil {
		return 0, err
	}
	t.next++
	return t.next - 1, nil
}

// finish marks sp written (or abandoned) and returns the sinks whose records
// have just become visible.
func (t *seqTracker) finish(sp *span) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	sp.done = true
	var woken []string
	for len(t.open) > 0 && t.open[0].done {
		woken = append(woken, t.open[0].sinks...)
		t.open[0] = nil
		t.open = t.open[1:]
	}
	return woken
}

// visible is the highest seq below which every pending record that will ever
// be written has been committed.
func (t *seqTracker) visible() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.open) > 0 {
		return t.open[0].first - 1
	}
	return t.next - 1
}

// current is the next seq that will be handed out.
func (t *seqTracker) current() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.next
}
