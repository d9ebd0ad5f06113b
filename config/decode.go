// Package config decodes hookbridge's YAML strictly: every key must belong to
// the struct it is decoded into, every value must fit its field, and every
// problem is reported with its file, line and column, all at once.
//
// yaml.v3's own Node.Decode ignores KnownFields and loses positions, so this
// package walks the node tree itself and uses yaml.v3 only for scalars and for
// types that implement yaml.Unmarshaler.
package config

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Error is one problem found in a config file.
type Error struct {
	File   string
	Line   int
	Column int
	Msg    string
}

func (e Error) Error() string {
	if e.Line == 0 {
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	}
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Column, e.Msg)
}

// Errors is every problem found in one file, in file order.
type Errors []Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// FieldError is returned by a config's Validate method to blame one field;
// the decoder turns it into an Error at that field's key.
type FieldError struct {
	Field string // the yaml key, e.g. "secret"
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// Invalid returns a FieldError for field.
func Invalid(field, format string, args ...any) error {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// Required returns a FieldError when value is empty, else nil.
func Required(field, value string) error {
	if strings.TrimSpace(value) == "" {
		return &FieldError{Field: field, Msg: "is required and must not be empty"}
	}
	return nil
}

// Validator is implemented by config structs; Validate does no I/O.
type Validator interface {
	Validate() error
}

// Decoder decodes nodes of one file and collects every error.
type Decoder struct {
	File string
	Errs Errors

	unexpanded map[*yaml.Node]bool // values whose ${...} failed; checks on them would only repeat it
	failed     map[*yaml.Node]bool // nodes an error was recorded at; Validate adds none there
	expanded   map[*yaml.Node]bool // values that took a ${...}: their text may hold a secret
	merged     map[mergedPair]bool // keys a mapping took through a merge (<<)
	blamed     map[mergedPair]bool // keys Validate reported a mistake at, for a mapping
	mergeNote  string              // said after each error while a merged pair is decoded
}

// mergedPair is a key node that a mapping took through a merge key.
type mergedPair struct{ mapping, key *yaml.Node }

// noteMerged is what an error about key, merged into mapping from where it
// is written, adds: which mapping the mistake is a mistake of.
func (d *Decoder) noteMerged(mapping, key *yaml.Node) string {
	if !d.merged[mergedPair{mapping, key}] {
		return ""
	}
	return fmt.Sprintf(" (merged into the mapping at line %d)", mapping.Line)
}

// Errorf records an error at node's position; Validate adds none there.
func (d *Decoder) Errorf(node *yaml.Node, format string, args ...any) {
	d.add(node, fmt.Sprintf(format, args...))
	if node != nil {
		if d.failed == nil {
			d.failed = map[*yaml.Node]bool{}
		}
		d.failed[node] = true
	}
}

// add records the error msg at node's position.
func (d *Decoder) add(node *yaml.Node, msg string) {
	e := Error{File: d.File, Msg: msg + d.mergeNote}
	if node != nil {
		e.Line, e.Column = node.Line, node.Column
	}
	d.Errs = append(d.Errs, e)
}

// Err returns the collected errors sorted by position, or nil.
func (d *Decoder) Err() error {
	if len(d.Errs) == 0 {
		return nil
	}
	sort.SliceStable(d.Errs, func(i, j int) bool {
		a, b := d.Errs[i], d.Errs[j]
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Column < b.Column
	})
	// A value merged into several mappings (<<: *defaults) is checked in
	// each: the same mistake at the same place is reported once.
	seen := make(map[Error]bool, len(d.Errs))
	d.Errs = slices.DeleteFunc(d.Errs, func(e Error) bool {
		dup := seen[e]
		seen[e] = true
		return dup
	})
	return d.Errs
}

// Decode decodes node into out, a pointer to a struct, map, slice or scalar.
func (d *Decoder) Decode(node *yaml.Node, out any) {
	d.DecodeInto(node, out)
}

// DecodeInto decodes one mapping node into several structs at once: each key
// goes to the first target that declares it, and a key no target declares is
// an error. It is how a source's common keys (type, path, allow_ips) and its
// provider's own keys share one YAML mapping.
func (d *Decoder) DecodeInto(node *yaml.Node, targets ...any) {
	node = resolve(node)
	if len(targets) == 1 {
		rv := reflect.ValueOf(targets[0])
		if rv.Kind() != reflect.Pointer || rv.IsNil() {
			panic("config: DecodeInto needs a non-nil pointer")
		}
		d.decode(node, rv.Elem(), "")
		return
	}
	if node.Kind != yaml.MappingNode {
		d.Errorf(node, "expected a mapping, found %s", kindName(node))
		return
	}
	var fields []fieldInfo
	for _, t := range targets {
		rv := reflect.ValueOf(t)
		if rv.Kind() != reflect.Pointer || rv.Elem().Kind() != reflect.Struct {
			panic("config: DecodeInto targets must be pointers to structs")
		}
		fields = append(fields, structFields(rv.Elem())...)
	}
	d.decodeFields(node, fields)
}

// Validate runs v.Validate and records each error at the key it blames
// (a FieldError) or at node.
func (d *Decoder) Validate(node *yaml.Node, v Validator) {
	err := v.Validate()
	if err == nil {
		return
	}
	for _, e := range flatten(err) {
		var fe *FieldError
		if errors.As(e, &fe) {
			if key, val := lookup(node, fe.Field); key != nil {
				// A value that did not decode, or whose ${...} did not
				// expand, is reported already: a check of what it left
				// behind would only repeat it.
				//
				// A key blamed already for this mapping (by an earlier
				// check of it) is not blamed twice; one that several
				// mappings merge is blamed for each.
				blamed := mergedPair{resolve(node), key}
				if d.unexpanded[val] || d.failed[val] || d.failed[key] || d.blamed[blamed] {
					continue
				}
				if d.blamed == nil {
					d.blamed = map[mergedPair]bool{}
				}
				d.blamed[blamed] = true
				d.add(key, fmt.Sprintf("%s: %s%s", fe.Field, fe.Msg, d.noteMerged(blamed.mapping, key)))
				continue
			}
		}
		d.Errorf(node, "%v", e)
	}
}

func flatten(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			if e != nil {
				out = append(out, flatten(e)...)
			}
		}
		return out
	}
	return []error{err}
}

// Lookup returns the key and value nodes of key in a mapping node.
func Lookup(node *yaml.Node, key string) (k, v *yaml.Node) { return lookup(node, key) }

func lookup(node *yaml.Node, key string) (*yaml.Node, *yaml.Node) {
	node = resolve(node)
	if node == nil || node.Kind != yaml.MappingNode {
		return nil, nil
	}
	for i := 0; i+1 < len(node.Content); i += 2 {
		if node.Content[i].Value == key {
			return node.Content[i], node.Content[i+1]
		}
	}
	return nil, nil
}

var (
	unmarshalerType = reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()
	durationType    = reflect.TypeOf(time.Duration(0))
	nodeType        = reflect.TypeOf(yaml.Node{})
)

// Resolve is the node n stands for: an alias's anchored node, a
// document's content, or n itself.
func Resolve(n *yaml.Node) *yaml.Node { return resolve(n) }

func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && (n.Kind == yaml.AliasNode || n.Kind == yaml.DocumentNode) {
		if n.Kind == yaml.AliasNode {
			n = n.Alias
		} else if len(n.Content) > 0 {
			n = n.Content[0]
		} else {
			return n
		}
	}
	return n
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "nothing"
		}
		return fmt.Sprintf("%q", n.Value)
	}
	return "an unexpected node"
}

func (d *Decoder) decode(node *yaml.Node, v reflect.Value, what string) {
	node = resolve(node)
	if node == nil {
		return
	}
	if v.Type() == nodeType {
		v.Set(reflect.ValueOf(*node))
		return
	}
	if v.CanAddr() && v.Addr().Type().Implements(unmarshalerType) {
		if err := node.Decode(v.Addr().Interface()); err != nil {
			d.unmarshalError(node, err)
		}
		return
	}
	if node.Kind == yaml.ScalarNode && node.Tag == "!!null" {
		// An empty section ("server:" with its keys commented out) is an
		// empty mapping: its defaults stay. Anything else empty is zero.
		if v.Kind() != reflect.Struct {
			v.Set(reflect.Zero(v.Type()))
		}
		return
	}
	if v.Type() == durationType {
		d.decodeDuration(node, v)
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.decode(node, v.Elem(), what)
	case reflect.Struct:
		if node.Kind != yaml.MappingNode {
			d.Errorf(node, "expected a mapping, found %s", kindName(node))
			return
		}
		d.decodeFields(node, structFields(v))
	case reflect.Map:
		if node.Kind != yaml.MappingNode {
			d.Errorf(node, "expected a mapping, found %s", kindName(node))
			return
		}
		if v.IsNil() {
			v.Set(reflect.MakeMap(v.Type()))
		}
		seen := map[string]bool{}
		for i := 0; i+1 < len(node.Content); i += 2 {
			k, val := node.Content[i], node.Content[i+1]
			if seen[k.Value] {
				d.Errorf(k, "duplicate key %q", k.Value)
				continue
			}
			seen[k.Value] = true
			kv := reflect.New(v.Type().Key()).Elem()
			d.decode(k, kv, "")
			ev := reflect.New(v.Type().Elem()).Elem()
			d.decode(val, ev, k.Value)
			v.SetMapIndex(kv, ev)
		}
	case reflect.Slice:
		if node.Kind != yaml.SequenceNode {
			d.Errorf(node, "expected a list, found %s", kindName(node))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(node.Content), len(node.Content))
		for i, item := range node.Content {
			d.decode(item, s.Index(i), what)
		}
		v.Set(s)
	case reflect.Interface:
		var x any
		if err := node.Decode(&x); err != nil {
			d.Errorf(node, "%s", cleanYAMLError(err))
			return
		}
		if x != nil {
			v.Set(reflect.ValueOf(x))
		}
	default:
		d.decodeScalar(node, v)
	}
}

func (d *Decoder) decodeScalar(node *yaml.Node, v reflect.Value) {
	if node.Kind != yaml.ScalarNode {
		d.Errorf(node, "expected a single value, found %s", kindName(node))
		return
	}
	s := node.Value
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		// YAML's booleans (1.2 core schema), not strconv's: 0, 1, t and f
		// are not, and a typo of a number must not switch a sink off.
		switch s {
		case "true", "True", "TRUE":
			v.SetBool(true)
		case "false", "False", "FALSE":
			v.SetBool(false)
		default:
			d.Errorf(node, "%q is not true or false", s)
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(s, 0, v.Type().Bits())
		if err != nil {
			d.Errorf(node, "%q is not a whole number", s)
			return
		}
		v.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, err := strconv.ParseUint(s, 0, v.Type().Bits())
		if err != nil {
			d.Errorf(node, "%q is not a non-negative whole number", s)
			return
		}
		v.SetUint(n)
	case reflect.Float32, reflect.Float64:
		f, err := strconv.ParseFloat(s, v.Type().Bits())
		if err != nil {
			d.Errorf(node, "%q is not a number", s)
			return
		}
		v.SetFloat(f)
	default:
		if err := node.Decode(v.Addr().Interface()); err != nil {
			d.Errorf(node, "%s", cleanYAMLError(err))
		}
	}
}

func (d *Decoder) decodeDuration(node *yaml.Node, v reflect.Value) {
	if node.Kind != yaml.ScalarNode {
		d.Errorf(node, "expected a duration such as 30s or 5m, found %s", kindName(node))
		return
	}
	if node.Value == "0" {
		v.SetInt(0)
		return
	}
	dur, err := time.ParseDuration(node.Value)
	if err != nil {
		d.Errorf(node, "%q is not a duration such as 30s or 5m", node.Value)
		return
	}
	v.SetInt(int64(dur))
}

type fieldInfo struct {
	name string
	v    reflect.Value
}

// structFields lists the yaml-tagged fields of a struct value, flattening
// fields tagged ",inline".
func structFields(v reflect.Value) []fieldInfo {
	var out []fieldInfo
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if strings.Contains(opts, "inline") {
			fv := v.Field(i)
			if fv.Kind() == reflect.Pointer {
				if fv.IsNil() {
					fv.Set(reflect.New(fv.Type().Elem()))
				}
				fv = fv.Elem()
			}
			out = append(out, structFields(fv)...)
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out = append(out, fieldInfo{name: name, v: v.Field(i)})
	}
	return out
}

func (d *Decoder) decodeFields(node *yaml.Node, fields []fieldInfo) {
	seen := map[string]bool{}
	for i := 0; i+1 < len(node.Content); i += 2 {
		k, val := node.Content[i], node.Content[i+1]
		if seen[k.Value] {
			d.Errorf(k, "duplicate key %q", k.Value)
			continue
		}
		seen[k.Value] = true
		outer := d.mergeNote
		if outer == "" {
			// A pair merged from elsewhere: its errors, reported where
			// it is written, say which mapping they are about.
			d.mergeNote = d.noteMerged(node, k)
		}
		d.decodeField(k, val, fields)
		d.mergeNote = outer
	}
}

// decodeField decodes the value of key k into the field it names.
func (d *Decoder) decodeField(k, val *yaml.Node, fields []fieldInfo) {
	for j := range fields {
		if fields[j].name == k.Value {
			d.decode(val, fields[j].v, k.Value)
			return
		}
	}
	names := make([]string, 0, len(fields))
	for _, f := range fields {
		names = append(names, f.name)
	}
	sort.Strings(names)
	d.Errorf(k, "unknown key %q (known keys: %s)", k.Value, strings.Join(names, ", "))
}

// nodeError is an error of a yaml.Unmarshaler that blames one node inside
// the value it decodes, such as a bad template among a body's leaves. An
// Unmarshaler returns several joined (errors.Join), and each is reported
// at its own node.
type nodeError interface {
	error
	YAMLNode() *yaml.Node
}

// unmarshalError records what a yaml.Unmarshaler returned for node.
func (d *Decoder) unmarshalError(node *yaml.Node, err error) {
	errs := []error{err}
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		errs = joined.Unwrap()
	}
	for _, err := range errs {
		at := node
		var ne nodeError
		if errors.As(err, &ne) && ne.YAMLNode() != nil {
			at = ne.YAMLNode()
		}
		msg := cleanYAMLError(err)
		if d.expanded[at] {
			// A type's error may quote the value (a template's parse
			// error names what it read), and a ${...} may have put a
			// secret there.
			msg = fmt.Sprintf("%s (the value holds a ${...}: what it expanded to is not shown)", firstWords(msg))
		}
		d.Errorf(at, "%s", msg)
	}
	// The value as a whole did not decode: Validate adds nothing about it.
	d.failed[node] = true
}

func cleanYAMLError(err error) string {
	s := err.Error()
	s = strings.TrimPrefix(s, "yaml: unmarshal errors:\n")
	s = strings.TrimPrefix(s, "yaml: ")
	// yaml.v3 prefixes "line N: "; the position is ours to give.
	if strings.HasPrefix(strings.TrimSpace(s), "line ") {
		if _, rest, ok := strings.Cut(s, ": "); ok {
			s = rest
		}
	}
	return strings.TrimSpace(s)
}

// firstWords is an error message up to its first detail (its first ':'),
// which names the kind of mistake without quoting the value.
func firstWords(msg string) string {
	if i := strings.IndexByte(msg, ':'); i > 0 {
		return msg[:i]
	}
	return "not a valid value"
}
