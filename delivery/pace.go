package delivery

import (
	"context"
	"math"

	"golang.org/x/time/rate"
)

// pacer holds a sink's deliveries to its rate_limit, across its concurrent
// workers. A service that throttles (Slack takes about a message a second
// per channel) answers a faster burst with 429s, and each refused event
// spends one of its attempts: enough of a burst and some of its events are
// dead-lettered. Paced, they are not refused.
type pacer struct {
	limiter *rate.Limiter // nil: no rate limit
	burst   int
}

// newPacer paces at perSecond events a second with bursts of one second's
// worth (at least one event); perSecond <= 0 does not pace.
func newPacer(perSecond float64) *pacer {
	p := &pacer{}
	if perSecond > 0 {
		p.burst = max(1, int(math.Floor(perSecond)))
		p.limiter = rate.NewLimiter(rate.Limit(perSecond), p.burst)
	}
	return p
}

// wait returns when n events may be delivered, or with ctx's error.
func (p *pacer) wait(ctx context.Context, n int) error {
	if p.limiter == nil {
		return nil
	}
	for n > 0 {
		k := min(n, p.burst)
		if err := p.limiter.WaitN(ctx, k); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		n -= k
	}
	return nil
}
