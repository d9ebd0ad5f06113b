// Package httpsink delivers events to a CRM or any HTTP endpoint; its sink
// type is "http".
//
// With a body: mapping, each event is rendered into that JSON document (its
// string leaves are templates, so the result is valid JSON whatever the
// payload holds) and sent as application/json. Without one, the CloudEvent
// itself is sent through the CloudEvents HTTP protocol binding: format
// "structured" (the default) posts the whole event as
// application/cloudevents+json; "binary" puts the attributes in ce-* headers
// and the payload in the body, with Content-Type set to the event's
// datacontenttype.
//
// Every request carries Idempotency-Key: <event id>, so an endpoint that
// honours it ignores the redelivery of an event it already has, and
// User-Agent: hookbridge.
//
// A 2xx answer is success. 408, 429, 5xx, timeouts and network errors are
// returned as retryable errors (with the wait asked for by a Retry-After
// header, in seconds or as an HTTP date); any other answer is permanent, and
// its status and the first 512 bytes of its body go into the error so the
// dead letter says why. Redirects are followed only when they keep the
// method and body (307, 308); a 301, 302 or 303 is a permanent failure
// naming where it pointed, never a silent GET.
//
// example.yaml creates HubSpot contacts. A generic CRM that takes the whole
// lead and authenticates with an API key header looks like this:
//
//	crm:
//	  type: http
//	  url: "${CRM_URL}/api/leads"
//	  method: PUT
//	  headers:
//	    X-Api-Key: "${CRM_API_KEY}"
//	    X-Lead-Source: "hookbridge/{{ .Extensions.bridgesource }}"
//	  body:
//	    external_id: "{{ .ID }}"
//	    contact:
//	      name: "{{ .Data.FirstName }} {{ .Data.LastName }}"
//	      email: "{{ .Data.Email }}"
//	      phone: "{{ .Data.Phone }}"
//	    note: "{{ .Data.Message }}"
//	    raw: "{{ .Data | toJson }}"
//	  timeout: 5s
//
// To hand the CloudEvent itself to an endpoint that speaks CloudEvents (a
// Knative broker, an Azure Event Grid topic), leave out body:
//
//	broker:
//	  type: http
//	  url: http://broker-ingress.knative-eventing.svc/default/default
//	  format: binary
package httpsink
