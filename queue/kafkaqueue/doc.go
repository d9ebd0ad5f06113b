// Package kafkaqueue is hookbridge's queue for running several replicas
// behind one load balancer (`queue: {type: kafka}`): a Kafka topic instead
// of the embedded store.
//
// Ingest writes every accepted CloudEvent to the ingress topic, in the
// CloudEvents Kafka binding's binary mode with the event's source and id as
// the record key, and returns only once the brokers have it (acks=all): a
// provider's 2xx means the event is in Kafka. A record's partition is
// chosen by conversation, the event's source and subject (else the key):
// one conversation is read in order by the replica holding its partition,
// and every delivery of one event id, which carries the same payload and
// subject, lands on the same partition, where its duplicates are dropped.
//
// Each sink reads the topic as a consumer group of its own, "<Group>.<sink>",
// every replica a member, so that one sink's backlog never holds back
// another's. A group new to the brokers is first placed at the records
// written since the sink subscribed, not at the start of the topic. For
// each record it reads, a replica drops an id it has already seen within
// the dedup window, routes the event with its current routes, and hands it
// to the same delivery loops as the embedded queue (the delivery package).
// A partition's offset is committed only past records whose every delivery
// has ended: delivered, forwarded to a dead-letter sink and delivered
// there, or written to the dead-letter topic.
//
// When a group rebalances (a replica joins or leaves, partitions are
// added), each member hands back before the partitions move: it drops the
// deliveries it had not yet handed to its delivery loops and those handed
// out and not being sent (a loop asks Relinquished right before each send,
// and drops what was taken back), waits for those under way (at most half
// the session timeout), commits what settled with the ending generation,
// and forgets the rest, which the partition's next holder reads again from
// that commit. Two replicas never deliver one
// partition at once, and no offset moves back; only a delivery still under
// way when the wait is up may be delivered again. A replica that dies
// leaves its uncommitted records to the member that takes its partitions
// over, which delivers them again (at-least-once).
//
// A delivery's failed attempts are counted in the shared state (below),
// written in the background and deleted once its record settles: the
// replica that reads the record again, after a rebalance or a restart,
// reads the count at the start of its generation and goes on from there.
// A replica hands its partitions back only once the counts it had are
// written (waiting at most WriteTimeout, or a quarter of SessionTimeout);
// one killed between a failed attempt and the write leaves that attempt
// uncounted.
//
// What the embedded store keeps on disk and is kept in memory here, and
// lost with the process, is the dedup window, which holds the ids this
// replica read (up to MaxDedupIDs). When a reader takes records of a
// partition that it did not read up to there (at its start, or when a
// rebalance hands it records another replica read), it first reads back
// the ids of the DedupLookback records before them, so a provider's retry
// that follows a deploy or a rebalance is still dropped; a retry of an
// event further back than that is delivered again.
//
// What a replica holds is at most MaxHeld records per sink, and
// MaxHeldBytes of them; a sink's backlog is its consumer group's lag,
// which Lag reports for every replica at once. A goroutine measures it every LagInterval with the brokers'
// offsets (the partitions' ends against the group's committed offsets),
// so that reading it never waits on a broker; when the brokers do not
// answer, the last figure stays, with the time it was measured.
//
// Events a sink gives up on with no dead-letter sink, and request bodies
// that could not be converted, go to the dead-letter topic (by default the
// ingress topic's name plus ".deadletter"): the event in binary mode with
// the deadlettersink and deadletterreason extensions a dead-letter sink
// receives, or the raw body with hookbridge_source and hookbridge_reason
// headers; an event a dead-letter sink gave up on in turn as that sink
// was sent it, with the sink that gave up last and why in the HeaderSink
// and HeaderReason headers. DeadLettersBefore, DeadLetter, Replay and
// Discard work on them as the embedded store's do (see deadletters.go): a
// replay goes back through the ingress topic to one sink, and what was
// replayed or discarded is marked in the shared state.
//
// The replicas also share a little state (State): a key-value map, such as
// the Slack sink's map of conversations to threads, so that a replica that
// takes a conversation's partition over goes on in the same thread, the
// delivery attempts above, and the marks of the dead letters replayed or
// discarded. It is kept on a compacted topic of one partition (by default the ingress
// topic's name plus ".state"), created on first use, which every replica
// reads whole into memory: a write returns once the brokers have it, and a
// read first catches up with the topic's end, so it sees every write any
// replica had finished before; when the brokers do not answer, a read
// fails rather than answer what may be stale.
package kafkaqueue
