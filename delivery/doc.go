// Package delivery moves queued events to their sinks: one loop per sink,
// independent of every other, with retries (exponential backoff with jitter,
// capped, honouring a destination's Retry-After) and dead-lettering, as
// Knative's delivery spec describes. The queue keeps every event until its
// sink has it, so a retrying event survives a restart, and a slow or dead
// sink only ever holds up its own loop, never ingestion or another sink.
//
// Each loop paces its sends to the sink's rate_limit and passes them through
// the sink's circuit breaker: after a number of sends in a row have failed,
// it holds every send until a cooldown has passed and one probe succeeds,
// so that an outage neither spends the waiting events' attempts nor meets
// every worker's retries.
package delivery
