// Package crisp receives Crisp web hooks: message events (message:send,
// message:received, ...), session events (session:set_email, ...), people
// events and the rest of Crisp's RTM events, posted as JSON envelopes
// {"website_id", "event", "data", "timestamp"}.
//
// Crisp delivers them two ways, and the source accepts either:
//
//   - Website Hooks (set up in a website's settings) are not signed. Crisp's
//     guide has the endpoint URL carry a secret key parameter, e.g.
//     https://bridge.example.com/webhooks/crisp?key=<key>; the source
//     compares it with `key` in constant time.
//   - Plugin Hooks (set up for a Marketplace plugin) carry
//     X-Crisp-Request-Timestamp and X-Crisp-Signature, the hex HMAC-SHA256,
//     keyed with the plugin's hook signing secret, of
//     "[<timestamp>;<body>]" (the brackets and semicolon included). Crisp
//     computes it over JSON.stringify of the payload, so a body whose bytes
//     were re-spaced in transit is checked again in its compact form. A
//     timestamp further than `tolerance` from the receive time is refused.
//     Crisp's documentation does not give the header's unit; its payload
//     timestamps are milliseconds, so the header is read as milliseconds
//     when it has 13 digits or more and as seconds otherwise.
//
// With both key and secret set, a request passes when either its key or its
// signature is right: the key guards website hooks, which carry no
// signature, and the signature guards plugin hooks, whose URL need not carry
// the key. A request with neither is refused.
//
// YAML keys (besides the common type, path, allow_ips and body_limit):
//
//	key        the secret website hooks carry as ?key=; required unless secret is set
//	secret     the plugin hooks' signing secret from the Crisp Marketplace;
//	           required unless key is set
//	tolerance  how far X-Crisp-Request-Timestamp may be from the receive
//	           time; default 5m; 0 turns the check off
//
// Each request becomes one CloudEvent: type chat.crisp.<event> with ':' as
// '.' (message:send -> chat.crisp.message.send), source
// https://app.crisp.chat/website/<website_id>, subject
// sessions/<session_id>, time the payload's timestamp (milliseconds). The
// id of a message (message:send, message:received, message:removed, ...)
// is <website_id>:<session_id>:<event>:<fingerprint>, Crisp's own message
// identity; every other event, and message:updated (a message may be edited
// many times), takes the SHA-256 of the body, which Crisp's retries repeat
// byte for byte. Crisp expects its answer within a few seconds: the source
// answers an empty 200.
package crisp
