package router

import (
	cesql "github.com/cloudevents/sdk-go/sql/v2"
	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"
)

// filterKind is the dialect of one compiled filter.
type filterKind uint8

const (
	kindExact filterKind = iota + 1
	kindPrefix
	kindSuffix
	kindAll
	kindAny
	kindNot
	kindCESQL
	kindNever // stands in for a filter that failed to compile
)

// filter is one compiled filter expression. It is a concrete type rather than
// an interface so that matching keeps its per-event state on the stack.
type filter struct {
	kind     filterKind
	tests    []attributeTest // exact, prefix, suffix
	children []filter        // all, any; not has exactly one
	expr     cesql.Expression
}

// attributeTest compares one attribute with one value.
type attributeTest struct {
	attr  attribute
	value string
}

// contextAttribute identifies a CloudEvents context attribute, or says that
// an attribute is an extension or a data path.
type contextAttribute uint8

const (
	attrExtension contextAttribute = iota
	attrID
	attrSource
	attrSpecVersion
	attrType
	attrSubject
	attrDataContentType
	attrDataSchema
	attrTime
	attrData // data.<path>
)

var contextAttributes = map[string]contextAttribute{
	"id":              attrID,
	"source":          attrSource,
	"specversion":     attrSpecVersion,
	"type":            attrType,
	"subject":         attrSubject,
	"datacontenttype": attrDataContentType,
	"dataschema":      attrDataSchema,
	"time":            attrTime,
}

// attribute is a compiled attribute name.
type attribute struct {
	name string // as written, e.g. "type", "bridgesource", "data.customer.email"
	kind contextAttribute
	path []pathSegment // for attrData
	slot int           // for attrData: where Router.New put its value
}

// pathSegment is one step of a data path: an object key, and the array index
// the same text spells (or -1).
type pathSegment struct {
	key   string
	index int
}

// matchState is what one Match call knows about its event. It lives on the
// stack of Match; the payload is scanned on first use.
type matchState struct {
	ev      *event.Event
	paths   *pathNode // the router's data paths
	slots   int       // how many distinct data paths there are
	scanned bool
	valid   bool         // the payload is one JSON value
	small   [8]dataValue // the values of the data paths, when few
	large   []dataValue  // the values of the data paths, when many
}

// dataValue returns the value of the data path in slot.
func (s *matchState) dataValue(slot int) ([]byte, bool) {
	if !s.scanned {
		s.scanned = true
		var values []dataValue
		if s.slots > len(s.small) {
			s.large = make([]dataValue, s.slots)
			values = s.large
		} else {
			values = s.small[:s.slots]
		}
		s.valid = s.paths != nil && scanPayload(s.ev.Data(), s.paths, values)
	}
	if !s.valid || slot < 0 || slot >= s.slots {
		return nil, false
	}
	values := s.small[:]
	if s.large != nil {
		values = s.large
	}
	if v := &values[slot]; v.found {
		return v.bytes(s.ev.Data()), true
	}
	return nil, false
}

func (f *filter) match(s *matchState) bool {
	switch f.kind {
	case kindExact, kindPrefix, kindSuffix:
		for i := range f.tests {
			t := &f.tests[i]
			var ok bool
			if t.attr.kind == attrData {
				raw, found := s.dataValue(t.attr.slot)
				ok = found && compareBytes(f.kind, raw, t.value)
			} else {
				value, found := t.attr.lookup(s)
				ok = found && compare(f.kind, value, t.value)
			}
			if !ok {
				return false
			}
		}
		return true
	case kindAll:
		for i := range f.children {
			if !f.children[i].match(s) {
				return false
			}
		}
		return true
	case kindAny:
		for i := range f.children {
			if f.children[i].match(s) {
				return true
			}
		}
		return false
	case kindNot:
		return !f.children[0].match(s)
	case kindCESQL:
		return evaluateCESQL(f.expr, s.ev)
	default:
		return false
	}
}

// compare applies an exact, prefix or suffix test.
func compare(kind filterKind, value, want string) bool {
	switch kind {
	case kindExact:
		return value == want
	case kindPrefix:
		return len(value) >= len(want) && value[:len(want)] == want
	default:
		return len(value) >= len(want) && value[len(value)-len(want):] == want
	}
}

// compareBytes is compare for a value in the payload, without copying it.
func compareBytes(kind filterKind, value []byte, want string) bool {
	switch kind {
	case kindExact:
		return string(value) == want
	case kindPrefix:
		return len(value) >= len(want) && string(value[:len(want)]) == want
	default:
		return len(value) >= len(want) && string(value[len(value)-len(want):]) == want
	}
}

// evaluateCESQL reports whether expr is the boolean true for ev. A panic in
// the expression library counts as no match rather than ending the process.
func evaluateCESQL(expr cesql.Expression, ev *event.Event) (matched bool) {
	defer func() {
		if recover() != nil {
			matched = false
		}
	}()
	v, err := expr.Evaluate(*ev)
	if err != nil {
		return false
	}
	b, ok := v.(bool)
	return ok && b
}

// lookup returns the string value of the attribute in the event, and whether
// the event has it.
func (a *attribute) lookup(s *matchState) (string, bool) {
	ctx := s.ev.Context
	if ctx == nil {
		return "", false
	}
	switch a.kind {
	case attrID:
		return present(ctx.GetID())
	case attrSource:
		return present(ctx.GetSource())
	case attrSpecVersion:
		return present(ctx.GetSpecVersion())
	case attrType:
		return present(ctx.GetType())
	case attrSubject:
		return present(ctx.GetSubject())
	case attrDataContentType:
		return present(ctx.GetDataContentType())
	case attrDataSchema:
		return present(ctx.GetDataSchema())
	case attrTime:
		t := ctx.GetTime()
		if t.IsZero() {
			return "", false
		}
		return types.FormatTime(t), true
	default:
		return extension(ctx, a.name)
	}
}

func present(s string) (string, bool) { return s, s != "" }

// extension returns the canonical string form of an extension attribute. It
// reads the context's own map where it can: GetExtensions copies it.
func extension(ctx event.EventContext, name string) (string, bool) {
	var v any
	var ok bool
	switch c := ctx.(type) {
	case *event.EventContextV1:
		v, ok = c.Extensions[name]
	default:
		v, ok = ctx.GetExtensions()[name]
	}
	if !ok || v == nil {
		return "", false
	}
	if str, isString := v.(string); isString {
		return str, true
	}
	str, err := types.Format(v)
	if err != nil {
		return "", false
	}
	return str, true
}
