package auth_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/remitpay/remit/internal/store/storetest"

	"github.com/remitpay/remit/internal/auth"
	"github.com/remitpay/remit/internal/authz"
)

func openSessionsConfig(tb testing.TB, cfg auth.SessionConfig) *auth.Sessions {
	tb.Helper()
	s, err := auth.OpenSessions(context.Background(), storetest.Target(tb, tb.TempDir(), "sessions"), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("close sessions: %v", err)
		}
	})
	return s
}

func mustVerify(ctx context.Context, t *testing.T, s *auth.Sessions, token string) string {
	t.Helper()
	_, id, err := s.Verify(ctx, token)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return id
}

// TestSessionsCacheSeesEveryRevocation caches a session by verifying it,
// revokes it by each path there is, and checks that the very next Verify
// refuses it while the other sessions still work.
func TestSessionsCacheSeesEveryRevocation(t *testing.T) {
	tests := []struct {
		name   string
		revoke func(ctx context.Context, s *auth.Sessions, token, sessionID string) error
	}{
		{"Revoke by token", func(ctx context.Context, s *auth.Sessions, token, _ string) error { return s.Revoke(ctx, token) }},
		{"Revoke by session id", func(ctx context.Context, s *auth.Sessions, _, id string) error { return s.Revoke(ctx, id) }},
		{"RevokeClient", func(ctx context.Context, s *auth.Sessions, _, _ string) error {
			n, err := s.RevokeClient(ctx, "alice")
			if err == nil && n != 2 {
				err = fmt.Errorf("RevokeClient revoked %d, want 2", n)
			}
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			s := openSessions(t, storetest.Target(t, t.TempDir(), "sessions"))
			issue := func(clientID string) string {
				tok, _, err := s.Issue(ctx, clientID)
				if err != nil {
					t.Fatal(err)
				}
				return tok
			}
			alice, alice2, bob := issue("alice"), issue("alice"), issue("bob")
			id := mustVerify(ctx, t, s, alice)
			mustVerify(ctx, t, s, alice) // a hit
			mustVerify(ctx, t, s, alice2)
			mustVerify(ctx, t, s, bob)
			if n := auth.CachedSessions(s); n != 3 {
				t.Fatalf("%d sessions cached, want 3", n)
			}
			if err := tt.revoke(ctx, s, alice, id); err != nil {
				t.Fatal(err)
			}
			if _, _, err := s.Verify(ctx, alice); !errors.Is(err, auth.ErrInvalidToken) {
				t.Errorf("revoked token: Verify = %v, want ErrInvalidToken", err)
			}
			if _, _, err := s.Verify(ctx, bob); err != nil {
				t.Errorf("bob's token: %v", err)
			}
		})
	}
}

func TestSessionsCacheKeepsExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		s := openSessionsConfig(t, auth.SessionConfig{TTL: 10 * time.Minute, PruneInterval: time.Hour})
		token, _, err := s.Issue(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		mustVerify(ctx, t, s, token)
		time.Sleep(10*time.Minute - time.Millisecond)
		mustVerify(ctx, t, s, token)
		if auth.CachedSessions(s) != 1 {
			t.Fatal("session not cached")
		}
		time.Sleep(time.Millisecond)
		if _, _, err := s.Verify(ctx, token); !errors.Is(err, auth.ErrInvalidToken) {
			t.Fatalf("expired cached token: %v, want ErrInvalidToken", err)
		}
		if auth.CachedSessions(s) != 0 {
			t.Error("expired session still cached")
		}
	})
}

func TestSessionsCacheIsBounded(t *testing.T) {
	ctx := context.Background()
	s := openSessionsConfig(t, auth.SessionConfig{CacheSize: 32})
	var tokens []string
	for range 100 {
		tok, _, err := s.Issue(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		tokens = append(tokens, tok)
		mustVerify(ctx, t, s, tok)
		if n := auth.CachedSessions(s); n > 32 {
			t.Fatalf("%d sessions cached, cap 32", n)
		}
	}
	// Evicted sessions are read from the database again, and a revocation
	// of any of them still holds.
	for _, tok := range tokens {
		mustVerify(ctx, t, s, tok)
	}
	if _, err := s.RevokeClient(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	for _, tok := range tokens {
		if _, _, err := s.Verify(ctx, tok); !errors.Is(err, auth.ErrInvalidToken) {
			t.Fatalf("revoked token: %v", err)
		}
	}

	off := openSessionsConfig(t, auth.SessionConfig{CacheSize: -1})
	tok, _, err := off.Issue(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	mustVerify(ctx, t, off, tok)
	if n := auth.CachedSessions(off); n != 0 {
		t.Errorf("disabled cache holds %d sessions", n)
	}
}

// TestVerifyCachedFollowsUsersFile: a user removed from the users file
// loses access at once even though the session is cached.
func TestVerifyCachedFollowsUsersFile(t *testing.T) {
	ctx := context.Background()
	f := newAuthFixture(t, auth.Config{})
	bobTok, _, _, err := f.a.Login(ctx, "bob", bobPW, srcA)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.a.Verify(ctx, bobTok); err != nil {
		t.Fatal(err)
	}
	alice, _ := f.a.Users().Lookup("alice")
	users, err := auth.ParseUsers("users.json", []byte(usersJSON(
		entry("alice", alice.PasswordHash, `["customer"]`, `{"bank":"bank-a","account_id":"alice"}`))))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.a.Import(ctx, users); err != nil {
		t.Fatal(err)
	}
	if _, err := f.a.Verify(ctx, bobTok); !errors.Is(err, authz.ErrUnauthenticated) {
		t.Errorf("removed user's cached token: %v", err)
	}
}

// TestVerifyLogoutRace verifies a token from several goroutines while it is
// logged out: no Verify that starts after Logout returned may accept it,
// whatever the interleaving with lookups that were filling the cache. Run
// it with -race.
func TestVerifyLogoutRace(t *testing.T) {
	ctx := context.Background()
	f := newAuthFixture(t, auth.Config{})
	for round := range 20 {
		token, _, _, err := f.a.Login(ctx, "alice", alicePW, srcA)
		if err != nil {
			t.Fatal(err)
		}
		var (
			loggedOut atomic.Bool
			accepted  atomic.Int64
			wg        sync.WaitGroup
		)
		start := make(chan struct{})
		for range 4 {
			wg.Go(func() {
				<-start
				for range 50 {
					after := loggedOut.Load()
					_, err := f.a.Verify(ctx, token)
					switch {
					case err == nil && after:
						accepted.Add(1)
					case err != nil && !errors.Is(err, auth.ErrInvalidToken):
						t.Errorf("Verify: %v", err)
					}
				}
			})
		}
		wg.Go(func() {
			<-start
			p, err := f.a.Verify(ctx, token)
			if err != nil {
				t.Errorf("Verify before Logout: %v", err)
				return
			}
			if err := f.a.Logout(ctx, p.SessionID); err != nil {
				t.Errorf("Logout: %v", err)
			}
			loggedOut.Store(true)
		})
		close(start)
		wg.Wait()
		if n := accepted.Load(); n > 0 {
			t.Fatalf("round %d: %d verifications accepted the token after Logout returned", round, n)
		}
		if _, err := f.a.Verify(ctx, token); !errors.Is(err, auth.ErrInvalidToken) {
			t.Fatalf("round %d: Verify after Logout = %v", round, err)
		}
	}
}

// BenchmarkVerify measures the token check every authenticated call makes,
// with the session cache (the default) and without it (every call reads
// SQLite, as before the cache).
func BenchmarkVerify(b *testing.B) {
	for _, bc := range []struct {
		name string
		size int
	}{{"cache=off", -1}, {"cache=on", 0}} {
		b.Run(bc.name, func(b *testing.B) {
			ctx := context.Background()
			s, err := auth.OpenSessions(ctx, storetest.Target(b, b.TempDir(), "sessions"), auth.SessionConfig{CacheSize: bc.size})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = s.Close() })
			tokens := make([]string, 64)
			for i := range tokens {
				if tokens[i], _, err = s.Issue(ctx, "alice"); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			var n atomic.Int64
			b.RunParallel(func(pb *testing.PB) {
				i := int(n.Add(1))
				for pb.Next() {
					i++
					if _, _, err := s.Verify(ctx, tokens[i%len(tokens)]); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// TestSessionsRevokeDuringLookup revokes a session between Verify's
// database read (which still found it valid) and the moment Verify fills
// the cache: the stale result must not be cached.
func TestSessionsRevokeDuringLookup(t *testing.T) {
	ctx := context.Background()
	s := openSessions(t, storetest.Target(t, t.TempDir(), "sessions"))
	token, _, err := s.Issue(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	auth.SetLookedUpHook(s, func() {
		auth.SetLookedUpHook(s, nil)
		if err := s.Revoke(ctx, token); err != nil {
			t.Error(err)
		}
	})
	mustVerify(ctx, t, s, token) // read before the revocation: still valid
	if _, _, err := s.Verify(ctx, token); !errors.Is(err, auth.ErrInvalidToken) {
		t.Fatalf("Verify after Revoke = %v, want ErrInvalidToken", err)
	}
}
