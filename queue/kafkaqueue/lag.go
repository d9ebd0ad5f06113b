package kafkaqueue

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	kafkago "github.com/segmentio/kafka-go"
)

// Lag reports each subscribed sink's consumer-group lag as last measured:
// the records on the ingress topic after the group's committed offsets,
// summed over the partitions, which is the group's backlog across every
// replica (what `kafka-consumer-groups.sh --describe` shows as LAG). A
// partition the group has no committed offset on (one added to the topic
// after the group started) counts from its first record, where the group
// will start reading it; a committed offset below the first record still
// kept counts from that record.
//
// records holds the sinks whose lag has been measured; updated holds every
// subscribed sink, with when its lag was last measured (zero: not yet).
// Neither asks the brokers: a goroutine measures every LagInterval.
func (q *Queue) Lag() (records map[string]int64, updated map[string]time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return maps.Clone(q.lag), maps.Clone(q.lagUpdated)
}

// lagLoop measures the sinks' lag every LagInterval until Close. A
// failure keeps the last figures and is logged once until a measurement
// succeeds again.
func (q *Queue) lagLoop() {
	defer close(q.lagDone)
	t := time.NewTicker(q.o.LagInterval)
	defer t.Stop()
	c, closeClient := q.client() // its connections serve every measurement
	defer closeClient()
	var failingSince time.Time
	for {
		select {
		case <-t.C:
		case <-q.ctx.Done():
			return
		}
		q.countDeadLetters(c)
		err := q.measureLag(c)
		switch {
		case err != nil && q.ctx.Err() != nil:
			return
		case err != nil && failingSince.IsZero():
			failingSince = time.Now()
			q.log.Warn("measuring the sinks' consumer-group lag; the last figures stay until it succeeds", "topic", q.o.Topic, "err", err)
		case err != nil:
			q.log.Debug("measuring the sinks' consumer-group lag", "topic", q.o.Topic, "err", err)
		case !failingSince.IsZero():
			q.log.Info("measuring the sinks' consumer-group lag again", "topic", q.o.Topic, "failing_for", time.Since(failingSince).Round(time.Second))
			failingSince = time.Time{}
		}
	}
}

// measureLag measures the lag of every sink subscribed, within
// 2*WriteTimeout: one look at the topic's partitions and their first and
// last offsets, and one offset fetch per sink's group. A sink whose group
// has no committed offset yet (a new group its reader has not placed) is
// left unmeasured.
func (q *Queue) measureLag(c *kafkago.Client) error {
	q.mu.Lock()
	readers := maps.Clone(q.readers)
	q.mu.Unlock()
	if len(readers) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(q.ctx, 2*q.o.WriteTimeout)
	defer cancel()
	parts, err := q.partitions(ctx, c)
	if errors.Is(err, errNoTopic) {
		return nil // nothing written yet, and the groups not placed
	}
	if err != nil {
		return err
	}
	reqs := make([]kafkago.OffsetRequest, 0, 2*len(parts))
	for _, p := range parts {
		reqs = append(reqs, kafkago.FirstOffsetOf(p), kafkago.LastOffsetOf(p))
	}
	listed, err := q.listOffsets(ctx, c, reqs)
	if err != nil {
		return err
	}
	first, end := make(map[int]int64, len(parts)), make(map[int]int64, len(parts))
	for _, p := range listed {
		first[p.Partition], end[p.Partition] = p.FirstOffset, p.LastOffset
	}
	for _, p := range parts {
		if first[p] < 0 || end[p] < 0 {
			return fmt.Errorf("listing offsets: none listed for partition %d", p)
		}
	}
	var errs []error
	for sink, r := range readers {
		offsets, err := q.committed(ctx, c, r.group(), parts)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !placed(offsets) {
			continue
		}
		var lag int64
		for _, p := range parts {
			from := max(offsets[p], first[p]) // -1 (none) starts at the first record too
			lag += max(0, end[p]-from)
		}
		q.mu.Lock()
		if q.readers[sink] == r { // not unsubscribed meanwhile
			q.lag[sink], q.lagUpdated[sink] = lag, time.Now()
		}
		q.mu.Unlock()
	}
	return errors.Join(errs...)
}
