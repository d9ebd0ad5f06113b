package bridge

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/hookbridge/hookbridge/config"
	"github.com/hookbridge/hookbridge/delivery"
	"github.com/hookbridge/hookbridge/eventcodec"
	"github.com/hookbridge/hookbridge/inspect"
	"github.com/hookbridge/hookbridge/metrics"
	"github.com/hookbridge/hookbridge/queue"
	"github.com/hookbridge/hookbridge/queue/kafkaqueue"
	"github.com/hookbridge/hookbridge/server"
	"github.com/hookbridge/hookbridge/sinks"
	"github.com/hookbridge/hookbridge/sinks/kafka"
)

// ShutdownTimeout bounds each stage of a graceful stop.
const ShutdownTimeout = 10 * time.Second

// queueFailureWindow is how long /readyz reports not ready after the queue
// refused a write: as long as the 503 it answered asks the provider to wait.
const queueFailureWindow = server.RetryAfterUnqueued

// eventQueue is what the bridge needs of its queue: the embedded store
// (queue.Store) or a Kafka topic shared by replicas (kafkaqueue.Queue).
type eventQueue interface {
	delivery.Queue
	inspect.DeadLetterStore
	Enqueue(ctx context.Context, items []queue.Item) (dup []bool, err error)
	Reject(source string, raw []byte, reason string) error
	Refusing() error
	Close() error
}

// subscriber is a queue whose sinks read it themselves (kafkaqueue.Queue):
// each running sink subscribes, and unsubscribes when it leaves the config.
type subscriber interface {
	Subscribe(sink string) error
	Unsubscribe(sink string)
}

// lagReporter is a queue that knows how far each sink's readers are behind
// (kafkaqueue.Queue: its consumer groups' lag, measured in the background).
type lagReporter interface {
	Lag() (records map[string]int64, updated map[string]time.Time)
}

// stateSharer is a queue that offers the replicas' shared state
// (kafkaqueue.Queue: a compacted topic), for sinks whose state must follow
// an event to whichever replica delivers it.
type stateSharer interface {
	State() *kafkaqueue.State
}

// App is a running bridge.
type App struct {
	path string
	log  *slog.Logger
	m    *metrics.Metrics
	// defaultLog: Run makes its logger slog's default (UseAsDefaultLogger).
	defaultLog bool
	// manageMemory: Run and Reload set the runtime's soft memory limit
	// (ManageMemoryLimit); memoryLimitLogged once it has been logged.
	manageMemory      bool
	memoryLimitLogged bool

	// logLevel is the level of log, which a reload changes.
	logLevel slog.LevelVar
	// listenerBodyLimit is the largest body the webhook listener reads.
	listenerBodyLimit int64

	q      eventQueue
	rec    *inspect.Recorder
	engine *delivery.Engine
	srv    *server.Server
	admin  *server.Admin

	rt       atomic.Pointer[Runtime]
	reloadMu sync.Mutex
	ready    atomic.Bool
	// queueFailedAt is when an Enqueue last failed (unix nanoseconds, 0 never);
	// the bridge is not ready until one succeeds again.
	queueFailedAt atomic.Int64

	// Addr and AdminAddr are the listeners' actual addresses once Run has started them.
	addrMu    sync.Mutex
	addr      net.Addr
	adminAddr net.Addr
	started   chan struct{}
}

// New prepares a bridge for the config file at path; Run starts it.
func New(path string) *App {
	return &App{path: path, m: metrics.New(), rec: inspect.NewRecorder(1000), log: slog.Default(), started: make(chan struct{})}
}

// UseAsDefaultLogger makes Run install the logger the config asks for as
// slog's default, so that what logs through slog.Default (sinks, the
// libraries they drive) comes out in the same format and at the same level.
// The bridge binary does; an App inside another program leaves that
// program's default alone.
func (a *App) UseAsDefaultLogger() { a.defaultLog = true }

// ManageMemoryLimit makes Run and Reload set the Go runtime's soft memory
// limit (debug.SetMemoryLimit) from the config's memory_limit. The bridge
// binary does; an App inside another program leaves that program's limit
// alone.
func (a *App) ManageMemoryLimit() { a.manageMemory = true }

// NewLogger makes the logger the config asks for, writing to stderr.
func NewLogger(c LogConfig) *slog.Logger {
	var level slog.LevelVar
	setLogLevel(&level, c)
	return newLogger(c, &level)
}

// newLogger logs in c's format at the level level holds when it logs.
func newLogger(c LogConfig, level slog.Leveler) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

// Metrics returns the bridge's instruments.
func (a *App) Metrics() *metrics.Metrics { return a.m }

// Started is closed once the listeners are up.
func (a *App) Started() <-chan struct{} { return a.started }

// Addr is the webhook listener's address (after Started).
func (a *App) Addr() net.Addr { a.addrMu.Lock(); defer a.addrMu.Unlock(); return a.addr }

// AdminAddr is the admin listener's address (after Started; nil when it is off).
func (a *App) AdminAddr() net.Addr { a.addrMu.Lock(); defer a.addrMu.Unlock(); return a.adminAddr }

// Run loads the config, starts everything, and serves until ctx ends; then it
// stops gracefully: no new requests, requests under way answered, sinks
// flushed, queue closed. What was not delivered stays queued for next time.
func (a *App) Run(ctx context.Context) (err error) {
	f, err := Load(a.path)
	if err != nil {
		return err
	}
	setLogLevel(&a.logLevel, f.Log)
	a.log = newLogger(f.Log, &a.logLevel)
	if a.defaultLog {
		slog.SetDefault(a.log)
	}
	a.applyMemoryLimit(f, os.LookupEnv)
	rt, err := Build(f, nil)
	if err != nil {
		return err
	}
	closeSinks := func() {
		cctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
		defer cancel()
		for _, b := range a.rt.Load().Sinks {
			if err := b.Sink.Close(cctx); err != nil {
				a.log.Error("closing sink", "sink", b.Name, "err", err)
			}
		}
	}
	a.rt.Store(rt)

	if a.q, err = a.openQueue(f.Queue); err != nil {
		closeSinks()
		return err
	}
	defer func() {
		if cerr := a.q.Close(); cerr != nil {
			a.log.Error("closing the queue", "err", cerr)
		}
	}()
	a.m.WatchQueue(func() metrics.QueueStats {
		st := a.q.Stats()
		qs := metrics.QueueStats{
			Pending: st.Pending, OldestPending: st.OldestPending, DeadLetters: st.DeadLetters,
			DedupFilterBytes: st.DedupFilterBytes, DedupFilterBudget: st.DedupFilterBudget,
			DedupFilterBlind: st.DedupFilterBlind, DedupLookups: st.DedupLookups,
			DiskFree: st.DiskFree, DiskReserve: st.DiskReserve, Embedded: f.Queue.Type != "kafka",
		}
		if lr, ok := a.q.(lagReporter); ok {
			qs.Lag, qs.LagUpdated = lr.Lag() // measured in the background: no broker call here
		}
		return qs
	})
	a.engine = delivery.New(a.q, a.log, a.m)
	a.engine.Observe(a.rec)
	a.startSinks(ctx, rt, nil)
	a.warnOrphans(rt)

	ln, err := net.Listen("tcp", f.Server.Listen)
	if err != nil {
		a.engine.StopAll(context.Background())
		closeSinks()
		return fmt.Errorf("webhook listener: %w", err)
	}
	a.listenerBodyLimit = maxBodyLimit(f)
	opts := server.Options{
		BodyLimit: a.listenerBodyLimit, ReadTimeout: f.Server.ReadTimeout,
		WriteTimeout: f.Server.WriteTimeout, IdleTimeout: f.Server.IdleTimeout,
	}
	scheme := "http"
	if f.Server.TLS.Enabled() {
		if opts.TLS, err = a.listenerTLS(ctx, "webhooks", f.Server.TLS); err != nil {
			ln.Close()
			a.engine.StopAll(context.Background())
			closeSinks()
			return fmt.Errorf("webhook listener: %w", err)
		}
		scheme = "https"
	}
	a.srv = server.New(opts, a, a.log, a.m)
	a.srv.SetTable(rt.Table)
	var adminLn net.Listener
	if f.Admin.Listen != "" {
		a.admin = server.NewAdmin(a.m, a.readiness, a.adminToken)
		a.admin.Mux.Handle(inspect.Prefix, a.InspectorHandler())
		var adminTLS *tls.Config
		if f.Admin.TLS.Enabled() {
			adminTLS, err = a.listenerTLS(ctx, "admin", f.Admin.TLS)
		}
		if err == nil {
			adminLn, err = net.Listen("tcp", f.Admin.Listen)
		}
		if err != nil {
			ln.Close()
			a.engine.StopAll(context.Background())
			closeSinks()
			return fmt.Errorf("admin listener: %w", err)
		}
		if adminTLS != nil {
			adminLn = tls.NewListener(adminLn, adminTLS)
		}
	}
	a.addrMu.Lock()
	a.addr = ln.Addr()
	if adminLn != nil {
		a.adminAddr = adminLn.Addr()
	}
	a.addrMu.Unlock()

	serveErr := make(chan error, 2)
	go func() { serveErr <- a.srv.Serve(ln) }()
	if adminLn != nil {
		go func() { serveErr <- a.admin.Serve(adminLn) }()
	}
	rt.logSummary(a.log, scheme+"://"+displayAddr(ln.Addr()))
	a.log.Info("hookbridge is running", "webhooks", scheme+"://"+displayAddr(ln.Addr()), "admin", f.Admin.Listen, "queue", queueName(f.Queue))
	a.ready.Store(true)
	close(a.started)
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go a.watchConfig(watchCtx)

	select {
	case <-ctx.Done():
		a.log.Info("stopping: no new requests; finishing those under way")
	case err = <-serveErr:
		a.log.Error("listener failed; stopping", "err", err)
	}
	a.ready.Store(false)
	sctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	if serr := a.srv.Shutdown(sctx); serr != nil {
		a.log.Error("webhook listener shutdown", "err", serr)
	}
	dctx, dcancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer dcancel()
	a.engine.StopAll(dctx)
	closeSinks()
	if a.admin != nil {
		a.admin.Shutdown(sctx)
	}
	a.log.Info("stopped; undelivered events stay queued", "pending", a.q.Stats().Pending)
	return err
}

// openQueue opens the queue the config asks for.
func (a *App) openQueue(c QueueConfig) (eventQueue, error) {
	if c.Type == "kafka" {
		tlsConfig, mech, err := kafka.ClientSecurity(c.TLS, c.SASL)
		if err != nil {
			return nil, fmt.Errorf("queue: %w", err)
		}
		q, err := kafkaqueue.Open(kafkaqueue.Options{
			Brokers: c.Brokers, Topic: c.Topic, Group: c.Group, DeadLetterTopic: c.DeadLetterTopic, StateTopic: c.StateTopic,
			TLS: tlsConfig, SASL: mech, DedupWindow: c.DedupWindow, MaxHeld: c.MaxHeld, MaxHeldBytes: int64(c.MaxHeldBytes),
			MaxDedupIDs: c.DedupIDs, DedupLookback: c.DedupLookback,
			SessionTimeout: c.SessionTimeout, CommitInterval: c.CommitInterval, Logger: a.log,
			OnDuplicate: func(sink string, _ *event.Event) { a.m.DuplicatesRead.WithLabelValues(sink).Inc() },
			Route: func(ev *event.Event) []string {
				_, targets := a.rt.Load().Router.Match(ev)
				return targets
			},
		})
		if err != nil {
			return nil, fmt.Errorf("queue: %w", err)
		}
		return q, nil
	}
	minFree := int64(c.MinFreeSpace)
	if minFree == 0 {
		minFree = -1 // the check is off
	}
	q, err := queue.Open(queue.Options{Path: c.Path, DedupWindow: c.DedupWindow, DedupMemory: int(c.DedupMemory), MinFreeSpace: minFree, Logger: a.log})
	if err != nil {
		return nil, fmt.Errorf("opening the queue at %s: %w", c.Path, err)
	}
	return q, nil
}

// queueName says where the queue is, for the logs.
func queueName(c QueueConfig) string {
	if c.Type == "kafka" {
		return "kafka topic " + c.Topic + " (group " + c.Group + ")"
	}
	return c.Path
}

func displayAddr(addr net.Addr) string {
	s := addr.String()
	if strings.HasPrefix(s, "[::]:") {
		return "127.0.0.1:" + strings.TrimPrefix(s, "[::]:")
	}
	if strings.HasPrefix(s, "0.0.0.0:") {
		return "127.0.0.1:" + strings.TrimPrefix(s, "0.0.0.0:")
	}
	return s
}

func maxBodyLimit(f *File) int64 {
	limit := int64(f.Server.BodyLimit)
	for _, s := range f.Sources {
		if int64(s.Common.BodyLimit) > limit {
			limit = int64(s.Common.BodyLimit)
		}
	}
	return limit
}

func (a *App) readiness() error {
	if !a.ready.Load() {
		return errors.New("starting or stopping")
	}
	// Not ready for a while after a failed write, so a load balancer sends
	// the traffic elsewhere; then ready again to try (no traffic would
	// otherwise ever show that the queue recovered).
	if at := a.queueFailedAt.Load(); at != 0 && time.Since(time.Unix(0, at)) < queueFailureWindow {
		return fmt.Errorf("the queue refused a write at %s", time.Unix(0, at).UTC().Format(time.RFC3339))
	}
	// Not ready while the disk is too full for new events, traffic or not.
	return a.q.Refusing()
}

// startSinks connects the sinks of rt that prev does not already run and
// starts their delivery loops. A sink that cannot connect yet still starts:
// its events wait in the queue and are retried.
func (a *App) startSinks(ctx context.Context, rt, prev *Runtime) {
	for _, s := range rt.File.Sources {
		a.m.InitSource(s.Name, server.VerificationReasons())
	}
	for name, b := range rt.Sinks {
		if prev != nil && prev.Sinks[name] == b {
			continue
		}
		if user, ok := b.Sink.(sinks.StateUser); ok {
			if sharer, ok := a.q.(stateSharer); ok {
				user.UseSharedState(sharer.State())
			}
		}
		if st, ok := b.Sink.(sinks.Starter); ok {
			sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			if err := st.Start(sctx); err != nil {
				a.log.Warn("sink could not connect yet; its events stay queued and are retried", "sink", name, "err", err)
			}
			cancel()
		}
		if err := a.engine.Start(name, b.Sink, b.Policy); err != nil {
			a.log.Error("starting delivery", "sink", name, "err", err)
			continue
		}
		a.m.InitSink(name)
		if sub, ok := a.q.(subscriber); ok {
			a.m.DuplicatesRead.WithLabelValues(name) // a Kafka queue's readers drop duplicates
			if err := sub.Subscribe(name); err != nil {
				a.log.Error("reading the queue for a sink", "sink", name, "err", err)
			}
		}
	}
}

// warnOrphans says when the queue holds events for sinks the config no
// longer has (or has disabled): they are kept until such a sink returns.
func (a *App) warnOrphans(rt *Runtime) {
	for sink, n := range a.q.Stats().Pending {
		if n > 0 && rt.Sinks[sink] == nil {
			a.log.Warn("queued events wait for a sink that is not configured or is disabled; they are kept until it returns", "sink", sink, "pending", n)
		}
	}
}

// Ingest implements server.Ingester: it routes each event and queues it
// durably for its sinks, returning once the queue has fsync'd it.
func (a *App) Ingest(ctx context.Context, source string, evs []*event.Event) error {
	rt := a.rt.Load()
	items := make([]queue.Item, len(evs))
	for i, ev := range evs {
		_, targets := rt.Router.Match(ev)
		data, err := eventcodec.Encode(ev)
		if err != nil {
			return fmt.Errorf("encoding event %s: %w", ev.ID(), err)
		}
		items[i] = queue.Item{ID: DedupKey(ev), Event: data, Sinks: targets, CloudEvent: ev}
	}
	dup, err := a.q.Enqueue(ctx, items)
	if err != nil {
		if ctx.Err() == nil {
			a.queueFailedAt.Store(time.Now().UnixNano())
		}
		return err
	}
	a.queueFailedAt.Store(0)
	for i, ev := range evs {
		switch {
		case dup[i]:
			a.m.EventsDuplicate.WithLabelValues(source).Inc()
			a.log.Info("duplicate event dropped (already accepted)", "source", source, "id", ev.ID(), "type", ev.Type())
		case len(items[i].Sinks) == 0:
			a.m.EventsAccepted.WithLabelValues(source).Inc()
			a.m.EventsUnrouted.WithLabelValues(source).Inc()
			a.log.Info("event matched no route", "source", source, "id", ev.ID(), "type", ev.Type())
		default:
			a.m.EventsAccepted.WithLabelValues(source).Inc()
			a.rec.Accepted(source, ev, items[i].Sinks, items[i].Event)
			a.log.Debug("event queued", "source", source, "id", ev.ID(), "type", ev.Type(), "sinks", items[i].Sinks)
		}
	}
	return nil
}

// DedupKey is what makes two deliveries the same event: its source and id,
// which CloudEvents defines as unique together.
func DedupKey(ev *event.Event) string { return ev.Source() + " " + ev.ID() }

// Reject implements server.Ingester.
func (a *App) Reject(source string, raw []byte, reason string) error {
	return a.q.Reject(source, raw, reason)
}

// Reload loads the config file again and swaps it in: sources and routes at
// once, and sinks whose settings changed (their loops restart; unchanged
// sinks keep running). A file with errors is rejected whole and the running
// config stays.
func (a *App) Reload(ctx context.Context) error {
	// A reload asked for while the bridge starts (a SIGHUP right after a
	// restart) waits until it has started, then reads the file again.
	select {
	case <-a.started:
	case <-ctx.Done():
		return ctx.Err()
	}
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	prev := a.rt.Load()
	f, err := Load(a.path)
	if err == nil {
		err = checkRestartOnly(prev.File, f, a.listenerBodyLimit)
	}
	var rt *Runtime
	if err == nil {
		rt, err = Build(f, prev)
	}
	if err != nil {
		a.m.ConfigReloads.WithLabelValues("rejected").Inc()
		a.log.Error("config change rejected; the running config stays", "file", a.path, "errors", err.Error())
		return err
	}
	// Stop loops of sinks that are gone or changed before starting new ones.
	for name, old := range prev.Sinks {
		if rt.Sinks[name] != old {
			sctx, cancel := context.WithTimeout(ctx, ShutdownTimeout)
			a.engine.Stop(sctx, name)
			cancel()
			if err := old.Sink.Close(ctx); err != nil {
				a.log.Error("closing replaced sink", "sink", name, "err", err)
			}
			if sub, ok := a.q.(subscriber); ok && rt.Sinks[name] == nil {
				sub.Unsubscribe(name)
			}
		}
	}
	a.startSinks(ctx, rt, prev)
	a.rt.Store(rt)
	a.srv.SetTable(rt.Table)
	setLogLevel(&a.logLevel, f.Log)
	a.applyMemoryLimit(f, os.LookupEnv)
	a.m.ConfigReloads.WithLabelValues("ok").Inc()
	a.log.Info("config reloaded", "file", a.path, "sources", len(f.Sources), "sinks", len(rt.Sinks), "routes", len(f.Routes))
	a.warnOrphans(rt)
	return nil
}

// listenerTLS loads a listener's certificate files, to be read again when
// they are renewed (checked until ctx ends, handshakes or not), and reports
// the expiry of each certificate loaded.
func (a *App) listenerTLS(ctx context.Context, listener string, t ServerTLS) (*tls.Config, error) {
	certs, err := server.LoadCertFiles(t.CertFile, t.KeyFile, a.log.With("listener", listener), func(c *tls.Certificate) {
		a.m.CertificateNotAfter.WithLabelValues(listener).Set(float64(c.Leaf.NotAfter.Unix()))
	})
	if err != nil {
		return nil, err
	}
	go certs.Watch(ctx)
	return certs.TLSConfig(), nil
}

// adminToken is the admin token of the config in force.
func (a *App) adminToken() string {
	if rt := a.rt.Load(); rt != nil {
		return rt.File.Admin.Token
	}
	return ""
}

// setLogLevel sets level to c's (info when c names none).
func setLogLevel(level *slog.LevelVar, c LogConfig) {
	var l slog.Level
	_ = l.UnmarshalText([]byte(c.Level))
	level.Set(l)
}

// checkRestartOnly refuses reloads that change what only a restart can.
// What the running listeners and logger were built with is named; the
// rest of the config (sources, sinks, routes, the admin token, the log
// level, memory_limit) a reload changes.
//
// listenerBodyLimit is the largest body the webhook listener reads, as it
// was started; 0 skips that check.
func checkRestartOnly(old, f *File, listenerBodyLimit int64) error {
	var errs []error
	if old.Server.ReadTimeout != f.Server.ReadTimeout || old.Server.WriteTimeout != f.Server.WriteTimeout || old.Server.IdleTimeout != f.Server.IdleTimeout {
		errs = append(errs, errors.New("changing server.read_timeout, write_timeout or idle_timeout needs a restart"))
	}
	if limit := listenerBodyLimit; limit > 0 && maxBodyLimit(f) > limit {
		errs = append(errs, fmt.Errorf("raising a body_limit above %s, the largest the listener was started with, needs a restart (lowering one does not)", config.Size(limit)))
	}
	if old.Log.Format != f.Log.Format {
		errs = append(errs, errors.New("changing log.format needs a restart (log.level does not)"))
	}
	if old.Server.Listen != f.Server.Listen || old.Admin.Listen != f.Admin.Listen {
		errs = append(errs, errors.New("changing server.listen or admin.listen needs a restart"))
	}
	if old.Server.TLS != f.Server.TLS || old.Admin.TLS != f.Admin.TLS {
		errs = append(errs, errors.New("changing server.tls or admin.tls needs a restart (renewed certificate files are read without one)"))
	}
	if !reflect.DeepEqual(old.Queue, f.Queue) {
		errs = append(errs, errors.New("changing the queue needs a restart"))
	}
	return errors.Join(errs...)
}
