// Package hmacsource is the `hmac` source type: a configurable receiver for
// any provider that signs the request body with a shared secret and puts
// the signature in a header (GitHub-, Shopify-, Zendesk- and Intercom-style
// webhooks, and in-house senders), with optional timestamp and replay
// protection. A provider with its own package (helloclient, crisp, ...)
// should use that instead.
//
// Verification: the signed payload is rendered from the `payload` template
// over the exact raw body bytes, HMAC'd with `secret` and `algorithm`, and
// compared in constant time with every signature the header carries
// (comma-separated, so a provider rotating its key may send both), after
// stripping `prefix` from each. With `timestamp_header`, the timestamp must
// be within `tolerance` of the receive time, and `payload` must sign it (a
// timestamp outside the signature would let a replay carry a fresh one).
//
// YAML keys (besides the common type, path, allow_ips and body_limit):
//
//	secret            the shared signing secret; required
//	header            the header carrying the signature, e.g. X-Signature; required
//	algorithm         sha1, sha256 or sha512; default sha256
//	encoding          hex or base64 (standard or URL-safe, padded or not); default hex
//	prefix            text before each signature, e.g. "sha256=" (any case); a signature without it is malformed; default none
//	payload           Go template of the signed bytes over .Body, .Timestamp and
//	                  (.Header "X-Name"); default "{{ .Body }}"; e.g. "{{ .Timestamp }}.{{ .Body }}"
//	timestamp_header  header with the signing time in unix seconds (or milliseconds, if over 1e12); default none
//	tolerance         how far that time may be from the receive time; default 5m; 0 turns the check off
//	source            the CloudEvent source URI, e.g. https://api.example.com; required
//	event_type        a constant CloudEvent type, e.g. com.example.order
//	type_path         or: a dotted JSON path (e.g. event.name) whose value, lower-cased with
//	                  ':', '/' and spaces as '.', is appended to type_prefix
//	type_prefix       e.g. com.example.; only with type_path
//	id_path           dotted JSON path of the provider's delivery id; default: the SHA-256 of the body
//	subject_path      dotted JSON path of the subject; default none
//	subject_prefix    put before the subject value, e.g. orders/
//	time_path         dotted JSON path of the event time (RFC 3339, or unix s/ms); default: receive time
//
// Exactly one of event_type and type_path is required; an event whose
// type_path is missing gets type <type_prefix>unknown. (The key is
// event_type, not type, because type: names the source type, hmac.)
package hmacsource
