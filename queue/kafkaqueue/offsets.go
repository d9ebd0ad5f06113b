package kafkaqueue

import (
	"context"
	"errors"
	"fmt"

	kafkago "github.com/segmentio/kafka-go"
)

// The brokers' view of the ingress topic and of a sink's group, asked
// with kafka-go's Client: where a new group starts (placeNewGroup) and
// how far a group is behind (measureLag).

// client makes a Client for the queue's brokers, each request bounded by
// WriteTimeout, and the function that closes its connections.
func (q *Queue) client() (*kafkago.Client, func()) {
	t := &kafkago.Transport{ClientID: "hookbridge", TLS: q.o.TLS, SASL: q.o.SASL}
	return &kafkago.Client{Addr: kafkago.TCP(q.o.Brokers...), Timeout: q.o.WriteTimeout, Transport: t}, t.CloseIdleConnections
}

// partitions lists the ingress topic's partitions; errNoTopic when it
// does not exist yet.
func (q *Queue) partitions(ctx context.Context, c *kafkago.Client) ([]int, error) {
	return topicPartitions(ctx, c, q.o.Topic)
}

// topicPartitions lists topic's partitions; errNoTopic when it does not
// exist.
func topicPartitions(ctx context.Context, c *kafkago.Client, topic string) ([]int, error) {
	md, err := c.Metadata(ctx, &kafkago.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	var parts []int
	for _, t := range md.Topics {
		if t.Name == topic && t.Error == nil {
			for _, p := range t.Partitions {
				parts = append(parts, p.ID)
			}
		}
	}
	if len(parts) == 0 {
		return nil, errNoTopic
	}
	return parts, nil
}

// committed fetches group's committed offset of each of parts: the offset
// of the next record the group reads there, or -1 when it has none.
func (q *Queue) committed(ctx context.Context, c *kafkago.Client, group string, parts []int) (map[int]int64, error) {
	fetched, err := c.OffsetFetch(ctx, &kafkago.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{q.o.Topic: parts}})
	if err != nil {
		return nil, fmt.Errorf("the offsets of group %s: %w", group, err)
	}
	out := make(map[int]int64, len(parts))
	for _, p := range parts {
		out[p] = -1
	}
	// A group no one has used is either unknown to the coordinator or
	// known with no offset (-1), depending on the broker.
	if fetched.Error != nil {
		if errors.Is(fetched.Error, kafkago.GroupIdNotFound) {
			return out, nil
		}
		return nil, fmt.Errorf("the offsets of group %s: %w", group, fetched.Error)
	}
	for _, p := range fetched.Topics[q.o.Topic] {
		if p.Error != nil {
			if errors.Is(p.Error, kafkago.GroupIdNotFound) {
				continue
			}
			return nil, fmt.Errorf("the offset of group %s on partition %d: %w", group, p.Partition, p.Error)
		}
		if p.CommittedOffset >= 0 {
			out[p.Partition] = p.CommittedOffset
		}
	}
	return out, nil
}

// placed reports whether a group has committed an offset on any
// partition: a group that has not is new, and placeNewGroup places it.
func placed(offsets map[int]int64) bool {
	for _, off := range offsets {
		if off >= 0 {
			return true
		}
	}
	return false
}

// listOffsets lists the offsets reqs ask for on the ingress topic, failing
// when a partition has an error.
func (q *Queue) listOffsets(ctx context.Context, c *kafkago.Client, reqs []kafkago.OffsetRequest) ([]kafkago.PartitionOffsets, error) {
	return listTopicOffsets(ctx, c, q.o.Topic, reqs)
}

// listTopicOffsets lists the offsets reqs ask for on topic, failing when a
// partition has an error.
func listTopicOffsets(ctx context.Context, c *kafkago.Client, topic string, reqs []kafkago.OffsetRequest) ([]kafkago.PartitionOffsets, error) {
	listed, err := c.ListOffsets(ctx, &kafkago.ListOffsetsRequest{Topics: map[string][]kafkago.OffsetRequest{topic: reqs}})
	if err != nil {
		return nil, fmt.Errorf("listing offsets: %w", err)
	}
	parts := listed.Topics[topic]
	for _, p := range parts {
		if p.Error != nil {
			return nil, fmt.Errorf("listing offsets of partition %d: %w", p.Partition, p.Error)
		}
	}
	return parts, nil
}
