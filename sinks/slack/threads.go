package slack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble"
)

// Thread keys: the first event with a key posts a message to the channel
// (the thread's parent); later events with the same key, within thread_ttl
// of the thread's last message, reply under it. The key -> (channel, ts)
// map is a small Pebble store on disk, so a restart keeps the threads; with
// a Kafka queue, it is in the state the replicas share (sharedThreads), so
// that the replica a conversation moves to replies in the same thread.

// threadMap keeps a sink's threads: threadStore or sharedThreads.
type threadMap interface {
	// get returns the live thread of (channel, key), if there is one.
	get(ctx context.Context, channel, key string) (thread, bool, error)
	// put remembers th for (channel, key), its Used set to now; parent
	// says th is a new thread, which must not be lost (a reply's refresh
	// of Used matters less).
	put(ctx context.Context, channel, key string, th thread, parent bool) error
	// forget deletes the thread of (channel, key).
	forget(ctx context.Context, channel, key string) error
	// expire deletes every thread past its ttl and says how many it
	// deleted (its janitor calls it every threadJanitorInterval).
	expire(ctx context.Context) (int, error)
	close() error
}

// threadJanitorInterval is how often expired threads are deleted from the
// store. A lookup ignores an expired thread whatever the janitor did.
const threadJanitorInterval = time.Hour

// threadPrefix starts every thread's key in the store; threadPrefixEnd is
// the first key past them.
var threadPrefix, threadPrefixEnd = []byte("thread/"), []byte("thread0")

// thread is one remembered thread: where its parent is, and when a message
// was last posted in it (parent or reply), from which its expiry counts.
type thread struct {
	Channel string    `json:"channel"` // the channel ID Slack answered with
	TS      string    `json:"ts"`      // the parent's ts
	Used    time.Time `json:"used"`
}

// threadRecords reads and writes the records of both thread maps: a
// thread as JSON, live until ttl after its Used.
type threadRecords struct {
	ttl time.Duration
	now func() time.Time
}

// decode reads a record: the thread, whether it is live, and whether it
// was readable at all (one this code did not write is replaced by a new
// thread, as an expired one is).
func (r threadRecords) decode(raw []byte) (th thread, live, readable bool) {
	if err := json.Unmarshal(raw, &th); err != nil || th.Channel == "" || th.TS == "" {
		return thread{}, false, false
	}
	if !r.now().Before(th.Used.Add(r.ttl)) {
		return thread{}, false, true
	}
	return th, true, true
}

// encode writes th's record, its Used set to now.
func (r threadRecords) encode(th thread) ([]byte, error) {
	th.Used = r.now().UTC()
	return json.Marshal(th)
}

// threadStore maps a sink's (channel, thread key) pairs to threads. It is
// safe for concurrent use; after close every call fails with errClosed.
type threadStore struct {
	path string
	threadRecords
	log *slog.Logger

	mu       sync.RWMutex // held for reading by each call; close takes it whole
	db       *pebble.DB
	stop     chan struct{} // closed to stop the janitor
	stopOnce sync.Once
	done     chan struct{} // closed when the janitor has stopped
}

// errClosed is returned for deliveries after Close; they are retryable, so
// the events stay queued for the next run.
var errClosed = errors.New("sink is closed")

// openThreadStore opens (creating) the store at path and deletes the
// threads that expired while it was closed.
func openThreadStore(path string, ttl time.Duration, now func() time.Time, log *slog.Logger) (*threadStore, error) {
	// The store holds one small record per conversation of the last
	// thread_ttl: Pebble's default 8 MiB cache and 4 MiB memtables would
	// be most of its memory for nothing.
	cache := pebble.NewCache(1 << 20)
	defer cache.Unref()
	db, err := pebble.Open(path, &pebble.Options{
		Cache:              cache,
		MemTableSize:       1 << 20,
		FormatMajorVersion: pebble.FormatNewest,
		Logger:             pebbleLogger{log},
	})
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return nil, fmt.Errorf("thread store %s: it is in use by another process (another bridge with the same thread_store?): %w", path, err)
	}
	if err != nil {
		return nil, fmt.Errorf("thread store %s: %w (is it shared with another slack sink? each needs its own thread_store)", path, err)
	}
	st := &threadStore{path: path, threadRecords: threadRecords{ttl: ttl, now: now}, log: log, db: db, stop: make(chan struct{}), done: make(chan struct{})}
	if _, err := st.expire(context.Background()); err != nil {
		_ = db.Close()
		return nil, err
	}
	go st.janitor()
	return st, nil
}

func threadID(channel, key string) []byte {
	return append(append(append(slices.Clip(threadPrefix), channel...), 0), key...)
}

func (st *threadStore) get(_ context.Context, channel, key string) (thread, bool, error) {
	st.mu.RLock()
	defer st.mu.RUnlock()
	if st.db == nil {
		return thread{}, false, errClosed
	}
	raw, closer, err := st.db.Get(threadID(channel, key))
	if errors.Is(err, pebble.ErrNotFound) {
		return thread{}, false, nil
	}
	if err != nil {
		return thread{}, false, fmt.Errorf("thread store %s: %w", st.path, err)
	}
	th, live, readable := st.decode(raw)
	_ = closer.Close()
	if !readable {
		st.log.Warn("slack thread store: unreadable record replaced by a new thread", "path", st.path)
	}
	return th, live, nil
}

// put syncs a new parent to disk before it returns, so that a crash right
// after does not start a second thread; a reply's refresh of Used is not
// worth an fsync.
func (st *threadStore) put(_ context.Context, channel, key string, th thread, sync bool) error {
	raw, err := st.encode(th)
	if err != nil {
		return err
	}
	opts := pebble.NoSync
	if sync {
		opts = pebble.Sync
	}
	st.mu.RLock()
	defer st.mu.RUnlock()
	if st.db == nil {
		return errClosed
	}
	if err := st.db.Set(threadID(channel, key), raw, opts); err != nil {
		return fmt.Errorf("thread store %s: %w", st.path, err)
	}
	return nil
}

func (st *threadStore) forget(_ context.Context, channel, key string) error {
	st.mu.RLock()
	defer st.mu.RUnlock()
	if st.db == nil {
		return errClosed
	}
	if err := st.db.Delete(threadID(channel, key), pebble.Sync); err != nil {
		return fmt.Errorf("thread store %s: %w", st.path, err)
	}
	return nil
}

func (st *threadStore) expire(context.Context) (int, error) {
	st.mu.RLock()
	defer st.mu.RUnlock()
	if st.db == nil {
		return 0, errClosed
	}
	it, err := st.db.NewIter(&pebble.IterOptions{LowerBound: threadPrefix, UpperBound: threadPrefixEnd})
	if err != nil {
		return 0, fmt.Errorf("thread store %s: %w", st.path, err)
	}
	batch := st.db.NewBatch()
	defer batch.Close()
	n := 0
	for it.First(); it.Valid(); it.Next() {
		if _, live, _ := st.decode(it.Value()); !live {
			if err := batch.Delete(it.Key(), nil); err != nil {
				_ = it.Close()
				return 0, err
			}
			n++
		}
	}
	if err := it.Close(); err != nil {
		return 0, fmt.Errorf("thread store %s: %w", st.path, err)
	}
	if n == 0 {
		return 0, nil
	}
	if err := batch.Commit(pebble.NoSync); err != nil {
		return 0, fmt.Errorf("thread store %s: %w", st.path, err)
	}
	return n, nil
}

func (st *threadStore) janitor() {
	defer close(st.done)
	tick := time.NewTicker(threadJanitorInterval)
	defer tick.Stop()
	for {
		select {
		case <-st.stop:
			return
		case <-tick.C:
			if n, err := st.expire(context.Background()); err != nil {
				st.log.Error("slack thread store: deleting expired threads", "path", st.path, "err", err)
			} else if n > 0 {
				st.log.Debug("slack thread store: expired threads deleted", "path", st.path, "threads", n)
			}
		}
	}
}

// close stops the janitor and closes the store; calls under way finish
// first. It is safe more than once.
func (st *threadStore) close() error {
	st.stopOnce.Do(func() { close(st.stop) })
	<-st.done
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.db == nil {
		return nil
	}
	db := st.db
	st.db = nil
	if err := db.Close(); err != nil {
		return fmt.Errorf("thread store %s: %w", st.path, err)
	}
	return nil
}

// pebbleLogger sends Pebble's messages to the sink's logger.
type pebbleLogger struct{ log *slog.Logger }

func (l pebbleLogger) Infof(format string, args ...any) {
	l.log.Debug(fmt.Sprintf(format, args...), "component", "pebble")
}

// Fatalf is called by Pebble on unrecoverable corruption and must not return.
func (l pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	l.log.Error(msg, "component", "pebble")
	panic("slack thread store: pebble: " + msg)
}

// keyLocks serialises the deliveries of one thread key: the second event
// of a new conversation waits for the first one's parent (and its ts)
// instead of starting a second thread, and the events of one key are
// posted in the order they asked, first come first served.
type keyLocks struct {
	mu   sync.Mutex
	held map[string]*[]chan struct{} // key -> its waiters, in order
}

// lock waits for key's turn, or for ctx to end.
func (k *keyLocks) lock(ctx context.Context, key string) (unlock func(), err error) {
	unlock = func() { k.unlock(key) }
	k.mu.Lock()
	if k.held == nil {
		k.held = map[string]*[]chan struct{}{}
	}
	waiters, busy := k.held[key]
	if !busy {
		k.held[key] = new([]chan struct{})
		k.mu.Unlock()
		return unlock, nil
	}
	turn := make(chan struct{})
	*waiters = append(*waiters, turn)
	k.mu.Unlock()
	select {
	case <-turn:
		return unlock, nil
	case <-ctx.Done():
		k.mu.Lock()
		if i := slices.Index(*waiters, turn); i >= 0 {
			*waiters = slices.Delete(*waiters, i, i+1)
			k.mu.Unlock()
			return nil, ctx.Err()
		}
		k.mu.Unlock()
		unlock() // the turn came meanwhile: hand it on
		return nil, ctx.Err()
	}
}

func (k *keyLocks) unlock(key string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	waiters := k.held[key]
	if len(*waiters) == 0 {
		delete(k.held, key)
		return
	}
	next := (*waiters)[0]
	*waiters = (*waiters)[1:]
	close(next)
}
