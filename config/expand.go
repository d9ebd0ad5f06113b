package config

import (
	"fmt"
	"os"
	"strings"

	"gopkg.in/yaml.v3"
)

// LookupFunc finds an environment variable, as os.LookupEnv does.
type LookupFunc func(name string) (string, bool)

// Expand replaces ${VAR}, ${VAR:-default} and ${file:PATH} in every scalar
// value (never in keys) of the tree, recording an error for each variable that
// is unset and has no default, and each file that cannot be read. $${ stands
// for a literal ${.
//
// Each node is expanded once, however many aliases or merges (run Merge
// first) reach it, and the values of a document's top-level x- keys only
// where something reaches them: they are not the bridge's to read.
func (d *Decoder) Expand(root *yaml.Node, lookup LookupFunc) {
	if lookup == nil {
		lookup = os.LookupEnv
	}
	done := map[*yaml.Node]bool{}
	var walk func(n *yaml.Node, isKey bool)
	walk = func(n *yaml.Node, isKey bool) {
		if done[n] {
			return
		}
		done[n] = true
		switch n.Kind {
		case yaml.AliasNode:
			walk(n.Alias, false)
		case yaml.DocumentNode:
			for _, c := range n.Content {
				if c.Kind == yaml.MappingNode {
					done[c] = true
					for i := 0; i+1 < len(c.Content); i += 2 {
						if !IsExtension(c.Content[i].Value) {
							walk(c.Content[i+1], false)
						}
					}
					continue
				}
				walk(c, false)
			}
		case yaml.SequenceNode:
			for _, c := range n.Content {
				walk(c, false)
			}
		case yaml.MappingNode:
			for i, c := range n.Content {
				walk(c, i%2 == 0)
			}
		case yaml.ScalarNode:
			if isKey || !strings.Contains(n.Value, "${") {
				return
			}
			out, err := ExpandString(n.Value, lookup)
			if err != nil {
				d.Errorf(n, "%v", err)
				if d.unexpanded == nil {
					d.unexpanded = map[*yaml.Node]bool{}
				}
				d.unexpanded[n] = true
				return
			}
			if out != n.Value {
				if d.expanded == nil {
					d.expanded = map[*yaml.Node]bool{}
				}
				d.expanded[n] = true
			}
			n.Value = out
			if n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) == 0 {
				// An unquoted value takes the type its expansion spells
				// (so enabled: ${X:-false} is a bool), as if written there.
				n.Tag = ""
				var probe yaml.Node
				if yaml.Unmarshal([]byte(out), &probe) == nil && len(probe.Content) == 1 && probe.Content[0].Kind == yaml.ScalarNode {
					n.Tag = probe.Content[0].Tag
				} else {
					n.Tag = "!!str"
				}
			}
		}
	}
	walk(root, false)
}

// ExpandString expands one value; see Decoder.Expand.
func ExpandString(s string, lookup LookupFunc) (string, error) {
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String(), nil
		}
		if i > 0 && s[i-1] == '$' {
			b.WriteString(s[:i-1])
			b.WriteString("${")
			s = s[i+2:]
			continue
		}
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			return "", fmt.Errorf("unterminated ${ in value")
		}
		b.WriteString(s[:i])
		expr := s[i+2 : i+end]
		s = s[i+end+1:]
		val, err := expandOne(expr, lookup)
		if err != nil {
			return "", err
		}
		b.WriteString(val)
	}
}

func expandOne(expr string, lookup LookupFunc) (string, error) {
	if path, ok := strings.CutPrefix(expr, "file:"); ok {
		data, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("reading secret file: %w", err)
		}
		return strings.TrimRight(string(data), "\r\n"), nil
	}
	name, def, hasDef := strings.Cut(expr, ":-")
	if hasDef && strings.Contains(def, "${") {
		// ${A:-${B}} would read as the default "${B" and a stray "}".
		return "", fmt.Errorf("${%s}: a default cannot hold another ${...}", expr+"}")
	}
	if !validVarName(name) {
		return "", fmt.Errorf("${%s} is not a valid variable reference", expr)
	}
	if v, ok := lookup(name); ok && (v != "" || !hasDef) {
		return v, nil
	}
	if hasDef {
		return def, nil
	}
	return "", fmt.Errorf("environment variable %s is not set (write ${%s:-default} to give a default)", name, name)
}

func validVarName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		if r == '_' || (r >= 'A' && r <= 'Z') || (r >= 'a' && r <= 'z') || (i > 0 && r >= '0' && r <= '9') {
			continue
		}
		return false
	}
	return true
}
