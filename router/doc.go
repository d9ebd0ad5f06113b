// Package router decides which sinks receive each CloudEvent.
//
// A route names the sinks an event goes to and the filters it must pass,
// written in the filter dialects of Knative Eventing Triggers (the
// CloudEvents Subscriptions API):
//
//	routes:
//	  - name: new-leads
//	    filters:                        # every filter must match
//	      - exact: {type: com.helloclient.lead}
//	      - cesql: "bridgesource = 'helloclient'"
//	      - prefix: {type: com.helloclient.}
//	      - suffix: {subject: /messages}
//	      - any: [{exact: {type: a}}, {exact: {type: b}}]
//	      - all: [{exact: {source: s}}, {prefix: {subject: chats/}}]
//	      - not: {exact: {data.status: closed}}
//	    sinks: [slack-sales, crm]
//	  - name: everything                # no filters: every event
//	    sinks: [kafka-events, archive]
//
// exact, prefix and suffix map attribute names to strings; every attribute
// listed must be present and its value must equal, start with or end with the
// given string (case-sensitive). all matches when every filter in its list
// does, any when at least one does, not when its one filter does not. cesql
// is a CloudEvents SQL expression that must evaluate to the boolean true; an
// evaluation error (such as a missing attribute) or a value of another type
// does not match.
//
// Attributes are the context attributes id, source, specversion, type,
// subject, datacontenttype, dataschema and time (compared in its RFC 3339
// form, in UTC) and any extension, such as bridgesource. exact, prefix and
// suffix also accept data.<dotted.path> to look inside the JSON payload:
// data.customer.email names the email field of the customer object, and a
// segment that is a whole number indexes an array (data.tags.0). Strings
// compare as they are, numbers as JSON spells them (1.50 stays "1.50"),
// booleans as true and false; a missing field, null, an object or an array
// does not match, nor does a payload that is not JSON. CESQL cannot see the
// payload.
//
// In exact, prefix and suffix, a value written as a YAML number or boolean is
// compared in the spelling JSON gives it (data.score: 87, data.vip: true); a
// number JSON spells differently (0x1F, 1_000, .5) is an error, to be quoted.
//
// Decode compiles the routes: section of the configuration, reporting every
// mistake with its line and column. New builds an immutable Router whose Match
// is safe for concurrent use. Match reads the payload at most once per event,
// and only when a data filter is reached: a single pass over the raw JSON
// picks out every path the routes use, giving the answers a json.Decoder with
// UseNumber would, without building maps for the rest of the payload.
package router
