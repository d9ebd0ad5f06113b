package delivery

import (
	"errors"
	"math/rand/v2"
	"time"

	"github.com/hookbridge/hookbridge/config"
)

// Policy is a sink's delivery settings: its `retry`, `dead_letter`,
// `concurrency` and `batch_size` keys.
type Policy struct {
	Retry Retry `yaml:"retry"`
	// DeadLetter names the sink that receives events this sink gives up on.
	// Empty: they are kept in the bridge's dead-letter store.
	DeadLetter string `yaml:"dead_letter"`
	// Concurrency is how many deliveries to this sink run at once. Default 4
	// (1 for sinks that take batches). For a sinks.Pipeliner it is how many
	// batches may be started and not yet answered, always started one at a
	// time in the queue's order; default 2.
	Concurrency int `yaml:"concurrency"`
	// BatchSize is the most events handed to a batching sink at once.
	// Default 500.
	BatchSize int `yaml:"batch_size"`
	// BatchWait is how long a batching sink's batch that is not full waits
	// for more events before it is handed over. Each batch costs the sink
	// a fixed amount (an fsync, a produce request) and the queue a scan
	// and a commit, so fuller batches cost less per event; the price is up
	// to BatchWait more delivery latency, never more acknowledgement
	// latency. A full batch, as when a backlog drains, never waits.
	// Default 20ms; 0 hands each batch over at once.
	BatchWait time.Duration `yaml:"batch_wait"`
	// RateLimit caps the events delivered to the sink per unit of time
	// ("1/s", "30/m"), across its concurrent deliveries, with bursts of up
	// to one second's worth (at least one event). A batching sink's batch
	// waits for as many events' worth. Default: the sink kind's
	// (sinks.Registration.DefaultRateLimit), else none; "none" turns a
	// kind's default off.
	RateLimit config.Rate `yaml:"rate_limit"`
}

// Retry is the `retry` key.
type Retry struct {
	// MaxAttempts counts the first try. Default 8.
	MaxAttempts int `yaml:"max_attempts"`
	// InitialBackoff is the wait before the second try. Default 1s.
	InitialBackoff time.Duration `yaml:"initial_backoff"`
	// MaxBackoff caps the wait between tries. Default 5m.
	MaxBackoff time.Duration `yaml:"max_backoff"`
}

// DefaultBatchWait is a batching sink's batch_wait when the config sets
// none: at 10,000 events/s it made the file sink's batches about 10 times
// fuller (200-260 events instead of 13-25); BENCHMARKS.md has what that
// saved.
const DefaultBatchWait = 20 * time.Millisecond

// MaxBatchWait bounds batch_wait: beyond it, events would sit in the queue
// for no gain.
const MaxBatchWait = 10 * time.Second

// DefaultPolicy is the policy of a sink that sets none of the keys.
func DefaultPolicy() Policy {
	return Policy{
		Retry:     Retry{MaxAttempts: 8, InitialBackoff: time.Second, MaxBackoff: 5 * time.Minute},
		BatchWait: DefaultBatchWait,
	}
}

// Validate implements config.Validator.
func (p *Policy) Validate() error {
	var errs []error
	if p.Retry.MaxAttempts < 1 {
		errs = append(errs, config.Invalid("retry", "max_attempts must be at least 1"))
	}
	if p.Retry.InitialBackoff <= 0 || p.Retry.MaxBackoff < p.Retry.InitialBackoff {
		errs = append(errs, config.Invalid("retry", "needs 0 < initial_backoff <= max_backoff"))
	}
	if p.Concurrency < 0 || p.BatchSize < 0 {
		errs = append(errs, config.Invalid("concurrency", "concurrency and batch_size must not be negative"))
	}
	if p.BatchWait < 0 || p.BatchWait > MaxBatchWait {
		errs = append(errs, config.Invalid("batch_wait", "must be between 0s and %s, not %s", MaxBatchWait, p.BatchWait))
	}
	return errors.Join(errs...)
}

// Backoff is the wait after the given number of failed attempts (1 = after
// the first try): initial * 2^(attempts-1), capped at MaxBackoff, with the
// upper half jittered so that many failing events do not retry in step.
func (r Retry) Backoff(attempts int, retryAfter time.Duration) time.Duration {
	d := r.InitialBackoff
	for i := 1; i < attempts && d < r.MaxBackoff; i++ {
		d *= 2
	}
	if d > r.MaxBackoff {
		d = r.MaxBackoff
	}
	if half := d / 2; half > 0 {
		d = half + rand.N(half+1)
	}
	if retryAfter > d {
		d = retryAfter
	}
	return d
}
