package kafka

import (
	"text/template"
	"text/template/parse"

	"github.com/hookbridge/hookbridge/tmpl"
)

// templateNeedsData reports whether t may read the event's payload: whether
// it names .Data or .Event, or hands the whole view (a bare dot or $) to
// something. Rendering the topic and key is then done on a view whose payload
// was never decoded, which for "webhooks.{{ .Extensions.bridgesource }}"
// saves decoding every webhook body. When in doubt the answer is true.
func templateNeedsData(t *tmpl.Template) bool {
	if t.IsConstant() {
		return false
	}
	parsed, err := template.New("").Funcs(tmpl.FuncMap()).Parse(t.String())
	if err != nil {
		return true
	}
	for _, tt := range parsed.Templates() {
		if tt.Tree != nil && nodeNeedsData(tt.Tree.Root) {
			return true
		}
	}
	return false
}

func nodeNeedsData(n parse.Node) bool {
	switch n := n.(type) {
	case nil:
		return false
	case *parse.DotNode:
		return true
	case *parse.FieldNode:
		return len(n.Ident) > 0 && (n.Ident[0] == "Data" || n.Ident[0] == "Event")
	case *parse.VariableNode:
		// $ is the view; any other variable got its value from a pipeline
		// that is checked where it is declared.
		return n.Ident[0] == "$" && (len(n.Ident) == 1 || n.Ident[1] == "Data" || n.Ident[1] == "Event")
	case *parse.ChainNode:
		return nodeNeedsData(n.Node)
	case *parse.ListNode:
		if n == nil {
			return false
		}
		for _, c := range n.Nodes {
			if nodeNeedsData(c) {
				return true
			}
		}
	case *parse.ActionNode:
		return nodeNeedsData(n.Pipe)
	case *parse.PipeNode:
		if n == nil {
			return false
		}
		for _, c := range n.Cmds {
			if nodeNeedsData(c) {
				return true
			}
		}
	case *parse.CommandNode:
		for _, a := range n.Args {
			if nodeNeedsData(a) {
				return true
			}
		}
	case *parse.IfNode:
		return nodeNeedsData(n.Pipe) || nodeNeedsData(n.List) || nodeNeedsData(n.ElseList)
	case *parse.RangeNode:
		return nodeNeedsData(n.Pipe) || nodeNeedsData(n.List) || nodeNeedsData(n.ElseList)
	case *parse.WithNode:
		return nodeNeedsData(n.Pipe) || nodeNeedsData(n.List) || nodeNeedsData(n.ElseList)
	case *parse.TemplateNode:
		// A call passes its pipeline as the callee's dot.
		return nodeNeedsData(n.Pipe)
	}
	return false
}
