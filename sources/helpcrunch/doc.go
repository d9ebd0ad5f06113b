// Package helpcrunch receives HelpCrunch webhooks: chat events (chat.new,
// chat.assigned, chat.closed, ...), customer events (customer.new,
// customer.email_updated, ...) and message events (message.chat.customer,
// message.email.agent, ...).
//
// HelpCrunch signs every request with X-HelpCrunch-Signature, the
// hexadecimal HMAC-SHA1 (40 characters) of the raw body keyed with the
// account's HTTP Webhook Signing Key. The source checks it over the body
// bytes exactly as received, in constant time; a header that is not 40 hex
// characters is malformed (a SHA-256 digest is refused, not tried).
// HelpCrunch does not sign a timestamp, so there is no replay window: the
// bridge's duplicate filter drops a replayed event by its id instead.
//
// YAML keys (besides the common type, path, allow_ips and body_limit):
//
//	secret   the HTTP Webhook Signing Key from HelpCrunch > Settings >
//	         Developers > Webhooks; required
//	account  the account's URI, e.g. https://acme.helpcrunch.com, used as
//	         the CloudEvent source; required
//
// Each request becomes one CloudEvent: type com.helpcrunch.<event> (e.g.
// com.helpcrunch.chat.new, com.helpcrunch.customer.new,
// com.helpcrunch.message.chat.customer; an unknown event name still becomes
// com.helpcrunch.<name>), source the configured account, subject
// chats/<id> for chat events, customers/<id> for customer events and
// chats/<chat_id>/messages/<message id> for message events, id the
// envelope's own id (HelpCrunch keeps it across retries, while attempts and
// lastAttemptAt change), and time the envelope's createdAt. HelpCrunch gets
// an empty 200; the bridge never answers 410, which would make HelpCrunch
// count the delivery as failed and turn the webhook off after three.
package helpcrunch
