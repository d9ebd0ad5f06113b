package kafkaqueue

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/hookbridge/hookbridge/eventcodec"
	"github.com/hookbridge/hookbridge/queue"
	"github.com/hookbridge/hookbridge/sinks/kafka"
)

// The dead letters of a Kafka queue are the records of its dead-letter
// topic. They are listed, looked up, replayed and discarded as the
// embedded store's are (the inspector and `bridge replay` use the same
// calls), with two differences a topic imposes:
//
//   - a record cannot be taken off a topic: one replayed or discarded is
//     marked so in the shared state (State), and no longer listed;
//   - a list reads the topic (the newest MaxDeadLettersScanned records of
//     each partition) on every call.
//
// A replay writes the event to the ingress topic again, with the header
// HeaderReplayTo naming the one sink to deliver it to, and a record key
// of its own, so that the readers' deduplication does not take it for the
// event it was; then it marks the dead letter. A replica that dies between
// the two leaves the dead letter listed: replayed again, it is delivered
// once more (at-least-once), unless the readers still remember the first
// replay's key.

// Headers of the records of the dead-letter topic and of replays.
const (
	HeaderAttempts = "hookbridge_attempts"  // delivery attempts made
	HeaderFrom     = "hookbridge_from"      // the sink that forwarded the event to the one that gave up; on a replay to that one, the same
	HeaderReplayTo = "hookbridge_replay_to" // on the ingress topic: the only sink to deliver the record to

	// HeaderSink names the sink that gave up when a dead-letter sink gave
	// up on what it was forwarded (with HeaderReason for why): the event
	// then keeps the extensions it was forwarded with, so that a replay
	// to that sink sends them again.
	HeaderSink = "hookbridge_sink"
)

// MaxDeadLettersScanned bounds the records of each partition of the
// dead-letter topic that a list reads: the newest.
const MaxDeadLettersScanned = 100_000

// deadMarkPrefix starts the shared state's marks of dead letters replayed
// or discarded: "deadletters/<topic>/<partition>/<offset>".
const deadMarkPrefix = "deadletters/"

// deadLetterKey names a record of the dead-letter topic: its broker time,
// partition and offset. The time orders the list, newest first, and lets
// a page start after a key whose record has gone.
func deadLetterKey(at time.Time, partition int, offset int64) string {
	return strconv.FormatInt(at.UnixNano(), 10) + "." + strconv.Itoa(partition) + "." + strconv.FormatInt(offset, 10)
}

type deadPos struct {
	at        int64
	partition int
	offset    int64
}

func parseDeadLetterKey(key string) (deadPos, error) {
	parts := strings.Split(key, ".")
	if len(parts) == 3 {
		at, err1 := strconv.ParseInt(parts[0], 10, 64)
		p, err2 := strconv.Atoi(parts[1])
		off, err3 := strconv.ParseInt(parts[2], 10, 64)
		if err1 == nil && err2 == nil && err3 == nil && p >= 0 && off >= 0 {
			return deadPos{at, p, off}, nil
		}
	}
	return deadPos{}, fmt.Errorf("%w: bad key %q", queue.ErrNotFound, key)
}

// newer orders positions newest first.
func newer(a, b deadPos) int {
	return cmp.Or(cmp.Compare(b.at, a.at), cmp.Compare(b.partition, a.partition), cmp.Compare(b.offset, a.offset))
}

func (q *Queue) deadMarkPrefix() string { return deadMarkPrefix + q.o.DeadLetterTopic + "/" }

func (q *Queue) deadMark(partition int, offset int64) string {
	return q.deadMarkPrefix() + strconv.Itoa(partition) + "/" + strconv.FormatInt(offset, 10)
}

// deadLetterTimeout bounds a dead-letter call's reads of the topic.
func (q *Queue) deadLetterTimeout() time.Duration { return max(30*time.Second, 4*q.o.WriteTimeout) }

// DeadLettersBefore lists up to limit (all when limit <= 0) dead letters
// older than the one with key before (which need not exist any more),
// newest first; an empty before starts at the newest.
func (q *Queue) DeadLettersBefore(before string, limit int) ([]queue.DeadLetter, error) {
	var from *deadPos
	if before != "" {
		pos, err := parseDeadLetterKey(before)
		if err != nil {
			return nil, err
		}
		from = &pos
	}
	ctx, cancel := context.WithTimeout(q.ctx, q.deadLetterTimeout())
	defer cancel()
	marked, err := q.deadMarks(ctx)
	if err != nil {
		return nil, err
	}
	client, closeClient := q.client()
	defer closeClient()
	ends, err := q.deadLetterEnds(ctx, client)
	if err != nil {
		return nil, err
	}
	q.forgetStaleMarks(ctx, marked, ends)
	type found struct {
		pos deadPos
		msg kafkago.Message
	}
	// Only the newest limit are kept while reading, so that a topic of
	// large events is not held whole.
	var all []found
	keepNewest := func() {
		slices.SortFunc(all, func(a, b found) int { return newer(a.pos, b.pos) })
		if limit > 0 && len(all) > limit {
			clear(all[limit:])
			all = all[:limit]
		}
	}
	for p, end := range ends {
		first := max(end[0], end[1]-MaxDeadLettersScanned)
		err := q.readRecords(ctx, q.o.DeadLetterTopic, p, first, end[1], func(m kafkago.Message) {
			pos := deadPos{m.Time.UnixNano(), m.Partition, m.Offset}
			if marked[[2]int64{int64(p), m.Offset}] || (from != nil && newer(pos, *from) <= 0) {
				return
			}
			all = append(all, found{pos, m})
			if limit > 0 && len(all) >= 2*limit {
				keepNewest()
			}
		})
		if err != nil {
			return nil, err
		}
	}
	keepNewest()
	out := make([]queue.DeadLetter, len(all))
	for i, f := range all {
		out[i] = deadLetterOf(f.msg)
	}
	return out, nil
}

// DeadLetter returns the dead letter with key; queue.ErrNotFound when there
// is none (or it was replayed or discarded).
func (q *Queue) DeadLetter(key string) (queue.DeadLetter, error) {
	ctx, cancel := context.WithTimeout(q.ctx, q.deadLetterTimeout())
	defer cancel()
	m, err := q.deadLetterRecord(ctx, key)
	if err != nil {
		return queue.DeadLetter{}, err
	}
	return deadLetterOf(m), nil
}

// Replay queues a dead-lettered event again for sink (the sink that gave
// up on it when sink is ""), with its attempts reset, and marks the dead
// letter replayed.
func (q *Queue) Replay(key, sink string) error {
	q.replayMu.Lock() // two replays of one key must not queue it twice
	defer q.replayMu.Unlock()
	ctx, cancel := context.WithTimeout(q.ctx, q.deadLetterTimeout())
	defer cancel()
	m, err := q.deadLetterRecord(ctx, key)
	if err != nil {
		return err
	}
	dl := deadLetterOf(m)
	if dl.Event == nil {
		return fmt.Errorf("kafkaqueue: replay %s: a rejected request body (%s) is not an event", key, dl.Reason)
	}
	if sink == "" {
		sink = dl.Sink
	}
	if sink == "" {
		return fmt.Errorf("kafkaqueue: replay %s: no sink named, and none gave up on it", key)
	}
	ev, err := eventcodec.Decode(dl.Event)
	if err != nil {
		return fmt.Errorf("kafkaqueue: replay %s: %w", key, err)
	}
	if dl.From != "" && sink != dl.Sink {
		// A dead letter a dead-letter sink gave up on, sent elsewhere
		// (back to the sink it came from, say): as an ordinary event.
		queue.SetDeadLetterExtensions(ev, "", queue.Failure{})
	}
	msg, err := kafka.ToMessage(ev, kafka.ModeBinary)
	if err != nil {
		return fmt.Errorf("kafkaqueue: replay %s: %w", key, err)
	}
	msg.Key = []byte("replay " + key)
	msg.Headers = append(msg.Headers, kafkago.Header{Key: HeaderReplayTo, Value: []byte(sink)})
	if dl.From != "" && sink == dl.Sink {
		// Back to the dead-letter sink that gave up on it: a forward from
		// the first sink again (see replayedForward).
		msg.Headers = append(msg.Headers, kafkago.Header{Key: HeaderFrom, Value: []byte(dl.From)})
	}
	msg.WriterData = conversationKey(ev, msg.Key)
	wctx, wcancel := context.WithTimeout(ctx, q.o.WriteTimeout)
	err = q.writer.WriteMessages(wctx, msg)
	wcancel()
	if err != nil {
		return fmt.Errorf("kafkaqueue: replay %s: writing to topic %s: %w", key, q.o.Topic, err)
	}
	if err := q.State().Put(ctx, q.deadMark(m.Partition, m.Offset), []byte("replayed")); err != nil {
		return fmt.Errorf("kafkaqueue: replay %s: queued, but not marked replayed (it stays listed): %w", key, err)
	}
	q.buried.Add(-1)
	return nil
}

// Discard marks a dead letter discarded: it is no longer listed. On one
// replica a replay and a discard of one key at the same moment do not
// both happen (but a replay whose mark could not be written leaves the
// dead letter listed, and a discard after it succeeds); on two replicas
// they can (the shared state has no compare-and-set).
func (q *Queue) Discard(key string) error {
	q.replayMu.Lock()
	defer q.replayMu.Unlock()
	ctx, cancel := context.WithTimeout(q.ctx, q.deadLetterTimeout())
	defer cancel()
	m, err := q.deadLetterRecord(ctx, key)
	if err != nil {
		return err
	}
	if err := q.State().Put(ctx, q.deadMark(m.Partition, m.Offset), []byte("discarded")); err != nil {
		return fmt.Errorf("kafkaqueue: discard %s: %w", key, err)
	}
	q.buried.Add(-1)
	return nil
}

// countDeadLetters counts the dead letters listed (the records of the
// dead-letter topic, less those marked replayed or discarded) for Stats.
// A failure keeps the last count.
func (q *Queue) countDeadLetters(c *kafkago.Client) {
	ctx, cancel := context.WithTimeout(q.ctx, 2*q.o.WriteTimeout)
	defer cancel()
	ends, err := q.deadLetterEnds(ctx, c)
	if err != nil {
		q.log.Debug("counting the dead letters", "topic", q.o.DeadLetterTopic, "err", err)
		return
	}
	var n int64
	for _, end := range ends {
		n += end[1] - end[0]
	}
	if n > 0 {
		marked, err := q.deadMarks(ctx)
		if err != nil {
			q.log.Debug("counting the dead letters", "topic", q.o.DeadLetterTopic, "err", err)
			return
		}
		for m := range marked {
			if end, ok := ends[int(m[0])]; ok && m[1] >= end[0] && m[1] < end[1] {
				n--
			}
		}
	}
	q.buried.Store(n)
}

// deadLetterRecord reads the record of the dead letter key, unless it was
// replayed or discarded, or is not (or no longer) on the topic.
func (q *Queue) deadLetterRecord(ctx context.Context, key string) (kafkago.Message, error) {
	pos, err := parseDeadLetterKey(key)
	if err != nil {
		return kafkago.Message{}, err
	}
	_, marked, err := q.State().Get(ctx, q.deadMark(pos.partition, pos.offset))
	if err != nil {
		return kafkago.Message{}, fmt.Errorf("kafkaqueue: dead letter %s: %w", key, err)
	}
	if marked {
		return kafkago.Message{}, fmt.Errorf("%w: %s", queue.ErrNotFound, key)
	}
	client, closeClient := q.client()
	defer closeClient()
	ends, err := q.deadLetterEnds(ctx, client)
	if err != nil {
		return kafkago.Message{}, err
	}
	end, ok := ends[pos.partition]
	if !ok || pos.offset < end[0] || pos.offset >= end[1] {
		return kafkago.Message{}, fmt.Errorf("%w: %s", queue.ErrNotFound, key)
	}
	var found *kafkago.Message
	err = q.readRecords(ctx, q.o.DeadLetterTopic, pos.partition, pos.offset, pos.offset+1, func(m kafkago.Message) {
		if m.Offset == pos.offset && m.Time.UnixNano() == pos.at {
			found = &m
		}
	})
	if err != nil {
		return kafkago.Message{}, err
	}
	if found == nil {
		return kafkago.Message{}, fmt.Errorf("%w: %s", queue.ErrNotFound, key)
	}
	return *found, nil
}

// deadLetterEnds lists, per partition of the dead-letter topic, its first
// offset and the offset after its last record; none when the topic does
// not exist (nothing was dead-lettered yet).
func (q *Queue) deadLetterEnds(ctx context.Context, client *kafkago.Client) (map[int][2]int64, error) {
	parts, err := topicPartitions(ctx, client, q.o.DeadLetterTopic)
	if errors.Is(err, errNoTopic) {
		return map[int][2]int64{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("kafkaqueue: the dead-letter topic %s: %w", q.o.DeadLetterTopic, err)
	}
	reqs := make([]kafkago.OffsetRequest, 0, 2*len(parts))
	for _, p := range parts {
		reqs = append(reqs, kafkago.FirstOffsetOf(p), kafkago.LastOffsetOf(p))
	}
	listed, err := listTopicOffsets(ctx, client, q.o.DeadLetterTopic, reqs)
	if err != nil {
		return nil, fmt.Errorf("kafkaqueue: the dead-letter topic %s: %w", q.o.DeadLetterTopic, err)
	}
	ends := make(map[int][2]int64, len(listed))
	for _, p := range listed {
		ends[p.Partition] = [2]int64{max(p.FirstOffset, 0), max(p.LastOffset, 0)}
	}
	return ends, nil
}

// deadMarks reads the marks of the dead letters replayed or discarded.
func (q *Queue) deadMarks(ctx context.Context) (map[[2]int64]bool, error) {
	prefix := q.deadMarkPrefix()
	marked := map[[2]int64]bool{}
	err := q.State().Each(ctx, prefix, func(key string, _ []byte) bool {
		if p, off, ok := parsePartitionOffset(key[len(prefix):]); ok {
			marked[[2]int64{int64(p), off}] = true
		}
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("kafkaqueue: the marks of replayed and discarded dead letters: %w", err)
	}
	return marked, nil
}

// forgetStaleMarks deletes the marks of records the topic's retention has
// removed, a few at a time.
func (q *Queue) forgetStaleMarks(ctx context.Context, marked map[[2]int64]bool, ends map[int][2]int64) {
	n := 0
	for m := range marked {
		end, ok := ends[int(m[0])]
		if !ok || m[1] >= end[0] {
			continue
		}
		if err := q.State().Delete(ctx, q.deadMark(int(m[0]), m[1])); err != nil {
			q.log.Debug("deleting the mark of a dead letter the topic no longer holds", "topic", q.o.DeadLetterTopic, "partition", m[0], "offset", m[1], "err", err)
			return
		}
		if n++; n == 100 {
			return
		}
	}
}

// deadLetterOf makes the dead letter of a record of the dead-letter topic:
// an event, as the sink that gave up had it, or a rejected request body.
func deadLetterOf(m kafkago.Message) queue.DeadLetter {
	dl := queue.DeadLetter{Key: deadLetterKey(m.Time, m.Partition, m.Offset), At: m.Time}
	rejected, forwarded := false, false
	for _, h := range m.Headers {
		switch h.Key {
		case HeaderSink:
			dl.Sink, forwarded = string(h.Value), true
		case HeaderSource:
			dl.Source, rejected = string(h.Value), true
		case HeaderReason:
			dl.Reason = string(h.Value)
		case HeaderAttempts:
			dl.Attempts, _ = strconv.Atoi(string(h.Value))
		case HeaderFrom:
			dl.From = string(h.Value)
		}
	}
	if rejected {
		dl.Raw = m.Value
		return dl
	}
	ev, err := kafka.FromMessage(m)
	var body []byte
	if err == nil {
		if !forwarded {
			// The sink that gave up and why are in the extensions; the
			// event was not a dead letter before.
			exts := ev.Extensions()
			dl.Sink, _ = exts[queue.ExtDeadLetterSink].(string)
			if reason, ok := exts[queue.ExtDeadLetterReason].(string); ok {
				dl.Reason = reason
			}
			ev.SetExtension(queue.ExtDeadLetterSink, nil)
			ev.SetExtension(queue.ExtDeadLetterReason, nil)
		}
		body, err = eventcodec.Encode(ev)
	}
	if err != nil { // kept as bytes by bury: not an event the binding carries
		dl.Raw = m.Value
		return dl
	}
	dl.Event = body
	return dl
}
