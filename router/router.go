package router

import (
	"slices"

	"github.com/cloudevents/sdk-go/v2/event"
	"gopkg.in/yaml.v3"
)

// Route is one compiled route. A Route with no filters matches every event.
type Route struct {
	// Name identifies the route in logs, metrics and the routes test command.
	Name string
	// Sinks are the names of the sinks a matching event is delivered to.
	Sinks []string

	filters   []filter     // every one must match
	sinkNodes []*yaml.Node // the YAML node of each entry of Sinks, when decoded
}

// Router holds compiled routes. It is immutable and safe for concurrent use.
type Router struct {
	routes []Route
	paths  *pathNode // the trie of every data path the routes use
	slots  int       // how many distinct data paths there are
	sinks  int       // how many distinct sinks the routes name
}

// New returns a Router over routes, which are matched in the order given.
func New(routes []Route) *Router {
	r := &Router{routes: make([]Route, len(routes))}
	var dataAttrs []*attribute
	distinct := map[string]bool{}
	for i, route := range routes {
		for _, sink := range route.Sinks {
			distinct[sink] = true
		}
		route.Sinks = slices.Clone(route.Sinks)
		route.sinkNodes = slices.Clone(route.sinkNodes)
		route.filters = cloneFilters(route.filters)
		r.routes[i] = route
		for j := range route.filters {
			dataAttrs = route.filters[j].appendDataAttributes(dataAttrs)
		}
	}
	r.sinks = len(distinct)
	if len(dataAttrs) > 0 {
		paths := make([][]pathSegment, len(dataAttrs))
		for i, a := range dataAttrs {
			paths[i] = a.path
		}
		var slots []int
		r.paths, slots = pathTrie(paths)
		for i, a := range dataAttrs {
			a.slot = slots[i]
			r.slots = max(r.slots, a.slot+1)
		}
	}
	return r
}

// cloneFilters deep-copies filters, so that New can number their data paths
// without touching the caller's routes.
func cloneFilters(filters []filter) []filter {
	if filters == nil {
		return nil
	}
	out := make([]filter, len(filters))
	for i, f := range filters {
		f.tests = slices.Clone(f.tests)
		f.children = cloneFilters(f.children)
		out[i] = f
	}
	return out
}

// appendDataAttributes appends the data.<path> attributes f tests.
func (f *filter) appendDataAttributes(attrs []*attribute) []*attribute {
	for i := range f.tests {
		if f.tests[i].attr.kind == attrData {
			attrs = append(attrs, &f.tests[i].attr)
		}
	}
	for i := range f.children {
		attrs = f.children[i].appendDataAttributes(attrs)
	}
	return attrs
}

// Routes returns the router's routes in order.
func (r *Router) Routes() []Route {
	return slices.Clone(r.routes)
}

// Match returns the names of the routes that match ev and the union of their
// sinks without duplicates, both in route order. An event no route matches
// gives nil, nil.
func (r *Router) Match(ev *event.Event) (routes []string, sinks []string) {
	if ev == nil {
		return nil, nil
	}
	state := matchState{ev: ev, paths: r.paths, slots: r.slots}
	for i := range r.routes {
		route := &r.routes[i]
		if !route.matches(&state) {
			continue
		}
		if routes == nil {
			routes = make([]string, 0, min(len(r.routes)-i, 16))
			sinks = make([]string, 0, r.sinks)
		}
		routes = append(routes, route.Name)
		for _, sink := range route.Sinks {
			if !slices.Contains(sinks, sink) {
				sinks = append(sinks, sink)
			}
		}
	}
	return routes, sinks
}

func (r *Route) matches(s *matchState) bool {
	for i := range r.filters {
		if !r.filters[i].match(s) {
			return false
		}
	}
	return true
}

// SinkRef is one reference from a route to a sink, with the YAML node that
// names the sink (nil for routes not made by Decode), so that a loader can
// report a sink that does not exist at its line and column.
type SinkRef struct {
	Route string
	Sink  string
	Node  *yaml.Node
}

// SinkRefs lists every sink reference of routes, in order.
func SinkRefs(routes []Route) []SinkRef {
	var refs []SinkRef
	for _, r := range routes {
		for i, sink := range r.Sinks {
			var node *yaml.Node
			if i < len(r.sinkNodes) {
				node = r.sinkNodes[i]
			}
			refs = append(refs, SinkRef{Route: r.Name, Sink: sink, Node: node})
		}
	}
	return refs
}
