package bridge

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"

	"gopkg.in/yaml.v3"

	"github.com/hookbridge/hookbridge/config"
	"github.com/hookbridge/hookbridge/delivery"
	"github.com/hookbridge/hookbridge/router"
	"github.com/hookbridge/hookbridge/server"
	"github.com/hookbridge/hookbridge/sinks"
)

// Runtime is one built configuration: immutable once made.
type Runtime struct {
	File   *File
	Table  *server.Table
	Router *router.Router
	Sinks  map[string]*BuiltSink // enabled sinks only
}

// BuiltSink is a constructed sink with its delivery policy.
type BuiltSink struct {
	Name   string
	Sink   sinks.Sink
	Policy delivery.Policy
	spec   []byte // the sink's settings as loaded, to tell whether a reload changed it
}

// Describer is implemented by sinks that can say where events go, for the
// startup log.
type Describer interface {
	Describe() string
}

// Build constructs the sources, sinks and routes of f. Sinks whose settings
// are unchanged from prev are reused, not rebuilt. It opens no connection.
func Build(f *File, prev *Runtime) (*Runtime, error) {
	if len(f.Sources) == 0 {
		return nil, ErrNoSources
	}
	rt := &Runtime{
		File:  f,
		Table: &server.Table{Endpoints: map[string]*server.Endpoint{}, TrustedProxies: f.Server.trusted},
		Sinks: map[string]*BuiltSink{},
	}
	var errs []error
	for _, s := range f.Sources {
		src, err := s.Config.NewSource()
		if err != nil {
			errs = append(errs, fmt.Errorf("source %s: %w", s.Name, err))
			continue
		}
		rt.Table.Endpoints[s.Common.Path] = &server.Endpoint{
			Name: s.Name, Source: src, AllowIPs: s.allow, BodyLimit: int64(s.Common.BodyLimit),
		}
	}
	for _, s := range f.Sinks {
		if !s.IsEnabled() {
			continue
		}
		// What the sink was built from, its aliases followed: an edit
		// to an anchor it uses rebuilds it as an edit to its own lines.
		spec, err := yaml.Marshal(config.Unaliased(s.Node))
		if err != nil {
			errs = append(errs, fmt.Errorf("sink %s: %w", s.Name, err))
			continue
		}
		if prev != nil {
			if old := prev.Sinks[s.Name]; old != nil && bytes.Equal(old.spec, spec) {
				rt.Sinks[s.Name] = old
				continue
			}
		}
		sink, err := s.Config.NewSink(s.Name)
		if err != nil {
			errs = append(errs, fmt.Errorf("sink %s: %w", s.Name, err))
			continue
		}
		policy := s.Common.Policy
		if dl := policy.DeadLetter; dl != "" {
			if spec := f.Sink(dl); spec == nil || !spec.IsEnabled() {
				policy.DeadLetter = "" // kept in the dead-letter store instead; said at start
			}
		}
		rt.Sinks[s.Name] = &BuiltSink{Name: s.Name, Sink: sink, Policy: policy, spec: spec}
	}
	if len(errs) > 0 {
		for _, b := range rt.Sinks {
			if prev == nil || prev.Sinks[b.Name] != b {
				b.Sink.Close(context.Background())
			}
		}
		return nil, errors.Join(errs...)
	}
	routes := make([]router.Route, len(f.Routes))
	for i, r := range f.Routes {
		routes[i] = r
		routes[i].Sinks = nil
		for _, name := range r.Sinks {
			if rt.Sinks[name] != nil {
				routes[i].Sinks = append(routes[i].Sinks, name)
			}
		}
	}
	rt.Router = router.New(routes)
	return rt, nil
}

// logSummary says what the runtime serves and where events go.
func (rt *Runtime) logSummary(log *slog.Logger, baseURL string) {
	for _, s := range rt.File.Sources {
		log.Info("source ready", "source", s.Name, "type", s.Common.Type, "url", baseURL+s.Common.Path)
	}
	for _, s := range rt.File.Sinks {
		if !s.IsEnabled() {
			log.Info("sink disabled (enabled: false); routes skip it", "sink", s.Name, "type", s.Common.Type)
			continue
		}
		b := rt.Sinks[s.Name]
		if b == nil {
			continue
		}
		attrs := []any{"sink", s.Name, "type", s.Common.Type}
		if d, ok := b.Sink.(Describer); ok {
			attrs = append(attrs, "target", d.Describe())
		}
		if s.Common.DeadLetter != "" && b.Policy.DeadLetter == "" {
			attrs = append(attrs, "dead_letter", "store (sink "+s.Common.DeadLetter+" is disabled)")
		}
		log.Info("sink ready", attrs...)
	}
	for _, r := range rt.Router.Routes() {
		log.Info("route", "route", r.Name, "sinks", r.Sinks)
	}
}
