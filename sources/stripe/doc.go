// Package stripe is the `stripe` source type: it receives the events Stripe
// sends to a webhook endpoint (an event destination of type webhook
// endpoint), for an account's own events or, on a Connect platform, its
// connected accounts'.
//
// Stripe signs each delivery in Stripe-Signature:
// "t=<unix>,v1=<hex>[,v1=<hex>...]", where v1 is the hex HMAC-SHA256 of
// "<t>.<raw body>" keyed with the endpoint's signing secret as Stripe shows
// it (the whole whsec_... string). A request is accepted when any v1 matches
// any configured secret: while an endpoint's secret is rolled, Stripe signs
// with each active secret and sends a v1 for each, and secrets lists the
// old and new ones here. The v0 scheme Stripe adds to test-mode deliveries,
// and any other scheme, are ignored, so a header with only v0 is rejected.
// The signature is checked first, then t against the receive time
// (tolerance, default 5m either way; 0 turns it off). Comparisons are
// constant-time; secrets are never logged.
//
// YAML keys (besides the common type, path, allow_ips and body_limit):
//
//	secret     the endpoint's signing secret (whsec_...); required unless secrets is given
//	secrets    several signing secrets while rolling; any one may match
//	tolerance  how far t may be from the receive time; default 5m, 0 turns it off
//	account    the id (acct_...) of the account the endpoint belongs to; names the source
//
// The CloudEvent of a snapshot event (object "event", the changed object in
// data.object):
//
//	id       the event's id (evt_...), which Stripe keeps when it retries a
//	         delivery, so a retry is dropped as a duplicate
//	type     com.stripe.<type>, e.g. com.stripe.checkout.session.completed,
//	         com.stripe.customer.created, com.stripe.invoice.paid
//	source   https://dashboard.stripe.com/<account> for a connected account's
//	         event (its account attribute), else the same with the configured
//	         account, else https://dashboard.stripe.com
//	subject  data.object's object name, pluralised as Stripe's API paths are,
//	         and its id: customers/cus_123, checkout.sessions/cs_123,
//	         payment_intents/pi_123, capabilities/card_payments; the id alone
//	         when there is no object name, none when the object has no id
//	         (a balance)
//	time     created
//	data     the whole event, as Stripe sent it
//	stripelivemode  "true" for a live-mode event, "false" for a test-mode
//	         or sandbox one, so routes can keep test events away from
//	         production sinks (a cesql filter sees extensions, not data)
//
// A thin event (object "v2.core.event", sent to event destinations that ask
// for thin payloads) carries no snapshot: it converts the same way, with the
// subject from related_object (type and id, e.g. billing.meters/mtr_123),
// the account from context, and created read as RFC 3339. Its data is the
// thin event itself; a consumer fetches the object from related_object.url.
// Its type keeps Stripe's name, e.g. com.stripe.v1.billing.meter.error_report_triggered.
//
// A body that is not a JSON object is answered 400. An event without an id
// gets the SHA-256 of the body; one without a type becomes com.stripe.unknown.
//
// bridge send signs a payload as Stripe does, with a v1 for each configured
// secret.
package stripe
