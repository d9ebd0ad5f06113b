// Package socialboards receives Socialboards ticket webhooks (ticket created,
// status changed, reply added, ...).
//
// Socialboards first checks the endpoint with a GET carrying
// ?challenge=<n>&verifyToken=<token>; the source answers 200 with the
// challenge as text/plain when the token matches verify_token, and 401
// otherwise. Event notifications are POSTs that Socialboards does not sign,
// so they are guarded by a secret `key` query parameter written into the
// endpoint URL given to Socialboards
// (https://bridge.example.com/webhooks/socialboards?key=...), by the source's
// allow_ips, or both. An endpoint with neither is refused at load unless
// allow_unsigned: true says so explicitly, which is only safe together with
// allow_ips.
//
// YAML keys (besides the common type, path, allow_ips and body_limit):
//
//	verify_token    the Verify Token typed into Socialboards' webhook settings; required
//	key             the secret every POST must carry as ?key=; required unless allow_unsigned
//	allow_unsigned  accept POSTs without a key; default false; only with allow_ips
//
// Each POST becomes one CloudEvent: type com.socialboards.<EventType>
// (e.g. com.socialboards.ticket_status_change), source
// https://inbox.socialboards.com/<CommunityName>, subject tickets/<TicketId>,
// id the SHA-256 of the body (the payload carries no delivery id), and the
// receive time as time (the payload carries no event time).
package socialboards
