package kafkaqueue

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	kafkago "github.com/segmentio/kafka-go"
)

// attemptsPrefix starts the shared state's keys of the attempts spent on a
// consumer group's deliveries: "attempts/<group>/<partition>/<offset>".
const attemptsPrefix = "attempts/"

func attemptsKey(group string, partition int, offset int64) string {
	return attemptsPrefix + group + "/" + strconv.Itoa(partition) + "/" + strconv.FormatInt(offset, 10)
}

// parsePartitionOffset reads "<partition>/<offset>", what follows the
// prefix of an attempts key or of a dead letter's mark.
func parsePartitionOffset(rest string) (partition int, offset int64, ok bool) {
	p, o, found := strings.Cut(rest, "/")
	if !found {
		return 0, 0, false
	}
	partition, err1 := strconv.Atoi(p)
	offset, err2 := strconv.ParseInt(o, 10, 64)
	if err1 != nil || err2 != nil || partition < 0 || offset < 0 {
		return 0, 0, false
	}
	return partition, offset, true
}

// attemptKeeper keeps the attempts spent on deliveries being retried in
// the shared state (State), so that whoever reads their records next (the
// replica a rebalance gives the partition to, or this one after a
// restart) goes on counting from there instead of starting over: a
// sink's retry.max_attempts holds across deploys, as it does with the
// embedded queue.
//
// Writes are in the background, so that a failing batch of hundreds of
// deliveries does not wait on the brokers once per delivery: the latest
// value of each key is written, many in one produce request. A record
// whose delivery ends has its key deleted. A replica killed before its
// last writes landed leaves its successor the count of the attempts
// before them; a rebalance first writes everything pending (flush).
type attemptKeeper struct {
	q *Queue

	mu      sync.Mutex
	pending map[string][]byte // key -> value to write; nil: delete the key
	// set counts the calls of set; written is the count as of the last
	// batch written: everything set up to there is on the topic.
	set, written uint64
	progress     chan struct{} // closed, and replaced, when a write ends
	wake         chan struct{} // something was set
	urge         chan struct{} // a flush waits: a writer backing off tries now
	done         chan struct{}
}

func newAttemptKeeper(q *Queue) *attemptKeeper {
	return &attemptKeeper{q: q, pending: map[string][]byte{}, progress: make(chan struct{}), wake: make(chan struct{}, 1), urge: make(chan struct{}, 1), done: make(chan struct{})}
}

// put sets key's attempts.
func (k *attemptKeeper) put(key string, attempts int) {
	k.setValue(key, []byte(strconv.Itoa(attempts)))
}

// forget deletes key.
func (k *attemptKeeper) forget(key string) { k.setValue(key, nil) }

func (k *attemptKeeper) setValue(key string, value []byte) {
	k.mu.Lock()
	k.pending[key] = value
	k.set++
	k.mu.Unlock()
	select {
	case k.wake <- struct{}{}:
	default:
	}
}

// run writes what is pending until the queue closes, then tries once more
// to write what is left.
func (k *attemptKeeper) run() {
	defer close(k.done)
	const minBackoff = 100 * time.Millisecond
	backoff := minBackoff
	failing := false // warned of a failure, and no write succeeded since
	for {
		select {
		case <-k.wake:
		case <-k.q.ctx.Done():
			ctx, cancel := context.WithTimeout(context.Background(), k.q.o.WriteTimeout)
			if n, err := k.writePending(ctx); err != nil {
				k.q.log.Warn("writing the attempts of retried deliveries at close; their next reader counts from the ones written before", "topic", k.q.o.StateTopic, "keys", n, "err", err)
			}
			cancel()
			return
		}
		for {
			n, err := k.writePending(k.q.ctx)
			if n == 0 {
				break
			}
			if err == nil {
				if failing {
					k.q.log.Info("writing the attempts of retried deliveries to the shared state again", "topic", k.q.o.StateTopic)
				}
				failing, backoff = false, minBackoff
				continue
			}
			if k.q.ctx.Err() != nil {
				break // the close above writes what is left
			}
			// Warned once per outage: a state topic that does not exist
			// would otherwise fill the log.
			level := slog.LevelWarn
			if failing {
				level = slog.LevelDebug
			}
			k.q.log.Log(k.q.ctx, level, "writing the attempts of retried deliveries to the shared state; retrying, and counting them in memory meanwhile", "topic", k.q.o.StateTopic, "keys", n, "err", err, "retry_in", backoff)
			failing = true
			select {
			case <-time.After(backoff):
			case <-k.urge: // a rebalance waits for these (flush): try now
			case <-k.q.ctx.Done():
			}
			backoff = min(2*backoff, 30*time.Second)
		}
	}
}

// writePending writes what is pending in one produce request and says how
// many keys it tried. After a failure the keys not set again meanwhile are
// pending again.
func (k *attemptKeeper) writePending(ctx context.Context) (int, error) {
	k.mu.Lock()
	batch := k.pending
	if len(batch) == 0 {
		k.mu.Unlock()
		return 0, nil
	}
	k.pending = map[string][]byte{}
	upTo := k.set // the batch holds the latest value of every key set so far
	k.mu.Unlock()

	msgs := make([]kafkago.Message, 0, len(batch))
	for key, value := range batch {
		msgs = append(msgs, kafkago.Message{Key: []byte(key), Value: value})
	}
	err := k.q.State().writeAll(ctx, fmt.Sprintf("the attempts of %d deliveries", len(msgs)), msgs...)

	k.mu.Lock()
	if err != nil {
		for key, value := range batch {
			if _, newer := k.pending[key]; !newer {
				k.pending[key] = value
			}
		}
	} else {
		k.written = upTo
	}
	close(k.progress)
	k.progress = make(chan struct{})
	k.mu.Unlock()
	return len(batch), err
}

// flush waits until everything set before it was called has been written,
// or ctx ends. What is set meanwhile (other sinks' deliveries failing on)
// is not waited for.
func (k *attemptKeeper) flush(ctx context.Context) error {
	k.mu.Lock()
	target := k.set
	k.mu.Unlock()
	for {
		k.mu.Lock()
		done := k.written >= target
		progress := k.progress
		k.mu.Unlock()
		if done {
			return nil
		}
		for _, c := range []chan struct{}{k.wake, k.urge} {
			select {
			case c <- struct{}{}:
			default:
			}
		}
		select {
		case <-progress:
		case <-ctx.Done():
			return fmt.Errorf("writing the attempts of retried deliveries: %w", ctx.Err())
		case <-k.done:
			return ErrStateClosed
		}
	}
}

// loadAttempts reads, at the start of a generation, the attempts kept in
// the shared state for the records of the partitions assigned to the
// reader, and deletes the keys of records below a partition's committed
// offset, which have settled. When the state cannot be read in time the
// records' attempts start over, as they would without it.
func (r *reader) loadAttempts(ctx context.Context, assigned []kafkago.PartitionAssignment) {
	if len(assigned) == 0 {
		return
	}
	q := r.q
	committed := make(map[int]int64, len(assigned))
	for _, a := range assigned {
		committed[a.ID] = a.Offset // < 0: no offset committed yet
	}
	prefix := attemptsPrefix + r.group() + "/"
	found := map[int]map[int64]int{}
	var stale []string
	generation := ctx
	// Reading a large state topic from its start may take longer than one
	// write; the partitions' records wait meanwhile.
	ctx, cancel := context.WithTimeout(ctx, max(q.o.WriteTimeout, q.o.SessionTimeout/2))
	defer cancel()
	err := q.State().Each(ctx, prefix, func(key string, value []byte) bool {
		partition, offset, ok := parsePartitionOffset(key[len(prefix):])
		n, err := strconv.Atoi(string(value))
		if !ok || err != nil || n <= 0 {
			stale = append(stale, key)
			return true
		}
		c, mine := committed[partition]
		switch {
		case !mine:
			// Another replica's partition: its reader reads it.
		case offset < c:
			stale = append(stale, key)
		default:
			if found[partition] == nil {
				found[partition] = map[int64]int{}
			}
			found[partition][offset] = n
		}
		return true
	})
	if err != nil {
		if generation.Err() == nil {
			q.log.Warn("reading the attempts of retried deliveries from the shared state; those of the records read now start over", "sink", r.sink, "group", r.group(), "topic", q.o.StateTopic, "err", err)
		}
		return
	}
	q.mu.Lock()
	for partition, offsets := range found {
		if r.attempts[partition] == nil {
			r.attempts[partition] = map[int64]int{}
		}
		for offset, n := range offsets {
			r.attempts[partition][offset] = max(r.attempts[partition][offset], n)
		}
	}
	q.mu.Unlock()
	for _, key := range stale {
		q.attempts.forget(key)
	}
	if len(found) > 0 || len(stale) > 0 {
		q.log.Debug("read the attempts of retried deliveries from the shared state", "sink", r.sink, "group", r.group(), "partitions", len(found), "stale", len(stale))
	}
}
