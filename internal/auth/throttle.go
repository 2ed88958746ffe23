package auth

import (
	"errors"
	"fmt"
	"sync"
	"time"
)

// ErrLockedOut is matched (errors.Is) by the [*LockoutError] Login returns
// while a client id or source address is locked out.
var ErrLockedOut = errors.New("auth: too many failed logins")

// LockoutError is returned by Login while the client id or the source
// address is locked out after repeated failures. It does not say which of
// the two is locked, nor whether the client id exists.
type LockoutError struct {
	// RetryAfter is how long until the next attempt may be made.
	RetryAfter time.Duration
}

// Error implements error.
func (e *LockoutError) Error() string {
	return fmt.Sprintf("%v: retry after %v", ErrLockedOut, e.RetryAfter.Round(time.Second))
}

// Unwrap makes errors.Is(err, ErrLockedOut) true.
func (e *LockoutError) Unwrap() error { return ErrLockedOut }

// inFlightRetry is the retry hint when attempts already in progress for a
// key could use up its remaining failures.
const inFlightRetry = time.Second

// throttle counts failed logins per key (client id or source address) and
// locks a key out after too many. It is in memory: a gateway restart
// forgets the counters, which an attacker cannot trigger and which costs at
// most one more round of MaxFailures guesses. Memory is bounded by
// forgetting quiet keys and by maxTracked.
type throttle struct {
	maxFailures int
	window      time.Duration
	base        time.Duration
	max         time.Duration
	maxTracked  int

	mu        sync.Mutex
	m         map[string]*throttleEntry
	lastSweep time.Time
}

type throttleEntry struct {
	failures    int       // failures in the current window
	windowStart time.Time // first failure of the window
	inFlight    int       // attempts being verified right now
	lockouts    int       // consecutive lockouts, for doubling
	lockedUntil time.Time
	lastFailure time.Time
}

func newThrottle(maxFailures int, window, base, maxLock time.Duration, maxTracked int) *throttle {
	return &throttle{
		maxFailures: maxFailures, window: window, base: base, max: maxLock, maxTracked: maxTracked,
		m: make(map[string]*throttleEntry),
	}
}

// begin admits one attempt for key or says how long to wait. An admitted
// attempt counts as in flight until end is called, so that parallel
// attempts cannot exceed maxFailures before the first failure is recorded.
func (t *throttle) begin(key string, now time.Time) (retryAfter time.Duration, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.entry(key, now)
	if now.Before(e.lockedUntil) {
		return e.lockedUntil.Sub(now), false
	}
	if now.Sub(e.windowStart) >= t.window {
		e.failures = 0
	}
	if e.failures+e.inFlight >= t.maxFailures {
		return inFlightRetry, false
	}
	e.inFlight++
	return 0, true
}

// end finishes an attempt admitted by begin. failed records a failure and
// returns the lockout it started, if any; reset (a successful login for a
// client id) forgets the key.
func (t *throttle) end(key string, now time.Time, failed, reset bool) (locked time.Duration) {
	locked, _ = t.endCount(key, now, failed, reset)
	return locked
}

// endCount is end that also returns the key's failures in the current
// window after this attempt (0 once a lockout starts or on success).
func (t *throttle) endCount(key string, now time.Time, failed, reset bool) (locked time.Duration, failures int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.entry(key, now)
	if e.inFlight > 0 {
		e.inFlight--
	}
	switch {
	case reset:
		if e.inFlight == 0 {
			delete(t.m, key)
		} else {
			*e = throttleEntry{inFlight: e.inFlight}
		}
		return 0, 0
	case !failed:
		return 0, e.failures
	}
	if e.failures == 0 || now.Sub(e.windowStart) >= t.window {
		e.failures = 0
		e.windowStart = now
	}
	e.failures++
	e.lastFailure = now
	if e.failures < t.maxFailures {
		return 0, e.failures
	}
	e.lockouts++
	d := t.base
	for i := 1; i < e.lockouts && d < t.max; i++ {
		d *= 2
	}
	d = min(d, t.max)
	e.lockedUntil = now.Add(d)
	e.failures = 0
	return d, 0
}

// entry returns key's entry, creating it. The caller holds t.mu.
func (t *throttle) entry(key string, now time.Time) *throttleEntry {
	if e, ok := t.m[key]; ok {
		return e
	}
	if len(t.m) >= t.maxTracked || now.Sub(t.lastSweep) >= t.window {
		t.sweep(now)
	}
	e := &throttleEntry{}
	t.m[key] = e
	return e
}

// sweep forgets keys that are not locked, have nothing in flight and have
// not failed for window + max (so the lockout doubling also decays). If the
// map is still full, unlocked keys are dropped arbitrarily: under a flood
// of distinct keys, locked keys are what must be kept.
func (t *throttle) sweep(now time.Time) {
	t.lastSweep = now
	quiet := t.window + t.max
	for k, e := range t.m {
		if e.inFlight == 0 && !now.Before(e.lockedUntil) && now.Sub(e.lastFailure) >= quiet {
			delete(t.m, k)
		}
	}
	for k, e := range t.m {
		if len(t.m) < t.maxTracked {
			break
		}
		if e.inFlight == 0 && !now.Before(e.lockedUntil) {
			delete(t.m, k)
		}
	}
}
