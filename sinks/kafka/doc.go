// Package kafka is hookbridge's kafka sink: it writes each CloudEvent to a
// Kafka topic following the CloudEvents Kafka protocol binding, in binary
// mode (attributes and extensions as ce_<name> headers, datacontenttype as
// content-type, the payload bytes as the value) or structured mode (the whole
// event in the JSON event format, content-type application/cloudevents+json).
//
// Topic and key are templates over the event, so one sink can fan events out
// to a topic per source ("webhooks.{{ .Extensions.bridgesource }}"); the key
// defaults to the event's subject, else its id, which keeps one conversation
// or ticket on one partition, in order.
//
// Writes go through one asynchronous segmentio/kafka-go Writer with
// acks=all, which sends each partition's batches one request at a time, in
// the order it was given them. StartBatch (sinks.Pipeliner) hands a batch to
// it with a single WriteMessages call and returns at once; the Writer's
// Completion calls give each message's outcome to the batch's wait. The
// delivery loop thus hands over the next batch while the broker answers the
// one before. Concurrent deliveries share the Writer's per-partition
// batches, which wait at most `linger` to fill. Broker and network failures
// come back as retryable errors; a message that is too large, an invalid
// topic name, an invalid event or a template that fails to render come back
// as permanent (sinks.Permanent), so the event is dead-lettered at once.
//
// ToMessage and FromMessage are the binding itself, usable without a sink.
package kafka
