package auth_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/remitpay/remit/internal/store/storetest"

	"github.com/remitpay/remit/internal/auth"
)

func openSessions(t *testing.T, path string) *auth.Sessions {
	t.Helper()
	s, err := auth.OpenSessions(context.Background(), path, auth.SessionConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close sessions: %v", err)
		}
	})
	return s
}

func TestSessionsIssueVerify(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		s := openSessions(t, storetest.Target(t, t.TempDir(), "sessions"))

		token, expire, err := s.Issue(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(token, auth.TokenPrefix) {
			t.Errorf("token %q lacks prefix %q", token, auth.TokenPrefix)
		}
		raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(token, auth.TokenPrefix))
		if err != nil || len(raw) != 32 {
			t.Errorf("token is not 32 base64url bytes: %v, %d", err, len(raw))
		}
		if want := time.Now().Add(auth.DefaultSessionTTL); !expire.Equal(want) {
			t.Errorf("expire = %v, want %v", expire, want)
		}
		other, _, err := s.Issue(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		if other == token {
			t.Error("two tokens are equal")
		}

		clientID, sessionID, err := s.Verify(ctx, token)
		if err != nil || clientID != "alice" || sessionID == "" {
			t.Fatalf("Verify = %q, %q, %v", clientID, sessionID, err)
		}
		if strings.Contains(token, sessionID) {
			t.Error("the session id is part of the token")
		}
		_, otherID, _ := s.Verify(ctx, other)
		if otherID == sessionID {
			t.Error("two sessions share an id")
		}
	})
}

func TestSessionsRejectInvalidTokens(t *testing.T) {
	ctx := context.Background()
	s := openSessions(t, storetest.Target(t, t.TempDir(), "sessions"))
	issue := func() string {
		tok, _, err := s.Issue(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}

	revokedByToken := issue()
	if err := s.Revoke(ctx, revokedByToken); err != nil {
		t.Fatal(err)
	}
	revokedByID := issue()
	_, id, err := s.Verify(ctx, revokedByID)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Revoke(ctx, id); err != nil {
		t.Fatal(err)
	}
	valid := issue()
	flipped := []byte(valid)
	flipped[10] ^= 1 // still well formed, different secret
	if flipped[10] == '-' || flipped[10] == '_' {
		flipped[10] = 'A'
	}

	tests := []struct {
		name  string
		token string
	}{
		{"empty", ""},
		{"prefix only", auth.TokenPrefix},
		{"garbage", "not-a-token"},
		{"unknown", auth.TokenPrefix + base64.RawURLEncoding.EncodeToString(make([]byte, 32))},
		{"one bit off", string(flipped)},
		{"truncated", valid[:len(valid)-1]},
		{"extended", valid + "A"},
		{"bad base64", valid[:len(valid)-1] + "!"},
		{"no prefix", strings.TrimPrefix(valid, auth.TokenPrefix)},
		{"session id instead of token", id},
		{"revoked by token", revokedByToken},
		{"revoked by session id", revokedByID},
	}
	for _, tt := range tests {
		if _, _, err := s.Verify(ctx, tt.token); err != auth.ErrInvalidToken { //nolint:errorlint,err113 // exactly this error, no detail
			t.Errorf("%s: Verify = %v, want exactly ErrInvalidToken", tt.name, err)
		}
	}
	// Revoking is idempotent, also for unknown sessions.
	for _, x := range []string{revokedByToken, id, "unknown", auth.TokenPrefix + "x"} {
		if err := s.Revoke(ctx, x); err != nil {
			t.Errorf("Revoke(%q) = %v", x, err)
		}
	}
	if _, _, err := s.Verify(ctx, valid); err != nil {
		t.Errorf("valid token rejected: %v", err)
	}
}

func TestSessionsExpire(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		s, err := auth.OpenSessions(ctx, storetest.Target(t, t.TempDir(), "sessions"),
			auth.SessionConfig{TTL: 10 * time.Minute, PruneInterval: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := s.Close(); err != nil {
				t.Errorf("close sessions: %v", err)
			}
		}()
		token, expire, err := s.Issue(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		if got := time.Until(expire); got != 10*time.Minute {
			t.Errorf("TTL = %v, want 10m", got)
		}
		time.Sleep(10*time.Minute - time.Millisecond)
		if _, _, err := s.Verify(ctx, token); err != nil {
			t.Fatalf("token rejected before expiry: %v", err)
		}
		time.Sleep(time.Millisecond)
		if _, _, err := s.Verify(ctx, token); !errors.Is(err, auth.ErrInvalidToken) {
			t.Fatalf("expired token: %v, want ErrInvalidToken", err)
		}

		// Expired sessions are pruned; live ones are kept.
		live, _, err := s.Issue(ctx, "bob")
		if err != nil {
			t.Fatal(err)
		}
		n, err := s.Prune(ctx)
		if err != nil || n != 1 {
			t.Errorf("Prune = %d, %v; want 1 expired session", n, err)
		}
		if _, _, err := s.Verify(ctx, live); err != nil {
			t.Errorf("Prune removed a live session: %v", err)
		}

		// Issue prunes by itself once PruneInterval has passed.
		time.Sleep(time.Hour)
		if _, _, err := s.Issue(ctx, "carol"); err != nil {
			t.Fatal(err)
		}
		if n, err := s.Prune(ctx); err != nil || n != 0 {
			t.Errorf("Prune after Issue = %d, %v; want 0 (already pruned)", n, err)
		}
	})
}

func TestSessionsRevokeClient(t *testing.T) {
	ctx := context.Background()
	s := openSessions(t, storetest.Target(t, t.TempDir(), "sessions"))
	var alice []string
	for range 3 {
		tok, _, err := s.Issue(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		alice = append(alice, tok)
	}
	bob, _, _ := s.Issue(ctx, "bob")
	if n, err := s.RevokeClient(ctx, "alice"); err != nil || n != 3 {
		t.Fatalf("RevokeClient = %d, %v", n, err)
	}
	for _, tok := range alice {
		if _, _, err := s.Verify(ctx, tok); !errors.Is(err, auth.ErrInvalidToken) {
			t.Errorf("alice's token still works: %v", err)
		}
	}
	if _, _, err := s.Verify(ctx, bob); err != nil {
		t.Errorf("bob's token revoked: %v", err)
	}
}

// TestSessionsSurviveRestartAndStoreNoToken reopens the database, as a
// gateway restart does, and checks that no token is stored in clear in any
// of SQLite's files (or PostgreSQL's rows).
func TestSessionsSurviveRestartAndStoreNoToken(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := storetest.Target(t, dir, "sessions")
	s, err := auth.OpenSessions(ctx, path, auth.SessionConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var tokens []string
	for _, id := range []string{"alice", "bob"} {
		tok, _, err := s.Issue(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		tokens = append(tokens, tok)
	}
	revoked, _, _ := s.Issue(ctx, "carol")
	if err := s.Revoke(ctx, revoked); err != nil {
		t.Fatal(err)
	}

	// Look at the files while the database is open (the WAL holds the
	// rows) and after it is closed (checkpointed into the main file).
	scan := func(when string) {
		for name, data := range storetest.Contents(t, path) {
			for _, tok := range append(tokens, revoked) {
				secret := strings.TrimPrefix(tok, auth.TokenPrefix)
				raw, _ := base64.RawURLEncoding.DecodeString(secret)
				if bytes.Contains(data, []byte(secret)) || bytes.Contains(data, raw) || bytes.Contains(data, []byte(hex.EncodeToString(raw))) {
					t.Errorf("%s: %s contains a token in clear", when, name)
				}
			}
		}
	}
	scan("open")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	scan("closed")

	s = openSessions(t, path)
	for i, id := range []string{"alice", "bob"} {
		got, _, err := s.Verify(ctx, tokens[i])
		if err != nil || got != id {
			t.Errorf("after reopening: Verify = %q, %v; want %q", got, err, id)
		}
	}
	if _, _, err := s.Verify(ctx, revoked); !errors.Is(err, auth.ErrInvalidToken) {
		t.Errorf("revocation lost across restart: %v", err)
	}
}
