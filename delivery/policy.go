package delivery

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/hookbridge/hookbridge/config"
)

// Policy is a sink's delivery settings: its `retry`, `dead_letter`,
// `concurrency`, `batch_size`, `batch_wait`, `rate_limit` and
// `circuit_breaker` keys.
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
	// CircuitBreaker holds every delivery to the sink while its endpoint
	// looks down, instead of letting each worker spend its events' attempts
	// on it. Default: on, DefaultCircuitBreaker; "off" turns it off.
	CircuitBreaker CircuitBreaker `yaml:"circuit_breaker"`
}

// CircuitBreaker is the `circuit_breaker` key: `off`, or a mapping of
// failures, cooldown and max_cooldown (a key left out keeps its default).
//
// Closed, deliveries go as usual. After Failures sends in a row that fail
// with a retryable error, it opens: no delivery to the sink is sent until
// Cooldown has passed (nor sooner than the destination's Retry-After, when
// the last failure carried one). The workers wait holding their events,
// which spend no attempt while they wait. Then exactly one send goes as a
// probe: success closes the breaker, failure opens it again for twice the
// cooldown before, up to MaxCooldown.
type CircuitBreaker struct {
	// Failures is how many sends in a row must fail, retryably, to open the
	// breaker. A send is one call to the sink: one event, or one batch for
	// a batching sink. Default 5.
	Failures int `yaml:"failures"`
	// Cooldown is how long the breaker stays open the first time. Default 30s.
	Cooldown time.Duration `yaml:"cooldown"`
	// MaxCooldown caps the doubling of the cooldown after failed probes.
	// Default 5m, or Cooldown if that is longer.
	MaxCooldown time.Duration `yaml:"max_cooldown"`
	// Off is `circuit_breaker: off`: every worker retries on its own
	// backoff, spending attempts however long the destination is down.
	Off bool `yaml:"-"`
}

// DefaultCircuitBreaker is the circuit_breaker of a sink that sets none.
var DefaultCircuitBreaker = CircuitBreaker{Failures: 5, Cooldown: 30 * time.Second, MaxCooldown: 5 * time.Minute}

// breakerKeys are the keys of a circuit_breaker mapping, sorted.
var breakerKeys = []string{"cooldown", "failures", "max_cooldown"}

// UnmarshalYAML implements yaml.Unmarshaler: `off` (or false), `on` (or
// true: the defaults), or a mapping whose keys are checked as strictly as
// the rest of the file.
func (c *CircuitBreaker) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode && n.Tag != "!!null" {
		switch v := strings.ToLower(strings.TrimSpace(n.Value)); v {
		case "off", "false":
			*c = CircuitBreaker{Off: true}
			return nil
		case "on", "true": // the default, as the README names it
			*c = DefaultCircuitBreaker
			return nil
		}
		return fmt.Errorf("circuit_breaker: %q is neither on, off nor a mapping such as {failures: 5, cooldown: 30s, max_cooldown: 5m}", n.Value)
	}
	if n.Kind != yaml.MappingNode {
		return errors.New("circuit_breaker: expected off or a mapping such as {failures: 5, cooldown: 30s, max_cooldown: 5m}")
	}
	out := DefaultCircuitBreaker
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i].Value, n.Content[i+1]
		if seen[k] {
			return fmt.Errorf("circuit_breaker: duplicate key %q", k)
		}
		seen[k] = true
		switch k {
		case "failures":
			var f int
			if v.Kind != yaml.ScalarNode || v.Decode(&f) != nil {
				return fmt.Errorf("circuit_breaker.failures: %q is not a whole number", v.Value)
			}
			out.Failures = f
		case "cooldown", "max_cooldown":
			d, err := time.ParseDuration(strings.TrimSpace(v.Value))
			if v.Kind != yaml.ScalarNode || err != nil {
				return fmt.Errorf("circuit_breaker.%s: %q is not a duration such as 30s or 5m", k, v.Value)
			}
			if k == "cooldown" {
				out.Cooldown = d
			} else {
				out.MaxCooldown = d
			}
		default:
			return fmt.Errorf("circuit_breaker: unknown key %q (known keys: %s)", k, strings.Join(breakerKeys, ", "))
		}
	}
	if !seen["max_cooldown"] && out.Cooldown > out.MaxCooldown {
		out.MaxCooldown = out.Cooldown
	}
	*c = out
	return nil
}

// orDefault is c, or DefaultCircuitBreaker when c was never set (a Policy
// built in code rather than read from a file).
func (c CircuitBreaker) orDefault() CircuitBreaker {
	if c == (CircuitBreaker{}) {
		return DefaultCircuitBreaker
	}
	return c
}

// Validate checks a breaker that is on.
func (c CircuitBreaker) Validate() error {
	if c.Off {
		return nil
	}
	c = c.orDefault()
	var errs []error
	if c.Failures < 1 {
		errs = append(errs, config.Invalid("circuit_breaker", "failures must be at least 1, not %d (off turns the breaker off)", c.Failures))
	}
	if c.Cooldown <= 0 || c.MaxCooldown < c.Cooldown {
		errs = append(errs, config.Invalid("circuit_breaker", "needs 0 < cooldown <= max_cooldown, not cooldown %s and max_cooldown %s", c.Cooldown, c.MaxCooldown))
	}
	return errors.Join(errs...)
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
		Retry:          Retry{MaxAttempts: 8, InitialBackoff: time.Second, MaxBackoff: 5 * time.Minute},
		BatchWait:      DefaultBatchWait,
		CircuitBreaker: DefaultCircuitBreaker,
	}
}

// The largest concurrency and batch_size a sink may have.
const (
	MaxConcurrency = 1024
	MaxBatchSize   = 100_000
)

// Validate implements config.Validator.
func (p *Policy) Validate() error {
	var errs []error
	if p.Retry.MaxAttempts < 1 {
		errs = append(errs, config.Invalid("retry", "max_attempts must be at least 1"))
	}
	if p.Retry.InitialBackoff <= 0 || p.Retry.MaxBackoff < p.Retry.InitialBackoff {
		errs = append(errs, config.Invalid("retry", "needs 0 < initial_backoff <= max_backoff"))
	}
	// Bounded above too: each delivery at once is a goroutine with its
	// buffers, and a batch is held whole, so a mistyped count would take
	// the bridge's memory before it starts.
	if p.Concurrency < 0 || p.Concurrency > MaxConcurrency {
		errs = append(errs, config.Invalid("concurrency", "must be between 0 (the sink's default) and %d, not %d", MaxConcurrency, p.Concurrency))
	}
	if p.BatchSize < 0 || p.BatchSize > MaxBatchSize {
		errs = append(errs, config.Invalid("batch_size", "must be between 0 (the default) and %d, not %d", MaxBatchSize, p.BatchSize))
	}
	if p.BatchWait < 0 || p.BatchWait > MaxBatchWait {
		errs = append(errs, config.Invalid("batch_wait", "must be between 0s and %s, not %s", MaxBatchWait, p.BatchWait))
	}
	if err := p.CircuitBreaker.Validate(); err != nil {
		errs = append(errs, err)
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
