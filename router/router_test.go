package router

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"gopkg.in/yaml.v3"

	"github.com/hookbridge/hookbridge/config"
)

// Structured-mode CloudEvents as the sources produce them.
const (
	leadJSON = `{
	  "specversion": "1.0",
	  "id": "fd6b9163eb92dc546f4e89e820f66309",
	  "source": "https://helloclient.com/chatbots/HC-8842",
	  "type": "com.helloclient.lead",
	  "subject": "sessions/9f1c2e7a-55d4-4b0e-9b8e-2f1d6c3a7e10",
	  "datacontenttype": "application/json",
	  "time": "2026-11-20T12:15:00+02:00",
	  "bridgesource": "helloclient",
	  "data": {
	    "Type": "lead",
	    "SerialNumber": "HC-8842",
	    "FirstName": "Ada",
	    "LastName": "Lovelace",
	    "Email": "ada@example.com",
	    "Score": 87,
	    "Budget": 1.50,
	    "Big": 12345678901234567890,
	    "Qualified": true,
	    "Spam": false,
	    "Notes": null,
	    "Empty": "",
	    "Address": {"City": "London", "Zip": "SW1A 1AA", "Geo": {"Lat": 51.5}},
	    "Tags": ["vip", "uk", {"k": "v"}],
	    "Message": "Do you ship to \"Zürich\"?\nI'd like a quote."
	  }
	}`
	helpcrunchJSON = `{
	  "specversion": "1.0",
	  "id": "hc-evt-1",
	  "source": "https://acme.helpcrunch.com",
	  "type": "com.helpcrunch.message.chat.customer",
	  "subject": "chats/42/messages/7",
	  "datacontenttype": "application/json",
	  "time": "2026-11-20T10:00:00Z",
	  "bridgesource": "helpcrunch",
	  "data": {"event": "message.chat.customer", "data": {"chat": {"id": 42, "status": "closed"}, "text": "hi"}}
	}`
	crispJSON = `{
	  "specversion": "1.0",
	  "id": "w1:s1:message:send:f1",
	  "source": "https://app.crisp.chat/website/w1",
	  "type": "chat.crisp.message.send",
	  "subject": "sessions/s1",
	  "datacontenttype": "application/json",
	  "bridgesource": "crisp",
	  "data": {"website_id": "w1", "event": "message:send", "data": {"type": "text", "content": "hello"}}
	}`
)

func parseEvent(t testing.TB, structured string) *event.Event {
	t.Helper()
	var ev event.Event
	if err := json.Unmarshal([]byte(structured), &ev); err != nil {
		t.Fatalf("parse event: %v", err)
	}
	if err := ev.Validate(); err != nil {
		t.Fatalf("invalid event: %v", err)
	}
	return &ev
}

// plainEvent has no subject or time, a text payload and non-string extensions.
func plainEvent(t testing.TB) *event.Event {
	t.Helper()
	ev := event.New()
	ev.SetID("plain-1")
	ev.SetSource("urn:test")
	ev.SetType("com.example.text")
	ev.SetExtension("attempts", 3)
	ev.SetExtension("urgent", true)
	if err := ev.SetData("text/plain", []byte(`{"not": "parsed as json because"} trailing`)); err != nil {
		t.Fatal(err)
	}
	return &ev
}

func noDataEvent(t testing.TB) *event.Event {
	t.Helper()
	ev := event.New()
	ev.SetID("nodata-1")
	ev.SetSource("urn:test")
	ev.SetType("com.example.ping")
	return &ev
}

// decodeRoutes decodes a YAML document with a top-level routes key and fails
// the test on any error.
func decodeRoutes(t testing.TB, doc string) []Route {
	t.Helper()
	d := &config.Decoder{File: "test.yaml"}
	routes := Decode(d, routesNode(t, doc))
	if err := d.Err(); err != nil {
		t.Fatalf("decode:\n%v", err)
	}
	return routes
}

func routesNode(t testing.TB, doc string) *yaml.Node {
	t.Helper()
	var root yaml.Node
	if err := yaml.Unmarshal([]byte(doc), &root); err != nil {
		t.Fatalf("yaml: %v", err)
	}
	_, v := config.Lookup(&root, "routes")
	if v == nil {
		t.Fatalf("no routes key in %q", doc)
	}
	return v
}

// oneRoute compiles a router of one route with the given flow-style filter
// list.
func oneRoute(t testing.TB, filters string) *Router {
	t.Helper()
	return New(decodeRoutes(t, "routes:\n  - name: r\n    filters: "+filters+"\n    sinks: [s]\n"))
}

func TestMatchFilters(t *testing.T) {
	lead := parseEvent(t, leadJSON)
	helpcrunch := parseEvent(t, helpcrunchJSON)
	crisp := parseEvent(t, crispJSON)
	plain := plainEvent(t)
	noData := noDataEvent(t)

	tests := []struct {
		name    string
		filters string
		ev      *event.Event
		want    bool
	}{
		// exact
		{"exact type", `[{exact: {type: com.helloclient.lead}}]`, lead, true},
		{"exact type other event", `[{exact: {type: com.helloclient.lead}}]`, helpcrunch, false},
		{"exact is case-sensitive", `[{exact: {type: com.HelloClient.lead}}]`, lead, false},
		{"exact is not a prefix", `[{exact: {type: com.helloclient}}]`, lead, false},
		{"exact every attribute", `[{exact: {type: com.helloclient.lead, bridgesource: helloclient}}]`, lead, true},
		{"exact one attribute differs", `[{exact: {type: com.helloclient.lead, bridgesource: crisp}}]`, lead, false},
		{"exact id", `[{exact: {id: hc-evt-1}}]`, helpcrunch, true},
		{"exact source", `[{exact: {source: "https://app.crisp.chat/website/w1"}}]`, crisp, true},
		{"exact specversion", `[{exact: {specversion: "1.0"}}]`, crisp, true},
		{"exact datacontenttype", `[{exact: {datacontenttype: application/json}}]`, lead, true},
		{"exact subject", `[{exact: {subject: chats/42/messages/7}}]`, helpcrunch, true},
		{"missing subject does not match", `[{exact: {subject: ""}}]`, plain, false},
		{"missing dataschema does not match", `[{exact: {dataschema: x}}]`, lead, false},
		{"missing extension does not match", `[{exact: {tenant: acme}}]`, lead, false},
		{"integer extension", `[{exact: {attempts: 3}}]`, plain, true},
		{"boolean extension", `[{exact: {urgent: true}}]`, plain, true},
		{"time in UTC RFC 3339", `[{exact: {time: "2026-11-20T10:15:00Z"}}]`, lead, true},
		{"time prefix", `[{prefix: {time: "2026-11-20T10:"}}]`, lead, true},
		{"missing time does not match", `[{prefix: {time: "2"}}]`, crisp, false},

		// prefix and suffix
		{"prefix type", `[{prefix: {type: com.helpcrunch.}}]`, helpcrunch, true},
		{"prefix type other", `[{prefix: {type: com.helpcrunch.}}]`, lead, false},
		{"prefix is case-sensitive", `[{prefix: {type: COM.}}]`, lead, false},
		{"suffix subject", `[{suffix: {subject: /messages/7}}]`, helpcrunch, true},
		{"suffix subject other", `[{suffix: {subject: /messages/7}}]`, crisp, false},
		{"prefix and suffix together", `[{prefix: {type: chat.crisp.}}, {suffix: {type: .send}}]`, crisp, true},
		{"prefix on missing attribute", `[{prefix: {subject: sessions/}}]`, plain, false},

		// all, any, not
		{"all match", `[{all: [{exact: {bridgesource: crisp}}, {prefix: {subject: sessions/}}]}]`, crisp, true},
		{"all one fails", `[{all: [{exact: {bridgesource: crisp}}, {prefix: {subject: chats/}}]}]`, crisp, false},
		{"any first", `[{any: [{exact: {type: chat.crisp.message.send}}, {exact: {type: b}}]}]`, crisp, true},
		{"any second", `[{any: [{exact: {type: a}}, {exact: {type: chat.crisp.message.send}}]}]`, crisp, true},
		{"any none", `[{any: [{exact: {type: a}}, {exact: {type: b}}]}]`, crisp, false},
		{"not", `[{not: {exact: {type: a}}}]`, crisp, true},
		{"not of match", `[{not: {exact: {bridgesource: crisp}}}]`, crisp, false},
		{"not of missing attribute", `[{not: {exact: {tenant: acme}}}]`, crisp, true},
		{"double not", `[{not: {not: {exact: {bridgesource: crisp}}}}]`, crisp, true},
		{"nested any of all and not", `[{any: [{all: [{exact: {type: x}}]}, {not: {any: [{prefix: {type: com.}}]}}]}]`, crisp, true},
		{"nested all of any", `[{all: [{any: [{suffix: {type: .lead}}, {suffix: {type: .chat}}]}, {not: {exact: {data.Spam: true}}}]}]`, lead, true},
		{"top-level list is and", `[{exact: {type: com.helloclient.lead}}, {exact: {bridgesource: crisp}}]`, lead, false},
		{"no filters", `[]`, noData, true},

		// cesql
		{"cesql extension", `[{cesql: "bridgesource = 'helloclient'"}]`, lead, true},
		{"cesql extension other", `[{cesql: "bridgesource = 'helloclient'"}]`, crisp, false},
		{"cesql like and in", `[{cesql: "source LIKE '%crisp%' AND type IN ('chat.crisp.message.send', 'x')"}]`, crisp, true},
		{"cesql integer extension", `[{cesql: "attempts > 2"}]`, plain, true},
		{"cesql missing attribute is no match", `[{cesql: "tenant = 'acme'"}]`, crisp, false},
		{"cesql not of missing attribute is no match", `[{cesql: "NOT (tenant = 'acme')"}]`, crisp, false},
		{"cesql exists", `[{cesql: "EXISTS subject"}]`, crisp, true},
		{"cesql exists missing", `[{cesql: "EXISTS subject"}]`, plain, false},
		// "type" alone is refused at load; an extension's value is known
		// only from the event.
		{"cesql non-boolean result", `[{cesql: "bridgesource"}]`, crisp, false},
		{"cesql evaluation error", `[{cesql: "1 / 0 = 1"}]`, crisp, false},
		{"cesql keywords any case", `[{cesql: "type like 'chat.%' and bridgesource <> 'x'"}]`, crisp, true},
		{"cesql with exact", `[{cesql: "bridgesource = 'helloclient'"}, {exact: {type: com.helloclient.lead}}]`, lead, true},

		// data paths
		{"data string", `[{exact: {data.FirstName: Ada}}]`, lead, true},
		{"data string other", `[{exact: {data.FirstName: Grace}}]`, lead, false},
		{"data string with escapes", `[{suffix: {data.Message: "quote."}}, {prefix: {data.Message: "Do you ship to \"Zürich\"?\n"}}]`, lead, true},
		{"data nested", `[{exact: {data.Address.City: London}}]`, lead, true},
		{"data deeper", `[{exact: {data.Address.Geo.Lat: 51.5}}]`, lead, true},
		{"data nested in helpcrunch", `[{exact: {data.data.chat.status: closed}}]`, helpcrunch, true},
		{"data integer unquoted", `[{exact: {data.Score: 87}}]`, lead, true},
		{"data integer quoted", `[{exact: {data.Score: "87"}}]`, lead, true},
		{"data integer prefix", `[{prefix: {data.Score: "8"}}]`, lead, true},
		{"data number keeps its JSON spelling", `[{exact: {data.Budget: "1.50"}}]`, lead, true},
		{"data number is not reformatted", `[{exact: {data.Budget: "1.5"}}]`, lead, false},
		{"data big number", `[{exact: {data.Big: "12345678901234567890"}}]`, lead, true},
		{"data bool true", `[{exact: {data.Qualified: true}}]`, lead, true},
		{"data bool false", `[{exact: {data.Spam: false}}]`, lead, true},
		{"data bool quoted", `[{exact: {data.Qualified: "true"}}]`, lead, true},
		{"data bool mismatch", `[{exact: {data.Qualified: false}}]`, lead, false},
		{"data empty string", `[{exact: {data.Empty: ""}}]`, lead, true},
		{"data null does not match", `[{exact: {data.Notes: "null"}}]`, lead, false},
		{"data missing path", `[{exact: {data.Nope: x}}]`, lead, false},
		{"data missing nested path", `[{exact: {data.Address.Nope.City: x}}]`, lead, false},
		{"data path through a string", `[{exact: {data.FirstName.x: Ada}}]`, lead, false},
		{"data object does not match", `[{prefix: {data.Address: "{"}}]`, lead, false},
		{"data array does not match", `[{prefix: {data.Tags: "["}}]`, lead, false},
		{"data array index", `[{exact: {data.Tags.1: uk}}]`, lead, true},
		{"data array index out of range", `[{exact: {data.Tags.9: uk}}]`, lead, false},
		{"data array element object", `[{exact: {data.Tags.2.k: v}}]`, lead, true},
		{"data not missing", `[{not: {exact: {data.Nope: x}}}]`, lead, true},
		{"data on payload that is not JSON", `[{exact: {data.not: "parsed as json because"}}]`, plain, false},
		{"data on event without data", `[{exact: {data.x: y}}]`, noData, false},
		{"data in any", `[{any: [{exact: {data.Address.City: Paris}}, {exact: {data.Address.City: London}}]}]`, lead, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := oneRoute(t, tt.filters)
			routes, sinks := r.Match(tt.ev)
			if got := len(routes) == 1; got != tt.want {
				t.Fatalf("Match = %v, %v; want matched=%v", routes, sinks, tt.want)
			}
			if tt.want && !slices.Equal(sinks, []string{"s"}) {
				t.Fatalf("sinks = %v, want [s]", sinks)
			}
			if !tt.want && (routes != nil || sinks != nil) {
				t.Fatalf("no match must give nil, nil; got %#v, %#v", routes, sinks)
			}
		})
	}
}

const fanOutRoutes = `
routes:
  - name: new-leads
    filters:
      - exact: {type: com.helloclient.lead}
      - cesql: "bridgesource = 'helloclient'"
    sinks: [slack-sales, crm]
  - name: qualified-leads
    filters:
      - exact: {data.Qualified: true}
    sinks: [crm, slack-vip]
  - name: helpcrunch
    filters:
      - prefix: {type: com.helpcrunch.}
    sinks: [kafka-events]
  - name: archive-everything-but-crisp
    filters:
      - not: {exact: {bridgesource: crisp}}
    sinks: [archive, kafka-events]
  - name: never
    filters:
      - exact: {type: nothing.sends.this}
    sinks: [void]
`

func TestMatchFanOut(t *testing.T) {
	r := New(decodeRoutes(t, fanOutRoutes))
	tests := []struct {
		name       string
		ev         *event.Event
		wantRoutes []string
		wantSinks  []string
	}{
		{
			name:       "lead goes everywhere once",
			ev:         parseEvent(t, leadJSON),
			wantRoutes: []string{"new-leads", "qualified-leads", "archive-everything-but-crisp"},
			wantSinks:  []string{"slack-sales", "crm", "slack-vip", "archive", "kafka-events"},
		},
		{
			name:       "helpcrunch",
			ev:         parseEvent(t, helpcrunchJSON),
			wantRoutes: []string{"helpcrunch", "archive-everything-but-crisp"},
			wantSinks:  []string{"kafka-events", "archive"},
		},
		{
			name: "crisp matches nothing",
			ev:   parseEvent(t, crispJSON),
		},
		{
			name: "nil event",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			routes, sinks := r.Match(tt.ev)
			if !slices.Equal(routes, tt.wantRoutes) || !slices.Equal(sinks, tt.wantSinks) {
				t.Fatalf("Match = %q, %q\nwant    %q, %q", routes, sinks, tt.wantRoutes, tt.wantSinks)
			}
			if tt.wantRoutes == nil && (routes != nil || sinks != nil) {
				t.Fatalf("no match must give nil, nil; got %#v, %#v", routes, sinks)
			}
		})
	}
}

func TestRoutesAndSinkRefs(t *testing.T) {
	routes := decodeRoutes(t, `
routes:
  - name: a
    sinks: [x, y]
  - name: b
    filters: [{exact: {type: t}}]
    sinks:
      - y
`)
	r := New(routes)
	got := r.Routes()
	if len(got) != 2 || got[0].Name != "a" || got[1].Name != "b" || !slices.Equal(got[1].Sinks, []string{"y"}) {
		t.Fatalf("Routes() = %+v", got)
	}
	got[0].Name = "changed"
	if r.Routes()[0].Name != "a" {
		t.Fatal("Routes() exposes the router's own slice")
	}

	var refs []string
	for _, ref := range SinkRefs(routes) {
		refs = append(refs, fmt.Sprintf("%s->%s@%d:%d", ref.Route, ref.Sink, ref.Node.Line, ref.Node.Column))
	}
	want := []string{"a->x@4:13", "a->y@4:16", "b->y@8:9"}
	if !slices.Equal(refs, want) {
		t.Fatalf("SinkRefs = %q, want %q", refs, want)
	}
}

func TestRouteWithoutFiltersMatchesAll(t *testing.T) {
	r := New([]Route{{Name: "all", Sinks: []string{"a", "a", "b"}}})
	routes, sinks := r.Match(noDataEvent(t))
	if !slices.Equal(routes, []string{"all"}) || !slices.Equal(sinks, []string{"a", "b"}) {
		t.Fatalf("Match = %q, %q", routes, sinks)
	}
	if refs := SinkRefs(r.Routes()); len(refs) != 3 || refs[0].Node != nil {
		t.Fatalf("SinkRefs of a built route = %+v", refs)
	}
}

func TestMatchDecodesPayloadOnce(t *testing.T) {
	// Three data filters on one event: the payload is decoded by the first
	// and reused by the others, which Match's allocation count shows.
	one := New(decodeRoutes(t, `
routes:
  - {name: a, filters: [{exact: {data.Address.City: London}}], sinks: [s]}
`))
	three := New(decodeRoutes(t, `
routes:
  - {name: a, filters: [{exact: {data.Address.City: London}}], sinks: [s]}
  - {name: b, filters: [{exact: {data.Score: 87}}], sinks: [s]}
  - {name: c, filters: [{exact: {data.FirstName: Ada}}], sinks: [s]}
`))
	ev := parseEvent(t, leadJSON)
	base := testing.AllocsPerRun(50, func() { one.Match(ev) })
	more := testing.AllocsPerRun(50, func() { three.Match(ev) })
	if routes, _ := three.Match(ev); len(routes) != 3 {
		t.Fatalf("routes = %v", routes)
	}
	// The extra routes may grow the result slice, never decode again.
	if more > base+4 {
		t.Fatalf("allocations: one data route %v, three %v: payload decoded more than once", base, more)
	}
	noData := New(decodeRoutes(t, `
routes:
  - {name: a, filters: [{exact: {type: com.helloclient.lead}}], sinks: [s]}
`))
	if n := testing.AllocsPerRun(50, func() { noData.Match(ev) }); n > 2 {
		t.Fatalf("Match without data filters allocates %v times; the payload must not be decoded", n)
	}
}

func TestMatchConcurrent(t *testing.T) {
	r := New(decodeRoutes(t, fanOutRoutes))
	events := []*event.Event{parseEvent(t, leadJSON), parseEvent(t, helpcrunchJSON), parseEvent(t, crispJSON)}
	want := make([]string, len(events))
	for i, ev := range events {
		routes, sinks := r.Match(ev)
		want[i] = strings.Join(routes, ",") + "|" + strings.Join(sinks, ",")
	}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				k := (g + i) % len(events)
				routes, sinks := r.Match(events[k])
				if got := strings.Join(routes, ",") + "|" + strings.Join(sinks, ","); got != want[k] {
					t.Errorf("concurrent Match = %s, want %s", got, want[k])
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestTimeWithOffsetComparesInUTC(t *testing.T) {
	ev := noDataEvent(t)
	ev.SetTime(time.Date(2026, 1, 2, 3, 4, 5, 600_000_000, time.FixedZone("x", 3600)))
	r := oneRoute(t, `[{exact: {time: "2026-01-02T02:04:05.6Z"}}]`)
	if routes, _ := r.Match(ev); len(routes) != 1 {
		t.Fatal("time did not match in its UTC RFC 3339 form")
	}
}

func BenchmarkMatch(b *testing.B) {
	r := New(decodeRoutes(b, `
routes:
  - name: new-leads
    filters:
      - exact: {type: com.helloclient.lead}
      - cesql: "bridgesource = 'helloclient'"
    sinks: [slack-sales, crm]
  - name: london-leads
    filters:
      - prefix: {type: com.helloclient.}
      - exact: {data.Address.City: London}
      - not: {exact: {data.Spam: true}}
    sinks: [crm, slack-uk]
  - name: helpcrunch-closed
    filters:
      - any: [{prefix: {type: com.helpcrunch.}}, {suffix: {subject: /messages}}]
      - exact: {data.data.chat.status: closed}
    sinks: [kafka-events]
  - name: everything
    sinks: [kafka-events, archive]
`))
	events := map[string]*event.Event{
		"lead":       parseEvent(b, leadJSON),
		"helpcrunch": parseEvent(b, helpcrunchJSON),
		"crisp":      parseEvent(b, crispJSON),
	}
	for _, name := range []string{"lead", "helpcrunch", "crisp"} {
		ev := events[name]
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				r.Match(ev)
			}
		})
	}
}

func TestMatchManyDataPaths(t *testing.T) {
	// More distinct paths than Match keeps on its stack, one of them twice.
	r := New(decodeRoutes(t, `
routes:
  - name: many
    filters:
      - exact: {data.Type: lead, data.SerialNumber: HC-8842, data.FirstName: Ada, data.LastName: Lovelace}
      - exact: {data.Email: ada@example.com, data.Score: 87, data.Budget: "1.50", data.Qualified: true}
      - exact: {data.Spam: false, data.Address.City: London, data.Address.Zip: SW1A 1AA, data.Tags.0: vip}
      - prefix: {data.FirstName: A}
    sinks: [s]
  - name: one-wrong
    filters:
      - exact: {data.Type: lead, data.SerialNumber: HC-8842, data.FirstName: Ada, data.LastName: Lovelace}
      - exact: {data.Email: ada@example.com, data.Score: 87, data.Budget: "1.50", data.Qualified: true}
      - exact: {data.Spam: false, data.Address.City: London, data.Address.Zip: SW1A 1AA, data.Tags.0: uk}
    sinks: [t]
`))
	if r.slots != 12 {
		t.Fatalf("%d slots, want 12 distinct data paths", r.slots)
	}
	routes, sinks := r.Match(parseEvent(t, leadJSON))
	if !slices.Equal(routes, []string{"many"}) || !slices.Equal(sinks, []string{"s"}) {
		t.Fatalf("Match = %q, %q", routes, sinks)
	}
}
