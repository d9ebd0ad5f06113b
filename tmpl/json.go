package tmpl

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"

	"gopkg.in/yaml.v3"
)

// JSON is a YAML tree (mappings, lists, scalars) whose string leaves are
// templates; it renders to valid JSON whatever the event contains, because
// each leaf is rendered and then encoded as a JSON string. A leaf that is
// exactly one action ending in "| toJson" (or "| toRawJson") is inserted as
// the JSON it renders, so whole objects and numbers can be passed through.
type JSON struct {
	root jsonNode
}

type jsonNode struct {
	kind  yaml.Kind
	keys  []string
	vals  []jsonNode
	tmpl  *Template
	raw   bool   // leaf inserted as JSON it renders to
	lit   []byte // non-string scalar (number, bool, null) as JSON
	isSet bool
}

// UnmarshalYAML parses every leaf template at load time. Every mistake is
// returned, joined, each a *NodeError naming the node it is at.
func (j *JSON) UnmarshalYAML(n *yaml.Node) error {
	var errs []error
	root := buildJSONNode(n, "", &jsonBuild{within: map[*yaml.Node]bool{}}, &errs)
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	j.root = root
	return nil
}

// NodeError is a mistake at one node of a YAML tree a JSON is built from:
// the config decoder reports it at that node's line and column.
type NodeError struct {
	Node *yaml.Node
	Err  error
}

func (e *NodeError) Error() string { return e.Err.Error() }
func (e *NodeError) Unwrap() error { return e.Err }

// YAMLNode is the node the mistake is at.
func (e *NodeError) YAMLNode() *yaml.Node { return e.Node }

// IsZero reports whether no body was given.
func (j *JSON) IsZero() bool { return j == nil || !j.root.isSet }

// maxJSONNodes bounds the tree a body or blocks may build: aliases of
// aliases multiply a few lines of YAML into millions of templates.
const maxJSONNodes = 100_000

// jsonBuild is what buildJSONNode keeps across the tree.
type jsonBuild struct {
	within map[*yaml.Node]bool // the mappings and lists being built: an alias back to one makes the tree endless
	nodes  int                 // nodes built so far, up to maxJSONNodes
}

// buildJSONNode builds the tree at n, adding each mistake to errs; key is
// the mapping key n is the value of, if any, for the mistake's words.
func buildJSONNode(n *yaml.Node, key string, b *jsonBuild, errs *[]error) jsonNode {
	blame := func(at *yaml.Node, err error) {
		if key != "" {
			err = fmt.Errorf("%s: %w", key, err)
		}
		*errs = append(*errs, &NodeError{Node: at, Err: err})
	}
	at := n
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	out := jsonNode{kind: n.Kind, isSet: true}
	if b.nodes++; b.nodes == maxJSONNodes+1 {
		blame(at, fmt.Errorf("the value is over %d nodes once its aliases are followed", maxJSONNodes))
	}
	if b.nodes > maxJSONNodes {
		return out
	}
	if n.Kind == yaml.MappingNode || n.Kind == yaml.SequenceNode {
		if b.within[n] {
			blame(at, fmt.Errorf("the value contains itself (through an alias or a merge)"))
			return out
		}
		b.within[n] = true
		defer delete(b.within, n)
	}
	switch n.Kind {
	case yaml.MappingNode:
		seen := make(map[string]bool, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			// JSON has no merge keys, and a key twice would be sent twice.
			switch k := n.Content[i]; {
			case k.Tag == "!!merge":
				*errs = append(*errs, &NodeError{Node: k, Err: fmt.Errorf("merge keys (<<) are not supported here: write the keys out")})
				continue
			case seen[k.Value]:
				*errs = append(*errs, &NodeError{Node: k, Err: fmt.Errorf("duplicate key %q", k.Value)})
				continue
			}
			seen[n.Content[i].Value] = true
			v := buildJSONNode(n.Content[i+1], n.Content[i].Value, b, errs)
			out.keys = append(out.keys, n.Content[i].Value)
			out.vals = append(out.vals, v)
		}
	case yaml.SequenceNode:
		for _, c := range n.Content {
			out.vals = append(out.vals, buildJSONNode(c, key, b, errs))
		}
	case yaml.ScalarNode:
		if n.Tag == "!!str" || n.Tag == "" {
			t, err := Parse(n.Value)
			if err != nil {
				blame(n, err)
				return out
			}
			out.tmpl = t
			out.raw = isRawJSONAction(n.Value)
			return out
		}
		var x any
		if err := n.Decode(&x); err != nil {
			blame(n, err)
			return out
		}
		b, err := json.Marshal(x)
		if err != nil {
			blame(n, err)
			return out
		}
		out.lit = b
	default:
		blame(n, fmt.Errorf("unsupported YAML node in body"))
	}
	return out
}

func isRawJSONAction(s string) bool {
	s = string(bytes.TrimSpace([]byte(s)))
	if !bytes.HasPrefix([]byte(s), []byte("{{")) || !bytes.HasSuffix([]byte(s), []byte("}}")) {
		return false
	}
	inner := bytes.TrimSpace([]byte(s[2 : len(s)-2]))
	if bytes.Contains(inner, []byte("{{")) {
		return false
	}
	return bytes.HasSuffix(inner, []byte("toJson")) || bytes.HasSuffix(inner, []byte("toRawJson")) || bytes.HasSuffix(inner, []byte("toPrettyJson"))
}

// Render renders the tree to JSON.
func (j *JSON) Render(v *View) ([]byte, error) {
	var buf bytes.Buffer
	if err := j.root.render(&buf, v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func (n *jsonNode) render(buf *bytes.Buffer, v *View) error {
	switch n.kind {
	case yaml.MappingNode:
		buf.WriteByte('{')
		for i, k := range n.keys {
			if i > 0 {
				buf.WriteByte(',')
			}
			writeString(buf, k)
			buf.WriteByte(':')
			if err := n.vals[i].render(buf, v); err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
		}
		buf.WriteByte('}')
	case yaml.SequenceNode:
		buf.WriteByte('[')
		for i := range n.vals {
			if i > 0 {
				buf.WriteByte(',')
			}
			if err := n.vals[i].render(buf, v); err != nil {
				return err
			}
		}
		buf.WriteByte(']')
	default:
		if n.lit != nil {
			buf.Write(n.lit)
			return nil
		}
		s, err := n.tmpl.Render(v)
		if err != nil {
			return err
		}
		if n.raw {
			if s == "" {
				s = "null"
			}
			if !json.Valid([]byte(s)) {
				return fmt.Errorf("template %q did not render valid JSON", n.tmpl.String())
			}
			buf.WriteString(s)
			return nil
		}
		writeString(buf, s)
	}
	return nil
}

// writeString writes s as a JSON string without HTML escaping, so a CRM
// that reads the body naively sees "<" rather than "\u003c".
func writeString(buf *bytes.Buffer, s string) {
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	enc.Encode(s)
	buf.Truncate(buf.Len() - 1) // Encode's newline
}

// IsList reports whether the YAML was a list; IsMapping whether it was a
// mapping; IsRawJSON whether it was one template that renders JSON (a
// toJson action), which may render either.
func (j *JSON) IsList() bool    { return j != nil && j.root.kind == yaml.SequenceNode }
func (j *JSON) IsMapping() bool { return j != nil && j.root.kind == yaml.MappingNode }
func (j *JSON) IsRawJSON() bool { return j != nil && j.root.raw }

// Field is the value of a mapping's key, as a JSON of its own.
func (j *JSON) Field(key string) (*JSON, bool) {
	if !j.IsMapping() {
		return nil, false
	}
	for i, k := range j.root.keys {
		if k == key {
			return &JSON{root: j.root.vals[i]}, true
		}
	}
	return nil, false
}

// Keys lists a mapping's keys, sorted; for tests and docs.
func (j *JSON) Keys() []string {
	k := append([]string(nil), j.root.keys...)
	sort.Strings(k)
	return k
}
