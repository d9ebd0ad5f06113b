// Package slack is the `slack` source type: it receives a Slack app's Events
// API requests (Event Subscriptions, delivered over HTTP to the Request URL).
//
// Slack signs every request with the app's signing secret:
// X-Slack-Signature is "v0=" and the hex HMAC-SHA256 of
// "v0:<X-Slack-Request-Timestamp>:<raw body>". A request is accepted when it
// matches the secret, or any of secrets while the app's signing secret is
// being regenerated, and its timestamp (unix seconds) is within tolerance of
// the receive time; a replayed request older than that is refused as stale.
// Comparisons are constant-time.
//
// YAML keys (besides the common type, path, allow_ips and body_limit):
//
//	secret     the app's signing secret (Basic Information > App Credentials);
//	           required unless secrets is given
//	secrets    several signing secrets while rotating; any one may match
//	tolerance  how far X-Slack-Request-Timestamp may be from the receive
//	           time; default 5m; 0 turns the check off
//
// When the Request URL is saved, Slack POSTs a url_verification request
// ({"type":"url_verification","challenge":...}), signed like any other. It
// is verified and answered 200 with the challenge as text/plain; it is not
// an event. A signed url_verification without a challenge is answered 400.
//
// Every other request becomes one CloudEvent, and is answered with an empty
// 200 as soon as it is queued (Slack wants a 2xx within 3 seconds, and
// retries otherwise):
//
//	id       the payload's event_id, which Slack keeps across its retries
//	         (X-Slack-Retry-Num), so a retry is dropped as a duplicate;
//	         without one (app_rate_limited), the SHA-256 of the body, which a
//	         retry repeats byte for byte
//	type     com.slack.<event.type>[.<event.subtype>] for an event_callback,
//	         e.g. com.slack.app_mention, com.slack.message,
//	         com.slack.message.channel_join; com.slack.<type> for any other
//	         top-level type, e.g. com.slack.app_rate_limited
//	source   https://app.slack.com/client/<team_id>, the workspace's address
//	         in Slack's web client; https://app.slack.com without a team_id
//	subject  channels/<channel>/messages/<ts> for an event about a message
//	         (event.channel and event.ts, or event.item's for reactions and
//	         pins), channels/<channel> for one about a channel alone
//	         (event.channel, event.channel.id or event.channel_id),
//	         users/<user> for one about a user (event.user or
//	         event.user.id); none otherwise
//	time     event_time; the receive time without one
//	data     the whole JSON payload, envelope included
//
// The same endpoint may be the app's Interactivity Request URL and its
// slash commands' Request URL. Both are form-encoded
// (application/x-www-form-urlencoded) and signed the same way, and each is
// one CloudEvent, answered with an empty 200 (an acknowledgement; replies
// go through the response_url in the payload):
//
//	interactivity (block actions, shortcuts, view submissions): the form's
//	payload field is the JSON data; type com.slack.interaction.<type>,
//	e.g. com.slack.interaction.block_actions; source from team.id; subject
//	channels/<channel.id>[/messages/<message.ts>], else users/<user.id>
//	slash commands: the form's fields (the first value of each) are the
//	data, as a JSON object of strings; type com.slack.command.<command
//	without its slash>, e.g. com.slack.command.lead; source from team_id;
//	subject channels/<channel_id>, else users/<user_id>
//
// Neither carries an id of its own: the id is the SHA-256 of the body, and
// the time the receive time. A form with neither a payload nor a command
// field (Slack's ssl_check, for one) is answered 400 and kept as a dead
// letter.
//
// bridge send signs a payload as Slack does, with the current time as
// X-Slack-Request-Timestamp, sent as JSON, or as a form when the file is
// not a JSON object; a url_verification payload is answered with its
// challenge.
package slack
