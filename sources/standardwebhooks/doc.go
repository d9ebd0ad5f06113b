// Package standardwebhooks is the `standardwebhooks` source type: it
// receives webhooks from any provider that follows the Standard Webhooks
// specification (https://www.standardwebhooks.com), as Svix-powered senders
// and many others do.
//
// Every request carries webhook-id, webhook-timestamp (unix seconds) and
// webhook-signature, a space-separated list of "v1,<base64>" entries, each
// the HMAC-SHA256 of "<webhook-id>.<webhook-timestamp>.<body>" keyed with the
// base64-decoded part of a whsec_ secret. A request is accepted when any v1
// entry matches any configured secret (entries of other versions, such as
// the asymmetric v1a, are ignored) and its timestamp is within the
// tolerance of the receive time. Comparisons are constant-time.
//
// YAML keys (besides the common type, path, allow_ips and body_limit):
//
//	secret          the endpoint's signing secret, whsec_<base64>; required unless secrets is given
//	secrets         several such secrets while the provider rotates them; any one may match
//	tolerance       how far webhook-timestamp may be from the receive time; default 5m; 0 turns it off
//	source          the CloudEvent source URI, e.g. https://api.example.com; required
//	type_path       dotted JSON path of the event type; default "type"
//	type_prefix     put before the type, e.g. com.example.; default none
//	time_path       dotted JSON path of the event time; default "timestamp"
//	subject_path    dotted JSON path of the subject, e.g. data.id; default none
//	subject_prefix  put before the subject value, e.g. invoices/
//
// The CloudEvent id is webhook-id, which the specification keeps the same
// across retries of one delivery, so a retry is dropped as a duplicate. The
// type is the payload's type (e.g. invoice.paid, already a dotted
// hierarchical name), so routes match the names in the provider's
// documentation, normalised as every source's event names are: lower case,
// with spaces, ':' and '/' as '.' ("Customer Created" is customer.created).
// type_prefix namespaces it when several providers share a bus. A payload
// without a type gets <type_prefix>unknown.
package standardwebhooks
