package auth_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/remitpay/remit/internal/store/storetest"

	"github.com/remitpay/remit/internal/auth"
	"github.com/remitpay/remit/internal/authz"
)

// An admin naming a session id of another user ends nothing: not the
// session (checked by TestResetAndRevokeSessions) and not its open streams.
func TestReviewRevokeAnotherUsersSessionIDEndsNoStream(t *testing.T) {
	ctx := context.Background()
	f := userFixture(t)
	f.login(t, "alice", alicePW)
	bobTok, bob := f.login(t, "bob", bobPW)
	ended, stop := f.a.SessionEnded(bob.ClientID, bob.SessionID)
	defer stop()
	if n, err := f.a.RevokeSessions(ctx, "alice", bob.SessionID, "admin"); err != nil || n != 0 {
		t.Fatalf("RevokeSessions(alice, bob's session) = %d, %v; want 0", n, err)
	}
	if !f.valid(bobTok) {
		t.Fatal("bob's session ended")
	}
	wantOpen(t, "bob's session named as alice's", ended)
}

// A users file that takes a role away from a user (bob: customer and
// auditor, demoted to customer) must end the streams opened with the old
// roles: an auditor's WatchPayments shows every account's payments, and
// the interceptor's periodic recheck only asks whether the token still
// works, which it does.
func TestReviewImportRoleChangeEndsOpenStreams(t *testing.T) {
	f := userFixture(t)
	bobTok, bob := f.login(t, "bob", bobPW)
	if !bob.HasAnyRole(authz.RoleAuditor) {
		t.Fatalf("bob's principal %+v, want an auditor", bob)
	}
	ended, stop := f.a.SessionEnded(bob.ClientID, bob.SessionID)
	defer stop()
	alice, _ := f.a.Users().Lookup("alice")
	u, _ := f.a.Users().Lookup("bob")
	res := importEntries(t, f,
		entry("alice", alice.PasswordHash, `["customer"]`, `{"bank":"bank-a","account_id":"alice"}`),
		entry("bob", u.PasswordHash, `["customer"]`, `{"bank":"bank-b","account_id":"bob"}`))
	if res.Updated != 1 {
		t.Fatalf("import = %+v, want bob updated", res)
	}
	p, err := f.a.Verify(context.Background(), bobTok)
	if err == nil && p.HasAnyRole(authz.RoleAuditor) {
		t.Fatal("bob still an auditor on unary calls")
	}
	wantClosed(t, "bob demoted from auditor", ended)
}

// A session revoked while its ChangePassword was on the way (the token was
// verified before the revocation) must not change the password: the admin
// revoked it because it is not the user's.
func TestReviewChangePasswordFromARevokedSession(t *testing.T) {
	ctx := context.Background()
	f := userFixture(t)
	_, p := f.login(t, "alice", alicePW) // p: the principal the interceptor made before the revocation
	if _, err := f.a.RevokeSessions(ctx, "alice", "", "admin"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.a.ChangePassword(ctx, p, alicePW, newPW, srcA); err == nil {
		t.Error("a revoked session changed the password")
	}
	if _, _, _, err := f.a.Login(ctx, "alice", alicePW, srcA); err != nil {
		t.Errorf("the old password stopped working: %v", err)
	}
}

// Register's retry path (the client id already registered with this
// account, the bank accepting the same code again) checks the password: a
// wrong one must count as a failed login, else it is a password oracle that
// no lockout stops.
func TestReviewRegisterRetryCountsWrongPasswords(t *testing.T) {
	ctx := context.Background()
	f := userFixture(t)
	acct := authz.Account{Bank: "bank-b", ID: "erin"}
	accept := func(context.Context) error { return nil }
	if _, err := f.a.Register(ctx, auth.Registration{ClientID: "erin", Password: newPW, Account: acct}, srcA, accept); err != nil {
		t.Fatal(err)
	}
	var last error
	for i := range auth.DefaultMaxFailures + 1 {
		guess := auth.Registration{ClientID: "erin", Password: "guess-number-" + string(rune('a'+i)) + "-long", Account: acct}
		if _, last = f.a.Register(ctx, guess, srcB, accept); errors.Is(last, auth.ErrLockedOut) {
			break
		}
		if !errors.Is(last, auth.ErrClientIDTaken) {
			t.Fatalf("guess %d: %v", i, last)
		}
	}
	if !errors.Is(last, auth.ErrLockedOut) {
		t.Errorf("after %d wrong passwords through Register: %v, want a lockout", auth.DefaultMaxFailures+1, last)
	}
	if _, _, _, err := f.a.Login(ctx, "erin", "yet-another-guess-here", srcB); !errors.Is(err, auth.ErrLockedOut) {
		t.Errorf("login from the guessing source: %v, want a lockout", err)
	}
}

// The users file may change between the start's import and the start of
// its watch (the gateway recovers payments and connects to banks in
// between): that change must be imported too, not taken as already seen.
func TestReviewUsersFileChangedBeforeTheWatchStarts(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	dir := t.TempDir()
	path := filepath.Join(dir, "users.json")
	alice := entry("alice", mustHash(t, alicePW), `["customer"]`, `{"bank":"bank-a","account_id":"alice"}`)
	writeUsersFile(t, path, alice)
	file, err := auth.LoadUsers(path)
	if err != nil {
		t.Fatal(err)
	}
	sessions, err := auth.OpenSessions(ctx, storetest.Target(t, dir, "sessions"), auth.SessionConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sessions.Close() })
	a, err := auth.NewAuthenticator(ctx, file, sessions, auth.Config{HashParams: cheap})
	if err != nil {
		t.Fatal(err)
	}
	// An operator adds zoe while the gateway is still starting.
	writeUsersFile(t, path, alice, entry("zoe", mustHash(t, "zoe-password"), `["auditor"]`, ""))
	done := make(chan struct{})
	go func() { defer close(done); a.WatchUsersFile(ctx, path, 10*time.Millisecond, nil) }()
	defer func() { cancel(); <-done }()
	waitUntil(t, "zoe imported", func() bool { _, ok := a.Users().Lookup("zoe"); return ok })
}

// The file changing both the password (set through the API since, so
// ignored) and the roles of a user reports the password conflict once, as
// the documentation says, not again on every later import.
func TestReviewImportPasswordConflictReportedOnce(t *testing.T) {
	ctx := context.Background()
	f := userFixture(t)
	if _, _, err := f.a.ResetPassword(ctx, "bob", newPW, "admin"); err != nil {
		t.Fatal(err)
	}
	alice, _ := f.a.Users().Lookup("alice")
	aliceEntry := entry("alice", alice.PasswordHash, `["customer"]`, `{"bank":"bank-a","account_id":"alice"}`)
	bobEntry := entry("bob", mustHash(t, "file-password-for-bob"), `["customer"]`, `{"bank":"bank-b","account_id":"bob"}`)
	if res := importEntries(t, f, aliceEntry, bobEntry); res.Skipped != 1 || res.Updated != 1 {
		t.Fatalf("first import = %+v, want bob's roles updated and his password skipped", res)
	}
	// The same entries again, with an unrelated user added.
	zoe := entry("zoe", mustHash(t, "zoe-password"), `["auditor"]`, "")
	if res := importEntries(t, f, aliceEntry, bobEntry, zoe); res.Skipped != 0 {
		t.Errorf("second import = %+v: bob's password conflict reported again", res)
	}
}
