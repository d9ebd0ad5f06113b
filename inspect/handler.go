package inspect

import (
	"crypto/sha256"
	"crypto/subtle"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hookbridge/hookbridge/eventcodec"
	"github.com/hookbridge/hookbridge/queue"
)

// Prefix is the path the inspector is served under. The handler expects the
// full request path (mount it on a mux at Prefix, without stripping it).
const Prefix = "/inspector/"

// Limits of the JSON API.
const (
	defaultEventLimit      = 200
	defaultDeadLetterLimit = 100
	maxDeadLetterLimit     = 1000
	rawPreviewLimit        = 64 << 10 // bytes of a rejected request body shown
	maxReplayBody          = 4 << 10
)

//go:embed ui/index.html
var pageHTML string

//go:embed ui/inspector.css
var pageCSS string

//go:embed ui/inspector.js
var pageJS string

// Options configure NewHandler.
type Options struct {
	// Recorder holds the recent events and their delivery attempts. Required.
	Recorder *Recorder
	// Queue is the store whose dead letters are listed and replayed. Required.
	// A queue that keeps no dead-letter list answers errors.ErrUnsupported,
	// which the API answers 501.
	Queue DeadLetterStore
	// Token reports the token in force, asked on every request (a reloaded
	// config may change it). A non-empty one is required as
	// "Authorization: Bearer <token>"; the page itself may instead be opened
	// with ?token=<token> (its script then sends the header). Default nil,
	// or "": the inspector is open to whoever reaches the admin listener.
	Token func() string
	// Sinks lists the sinks the running config delivers to; a replay to any
	// other sink is refused, since nothing would deliver it. Default nil:
	// any sink is accepted.
	Sinks func() []string
	// SinkStates tells what the bridge knows of each running sink (its
	// type, circuit breaker, consumer-group lag) for GET sinks, which adds
	// the queue's pending count. It is called once per request and must
	// not block. Default nil: GET sinks answers 501.
	SinkStates func() []SinkState
	// Logger records replays. Default slog.Default().
	Logger *slog.Logger
}

// DeadLetterStore is what the inspector needs of the queue.
type DeadLetterStore interface {
	DeadLettersBefore(before string, limit int) ([]queue.DeadLetter, error)
	DeadLetter(key string) (queue.DeadLetter, error)
	Replay(key, sink string) error
	Discard(key string) error
	Stats() queue.Stats
}

type handler struct {
	rec        *Recorder
	q          DeadLetterStore
	sinks      func() []string
	sinkStates func() []SinkState
	log        *slog.Logger

	token func() string

	page   []byte
	csp    string
	mux    *http.ServeMux
	origin *http.CrossOriginProtection
}

// NewHandler returns the inspector: the page at Prefix and its JSON API
// under Prefix+"api/":
//
//	GET  /inspector/api/events?limit=N              recent events, newest first, with their status per sink
//	GET  /inspector/api/events/{key}                one event: its CloudEvent and delivery attempts
//	GET  /inspector/api/deadletters?limit=N&before=K the dead-letter list, newest first; "next" is the before of the next page
//	POST /inspector/api/deadletters/{key}/replay    queue a dead-lettered event again (?sink= or {"sink":...}; default the sink that gave up)
//	DELETE /inspector/api/deadletters/{key}         remove a dead letter for good
//	GET  /inspector/api/stats                       queue depth per sink and dead-letter count
//	GET  /inspector/api/sinks                       each running sink: type, circuit breaker, pending, lag
//
// Cross-origin requests that change state are refused, as are requests
// without the token when one is set.
func NewHandler(o Options) (http.Handler, error) {
	if o.Recorder == nil || o.Queue == nil {
		return nil, errors.New("inspect: Recorder and Queue are required")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	h := &handler{rec: o.Recorder, q: o.Queue, sinks: o.Sinks, sinkStates: o.SinkStates, log: o.Logger, origin: http.NewCrossOriginProtection()}
	h.token = o.Token
	if h.token == nil {
		h.token = func() string { return "" }
	}
	h.page, h.csp = assemblePage()

	mux := http.NewServeMux()
	mux.HandleFunc("GET "+Prefix+"{$}", h.servePage)
	mux.HandleFunc("GET "+Prefix+"api/events", h.listEvents)
	mux.HandleFunc("GET "+Prefix+"api/events/{key}", h.getEvent)
	mux.HandleFunc("GET "+Prefix+"api/deadletters", h.listDeadLetters)
	mux.HandleFunc("GET "+Prefix+"api/deadletters/{key}", h.getDeadLetter)
	mux.HandleFunc("POST "+Prefix+"api/deadletters/{key}/replay", h.replay)
	mux.HandleFunc("DELETE "+Prefix+"api/deadletters/{key}", h.discard)
	mux.HandleFunc("GET "+Prefix+"api/stats", h.stats)
	mux.HandleFunc("GET "+Prefix+"api/sinks", h.listSinks)
	mux.HandleFunc(Prefix+"api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such inspector API: "+r.URL.Path)
	})
	h.mux = mux
	return h, nil
}

// assemblePage inlines the stylesheet and the script into the page, and
// makes a Content-Security-Policy that allows exactly those two and nothing
// else: no other script, no remote resource, no framing.
func assemblePage() ([]byte, string) {
	page := strings.Replace(pageHTML, "/*INSPECTOR_CSS*/", pageCSS, 1)
	page = strings.Replace(page, "/*INSPECTOR_JS*/", pageJS, 1)
	hash := func(s string) string {
		sum := sha256.Sum256([]byte(s))
		return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
	}
	csp := "default-src 'none'; script-src " + hash(pageJS) + "; style-src " + hash(pageCSS) +
		"; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
	return []byte(page), csp
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Referrer-Policy", "no-referrer")
	hdr.Set("X-Frame-Options", "DENY")
	if !h.authorized(r) {
		hdr.Set("WWW-Authenticate", `Bearer realm="hookbridge inspector"`)
		http.Error(w, "admin token required: send Authorization: Bearer <token>, or open "+Prefix+"?token=<token>", http.StatusUnauthorized)
		return
	}
	// A web page must not replay dead letters through a visitor's browser
	// (which matters most when no token is set).
	if err := h.origin.Check(r); err != nil {
		writeError(w, http.StatusForbidden, "cross-origin request refused: "+err.Error())
		return
	}
	h.mux.ServeHTTP(w, r)
}

// authorized checks the token in constant time (of the token's hash, so
// its length does not show either).
func (h *handler) authorized(r *http.Request) bool {
	token := h.token()
	if token == "" {
		return true
	}
	want := sha256.Sum256([]byte(token))
	if got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && tokenMatches(got, want) {
		return true
	}
	isPage := (r.Method == http.MethodGet || r.Method == http.MethodHead) && r.URL.Path == Prefix
	return isPage && tokenMatches(r.URL.Query().Get("token"), want)
}

func tokenMatches(got string, want [sha256.Size]byte) bool {
	sum := sha256.Sum256([]byte(got))
	return subtle.ConstantTimeCompare(sum[:], want[:]) == 1
}

func (h *handler) servePage(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("Content-Type", "text/html; charset=utf-8")
	hdr.Set("Content-Security-Policy", h.csp)
	hdr.Set("Content-Length", strconv.Itoa(len(h.page)))
	if r.Method == http.MethodHead {
		return
	}
	w.Write(h.page)
}

// eventList is the answer of GET events.
type eventList struct {
	Events []Entry `json:"events"`
}

func (h *handler) listEvents(w http.ResponseWriter, r *http.Request) {
	limit, err := limitParam(r, defaultEventLimit, h.rec.cap)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, eventList{Events: h.rec.Recent(limit)})
}

func (h *handler) getEvent(w http.ResponseWriter, r *http.Request) {
	e, ok := h.rec.Get(r.PathValue("key"))
	if !ok {
		writeError(w, http.StatusNotFound, "no recent event with that key (the inspector keeps the last "+strconv.Itoa(h.rec.cap)+")")
		return
	}
	e.Event = showable(e.Event)
	writeJSON(w, http.StatusOK, e)
}

// DeadLetterView is one entry of GET deadletters.
type DeadLetterView struct {
	Key      string    `json:"key"`            // for replay
	Sink     string    `json:"sink,omitempty"` // the sink that gave up; empty for a rejected request
	From     string    `json:"from,omitempty"` // the sink that had forwarded the event to Sink
	Source   string    `json:"source"`         // the bridge source (YAML name)
	Reason   string    `json:"reason"`
	Attempts int       `json:"attempts"`
	At       time.Time `json:"at"`
	// Replayable is true for an event (false for a rejected request body).
	Replayable bool `json:"replayable"`

	// For an event:
	EventKey     string          `json:"event_key,omitempty"` // its key in GET events/{key}
	EventID      string          `json:"event_id,omitempty"`
	EventType    string          `json:"event_type,omitempty"`
	EventSubject string          `json:"event_subject,omitempty"`
	EventSource  string          `json:"event_source,omitempty"`
	Event        json.RawMessage `json:"event,omitempty"`

	// For a rejected request: its body as text when it is UTF-8, else in
	// base64; at most 64 KiB of it.
	Raw          string `json:"raw,omitempty"`
	RawBase64    string `json:"raw_base64,omitempty"`
	RawSize      int    `json:"raw_size,omitempty"`
	RawTruncated bool   `json:"raw_truncated,omitempty"`
}

type deadLetterList struct {
	DeadLetters []DeadLetterView `json:"dead_letters"`
	Total       int              `json:"total"`
	// Next, when set, asks for the next page: ?before=<Next>. It is set
	// when the page is full, so the last page may be empty.
	Next string `json:"next,omitempty"`
}

func (h *handler) listDeadLetters(w http.ResponseWriter, r *http.Request) {
	limit, err := limitParam(r, defaultDeadLetterLimit, maxDeadLetterLimit)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	dls, err := h.q.DeadLettersBefore(r.URL.Query().Get("before"), limit)
	if errors.Is(err, queue.ErrNotFound) {
		writeError(w, http.StatusBadRequest, "before: "+err.Error())
		return
	}
	if errors.Is(err, errors.ErrUnsupported) {
		writeError(w, http.StatusNotImplemented, err.Error())
		return
	}
	if err != nil {
		h.log.Error("inspector: listing dead letters", "err", err)
		writeError(w, http.StatusInternalServerError, "listing dead letters: "+err.Error())
		return
	}
	// ?brief=1 leaves the events and request bodies out: the page polls
	// the list every 2 s and fetches a body (GET deadletters/{key}) only
	// when it is shown, so large dead letters are not sent on every poll.
	brief := r.URL.Query().Get("brief") == "1"
	out := deadLetterList{DeadLetters: make([]DeadLetterView, 0, len(dls)), Total: h.q.Stats().DeadLetters}
	for _, dl := range dls {
		v := viewDeadLetter(dl)
		if brief {
			v.Event, v.Raw, v.RawBase64 = nil, "", ""
		}
		out.DeadLetters = append(out.DeadLetters, v)
	}
	if len(dls) == limit {
		out.Next = dls[len(dls)-1].Key
	}
	writeJSON(w, http.StatusOK, out)
}

// getDeadLetter answers one dead letter, its event or request body
// included.
func (h *handler) getDeadLetter(w http.ResponseWriter, r *http.Request) {
	dl, ok := h.deadLetter(w, r.PathValue("key"))
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, viewDeadLetter(dl))
}

func viewDeadLetter(dl queue.DeadLetter) DeadLetterView {
	v := DeadLetterView{Key: dl.Key, Sink: dl.Sink, From: dl.From, Source: dl.Source, Reason: dl.Reason,
		Attempts: dl.Attempts, At: dl.At}
	if dl.Event != nil {
		v.Replayable = true
		v.Event = showable(dl.Event)
		if ev, err := eventcodec.Decode(dl.Event); err == nil {
			v.EventKey, v.EventID, v.EventType = Key(ev), ev.ID(), ev.Type()
			v.EventSubject, v.EventSource = ev.Subject(), ev.Source()
			if v.Source == "" {
				v.Source, _ = ev.Extensions()[ExtBridgeSource].(string)
			}
		}
		return v
	}
	raw := dl.Raw
	v.RawSize = len(raw)
	if len(raw) > rawPreviewLimit {
		raw, v.RawTruncated = raw[:rawPreviewLimit], true
	}
	if utf8.Valid(raw) || (v.RawTruncated && utf8.Valid(trimPartialRune(raw))) {
		v.Raw = string(trimPartialRune(raw))
	} else {
		v.RawBase64 = base64.StdEncoding.EncodeToString(raw)
	}
	return v
}

// trimPartialRune drops an incomplete UTF-8 sequence that a cut left at the end.
func trimPartialRune(b []byte) []byte {
	for i := 0; i < utf8.UTFMax && len(b) > 0; i++ {
		r, size := utf8.DecodeLastRune(b)
		if r != utf8.RuneError || size != 1 {
			return b
		}
		b = b[:len(b)-1]
	}
	return b
}

// showable is a stored event as structured JSON, or nil when it cannot be
// shown as such.
func showable(stored []byte) json.RawMessage {
	js, err := eventcodec.JSON(stored)
	if err != nil || !json.Valid(js) {
		return nil
	}
	return js
}

// ReplayRequest is the optional body of POST deadletters/{key}/replay.
type ReplayRequest struct {
	// Sink to deliver to. Default: the sink that gave up on the event.
	Sink string `json:"sink"`
}

// ReplayResult is the answer of a replay.
type ReplayResult struct {
	Key      string `json:"key"`       // the dead letter, now gone from the list
	Sink     string `json:"sink"`      // where the event is queued
	EventKey string `json:"event_key"` // the event's key in GET events/{key}
	EventID  string `json:"event_id"`
}

func (h *handler) replay(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	var req ReplayRequest
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxReplayBody))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, "replay request body too large")
		return
	}
	if len(strings.TrimSpace(string(body))) > 0 {
		if err := json.Unmarshal(body, &req); err != nil {
			writeError(w, http.StatusBadRequest, "replay request body: "+err.Error())
			return
		}
	}
	if s := r.URL.Query().Get("sink"); s != "" {
		req.Sink = s
	}

	dl, ok := h.deadLetter(w, key)
	if !ok {
		return
	}
	if dl.Event == nil {
		writeError(w, http.StatusConflict, "a rejected request body is not an event and cannot be replayed")
		return
	}
	sink := req.Sink
	if sink == "" {
		sink = dl.Sink
	}
	if h.sinks != nil && !slices.Contains(h.sinks(), sink) {
		writeError(w, http.StatusConflict, fmt.Sprintf("sink %q is not running in the current config (missing or disabled); nothing would deliver the event", sink))
		return
	}
	res := ReplayResult{Key: key, Sink: sink}
	undo := func() {}
	if ev, err := eventcodec.Decode(dl.Event); err == nil {
		// Recorded first: once queued, the event may be delivered at once.
		undo = h.rec.replayed(ev, sink, dl.Event)
		res.EventKey, res.EventID = Key(ev), ev.ID()
	}
	if err := h.q.Replay(key, sink); err != nil {
		undo()
		if errors.Is(err, queue.ErrNotFound) {
			writeError(w, http.StatusNotFound, errNoDeadLetter)
			return
		}
		h.log.Error("inspector: replaying a dead letter", "key", key, "sink", sink, "err", err)
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	h.log.Info("dead letter replayed", "key", key, "sink", sink, "id", res.EventID, "client", r.UserAgent())
	writeJSON(w, http.StatusOK, res)
}

// deadLetter looks a dead letter up by key; when it is not there, or the
// store fails, it answers the request and reports false.
func (h *handler) deadLetter(w http.ResponseWriter, key string) (queue.DeadLetter, bool) {
	dl, err := h.q.DeadLetter(key)
	switch {
	case errors.Is(err, queue.ErrNotFound):
		writeError(w, http.StatusNotFound, errNoDeadLetter)
		return dl, false
	case errors.Is(err, errors.ErrUnsupported):
		writeError(w, http.StatusNotImplemented, err.Error())
		return dl, false
	case err != nil:
		h.log.Error("inspector: finding a dead letter", "key", key, "err", err)
		writeError(w, http.StatusInternalServerError, err.Error())
		return dl, false
	}
	return dl, true
}

const errNoDeadLetter = "no dead letter with that key (already replayed or discarded?)"

// discard removes a dead letter for good.
func (h *handler) discard(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	dl, ok := h.deadLetter(w, key)
	if !ok {
		return
	}
	if err := h.q.Discard(key); err != nil {
		if errors.Is(err, queue.ErrNotFound) {
			writeError(w, http.StatusNotFound, errNoDeadLetter)
			return
		}
		h.log.Error("inspector: discarding a dead letter", "key", key, "err", err)
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	v := viewDeadLetter(dl)
	h.log.Info("dead letter discarded", "key", key, "sink", dl.Sink, "source", v.Source, "id", v.EventID, "reason", dl.Reason, "client", r.UserAgent())
	writeJSON(w, http.StatusOK, map[string]string{"key": key})
}

// StatsView is the answer of GET stats.
type StatsView struct {
	Pending       map[string]int `json:"pending"`                  // pending deliveries per sink
	OldestPending *time.Time     `json:"oldest_pending,omitempty"` // acceptance time of the oldest
	DeadLetters   int            `json:"dead_letters"`
	Events        int            `json:"events"` // event bodies stored
}

func (h *handler) stats(w http.ResponseWriter, r *http.Request) {
	st := h.q.Stats()
	v := StatsView{Pending: st.Pending, DeadLetters: st.DeadLetters, Events: st.Events}
	if !st.OldestPending.IsZero() {
		v.OldestPending = &st.OldestPending
	}
	writeJSON(w, http.StatusOK, v)
}

// SinkState is what the bridge knows of one running sink.
type SinkState struct {
	Name string `json:"name"`
	Type string `json:"type"` // kafka, slack, http, file
	// Circuit is its circuit breaker's state: closed, open (deliveries
	// held until a probe gets through), half-open (the probe is under
	// way), or off.
	Circuit string `json:"circuit"`
	// Lag is its consumer group's lag in records, as last measured at
	// LagMeasured (queue.type kafka only; nil until measured).
	Lag         *int64     `json:"lag,omitempty"`
	LagMeasured *time.Time `json:"lag_measured,omitempty"`
	// Since the bridge started: events delivered, attempts that failed,
	// events dead-lettered.
	Delivered      int64 `json:"delivered"`
	FailedAttempts int64 `json:"failed_attempts"`
	DeadLettered   int64 `json:"dead_lettered"`
}

// SinkView is one entry of GET sinks: the sink's state and its queue.
type SinkView struct {
	SinkState
	Pending int `json:"pending"` // deliveries queued for it, in flight or not
	// OldestPending is the acceptance time of its oldest pending delivery,
	// and OldestPendingSeconds that delivery's age, where the queue tells.
	OldestPending        *time.Time `json:"oldest_pending,omitempty"`
	OldestPendingSeconds *float64   `json:"oldest_pending_seconds,omitempty"`
}

type sinkList struct {
	Sinks []SinkView `json:"sinks"`
}

func (h *handler) listSinks(w http.ResponseWriter, r *http.Request) {
	if h.sinkStates == nil {
		writeError(w, http.StatusNotImplemented, "this inspector was set up without sink states")
		return
	}
	states := h.sinkStates()
	st := h.q.Stats()
	now := time.Now()
	out := sinkList{Sinks: make([]SinkView, 0, len(states))}
	for _, s := range states {
		v := SinkView{SinkState: s, Pending: st.Pending[s.Name]}
		if at, ok := st.OldestPendingBySink[s.Name]; ok && !at.IsZero() && v.Pending > 0 {
			age := max(now.Sub(at), 0).Seconds()
			v.OldestPending, v.OldestPendingSeconds = &at, &age
		}
		out.Sinks = append(out.Sinks, v)
	}
	slices.SortFunc(out.Sinks, func(a, b SinkView) int { return strings.Compare(a.Name, b.Name) })
	writeJSON(w, http.StatusOK, out)
}

func limitParam(r *http.Request, def, max int) (int, error) {
	s := r.URL.Query().Get("limit")
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("limit %q: want a positive number", s)
	}
	return min(n, max), nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "encoding the answer: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
