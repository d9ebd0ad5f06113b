package server

import (
	"context"
	"crypto/subtle"
	"errors"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/hookbridge/hookbridge/metrics"
)

// Admin is the admin listener: /healthz, /readyz, /metrics, and whatever
// else the bridge mounts on Mux.
type Admin struct {
	Mux *http.ServeMux
	srv *http.Server
}

// NewAdmin makes the admin listener. ready reports nil when the bridge can
// accept events, else why not. token reports the token in force (asked on
// every request, so that a reloaded config changes it); a non-empty one is
// required, as "Authorization: Bearer <token>", on everything but /healthz
// and /readyz.
func NewAdmin(m *metrics.Metrics, ready func() error, token func() string) *Admin {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := ready(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ready\n"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry}))
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	return &Admin{Mux: mux, srv: &http.Server{Handler: RequireToken(token, mux, "/healthz", "/readyz"), ReadHeaderTimeout: 5 * time.Second}}
}

// RequireToken wraps h so that every path but the open ones needs
// "Authorization: Bearer <token>", token being what token reports at the
// request; an empty token requires nothing.
func RequireToken(token func() string, h http.Handler, open ...string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t := token()
		if t == "" && !hostIsAnAddress(r.Host) && guardedWithoutToken(r.URL.Path) {
			// Without a token, a page on another site could reach the
			// inspector through a visitor's browser by pointing its own
			// name at this address (DNS rebinding): the browser sends
			// that name as Host, and sees the answers as same-origin.
			http.Error(w, "without admin.token the inspector and pprof answer only requests to an IP address or localhost; set admin.token to reach them by name", http.StatusForbidden)
			return
		}
		if t == "" || slices.Contains(open, r.URL.Path) {
			h.ServeHTTP(w, r)
			return
		}
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte("Bearer "+t)) != 1 && !inspectorPage(r, t) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="hookbridge admin"`)
			http.Error(w, "admin token required", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// guardedWithoutToken: the paths that show events or the process's
// insides, or change what is queued.
func guardedWithoutToken(path string) bool {
	return strings.HasPrefix(path, "/inspector") || strings.HasPrefix(path, "/debug/")
}

// hostIsAnAddress reports whether a request's Host names the listener by
// an IP address or as localhost, which a rebinding page cannot send.
func hostIsAnAddress(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	_, err := netip.ParseAddr(host)
	return err == nil
}

// inspectorPage lets a browser open the inspector page itself with
// ?token=...; its script then sends the header on every API call.
func inspectorPage(r *http.Request, token string) bool {
	if r.Method != http.MethodGet || (r.URL.Path != "/inspector/" && r.URL.Path != "/inspector") {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(r.URL.Query().Get("token")), []byte(token)) == 1
}

// Serve serves on ln until Shutdown.
func (a *Admin) Serve(ln net.Listener) error {
	if err := a.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Shutdown stops the admin listener.
func (a *Admin) Shutdown(ctx context.Context) error { return a.srv.Shutdown(ctx) }
