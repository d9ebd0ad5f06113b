package router

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	cesql "github.com/cloudevents/sdk-go/sql/v2"
	cesqlerrors "github.com/cloudevents/sdk-go/sql/v2/errors"
	cesqlparser "github.com/cloudevents/sdk-go/sql/v2/parser"
	"github.com/cloudevents/sdk-go/v2/event"
	"gopkg.in/yaml.v3"

	"github.com/hookbridge/hookbridge/config"
)

// maxNodes bounds how many YAML nodes Decode visits, so that aliases that
// expand exponentially (or refer to their own ancestors) cannot stall it.
const maxNodes = 100_000

const dialectList = "all, any, cesql, exact, not, prefix, suffix"

// Decode compiles the sequence node of the routes: key. It records every
// problem on d at its line and column (an unknown key or filter dialect, a
// filter with no dialect or more than one, a CESQL expression that does not
// parse, a missing, empty or duplicate route name, a value of the wrong kind,
// a missing or empty sinks list) and returns one Route for each entry that is
// a mapping. When d has errors, routes with mistakes are still returned so
// that their sink references can be checked, but they match nothing.
func Decode(d *config.Decoder, node *yaml.Node) []Route {
	c := &compiler{
		d:           d,
		active:      map[*yaml.Node]bool{},
		reported:    map[reported]bool{},
		expressions: map[*yaml.Node]cesql.Expression{},
	}
	node = c.resolve(node)
	if node == nil || node.Kind == 0 || isNull(node) {
		return nil // no routes: key, or nothing under it
	}
	if !c.visit(node) {
		return nil
	}
	if node.Kind != yaml.SequenceNode {
		d.Errorf(node, "routes must be a list of routes, found %s", describe(node))
		return nil
	}
	var routes []Route
	names := map[string]*yaml.Node{}
	for i, item := range node.Content {
		if route, ok := c.route(item, i, names); ok {
			routes = append(routes, route)
		}
		if c.exhausted {
			break
		}
	}
	return routes
}

type compiler struct {
	d           *config.Decoder
	active      map[*yaml.Node]bool // the filters being compiled, to catch alias cycles
	reported    map[reported]bool
	visited     int
	exhausted   bool
	expressions map[*yaml.Node]cesql.Expression // CESQL parsed per node, for aliases
}

// errorf records an error at n, once: a node reached again through an
// alias is not reported twice.
func (c *compiler) errorf(n *yaml.Node, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	key := reported{n, msg}
	if c.reported[key] {
		return
	}
	c.reported[key] = true
	c.d.Errorf(n, "%s", msg)
}

type reported struct {
	node *yaml.Node
	msg  string
}

// visit counts a node against maxNodes and reports false once it is spent.
func (c *compiler) visit(n *yaml.Node) bool {
	if c.exhausted {
		return false
	}
	c.visited++
	if c.visited > maxNodes {
		c.exhausted = true
		c.errorf(n, "routes: too large: more than %d nodes once aliases are expanded", maxNodes)
		return false
	}
	return true
}

// resolve follows aliases and unwraps a document node.
func (c *compiler) resolve(n *yaml.Node) *yaml.Node {
	for n != nil && (n.Kind == yaml.AliasNode || n.Kind == yaml.DocumentNode) {
		if !c.visit(n) {
			return nil
		}
		if n.Kind == yaml.AliasNode {
			n = n.Alias
		} else if len(n.Content) == 1 {
			n = n.Content[0]
		} else {
			return nil
		}
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if isNull(n) {
			return "nothing"
		}
		if len(n.Value) > 40 {
			cut := 37
			for cut > 0 && !utf8.RuneStart(n.Value[cut]) {
				cut--
			}
			return strconv.Quote(n.Value[:cut] + "...")
		}
		return strconv.Quote(n.Value)
	}
	return "an unexpected node"
}

// mappingPairs returns the key and value nodes of a mapping, recording an
// error for each key that is not a plain scalar or appears twice.
func (c *compiler) mappingPairs(n *yaml.Node, label string) (keys, values []*yaml.Node) {
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := c.resolve(n.Content[i])
		if k == nil || !c.visit(k) {
			return keys, values
		}
		if k.Kind != yaml.ScalarNode {
			c.errorf(k, "%s: a key must be a plain name, found %s", label, describe(k))
			continue
		}
		if seen[k.Value] {
			c.errorf(k, "%s: duplicate key %q", label, k.Value)
			continue
		}
		seen[k.Value] = true
		keys = append(keys, k)
		values = append(values, n.Content[i+1])
	}
	return keys, values
}

// route compiles one entry of the routes list; ok is false when it is not a
// mapping.
func (c *compiler) route(n *yaml.Node, index int, names map[string]*yaml.Node) (route Route, ok bool) {
	n = c.resolve(n)
	if n == nil || !c.visit(n) {
		return Route{}, false
	}
	if n.Kind != yaml.MappingNode {
		c.errorf(n, "routes: each route must be a mapping with name, filters and sinks, found %s", describe(n))
		return Route{}, false
	}
	label := fmt.Sprintf("route #%d", index+1)
	keys, values := c.mappingPairs(n, label)
	var nameNode, filtersNode, sinksNode *yaml.Node
	var unknown []*yaml.Node
	for i, k := range keys {
		switch k.Value {
		case "name":
			nameNode = values[i]
		case "filters":
			filtersNode = values[i]
		case "sinks":
			sinksNode = values[i]
		default:
			unknown = append(unknown, k)
		}
	}

	valid := true
	if nameNode == nil {
		c.errorf(n, "%s: name is required", label)
		valid = false
	} else if name, nameOK := c.name(nameNode, label); nameOK {
		route.Name = name
		label = fmt.Sprintf("route %q", name)
		if first, dup := names[name]; dup {
			c.errorf(c.resolve(nameNode), "%s: duplicate route name (first at line %d)", label, first.Line)
			valid = false
		} else {
			names[name] = c.resolve(nameNode)
		}
	} else {
		valid = false
	}
	for _, k := range unknown {
		c.errorf(k, "%s: unknown key %q (known keys: filters, name, sinks)", label, k.Value)
		valid = false
	}

	if filtersNode != nil {
		filters, filtersOK := c.filterList(filtersNode, label, "filters", true)
		route.filters = filters
		valid = valid && filtersOK
	}

	if sinksNode == nil {
		c.errorf(n, "%s: sinks is required", label)
		valid = false
	} else {
		sinksOK := c.sinks(sinksNode, label, &route)
		valid = valid && sinksOK
	}

	if !valid {
		route.filters = []filter{{kind: kindNever}}
	}
	return route, true
}

// name decodes a route name: a non-empty string.
func (c *compiler) name(n *yaml.Node, label string) (string, bool) {
	n = c.resolve(n)
	if n == nil || !c.visit(n) {
		return "", false
	}
	if n.Kind != yaml.ScalarNode || isNull(n) {
		c.errorf(n, "%s: name must be a string, found %s", label, describe(n))
		return "", false
	}
	if strings.TrimSpace(n.Value) == "" {
		c.errorf(n, "%s: name must not be empty", label)
		return "", false
	}
	return n.Value, true
}

// sinks decodes a route's sinks list into route.Sinks and route.sinkNodes.
func (c *compiler) sinks(n *yaml.Node, label string, route *Route) bool {
	n = c.resolve(n)
	if n == nil || !c.visit(n) {
		return false
	}
	if n.Kind != yaml.SequenceNode {
		c.errorf(n, "%s: sinks must be a list of sink names, found %s", label, describe(n))
		return false
	}
	if len(n.Content) == 0 {
		c.errorf(n, "%s: sinks must name at least one sink", label)
		return false
	}
	ok := true
	for _, item := range n.Content {
		item = c.resolve(item)
		if item == nil || !c.visit(item) {
			return false
		}
		if item.Kind != yaml.ScalarNode || isNull(item) {
			c.errorf(item, "%s: a sink must be named by a string, found %s", label, describe(item))
			ok = false
			continue
		}
		if strings.TrimSpace(item.Value) == "" {
			c.errorf(item, "%s: a sink name must not be empty", label)
			ok = false
			continue
		}
		if slices.Contains(route.Sinks, item.Value) {
			c.errorf(item, "%s: sink %q is listed twice", label, item.Value)
			ok = false
			continue
		}
		route.Sinks = append(route.Sinks, item.Value)
		route.sinkNodes = append(route.sinkNodes, item)
	}
	return ok
}

// filterList compiles a list of filters: a route's filters (which may be
// empty) or the operand of all or any (which may not).
func (c *compiler) filterList(n *yaml.Node, label, what string, emptyOK bool) ([]filter, bool) {
	n = c.resolve(n)
	if n == nil || !c.visit(n) {
		return nil, false
	}
	if emptyOK && isNull(n) {
		return nil, true
	}
	if n.Kind != yaml.SequenceNode {
		c.errorf(n, "%s: %s must be a list of filters, found %s", label, what, describe(n))
		return nil, false
	}
	if len(n.Content) == 0 && !emptyOK {
		c.errorf(n, "%s: %s needs at least one filter", label, what)
		return nil, false
	}
	filters := make([]filter, 0, len(n.Content))
	ok := true
	for _, item := range n.Content {
		f, itemOK := c.filter(item, label)
		filters = append(filters, f)
		ok = ok && itemOK
		if c.exhausted {
			return filters, false
		}
	}
	return filters, ok
}

// filter compiles one filter: a mapping with exactly one dialect key.
func (c *compiler) filter(n *yaml.Node, label string) (filter, bool) {
	never := filter{kind: kindNever}
	n = c.resolve(n)
	if n == nil || !c.visit(n) {
		return never, false
	}
	if n.Kind != yaml.MappingNode {
		c.errorf(n, "%s: a filter must be a mapping with one of the keys %s; found %s", label, dialectList, describe(n))
		return never, false
	}
	if c.active[n] {
		c.errorf(n, "%s: this filter refers to itself through an alias", label)
		return never, false
	}
	c.active[n] = true
	defer delete(c.active, n)
	keys, values := c.mappingPairs(n, label)
	if len(keys) == 0 {
		if len(n.Content) == 0 {
			c.errorf(n, "%s: empty filter: give one of %s", label, dialectList)
		}
		return never, false
	}
	var compiled filter
	ok := true
	for i, k := range keys {
		if i > 0 {
			c.errorf(k, "%s: a filter takes exactly one dialect, found %s and %s; put each in its own filter", label, keys[0].Value, k.Value)
			ok = false
		}
		f, dialectOK := c.dialect(k, values[i], label)
		if i == 0 {
			compiled = f
		}
		ok = ok && dialectOK
		if c.exhausted {
			return never, false
		}
	}
	if !ok {
		return never, false
	}
	return compiled, true
}

// dialect compiles the body of one dialect key.
func (c *compiler) dialect(key, body *yaml.Node, label string) (filter, bool) {
	switch key.Value {
	case "exact":
		return c.attributeTests(kindExact, key.Value, body, label)
	case "prefix":
		return c.attributeTests(kindPrefix, key.Value, body, label)
	case "suffix":
		return c.attributeTests(kindSuffix, key.Value, body, label)
	case "all", "any":
		kind := kindAll
		if key.Value == "any" {
			kind = kindAny
		}
		children, ok := c.filterList(body, label, key.Value, false)
		return filter{kind: kind, children: children}, ok
	case "not":
		n := c.resolve(body)
		if n != nil && n.Kind == yaml.SequenceNode {
			c.errorf(n, "%s: not takes one filter, found a list; to negate several, wrap them in all or any", label)
			return filter{kind: kindNever}, false
		}
		child, ok := c.filter(body, label)
		return filter{kind: kindNot, children: []filter{child}}, ok
	case "cesql":
		return c.cesql(body, label)
	default:
		c.errorf(key, "%s: unknown filter dialect %q (known dialects: %s)", label, key.Value, dialectList)
		return filter{kind: kindNever}, false
	}
}

// attributeTests compiles the mapping of attribute names to values of an
// exact, prefix or suffix filter.
func (c *compiler) attributeTests(kind filterKind, dialect string, body *yaml.Node, label string) (filter, bool) {
	n := c.resolve(body)
	if n == nil || !c.visit(n) {
		return filter{kind: kindNever}, false
	}
	if n.Kind != yaml.MappingNode {
		c.errorf(n, "%s: %s must map attribute names to values, found %s", label, dialect, describe(n))
		return filter{kind: kindNever}, false
	}
	if len(n.Content) == 0 {
		c.errorf(n, "%s: %s needs at least one attribute", label, dialect)
		return filter{kind: kindNever}, false
	}
	keys, values := c.mappingPairs(n, label)
	ok := len(keys)*2 == len(n.Content)
	f := filter{kind: kind, tests: make([]attributeTest, 0, len(keys))}
	for i, k := range keys {
		attr, problem := parseAttribute(k.Value)
		if problem != "" {
			c.errorf(k, "%s: %s: %s", label, dialect, problem)
			ok = false
		}
		value, valueOK := c.attributeValue(values[i], label, dialect, k.Value)
		if !valueOK {
			ok = false
			continue
		}
		if value == "" && kind != kindExact {
			c.errorf(c.resolve(values[i]), "%s: %s value for %s must not be empty", label, dialect, k.Value)
			ok = false
			continue
		}
		f.tests = append(f.tests, attributeTest{attr: attr, value: value})
	}
	if !ok {
		return filter{kind: kindNever}, false
	}
	return f, true
}

// attributeValue decodes the value an attribute is compared with. Strings
// are taken as written; a YAML number or boolean is taken in the spelling
// JSON gives it, and a number JSON would spell differently is an error.
func (c *compiler) attributeValue(n *yaml.Node, label, dialect, attr string) (string, bool) {
	n = c.resolve(n)
	if n == nil || !c.visit(n) {
		return "", false
	}
	if n.Kind != yaml.ScalarNode || isNull(n) {
		c.errorf(n, "%s: %s value for %s must be a string, found %s", label, dialect, attr, describe(n))
		return "", false
	}
	switch n.Tag {
	case "!!bool":
		return strings.ToLower(n.Value), true
	case "!!int", "!!float":
		if !isJSONNumber(n.Value) {
			c.errorf(n, "%s: %s value %s for %s is a number JSON spells differently; quote it to compare it as text", label, dialect, n.Value, attr)
			return "", false
		}
	}
	return n.Value, true
}

func isJSONNumber(s string) bool {
	return s != "" && (s[0] == '-' || (s[0] >= '0' && s[0] <= '9')) && json.Valid([]byte(s))
}

// parseAttribute compiles an attribute name, or explains what is wrong
// with it.
func parseAttribute(name string) (attribute, string) {
	if name == "" {
		return attribute{}, "empty attribute name"
	}
	if name == "data" {
		return attribute{}, `"data" is the whole payload; name a field inside it, as data.<field>`
	}
	if rest, isData := strings.CutPrefix(name, "data."); isData {
		parts := strings.Split(rest, ".")
		path := make([]pathSegment, len(parts))
		for i, p := range parts {
			if p == "" {
				return attribute{}, fmt.Sprintf("data path %q has an empty segment", name)
			}
			path[i] = pathSegment{key: p, index: arrayIndex(p)}
		}
		return attribute{name: name, kind: attrData, path: path}, ""
	}
	for i := 0; i < len(name); i++ {
		ch := name[i]
		if (ch < 'a' || ch > 'z') && (ch < '0' || ch > '9') {
			return attribute{}, fmt.Sprintf("%q is not a CloudEvents attribute name (lower-case letters and digits only) nor a data.<path>", name)
		}
	}
	return attribute{name: name, kind: contextAttributes[name]}, ""
}

// arrayIndex returns the array index a path segment spells, or -1.
func arrayIndex(s string) int {
	if s == "" || len(s) > 9 || (len(s) > 1 && s[0] == '0') {
		return -1
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return -1
		}
		n = n*10 + int(s[i]-'0')
	}
	return n
}

// cesql parses a CloudEvents SQL expression once, at load time.
func (c *compiler) cesql(body *yaml.Node, label string) (filter, bool) {
	n := c.resolve(body)
	if n == nil || !c.visit(n) {
		return filter{kind: kindNever}, false
	}
	if n.Kind != yaml.ScalarNode || isNull(n) {
		c.errorf(n, "%s: cesql must be an expression string, found %s", label, describe(n))
		return filter{kind: kindNever}, false
	}
	if strings.TrimSpace(n.Value) == "" {
		c.errorf(n, "%s: cesql expression must not be empty", label)
		return filter{kind: kindNever}, false
	}
	if expr, done := c.expressions[n]; done {
		if expr == nil {
			return filter{kind: kindNever}, false // already reported
		}
		return filter{kind: kindCESQL, expr: expr}, true
	}
	expr, err := parseCESQL(n.Value)
	if err != nil {
		c.expressions[n] = nil
		c.errorf(n, "%s: invalid CESQL expression %q: %v", label, n.Value, err)
		return filter{kind: kindNever}, false
	}
	c.expressions[n] = expr
	return filter{kind: kindCESQL, expr: expr}, true
}

// parseCESQL parses expr, turning a panic in the parser into an error.
func parseCESQL(text string) (expr cesql.Expression, err error) {
	defer func() {
		if r := recover(); r != nil {
			expr, err = nil, errors.New("the expression is incomplete or malformed")
		}
	}()
	if errs := cesqlSyntaxErrors(text); len(errs) > 0 {
		return nil, fmt.Errorf("syntax error at %s", strings.Join(errs, "; "))
	}
	expr, err = cesqlparser.Parse(text)
	if err == nil && expr == nil {
		err = fmt.Errorf("no expression")
	}
	if err != nil {
		return nil, err
	}
	if err := probeCESQL(expr); err != nil {
		return nil, err
	}
	return expr, nil
}

// probeCESQL evaluates expr once against an event with every required
// attribute, to refuse at load what could never match: a function CESQL
// does not have, or an expression that yields no true or false (a filter
// of "type" alone). Errors that depend on the event (a missing extension,
// a value that does not cast) are left to the events.
func probeCESQL(expr cesql.Expression) error {
	ev := event.New()
	ev.SetID("probe")
	ev.SetSource("urn:hookbridge:probe")
	ev.SetType("probe")
	v, err := expr.Evaluate(ev)
	switch {
	case cesqlerrors.IsMissingFunctionError(err):
		return fmt.Errorf("no such function: %v", err)
	case err == nil:
		if _, ok := v.(bool); !ok {
			return fmt.Errorf("it yields a %T, not true or false: a filter needs a condition, such as type = 'com.example.x'", v)
		}
	}
	return nil
}
