// Package slack posts events to Slack; its sink type is "slack".
//
// It posts either through an incoming webhook (webhook_url) or with a bot
// token through chat.postMessage (token and channel, which may be a
// template). The message is the text template, which is also what
// notifications and screen readers show, plus optional Block Kit blocks: a
// YAML list of blocks, as Slack's Block Kit Builder writes them, whose string
// leaves are templates. The blocks are rendered to JSON whatever the payload
// holds, then checked as Block Kit before anything is sent.
//
// Payload values are escaped for Slack (& < > become &amp; &lt; &gt;) before
// the templates see them, so a visitor who types "<!channel>" or
// "<https://evil|your bank>" is shown literally instead of pinging the
// channel or forging a link; set escape_data: false when the payload holds
// Slack markup meant to be rendered.
//
// Slack's answers: 429 is retried after the Retry-After it gives; 5xx,
// timeouts, network errors and Slack's own transient errors (internal_error,
// fatal_error, service_unavailable, request_timeout) are retried; every other
// refusal (invalid_auth, channel_not_found, invalid_blocks, a 4xx from a
// webhook) is permanent and dead-lettered with Slack's reason.
//
// With a bot token instead of a webhook (the bot needs chat:write, and
// chat:write.customize for username and icon_emoji):
//
//	slack-support:
//	  type: slack
//	  token: "${SLACK_BOT_TOKEN}"
//	  channel: "{{ if eq .Type \"com.helloclient.lead\" }}C0SALES{{ else }}C0SUPPORT{{ end }}"
//	  username: Hookbridge
//	  icon_emoji: ":incoming_envelope:"
//	  text: "{{ .Type }} from {{ .Extensions.bridgesource }}: {{ .Subject }}"
//	  thread_key: "{{ .Subject }}"
//
// thread_key (token mode only) puts the messages of one conversation in one
// Slack thread: the first event with a key in a channel posts there, and
// the later ones reply under the ts Slack answered with (reply_broadcast
// shows them in the channel too). The key -> (channel ID, ts) map is a
// small Pebble store per sink (thread_store), synced to disk when a thread
// starts, so restarts keep the threads. When the bridge's queue is on
// Kafka, the bridge hands the sink the replicas' shared state
// (sinks.StateUser) and the map is kept there instead, so that a
// conversation moved to another replica stays in its thread. A thread is
// forgotten thread_ttl after its latest message. Deliveries of one key take turns, first come
// first served, so concurrent events of a new conversation make one
// parent. A reply whose parent was deleted starts a new thread: Slack
// either posts it to the channel un-threaded (it then becomes the parent)
// or refuses it (thread_not_found, message_not_found, invalid_thread_ts;
// it is then posted again as the parent). A parent Slack posted but whose
// answer was lost (a timeout, a crash) is posted again by the retry: the
// conversation goes on in that second thread.
package slack
