package auth_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/remitpay/remit/internal/store/storetest"

	"github.com/remitpay/remit/internal/audit"
	"github.com/remitpay/remit/internal/auth"
	"github.com/remitpay/remit/internal/authz"
)

const (
	alicePW = "alice-password"
	bobPW   = "bob-password"
	srcA    = "192.0.2.1:40000"
	srcB    = "198.51.100.7:40000"
)

type authFixture struct {
	sleepsMu sync.Mutex
	sleeps   []time.Duration // waits the Authenticator asked for, in order

	a     *auth.Authenticator
	audit *recorder
	dir   string
}

func parseUsers(t *testing.T, params auth.Params) *auth.Users {
	t.Helper()
	hash := func(pw string) string {
		h, err := auth.HashPasswordParams(pw, params)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	users, err := auth.ParseUsers("users.json", []byte(usersJSON(
		entry("alice", hash(alicePW), `["customer"]`, `{"bank":"bank-a","account_id":"alice"}`),
		entry("bob", hash(bobPW), `["customer","auditor"]`, `{"bank":"bank-b","account_id":"bob"}`),
	)))
	if err != nil {
		t.Fatal(err)
	}
	return users
}

func newAuthFixture(t *testing.T, cfg auth.Config) *authFixture {
	t.Helper()
	f := &authFixture{audit: &recorder{}, dir: t.TempDir()}
	sessions, err := auth.OpenSessions(context.Background(), storetest.Target(t, f.dir, "sessions"), auth.SessionConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := sessions.Close(); err != nil {
			t.Errorf("close sessions: %v", err)
		}
	})
	cfg.Audit = f.audit
	if cfg.Sleep == nil {
		cfg.Sleep = func(_ context.Context, d time.Duration) error {
			f.sleepsMu.Lock()
			f.sleeps = append(f.sleeps, d)
			f.sleepsMu.Unlock()
			return nil
		}
	}
	f.a, err = auth.NewAuthenticator(context.Background(), parseUsers(t, cheap), sessions, cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.audit.reset() // the import of the users file
	return f
}

func TestLoginAndVerify(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		f := newAuthFixture(t, auth.Config{})
		token, expire, user, err := f.a.Login(ctx, "alice", alicePW, srcA)
		if err != nil {
			t.Fatal(err)
		}
		if user.ClientID != "alice" || !expire.Equal(time.Now().Add(auth.DefaultSessionTTL)) {
			t.Errorf("Login = user %+v, expire %v", user, expire)
		}
		p, err := f.a.Verify(ctx, token)
		if err != nil {
			t.Fatal(err)
		}
		if p.Kind != authz.KindClient || p.ClientID != "alice" || !p.HasRole(authz.RoleCustomer) ||
			!p.Owns("bank-a", "alice") || p.SessionID == "" {
			t.Errorf("principal = %+v", p)
		}

		events, lines := f.audit.snapshot()
		if !slices.Equal(events, []string{audit.EventLoginSucceeded}) {
			t.Fatalf("audit = %v", events)
		}
		if l := lines[0]; l[auth.KeyClientID] != "alice" || l[auth.KeySource] != "192.0.2.1" || l[auth.KeySessionID] != p.SessionID {
			t.Errorf("audit line = %v", l)
		}
		if s := fmt.Sprint(lines); strings.Contains(s, alicePW) || strings.Contains(s, token) {
			t.Errorf("audit contains a secret: %s", s)
		}

		// Logout revokes the session at once.
		if err := f.a.Logout(ctx, p.SessionID); err != nil {
			t.Fatal(err)
		}
		if _, err := f.a.Verify(ctx, token); !errors.Is(err, authz.ErrUnauthenticated) || !errors.Is(err, auth.ErrInvalidToken) {
			t.Errorf("Verify after Logout = %v", err)
		}
	})
}

func TestVerifyFollowsUsersFile(t *testing.T) {
	ctx := context.Background()
	f := newAuthFixture(t, auth.Config{})
	aliceTok, _, _, err := f.a.Login(ctx, "alice", alicePW, srcA)
	if err != nil {
		t.Fatal(err)
	}
	bobTok, _, _, err := f.a.Login(ctx, "bob", bobPW, srcA)
	if err != nil {
		t.Fatal(err)
	}
	// The file is reloaded without bob, and alice became an auditor.
	hash, _ := f.a.Users().Lookup("alice")
	users, err := auth.ParseUsers("users.json", []byte(usersJSON(entry("alice", hash.PasswordHash, `["auditor"]`, ""))))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.a.Import(ctx, users); err != nil {
		t.Fatal(err)
	}
	if _, err := f.a.Verify(ctx, bobTok); !errors.Is(err, authz.ErrUnauthenticated) {
		t.Errorf("removed user's token: %v", err)
	}
	p, err := f.a.Verify(ctx, aliceTok)
	if err != nil || !p.IsStaff() || p.HasRole(authz.RoleCustomer) || p.Account != nil {
		t.Errorf("alice after reload = %+v, %v", p, err)
	}
	if _, err := f.a.Verify(ctx, "rmt_garbage"); !errors.Is(err, authz.ErrUnauthenticated) {
		t.Errorf("garbage token: %v", err)
	}
}

func TestLoginBadCredentialsLookAlike(t *testing.T) {
	ctx := context.Background()
	f := newAuthFixture(t, auth.Config{MaxFailures: 1000, MaxSourceFailures: 1000})
	tests := []struct{ name, id, pw string }{
		{"wrong password", "alice", "alice-passwore"},
		{"unknown user", "mallory", alicePW},
		{"other user's password", "alice", bobPW},
		{"case of id", "Alice", alicePW},
		{"empty password", "alice", ""},
		{"empty id", "", alicePW},
		{"password typed as the client id", "Zq7hY2mP4k", "x"},
	}
	for _, tt := range tests {
		tok, _, user, err := f.a.Login(ctx, tt.id, tt.pw, srcA)
		if err != auth.ErrBadCredentials { //nolint:errorlint,err113 // must be the identical error
			t.Errorf("%s: err = %v, want exactly ErrBadCredentials", tt.name, err)
		}
		if tok != "" || user != nil {
			t.Errorf("%s: returned token or user", tt.name)
		}
	}
	events, lines := f.audit.snapshot()
	if len(events) != len(tests) || slices.ContainsFunc(events, func(e string) bool { return e != audit.EventLoginFailed }) {
		t.Errorf("audit = %v, want %d login_failed", events, len(tests))
	}
	for i, l := range lines {
		if strings.Contains(fmt.Sprint(l), alicePW) || strings.Contains(fmt.Sprint(l), "Zq7hY2mP4k") {
			t.Errorf("audit line contains a password: %v", l)
		}
		if want := tests[i].id; want != "alice" && l[auth.KeyClientID] != auth.UnknownClientID {
			t.Errorf("%s: audit client_id = %q, want %q for an id naming no user", tests[i].name, l[auth.KeyClientID], auth.UnknownClientID)
		}
	}
}

// TestUnknownUserTakesAsLong checks the dummy-hash path: an unknown client
// id costs a full password verification, like a wrong password does.
func TestUnknownUserTakesAsLong(t *testing.T) {
	ctx := context.Background()
	costly := auth.Params{Memory: 8 * 1024, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}
	sessions, err := auth.OpenSessions(ctx, storetest.Target(t, t.TempDir(), "s"), auth.SessionConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := sessions.Close(); err != nil {
			t.Errorf("close sessions: %v", err)
		}
	})
	// The slow-down of repeated failures is off: this test times the
	// password work alone.
	a, err := auth.NewAuthenticator(ctx, parseUsers(t, costly), sessions, auth.Config{MaxFailures: 1000, MaxSourceFailures: 1000, FailureDelay: -1})
	if err != nil {
		t.Fatal(err)
	}
	median := func(id string) time.Duration {
		var ds []time.Duration
		for range 5 {
			start := time.Now()
			if _, _, _, err := a.Login(ctx, id, "wrong", srcA); !errors.Is(err, auth.ErrBadCredentials) {
				t.Fatal(err)
			}
			ds = append(ds, time.Since(start))
		}
		slices.Sort(ds)
		return ds[len(ds)/2]
	}
	known, unknown := median("alice"), median("mallory")
	// A skipped verification would be ~1000x faster; allow wide noise.
	if unknown < known/3 {
		t.Errorf("unknown user took %v, wrong password %v: the dummy hash is not verified", unknown, known)
	}
}

func lockedFor(t *testing.T, err error) time.Duration {
	t.Helper()
	var le *auth.LockoutError
	if !errors.As(err, &le) || !errors.Is(err, auth.ErrLockedOut) {
		t.Fatalf("err = %v, want a LockoutError", err)
	}
	return le.RetryAfter
}

func TestLockoutPerClientAndSource(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		// The per-source limit is out of the way: it has its own test.
		f := newAuthFixture(t, auth.Config{MaxSourceFailures: 1000})
		fail := func(n int, id, src string) {
			t.Helper()
			for i := range n {
				if _, _, _, err := f.a.Login(ctx, id, "guess", src); !errors.Is(err, auth.ErrBadCredentials) {
					t.Fatalf("failure %d: %v", i, err)
				}
			}
		}

		fail(auth.DefaultMaxFailures, "alice", srcA)
		// Locked at srcA: even the right password is refused, without being
		// checked.
		_, _, _, err := f.a.Login(ctx, "alice", alicePW, srcA)
		if d := lockedFor(t, err); d != time.Minute {
			t.Errorf("first lockout %v, want 1m", d)
		}
		// alice from another source, and other ids from srcA, are not
		// affected.
		if _, _, _, err := f.a.Login(ctx, "alice", alicePW, srcB); err != nil {
			t.Errorf("alice from another source locked out with srcA: %v", err)
		}
		if _, _, _, err := f.a.Login(ctx, "bob", bobPW, srcA); err != nil {
			t.Errorf("bob from srcA locked out with alice: %v", err)
		}
		time.Sleep(59 * time.Second)
		_, _, _, err = f.a.Login(ctx, "alice", alicePW, srcA)
		if d := lockedFor(t, err); d != time.Second {
			t.Errorf("after 59s: retry after %v, want 1s", d)
		}
		time.Sleep(time.Second)
		if _, _, _, err := f.a.Login(ctx, "alice", alicePW, srcA); err != nil {
			t.Fatalf("after the lockout: %v", err)
		}

		// The success reset the counter: four failures do not lock.
		fail(auth.DefaultMaxFailures-1, "alice", srcA)
		if _, _, _, err := f.a.Login(ctx, "alice", alicePW, srcA); err != nil {
			t.Fatalf("success reset: %v", err)
		}

		// Repeated lockouts double, up to 15 minutes. Unknown ids are locked
		// like real ones, so locking reveals nothing.
		for _, minutes := range []int{1, 2, 4, 8, 15, 15} {
			want := time.Duration(minutes) * time.Minute
			fail(auth.DefaultMaxFailures, "mallory", srcB)
			_, _, _, err := f.a.Login(ctx, "mallory", "guess", srcB)
			if d := lockedFor(t, err); d != want {
				t.Fatalf("lockout %v, want %v", d, want)
			}
			time.Sleep(want)
		}

		events, lines := f.audit.snapshot()
		var locks int
		for i, e := range events {
			if e == audit.EventLoginLocked {
				locks++
				if lines[i][auth.KeyLocked] != auth.LockedClientSource || lines[i][auth.KeyRetryAfter] == "" {
					t.Errorf("login_locked line = %v", lines[i])
				}
			}
		}
		if locks != 7 {
			t.Errorf("%d login_locked events, want 7 (one per lockout)", locks)
		}
	})
}

// TestParallelGuessesLockOnlyTheGuesser is the lockout switch of issue 10:
// wrong passwords fired in parallel at an id from one source lock that
// source out for the id, and the id's owner, from another source, still
// logs in at once with the right password.
func TestParallelGuessesLockOnlyTheGuesser(t *testing.T) {
	ctx := context.Background()
	f := newAuthFixture(t, auth.Config{MaxConcurrentHashes: 16})
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			_, _, _, err := f.a.Login(ctx, "alice", fmt.Sprint("guess", i), srcA)
			if !errors.Is(err, auth.ErrBadCredentials) && !errors.Is(err, auth.ErrLockedOut) {
				t.Errorf("guess %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if _, _, _, err := f.a.Login(ctx, "alice", alicePW, srcA); !errors.Is(err, auth.ErrLockedOut) {
		t.Errorf("the guessing source with the right password: %v, want locked out", err)
	}
	start := time.Now()
	if _, _, user, err := f.a.Login(ctx, "alice", alicePW, srcB); err != nil || user.ClientID != "alice" {
		t.Fatalf("alice from a clean source: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("alice's login took %v", d)
	}
}

// TestAccountLimitSparesCleanSources: guesses at one id from many sources
// reach the per-client-id limit; from then on every source that has been
// failing for the id is refused (so each new source gets one guess), and a
// source that has not is still let in with the right password.
func TestAccountLimitSparesCleanSources(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		f := newAuthFixture(t, auth.Config{MaxAccountFailures: 10})
		src := func(i int) string { return fmt.Sprintf("203.0.113.%d:1", i) }
		for i := range 10 {
			if _, _, _, err := f.a.Login(ctx, "alice", "guess", src(i)); !errors.Is(err, auth.ErrBadCredentials) {
				t.Fatalf("guess %d: %v", i, err)
			}
		}
		// A source with one failure for alice is refused, right password or
		// not; for another id it is not.
		_, _, _, err := f.a.Login(ctx, "alice", alicePW, src(3))
		if d := lockedFor(t, err); d != time.Minute {
			t.Errorf("failing source: retry after %v, want 1m", d)
		}
		if _, _, _, err := f.a.Login(ctx, "bob", bobPW, src(3)); err != nil {
			t.Errorf("bob from a source failing for alice: %v", err)
		}
		// A new source gets one guess, then it is failing too.
		if _, _, _, err := f.a.Login(ctx, "alice", "guess", src(50)); !errors.Is(err, auth.ErrBadCredentials) {
			t.Errorf("first guess from a new source: %v", err)
		}
		if _, _, _, err := f.a.Login(ctx, "alice", "guess", src(50)); !errors.Is(err, auth.ErrLockedOut) {
			t.Errorf("second guess from a new source: %v, want locked out", err)
		}
		// The owner, from a clean source, gets in.
		if _, _, _, err := f.a.Login(ctx, "alice", alicePW, srcB); err != nil {
			t.Errorf("alice from a clean source: %v", err)
		}
		events, lines := f.audit.snapshot()
		i := slices.Index(events, audit.EventLoginLocked)
		if i < 0 || lines[i][auth.KeyLocked] != auth.LockedAccount || lines[i][auth.KeyClientID] != "alice" {
			t.Errorf("no per-client-id lockout in audit: %v", lines)
		}
		// After the lockout, the failing sources are admitted again.
		time.Sleep(time.Minute)
		if _, _, _, err := f.a.Login(ctx, "alice", alicePW, src(3)); err != nil {
			t.Errorf("after the per-client-id lockout: %v", err)
		}
	})
}

func TestLockoutWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		f := newAuthFixture(t, auth.Config{FailureWindow: 10 * time.Minute})
		// Failures spread wider than the window never lock.
		for i := range 3 * auth.DefaultMaxFailures {
			if _, _, _, err := f.a.Login(ctx, "alice", "guess", srcA); !errors.Is(err, auth.ErrBadCredentials) {
				t.Fatalf("failure %d: %v", i, err)
			}
			time.Sleep(3 * time.Minute)
		}
	})
}

func TestLockoutPerSource(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		f := newAuthFixture(t, auth.Config{})
		// Password spraying: one guess per id, all from one address. The
		// attacker's own successful login in between does not reset the source.
		for i := range auth.DefaultMaxSourceFailures {
			if i == auth.DefaultMaxSourceFailures/2 {
				if _, _, _, err := f.a.Login(ctx, "bob", bobPW, srcA); err != nil {
					t.Fatal(err)
				}
			}
			if _, _, _, err := f.a.Login(ctx, fmt.Sprintf("user%d", i), "Summer2026!", srcA); !errors.Is(err, auth.ErrBadCredentials) {
				t.Fatalf("failure %d: %v", i, err)
			}
		}
		_, _, _, err := f.a.Login(ctx, "alice", alicePW, srcA)
		if d := lockedFor(t, err); d != time.Minute {
			t.Errorf("source lockout %v, want 1m", d)
		}
		// Another address is not affected.
		if _, _, _, err := f.a.Login(ctx, "alice", alicePW, srcB); err != nil {
			t.Errorf("alice from another address: %v", err)
		}
		events, lines := f.audit.snapshot()
		i := slices.Index(events, audit.EventLoginLocked)
		if i < 0 || lines[i][auth.KeyLocked] != auth.KeySource || lines[i][auth.KeySource] != "192.0.2.1" {
			t.Errorf("no source lockout in audit: %v", events)
		}
	})
}

// TestLockoutConcurrent fires many wrong guesses at once: no more than
// MaxFailures may be checked before the lockout applies.
func TestLockoutConcurrent(t *testing.T) {
	ctx := context.Background()
	f := newAuthFixture(t, auth.Config{MaxConcurrentHashes: 64})
	var (
		wg            sync.WaitGroup
		mu            sync.Mutex
		checked, lock int
	)
	for i := range 40 {
		wg.Go(func() {
			_, _, _, err := f.a.Login(ctx, "alice", fmt.Sprint("guess", i), srcA)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(err, auth.ErrBadCredentials):
				checked++
			case errors.Is(err, auth.ErrLockedOut):
				lock++
			default:
				t.Errorf("unexpected %v", err)
			}
		})
	}
	wg.Wait()
	if checked > auth.DefaultMaxFailures || checked+lock != 40 {
		t.Errorf("%d guesses checked, %d refused; want at most %d checked", checked, lock, auth.DefaultMaxFailures)
	}
}

func TestLoginCanceled(t *testing.T) {
	f := newAuthFixture(t, auth.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for range 2 * auth.DefaultMaxFailures {
		if _, _, _, err := f.a.Login(ctx, "alice", "guess", srcA); !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	}
	// Canceled attempts are not failures.
	if _, _, _, err := f.a.Login(context.Background(), "alice", alicePW, srcA); err != nil {
		t.Errorf("after canceled attempts: %v", err)
	}
}

// TestRepeatedFailuresAreSlowedBeforeLockout checks the slow-down: each
// further failure for a client id waits longer before it is answered, until
// the lockout takes over.
func TestRepeatedFailuresAreSlowedBeforeLockout(t *testing.T) {
	ctx := context.Background()
	f := newAuthFixture(t, auth.Config{MaxFailures: 5, MaxSourceFailures: 1000})
	for range 4 {
		if _, _, _, err := f.a.Login(ctx, "alice", "wrong", srcA); !errors.Is(err, auth.ErrBadCredentials) {
			t.Fatal(err)
		}
	}
	f.sleepsMu.Lock()
	got := append([]time.Duration(nil), f.sleeps...)
	f.sleepsMu.Unlock()
	want := []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, time.Second}
	if !slices.Equal(got, want) {
		t.Fatalf("waits before answering failures 2-4 = %v, want %v", got, want)
	}
	// A success resets the slow-down.
	if _, _, _, err := f.a.Login(ctx, "alice", alicePW, srcA); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := f.a.Login(ctx, "alice", "wrong", srcA); !errors.Is(err, auth.ErrBadCredentials) {
		t.Fatal(err)
	}
	f.sleepsMu.Lock()
	defer f.sleepsMu.Unlock()
	if len(f.sleeps) != len(want) {
		t.Fatalf("the first failure after a success waited: %v", f.sleeps[len(want):])
	}
}
