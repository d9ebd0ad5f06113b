// Package server is the HTTP edge of hookbridge: a Fiber listener that
// receives webhooks and answers providers, and a separate admin listener for
// health, readiness and metrics. It is the only package that touches Fiber;
// sources see an owned copy of each request.
//
// For each webhook it enforces the source's IP allow-list (403) and body
// limit (413), asks the source to verify (401) and convert (400, the raw
// body kept as a dead letter) the request, hands the events to the ingester,
// which queues them durably, and only then answers 2xx. When the events cannot
// be queued it answers 503 so the provider retries; it never answers 410.
package server
