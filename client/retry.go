package client

import (
	"context"
	"math/rand/v2"
	"time"
)

// Defaults of [DefaultRetryPolicy]. Four attempts with these delays give up
// after about two seconds of waiting when the gateway is unreachable, which
// is what a person at a terminal tolerates before being told the payment is
// queued.
const (
	DefaultMaxAttempts = 4
	DefaultBaseDelay   = 250 * time.Millisecond
	DefaultMaxDelay    = 5 * time.Second
	DefaultJitter      = 0.5
)

// RetryPolicy says how often and how patiently a [Client] resends a request
// whose outcome is unknown or transient (see [Retryable]). Delays grow
// exponentially from BaseDelay, doubling per retry, up to MaxDelay; Jitter
// then removes a random part so that many clients coming back after an outage
// do not retry in lockstep.
type RetryPolicy struct {
	// MaxAttempts is the total number of sends, the first included; values
	// below 1 mean 1 (no retries).
	MaxAttempts int
	// BaseDelay is the delay before the first retry.
	BaseDelay time.Duration
	// MaxDelay caps every delay. A server retry hint longer than MaxDelay
	// ends the retries instead of blocking the caller for that long; the
	// returned [*Error] carries the hint in RetryAfter.
	MaxDelay time.Duration
	// Jitter is the fraction of each delay that is random, in [0, 1]: a
	// delay d becomes a uniformly random value in [d*(1-Jitter), d], so it
	// never exceeds the cap. 0 disables jitter.
	Jitter float64
	// Sleep waits for d or until ctx is done, returning ctx's error then.
	// Nil means a timer. Tests inject one that records delays and returns at
	// once.
	Sleep func(ctx context.Context, d time.Duration) error
	// Rand returns a uniformly random float64 in [0, 1) for the jitter. Nil
	// means math/rand/v2.
	Rand func() float64
}

// DefaultRetryPolicy returns the policy used when Config.Retry is nil.
func DefaultRetryPolicy() RetryPolicy {
	return RetryPolicy{
		MaxAttempts: DefaultMaxAttempts,
		BaseDelay:   DefaultBaseDelay,
		MaxDelay:    DefaultMaxDelay,
		Jitter:      DefaultJitter,
	}
}

// normalized returns p with out-of-range fields clamped and nil funcs
// filled in.
func (p RetryPolicy) normalized() RetryPolicy {
	p.MaxAttempts = max(p.MaxAttempts, 1)
	p.BaseDelay = max(p.BaseDelay, 0)
	p.MaxDelay = max(p.MaxDelay, p.BaseDelay)
	p.Jitter = min(max(p.Jitter, 0), 1)
	if p.Sleep == nil {
		p.Sleep = sleep
	}
	if p.Rand == nil {
		p.Rand = rand.Float64
	}
	return p
}

// Delay returns how long to wait before retry number retry (1 for the first
// retry): BaseDelay*2^(retry-1) capped at MaxDelay, minus the jitter.
func (p RetryPolicy) Delay(retry int) time.Duration {
	p = p.normalized()
	d := p.BaseDelay
	for i := 1; i < retry && d < p.MaxDelay; i++ {
		d *= 2
	}
	d = min(d, p.MaxDelay)
	if p.Jitter > 0 {
		d -= time.Duration(p.Jitter * p.Rand() * float64(d))
	}
	return d
}

// sleep waits for d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
