// Package meta is the `meta` source type: it receives the webhooks of Meta's
// Graph API, as the WhatsApp Cloud API, Messenger (Pages) and Instagram
// messaging send them, one endpoint per Meta app.
//
// When the callback URL is saved in the App Dashboard, Meta sends a
// verification request: a GET with hub.mode=subscribe, hub.challenge and
// hub.verify_token. The source answers 200 with hub.challenge as
// text/plain when hub.verify_token matches verify_token (compared in
// constant time) and hub.mode is subscribe, and 401 otherwise.
//
// Event notifications are POSTs that Meta signs with the app's App Secret:
// X-Hub-Signature-256 is "sha256=" and the hex HMAC-SHA256 of the raw
// body. A request is accepted when it matches app_secret, or any of
// app_secrets (while the secret is reset, or when several apps post to one
// endpoint). The SHA-1 X-Hub-Signature alone is refused. Meta signs no
// timestamp: a replayed notification is dropped as a duplicate of its
// events' ids within queue.dedup_window.
//
// YAML keys (besides the common type, path, allow_ips and body_limit):
//
//	verify_token  the Verify Token typed into the App Dashboard; required
//	app_secret    the app's App Secret; required unless app_secrets is given
//	app_secrets   several app secrets; any one may match
//
// # One event per update
//
// Meta batches: one POST is {"object": ..., "entry": [...]}, and each
// entry ({"id", "time", ...}) holds its updates in a list: changes
// ({"field", "value"}; WhatsApp and other Graph objects), messaging
// (Messenger and Instagram messaging items) or standby (Messenger items
// of a conversation another app owns). Each element of those lists becomes
// its own CloudEvent, routed and deduplicated on its own; events come in
// the order of the entries, and within an entry its changes, then its
// messaging, then its standby items. An entry with
// none of these lists becomes one event of its own (type
// com.meta.<object>.unknown), so nothing Meta sent is dropped. A body
// that is not such a notification is answered 400 and kept as a dead
// letter.
//
// Meta retries a notification that was not answered with 200, for hours,
// and may batch the retried updates differently, so an event's id comes
// from the update alone, never from the body:
//
//	WhatsApp change whose value holds one message      the message's id (wamid)
//	WhatsApp change whose value holds one status       "<wamid>:<status>", e.g. "wamid.HBg...:delivered"
//	messaging item with a message (or an echo)         message.mid
//	anything else                                      hex SHA-256 of entry id, NUL, list name
//	                                                   (changes, messaging or standby), NUL, and the
//	                                                   item's canonical JSON
//
// The canonical JSON is the item decoded and encoded again by Go's
// encoding/json: object keys sorted by their bytes, no white space,
// numbers as written, strings escaped as encoding/json escapes them (", \,
// control characters, U+2028 and U+2029; not <, > or &). An entry's time
// is no part of any id.
//
// The CloudEvent:
//
//	type     com.meta.<object>.<field> for a change, e.g.
//	         com.meta.whatsapp_business_account.messages;
//	         com.meta.<object>.<kind> for a messaging item, kind being its
//	         payload key: message, message_echo (a message with is_echo),
//	         postback, reaction, read, delivery, optin, referral,
//	         message_edit, ..., e.g. com.meta.page.message,
//	         com.meta.instagram.message;
//	         com.meta.<object>.standby.<kind> for a standby item
//	source   https://graph.facebook.com/<entry id>: the WhatsApp Business
//	         account, Page, or Instagram account the entry is about
//	subject  the conversation: the WhatsApp contact's wa_id (else the
//	         message's from, else the status's recipient_id); for a
//	         messaging item the person's id (PSID or IGSID): the sender's,
//	         or the recipient's when the entry's own account sent it; none
//	         for other changes
//	time     the update's own timestamp (a WhatsApp message's or status's,
//	         in seconds; a messaging item's, in milliseconds), else the
//	         entry's time (seconds or milliseconds, told apart by size),
//	         else the receive time
//	data     the notification reduced to that one update, in Meta's shape:
//	         {"object": ..., "entry": [{"id": ..., "time": ...,
//	         "changes"|"messaging"|"standby": [<the update>]}]}, every other
//	         key of the notification and of the entry kept
//
// bridge send performs the verification request first, then posts the
// payload signed under the first app secret, as Meta does.
package meta
