// Package userecho receives UserEcho webhooks: topic.created,
// topic.accepted, topic.satisfaction_changed, comment.created,
// comment.accepted and comment.deleted, each a JSON envelope
// {"hook", "created", "data"} whose data is the topic or comment as
// UserEcho's API serialises it.
//
// UserEcho signs each request with X-UE-Signature, the hexadecimal HMAC of
// the raw body keyed with the project's webhook key (Setup > Integration >
// Website > Webhooks). UserEcho documents HMAC-SHA1; the source tells the
// algorithm by the signature's length, 40 hex characters for SHA-1 and 64
// for SHA-256, and refuses any other length as malformed. Signing is
// optional on UserEcho's side: when `secret` is set every request must carry
// a valid signature; without it the source accepts any POST, which is only
// safe behind allow_ips. UserEcho signs no timestamp, so replays are caught
// by the bridge's duplicate filter, not by a time window.
//
// YAML keys (besides the common type, path, allow_ips and body_limit):
//
//	secret   the webhook key; optional, but when set the signature is required
//	account  the project's URI, e.g. https://acme.userecho.com, used as the
//	         CloudEvent source; required
//
// Each request becomes one CloudEvent: type com.userecho.<hook> (e.g.
// com.userecho.topic.created; an unknown hook name still becomes
// com.userecho.<name>), source the configured account, subject
// topics/<data.id> or comments/<data.id> by the hook's object, id
// <hook>:<data.id>:<created> (the envelope's created, which UserEcho
// repeats when it retries a delivery), and time the envelope's created.
// UserEcho gets an empty 200; any other status makes it post again.
package userecho
