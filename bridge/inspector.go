package bridge

import (
	"net/http"
	"sort"

	"github.com/hookbridge/hookbridge/inspect"
)

// InspectorHandler is the event inspector (the page and its JSON API), to
// mount on the admin listener at inspect.Prefix once Run has opened the
// queue. A non-empty token is required on every request. Replays go only to
// sinks the running config delivers to, as of the latest reload.
func (a *App) InspectorHandler(token string) http.Handler {
	h, err := inspect.NewHandler(inspect.Options{
		Recorder: a.rec,
		Queue:    a.q,
		Token:    token,
		Logger:   a.log,
		Sinks:    a.runningSinks,
	})
	if err != nil {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "inspector unavailable: "+err.Error(), http.StatusServiceUnavailable)
		})
	}
	return h
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
