package kafkaqueue

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	kafkago "github.com/segmentio/kafka-go"

	"github.com/hookbridge/hookbridge/eventcodec"
	"github.com/hookbridge/hookbridge/queue"
	"github.com/hookbridge/hookbridge/sinks/kafka"
)

// reader reads the ingress topic for one sink, as a member of that sink's
// consumer group, and commits the offsets it has settled.
//
// It works generation by generation of the group. In each it reads the
// partitions assigned to it, from the offsets the group committed, and
// commits as their records settle. When the generation ends (a member
// joins or leaves, partitions are added, the reader stops), it hands back
// before it joins the next one: deliveries not yet handed to the delivery
// loops are dropped, those under way are given until half the rebalance
// timeout to end, what settled is committed with the ending generation,
// and whatever did not settle is forgotten, to be read again by whoever
// holds the partition next. So two replicas never deliver a partition's
// records at once; only a delivery still under way when that time is up
// can be delivered again by the next holder.
type reader struct {
	q    *Queue
	sink string

	// Guarded by q.mu.
	parts    map[int]*partition // the partitions of the current generation
	read     map[int]int64      // per partition, where the reader's last generation stopped reading
	lastHeld map[int]int        // per partition, the records held when the last generation ended
	held     int                // records read and not settled
	heldSize int64              // the size of their values
	// attempts are, per partition and offset, the attempts spent on
	// records handed back while their deliveries were being retried: the
	// reader that reads them again, when the partition stays with it,
	// goes on from there instead of starting over.
	attempts map[int]map[int64]int

	// room is closed, and replaced, when a record settles while someone
	// waits for room (roomWaiting). Guarded by q.mu.
	room        chan struct{}
	roomWaiting bool

	since  time.Time    // when the sink subscribed: where a new group starts
	dedup  *dedupWindow // the take goroutine's alone
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
}

// partition is what a reader knows of one partition assigned to it in the
// current generation.
type partition struct {
	next      int64     // offsets below were read already
	open      []*record // read and not yet committable, in offset order
	settled   int64     // every record below this offset has settled
	committed int64     // the offset last committed
	revoking  bool      // the generation is ending: a delivery handed back is dropped
	gone      bool      // the generation has ended: its records no longer settle
}

// record is one record read, held until each delivery it made has ended.
type record struct {
	r       *reader
	p       *partition
	part    int // its partition
	offset  int64
	at      time.Time // the record's broker time: when the event was accepted
	key     []byte
	seenKey string // the key the dedup window knows it by; "" when it was not routed
	left    int    // deliveries not yet ended
	size    int64  // the record's value, counted in the reader's heldSize
	dropped bool   // handed back unsettled as its generation ended, to be read again
	kept    bool   // its attempts may be in the shared state: delete them when it settles
}

// attemptsKey is rec's key among the attempts in the shared state.
func (rec *record) attemptsKey() string { return attemptsKey(rec.r.group(), rec.part, rec.offset) }

// handedBack drops rec when its generation is ending or has ended, for a
// delivery that would otherwise go on (a release, a forward): it is read
// again by the partition's next holder. q.mu held.
func (rec *record) handedBack() bool {
	if rec.p.revoking || rec.p.gone {
		rec.dropped = true
		return true
	}
	return false
}

func (q *Queue) newReader(sink string) *reader {
	r := &reader{
		q:        q,
		sink:     sink,
		parts:    map[int]*partition{},
		read:     map[int]int64{},
		attempts: map[int]map[int64]int{},
		room:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	if q.o.DedupWindow > 0 {
		r.dedup = newDedupWindow(q.o.DedupWindow, q.o.MaxDedupIDs)
	}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.since = time.Now()
	return r
}

// group is the reader's consumer group.
func (r *reader) group() string { return r.q.o.Group + "." + r.sink }

func (r *reader) logger() kafkago.LoggerFunc {
	return func(format string, args ...any) {
		r.q.log.Debug("kafka consumer group: "+fmt.Sprintf(format, args...), "sink", r.sink)
	}
}

// run places a new group at the reader's start, joins it, and serves each
// generation it is given until stop; then the last generation hands back
// and commits, and the reader leaves the group.
func (r *reader) run() {
	defer close(r.done)
	if !r.placeNewGroup() {
		return
	}
	q := r.q
	cg, err := kafkago.NewConsumerGroup(kafkago.ConsumerGroupConfig{
		ID:                    r.group(),
		Brokers:               q.o.Brokers,
		Dialer:                q.dialer,
		Topics:                []string{q.o.Topic},
		HeartbeatInterval:     q.o.SessionTimeout / 10,
		SessionTimeout:        q.o.SessionTimeout,
		RebalanceTimeout:      q.o.SessionTimeout,
		WatchPartitionChanges: true,
		StartOffset:           kafkago.FirstOffset,
		// Sticky first; a group whose members do not all offer it (during an
		// upgrade) agrees on range.
		GroupBalancers: []kafkago.GroupBalancer{stickyBalancer{held: r.heldPartitions}, kafkago.RangeGroupBalancer{}, kafkago.RoundRobinGroupBalancer{}},
		Logger:         r.logger(),
		ErrorLogger:    r.logger(),
	})
	if err != nil {
		q.log.Error("the sink cannot read the queue: consumer group", "sink", r.sink, "group", r.group(), "err", err)
		return
	}
	for {
		gen, err := cg.Next(r.ctx)
		if err != nil {
			if r.ctx.Err() != nil {
				break
			}
			// The group retries by itself, with a back-off.
			q.log.Warn("joining the sink's consumer group; retrying", "sink", r.sink, "group", r.group(), "err", err)
			continue
		}
		r.serve(gen)
	}
	// Closing ends the generation (which hands back and commits) and leaves.
	if err := cg.Close(); err != nil {
		q.log.Warn("leaving the consumer group", "sink", r.sink, "group", r.group(), "err", err)
	}
}

func (r *reader) stop() {
	r.cancel()
	<-r.done
}

// serve starts the reader's work in one generation: a reader per assigned
// partition, the goroutine that takes their records (and hands back at the
// end), and the periodic commit. kafka-go waits for all of them to return
// before it joins the next generation.
func (r *reader) serve(gen *kafkago.Generation) {
	q := r.q
	assigned := gen.Assignments[q.o.Topic]
	q.mu.Lock()
	r.parts = make(map[int]*partition, len(assigned))
	for _, a := range assigned {
		p := &partition{}
		if a.Offset >= 0 {
			p.committed = a.Offset
			// Where the last generation read on from here, the ids before
			// it are in the dedup window already: nothing to read back.
			if last, ok := r.read[a.ID]; ok && last >= a.Offset {
				p.next = a.Offset
			}
		}
		r.parts[a.ID] = p
	}
	q.mu.Unlock()
	q.log.Debug("reading the queue in a new generation of the sink's group", "sink", r.sink, "group", r.group(), "generation", gen.ID, "partitions", len(assigned))

	// Records read ahead wait here and in each partition reader's queue
	// (readAhead each), outside MaxHeld and MaxHeldBytes: few, so that
	// large events do not take hundreds of megabytes before the bound.
	msgs := make(chan kafkago.Message, readAhead)
	for _, a := range assigned {
		gen.Start(func(ctx context.Context) { r.readPartition(ctx, a.ID, a.Offset, msgs) })
	}
	gen.Start(func(ctx context.Context) {
		r.loadAttempts(ctx, assigned)
		r.takeAll(ctx, msgs)
		r.handBack(gen)
	})
	gen.Start(func(ctx context.Context) {
		t := time.NewTicker(q.o.CommitInterval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				r.commit(gen)
			case <-ctx.Done():
				return
			}
		}
	})
}

// readAhead is how many records a partition's kafka-go reader queues ahead
// of the reader (its default is 100), and the reader's own channel holds.
// A partition's goroutine fetches only while the reader has room, so a
// reader held full behind a failing sink holds MaxHeldBytes and up to
// three records per partition besides: one in kafka-go's queue, the one
// kafka-go read next, and the one the goroutine is handing over. Records
// of 400 KB held on four partitions took the bridge to 158 MB resident
// with kafka-go's default, 111 MB with 16 and 85 MB with 4; records of
// 960 KB on twelve partitions, 136 MB with 4 and 94-97 MB with 1 and the
// wait for room, which read small records as fast (BENCHMARKS.md).
const readAhead = 1

// readPartition reads one partition from offset until the generation ends.
func (r *reader) readPartition(ctx context.Context, partition int, offset int64, out chan<- kafkago.Message) {
	q := r.q
	kr := kafkago.NewReader(kafkago.ReaderConfig{
		Brokers:       q.o.Brokers,
		Topic:         q.o.Topic,
		Partition:     partition,
		Dialer:        q.dialer,
		MinBytes:      1,
		MaxBytes:      16 << 20,
		MaxWait:       500 * time.Millisecond,
		QueueCapacity: readAhead,
		Logger:        r.logger(),
		ErrorLogger:   r.logger(),
	})
	defer kr.Close()
	if err := kr.SetOffset(offset); err != nil {
		q.log.Error("reading the ingress topic", "topic", q.o.Topic, "partition", partition, "offset", offset, "sink", r.sink, "err", err)
		return
	}
	backoff := 100 * time.Millisecond
	for r.waitRoom(ctx) {
		m, err := kr.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			q.log.Warn("reading the ingress topic; retrying", "topic", q.o.Topic, "partition", partition, "sink", r.sink, "err", err)
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
				return
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		select {
		case out <- m:
		case <-ctx.Done():
			return
		}
	}
}

// takeAll takes the generation's records as they are read, while the
// reader has room (waitRoom), until the generation ends.
func (r *reader) takeAll(ctx context.Context, msgs <-chan kafkago.Message) {
	for r.waitRoom(ctx) {
		select {
		case m := <-msgs:
			r.take(m)
		case <-ctx.Done():
			return
		}
	}
}

// waitRoom waits until the reader holds fewer than MaxHeld records, and
// less than MaxHeldBytes of them (or none); false when the generation ends.
func (r *reader) waitRoom(ctx context.Context) bool {
	for {
		r.q.mu.Lock()
		full := r.held >= r.q.o.MaxHeld || r.heldSize >= r.q.o.MaxHeldBytes
		room := r.room
		if full {
			r.roomWaiting = true
		}
		r.q.mu.Unlock()
		if !full {
			return ctx.Err() == nil
		}
		select {
		case <-room:
		case <-ctx.Done():
			return false
		}
	}
}

// handBack ends the reader's part in a generation, before kafka-go joins
// the next one (see reader). Deliveries under way are given until half the
// rebalance timeout, past which the group would drop this member; none
// when the queue is closing, as the delivery loops have stopped.
func (r *reader) handBack(gen *kafkago.Generation) {
	q := r.q
	q.mu.Lock()
	ids := make(map[*partition]int, len(r.parts))
	for id, p := range r.parts {
		p.revoking = true
		ids[p] = id
	}
	// Attempts kept for a partition that then went to another replica are
	// that replica's to count (from zero): they are of no more use here.
	for id := range r.attempts {
		if r.parts[id] == nil {
			delete(r.attempts, id)
		}
	}
	dropped := 0
	drop := func(e *entry) {
		e.rec.dropped = true
		dropped++
		if e.attempts > 0 && e.from == "" {
			id := ids[e.rec.p]
			if r.attempts[id] == nil {
				r.attempts[id] = map[int64]int{}
			}
			r.attempts[id][e.rec.offset] = e.attempts
		}
	}
	for _, s := range q.sinks {
		s.pending = slices.DeleteFunc(s.pending, func(e *entry) bool {
			if e.rec.r == r && !e.rec.p.gone {
				drop(e)
				return true
			}
			return false
		})
		// A delivery handed out and not under way waits (for its batch, a
		// rate limit, the circuit breaker, a retry's back-off) and may wait
		// longer than any wait here: it is handed back at once, and its
		// loop drops it before it sends it (Relinquished). Only a send
		// already under way may still deliver it.
		for _, e := range s.inFlight {
			if e.rec.r == r && !e.rec.p.gone && !e.underWay {
				drop(e)
			}
		}
	}
	closing := q.closed
	q.mu.Unlock()

	waited := time.Duration(0)
	if !closing {
		waited = r.waitUnderWay(q.o.SessionTimeout / 2)
	}
	// The next holders of the partitions read the attempts spent here. The
	// wait, with the one above, stays within the group's rebalance timeout
	// (SessionTimeout).
	ctx, cancel := context.WithTimeout(context.Background(), min(q.o.WriteTimeout, q.o.SessionTimeout/4))
	if err := q.attempts.flush(ctx); err != nil {
		q.log.Warn("the sink's group rebalanced before the attempts of its retried deliveries were written; the next holders of their partitions count from the ones written before", "sink", r.sink, "group", r.group(), "err", err)
	}
	cancel()
	r.commit(gen)

	q.mu.Lock()
	held, late := map[int]int{}, 0
	for id, p := range r.parts {
		p.gone = true
		r.read[id] = p.next
		for _, rec := range p.open {
			if rec.left <= 0 {
				continue
			}
			held[id]++
			r.held--
			r.heldSize -= rec.size
			if !rec.dropped {
				late++
			}
			// Read again, it must not be taken for a duplicate of itself.
			if r.dedup != nil && rec.seenKey != "" {
				r.dedup.unsee(rec.seenKey)
			}
		}
	}
	r.lastHeld = held
	r.parts = map[int]*partition{}
	r.roomFreed()
	q.mu.Unlock()
	if late > 0 {
		q.log.Warn("deliveries still under way when the sink's group rebalanced; the next holder of their partitions may deliver them again", "sink", r.sink, "group", r.group(), "deliveries", late, "waited", waited)
	} else if dropped > 0 || waited > 0 {
		q.log.Debug("handed back the records not delivered as the sink's group rebalanced", "sink", r.sink, "group", r.group(), "dropped", dropped, "waited", waited)
	}
}

// waitUnderWay waits until every record of the ending generation has
// settled or been dropped, for at most limit, and says how long it waited.
func (r *reader) waitUnderWay(limit time.Duration) time.Duration {
	start := time.Now()
	for {
		r.q.mu.Lock()
		left := 0
		for _, p := range r.parts {
			for _, rec := range p.open {
				if rec.left > 0 && !rec.dropped {
					left++
				}
			}
		}
		r.q.mu.Unlock()
		waited := time.Since(start)
		if left == 0 || waited >= limit {
			return waited
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// placeNewGroup commits, for a group that has never committed (a sink
// new to the config), the offsets of the records written since the sink
// subscribed (less NewGroupMargin), so that it starts there and not at the start of the topic's
// retention: adding a Slack sink must not send it a week of old leads.
// Every event this replica accepts after subscribing is at or after those
// offsets. Until the topic exists it waits (joining earlier would start
// the group wherever the first records land, and a crash before its first
// commit would leave it new again). It retries until it succeeds or the
// reader stops (false).
func (r *reader) placeNewGroup() bool {
	backoff := 100 * time.Millisecond
	for {
		err := r.tryPlaceNewGroup()
		if err == nil {
			return true
		}
		if errors.Is(err, errNoTopic) {
			// Nothing is written yet; the first write creates the topic.
			select {
			case <-time.After(250 * time.Millisecond):
				continue
			case <-r.ctx.Done():
				return false
			}
		}
		r.q.log.Warn("finding where the sink's new consumer group starts; retrying", "sink", r.sink, "group", r.group(), "err", err, "retry_in", backoff)
		select {
		case <-time.After(backoff):
		case <-r.ctx.Done():
			return false
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// errNoTopic: the ingress topic does not exist yet.
var errNoTopic = errors.New("the ingress topic does not exist yet")

func (r *reader) tryPlaceNewGroup() error {
	q := r.q
	ctx, cancel := context.WithTimeout(r.ctx, 2*q.o.WriteTimeout)
	defer cancel()
	client, closeClient := q.client()
	defer closeClient()
	parts, err := q.partitions(ctx, client)
	if err != nil {
		return err
	}
	offsets, err := q.committed(ctx, client, r.group(), parts)
	if err != nil {
		return err
	}
	if placed(offsets) {
		return nil // the group exists: it resumes where it stopped
	}
	at := make([]kafkago.OffsetRequest, len(parts))
	end := make([]kafkago.OffsetRequest, len(parts))
	for i, p := range parts {
		at[i], end[i] = kafkago.TimeOffsetOf(p, r.since.Add(-q.o.NewGroupMargin)), kafkago.LastOffsetOf(p)
	}
	start := map[int]int64{}
	for _, req := range [][]kafkago.OffsetRequest{end, at} { // the first record since, else the end
		listed, err := q.listOffsets(ctx, client, req)
		if err != nil {
			return err
		}
		for _, p := range listed {
			if p.LastOffset >= 0 {
				start[p.Partition] = p.LastOffset
			}
			for off := range p.Offsets {
				if off >= 0 {
					start[p.Partition] = off
				}
			}
		}
	}
	commits := make([]kafkago.OffsetCommit, 0, len(parts))
	for _, p := range parts {
		off, ok := start[p]
		if !ok {
			return fmt.Errorf("no offset listed for partition %d", p)
		}
		commits = append(commits, kafkago.OffsetCommit{Partition: p, Offset: off})
	}
	res, err := client.OffsetCommit(ctx, &kafkago.OffsetCommitRequest{GroupID: r.group(), GenerationID: -1, Topics: map[string][]kafkago.OffsetCommit{q.o.Topic: commits}})
	if err != nil {
		return fmt.Errorf("committing the start: %w", err)
	}
	for _, p := range res.Topics[q.o.Topic] {
		if p.Error != nil {
			return fmt.Errorf("committing the start of partition %d: %w", p.Partition, p.Error)
		}
	}
	q.log.Info("a new sink's consumer group starts at the records written since it subscribed", "sink", r.sink, "group", r.group(), "since", r.since.UTC().Format(time.RFC3339Nano), "offsets", start)
	return nil
}

// take holds m until its delivery to the reader's sink ends, or settles it
// at once when the sink is not for it.
func (r *reader) take(m kafkago.Message) {
	q := r.q
	q.mu.Lock()
	p := r.parts[m.Partition]
	if p == nil || p.gone || m.Offset < p.next {
		q.mu.Unlock()
		return
	}
	// Records before m that this reader has not seen were read by another
	// replica, or before a restart: their ids are remembered first, so that
	// a provider's retry after a rebalance or a deploy is still a duplicate.
	recall, recallFrom := r.dedup != nil && m.Offset > p.next, p.next
	p.next = m.Offset + 1
	rec := &record{r: r, p: p, part: m.Partition, offset: m.Offset, at: m.Time, key: m.Key, left: 1, size: int64(len(m.Value))}
	// Read again after a rebalance or a restart: its attempts go on.
	carried := r.attempts[m.Partition][m.Offset]
	if carried > 0 {
		rec.kept = true
		delete(r.attempts[m.Partition], m.Offset)
	}
	p.open = append(p.open, rec)
	r.held++
	r.heldSize += rec.size
	q.mu.Unlock()

	if recall {
		r.recall(m.Partition, max(recallFrom, m.Offset-int64(r.q.o.DedupLookback)), m.Offset)
	}
	ev, err := kafka.FromMessage(m)
	var body []byte
	if err == nil {
		body, err = eventcodec.Encode(ev)
	}
	if err != nil {
		// It stays on the ingress topic; there is nothing to deliver.
		q.log.Error("record on the ingress topic is not a CloudEvent; skipped", "topic", q.o.Topic, "partition", m.Partition, "offset", m.Offset, "sink", r.sink, "err", err)
		r.settleNow(rec)
		return
	}
	key := string(m.Key)
	if key == "" {
		key = ev.Source() + " " + ev.ID()
	}
	if r.dedup != nil && r.dedup.seen(key, time.Now()) {
		q.log.Info("duplicate event dropped (already read)", "sink", r.sink, "id", ev.ID(), "type", ev.Type(), "partition", m.Partition, "offset", m.Offset)
		if q.o.OnDuplicate != nil {
			q.o.OnDuplicate(r.sink, ev)
		}
		r.settleNow(rec)
		return
	}
	rec.seenKey = key
	if !slices.Contains(r.route(m, ev), r.sink) {
		r.settleNow(rec)
		return
	}
	q.mu.Lock()
	if q.readers[r.sink] != r {
		// Unsubscribed while reading m: the sink is gone, and the record
		// is read again when it returns.
		rec.dropped = true
		q.mu.Unlock()
		return
	}
	q.seq++
	e := &entry{seq: q.seq, body: body, rec: rec, attempts: carried}
	e.from, e.why = replayedForward(m, ev)
	q.sinkLocked(r.sink).push(e)
	q.mu.Unlock()
}

// route names the sinks of the record m, of the event ev: the sink a
// replay names, else those the current routes match.
func (r *reader) route(m kafkago.Message, ev *event.Event) []string {
	for _, h := range m.Headers {
		if h.Key == HeaderReplayTo {
			return []string{string(h.Value)}
		}
	}
	return r.q.o.Route(ev)
}

// replayedForward reads a replay of a dead letter to the dead-letter sink
// that gave up on it: a forward from the sink named by HeaderFrom again,
// with what the event's extensions say that sink was told. Any other
// record is no forward ("").
func replayedForward(m kafkago.Message, ev *event.Event) (from string, why queue.Failure) {
	replay := false
	for _, h := range m.Headers {
		switch h.Key {
		case HeaderReplayTo:
			replay = true
		case HeaderFrom:
			from = string(h.Value)
		}
	}
	if !replay || from == "" {
		return "", queue.Failure{}
	}
	if told, why := queue.DeadLetterFailure(ev); told == from {
		return from, why
	}
	return "", queue.Failure{}
}

// recall remembers the keys of the records of partition in [from, to)
// that are within the dedup window, reading them with a reader of its own
// (outside the group). It gives up, with a warning, when the brokers do
// not answer in time: deduplication is then as wide as this reader's own
// memory.
func (r *reader) recall(partition int, from, to int64) {
	if from >= to {
		return
	}
	ctx, cancel := context.WithTimeout(r.ctx, r.q.o.WriteTimeout)
	defer cancel()
	horizon := time.Now().Add(-r.q.o.DedupWindow)
	n := 0
	err := r.q.readRecords(ctx, r.q.o.Topic, partition, from, to, func(m kafkago.Message) {
		if key := string(m.Key); key != "" && m.Time.After(horizon) {
			r.dedup.remember(key, m.Time)
			n++
		}
	})
	if err != nil {
		r.q.log.Warn("recalling the ids read by other replicas; duplicates of older ones are delivered again", "sink", r.sink, "partition", partition, "from", from, "to", to, "recalled", n, "err", err)
		return
	}
	r.q.log.Debug("recalled the ids read by other replicas", "sink", r.sink, "partition", partition, "from", from, "to", to, "recalled", n)
}

// readRecords calls fn with each record of topic's partition in
// [from, to), read with a reader of its own (outside any group).
func (q *Queue) readRecords(ctx context.Context, topic string, partition int, from, to int64, fn func(kafkago.Message)) error {
	if from >= to {
		return nil
	}
	kr := kafkago.NewReader(kafkago.ReaderConfig{
		Brokers:   q.o.Brokers,
		Topic:     topic,
		Partition: partition,
		Dialer:    q.dialer,
		MinBytes:  1,
		MaxBytes:  16 << 20,
		MaxWait:   100 * time.Millisecond,
	})
	defer kr.Close()
	if err := kr.SetOffset(from); err != nil {
		return fmt.Errorf("kafkaqueue: reading topic %s, partition %d, from offset %d: %w", topic, partition, from, err)
	}
	for {
		m, err := kr.ReadMessage(ctx)
		if err != nil {
			return fmt.Errorf("kafkaqueue: reading topic %s, partition %d, from offset %d to %d: %w", topic, partition, from, to, err)
		}
		if m.Offset >= to {
			return nil
		}
		fn(m)
		if m.Offset == to-1 {
			return nil
		}
	}
}

func (r *reader) settleNow(rec *record) {
	r.q.mu.Lock()
	r.settle(rec)
	r.q.mu.Unlock()
}

// settle ends one of rec's deliveries; once none is left, rec and every
// settled record after it in its partition become committable. A record
// of a generation that has ended no longer counts: it was handed back.
// q.mu held.
func (r *reader) settle(rec *record) {
	if rec.p.gone {
		return
	}
	rec.left--
	if rec.left > 0 {
		return
	}
	if rec.kept {
		r.q.attempts.forget(rec.attemptsKey())
	}
	r.held--
	r.heldSize -= rec.size
	r.roomFreed()
	p := rec.p
	for len(p.open) > 0 && p.open[0].left <= 0 {
		p.settled = p.open[0].offset + 1
		p.open[0] = nil
		p.open = p.open[1:]
	}
}

// roomFreed wakes whoever waits for room. q.mu held.
func (r *reader) roomFreed() {
	if r.roomWaiting {
		close(r.room)
		r.room, r.roomWaiting = make(chan struct{}), false
	}
}

// commit commits, with the generation gen, each partition's settled
// offset where it moved past the last commit. Within a generation the
// partitions are this reader's alone, and the reader that held one before
// committed what it settled before this generation began (handBack): an
// offset never moves back.
func (r *reader) commit(gen *kafkago.Generation) {
	q := r.q
	q.mu.Lock()
	offsets := map[int]int64{}
	for id, p := range r.parts {
		if !p.gone && p.settled > p.committed {
			offsets[id] = p.settled
		}
	}
	q.mu.Unlock()
	if len(offsets) == 0 {
		return
	}
	if err := gen.CommitOffsets(map[string]map[int]int64{q.o.Topic: offsets}); err != nil {
		q.log.Warn("committing offsets; they are committed again next time", "sink", r.sink, "group", r.group(), "generation", gen.ID, "err", err)
		return
	}
	q.mu.Lock()
	for id, off := range offsets {
		if p := r.parts[id]; p != nil && p.committed < off {
			p.committed = off
		}
	}
	q.mu.Unlock()
}

// dedupWindow remembers the keys read within a window, up to a number of
// them.
type dedupWindow struct {
	window time.Duration
	max    int
	at     map[string]int64
	order  []seenKey // oldest first
}

type seenKey struct {
	key string
	at  int64
}

func newDedupWindow(window time.Duration, max int) *dedupWindow {
	return &dedupWindow{window: window, max: max, at: map[string]int64{}}
}

// seen reports whether key was seen within the window, remembering it when
// it was not.
func (d *dedupWindow) seen(key string, now time.Time) bool {
	t := now.UnixNano()
	d.forget(func(at int64) bool { return at <= t-int64(d.window) })
	if _, ok := d.at[key]; ok {
		return true
	}
	// Room for key: only a new key pushes out the oldest.
	d.forget(func(int64) bool { return len(d.order) >= d.max })
	d.at[key] = t
	d.order = append(d.order, seenKey{key: key, at: t})
	return false
}

// remember notes key as seen at at, unless it is already remembered.
func (d *dedupWindow) remember(key string, at time.Time) {
	if _, ok := d.at[key]; ok {
		return
	}
	d.forget(func(int64) bool { return len(d.order) >= d.max })
	d.at[key] = at.UnixNano()
	d.order = append(d.order, seenKey{key: key, at: at.UnixNano()})
}

// unsee forgets key, so that it is new when read again.
func (d *dedupWindow) unsee(key string) { delete(d.at, key) }

// forget drops the oldest keys while drop says so.
func (d *dedupWindow) forget(drop func(at int64) bool) {
	for len(d.order) > 0 && drop(d.order[0].at) {
		if old := d.order[0]; d.at[old.key] == old.at {
			delete(d.at, old.key)
		}
		d.order[0] = seenKey{}
		d.order = d.order[1:]
	}
}

// heldPartitions is what this reader held of each partition, records read
// and not settled, when its last generation ended (and what it holds now,
// at its first join: nothing). The sticky balancer gives them back to it if
// it can: the records are read again where they were read before, and a
// conversation stays with its replica.
func (r *reader) heldPartitions() map[int]int {
	r.q.mu.Lock()
	defer r.q.mu.Unlock()
	held := maps.Clone(r.lastHeld)
	if held == nil {
		held = map[int]int{}
	}
	for id, p := range r.parts {
		if n := len(p.open); n > 0 && !p.gone {
			held[id] += n
		}
	}
	return held
}
