package auth

import (
	"errors"
	"fmt"
	"sync"
	"time"
)

// ErrLockedOut is matched (errors.Is) by the [*LockoutError] Login returns
// while the caller's source is locked out for a client id, or altogether.
var ErrLockedOut = errors.New("auth: too many failed logins")

// LockoutError is returned by Login while the caller's source address is
// locked out, for the client id it names or for every id. It does not say
// which, nor whether the client id exists.
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

// throttleKey names what a throttle counts failures of: a (client id,
// source) pair, a source alone (id empty) or a client id alone (src
// empty). A struct, so that no client id can be crafted to collide with
// another key.
type throttleKey struct {
	id, src string
}

// throttle counts failed logins per key and locks a key out after too
// many, for a time that doubles with each further lockout. The
// Authenticator keeps three: per (client id, source), per source and per
// client id (see [Config]); their state is written through to the session
// database (see throttledb.go) so that a restart keeps it. Memory is
// bounded by forgetting quiet keys and by maxTracked.
type throttle struct {
	kind        string // the kind column of the key's rows
	maxFailures int
	window      time.Duration
	base        time.Duration
	max         time.Duration
	maxTracked  int

	mu        sync.Mutex
	m         map[throttleKey]*throttleEntry
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

// stateful reports whether e holds anything worth keeping once nothing is
// in flight: failures, a lockout, or the lockout history that makes the
// next lockout longer.
func (e *throttleEntry) stateful() bool {
	return e.failures > 0 || e.lockouts > 0 || !e.lockedUntil.IsZero()
}

func newThrottle(kind string, maxFailures int, window, base, maxLock time.Duration, maxTracked int) *throttle {
	return &throttle{
		kind: kind, maxFailures: maxFailures, window: window, base: base, max: maxLock, maxTracked: maxTracked,
		m: make(map[throttleKey]*throttleEntry),
	}
}

// begin admits one attempt for key or says how long to wait. An admitted
// attempt counts as in flight until end is called, so that parallel
// attempts cannot exceed maxFailures before the first failure is recorded.
func (t *throttle) begin(key throttleKey, now time.Time) (retryAfter time.Duration, ok bool) {
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

// locked returns how long key is still locked out, or 0. Unlike begin it
// admits nothing and creates no entry.
func (t *throttle) locked(key throttleKey, now time.Time) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e, ok := t.m[key]; ok && now.Before(e.lockedUntil) {
		return e.lockedUntil.Sub(now)
	}
	return 0
}

// failing reports whether key failed within the window (a lockout
// included): a source that has been failing for a client id.
func (t *throttle) failing(key throttleKey, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.m[key]
	return ok && (now.Before(e.lockedUntil) || (!e.lastFailure.IsZero() && now.Sub(e.lastFailure) < t.window))
}

// end finishes an attempt admitted by begin. failed records a failure and
// returns the lockout it started, if any; reset (a successful login)
// forgets the key, and says whether it held any state to forget.
func (t *throttle) end(key throttleKey, now time.Time, failed, reset bool) (locked time.Duration, failures int, forgot bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.entry(key, now)
	if e.inFlight > 0 {
		e.inFlight--
	}
	switch {
	case reset:
		forgot = e.stateful()
		if e.inFlight == 0 {
			delete(t.m, key)
		} else {
			*e = throttleEntry{inFlight: e.inFlight}
		}
		return 0, 0, forgot
	case !failed:
		return 0, e.failures, false
	}
	return t.fail(e, now)
}

// record counts a failure for key that was not admitted by begin (the
// per-client-id throttle only counts, it never holds an attempt back).
func (t *throttle) record(key throttleKey, now time.Time) (locked time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	locked, _, _ = t.fail(t.entry(key, now), now)
	return locked
}

// fail counts one failure on e. The caller holds t.mu.
func (t *throttle) fail(e *throttleEntry, now time.Time) (locked time.Duration, failures int, forgot bool) {
	if e.failures == 0 || now.Sub(e.windowStart) >= t.window {
		e.failures = 0
		e.windowStart = now
	}
	e.failures++
	e.lastFailure = now
	if e.failures < t.maxFailures {
		return 0, e.failures, false
	}
	e.lockouts++
	d := t.base
	for i := 1; i < e.lockouts && d < t.max; i++ {
		d *= 2
	}
	d = min(d, t.max)
	e.lockedUntil = now.Add(d)
	e.failures = 0
	return d, 0, false
}

// clearID forgets every key of client id (its pairs, or the id itself)
// and returns how many keys held state and how many of them were locked.
func (t *throttle) clearID(id string, now time.Time) (cleared, locked int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, e := range t.m {
		if k.id != id {
			continue
		}
		if e.stateful() {
			cleared++
		}
		if now.Before(e.lockedUntil) {
			locked++
		}
		if e.inFlight == 0 {
			delete(t.m, k)
		} else {
			*e = throttleEntry{inFlight: e.inFlight}
		}
	}
	return cleared, locked
}

// snapshot returns a copy of key's entry if it holds state worth storing.
func (t *throttle) snapshot(key throttleKey) (throttleEntry, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.m[key]
	if !ok || !e.stateful() {
		return throttleEntry{}, false
	}
	return *e, true
}

// restore puts an entry loaded from the database back, unless the key is
// already tracked or memory is full.
func (t *throttle) restore(key throttleKey, e throttleEntry) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.m[key]; ok || len(t.m) >= t.maxTracked {
		return
	}
	e.inFlight = 0
	t.m[key] = &e
}

// adopt takes the state another process stored for key (nil: it has
// none any more), keeping the attempts this process has in flight.
func (t *throttle) adopt(key throttleKey, e *throttleEntry) {
	t.mu.Lock()
	defer t.mu.Unlock()
	cur, ok := t.m[key]
	if !ok {
		if e == nil || len(t.m) >= t.maxTracked {
			return
		}
		cur = &throttleEntry{}
		t.m[key] = cur
	}
	inFlight := cur.inFlight
	if e == nil {
		*cur = throttleEntry{inFlight: inFlight}
		if inFlight == 0 {
			delete(t.m, key)
		}
		return
	}
	*cur = *e
	cur.inFlight = inFlight
}

// quiet is how long a key must go without failing (and unlocked) before
// it is forgotten: window + max, so the lockout doubling also decays.
func (t *throttle) quiet() time.Duration { return t.window + t.max }

// entry returns key's entry, creating it. The caller holds t.mu.
func (t *throttle) entry(key throttleKey, now time.Time) *throttleEntry {
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
// not failed for quiet(). If the map is still full, unlocked keys are
// dropped arbitrarily: under a flood of distinct keys, locked keys are
// what must be kept.
func (t *throttle) sweep(now time.Time) {
	t.lastSweep = now
	quiet := t.quiet()
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
