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
// Writes go through one segmentio/kafka-go Writer with acks=all. A batch
// handed to DeliverBatch is sent with a single WriteMessages call, and
// concurrent deliveries share the writer's per-partition batches, which wait
// at most `linger` to fill. Broker and network failures come back as
// retryable errors; a message that is too large, an invalid topic name, an
// invalid event or a template that fails to render come back as permanent
// (sinks.Permanent), so the event is dead-lettered at once.
//
// ToMessage and FromMessage are the binding itself, usable without a sink.
package kafka
