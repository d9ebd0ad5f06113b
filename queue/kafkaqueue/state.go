package kafkaqueue

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	kafkago "github.com/segmentio/kafka-go"
)

// StateSuffix names the default shared-state topic after the ingress topic.
const StateSuffix = ".state"

// ErrStateClosed is returned by the shared state's calls once the queue has
// closed.
var ErrStateClosed = errors.New("kafkaqueue: the shared state is closed")

// State is a small key-value map every replica of a Kafka queue shares,
// kept on a compacted topic of one partition: each Put is a record keyed by
// its key, each Delete a tombstone (a record with a null value), and the
// brokers' compaction keeps the latest record of each key. Every replica
// reads the whole topic into a local copy, which holds the latest value of
// each key only; a read catches up with the topic's end first, so that it
// sees every write acknowledged before it began, on any replica.
//
// It is for little state: values of at most a few KiB, keys in the hundreds
// of thousands at most, and writes in the hundreds a second at most (many
// of them in one call of writeAll count once). It is safe for concurrent
// use.
type State struct {
	q     *Queue
	topic string

	ctx    context.Context // ends at close
	cancel context.CancelFunc

	setupLock chan struct{} // held (full) while one call sets the state up
	client    *kafkago.Client
	closeIdle func()
	writer    *kafkago.Writer
	readDone  chan struct{} // closed when the reader goroutine has returned

	mu     sync.Mutex
	closed bool
	ready  bool // the topic was created (or found) and the reader started
	// The local copy: the latest value of each live key, as the reader
	// applied the topic's records, in offset order.
	m map[string][]byte
	// read is the offset after the last record applied: every record below
	// it was read (or removed by compaction).
	read int64
	// moved is closed, and replaced, when read moves on or the state
	// closes, if someone is waiting (waiting).
	moved   chan struct{}
	waiting bool
	readErr error // the reader's last error, cleared by a record read
}

// State opens (once; later calls return the same *State) the queue's shared
// state: a map on the compacted topic StateTopic (by default the ingress
// topic's name plus ".state"), of one partition. It makes no connection
// until first used; the queue's own readers use it from the start of their
// first generation, for the attempts of retried deliveries. Close of the
// Queue closes it; after that its calls return ErrStateClosed.
func (q *Queue) State() *State {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.state != nil {
		return q.state
	}
	s := &State{
		q:         q,
		topic:     q.o.StateTopic,
		setupLock: make(chan struct{}, 1),
		readDone:  make(chan struct{}),
		m:         map[string][]byte{},
		moved:     make(chan struct{}),
		closed:    q.closed,
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.client, s.closeIdle = q.client()
	s.writer = q.newWriter(s.topic, time.Millisecond)
	// Every record goes to partition 0, the one the replicas read, even if
	// the topic was made with more.
	s.writer.Balancer = kafkago.BalancerFunc(func(kafkago.Message, ...int) int { return 0 })
	// The topic must be compacted: one the brokers create on the fly is not.
	s.writer.AllowAutoTopicCreation = false
	q.state = s
	return s
}

// Get returns the value of key as of the call: it sees every Put and Delete
// any replica had acknowledged before Get was called. It asks the brokers
// for the topic's end, then waits until the local copy has read up to it;
// when the brokers do not answer, or the copy does not catch up before ctx
// ends, it returns an error, never a value that may be stale.
func (s *State) Get(ctx context.Context, key string) (value []byte, found bool, err error) {
	if err := s.catchUp(ctx); err != nil {
		return nil, false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[key]
	if !ok {
		return nil, false, nil
	}
	return bytes.Clone(v), true, nil
}

// Put sets key to value, returning once the brokers have the record
// (acks=all): a Get that starts after, on any replica, sees it. The value must not be
// empty: kafka-go reads an empty record value as null, a tombstone.
func (s *State) Put(ctx context.Context, key string, value []byte) error {
	if len(value) == 0 {
		return fmt.Errorf("kafkaqueue: putting key %q in the shared state: empty value (it would read back as a delete)", key)
	}
	return s.write(ctx, key, value)
}

// Delete removes key: it writes a tombstone, and returns once the brokers
// have it (acks=all).
func (s *State) Delete(ctx context.Context, key string) error {
	return s.write(ctx, key, nil)
}

// Each calls fn with each key of the local copy that starts with prefix,
// and its value, in key order, until fn returns false. It first catches up
// with the topic as Get does. fn may call the state's other methods.
func (s *State) Each(ctx context.Context, prefix string, fn func(key string, value []byte) bool) error {
	if err := s.catchUp(ctx); err != nil {
		return err
	}
	type kv struct {
		k string
		v []byte
	}
	var found []kv
	s.mu.Lock()
	for k, v := range s.m {
		if strings.HasPrefix(k, prefix) {
			found = append(found, kv{k, bytes.Clone(v)})
		}
	}
	s.mu.Unlock()
	slices.SortFunc(found, func(a, b kv) int { return strings.Compare(a.k, b.k) })
	for _, e := range found {
		if !fn(e.k, e.v) {
			break
		}
	}
	return nil
}

// write writes the record of a Put (value not nil) or a Delete (value
// nil). The local copy takes it when the reader reads it back: Get and Each
// catch up with the topic's end before they look, so applying it here too
// would change nothing they can see.
func (s *State) write(ctx context.Context, key string, value []byte) error {
	if key == "" {
		return errors.New("kafkaqueue: the shared state's keys must not be empty")
	}
	return s.writeAll(ctx, fmt.Sprintf("key %q", key), kafkago.Message{Key: []byte(key), Value: bytes.Clone(value)})
}

// writeAll writes msgs (keys set; a nil value deletes) in one call, in
// their order, returning once the brokers have them all. what names them
// in the error.
func (s *State) writeAll(ctx context.Context, what string, msgs ...kafkago.Message) error {
	if err := s.use(ctx); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, s.q.o.WriteTimeout)
	defer cancel()
	if err := s.writer.WriteMessages(ctx, msgs...); err != nil {
		return fmt.Errorf("kafkaqueue: writing %s to topic %s: %w", what, s.topic, err)
	}
	return nil
}

// applyRead applies the record the reader read at offset, and moves the
// read offset past it. s.mu held.
func (s *State) applyRead(key string, value []byte, offset int64) {
	if offset < s.read {
		return // read again after a reconnect
	}
	s.read = offset + 1
	s.readErr = nil
	if s.waiting {
		close(s.moved)
		s.moved, s.waiting = make(chan struct{}), false
	}
	if value == nil {
		delete(s.m, key)
		return
	}
	s.m[key] = value
}

// catchUp waits until the local copy has read up to the end the brokers
// report for the topic now.
func (s *State) catchUp(ctx context.Context) error {
	if err := s.use(ctx); err != nil {
		return err
	}
	listed, err := s.client.ListOffsets(ctx, &kafkago.ListOffsetsRequest{Topics: map[string][]kafkago.OffsetRequest{
		s.topic: {kafkago.FirstOffsetOf(0), kafkago.LastOffsetOf(0)},
	}})
	if err == nil {
		err = stateListErr(listed, s.topic)
	}
	if err != nil {
		return fmt.Errorf("kafkaqueue: the end of topic %s: %w", s.topic, err)
	}
	first, end := listed.Topics[s.topic][0].FirstOffset, listed.Topics[s.topic][0].LastOffset
	if end <= first {
		return nil // empty
	}
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return ErrStateClosed
		}
		read, readErr := s.read, s.readErr
		if read >= end {
			s.mu.Unlock()
			return nil
		}
		s.waiting = true
		moved := s.moved
		s.mu.Unlock()
		select {
		case <-moved:
		case <-ctx.Done():
			if readErr != nil {
				return fmt.Errorf("kafkaqueue: reading topic %s up to offset %d (read up to %d; last error: %v): %w", s.topic, end, read, readErr, ctx.Err())
			}
			return fmt.Errorf("kafkaqueue: reading topic %s up to offset %d (read up to %d): %w", s.topic, end, read, ctx.Err())
		}
	}
}

// stateListErr is the error of the listing of the state topic's partition 0.
func stateListErr(listed *kafkago.ListOffsetsResponse, topic string) error {
	parts := listed.Topics[topic]
	if len(parts) == 0 {
		return errors.New("partition 0 not listed")
	}
	if parts[0].Error != nil {
		return parts[0].Error
	}
	if parts[0].FirstOffset < 0 || parts[0].LastOffset < 0 {
		return errors.New("no offsets listed for partition 0")
	}
	return nil
}

// setUp says whether use has nothing to do: the state is ready, or closed
// (ErrStateClosed).
func (s *State) setUp() (done bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return true, ErrStateClosed
	case s.ready:
		return true, nil
	}
	return false, nil
}

// use sets the state up on the first call that succeeds: it creates the
// topic, compacted, unless it exists, and starts the reader.
func (s *State) use(ctx context.Context) error {
	if done, err := s.setUp(); done {
		return err
	}
	select {
	case s.setupLock <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("kafkaqueue: setting up the shared state: %w", ctx.Err())
	}
	defer func() { <-s.setupLock }()
	if done, err := s.setUp(); done {
		return err
	}
	if err := s.createTopic(ctx); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrStateClosed
	}
	s.ready = true
	go s.readLoop()
	return nil
}

// createTopic creates the topic with one partition, compacted, and the
// brokers' default replication factor. A topic that exists is left as it
// is. When the brokers refuse to create it (no permission), it warns and
// goes on: the topic may have been made by hand.
func (s *State) createTopic(ctx context.Context) error {
	resp, err := s.client.CreateTopics(ctx, &kafkago.CreateTopicsRequest{Topics: []kafkago.TopicConfig{{
		Topic:             s.topic,
		NumPartitions:     1,
		ReplicationFactor: -1, // the brokers' default.replication.factor
		ConfigEntries:     []kafkago.ConfigEntry{{ConfigName: "cleanup.policy", ConfigValue: "compact"}},
	}}})
	if err != nil {
		return fmt.Errorf("kafkaqueue: creating topic %s: %w", s.topic, err)
	}
	err = resp.Errors[s.topic]
	switch {
	case err == nil:
		s.q.log.Info("created the shared state's topic", "topic", s.topic, "cleanup.policy", "compact")
	case errors.Is(err, kafkago.TopicAlreadyExists):
	default:
		// Logged once: the state is set up from here on, and its calls
		// fail while the topic does not exist.
		s.q.log.Warn("could not create the shared state's topic; using it if it exists. It must have one partition and cleanup.policy=compact",
			"topic", s.topic, "err", err)
	}
	return nil
}

// readLoop reads the topic from its first record into the local copy,
// until close; after an error it reads on from where it stopped, after a
// back-off.
func (s *State) readLoop() {
	defer close(s.readDone)
	const minBackoff = 100 * time.Millisecond
	backoff := minBackoff
	for {
		s.mu.Lock()
		from := s.read
		s.mu.Unlock()
		if from == 0 {
			from = kafkago.FirstOffset
		}
		progressed, err := s.readFrom(from)
		if s.ctx.Err() != nil {
			return
		}
		if progressed {
			backoff = minBackoff
		}
		s.mu.Lock()
		s.readErr = err
		s.mu.Unlock()
		s.q.log.Warn("reading the shared state's topic; retrying", "topic", s.topic, "offset", from, "err", err, "retry_in", backoff)
		select {
		case <-time.After(backoff):
		case <-s.ctx.Done():
			return
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// readFrom reads the topic from offset until an error or close, reporting
// whether it applied any record.
func (s *State) readFrom(offset int64) (progressed bool, err error) {
	logf := kafkago.LoggerFunc(func(format string, args ...any) {
		s.q.log.Debug("shared state reader: "+fmt.Sprintf(format, args...), "topic", s.topic)
	})
	// kafka-go's reader retries by itself, and only logs why it fails: a
	// Get that times out says it.
	errorf := kafkago.LoggerFunc(func(format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		s.q.log.Debug("shared state reader: "+msg, "topic", s.topic)
		s.mu.Lock()
		s.readErr = errors.New(msg)
		s.mu.Unlock()
	})
	kr := kafkago.NewReader(kafkago.ReaderConfig{
		Brokers:     s.q.o.Brokers,
		Topic:       s.topic,
		Partition:   0,
		Dialer:      s.q.dialer,
		MinBytes:    1,
		MaxBytes:    16 << 20,
		MaxWait:     500 * time.Millisecond,
		Logger:      logf,
		ErrorLogger: errorf,
	})
	defer kr.Close()
	if err := kr.SetOffset(offset); err != nil {
		return false, fmt.Errorf("setting offset %d: %w", offset, err)
	}
	for {
		m, err := kr.FetchMessage(s.ctx)
		if err != nil {
			return progressed, err
		}
		progressed = true
		s.mu.Lock()
		s.applyRead(string(m.Key), m.Value, m.Offset)
		s.mu.Unlock()
	}
}

// close stops the reader and the writer; the state's calls return
// ErrStateClosed from then on.
func (s *State) close() error {
	s.mu.Lock()
	if s.closed && !s.ready {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	started := s.ready
	s.ready = false
	if s.waiting {
		close(s.moved)
		s.moved, s.waiting = make(chan struct{}), false
	}
	s.mu.Unlock()
	s.cancel()
	if started {
		<-s.readDone
	}
	err := s.writer.Close()
	s.closeIdle()
	return err
}
