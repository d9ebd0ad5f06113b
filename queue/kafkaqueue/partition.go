package kafkaqueue

import (
	kafkago "github.com/segmentio/kafka-go"

	"github.com/cloudevents/sdk-go/v2/event"
)

// conversationKey is what places an event on a partition of the ingress
// topic: its source and subject (a chat session, a ticket, a customer),
// else its record key. One conversation's events are then on one
// partition, read in the order they were accepted by the replica that
// holds it (around a rebalance, also by the one finishing what it had
// read), so that a sink that keeps per-conversation state in its process
// (a Slack thread per subject) sees the whole conversation. A provider's
// retry of an event carries the same payload, hence the same subject, and
// lands where the first copy did, next to the ids the reader deduplicates.
func conversationKey(ev *event.Event, recordKey []byte) []byte {
	if subject := ev.Subject(); subject != "" {
		return []byte(ev.Source() + " " + subject)
	}
	return recordKey
}

// conversationBalancer places a record by the conversation key Enqueue
// put in its WriterData, with the same murmur2 hash as Kafka's Java and
// librdkafka producers use for keys.
type conversationBalancer struct{ murmur2 kafkago.Murmur2Balancer }

func (b conversationBalancer) Balance(msg kafkago.Message, partitions ...int) int {
	if key, ok := msg.WriterData.([]byte); ok && len(key) > 0 {
		msg.Key = key
	}
	return b.murmur2.Balance(msg, partitions...)
}
