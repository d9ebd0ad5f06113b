package kafkaqueue

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/hookbridge/hookbridge/eventcodec"
	"github.com/hookbridge/hookbridge/sinks/kafka"
)

// reader reads the ingress topic for one sink, as a member of that sink's
// consumer group, and commits the offsets it has settled.
type reader struct {
	q       *Queue
	sink    string
	kr      *kafkago.Reader
	offsets *kafkago.Client // asks the group's committed offsets before a commit

	// Guarded by q.mu.
	parts map[int]*partition
	held  int // records read and not settled

	since  time.Time     // when the sink subscribed: where a new group starts
	room   chan struct{} // a record settled
	dedup  *dedupWindow  // the fetch goroutine's alone
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
}

// partition is what a reader knows of one partition it has read from.
type partition struct {
	next      int64     // offsets below were read already: a record read again after a rebalance is skipped
	open      []*record // read and not yet committable, in offset order
	settled   int64     // every record below this offset has settled
	committed int64     // the offset last committed
}

// record is one record read, held until each delivery it made has ended.
type record struct {
	r      *reader
	p      *partition
	offset int64
	at     time.Time // the record's broker time: when the event was accepted
	key    []byte
	left   int // deliveries not yet ended
}

func (q *Queue) newReader(sink string) *reader {
	r := &reader{
		q:     q,
		sink:  sink,
		parts: map[int]*partition{},
		room:  make(chan struct{}, 1),
		done:  make(chan struct{}),
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

// join makes the kafka-go reader, which joins the group at once.
func (r *reader) join() {
	q, sink := r.q, r.sink
	r.kr = kafkago.NewReader(kafkago.ReaderConfig{
		Brokers:               q.o.Brokers,
		GroupID:               r.group(),
		Topic:                 q.o.Topic,
		Dialer:                q.dialer,
		MinBytes:              1,
		MaxBytes:              16 << 20,
		MaxWait:               500 * time.Millisecond,
		StartOffset:           kafkago.FirstOffset,
		HeartbeatInterval:     q.o.SessionTimeout / 10,
		SessionTimeout:        q.o.SessionTimeout,
		RebalanceTimeout:      q.o.SessionTimeout,
		WatchPartitionChanges: true,
		// Sticky first; a group whose members do not all offer it (during an
		// upgrade) agrees on range.
		GroupBalancers: []kafkago.GroupBalancer{stickyBalancer{held: r.heldPartitions}, kafkago.RangeGroupBalancer{}, kafkago.RoundRobinGroupBalancer{}},
		Logger: kafkago.LoggerFunc(func(format string, args ...any) {
			q.log.Debug("kafka reader: "+fmt.Sprintf(format, args...), "sink", sink)
		}),
		ErrorLogger: kafkago.LoggerFunc(func(format string, args ...any) {
			q.log.Debug("kafka reader: "+fmt.Sprintf(format, args...), "sink", sink)
		}),
	})
}

// run places a new group at the reader's start, joins it, fetches records
// until stop, then commits what settled and leaves the group.
func (r *reader) run() {
	defer close(r.done)
	if !r.placeNewGroup() {
		return
	}
	r.join()
	offsets, closeOffsets := r.q.client()
	r.offsets = offsets
	defer closeOffsets()
	commits := make(chan struct{})
	go func() {
		defer close(commits)
		t := time.NewTicker(r.q.o.CommitInterval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				r.commit()
			case <-r.ctx.Done():
				return
			}
		}
	}()
	r.fetch()
	<-commits
	r.commit()
	if err := r.kr.Close(); err != nil {
		r.q.log.Warn("leaving the consumer group", "sink", r.sink, "err", err)
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

func (r *reader) stop() {
	r.cancel()
	<-r.done
}

func (r *reader) fetch() {
	backoff := 100 * time.Millisecond
	for r.waitRoom() {
		m, err := r.kr.FetchMessage(r.ctx)
		if err != nil {
			if r.ctx.Err() != nil {
				return
			}
			r.q.log.Warn("reading the ingress topic; retrying", "topic", r.q.o.Topic, "sink", r.sink, "err", err)
			select {
			case <-time.After(backoff):
			case <-r.ctx.Done():
				return
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		r.take(m)
	}
}

// waitRoom waits until the reader holds fewer than MaxHeld records; false
// when it is stopping.
func (r *reader) waitRoom() bool {
	for {
		r.q.mu.Lock()
		full := r.held >= r.q.o.MaxHeld
		r.q.mu.Unlock()
		if !full {
			return r.ctx.Err() == nil
		}
		select {
		case <-r.room:
		case <-r.ctx.Done():
			return false
		}
	}
}

// take holds m until its delivery to the reader's sink ends, or settles it
// at once when the sink is not for it.
func (r *reader) take(m kafkago.Message) {
	q := r.q
	q.mu.Lock()
	p := r.parts[m.Partition]
	if p == nil {
		p = &partition{}
		r.parts[m.Partition] = p
	}
	if m.Offset < p.next {
		q.mu.Unlock()
		return
	}
	// Records before m that this reader has not seen were read by another
	// replica, or before a restart: their ids are remembered first, so that
	// a provider's retry after a rebalance or a deploy is still a duplicate.
	recall, recallFrom := r.dedup != nil && m.Offset > p.next, p.next
	p.next = m.Offset + 1
	rec := &record{r: r, p: p, offset: m.Offset, at: m.Time, key: m.Key, left: 1}
	p.open = append(p.open, rec)
	r.held++
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
	if !slices.Contains(q.o.Route(ev), r.sink) {
		r.settleNow(rec)
		return
	}
	q.mu.Lock()
	if q.readers[r.sink] != r {
		// Unsubscribed while reading m: the sink is gone, and the record
		// is read again when it returns.
		q.mu.Unlock()
		return
	}
	q.seq++
	q.sinkLocked(r.sink).push(&entry{seq: q.seq, body: body, rec: rec})
	q.mu.Unlock()
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
	kr := kafkago.NewReader(kafkago.ReaderConfig{
		Brokers:   r.q.o.Brokers,
		Topic:     r.q.o.Topic,
		Partition: partition,
		Dialer:    r.q.dialer,
		MinBytes:  1,
		MaxBytes:  16 << 20,
		MaxWait:   100 * time.Millisecond,
	})
	defer kr.Close()
	if err := kr.SetOffset(from); err != nil {
		r.q.log.Warn("recalling the ids read by other replicas", "sink", r.sink, "partition", partition, "err", err)
		return
	}
	horizon := time.Now().Add(-r.q.o.DedupWindow)
	n := 0
	for {
		m, err := kr.ReadMessage(ctx)
		if err != nil {
			r.q.log.Warn("recalling the ids read by other replicas; duplicates of older ones are delivered again", "sink", r.sink, "partition", partition, "from", from, "to", to, "recalled", n, "err", err)
			return
		}
		if m.Offset >= to {
			break
		}
		if key := string(m.Key); key != "" && m.Time.After(horizon) {
			r.dedup.remember(key, m.Time)
			n++
		}
		if m.Offset == to-1 {
			break
		}
	}
	r.q.log.Debug("recalled the ids read by other replicas", "sink", r.sink, "partition", partition, "from", from, "to", to, "recalled", n)
}

func (r *reader) settleNow(rec *record) {
	r.q.mu.Lock()
	r.settle(rec)
	r.q.mu.Unlock()
}

// settle ends one of rec's deliveries; once none is left, rec and every
// settled record after it in its partition become committable. q.mu held.
func (r *reader) settle(rec *record) {
	rec.left--
	if rec.left > 0 {
		return
	}
	r.held--
	select {
	case r.room <- struct{}{}:
	default:
	}
	p := rec.p
	for len(p.open) > 0 && p.open[0].left <= 0 {
		p.settled = p.open[0].offset + 1
		p.open[0] = nil
		p.open = p.open[1:]
	}
}

// commit commits each partition's settled offset where it is past the
// offset the group has committed there, as the brokers have it. A replica
// that lost a partition in a rebalance still delivers and settles what it
// had read from it, and its settled offset there can be behind what the
// partition's new owner has committed since: committing it would move the
// group back, its lag would stay above 0 once the topic is idle, and the
// next owner would deliver everything since again. Comparing with the
// brokers' offset also makes the owner commit again when such a commit
// raced with its own. When the brokers do not answer, a partition is
// committed when its settled offset moved past this reader's last commit.
func (r *reader) commit() {
	q := r.q
	if r.kr == nil {
		return
	}
	q.mu.Lock()
	settled, own := map[int]int64{}, map[int]int64{}
	for id, p := range r.parts {
		if p.settled > 0 {
			settled[id], own[id] = p.settled, p.committed
		}
	}
	q.mu.Unlock()
	if len(settled) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), q.o.WriteTimeout)
	defer cancel()
	group, err := q.committed(ctx, r.offsets, r.group(), slices.Sorted(maps.Keys(settled)))
	if err != nil {
		q.log.Debug("fetching the group's offsets before a commit; comparing with this replica's last commit", "sink", r.sink, "group", r.group(), "err", err)
		group = own
	}
	var msgs []kafkago.Message
	for id, off := range settled {
		if off > group[id] {
			msgs = append(msgs, kafkago.Message{Topic: q.o.Topic, Partition: id, Offset: off - 1})
		}
	}
	if len(msgs) == 0 {
		return
	}
	if err := r.kr.CommitMessages(ctx, msgs...); err != nil {
		if !errors.Is(err, context.Canceled) {
			q.log.Warn("committing offsets; they are committed again next time", "sink", r.sink, "group", r.group(), "err", err)
		}
		return
	}
	q.mu.Lock()
	for _, m := range msgs {
		if p := r.parts[m.Partition]; p.committed < m.Offset+1 {
			p.committed = m.Offset + 1
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

// heldPartitions is what this reader holds of each partition: records read
// and not yet settled. The sticky balancer keeps them here if it can.
func (r *reader) heldPartitions() map[int]int {
	r.q.mu.Lock()
	defer r.q.mu.Unlock()
	held := map[int]int{}
	for id, p := range r.parts {
		if len(p.open) > 0 {
			held[id] = len(p.open)
		}
	}
	return held
}
