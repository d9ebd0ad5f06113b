package delivery

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/hookbridge/hookbridge/config"
)

// clock is a settable clock for the breaker's state machine.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// testBreaker is a breaker on a settable clock that records its
// transitions as "from>to".
func testBreaker(cfg CircuitBreaker) (*breaker, *clock, *[]string) {
	c := &clock{t: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)}
	var seen []string
	b := newBreaker(cfg, c.now, func(tr transition) { seen = append(seen, tr.from.String()+">"+tr.to.String()) })
	return b, c, &seen
}

var errDown = errors.New("503 Service Unavailable")

// mustAdmit takes leave to send, failing the test if the breaker refuses.
func mustAdmit(t *testing.T, b *breaker) ticket {
	t.Helper()
	tk, ok, wait, _ := b.admit(true)
	if !ok {
		t.Fatalf("a send was held (state %s, wait %s), want it let through", b.current(), wait)
	}
	return tk
}

// mustHold checks that the breaker holds a send, for wait (0: until the
// probe's result).
func mustHold(t *testing.T, b *breaker, wantWait time.Duration) {
	t.Helper()
	tk, ok, wait, changed := b.admit(true)
	if ok {
		t.Fatalf("a send was let through (probe %v) in state %s, want it held", tk.probe, b.current())
	}
	if wait != wantWait || changed == nil {
		t.Fatalf("held for %s, want %s", wait, wantWait)
	}
}

func TestBreakerOpensAfterFailuresInARowAndProbes(t *testing.T) {
	b, clk, seen := testBreaker(CircuitBreaker{Failures: 3, Cooldown: 10 * time.Second, MaxCooldown: 25 * time.Second})

	// Two failures, then a success: the count starts again.
	for _, o := range []outcome{outcomeFailure, outcomeFailure, outcomeSuccess, outcomeFailure, outcomeFailure} {
		b.done(mustAdmit(t, b), o, errDown, 0)
	}
	if b.current() != circuitClosed {
		t.Fatalf("state %s after 2 failures in a row, want closed", b.current())
	}
	b.done(mustAdmit(t, b), outcomeFailure, errDown, 0)
	if b.current() != circuitOpen {
		t.Fatalf("state %s after 3 failures in a row, want open", b.current())
	}
	mustHold(t, b, 10*time.Second)
	clk.advance(10*time.Second - time.Nanosecond)
	mustHold(t, b, time.Nanosecond)
	clk.advance(time.Nanosecond)

	// Exactly one send goes: the probe.
	probe := mustAdmit(t, b)
	if !probe.probe || b.current() != circuitHalfOpen {
		t.Fatalf("after the cooldown: probe %v, state %s; want a probe, half-open", probe.probe, b.current())
	}
	mustHold(t, b, 0)
	if _, ok, _, _ := b.admit(false); ok {
		t.Fatal("a second send went while the probe was under way")
	}

	// Failed probes open it again, for twice as long each time, up to
	// max_cooldown.
	for _, want := range []time.Duration{20 * time.Second, 25 * time.Second, 25 * time.Second} {
		b.done(probe, outcomeFailure, errDown, 0)
		mustHold(t, b, want)
		clk.advance(want)
		probe = mustAdmit(t, b)
		if !probe.probe {
			t.Fatal("the send after a cooldown was not the probe")
		}
	}
	b.done(probe, outcomeSuccess, nil, 0)
	if b.current() != circuitClosed {
		t.Fatalf("state %s after a successful probe, want closed", b.current())
	}
	// Closed again, it counts failures from nothing.
	b.done(mustAdmit(t, b), outcomeFailure, errDown, 0)
	b.done(mustAdmit(t, b), outcomeFailure, errDown, 0)
	if b.current() != circuitClosed {
		t.Fatalf("state %s after 2 failures following a close, want closed", b.current())
	}
	want := "closed>open open>half-open half-open>open open>half-open half-open>open open>half-open half-open>open open>half-open half-open>closed"
	if got := strings.Join(*seen, " "); got != want {
		t.Fatalf("transitions\n got %s\nwant %s", got, want)
	}
	// A new outage starts at the configured cooldown, not the last one.
	b.done(mustAdmit(t, b), outcomeFailure, errDown, 0)
	mustHold(t, b, 10*time.Second)
}

// Permanent rejections and abandoned sends say nothing of the endpoint:
// they neither count towards opening nor start the count again.
func TestBreakerIgnoresNeutralOutcomes(t *testing.T) {
	b, _, _ := testBreaker(CircuitBreaker{Failures: 3, Cooldown: time.Second, MaxCooldown: time.Minute})
	for i := 0; i < 10; i++ {
		b.done(mustAdmit(t, b), outcomeNeutral, nil, 0)
	}
	if b.current() != circuitClosed {
		t.Fatalf("state %s after permanent rejections only, want closed", b.current())
	}
	for _, o := range []outcome{outcomeFailure, outcomeNeutral, outcomeFailure, outcomeNeutral, outcomeFailure} {
		b.done(mustAdmit(t, b), o, errDown, 0)
	}
	if b.current() != circuitOpen {
		t.Fatalf("state %s after 3 failures with rejections between, want open", b.current())
	}
}

// An event out of attempts may be dead-lettered only while the breaker is
// closed; one that had spent attempts before its loop read it (held
// through a restart, when the breaker starts closed again) only once the
// destination has taken a send since the breaker was made.
func TestBreakerMayGiveUp(t *testing.T) {
	if !(*breaker)(nil).mayGiveUp(true) {
		t.Fatal("without a breaker (off), an event out of attempts must be given up")
	}
	b, clk, _ := testBreaker(CircuitBreaker{Failures: 2, Cooldown: time.Second, MaxCooldown: time.Minute})
	check := func(when string, fresh, carried bool) {
		t.Helper()
		if got := b.mayGiveUp(false); got != fresh {
			t.Errorf("%s: giving up an event read with no attempts spent: %v, want %v", when, got, fresh)
		}
		if got := b.mayGiveUp(true); got != carried {
			t.Errorf("%s: giving up an event read with attempts spent: %v, want %v", when, got, carried)
		}
	}
	check("new breaker", true, false)
	b.done(mustAdmit(t, b), outcomeFailure, errDown, 0)
	check("a failure, no success yet", true, false)
	b.done(mustAdmit(t, b), outcomeSuccess, nil, 0)
	check("after a success", true, true)
	b.done(mustAdmit(t, b), outcomeFailure, errDown, 0)
	b.done(mustAdmit(t, b), outcomeFailure, errDown, 0)
	if b.current() != circuitOpen {
		t.Fatalf("state %s, want open", b.current())
	}
	check("open", false, false)
	clk.advance(time.Second)
	b.done(mustAdmit(t, b), outcomeSuccess, nil, 0)
	check("closed by a probe", true, true)
}

// A probe that says nothing (a permanent rejection of its event) lets the
// next send probe at once.
func TestBreakerNeutralProbeLetsAnotherProbe(t *testing.T) {
	b, clk, _ := testBreaker(CircuitBreaker{Failures: 1, Cooldown: time.Second, MaxCooldown: time.Minute})
	b.done(mustAdmit(t, b), outcomeFailure, errDown, 0)
	clk.advance(time.Second)
	b.done(mustAdmit(t, b), outcomeNeutral, nil, 0)
	if tk := mustAdmit(t, b); !tk.probe {
		t.Fatal("the send after a neutral probe was not a probe")
	}
}

// Results of sends let through before it opened do not decide: only the
// probe does.
func TestBreakerOnlyTheProbeDecides(t *testing.T) {
	b, _, _ := testBreaker(CircuitBreaker{Failures: 2, Cooldown: time.Second, MaxCooldown: time.Minute})
	early := mustAdmit(t, b)
	b.done(mustAdmit(t, b), outcomeFailure, errDown, 0)
	b.done(mustAdmit(t, b), outcomeFailure, errDown, 0)
	b.done(early, outcomeSuccess, nil, 0)
	if b.current() != circuitOpen {
		t.Fatalf("state %s: a send from before the opening closed it", b.current())
	}
}

// The breaker opens for at least a destination's Retry-After, but never
// longer than max_cooldown for it.
func TestBreakerHonoursRetryAfterUpToMaxCooldown(t *testing.T) {
	for _, tc := range []struct{ hint, want time.Duration }{
		{0, 10 * time.Second},
		{5 * time.Second, 10 * time.Second},
		{40 * time.Second, 40 * time.Second},
		{24 * time.Hour, time.Minute},
	} {
		b, _, _ := testBreaker(CircuitBreaker{Failures: 1, Cooldown: 10 * time.Second, MaxCooldown: time.Minute})
		b.done(mustAdmit(t, b), outcomeFailure, errDown, tc.hint)
		mustHold(t, b, tc.want)
	}
}

// admit(false), for a send that could not go at once, never takes the
// probe: it is left to another.
func TestBreakerAdmitWithoutProbe(t *testing.T) {
	b, clk, _ := testBreaker(CircuitBreaker{Failures: 1, Cooldown: time.Second, MaxCooldown: time.Minute})
	b.done(mustAdmit(t, b), outcomeFailure, errDown, 0)
	clk.advance(time.Second)
	if _, ok, wait, _ := b.admit(false); ok || wait != 0 {
		t.Fatalf("admit(false) after the cooldown: ok %v, wait %s; want held until a probe's result", ok, wait)
	}
	if b.current() != circuitOpen {
		t.Fatalf("state %s, want still open", b.current())
	}
	if tk := mustAdmit(t, b); !tk.probe {
		t.Fatal("admit(true) did not take the probe")
	}
}

// wait blocks through the cooldown and while the probe is out, and ends
// with its context.
func TestBreakerWait(t *testing.T) {
	b := newBreaker(CircuitBreaker{Failures: 1, Cooldown: 200 * time.Millisecond, MaxCooldown: time.Second}, nil, nil)
	ctx := context.Background()
	tk, err := b.wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b.done(tk, outcomeFailure, errDown, 0)
	start := time.Now()
	probe, err := b.wait(ctx)
	if err != nil || !probe.probe {
		t.Fatalf("wait: %v, probe %v", err, probe.probe)
	}
	if took := time.Since(start); took < 150*time.Millisecond {
		t.Fatalf("the probe went %s after the breaker opened, within its 200ms cooldown", took)
	}
	// Others wait for the probe's result, and go when it closes.
	got := make(chan error, 3)
	for range 3 {
		go func() {
			tk, err := b.wait(ctx)
			if err == nil && tk.probe {
				err = errors.New("a second probe")
			}
			got <- err
		}()
	}
	select {
	case err := <-got:
		t.Fatalf("a send went while the probe was out: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	b.done(probe, outcomeSuccess, nil, 0)
	for range 3 {
		select {
		case err := <-got:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("a send still waits after the breaker closed")
		}
	}
	// Open again: a wait ends with its context.
	b.done(ticket{}, outcomeFailure, errDown, 0)
	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := b.wait(cctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("wait on an open breaker with an ending context: %v", err)
	}
	var off *breaker
	if _, err := off.wait(cctx); err != nil {
		t.Fatalf("a breaker that is off held a send: %v", err)
	}
}

// decodePolicy decodes a sink's policy keys as the config loader does.
func decodePolicy(t *testing.T, src string) (Policy, error) {
	t.Helper()
	var root yaml.Node
	if err := yaml.Unmarshal([]byte(src), &root); err != nil {
		t.Fatal(err)
	}
	p := DefaultPolicy()
	d := &config.Decoder{File: "bridge.yaml"}
	d.Decode(&root, &p)
	if d.Err() == nil {
		d.Validate(root.Content[0], &p)
	}
	return p, d.Err()
}

func TestCircuitBreakerKey(t *testing.T) {
	for _, tc := range []struct {
		src  string
		want CircuitBreaker
		err  string
	}{
		{src: "retry: {max_attempts: 3}", want: DefaultCircuitBreaker},
		{src: "circuit_breaker: off", want: CircuitBreaker{Off: true}},
		{src: "circuit_breaker: {failures: 3, cooldown: 10s, max_cooldown: 1m}", want: CircuitBreaker{Failures: 3, Cooldown: 10 * time.Second, MaxCooldown: time.Minute}},
		{src: "circuit_breaker: {failures: 2}", want: CircuitBreaker{Failures: 2, Cooldown: 30 * time.Second, MaxCooldown: 5 * time.Minute}},
		{src: "circuit_breaker: {cooldown: 10m}", want: CircuitBreaker{Failures: 5, Cooldown: 10 * time.Minute, MaxCooldown: 10 * time.Minute}},
		{src: "circuit_breaker: on", want: DefaultCircuitBreaker},
		{src: "circuit_breaker: true", want: DefaultCircuitBreaker},
		{src: "circuit_breaker: sometimes", err: `bridge.yaml:1:18: circuit_breaker: "sometimes" is neither on, off nor a mapping`},
		{src: "circuit_breaker: [5]", err: `bridge.yaml:1:18: circuit_breaker: expected off or a mapping`},
		{src: "circuit_breaker: {failure: 5}", err: `circuit_breaker: unknown key "failure" (known keys: cooldown, failures, max_cooldown)`},
		{src: "circuit_breaker: {failures: five}", err: `circuit_breaker.failures: "five" is not a whole number`},
		{src: "circuit_breaker: {cooldown: 30}", err: `circuit_breaker.cooldown: "30" is not a duration`},
		{src: "circuit_breaker: {failures: 0}", err: "bridge.yaml:1:1: circuit_breaker: failures must be at least 1, not 0"},
		{src: "circuit_breaker: {cooldown: 0s}", err: "bridge.yaml:1:1: circuit_breaker: needs 0 < cooldown <= max_cooldown"},
		{src: "circuit_breaker: {cooldown: 1m, max_cooldown: 30s}", err: "bridge.yaml:1:1: circuit_breaker: needs 0 < cooldown <= max_cooldown, not cooldown 1m0s and max_cooldown 30s"},
	} {
		t.Run(tc.src, func(t *testing.T) {
			p, err := decodePolicy(t, tc.src)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.CircuitBreaker != tc.want {
				t.Fatalf("circuit_breaker %+v, want %+v", p.CircuitBreaker, tc.want)
			}
		})
	}
	// A Policy built in code without the key gets the default breaker.
	if got := (Policy{}).CircuitBreaker.orDefault(); got != DefaultCircuitBreaker {
		t.Fatalf("unset: %+v", got)
	}
	if err := (&Policy{Retry: DefaultPolicy().Retry}).Validate(); err != nil {
		t.Fatalf("a policy without the key: %v", err)
	}
}

// FuzzCircuitBreakerKey: whatever the circuit_breaker value, decoding it
// does not panic, and a value that decodes and validates is off or a
// breaker the engine can run.
func FuzzCircuitBreakerKey(f *testing.F) {
	for _, s := range []string{"off", "false", "on", "{failures: 3, cooldown: 10s, max_cooldown: 1m}", "{cooldown: 10m}",
		"{failures: -1}", "{failures: 99999999999999999999}", "{cooldown: -5s}", "[1, 2]", "{failures: {a: b}}", "~", `"off"`,
		"{failures: 2, failures: 3}", "{cooldown: 1ns, max_cooldown: 1ns}", "&a {failures: 2}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, value string) {
		var root yaml.Node
		if yaml.Unmarshal([]byte("circuit_breaker: "+value), &root) != nil || len(root.Content) == 0 {
			return
		}
		p := DefaultPolicy()
		d := &config.Decoder{File: "bridge.yaml"}
		d.Decode(&root, &p)
		if d.Err() != nil {
			return
		}
		if p.Validate() != nil {
			return
		}
		cb := p.CircuitBreaker
		if !cb.Off && (cb.Failures < 1 || cb.Cooldown <= 0 || cb.MaxCooldown < cb.Cooldown) {
			t.Fatalf("%q decoded and validated as %+v", value, cb)
		}
	})
}
