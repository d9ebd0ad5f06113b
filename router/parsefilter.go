package router

import (
	"errors"
	"fmt"

	"github.com/cloudevents/sdk-go/v2/event"
	"gopkg.in/yaml.v3"

	"github.com/hookbridge/hookbridge/config"
)

// ParseFilter compiles one filter given outside the config file (on the
// command line): a YAML mapping in any dialect a route's filters use, such
// as `{exact: {type: com.helloclient.lead}}` or `prefix: {data.Email: ada}`,
// or a bare string, which is taken as a CESQL expression. Errors name the
// filter as the file, with the line and column within it.
func ParseFilter(text string) (func(*event.Event) bool, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(text), &doc); err != nil {
		return nil, fmt.Errorf("filter: %w", err)
	}
	if len(doc.Content) == 0 {
		return nil, errors.New("filter: empty")
	}
	f := doc.Content[0]
	if f.Kind == yaml.ScalarNode && f.Tag == "!!str" {
		f = &yaml.Node{Kind: yaml.MappingNode, Line: f.Line, Column: f.Column, Content: []*yaml.Node{
			{Kind: yaml.ScalarNode, Tag: "!!str", Value: "cesql", Line: f.Line, Column: f.Column}, f,
		}}
	}
	scalar := func(v string) *yaml.Node {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v, Line: 1, Column: 1}
	}
	route := &yaml.Node{Kind: yaml.MappingNode, Line: 1, Column: 1, Content: []*yaml.Node{
		scalar("name"), scalar("filter"),
		scalar("filters"), {Kind: yaml.SequenceNode, Line: 1, Column: 1, Content: []*yaml.Node{f}},
		scalar("sinks"), {Kind: yaml.SequenceNode, Line: 1, Column: 1, Content: []*yaml.Node{scalar("filter")}},
	}}
	d := &config.Decoder{File: "filter"}
	routes := Decode(d, &yaml.Node{Kind: yaml.SequenceNode, Line: 1, Column: 1, Content: []*yaml.Node{route}})
	if err := d.Err(); err != nil {
		return nil, err
	}
	r := New(routes)
	return func(ev *event.Event) bool {
		matched, _ := r.Match(ev)
		return len(matched) > 0
	}, nil
}
