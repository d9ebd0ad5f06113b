package config

import (
	"strings"

	"gopkg.in/yaml.v3"
)

// ExtensionPrefix starts a top-level key the bridge ignores, as Docker
// Compose ignores its x- fields: a place to define anchors that several
// sources or sinks merge ("x-retry: &retry {...}").
const ExtensionPrefix = "x-"

// IsExtension reports whether a top-level key is one the bridge ignores.
func IsExtension(key string) bool { return strings.HasPrefix(key, ExtensionPrefix) }

// Merge resolves YAML merge keys in place, as YAML 1.1's merge type does
// and as yaml.v3 does when it decodes into Go values: in a mapping, the
// key "<<" with a mapping (most often an alias, <<: *defaults) or a list
// of mappings (<<: [*a, *b]) stands for that mapping's pairs. A key the
// mapping writes itself wins over a merged one, and an earlier mapping of
// the list wins over a later one. A merged pair keeps the position it has
// where it is written, so an error in it names that line.
//
// The strict decoding that follows sees the pairs, never the "<<" key. A
// "<<" whose value is not a mapping or a list of mappings is an error.
func (d *Decoder) Merge(root *yaml.Node) {
	done := map[*yaml.Node]bool{}
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		if n == nil || done[n] {
			return
		}
		done[n] = true
		switch n.Kind {
		case yaml.DocumentNode, yaml.SequenceNode:
			for _, c := range n.Content {
				walk(c)
			}
		case yaml.AliasNode:
			walk(n.Alias)
		case yaml.MappingNode:
			d.mergeMapping(n, walk)
			for i := 1; i < len(n.Content); i += 2 {
				walk(n.Content[i])
			}
		}
	}
	walk(root)
}

// mergeMapping replaces the merge keys of one mapping with the pairs they
// stand for; walk flattens a merged mapping's own merges first.
func (d *Decoder) mergeMapping(n *yaml.Node, walk func(*yaml.Node)) {
	var sources []*yaml.Node
	own := make([]*yaml.Node, 0, len(n.Content))
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if !isMergeKey(k) {
			own = append(own, k, v)
			continue
		}
		sources = append(sources, d.mergeSources(v)...)
	}
	if len(own) == len(n.Content) {
		return
	}
	written := make(map[string]bool, len(own)/2)
	for i := 0; i < len(own); i += 2 {
		written[own[i].Value] = true
	}
	merged := own
	for _, src := range sources {
		walk(src)
		// Within one merged mapping a repeated key stays repeated, so that
		// the decoder reports it where it is written.
		added := map[string]bool{}
		for i := 0; i+1 < len(src.Content); i += 2 {
			k, v := src.Content[i], src.Content[i+1]
			if isMergeKey(k) || written[k.Value] {
				continue
			}
			added[k.Value] = true
			merged = append(merged, k, v)
			if d.merged == nil {
				d.merged = map[mergedPair]bool{}
			}
			d.merged[mergedPair{n, k}] = true
		}
		for key := range added {
			written[key] = true
		}
	}
	n.Content = merged
}

// mergeSources is the mappings a merge key's value names, in order.
func (d *Decoder) mergeSources(v *yaml.Node) []*yaml.Node {
	switch r := resolve(v); {
	case r == nil:
		return nil
	case r.Kind == yaml.MappingNode:
		return []*yaml.Node{r}
	case r.Kind == yaml.SequenceNode:
		var out []*yaml.Node
		for _, item := range r.Content {
			if m := resolve(item); m.Kind == yaml.MappingNode {
				out = append(out, m)
			} else {
				// Blamed where the merge is written when the list is an
				// alias, not at the anchor, which may be fine elsewhere.
				at := item
				if v.Kind == yaml.AliasNode {
					at = v
				}
				d.Errorf(at, "a merge (<<) list holds mappings (<<: [*a, *b]), not %s", kindName(m))
			}
		}
		return out
	default:
		d.Errorf(v, "a merge (<<) takes a mapping (<<: *defaults) or a list of them, not %s", kindName(r))
		return nil
	}
}

// isMergeKey is yaml.v3's test: a plain << key (a quoted "<<" is a key
// like any other).
func isMergeKey(k *yaml.Node) bool {
	return k.Kind == yaml.ScalarNode && k.Value == "<<" && k.ShortTag() == "!!merge"
}

// maxUnaliasedNodes bounds the copy Unaliased makes.
const maxUnaliasedNodes = 1_000_000

// Unaliased returns a copy of n in which each alias is replaced by a copy
// of the node it names, and no node carries an anchor: two copies marshal
// alike exactly when what they hold is alike, wherever in the file its
// anchors are written (an edited anchor changes every copy that reaches
// it). An alias back into a node being copied, or one past a million
// nodes, stays an alias.
func Unaliased(n *yaml.Node) *yaml.Node {
	within := map[*yaml.Node]bool{}
	count := 0
	var cp func(n *yaml.Node) *yaml.Node
	cp = func(n *yaml.Node) *yaml.Node {
		if count++; count > maxUnaliasedNodes {
			return n
		}
		target := n
		if n.Kind == yaml.AliasNode {
			if target = n.Alias; target == nil || within[target] {
				return n
			}
		}
		within[target] = true
		defer delete(within, target)
		out := *target
		out.Anchor = ""
		out.Content = make([]*yaml.Node, len(target.Content))
		for i, c := range target.Content {
			out.Content[i] = cp(c)
		}
		return &out
	}
	return cp(n)
}
