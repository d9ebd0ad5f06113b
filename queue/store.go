package queue

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/bloom"
	"github.com/cockroachdb/pebble/vfs"
)

// DefaultDedupWindow is how long an accepted event id is remembered when
// Options.DedupWindow is zero.
const DefaultDedupWindow = 24 * time.Hour

// MaxDedupWindow bounds Options.DedupWindow: acceptance times are kept as
// Unix nanoseconds, whose range ends in 2262, and a year is far longer
// than any provider retries.
const MaxDedupWindow = 366 * 24 * time.Hour

var (
	// ErrClosed is returned by every method once Close has been called.
	ErrClosed = errors.New("queue: store closed")
	// ErrNotInFlight is returned when settling a delivery that Next has not
	// handed out, or that has already been settled.
	ErrNotInFlight = errors.New("queue: delivery is not in flight")
	// ErrNotFound is returned by Replay for an unknown dead-letter key.
	ErrNotFound = errors.New("queue: dead letter not found")
)

// Options configure Open.
type Options struct {
	Path        string        // directory of the store; created when missing; required
	DedupWindow time.Duration // how long an accepted event id is remembered; default 24h when zero
	// DedupMemory is the memory the dedup filter may hold, in bytes;
	// DefaultDedupMemory when zero. The filter spares Enqueue the disk
	// lookup of new ids while the window holds fewer than about 1.4
	// million ids per 4 MiB.
	DedupMemory int
	// MinFreeSpace is the free space, in bytes, kept in reserve on the
	// store's volume: below it (or below a twentieth of the volume, if
	// that is less) Enqueue and Reject return ErrNoSpace. Zero means
	// DefaultMinFreeSpace; negative never refuses.
	MinFreeSpace int64
	Logger       *slog.Logger // default slog.Default()

	now             func() time.Time // clock; default time.Now
	fs              vfs.FS           // file system; default the operating system's
	janitorInterval time.Duration    // how often expired dedup records are removed; default DedupWindow/24, within [1s, 10m]
}

// Store is the embedded queue. All methods are safe for concurrent use.
type Store struct {
	db     *pebble.DB
	log    *slog.Logger
	window time.Duration
	now    func() time.Time

	seqs seqTracker

	// dedup spares Enqueue the Pebble lookup of ids it has not seen.
	dedup     *dedupFilter
	space     *spaceGuard  // refuses new events before the disk fills
	dedupGets atomic.Int64 // ids Enqueue looked up in the dedup records

	// closeMu is held shared by every operation that touches db and
	// exclusively by Close, so the database is never used after it closes.
	closeMu     sync.RWMutex
	closed      bool
	closing     chan struct{} // closed when Close starts; wakes waiting Next calls
	closeOnce   sync.Once
	janitorDone chan struct{}
	unsynced    chan struct{} // noteUnsynced wakes the syncer through it
	syncerDone  chan struct{}

	claimMu sync.Mutex
	claims  map[string]*claim // event ids being accepted right now

	sinksMu sync.RWMutex
	sinks   map[string]*sinkState

	// refLocks serialise the read-modify-write of an event's reference count.
	refLocks [64]sync.Mutex

	events      atomic.Int64 // e/ records and pending records that carry their body
	deadLetters atomic.Int64 // x/ records
	answered    atomic.Bool  // m/format is answeredFormat: pending records may carry an answer

	replayMu  sync.Mutex
	janitorMu sync.Mutex

	buckets      dedupBuckets // of the dedup records
	newestBucket atomic.Int64 // no dedup record is in a newer bucket
	expiredBelow atomic.Int64 // the janitor has deleted every bucket below this one

	committer committer // combines concurrent Enqueue writes into one batch

	// commitHook, when set by tests, runs before an Enqueue batch commits;
	// an error stands in for a failed commit.
	commitHook func() error
}

// sinkState is what the store keeps in memory for one sink: the deliveries it
// has handed out and not yet settled, and a cursor into the sink's pending
// records. Its size is bounded by what the sink's consumers hold, never by
// the backlog.
type sinkState struct {
	name   string
	prefix []byte // q/<name>\x00

	scanMu sync.Mutex // serialises Next's scans of this sink

	mu       sync.Mutex
	cursor   uint64           // every pending record with a seq below cursor has been handed out
	inFlight map[uint64]*held // handed out by Next, not settled or released
	released map[uint64]*held // released: handed out again before anything past cursor
	order    []uint64         // keys of released, ascending
	pending  int              // pending records of this sink, in flight or not
	wake     chan struct{}    // closed when records may have become available; nil when nobody waits
}

// held is a handed-out delivery's pending record, kept while it is in flight
// so that settling it needs no read.
type held struct {
	ref       uint64 // seq of the event body (e/<ref>); the record's own seq when it carries the body
	body      []byte // the event body when the pending record carries it; nil otherwise
	at        int64
	attempts  int
	rewritten bool
	shared    bool
	lastErr   string
	from      string
	reason    string
	status    int
	answer    []byte
}

func (h *held) record(seq uint64) pendingRecord {
	r := pendingRecord{At: h.at, Attempts: h.attempts, Rewritten: h.rewritten, Shared: h.shared,
		LastErr: h.lastErr, From: h.from, Reason: h.reason, Status: h.status, Answer: h.answer, Body: h.body}
	if h.ref != seq {
		r.Ref = h.ref
	}
	return r
}

// heldFrom keeps a decoded pending record in memory, with a copy of its
// body when it carries one (r may share a Pebble iterator's memory).
func heldFrom(seq uint64, r pendingRecord) *held {
	h := &held{ref: seq, at: r.At, attempts: r.Attempts, rewritten: r.Rewritten, shared: r.Shared,
		lastErr: r.LastErr, from: r.From, reason: r.Reason, status: r.Status, answer: r.Answer}
	if r.Ref != 0 {
		h.ref = r.Ref
	}
	if r.Body != nil {
		h.body = append(make([]byte, 0, len(r.Body)), r.Body...)
	}
	return h
}

// Open opens (creating when needed) the store at opts.Path, recovers the
// sequence counter and the per-sink pending counts, and starts the dedup
// janitor.
func Open(opts Options) (*Store, error) {
	if opts.Path == "" {
		return nil, errors.New("queue: path is required")
	}
	if opts.DedupWindow < 0 || opts.DedupWindow > MaxDedupWindow {
		return nil, fmt.Errorf("queue: dedup window %s is not between 0 and %s", opts.DedupWindow, MaxDedupWindow)
	}
	if opts.DedupWindow == 0 {
		opts.DedupWindow = DefaultDedupWindow
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.now == nil {
		opts.now = time.Now
	}
	if opts.DedupMemory < 0 {
		return nil, fmt.Errorf("queue: dedup memory %d is negative", opts.DedupMemory)
	}
	if opts.DedupMemory == 0 {
		opts.DedupMemory = DefaultDedupMemory
	}
	if opts.janitorInterval <= 0 {
		opts.janitorInterval = min(max(opts.DedupWindow/24, time.Second), 10*time.Minute)
	}
	if err := os.MkdirAll(opts.Path, 0o750); err != nil {
		return nil, fmt.Errorf("queue: create %s: %w", opts.Path, err)
	}
	fs := opts.fs
	if fs == nil {
		fs = vfs.Default
	}
	space := &spaceGuard{fs: fs, path: opts.Path, log: opts.Logger}
	switch {
	case opts.MinFreeSpace == 0:
		space.min = DefaultMinFreeSpace
	case opts.MinFreeSpace > 0:
		space.min = uint64(opts.MinFreeSpace)
	}

	// Pebble reserves each memtable's size out of the block cache: with
	// two 8 MiB memtables (one flushing) 16 MiB remain for index, filter
	// and data blocks. A cache no bigger than the memtables is always
	// empty, and every dedup lookup then reads its filter from disk. The
	// cache is most of the bridge's memory, and draining a backlog fills
	// all of it: at 48 MiB the bridge peaked at 105-109 MB draining 50,000
	// events to Kafka, at 32 MiB at 96 MB, at the same rate. Since the
	// Kafka sink prepares its next batch while one is being sent (a third
	// batch in memory), 32 MiB peaked at 100-103 MB and 24 MiB at 94-95 MB,
	// again at the same rate; ingest cost the same CPU per request (median
	// ratio 0.99 over four alternated rounds) and stays near 65-70 MB.
	//
	// The bridge is built without cgo (make build), and Pebble then keeps
	// its cache and memtables in the Go heap instead of C memory: the
	// collector lets the heap grow to twice what is live, cache included,
	// so 24 MiB peaked at 102-105 MB in the same drain, and 16 MiB at
	// 93 MB. 16 MiB leaves the blocks 8 MiB beside one memtable, none
	// while a second one flushes, so more reads go to the files; the
	// drain was still about as fast (12-14 µs of CPU per event, against
	// 12 µs with 24 MiB and 16-19 µs for the cgo build with 24 MiB), and
	// the dedup filter spares ingest all but about 0.2% of its lookups.
	cache := pebble.NewCache(16 << 20)
	defer cache.Unref()
	popts := &pebble.Options{
		Cache:              cache,
		FormatMajorVersion: pebble.FormatNewest,
		MemTableSize:       8 << 20,
		Logger:             pebbleLogger{opts.Logger},
		Levels:             make([]pebble.LevelOptions, 7),
		EventListener:      stallLogger(opts.Logger),
		FS:                 opts.fs,
		// WALMinSyncInterval stays 0: a minimum interval packs more
		// commits into each fsync under load, but even 100µs made an
		// isolated Enqueue 5x slower (1.4ms instead of 0.27ms) here.
	}
	for i := range popts.Levels {
		// Every Enqueue looks up its event id; most ids are new.
		popts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
		// A backlog is read back in seq order, a block at a time: with
		// 16 KiB blocks (Pebble's default is 4) draining 50,000 queued
		// events to Kafka took 17.4-19.2 µs of CPU per event instead of
		// 19.6-24.2 in four alternated pairs, and ingest cost the same:
		// the dedup filter spares it most point lookups.
		popts.Levels[i].BlockSize = 16 << 10
	}
	db, err := pebble.Open(opts.Path, popts)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		// Another process holds Pebble's lock (fcntl answers EAGAIN,
		// which is EWOULDBLOCK).
		return nil, fmt.Errorf("queue: open %s: it is in use by another process (another bridge on the same queue.path?): %w", opts.Path, err)
	}
	if err != nil {
		return nil, fmt.Errorf("queue: open %s: %w", opts.Path, err)
	}

	s := &Store{
		db:          db,
		log:         opts.Logger,
		window:      opts.DedupWindow,
		now:         opts.now,
		dedup:       newDedupFilter(opts.DedupWindow, opts.DedupMemory),
		closing:     make(chan struct{}),
		janitorDone: make(chan struct{}),
		unsynced:    make(chan struct{}, 1),
		syncerDone:  make(chan struct{}),
		claims:      make(map[string]*claim),
		sinks:       make(map[string]*sinkState),
		// A bucket per generation of the dedup filter: a lookup reads
		// about one, and a record is deleted at most 1+1/slices windows
		// after its acceptance.
		buckets: dedupBuckets{width: max(int64(opts.DedupWindow/dedupFilterSlices), 1)},
		space:   space,
	}
	s.newestBucket.Store(math.MinInt64)
	s.expiredBelow.Store(math.MinInt64)
	s.seqs.persist = s.persistSeqTerm
	if err := s.recover(); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("queue: open %s: %w", opts.Path, err)
	}
	// Look at the disk now, so that a full one is said at start.
	_ = s.space.check(s.now())
	go s.janitor(opts.janitorInterval)
	go s.syncer()
	return s, nil
}

// recover checks the store format and rebuilds what is kept in memory: the
// next seq, the pending count of each sink, the record counts and the dedup
// filter. It reads every key once (of the dedup records, only the buckets
// within the window) and keeps none of them.
func (s *Store) recover() error {
	format, found, err := s.getUint64([]byte(keyFormat))
	if err != nil {
		return err
	}
	widthKnown, err := s.loadBucketWidth()
	if err != nil {
		return err
	}
	switch {
	case !found:
		batch := s.db.NewBatch()
		_ = batch.Set([]byte(keyFormat), appendUint64(nil, storeFormat), nil)
		_ = batch.Set([]byte(keyBucketWidth), appendUint64(nil, uint64(s.buckets.width)), nil)
		err := batch.Commit(pebble.Sync)
		_ = batch.Close()
		if err != nil {
			return fmt.Errorf("write format: %w", err)
		}
	case format >= 1 && format < storeFormat:
		moved, err := s.upgrade(format)
		if err != nil {
			return fmt.Errorf("upgrade store format %d to %d: %w", format, storeFormat, err)
		}
		s.log.Info("queue: upgraded the store's format", "from", format, "to", storeFormat, "dedup_records", moved)
	case format != storeFormat && format != answeredFormat:
		return fmt.Errorf("store format %d, want %d or %d (written by a newer bridge?)", format, storeFormat, answeredFormat)
	case !widthKnown:
		if err := s.db.Set([]byte(keyBucketWidth), appendUint64(nil, uint64(s.buckets.width)), pebble.Sync); err != nil {
			return fmt.Errorf("write dedup bucket width: %w", err)
		}
	}
	s.answered.Store(format == answeredFormat)

	next, _, err := s.getUint64([]byte(keySeqTerm))
	if err != nil {
		return err
	}
	next = max(next, 1)
	var events int64
	err = s.scan([]byte(prefixPending), func(key, value []byte) error {
		sink, seq, ok := parsePendingKey(key)
		if !ok {
			return fmt.Errorf("%w: pending key %q", errCorrupt, key)
		}
		s.sink(sink).pending++
		next = max(next, seq+1)
		if pendingInline(value) {
			events++
		}
		return nil
	})
	if err != nil {
		return err
	}
	err = s.scan([]byte(prefixEvent), func(key, _ []byte) error {
		events++
		if len(key) == len(prefixEvent)+8 {
			next = max(next, binary.BigEndian.Uint64(key[len(prefixEvent):])+1)
		}
		return nil
	})
	if err != nil {
		return err
	}
	var dead int64
	err = s.scan([]byte(prefixDead), func(key, _ []byte) error {
		dead++
		if len(key) == len(prefixDead)+deadKeyLen {
			next = max(next, binary.BigEndian.Uint64(key[len(prefixDead)+8:])+1)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := s.rebuildDedupFilter(); err != nil {
		return err
	}
	// No dedup record lies below the oldest bucket, nor below now when
	// there is none: the janitor has nothing to delete until the window
	// has passed it.
	oldest := s.buckets.of(s.now().UnixNano())
	iter, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte(prefixAccepted), UpperBound: prefixEnd([]byte(prefixAccepted))})
	if err != nil {
		return err
	}
	if iter.First() {
		if b, _, ok := splitAcceptedKey(iter.Key()); ok {
			oldest = min(oldest, b)
		}
	}
	if err := iter.Close(); err != nil {
		return err
	}
	s.expiredBelow.Store(oldest)
	s.events.Store(events)
	s.deadLetters.Store(dead)
	s.seqs.next = next
	s.seqs.leased = next // the first reservation persists a new lease
	return nil
}

// rebuildDedupFilter adds to the dedup filter the ids of the buckets that
// may hold acceptances within the window, newest bucket first, as many as
// its budget holds, and finds the newest bucket.
func (s *Store) rebuildDedupFilter() error {
	cutoff := s.now().Add(-s.window).UnixNano() // accepted at or before cutoff: expired
	iter, err := s.db.NewIter(&pebble.IterOptions{
		LowerBound: acceptedKey(nil, s.buckets.of(cutoff), ""),
		UpperBound: prefixEnd([]byte(prefixAccepted)),
	})
	if err != nil {
		return fmt.Errorf("rebuild dedup filter: %w", err)
	}
	record := func() (bucket, at int64, id []byte, err error) {
		bucket, id, ok := splitAcceptedKey(iter.Key())
		if !ok || len(id) != len(idDigest{}) || len(iter.Value()) != 8 {
			return 0, 0, nil, fmt.Errorf("%w: dedup record %q", errCorrupt, iter.Key())
		}
		return bucket, int64(binary.BigEndian.Uint64(iter.Value())), id, nil
	}
	var scanErr error
	stopped, stopBucket := false, int64(0)
	s.dedup.rebuild(func(yield func(int64, []byte) bool) {
		for valid := iter.Last(); valid; valid = iter.Prev() {
			bucket, at, id, err := record()
			if err != nil {
				scanErr = err
				return
			}
			s.newestBucket.Store(max(s.newestBucket.Load(), bucket))
			if at <= cutoff {
				continue
			}
			if !yield(at, id) {
				stopped, stopBucket = true, bucket
				return
			}
		}
	})
	// The budget ran out within a bucket, whose ids are in id order, not
	// time order: the rest of it may hold newer acceptances than the one
	// the rebuild stopped at, and they are unknown too.
	for valid := stopped && iter.Prev(); valid; valid = iter.Prev() {
		bucket, at, _, err := record()
		if err != nil || bucket != stopBucket {
			scanErr = err
			break
		}
		s.dedup.forgetThrough(at)
	}
	if err := errors.Join(scanErr, iter.Close()); err != nil {
		return fmt.Errorf("rebuild dedup filter: %w", err)
	}
	s.dedup.forgetThrough(cutoff)
	return nil
}

// loadBucketWidth makes the dedup records' buckets as wide as when they
// were written: the width is chosen from the dedup window when the store
// is created, and kept when the window changes later. Every record's
// bucket then stays where lookups and the janitor look for it; a width
// that no longer matches the window only makes expiry coarser (a narrower
// window) or lookups span more buckets (a wider one).
func (s *Store) loadBucketWidth() (found bool, err error) {
	width, found, err := s.getUint64([]byte(keyBucketWidth))
	if err != nil || !found {
		return false, err
	}
	if width == 0 || width > math.MaxInt64 {
		return false, fmt.Errorf("%w: dedup bucket width %d", errCorrupt, width)
	}
	if int64(width) != s.buckets.width {
		s.log.Info("queue: dedup records keep the bucket width the store was created with",
			"bucket", time.Duration(width), "window", s.window)
		s.buckets.width = int64(width)
	}
	return true, nil
}

// upgrade brings a store of format 1, 2 or 3 to the current format and
// returns how many dedup records it moved. Every format keeps event bodies
// and pending records as the current one can read them (a record that
// does not carry its body has its e/<seq>); what changes is the dedup
// records, which all held the id itself:
//
//   - format 1 kept a record per id (d/<id>) and an expiry index beside it
//     (t/<time><id>): each id the index holds within the window gets its
//     record in its bucket;
//   - formats 2 and 3 kept bucketed records, a/<bucket><id> and
//     z/<bucket><id>: those within the window move to y/, each into its
//     bucket by its acceptance time (format 2 did not record the width of
//     its buckets).
//
// The old keys then go with range deletions. A crash midway repeats the
// upgrade at the next Open.
func (s *Store) upgrade(format uint64) (moved int, err error) {
	cutoff := s.now().Add(-s.window).UnixNano()
	batch := s.db.NewBatch()
	defer func() { _ = batch.Close() }()
	// The width goes with the first records written: should the upgrade
	// be cut short, the next Open reads them with the same buckets even if
	// the window has changed meanwhile.
	_ = batch.Set([]byte(keyBucketWidth), appendUint64(nil, uint64(s.buckets.width)), nil)
	keep := func(id []byte, at int64) error {
		d := digestOf(string(id))
		_ = batch.Set(acceptedKey(nil, s.buckets.of(at), d[:]), appendUint64(nil, uint64(at)), nil)
		moved++
		if batch.Count() < 4096 {
			return nil
		}
		err := batch.Commit(pebble.NoSync)
		batch.Reset()
		return err
	}
	var legacy []string
	switch format {
	case 1:
		legacy = []string{legacyPrefixDedup, legacyPrefixExpiry}
		err = s.scan([]byte(legacyPrefixExpiry), func(k, _ []byte) error {
			at, id, ok := splitLegacyExpiryKey(k)
			if !ok || at <= cutoff {
				return nil
			}
			return keep(id, at)
		})
	case 2, 3:
		prefix := legacyPrefixAccepted
		if format == 3 {
			prefix = legacyPrefixAcceptedV3
		}
		legacy = []string{prefix}
		err = s.scan([]byte(prefix), func(k, v []byte) error {
			_, id, ok := splitUint64Key(k, prefix)
			if !ok || len(v) != 8 {
				return fmt.Errorf("%w: dedup record %q", errCorrupt, k)
			}
			at := int64(binary.BigEndian.Uint64(v))
			if at <= cutoff {
				return nil
			}
			return keep(id, at)
		})
	default:
		return 0, fmt.Errorf("no upgrade from format %d", format)
	}
	if err != nil {
		return 0, err
	}
	for _, prefix := range legacy {
		_ = batch.DeleteRange([]byte(prefix), prefixEnd([]byte(prefix)), nil)
	}
	_ = batch.Set([]byte(keyFormat), appendUint64(nil, storeFormat), nil)
	return moved, batch.Commit(pebble.Sync)
}

// scan calls fn for every key with the given prefix; key and value are only
// valid during the call.
func (s *Store) scan(prefix []byte, fn func(key, value []byte) error) error {
	iter, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return err
	}
	for iter.First(); iter.Valid(); iter.Next() {
		if err := fn(iter.Key(), iter.Value()); err != nil {
			_ = iter.Close()
			return err
		}
	}
	return iter.Close()
}

func (s *Store) getUint64(key []byte) (uint64, bool, error) {
	v, closer, err := s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("read %q: %w", key, err)
	}
	defer closer.Close()
	if len(v) != 8 {
		return 0, false, fmt.Errorf("%w: %q holds %d bytes", errCorrupt, key, len(v))
	}
	return binary.BigEndian.Uint64(v), true, nil
}

func (s *Store) persistSeqTerm(term uint64) error {
	return s.db.Set([]byte(keySeqTerm), appendUint64(nil, term), pebble.Sync)
}

// Close stops the janitor, wakes waiting Next calls (they return ErrClosed),
// waits for running operations and closes the database. Calling it again
// does nothing.
func (s *Store) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.closing)
		<-s.janitorDone
		<-s.syncerDone
		s.closeMu.Lock()
		defer s.closeMu.Unlock()
		s.closed = true
		// Record exactly where the sequence stopped, so a clean restart
		// continues from it.
		err = s.persistSeqTerm(s.seqs.current())
		if cerr := s.db.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			err = fmt.Errorf("queue: close: %w", err)
		}
	})
	return err
}

// begin guards an operation against a concurrent Close; end must follow.
// An operation calls begin once and never again before end.
func (s *Store) begin() error {
	s.closeMu.RLock()
	if s.closed {
		s.closeMu.RUnlock()
		return ErrClosed
	}
	return nil
}

func (s *Store) end() { s.closeMu.RUnlock() }

// sink returns the state of sink, creating it.
func (s *Store) sink(name string) *sinkState {
	s.sinksMu.RLock()
	st := s.sinks[name]
	s.sinksMu.RUnlock()
	if st != nil {
		return st
	}
	s.sinksMu.Lock()
	defer s.sinksMu.Unlock()
	if st = s.sinks[name]; st == nil {
		st = &sinkState{
			name:     name,
			prefix:   pendingPrefix(name),
			inFlight: make(map[uint64]*held),
			released: make(map[uint64]*held),
		}
		s.sinks[name] = st
	}
	return st
}

// lookupSink returns the state of sink, or nil when the store has never seen it.
func (s *Store) lookupSink(name string) *sinkState {
	s.sinksMu.RLock()
	defer s.sinksMu.RUnlock()
	return s.sinks[name]
}

// wakeSinks tells waiting Next calls of these sinks to look again.
func (s *Store) wakeSinks(names []string) {
	for i, name := range names {
		if i > 0 && name == names[i-1] {
			continue
		}
		if st := s.lookupSink(name); st != nil {
			st.notify()
		}
	}
}

func (st *sinkState) notify() {
	st.mu.Lock()
	if st.wake != nil {
		close(st.wake)
		st.wake = nil
	}
	st.mu.Unlock()
}

// waitChan returns a channel closed by the next notify.
func (st *sinkState) waitChan() <-chan struct{} {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.wake == nil {
		st.wake = make(chan struct{})
	}
	return st.wake
}

func (st *sinkState) addPending(n int) {
	st.mu.Lock()
	st.pending += n
	st.mu.Unlock()
}

// checkSinkName rejects names that cannot be part of a pending key.
func checkSinkName(name string) error {
	if name == "" {
		return errors.New("queue: empty sink name")
	}
	if strings.IndexByte(name, 0) >= 0 {
		return fmt.Errorf("queue: sink name %q contains a NUL byte", name)
	}
	return nil
}

// Stats is a snapshot of the store's counters.
type Stats struct {
	Pending       map[string]int // pending deliveries per sink, in flight or not
	OldestPending time.Time      // acceptance time of the oldest pending delivery; zero when none
	// OldestPendingBySink is the acceptance time of each sink's oldest
	// pending delivery, for the sinks that have one.
	OldestPendingBySink map[string]time.Time
	DeadLetters         int // entries in the dead-letter list
	Events              int // events stored: bodies shared by several sinks, and pending records that carry their body

	DedupFilterBytes  int   // memory held by the dedup filter
	DedupFilterBudget int   // memory the dedup filter may hold (Options.DedupMemory)
	DedupLookups      int64 // ids Enqueue looked up in the store since Open: duplicates, and new ids the filter could not rule out
	DedupFilterBlind  bool  // the filter answers "maybe" to every id (not even its smallest filter fits the budget, or Open rebuilt it from a window that held more ids than it could take, and some of those are still in the window): each is looked up in the store

	DiskFree    uint64 // bytes available on the store's volume when last looked at (every 250 ms while events arrive)
	DiskReserve uint64 // free space below which new events are refused; 0 when they never are
}

// Stats returns the store's counters. They are kept in memory; finding the
// oldest pending delivery costs at most one index seek per sink with a
// backlog.
func (s *Store) Stats() Stats {
	_ = s.space.check(s.now()) // fresh free space for an idle store too
	st := Stats{
		Pending:             make(map[string]int),
		OldestPendingBySink: make(map[string]time.Time),
		DeadLetters:         int(s.deadLetters.Load()),
		Events:              int(s.events.Load()),
		DiskFree:            s.space.free.Load(),
		DiskReserve:         s.space.floor.Load(),
	}
	st.DedupFilterBytes, st.DedupFilterBlind = s.dedup.usage(s.now().UnixNano())
	st.DedupFilterBudget = s.dedup.budget
	st.DedupLookups = s.dedupGets.Load()
	s.sinksMu.RLock()
	sinks := make([]*sinkState, 0, len(s.sinks))
	for _, sk := range s.sinks {
		sinks = append(sinks, sk)
	}
	s.sinksMu.RUnlock()

	var oldest, sinkOldest int64
	older := func(at int64) {
		if at > 0 && (sinkOldest == 0 || at < sinkOldest) {
			sinkOldest = at
		}
	}
	for _, sk := range sinks {
		sinkOldest = 0
		sk.mu.Lock()
		st.Pending[sk.name] = sk.pending
		for _, h := range sk.inFlight {
			older(h.at)
		}
		for _, h := range sk.released {
			older(h.at)
		}
		backlog := sk.pending > len(sk.inFlight)+len(sk.released)
		cursor := sk.cursor
		sk.mu.Unlock()
		if backlog {
			older(s.firstPendingAt(sk, cursor))
		}
		if sinkOldest != 0 {
			st.OldestPendingBySink[sk.name] = time.Unix(0, sinkOldest)
			if oldest == 0 || sinkOldest < oldest {
				oldest = sinkOldest
			}
		}
	}
	if oldest != 0 {
		st.OldestPending = time.Unix(0, oldest)
	}
	return st
}

// firstPendingAt is the acceptance time of sink's first pending record at or
// after cursor; 0 when there is none.
func (s *Store) firstPendingAt(sk *sinkState, cursor uint64) int64 {
	if s.begin() != nil {
		return 0
	}
	defer s.end()
	iter, err := s.db.NewIter(&pebble.IterOptions{
		LowerBound: pendingKey(nil, sk.name, cursor),
		UpperBound: prefixEnd(sk.prefix),
	})
	if err != nil {
		return 0
	}
	defer iter.Close()
	if !iter.First() {
		return 0
	}
	rec, err := decodePendingRecord(iter.Value())
	if err != nil {
		return 0
	}
	return rec.At
}

// pebbleLogger sends Pebble's messages to the store's logger.
type pebbleLogger struct{ log *slog.Logger }

// stallLogger reports the times Pebble holds writes back (memtables or L0
// waiting for a flush or compaction): every Enqueue, and so every
// acknowledgement, waits meanwhile.
func stallLogger(log *slog.Logger) *pebble.EventListener {
	var began atomic.Int64
	return &pebble.EventListener{
		WriteStallBegin: func(info pebble.WriteStallBeginInfo) {
			began.Store(time.Now().UnixNano())
			log.Warn("queue: writes stalled until storage catches up", "reason", info.Reason)
		},
		WriteStallEnd: func() {
			if at := began.Swap(0); at != 0 {
				log.Warn("queue: writes resumed", "stalled", time.Since(time.Unix(0, at)).Round(time.Microsecond))
			}
		},
	}
}

func (l pebbleLogger) Infof(format string, args ...any) {
	l.log.Info(fmt.Sprintf(format, args...), "component", "pebble")
}

// Fatalf is called by Pebble on unrecoverable corruption and must not return.
func (l pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	l.log.Error(msg, "component", "pebble")
	panic("queue: pebble: " + msg)
}
