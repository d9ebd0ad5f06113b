package tmpl

import (
	"bytes"
	"encoding/json"
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

// UnmarshalYAML parses every leaf template at load time.
func (j *JSON) UnmarshalYAML(n *yaml.Node) error {
	root, err := buildJSONNode(n)
	if err != nil {
		return err
	}
	j.root = root
	return nil
}

// IsZero reports whether no body was given.
func (j *JSON) IsZero() bool { return j == nil || !j.root.isSet }

func buildJSONNode(n *yaml.Node) (jsonNode, error) {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	out := jsonNode{kind: n.Kind, isSet: true}
	switch n.Kind {
	case yaml.MappingNode:
		seen := make(map[string]bool, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			// JSON has no merge keys, and a key twice would be sent twice.
			switch k := n.Content[i]; {
			case k.Tag == "!!merge":
				return out, fmt.Errorf("merge keys (<<) are not supported here: write the keys out")
			case seen[k.Value]:
				return out, fmt.Errorf("duplicate key %q", k.Value)
			}
			seen[n.Content[i].Value] = true
			v, err := buildJSONNode(n.Content[i+1])
			if err != nil {
				return out, fmt.Errorf("%s: %w", n.Content[i].Value, err)
			}
			out.keys = append(out.keys, n.Content[i].Value)
			out.vals = append(out.vals, v)
		}
	case yaml.SequenceNode:
		for _, c := range n.Content {
			v, err := buildJSONNode(c)
			if err != nil {
				return out, err
			}
			out.vals = append(out.vals, v)
		}
	case yaml.ScalarNode:
		if n.Tag == "!!str" || n.Tag == "" {
			t, err := Parse(n.Value)
			if err != nil {
				return out, err
			}
			out.tmpl = t
			out.raw = isRawJSONAction(n.Value)
			return out, nil
		}
		var x any
		if err := n.Decode(&x); err != nil {
			return out, err
		}
		b, err := json.Marshal(x)
		if err != nil {
			return out, err
		}
		out.lit = b
	default:
		return out, fmt.Errorf("unsupported YAML node in body")
	}
	return out, nil
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
