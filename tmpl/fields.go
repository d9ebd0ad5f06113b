package tmpl

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
	"text/template/parse"
)

// viewFields are the names a template may read of the event, the View's
// fields and methods.
var viewFields = func() map[string]bool {
	m := map[string]bool{}
	t := reflect.TypeFor[*View]()
	for i := range t.NumMethod() {
		m[t.Method(i).Name] = true
	}
	for i := range t.Elem().NumField() {
		m[t.Elem().Field(i).Name] = true
	}
	return m
}()

// checkFields reports a field of the event that no event has ({{ .Nope }},
// {{ .data.Email }} for .Data.Email) and a template called that is not
// defined: mistakes that would fail every event's rendering, found at load.
// Fields below the event's own (.Data.X, .Extensions.y) depend on the
// payload and are not checked; neither is what dot means inside with,
// range and defined templates.
func checkFields(t *parse.Tree, defined func(name string) bool) error {
	var errs []string
	var walk func(n parse.Node, dotIsView bool)
	field := func(ident []string, dotIsView bool) {
		if dotIsView && len(ident) > 0 && !viewFields[ident[0]] {
			errs = append(errs, fmt.Sprintf("an event has no field %s (it has %s)", ident[0], fieldList()))
		}
	}
	walkPipe := func(p *parse.PipeNode, dotIsView bool) {
		if p == nil {
			return
		}
		for _, c := range p.Cmds {
			for _, a := range c.Args {
				walk(a, dotIsView)
			}
		}
	}
	walk = func(n parse.Node, dotIsView bool) {
		switch n := n.(type) {
		case *parse.ListNode:
			if n != nil {
				for _, c := range n.Nodes {
					walk(c, dotIsView)
				}
			}
		case *parse.ActionNode:
			walkPipe(n.Pipe, dotIsView)
		case *parse.PipeNode:
			walkPipe(n, dotIsView)
		case *parse.FieldNode:
			field(n.Ident, dotIsView)
		case *parse.ChainNode:
			walk(n.Node, dotIsView)
		case *parse.VariableNode:
			if len(n.Ident) > 1 && n.Ident[0] == "$" {
				field(n.Ident[1:], true) // $ is always the event
			}
		case *parse.IfNode:
			walkPipe(n.Pipe, dotIsView)
			walk(n.List, dotIsView)
			walk(n.ElseList, dotIsView)
		case *parse.WithNode:
			walkPipe(n.Pipe, dotIsView)
			walk(n.List, false) // dot is the pipeline's value
			walk(n.ElseList, dotIsView)
		case *parse.RangeNode:
			walkPipe(n.Pipe, dotIsView)
			walk(n.List, false)
			walk(n.ElseList, dotIsView)
		case *parse.TemplateNode:
			if !defined(n.Name) {
				errs = append(errs, fmt.Sprintf("no template named %q is defined", n.Name))
			}
			walkPipe(n.Pipe, dotIsView)
		}
	}
	walk(t.Root, true)
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

// fieldList names the event's fields for an error, .Event (the event
// itself, for what the others do not show) aside.
func fieldList() string {
	var names []string
	for n := range viewFields {
		if n != "Event" {
			names = append(names, "."+n)
		}
	}
	sort.Strings(names)
	return strings.Join(names, " ")
}
