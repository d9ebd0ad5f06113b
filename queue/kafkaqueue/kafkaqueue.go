package kafkaqueue

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	kafkago "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"

	"github.com/hookbridge/hookbridge/eventcodec"
	"github.com/hookbridge/hookbridge/queue"
	"github.com/hookbridge/hookbridge/sinks/kafka"
)

// Defaults of the options that have one.
const (
	DefaultMaxHeld        = 10000
	DefaultMaxHeldBytes   = 16 << 20
	DefaultMaxDedupIDs    = 100000
	DefaultDedupLookback  = 10000
	DefaultWriteTimeout   = 1500 * time.Millisecond
	DefaultCommitInterval = 200 * time.Millisecond
	DefaultSessionTimeout = 10 * time.Second
	DefaultNewGroupMargin = time.Minute
	DefaultLagInterval    = 5 * time.Second
	// DeadLetterSuffix names the default dead-letter topic after the ingress topic.
	DeadLetterSuffix = ".deadletter"
)

// Headers of a rejected request body on the dead-letter topic.
const (
	HeaderSource = "hookbridge_source"
	HeaderReason = "hookbridge_reason"
)

// Options configure Open.
type Options struct {
	// Brokers are the bootstrap brokers, host:port. Required.
	Brokers []string
	// Topic is the ingress topic. Required.
	Topic string
	// Group is the consumer group's name; each sink reads the topic as the
	// group "<Group>.<sink>", so that one sink's backlog never holds back
	// another's. Required.
	Group string
	// DeadLetterTopic receives what no sink could take. Default Topic+".deadletter".
	DeadLetterTopic string
	// StateTopic keeps the replicas' shared state (see State): a compacted
	// topic of one partition, created on first use. Default Topic+".state".
	StateTopic string
	// TLS and SASL secure the connections to the brokers; nil: none.
	TLS  *tls.Config
	SASL sasl.Mechanism
	// Route names the sinks an event goes to, by the routes in force when
	// the record is read. Required.
	Route func(*event.Event) []string
	// DedupWindow is how long an id read stays remembered; 0 turns
	// deduplication off.
	DedupWindow time.Duration
	// MaxDedupIDs bounds the ids remembered per sink. Default 100,000.
	MaxDedupIDs int
	// DedupLookback is how many records before the first one a reader
	// reads from a partition (after a start, or after a rebalance handed it
	// records others read) it reads back for their ids. Default 10,000.
	DedupLookback int
	// MaxHeld is how many records one sink's reader holds in memory, read
	// and not yet settled, before it waits. Default 10,000.
	MaxHeld int
	// MaxHeldBytes bounds the same records by the size of their values,
	// so that large events (chat logs) do not take MaxHeld times their
	// size: the reader waits once it holds this much (but always takes
	// one record when it holds none). Default 16 MiB.
	MaxHeldBytes int64
	// WriteTimeout bounds one write to the brokers, and how long Enqueue
	// waits for its events to be acknowledged: a provider waiting longer
	// would give up anyway, and Crisp waits 2 s, so the 503 that asks it to
	// retry must leave well before. Default 1.5s.
	WriteTimeout time.Duration
	// CommitInterval is how often settled offsets are committed: a replica
	// killed in between has what settled since delivered again by the next
	// holder of its partitions. Default 200ms.
	CommitInterval time.Duration
	// SessionTimeout is how long the group waits for a silent member before
	// giving its partitions to another. Default 10s.
	SessionTimeout time.Duration
	// NewGroupMargin is how long before the sink subscribed a group new to
	// the brokers starts: replicas that place the same new group at the
	// same moment each commit their own start, and the last commit wins, so
	// each starts early enough to cover the others' (and their clocks).
	// Default 1m.
	NewGroupMargin time.Duration
	// LagInterval is how often each sink's consumer-group lag is measured
	// for Lag. Default 5s.
	LagInterval time.Duration
	// OnDuplicate, when set, hears of each event a sink's reader drops as a
	// duplicate. It must not block.
	OnDuplicate func(sink string, ev *event.Event)
	// Logger receives the queue's logs. Default slog.Default().
	Logger *slog.Logger
}

// Queue is the Kafka-backed queue. It implements the queue the bridge's
// ingest and delivery loops use (Enqueue, Reject, Next, Ack, ...).
type Queue struct {
	o      Options
	log    *slog.Logger
	writer *kafkago.Writer // ingress
	dlq    *kafkago.Writer // dead letters
	dialer *kafkago.Dialer

	ctx    context.Context // ends at Close
	cancel context.CancelFunc

	mu      sync.Mutex
	sinks   map[string]*sinkQueue
	readers map[string]*reader
	seq     uint64
	closed  bool
	state   *State // the shared state, once asked for

	attempts *attemptKeeper // the attempts of retried deliveries, in the shared state

	// Each sink's lag as last measured, and when (see Lag).
	lag        map[string]int64
	lagUpdated map[string]time.Time
	lagDone    chan struct{}

	buried      atomic.Int64 // dead letters listed, as last counted (deadLetterCount) and written, replayed or discarded since
	replayMu    sync.Mutex   // one Replay or Discard at a time
	buryMu      sync.Mutex
	buryQueue   []burial
	buryWake    chan struct{}
	buryDone    chan struct{}
	readersDone sync.WaitGroup
}

// Open validates o and prepares the queue. It makes no connection: the
// first write does, and each sink's reader joins its group when Subscribe
// starts it.
func Open(o Options) (*Queue, error) {
	var errs []error
	if len(o.Brokers) == 0 {
		errs = append(errs, errors.New("kafkaqueue: no brokers"))
	}
	if o.Topic == "" || o.Group == "" {
		errs = append(errs, errors.New("kafkaqueue: topic and group are required"))
	}
	if o.Route == nil {
		errs = append(errs, errors.New("kafkaqueue: Route is required"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if o.DeadLetterTopic == "" {
		o.DeadLetterTopic = o.Topic + DeadLetterSuffix
	}
	if o.StateTopic == "" {
		o.StateTopic = o.Topic + StateSuffix
	}
	orDefault(&o.MaxDedupIDs, DefaultMaxDedupIDs)
	orDefault(&o.DedupLookback, DefaultDedupLookback)
	orDefault(&o.MaxHeld, DefaultMaxHeld)
	orDefault(&o.MaxHeldBytes, DefaultMaxHeldBytes)
	orDefault(&o.WriteTimeout, DefaultWriteTimeout)
	orDefault(&o.CommitInterval, DefaultCommitInterval)
	orDefault(&o.SessionTimeout, DefaultSessionTimeout)
	orDefault(&o.NewGroupMargin, DefaultNewGroupMargin)
	orDefault(&o.LagInterval, DefaultLagInterval)
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	q := &Queue{
		o:          o,
		log:        o.Logger,
		sinks:      map[string]*sinkQueue{},
		readers:    map[string]*reader{},
		lag:        map[string]int64{},
		lagUpdated: map[string]time.Time{},
		lagDone:    make(chan struct{}),
		buryWake:   make(chan struct{}, 1),
		buryDone:   make(chan struct{}),
		dialer:     &kafkago.Dialer{ClientID: "hookbridge", Timeout: o.WriteTimeout, DualStack: true, TLS: o.TLS, SASLMechanism: o.SASL},
	}
	q.ctx, q.cancel = context.WithCancel(context.Background())
	q.writer = q.newWriter(o.Topic, time.Millisecond)
	q.writer.Balancer = conversationBalancer{}
	q.dlq = q.newWriter(o.DeadLetterTopic, time.Nanosecond)
	q.attempts = newAttemptKeeper(q)
	go q.buryLoop()
	go q.lagLoop()
	go q.attempts.run()
	return q, nil
}

// orDefault sets *v to def when it is not positive.
func orDefault[T int | int64 | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// newWriter makes a synchronous writer: concurrent writes that arrive
// within linger of each other share one produce request.
func (q *Queue) newWriter(topic string, linger time.Duration) *kafkago.Writer {
	return &kafkago.Writer{
		Addr:                   kafkago.TCP(q.o.Brokers...),
		Topic:                  topic,
		Balancer:               &kafkago.Murmur2Balancer{},
		RequiredAcks:           kafkago.RequireAll,
		BatchTimeout:           linger,
		BatchSize:              1000,
		WriteTimeout:           q.o.WriteTimeout,
		ReadTimeout:            q.o.WriteTimeout,
		MaxAttempts:            3,
		AllowAutoTopicCreation: true,
		Transport:              &kafkago.Transport{ClientID: "hookbridge", TLS: q.o.TLS, SASL: q.o.SASL},
		ErrorLogger: kafkago.LoggerFunc(func(format string, args ...any) {
			q.log.Debug(fmt.Sprintf(format, args...), "topic", topic)
		}),
	}
}

// Enqueue writes items to the ingress topic and returns once the brokers
// have all of them (acks=all). It reports no duplicates: ids are
// deduplicated where the records are read.
func (q *Queue) Enqueue(ctx context.Context, items []queue.Item) (dup []bool, err error) {
	msgs := make([]kafkago.Message, len(items))
	var dec eventcodec.Decoder
	for i, it := range items {
		if it.ID == "" || len(it.Event) == 0 {
			return nil, fmt.Errorf("kafkaqueue: item %d has no id or no event", i)
		}
		ev := it.CloudEvent
		if ev == nil {
			var err error
			if ev, err = dec.Decode(it.Event); err != nil {
				return nil, fmt.Errorf("kafkaqueue: item %d: %w", i, err)
			}
		}
		if msgs[i], err = kafka.ToMessage(ev, kafka.ModeBinary); err != nil {
			return nil, fmt.Errorf("kafkaqueue: item %d: %w", i, err)
		}
		msgs[i].Key = []byte(it.ID)
		msgs[i].WriterData = conversationKey(ev, msgs[i].Key)
	}
	// Past the timeout the write may still land: the provider's retry is
	// then dropped as a duplicate where the records are read.
	ctx, cancel := context.WithTimeout(ctx, q.o.WriteTimeout)
	defer cancel()
	if err := q.writer.WriteMessages(ctx, msgs...); err != nil {
		return nil, fmt.Errorf("kafkaqueue: writing to topic %s: %w", q.o.Topic, err)
	}
	return make([]bool, len(items)), nil
}

// Reject writes a request body that could not be converted to the
// dead-letter topic, returning once the brokers have it.
func (q *Queue) Reject(source string, raw []byte, reason string) error {
	ctx, cancel := context.WithTimeout(q.ctx, q.o.WriteTimeout)
	defer cancel()
	msg := kafkago.Message{Value: raw, Headers: []kafkago.Header{
		{Key: HeaderSource, Value: []byte(source)},
		{Key: HeaderReason, Value: []byte(reason)},
	}}
	if err := q.dlq.WriteMessages(ctx, msg); err != nil {
		return fmt.Errorf("kafkaqueue: writing to topic %s: %w", q.o.DeadLetterTopic, err)
	}
	q.buried.Add(1)
	return nil
}

// Refusing is always nil: the brokers, not a local disk, hold the events.
func (q *Queue) Refusing() error { return nil }

// Stats reports the deliveries this replica holds per sink (read from the
// topic, not yet ended; 0 for a subscribed sink that holds none), the
// broker time of the oldest record held, and the dead letters on the
// dead-letter topic not replayed or discarded, as counted every
// LagInterval (and kept up to date in between with what this replica
// writes, replays and discards).
func (q *Queue) Stats() queue.Stats {
	q.mu.Lock()
	defer q.mu.Unlock()
	st := queue.Stats{Pending: make(map[string]int, len(q.readers)), OldestPendingBySink: make(map[string]time.Time, len(q.readers)),
		DeadLetters: int(q.buried.Load())}
	// Every sink that reads the topic is in, at 0 when it holds nothing, as
	// the embedded store reports its sinks: a gauge with no series is not
	// a 0 to an alert. A sink that leaves (Unsubscribe) is left out.
	for name := range q.readers {
		st.Pending[name] = 0
	}
	for name, s := range q.sinks {
		if n := len(s.pending) + len(s.inFlight); n > 0 {
			st.Pending[name] = n
			st.Events += n
		}
	}
	for sink, r := range q.readers {
		for _, p := range r.parts {
			if len(p.open) == 0 {
				continue
			}
			at := p.open[0].at
			if old, ok := st.OldestPendingBySink[sink]; !ok || at.Before(old) {
				st.OldestPendingBySink[sink] = at
			}
			if st.OldestPending.IsZero() || at.Before(st.OldestPending) {
				st.OldestPending = at
			}
		}
	}
	return st
}

// Subscribe starts the reader of sink: it joins the group "<Group>.<sink>"
// and takes the records routed to sink. Subscribing twice does nothing.
func (q *Queue) Subscribe(sink string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return queue.ErrClosed
	}
	if _, ok := q.readers[sink]; ok {
		return nil
	}
	r := q.newReader(sink)
	q.readers[sink] = r
	q.lagUpdated[sink] = time.Time{}
	q.readersDone.Add(1)
	go func() {
		defer q.readersDone.Done()
		r.run()
	}()
	return nil
}

// Unsubscribe stops the reader of sink, committing what it settled. Its
// records not yet settled stay in the topic for the group, to be read again
// when the sink returns; deliveries other sinks forwarded to it go to the
// dead-letter topic.
func (q *Queue) Unsubscribe(sink string) {
	q.mu.Lock()
	r := q.readers[sink]
	delete(q.readers, sink)
	delete(q.lag, sink)
	delete(q.lagUpdated, sink)
	s := q.sinks[sink]
	var orphans []*entry
	if s != nil {
		for _, e := range s.pending {
			if e.rec.r != r {
				orphans = append(orphans, e)
			} else {
				e.rec.dropped = true
			}
		}
		for _, e := range s.inFlight {
			if e.rec.r == r {
				e.rec.dropped = true // its end is not waited for
			}
		}
		// This sink's own deliveries are dropped unsettled: its reader is
		// gone, and the records are read again when it returns.
		delete(q.sinks, sink)
	}
	q.mu.Unlock()
	if r != nil {
		r.stop()
		q.log.Info("sink stopped reading the queue; its consumer group keeps its offsets", "sink", sink, "group", q.o.Group+"."+sink)
	}
	for _, e := range orphans {
		q.bury(sink, e, fmt.Sprintf("%s: no longer in the config", sink))
	}
}

// Close stops the readers (committing what they settled), the lag
// measurements, the attempts' writes, the shared state and the writers.
// The delivery loops must be stopped first.
func (q *Queue) Close() error {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return nil
	}
	q.closed = true
	readers := make([]*reader, 0, len(q.readers))
	for _, r := range q.readers {
		readers = append(readers, r)
	}
	for _, s := range q.sinks {
		s.wakeAll()
	}
	q.mu.Unlock()
	for _, r := range readers {
		r.stop()
	}
	q.readersDone.Wait()
	q.cancel()
	<-q.buryDone
	<-q.lagDone
	<-q.attempts.done
	q.mu.Lock()
	clear(q.lag)
	clear(q.lagUpdated)
	state := q.state
	q.mu.Unlock()
	var stateErr error
	if state != nil {
		stateErr = state.close()
	}
	return errors.Join(q.writer.Close(), q.dlq.Close(), stateErr)
}

// burial is one record for the dead-letter topic, and the delivery it ends.
type burial struct {
	msg kafkago.Message
	rec *record
}

// bury sends e to the dead-letter topic in the background and settles it
// once written; writes are retried until they succeed or the queue closes
// (the record is then read again after a restart).
func (q *Queue) bury(sink string, e *entry, reason string) {
	if e.from != "" && e.why.Reason != "" {
		reason = fmt.Sprintf("%s (dead-lettered by %s: %s)", reason, e.from, e.why.Reason)
	}
	var msg kafkago.Message
	ev, err := eventcodec.Decode(e.body)
	if err == nil {
		if e.from != "" {
			// Kept as this dead-letter sink was sent it, with the sink
			// that gave up first and why, so that a replay to it sends
			// what a dead-letter sink expects; who gave up last, and why,
			// go in headers.
			queue.SetDeadLetterExtensions(ev, e.from, e.why)
		} else {
			ev.SetExtension(queue.ExtDeadLetterSink, sink)
			ev.SetExtension(queue.ExtDeadLetterReason, reason)
		}
		msg, err = kafka.ToMessage(ev, kafka.ModeBinary)
		if err == nil && e.from != "" {
			msg.Headers = append(msg.Headers, kafkago.Header{Key: HeaderReason, Value: []byte(reason)})
		}
	}
	if err != nil { // not an event the binding can carry: keep its bytes
		msg = kafkago.Message{Value: e.body, Headers: []kafkago.Header{{Key: HeaderReason, Value: []byte(reason)}}}
	}
	msg.Key = e.rec.key
	msg.Headers = append(msg.Headers, kafkago.Header{Key: HeaderAttempts, Value: []byte(strconv.Itoa(e.attempts))})
	if e.from != "" {
		msg.Headers = append(msg.Headers,
			kafkago.Header{Key: HeaderFrom, Value: []byte(e.from)},
			kafkago.Header{Key: HeaderSink, Value: []byte(sink)})
	}
	q.buryMu.Lock()
	q.buryQueue = append(q.buryQueue, burial{msg: msg, rec: e.rec})
	q.buryMu.Unlock()
	select {
	case q.buryWake <- struct{}{}:
	default:
	}
}

func (q *Queue) buryLoop() {
	defer close(q.buryDone)
	backoff := time.Second
	for {
		q.buryMu.Lock()
		batch := q.buryQueue
		q.buryQueue = nil
		q.buryMu.Unlock()
		if len(batch) == 0 {
			select {
			case <-q.buryWake:
				continue
			case <-q.ctx.Done():
				return
			}
		}
		msgs := make([]kafkago.Message, len(batch))
		for i, b := range batch {
			msgs[i] = b.msg
		}
		ctx, cancel := context.WithTimeout(q.ctx, q.o.WriteTimeout)
		err := q.dlq.WriteMessages(ctx, msgs...)
		cancel()
		if err != nil {
			q.log.Error("writing dead letters; retrying", "topic", q.o.DeadLetterTopic, "events", len(batch), "err", err, "retry_in", backoff)
			q.buryMu.Lock()
			q.buryQueue = append(batch, q.buryQueue...)
			q.buryMu.Unlock()
			select {
			case <-time.After(backoff):
			case <-q.ctx.Done():
				return
			}
			backoff = min(2*backoff, 30*time.Second)
			continue
		}
		backoff = time.Second
		q.buried.Add(int64(len(batch)))
		q.mu.Lock()
		for _, b := range batch {
			b.rec.r.settle(b.rec)
		}
		q.mu.Unlock()
	}
}
