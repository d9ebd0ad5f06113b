// Package queue is hookbridge's embedded durable queue: a local Pebble store
// that accepts CloudEvents from the webhook listener and hands them to the
// per-sink delivery loops.
//
// Guarantees:
//
//   - Enqueue returns only after the events are fsync'd. Callers that arrive
//     while a commit is in progress are written together in the next one: one
//     batch and one WAL sync for all of them, so a provider's 2xx waits for at
//     most the fsync in progress and its own.
//   - An event id accepted within the dedup window (default 24 h) is reported
//     as a duplicate and not stored again, even when two requests carrying the
//     same id race each other.
//   - Each sink has its own pending list and is delivered independently, in
//     sequence order. Everything not yet acknowledged is handed out again
//     after a restart, including after a crash (at-least-once).
//   - Nothing is dropped: a delivery ends acknowledged, forwarded to a
//     dead-letter sink, or buried in the store's dead-letter list with its
//     reason.
//
// Layout of the keys (seq is a big-endian uint64, so keys sort by seq):
//
//	m/format               store format version
//	m/seq                  sequence lease: every seq in use is below it
//	m/dedup-bucket         how much time each bucket of dedup records spans
//	e/<seq>                body of an event that goes to several sinks, stored once for all of them
//	r/<seq>                number of pending records that share e/<seq>, only when more than one
//	q/<sink>\x00<seq>      pending delivery of an event to a sink (attempts, last error, dead-letter
//	                       origin), with the event's body when it goes to this sink alone
//	x/<time><n>            dead letter: a buried event or a rejected raw request body
//	y/<bucket><digest>     dedup record: when the CloudEvent id with this digest (16 bytes of
//	                       its SHA-256) was accepted, in a bucket of time
//
// The order of the families matters to Pebble's compactions. A flush
// holds what was written meanwhile: for events routed to one sink, a run
// of q/ records in seq order and a run of y/ records in the current
// bucket. The table it makes overlaps no older q/ record, so compacting it
// into the level below rewrites only that bucket's dedup records, not the
// backlog (which a family sorting between the two would put in its range).
// Those records are written at random places in their bucket, so each
// such compaction rewrites all of the bucket's: keying them by a digest
// rather than the id (a source and an id run to 100 bytes and more) keeps
// them to 34 bytes each.
//
// Memory stays bounded whatever the backlog: only deliveries that have been
// handed out (in flight or released) are tracked in memory; the reference
// counts live in the store, not in a map rebuilt at Open. The Bloom filters
// that spare Enqueue the lookup of y/<bucket><digest> for ids it has not seen
// keep to a fixed budget (4 MiB); Open rebuilds them from y/, newest bucket
// first, until the budget is full.
//
// A bucket spans a quarter of the dedup window the store was created with
// (the width is kept when the window changes later). Once the last instant a
// bucket covers has left the window, a janitor goroutine deletes the whole
// bucket with one range deletion (Pebble drops the tables it covers without
// rewriting them): expiry costs no lookup and no tombstone per id. Stores
// of format 1 (a record per id, d/<id>, and an expiry index,
// t/<time><id>), format 2 (bucketed records keyed by the id under a/,
// every body in e/) and format 3 (the same under z/) are upgraded at Open.
package queue
