// Package bridge assembles hookbridge from its configuration file: it loads
// and checks the YAML (every mistake at once, each with file:line:column),
// builds the sources, sinks and routes it names, and runs them around the
// durable queue: request -> source -> CloudEvent -> queue -> router -> sink.
//
// The built configuration is one immutable Runtime held behind an atomic
// pointer, so a reload swaps sources, routes and sinks without stopping
// ingestion.
package bridge
