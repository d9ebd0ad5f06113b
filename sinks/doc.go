// Package sinks defines what a destination is to hookbridge: a Sink delivers
// one CloudEvent (or, optionally, a batch) and reports whether a failure is
// worth retrying. Retries, backoff and dead-lettering are the delivery loop's
// job, never the sink's. Each kind is its own package under sinks/ that
// registers itself in init(); sinks/all imports them all.
package sinks
