package tmpl

import (
	"encoding/binary"
	"sync"
	"text/template/parse"

	"github.com/cloudevents/sdk-go/v2/event"
)

// attrMemoSize bounds the renderings a template remembers; past it the
// memo starts over.
const attrMemoSize = 1024

// attrRef is one attribute a template reads: a context attribute by its
// View field name, or an extension (field "Extensions") by its name.
type attrRef struct {
	field string
	ext   string
}

// attrMemo remembers the renderings of a template that reads nothing but
// attributes, keyed by the values it reads.
type attrMemo struct {
	refs []attrRef
	mu   sync.Mutex
	m    map[string]string
}

// attributeRefs returns the attributes tree reads and true when it is
// nothing but text and actions that print one attribute or extension each
// ({{ .Type }}, {{ .Extensions.bridgesource }}): what it renders then
// depends on those values alone. Anything else (functions, pipelines,
// conditions, variables, the payload, the time) answers false.
func attributeRefs(tree *parse.Tree) ([]attrRef, bool) {
	if tree == nil || tree.Root == nil {
		return nil, false
	}
	var refs []attrRef
	for _, n := range tree.Root.Nodes {
		switch n := n.(type) {
		case *parse.TextNode:
		case *parse.ActionNode:
			p := n.Pipe
			if p == nil || p.IsAssign || len(p.Decl) > 0 || len(p.Cmds) != 1 || len(p.Cmds[0].Args) != 1 {
				return nil, false
			}
			f, ok := p.Cmds[0].Args[0].(*parse.FieldNode)
			if !ok {
				return nil, false
			}
			switch {
			case len(f.Ident) == 1 && attrField(f.Ident[0]):
				refs = append(refs, attrRef{field: f.Ident[0]})
			case len(f.Ident) == 2 && f.Ident[0] == "Extensions":
				refs = append(refs, attrRef{field: "Extensions", ext: f.Ident[1]})
			default:
				return nil, false
			}
		default:
			return nil, false
		}
	}
	return refs, len(refs) > 0
}

// attrField reports whether name is a View field holding a string
// attribute.
func attrField(name string) bool {
	switch name {
	case "ID", "Type", "Source", "Subject", "DataContentType", "SpecVersion":
		return true
	}
	return false
}

// value is what the View would hold for r: the attribute, or the extension
// when it is a string. present is false for a missing extension; ok is
// false for an extension that is not a string.
func (r attrRef) value(ev *event.Event) (v string, present, ok bool) {
	switch r.field {
	case "ID":
		return ev.ID(), true, true
	case "Type":
		return ev.Type(), true, true
	case "Source":
		return ev.Source(), true, true
	case "Subject":
		return ev.Subject(), true, true
	case "DataContentType":
		return ev.DataContentType(), true, true
	case "SpecVersion":
		return ev.SpecVersion(), true, true
	}
	exts := map[string]any(nil)
	if c, isV1 := ev.Context.(*event.EventContextV1); isV1 {
		exts = c.Extensions // what Extensions copies for the view
	} else {
		exts = ev.Extensions()
	}
	x, found := exts[r.ext]
	if !found {
		return "", false, true
	}
	s, isString := x.(string)
	return s, true, isString
}

// RenderAttributes renders t for ev from its memo, when t reads nothing but
// attributes and string extensions; ok is false otherwise.
func (t *Template) RenderAttributes(ev *event.Event) (out string, ok bool, err error) {
	if t == nil || t.memo == nil {
		return "", false, nil
	}
	memo := t.memo
	// Each value length-prefixed, so that no two lists of values share a
	// key whatever bytes they hold; a missing extension has no length.
	var buf [128]byte // most keys fit: no allocation to look one up
	key := buf[:0]
	for _, r := range memo.refs {
		v, present, isString := r.value(ev)
		if !isString {
			return "", false, nil
		}
		if !present {
			key = append(key, 0)
			continue
		}
		key = binary.AppendUvarint(append(key, 1), uint64(len(v)))
		key = append(key, v...)
	}
	memo.mu.Lock()
	out, hit := memo.m[string(key)]
	memo.mu.Unlock()
	if hit {
		return out, true, nil
	}
	out, err = t.Render(NewAttributesView(ev))
	if err != nil {
		return "", true, err
	}
	memo.mu.Lock()
	if len(memo.m) >= attrMemoSize {
		clear(memo.m)
	}
	memo.m[string(key)] = out
	memo.mu.Unlock()
	return out, true, nil
}
