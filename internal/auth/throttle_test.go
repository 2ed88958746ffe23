package auth_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/remitpay/remit/internal/store/storetest"

	"github.com/remitpay/remit/internal/audit"
	"github.com/remitpay/remit/internal/auth"
)

// restartable is an Authenticator over a session database that a test can
// close and open again, as a gateway restart does.
type restartable struct {
	t        *testing.T
	path     string
	cfg      auth.Config
	audit    *recorder
	sessions *auth.Sessions
	a        *auth.Authenticator
}

func newRestartable(t *testing.T, cfg auth.Config) *restartable {
	t.Helper()
	r := &restartable{t: t, path: storetest.Target(t, t.TempDir(), "sessions"), cfg: cfg, audit: &recorder{}}
	r.cfg.Audit = r.audit
	r.cfg.Sleep = func(context.Context, time.Duration) error { return nil }
	r.open()
	t.Cleanup(func() {
		if r.sessions != nil {
			if err := r.sessions.Close(); err != nil {
				t.Errorf("close sessions: %v", err)
			}
		}
	})
	return r
}

func (r *restartable) open() {
	r.t.Helper()
	var err error
	if r.sessions, err = auth.OpenSessions(context.Background(), r.path, auth.SessionConfig{}); err != nil {
		r.t.Fatal(err)
	}
	if r.a, err = auth.NewAuthenticator(context.Background(), parseUsers(r.t, cheap), r.sessions, r.cfg); err != nil {
		r.t.Fatal(err)
	}
}

func (r *restartable) restart() {
	r.t.Helper()
	if err := r.sessions.Close(); err != nil {
		r.t.Fatal(err)
	}
	r.sessions = nil
	r.open()
}

func (r *restartable) fail(n int, id, src string) {
	r.t.Helper()
	for i := range n {
		if _, _, _, err := r.a.Login(context.Background(), id, "guess", src); !errors.Is(err, auth.ErrBadCredentials) {
			r.t.Fatalf("failure %d of %s from %s: %v", i, id, src, err)
		}
	}
}

func (r *restartable) login(id, pw, src string) error {
	if _, _, _, err := r.a.Login(context.Background(), id, pw, src); err != nil {
		return err
	}
	return nil
}

// TestThrottleSurvivesRestart: lockouts, their doubling, failure counts and
// the per-source limit are kept in the session database, and a success that
// reset a count stays reset.
func TestThrottleSurvivesRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRestartable(t, auth.Config{MaxSourceFailures: 11})
		r.fail(auth.DefaultMaxFailures, "alice", srcA)
		time.Sleep(20 * time.Second)
		r.restart()
		if d := lockedFor(t, r.login("alice", alicePW, srcA)); d != 40*time.Second {
			t.Errorf("after a restart: retry after %v, want the 40s left", d)
		}
		if err := r.login("alice", alicePW, srcB); err != nil {
			t.Errorf("alice from another source after a restart: %v", err)
		}

		// The next lockout of the pair doubles, across a restart.
		time.Sleep(40 * time.Second)
		r.fail(auth.DefaultMaxFailures-1, "alice", srcA)
		r.restart()
		r.fail(1, "alice", srcA) // the 5th failure counts the 4 before the restart
		if d := lockedFor(t, r.login("alice", alicePW, srcA)); d != 2*time.Minute {
			t.Errorf("second lockout after a restart: %v, want 2m", d)
		}

		// The per-source limit (11 here; alice's 10 failures from srcA are
		// in it already) is kept too.
		r.fail(1, "bob", srcA)
		r.restart()
		if d := lockedFor(t, r.login("bob", bobPW, srcA)); d <= 0 {
			t.Errorf("spraying source after a restart: retry after %v", d)
		}

		// A success that resets a pair is stored: after a restart, four
		// more failures do not lock.
		time.Sleep(auth.DefaultFailureWindow + auth.DefaultMaxLockout)
		r.fail(auth.DefaultMaxFailures-1, "bob", srcB)
		if err := r.login("bob", bobPW, srcB); err != nil {
			t.Fatal(err)
		}
		r.restart()
		r.fail(auth.DefaultMaxFailures-1, "bob", srcB)
		if err := r.login("bob", bobPW, srcB); err != nil {
			t.Errorf("a reset pair came back after a restart: %v", err)
		}
	})
}

// TestThrottleRestartForgetsQuietKeys: a key that has gone quiet is not
// brought back by a restart.
func TestThrottleRestartForgetsQuietKeys(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRestartable(t, auth.Config{})
		r.fail(auth.DefaultMaxFailures-1, "alice", srcA)
		time.Sleep(auth.DefaultFailureWindow + auth.DefaultMaxLockout)
		r.restart()
		r.fail(auth.DefaultMaxFailures-1, "alice", srcA)
		if err := r.login("alice", alicePW, srcA); err != nil {
			t.Errorf("quiet failures were restored: %v", err)
		}
	})
}

// TestClearLockout: an admin clears a client id's lockouts at every source
// and its per-client-id limit; the clear is audited, survives a restart,
// and leaves a spraying source locked.
func TestClearLockout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRestartable(t, auth.Config{MaxAccountFailures: 12, MaxSourceFailures: 1000})
		srcC := "203.0.113.9:1"
		r.fail(auth.DefaultMaxFailures, "alice", srcA)
		r.fail(auth.DefaultMaxFailures, "alice", srcB)
		r.fail(2, "alice", srcC) // 12 in all: the per-client-id limit
		r.fail(auth.DefaultMaxFailures, "bob", srcA)
		for _, src := range []string{srcA, srcB, srcC} {
			if err := r.login("alice", alicePW, src); !errors.Is(err, auth.ErrLockedOut) {
				t.Fatalf("alice from %s before the clear: %v", src, err)
			}
		}

		res, err := r.a.ClearLockout(context.Background(), "alice", "admin")
		if err != nil {
			t.Fatal(err)
		}
		if want := (auth.ClearResult{ClearedSources: 3, LockedSources: 2, AccountLocked: true}); res != want {
			t.Errorf("ClearLockout = %+v, want %+v", res, want)
		}
		events, lines := r.audit.snapshot()
		i := slices.Index(events, audit.EventLoginLockoutCleared)
		if i < 0 {
			t.Fatalf("no %s in audit: %v", audit.EventLoginLockoutCleared, events)
		}
		if l := lines[i]; l[auth.KeyClientID] != "alice" || l[auth.KeyPrincipal] != "admin" ||
			l[auth.KeyClearedSources] != "3" || l[auth.KeyLockedSources] != "2" || l[auth.KeyAccountLocked] != "true" {
			t.Errorf("audit line = %v", l)
		}

		r.restart()
		for _, src := range []string{srcA, srcB, srcC} {
			if err := r.login("alice", alicePW, src); err != nil {
				t.Errorf("alice from %s after the clear and a restart: %v", src, err)
			}
		}
		// bob is not alice: still locked at srcA.
		if err := r.login("bob", bobPW, srcA); !errors.Is(err, auth.ErrLockedOut) {
			t.Errorf("bob at srcA after clearing alice: %v", err)
		}
		// Clearing an id with nothing to clear is not an error.
		if res, err := r.a.ClearLockout(context.Background(), "carol", "admin"); err != nil || res != (auth.ClearResult{}) {
			t.Errorf("ClearLockout(carol) = %+v, %v", res, err)
		}
	})
}

// TestSprayingSourceIsLockedForEveryID documents the per-source limit: a
// source that keeps failing across ids is locked out for every id, the
// right password included (users behind the same address share its fate),
// while every other source is unaffected.
func TestSprayingSourceIsLockedForEveryID(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRestartable(t, auth.Config{})
		for i := range auth.DefaultMaxSourceFailures {
			r.fail(1, fmt.Sprintf("user%d", i), srcA)
		}
		if err := r.login("alice", alicePW, srcA); !errors.Is(err, auth.ErrLockedOut) {
			t.Errorf("alice from the spraying source: %v, want locked out", err)
		}
		if err := r.login("alice", alicePW, srcB); err != nil {
			t.Errorf("alice from another source: %v", err)
		}
	})
}

// TestThrottleRestartKeepsMalformedIDs: client ids that cannot exist share
// one key, which is stored and restored like any other.
func TestThrottleRestartKeepsMalformedIDs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRestartable(t, auth.Config{})
		for i := range auth.DefaultMaxFailures {
			r.fail(1, fmt.Sprintf("no such id %d!", i), srcA)
		}
		r.restart()
		if err := r.login("another bad id!", "x", srcA); !errors.Is(err, auth.ErrLockedOut) {
			t.Errorf("malformed ids after a restart: %v, want locked out", err)
		}
		if err := r.login("alice", alicePW, srcA); err != nil {
			t.Errorf("alice from the same source: %v", err)
		}
	})
}

// TestThrottleMemoryIsBounded: a flood of distinct ids and sources keeps at
// most MaxTracked keys of each kind in memory, before and after a restart
// (the database holds more), and keeps the keys that are locked.
func TestThrottleMemoryIsBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const tracked = 10
		r := newRestartable(t, auth.Config{MaxTracked: tracked})
		r.fail(auth.DefaultMaxFailures, "alice", srcA)
		check := func(when string) {
			t.Helper()
			if p, s, i := auth.ThrottleTracked(r.a); p > tracked || s > tracked || i > tracked {
				t.Errorf("%s: %d pairs, %d sources, %d ids tracked; want at most %d each", when, p, s, i, tracked)
			}
			if err := r.login("alice", alicePW, srcA); !errors.Is(err, auth.ErrLockedOut) {
				t.Errorf("%s: the locked pair was dropped: %v", when, err)
			}
		}
		for i := range 50 {
			r.fail(1, fmt.Sprintf("user%d", i), fmt.Sprintf("203.0.113.%d:1", i))
		}
		check("after the flood")
		r.restart()
		check("after a restart")
	})
}
