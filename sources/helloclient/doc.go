// Package helloclient receives Hello Client chatbot webhooks: leads and
// appointments, posted as they happen, and the daily chat-log push, which
// becomes one CloudEvent per conversation.
//
// Hello Client signs each request with X-Webhook-Signature: t=<unix>,v1=<hex>,
// where v1 is the HMAC-SHA256, keyed with the webhook signing key, of
// "<t>.<body>". The provider computes it over JSON.stringify of the payload,
// so a body whose bytes were re-spaced in transit is checked again in its
// compact form. Requests whose t is further than the tolerance from the
// receive time are rejected, which stops replays.
//
// Event types: com.helloclient.lead, com.helloclient.appointment,
// com.helloclient.chatlog; any other Type field becomes com.helloclient.<type>.
package helloclient
