package sinks

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/hookbridge/hookbridge/config"
)

// Sink delivers events to one destination. Deliver is called from several
// goroutines at once.
type Sink interface {
	// Deliver sends one event. A nil error means the destination has it.
	// Wrap errors that must not be retried with Permanent.
	Deliver(ctx context.Context, ev *event.Event) error
	// Close flushes and releases the sink. It is safe after a partial Start.
	Close(ctx context.Context) error
}

// BatchSink is implemented by sinks that deliver many events in one round
// trip (Kafka, files). errs has one entry per event, nil for delivered.
type BatchSink interface {
	DeliverBatch(ctx context.Context, evs []*event.Event) (errs []error)
}

// Preparer is implemented by batching sinks whose per-event work (rendering
// templates, encoding) can be done apart from their I/O. The delivery loop
// of such a sink prepares the next batch while the one before it is being
// sent, and still sends one batch at a time, in the queue's order, so the
// destination's round trip no longer waits for the encoding and the
// encoding no longer waits for the round trip.
type Preparer interface {
	// PrepareBatch does the per-event work for evs without touching the
	// destination, and returns what sends them: send returns one error per
	// event, nil for delivered, as DeliverBatch does. It may run while an
	// earlier batch's send is under way.
	PrepareBatch(evs []*event.Event) (send func(ctx context.Context) []error)
}

// Pipeliner is implemented by batching sinks whose client can hold several
// batches at once and sends them in the order it was given them (Kafka's
// producer, one request per partition at a time): the destination then
// does not wait while the bridge settles one batch and hands over the next. The delivery loop of such
// a sink starts batches one at a time, in the queue's order, and lets up to
// the sink's concurrency of them be started and not yet answered.
type Pipeliner interface {
	// StartBatch does the per-event work for evs and hands the batch to the
	// client without waiting for the destination's answer; ctx bounds only
	// that. wait returns one error per event, nil for delivered, once the
	// destination has answered or its ctx ends, as DeliverBatch does.
	StartBatch(ctx context.Context, evs []*event.Event) (wait func(ctx context.Context) []error)
}

// Starter is implemented by sinks that connect before the first delivery.
type Starter interface {
	Start(ctx context.Context) error
}

// SharedState is a small key-value map that every replica of a bridge
// shares: with queue type kafka, a compacted topic each replica reads. Get
// sees every Put and Delete any replica finished before it was called.
type SharedState interface {
	Get(ctx context.Context, key string) (value []byte, found bool, err error)
	Put(ctx context.Context, key string, value []byte) error
	Delete(ctx context.Context, key string) error
	// Each calls fn for the keys with prefix until fn returns false.
	Each(ctx context.Context, prefix string, fn func(key string, value []byte) bool) error
}

// StateUser is implemented by sinks whose state must follow an event to
// whichever replica delivers it (Slack's threads: the next message of a
// conversation goes under the parent another replica posted). When the
// bridge's queue offers a SharedState, the bridge hands it to the sink
// before Start, and the sink keeps that state there instead of on its own
// disk.
type StateUser interface {
	UseSharedState(SharedState)
}

// Config is a sink kind's own configuration: the YAML keys besides the common
// ones (type, retry, dead_letter, enabled, concurrency).
type Config interface {
	config.Validator
	// NewSink builds the sink named name. It makes no network connection.
	NewSink(name string) (Sink, error)
}

// FileChecker is implemented by the Config of sinks that read files the
// config names when they start (the kafka sink's certificates). Validate
// does no I/O; the bridge calls CheckFiles when it loads the config, right
// after Validate, so that a file that is missing or holds no certificate is
// a mistake in the config, reported with its line and column before
// anything starts (and refusing a reload), not a destination that is down.
// It reports errors as Validate does: config.Invalid names the key.
type FileChecker interface {
	CheckFiles() error
}

// Registration describes one sink kind.
type Registration struct {
	Type      string
	NewConfig func() Config
	Example   string
	// DefaultRateLimit is the rate_limit of a sink of this kind that sets
	// none: the pace its service accepts (unset: no limit).
	DefaultRateLimit config.Rate
}

var (
	mu       sync.RWMutex
	registry = map[string]Registration{}
)

// Register adds a sink kind from its package's init(); twice panics.
func Register(r Registration) {
	mu.Lock()
	defer mu.Unlock()
	if r.Type == "" || r.NewConfig == nil {
		panic("sinks: Register needs a Type and NewConfig")
	}
	if _, dup := registry[r.Type]; dup {
		panic(fmt.Sprintf("sinks: type %q registered twice", r.Type))
	}
	registry[r.Type] = r
}

// Lookup returns the registration of a kind.
func Lookup(typ string) (Registration, bool) {
	mu.RLock()
	defer mu.RUnlock()
	r, ok := registry[typ]
	return r, ok
}

// Types lists the registered kinds, sorted.
func Types() []string {
	mu.RLock()
	defer mu.RUnlock()
	out := make([]string, 0, len(registry))
	for t := range registry {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Permanent marks err as not worth retrying (a CRM's 400): the event is
// dead-lettered at once.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

// IsPermanent reports whether err was marked with Permanent.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

// A Responded error came with an answer from the destination. When the
// delivery is given up on, its dead-letter sink is told of the answer in
// the knativeerrorcode and knativeerrordata extensions, as Knative's
// dispatchers tell theirs.
type Responded interface {
	error
	// ResponseStatus is the answer's status code (HTTP).
	ResponseStatus() int
	// ResponseBody is the start of the answer's body as it came (bytes,
	// not text), up to AnswerLimit.
	ResponseBody() []byte
}

// AnswerLimit is how much of an answer's body a Responded error keeps, as
// it came: what Knative's knativeerrordata holds.
const AnswerLimit = 1024

// ResponseOf returns the answer err came with, if any, and of its body
// no more than AnswerLimit bytes.
func ResponseOf(err error) (status int, body []byte, ok bool) {
	var r Responded
	if !errors.As(err, &r) {
		return 0, nil, false
	}
	body = r.ResponseBody()
	return r.ResponseStatus(), body[:min(len(body), AnswerLimit)], true
}

// WithResponse marks err as having come with an answer of status and body
// (see Responded).
func WithResponse(err error, status int, body []byte) error {
	if err == nil {
		return nil
	}
	return respondedError{err: err, status: status, body: body}
}

type respondedError struct {
	err    error
	status int
	body   []byte
}

func (e respondedError) Error() string        { return e.err.Error() }
func (e respondedError) Unwrap() error        { return e.err }
func (e respondedError) ResponseStatus() int  { return e.status }
func (e respondedError) ResponseBody() []byte { return e.body }

type retryAfterError struct {
	err   error
	after time.Duration
}

func (e retryAfterError) Error() string { return e.err.Error() }
func (e retryAfterError) Unwrap() error { return e.err }

// RetryAfter marks err with the destination's requested wait (HTTP
// Retry-After, Slack 429); the delivery loop waits at least that long.
func RetryAfter(err error, after time.Duration) error {
	if err == nil {
		return nil
	}
	return retryAfterError{err: err, after: after}
}

// RetryAfterOf returns the wait err asks for, if any.
func RetryAfterOf(err error) (time.Duration, bool) {
	var r retryAfterError
	if errors.As(err, &r) {
		return r.after, true
	}
	return 0, false
}

// ParseRetryAfter reads an HTTP Retry-After value: delay seconds or an HTTP
// date, which is measured from now. The wait is capped at limit, and a date
// in the past is no wait; ok is false when v is neither form.
func ParseRetryAfter(v string, now time.Time, limit time.Duration) (wait time.Duration, ok bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseUint(v, 10, 64); err == nil || errors.Is(err, strconv.ErrRange) {
		if err != nil || secs > uint64(limit/time.Second) {
			return limit, true
		}
		return time.Duration(secs) * time.Second, true
	}
	if when, err := http.ParseTime(v); err == nil {
		return min(max(when.Sub(now), 0), limit), true
	}
	return 0, false
}

// Previewer is implemented by sinks that can show what they would send for
// an event without sending it (`bridge routes test`).
type Previewer interface {
	Preview(ev *event.Event) ([]byte, error)
}
