package bridge

import (
	"net/http"
	"sort"
	"time"

	"github.com/hookbridge/hookbridge/inspect"
)

// InspectorHandler is the event inspector (the page and its JSON API), to
// mount on the admin listener at inspect.Prefix once Run has opened the
// queue. A non-empty token is required on every request. Replays go only to
// sinks the running config delivers to, as of the latest reload.
func (a *App) InspectorHandler() http.Handler {
	h, err := inspect.NewHandler(inspect.Options{
		Recorder:   a.rec,
		Queue:      a.q,
		Token:      a.adminToken,
		Logger:     a.log,
		Sinks:      a.runningSinks,
		SinkStates: a.sinkStates,
	})
	if err != nil {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "inspector unavailable: "+err.Error(), http.StatusServiceUnavailable)
		})
	}
	return h
}

// sinkStates tells the inspector of each sink with a running delivery
// loop: its type, circuit breaker, deliveries since start, and, on a Kafka
// queue, its consumer group's lag as last measured.
func (a *App) sinkStates() []inspect.SinkState {
	rt := a.rt.Load()
	if rt == nil || a.engine == nil {
		return nil
	}
	var lag map[string]int64
	var measured map[string]time.Time
	if lr, ok := a.q.(lagReporter); ok {
		lag, measured = lr.Lag() // no broker call: measured in the background
	}
	circuits, counts := a.engine.CircuitStates(), a.engine.Counts()
	out := make([]inspect.SinkState, 0, len(circuits))
	for name, circuit := range circuits {
		n := counts[name]
		s := inspect.SinkState{Name: name, Circuit: circuit,
			Delivered: n.Delivered, FailedAttempts: n.Failed, DeadLettered: n.DeadLettered}
		if spec := rt.File.Sink(name); spec != nil {
			s.Type = spec.Common.Type
		}
		if n, ok := lag[name]; ok {
			s.Lag = &n
			if at, ok := measured[name]; ok && !at.IsZero() {
				s.LagMeasured = &at
			}
		}
		out = append(out, s)
	}
	return out
}

// runningSinks lists the enabled sinks of the current config.
func (a *App) runningSinks() []string {
	rt := a.rt.Load()
	if rt == nil {
		return nil
	}
	names := make([]string, 0, len(rt.Sinks))
	for name := range rt.Sinks {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}
