package queue

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"iter"
	"slices"
	"sync"

	"github.com/cockroachdb/pebble"
)

// commitJob is one Enqueue's share of a combined commit: the fresh items it
// writes, when they were accepted, and the seqs reserved for them.
type commitJob struct {
	items   []Item
	fresh   []int      // indexes into items
	digests []idDigest // of the fresh items' ids, in the same order
	at      int64
	sp      *span // nil when no fresh item has a sink

	perSink map[string]int // set by the commit: pending records written per sink
	err     error          // set by the commit
	turn    chan struct{}  // signalled when this job's caller is to lead the next commit
	done    chan struct{}  // closed when the commit holding this job has ended
}

// committer combines the writes of concurrent Enqueue calls into one synced
// Pebble batch, as LevelDB's writer queue does: the first caller to find no
// commit in progress leads; it takes every job queued so far, writes them in
// one batch and wakes their callers. Jobs that arrive meanwhile queue up, and
// the first of them leads the next commit.
//
// Pebble group-commits concurrent batches into one WAL sync by itself; what
// one batch per group saves is the rest of the per-batch cost: a pass through
// the commit pipeline and, mostly, the memtable inserts. A batch's keys go
// into the memtable's skiplist in batch order, and an insert next to the one
// before it reuses its position instead of searching from the top. Ordering
// the group's keys by prefix (e/ and q/ keys of a group are each nearly
// consecutive) makes most inserts such neighbours; one event's own keys,
// under three prefixes, never are.
type committer struct {
	mu      sync.Mutex
	queued  []*commitJob
	spare   []*commitJob // the previous group's slice, reused
	leading bool         // a caller is committing a group
}

// maxCommitGroup bounds the jobs one commit takes, so a burst cannot make a
// batch, and the wait of its first caller, grow without limit.
const maxCommitGroup = 512

// commit writes job's items durably (fsync'd) and fills job.perSink.
func (s *Store) commit(job *commitJob) error {
	job.turn = make(chan struct{}, 1)
	job.done = make(chan struct{})
	c := &s.committer
	c.mu.Lock()
	c.queued = append(c.queued, job)
	if c.leading {
		c.mu.Unlock()
		select {
		case <-job.done:
			return job.err
		case <-job.turn:
		}
	} else {
		c.leading = true
		c.mu.Unlock()
	}
	s.leadCommit()
	<-job.done
	return job.err
}

// leadCommit commits the queued jobs as one group (the leader's own job is
// among them), then passes the lead to the first job queued meanwhile.
func (s *Store) leadCommit() {
	c := &s.committer
	c.mu.Lock()
	n := min(len(c.queued), maxCommitGroup)
	group := append(c.spare[:0], c.queued[:n]...)
	c.queued = append(c.queued[:0], c.queued[n:]...)
	c.spare = nil
	c.mu.Unlock()

	err := s.commitGroup(group)
	for _, job := range group {
		job.err = err
		close(job.done)
	}
	clear(group)

	c.mu.Lock()
	c.spare = group
	if len(c.queued) > 0 {
		c.queued[0].turn <- struct{}{}
	} else {
		c.leading = false
	}
	c.mu.Unlock()
}

// commitGroup writes the jobs' records in one synced batch, ordered by key
// prefix so that consecutive memtable inserts are neighbours.
func (s *Store) commitGroup(group []*commitJob) error {
	batch := s.db.NewBatch()
	defer batch.Close()
	var key []byte
	// y/<bucket><digest>: the acceptance time of every fresh id, in key
	// order (written first, though it sorts after the others: the order
	// within a batch only matters within each family).
	type accepted struct {
		bucket int64
		id     *idDigest
		at     int64
	}
	var ids []accepted
	for _, job := range group {
		bucket := s.buckets.of(job.at)
		for i := range job.digests {
			ids = append(ids, accepted{bucket, &job.digests[i], job.at})
		}
	}
	slices.SortFunc(ids, func(a, b accepted) int {
		return cmp.Or(cmp.Compare(a.bucket, b.bucket), bytes.Compare(a.id[:], b.id[:]))
	})
	var atValue []byte
	for _, a := range ids {
		key = acceptedKey(key, a.bucket, a.id[:])
		atValue = appendUint64(atValue[:0], uint64(a.at))
		_ = batch.Set(key, atValue, nil)
	}
	// e/<seq> and r/<seq>: the bodies of events that go to several sinks,
	// and how many pending records share each.
	var sinks []string
	for ev := range groupEvents(group) {
		sinks = append(sinks, ev.item.Sinks...)
		if len(uniqueSinks(ev.item.Sinks)) > 1 {
			key = eventKey(key, ev.seq)
			setEvent(batch, key, ev.item.Event)
		}
	}
	var refs [binary.MaxVarintLen64]byte
	for ev := range groupEvents(group) {
		if n := len(uniqueSinks(ev.item.Sinks)); n > 1 {
			key = refsKey(key, ev.seq)
			_ = batch.Set(key, refs[:binary.PutUvarint(refs[:], uint64(n))], nil)
		}
	}
	// q/<sink>\x00<seq>: the pending records, sink by sink; the record of
	// an event that goes to one sink carries its body.
	slices.Sort(sinks)
	sinks = slices.Compact(sinks)
	var header []byte
	for _, sink := range sinks {
		var job *commitJob
		var shared []byte
		for ev := range groupEvents(group) {
			targets := uniqueSinks(ev.item.Sinks)
			if !slices.Contains(targets, sink) {
				continue
			}
			if ev.job != job {
				job = ev.job
				shared = pendingRecord{At: job.at, Shared: true}.encode()
				if job.perSink == nil {
					job.perSink = make(map[string]int, len(job.sp.sinks))
				}
			}
			key = pendingKey(key, sink, ev.seq)
			if len(targets) > 1 {
				_ = batch.Set(key, shared, nil)
			} else {
				header = pendingRecord{At: job.at, Body: ev.item.Event}.appendHeader(header[:0])
				setPendingInline(batch, key, header, ev.item.Event)
			}
			job.perSink[sink]++
		}
	}
	if s.commitHook != nil {
		if err := s.commitHook(); err != nil {
			return fmt.Errorf("queue: enqueue: %w", err)
		}
	}
	if err := batch.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("queue: enqueue: %w", err)
	}
	return nil
}

// groupEvent is one event body a commit group writes.
type groupEvent struct {
	job  *commitJob
	seq  uint64
	item *Item
}

// groupEvents yields the group's fresh items that go to sinks, each with
// the seq reserved for its body, in the order the seqs were reserved
// within each job.
func groupEvents(group []*commitJob) iter.Seq[groupEvent] {
	return func(yield func(groupEvent) bool) {
		for _, job := range group {
			seq := job.firstSeq()
			for _, i := range job.fresh {
				it := &job.items[i]
				if len(it.Sinks) == 0 {
					continue
				}
				if !yield(groupEvent{job, seq, it}) {
					return
				}
				seq++
			}
		}
	}
}

// firstSeq is the seq of the job's first event body.
func (job *commitJob) firstSeq() uint64 {
	if job.sp == nil {
		return 0
	}
	return job.sp.first
}
