package router

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// Data paths are looked up in one pass over the raw JSON payload, which picks
// out the values of every data.<path> a router uses and validates the rest.
// It gives the same answers as decoding the payload with a json.Decoder that
// uses json.Number and walking the result (the fuzz tests hold it to that),
// without building maps for the parts of the payload no route looks at.

// maxNestingDepth is encoding/json's own limit; a deeper payload is invalid.
const maxNestingDepth = 10000

// pathNode is one node of the trie of the data paths a router uses.
type pathNode struct {
	key      string // the object key (or array index) that leads here
	index    int    // the array index key spells, or -1
	slot     int    // where the value of the path ending here goes, or -1
	lo, hi   int    // the slots of this node's subtree: [lo, hi)
	children []*pathNode
}

// dataValue is the scalar found at one data path: a string's contents, or a
// number or boolean as spelled in the payload. It holds offsets rather than a
// slice of the payload so that Match keeps its values on the stack.
type dataValue struct {
	found      bool
	start, end int    // the value's bytes in the payload
	unquoted   []byte // a string with escapes, decoded; nil otherwise
}

// bytes returns the value, given the payload it was found in.
func (v *dataValue) bytes(payload []byte) []byte {
	if v.unquoted != nil {
		return v.unquoted
	}
	return payload[v.start:v.end]
}

// pathTrie builds the trie of the given paths and returns it with the slot
// of each path (equal paths share a slot). Slots are numbered in depth-first
// order so that every subtree owns a contiguous range.
func pathTrie(paths [][]pathSegment) (*pathNode, []int) {
	root := &pathNode{index: -1, slot: -1}
	ends := make([]*pathNode, len(paths))
	isEnd := map[*pathNode]bool{}
	for i, path := range paths {
		n := root
		for _, seg := range path {
			var next *pathNode
			for _, c := range n.children {
				if c.key == seg.key {
					next = c
					break
				}
			}
			if next == nil {
				next = &pathNode{key: seg.key, index: seg.index, slot: -1}
				n.children = append(n.children, next)
			}
			n = next
		}
		ends[i] = n
		isEnd[n] = n != root // data alone is not a path
	}
	var number func(n *pathNode, next int) int
	number = func(n *pathNode, next int) int {
		n.lo = next
		if isEnd[n] {
			n.slot = next
			next++
		}
		for _, c := range n.children {
			next = number(c, next)
		}
		n.hi = next
		return next
	}
	number(root, 0)
	slots := make([]int, len(paths))
	for i, n := range ends {
		slots[i] = n.slot
	}
	return root, slots
}

// dataScanner walks one payload, storing the values of the trie's paths.
type dataScanner struct {
	data   []byte
	pos    int
	depth  int
	values []dataValue
}

// scanPayload fills values (one per slot of root) from data. It reports false,
// leaving values undefined, when data is not exactly one JSON value.
func scanPayload(data []byte, root *pathNode, values []dataValue) bool {
	s := dataScanner{data: data, values: values}
	s.skipSpace()
	if !s.value(root) {
		return false
	}
	s.skipSpace()
	return s.pos == len(s.data)
}

func (s *dataScanner) skipSpace() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// value scans one JSON value. node is the trie node the value sits at, or
// nil when no path goes through it.
func (s *dataScanner) value(node *pathNode) bool {
	if s.pos >= len(s.data) {
		return false
	}
	if node != nil {
		// A later duplicate key replaces what an earlier one gave, as it
		// does when the payload is decoded into a map.
		clear(s.values[node.lo:node.hi])
	}
	start := s.pos
	switch c := s.data[s.pos]; {
	case c == '{':
		return s.object(node)
	case c == '[':
		return s.array(node)
	case c == '"':
		end, plain, ok := s.stringEnd()
		if !ok {
			return false
		}
		if node != nil && node.slot >= 0 {
			v := dataValue{found: true, start: start + 1, end: end - 1}
			if !plain {
				v.unquoted = unquote(s.data[start:end])
			}
			s.values[node.slot] = v
		}
		s.pos = end
		return true
	case c == 't':
		return s.literal(node, "true")
	case c == 'f':
		return s.literal(node, "false")
	case c == 'n':
		return s.literal(nil, "null") // null matches nothing
	case c == '-' || (c >= '0' && c <= '9'):
		if !s.number() {
			return false
		}
		if node != nil && node.slot >= 0 {
			s.values[node.slot] = dataValue{found: true, start: start, end: s.pos}
		}
		return true
	default:
		return false
	}
}

func (s *dataScanner) literal(node *pathNode, word string) bool {
	end := s.pos + len(word)
	if end > len(s.data) || string(s.data[s.pos:end]) != word {
		return false
	}
	if node != nil && node.slot >= 0 {
		s.values[node.slot] = dataValue{found: true, start: s.pos, end: end}
	}
	s.pos = end
	return true
}

// number scans a number as JSON spells it: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *dataScanner) number() bool {
	d := s.data
	i := s.pos
	if d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && d[i] >= '1' && d[i] <= '9':
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	default:
		return false
	}
	if i < len(d) && d[i] == '.' {
		i++
		if i >= len(d) || d[i] < '0' || d[i] > '9' {
			return false
		}
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if i >= len(d) || d[i] < '0' || d[i] > '9' {
			return false
		}
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	}
	s.pos = i
	return true
}

// stringEnd validates the string starting at s.pos (a quote) and returns the
// index just past its closing quote. plain is true when its bytes between the
// quotes are its value: no escapes and valid UTF-8.
func (s *dataScanner) stringEnd() (end int, plain, ok bool) {
	d := s.data
	plain = true
	ascii := true
	for i := s.pos + 1; i < len(d); {
		c := d[i]
		switch {
		case c == '"':
			if plain && !ascii && !utf8.Valid(d[s.pos+1:i]) {
				plain = false
			}
			return i + 1, plain, true
		case c == '\\':
			plain = false
			if i+1 >= len(d) {
				return 0, false, false
			}
			switch d[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(d) {
					return 0, false, false
				}
				for _, h := range d[i+2 : i+6] {
					if !isHex(h) {
						return 0, false, false
					}
				}
				i += 6
			default:
				return 0, false, false
			}
		case c < 0x20:
			return 0, false, false
		default:
			if c >= utf8.RuneSelf {
				ascii = false
			}
			i++
		}
	}
	return 0, false, false
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// unquote decodes a validated JSON string with escapes or invalid UTF-8 the
// way encoding/json does (invalid bytes and lone surrogates become U+FFFD).
func unquote(quoted []byte) []byte {
	var str string
	// json.Unmarshal keeps its input reachable as far as escape analysis can
	// tell; handing it a copy keeps the scanner, and Match's state, off the heap.
	if err := json.Unmarshal(bytes.Clone(quoted), &str); err != nil {
		return []byte{}
	}
	return []byte(str)
}

func (s *dataScanner) enter() bool {
	s.depth++
	return s.depth <= maxNestingDepth
}

func (s *dataScanner) object(node *pathNode) bool {
	if !s.enter() {
		return false
	}
	s.pos++ // {
	s.skipSpace()
	if s.pos < len(s.data) && s.data[s.pos] == '}' {
		s.pos++
		s.depth--
		return true
	}
	for {
		if s.pos >= len(s.data) || s.data[s.pos] != '"' {
			return false
		}
		start := s.pos
		end, plain, ok := s.stringEnd()
		if !ok {
			return false
		}
		s.pos = end
		var child *pathNode
		if node != nil && len(node.children) > 0 {
			key := s.data[start+1 : end-1]
			if !plain {
				key = unquote(s.data[start:end])
			}
			for _, c := range node.children {
				if c.key == string(key) {
					child = c
					break
				}
			}
		}
		s.skipSpace()
		if s.pos >= len(s.data) || s.data[s.pos] != ':' {
			return false
		}
		s.pos++
		s.skipSpace()
		if !s.value(child) {
			return false
		}
		s.skipSpace()
		if s.pos >= len(s.data) {
			return false
		}
		switch s.data[s.pos] {
		case ',':
			s.pos++
			s.skipSpace()
		case '}':
			s.pos++
			s.depth--
			return true
		default:
			return false
		}
	}
}

func (s *dataScanner) array(node *pathNode) bool {
	if !s.enter() {
		return false
	}
	s.pos++ // [
	s.skipSpace()
	if s.pos < len(s.data) && s.data[s.pos] == ']' {
		s.pos++
		s.depth--
		return true
	}
	for index := 0; ; index++ {
		var child *pathNode
		if node != nil {
			for _, c := range node.children {
				if c.index == index {
					child = c
					break
				}
			}
		}
		if !s.value(child) {
			return false
		}
		s.skipSpace()
		if s.pos >= len(s.data) {
			return false
		}
		switch s.data[s.pos] {
		case ',':
			s.pos++
			s.skipSpace()
		case ']':
			s.pos++
			s.depth--
			return true
		default:
			return false
		}
	}
}
