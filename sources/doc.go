// Package sources defines what a webhook provider is to hookbridge: a Source
// verifies a request exactly as its provider documents and converts it into
// CloudEvents. Each provider is its own package under sources/ that registers
// itself in init(); sources/all imports them all.
//
// Sources are pure functions of the request (method, headers, query, body and
// receive time): they never see the HTTP server, so they are easy to table-test
// and fuzz. The server glue maps their errors to answers: a Verify error is 401,
// a Convert error is 400, and Handshake/Reply give the provider's own answers.
package sources
