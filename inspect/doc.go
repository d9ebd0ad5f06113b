// Package inspect is the event inspector served on the admin listener: the
// recent events (in memory, bounded), each one's CloudEvent and delivery
// attempts per sink, how each running sink is doing (circuit breaker,
// backlog, lag), the dead-letter list, and replay of a dead letter.
package inspect
