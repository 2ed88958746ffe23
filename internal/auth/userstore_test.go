package auth_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/remitpay/remit/internal/store/storetest"

	"github.com/remitpay/remit/internal/audit"
	"github.com/remitpay/remit/internal/auth"
	"github.com/remitpay/remit/internal/authz"
)

const newPW = "a-much-longer-passphrase"

func userFixture(t *testing.T) *authFixture {
	t.Helper()
	return newAuthFixture(t, auth.Config{HashParams: cheap, FailureDelay: -1})
}

func (f *authFixture) login(t *testing.T, id, pw string) (token string, p *authz.Principal) {
	t.Helper()
	tok, _, _, err := f.a.Login(context.Background(), id, pw, srcA)
	if err != nil {
		t.Fatalf("login %s: %v", id, err)
	}
	p, err = f.a.Verify(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	return tok, p
}

func (f *authFixture) valid(token string) bool {
	_, err := f.a.Verify(context.Background(), token)
	return err == nil
}

func (f *authFixture) hasEvent(event string, attrs map[string]string) bool {
	events, lines := f.audit.snapshot()
	for i, e := range events {
		if e != event {
			continue
		}
		match := true
		for k, v := range attrs {
			if lines[i][k] != v {
				match = false
			}
		}
		if match {
			return true
		}
	}
	return false
}

// wantClosed fails unless ch is closed (it is closed synchronously by the
// revocation, so no wait is needed).
func wantClosed(t *testing.T, what string, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	default:
		t.Errorf("%s: the session's stream was not told", what)
	}
}

func wantOpen(t *testing.T, what string, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
		t.Errorf("%s: the session's stream was told it ended", what)
	default:
	}
}

func TestCheckPassword(t *testing.T) {
	for _, tt := range []struct {
		id, pw string
		ok     bool
	}{
		{"alice", "short", false},
		{"alice", "elevenchars", false},
		{"alice", "twelve-chars", true},
		{"alice", "password1234", false},
		{"alice", "PASSWORD1234", false},
		{"alice", "Password2026!", false},
		{"alice", "qwertyuiop123", false},
		{"alice", "123456789012", false},
		{"alice", "iloveyou1234", false},
		{"alice", "correct horse battery staple", false},
		{"alice", "zzzzzzzzzzzzzz", false},
		{"longclientname", "LongClientName", false},
		{"longclientname", "longclientname2026", false},
		{"alice", "ünïcödé-pässwörd", true},
		{"alice", "ab€ab€ab€ab€", true},
		{"alice", "ab€ab€ab€ab", false}, // 11 characters, more bytes
		{"alice", newPW, true},
	} {
		err := auth.CheckPassword(tt.id, tt.pw)
		if (err == nil) != tt.ok || (err != nil && !errors.Is(err, auth.ErrWeakPassword)) {
			t.Errorf("CheckPassword(%q, %q) = %v, want ok %v", tt.id, tt.pw, err, tt.ok)
		}
		if err != nil && strings.Contains(err.Error(), tt.pw) {
			t.Errorf("CheckPassword(%q, %q): the error %q contains the password", tt.id, tt.pw, err)
		}
	}
}

func TestUsersLiveInTheDatabase(t *testing.T) {
	ctx := context.Background()
	f := userFixture(t)
	alice, ok := f.a.Users().Lookup("alice")
	if !ok || alice.Source != auth.SourceFile || alice.Created.IsZero() || alice.Disabled {
		t.Fatalf("alice = %+v, %v", alice, ok)
	}
	u, err := f.a.CreateUser(ctx, auth.NewUser{ClientID: "Erin", Roles: []authz.Role{authz.RoleCustomer},
		Account: &authz.Account{Bank: "bank-b", ID: "erin"}}, newPW, "admin")
	if err != nil {
		t.Fatal(err)
	}
	if u.Source != auth.SourceAdmin || u.ClientID != "Erin" {
		t.Errorf("created %+v", u)
	}
	if _, _, _, err := f.a.Login(ctx, "Erin", newPW, srcA); err != nil {
		t.Errorf("login of a created user: %v", err)
	}
	for _, tt := range []struct {
		name string
		nu   auth.NewUser
		pw   string
		want error
	}{
		{"id taken in another case", auth.NewUser{ClientID: "erin", Roles: []authz.Role{authz.RoleAdmin}}, newPW, auth.ErrClientIDTaken},
		{"file user's id", auth.NewUser{ClientID: "ALICE", Roles: []authz.Role{authz.RoleAdmin}}, newPW, auth.ErrClientIDTaken},
		{"account linked", auth.NewUser{ClientID: "frank", Roles: []authz.Role{authz.RoleCustomer},
			Account: &authz.Account{Bank: "bank-a", ID: "alice"}}, newPW, auth.ErrAccountLinked},
		{"customer without account", auth.NewUser{ClientID: "gina", Roles: []authz.Role{authz.RoleCustomer}}, newPW, auth.ErrAccountRequired},
		{"no role", auth.NewUser{ClientID: "gina"}, newPW, auth.ErrInvalidUser},
		{"bank role", auth.NewUser{ClientID: "gina", Roles: []authz.Role{authz.RoleBank}}, newPW, auth.ErrInvalidUser},
		{"weak password", auth.NewUser{ClientID: "gina", Roles: []authz.Role{authz.RoleAdmin}}, "password1234", auth.ErrWeakPassword},
	} {
		if _, err := f.a.CreateUser(ctx, tt.nu, tt.pw, "admin"); !errors.Is(err, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
	}
	if !f.hasEvent(audit.EventUserCreated, map[string]string{auth.KeyClientID: "Erin", auth.KeyBy: "admin"}) {
		t.Error("no user_created in the audit log")
	}

	// A second Authenticator on the same database (a restart) has the user.
	sessions, err := auth.OpenSessions(ctx, storetest.Target(t, f.dir, "sessions"), auth.SessionConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sessions.Close() })
	again, err := auth.NewAuthenticator(ctx, nil, sessions, auth.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if u, ok := again.Users().Lookup("Erin"); !ok || u.Account == nil || u.Account.ID != "erin" {
		t.Errorf("after a restart: %+v, %v", u, ok)
	}
}

// Two customers created at once for the same account: exactly one wins.
func TestCreateUserAccountRace(t *testing.T) {
	ctx := context.Background()
	f := userFixture(t)
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() {
			_, errs[i] = f.a.CreateUser(ctx, auth.NewUser{ClientID: fmt.Sprint("racer", i), Roles: []authz.Role{authz.RoleCustomer},
				Account: &authz.Account{Bank: "bank-c", ID: "shared"}}, newPW, "admin")
		})
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, auth.ErrAccountLinked):
			t.Errorf("loser: %v, want ErrAccountLinked", err)
		}
	}
	if won != 1 {
		t.Errorf("%d users linked the account, want 1", won)
	}
}

func TestDisableEndsSessionsAtOnce(t *testing.T) {
	ctx := context.Background()
	f := userFixture(t)
	tok1, p1 := f.login(t, "alice", alicePW)
	tok2, p2 := f.login(t, "alice", alicePW)
	bobTok, bob := f.login(t, "bob", bobPW)
	end1, stop1 := f.a.SessionEnded(p1.ClientID, p1.SessionID)
	defer stop1()
	end2, stop2 := f.a.SessionEnded(p2.ClientID, p2.SessionID)
	defer stop2()
	endBob, stopBob := f.a.SessionEnded(bob.ClientID, bob.SessionID)
	defer stopBob()

	u, n, err := f.a.DisableUser(ctx, "ALICE", "admin")
	if err != nil || n != 2 || !u.Disabled {
		t.Fatalf("DisableUser = %+v, %d, %v; want disabled, 2 sessions", u, n, err)
	}
	wantClosed(t, "disable", end1)
	wantClosed(t, "disable", end2)
	wantOpen(t, "another user", endBob)
	if f.valid(tok1) || f.valid(tok2) || !f.valid(bobTok) {
		t.Errorf("after disable: alice's tokens valid %v %v, bob's %v", f.valid(tok1), f.valid(tok2), f.valid(bobTok))
	}
	if _, _, _, err := f.a.Login(ctx, "alice", alicePW, srcB); err != auth.ErrBadCredentials { //nolint:errorlint,err113 // must be the same error
		t.Errorf("disabled user's login: %v, want ErrBadCredentials", err)
	}
	if !f.hasEvent(audit.EventLoginFailed, map[string]string{auth.KeyClientID: "alice", auth.KeyReason: auth.ReasonUserDisabled}) {
		t.Error("the refused login is not audited with its reason")
	}
	if _, n, err := f.a.DisableUser(ctx, "alice", "admin"); err != nil || n != 0 {
		t.Errorf("disabling again = %d, %v; want 0 sessions, nil", n, err)
	}
	if _, err := f.a.EnableUser(ctx, "alice", "admin"); err != nil {
		t.Fatal(err)
	}
	f.login(t, "alice", alicePW)
	if _, _, err := f.a.DisableUser(ctx, "nobody", "admin"); !errors.Is(err, auth.ErrUnknownUser) {
		t.Errorf("unknown user: %v", err)
	}
}

// A stream's watch is released when it stops, fired or not.
func TestSessionWatchesAreReleased(t *testing.T) {
	ctx := context.Background()
	f := userFixture(t)
	_, p1 := f.login(t, "alice", alicePW)
	_, p2 := f.login(t, "alice", alicePW)
	_, stop1 := f.a.SessionEnded(p1.ClientID, p1.SessionID)
	ended2, stop2 := f.a.SessionEnded(p2.ClientID, p2.SessionID)
	if n := auth.WatchedSessions(f.a); n != 2 {
		t.Fatalf("%d watches, want 2", n)
	}
	if err := f.a.Logout(ctx, p2.SessionID); err != nil {
		t.Fatal(err)
	}
	wantClosed(t, "logout", ended2)
	stop1()
	stop2()
	if n := auth.WatchedSessions(f.a); n != 0 {
		t.Errorf("%d watches after stop, want 0", n)
	}
}

func TestChangePasswordKeepsTheCallingSession(t *testing.T) {
	ctx := context.Background()
	f := userFixture(t)
	keepTok, keep := f.login(t, "alice", alicePW)
	otherTok, other := f.login(t, "alice", alicePW)
	endKeep, stopKeep := f.a.SessionEnded(keep.ClientID, keep.SessionID)
	defer stopKeep()
	endOther, stopOther := f.a.SessionEnded(other.ClientID, other.SessionID)
	defer stopOther()

	if _, err := f.a.ChangePassword(ctx, keep, "wrong-current-password", newPW, srcA); err != auth.ErrBadCredentials { //nolint:errorlint,err113 // the login's error
		t.Fatalf("wrong current password: %v", err)
	}
	if !f.hasEvent(audit.EventLoginFailed, map[string]string{auth.KeyClientID: "alice"}) {
		t.Error("a wrong current password is not a failed login")
	}
	if _, err := f.a.ChangePassword(ctx, keep, alicePW, "password1234", srcA); !errors.Is(err, auth.ErrWeakPassword) {
		t.Errorf("weak new password: %v", err)
	}
	n, err := f.a.ChangePassword(ctx, keep, alicePW, newPW, srcA)
	if err != nil || n != 1 {
		t.Fatalf("ChangePassword = %d, %v; want 1 session ended", n, err)
	}
	wantClosed(t, "other session", endOther)
	wantOpen(t, "calling session", endKeep)
	if !f.valid(keepTok) || f.valid(otherTok) {
		t.Errorf("calling session valid %v (want true), other %v (want false)", f.valid(keepTok), f.valid(otherTok))
	}
	if _, _, _, err := f.a.Login(ctx, "alice", alicePW, srcB); err == nil {
		t.Error("the old password still works")
	}
	f.login(t, "alice", newPW)
	if !f.hasEvent(audit.EventPasswordChanged, map[string]string{auth.KeyClientID: "alice", auth.KeyBy: auth.BySelf, auth.KeyRevokedSessions: "1"}) {
		t.Error("no password_changed in the audit log")
	}
	if u, _ := f.a.Users().Lookup("alice"); !u.PasswordChanged.After(u.Created) && !u.PasswordChanged.Equal(u.Created) {
		t.Errorf("password change time %v", u.PasswordChanged)
	}
}

func TestResetAndRevokeSessions(t *testing.T) {
	ctx := context.Background()
	f := userFixture(t)
	tok1, p1 := f.login(t, "alice", alicePW)
	tok2, p2 := f.login(t, "alice", alicePW)
	list := mustSessions(t, f, "alice")
	if len(list) != 2 || list[0].ID != p2.SessionID || list[1].ID != p1.SessionID {
		t.Fatalf("sessions %+v, want %s then %s (newest first)", list, p2.SessionID, p1.SessionID)
	}
	// One session, by id; another user's session id ends nothing.
	if n, err := f.a.RevokeSessions(ctx, "bob", p1.SessionID, "admin"); err != nil || n != 0 {
		t.Errorf("revoking alice's session as bob's = %d, %v", n, err)
	}
	if !f.valid(tok1) {
		t.Fatal("another user's revocation ended the session")
	}
	if n, err := f.a.RevokeSessions(ctx, "alice", p1.SessionID, "admin"); err != nil || n != 1 {
		t.Errorf("RevokeSessions(one) = %d, %v", n, err)
	}
	if f.valid(tok1) || !f.valid(tok2) {
		t.Error("RevokeSessions(one) ended the wrong sessions")
	}
	if auth.CachedSessions(sessionsOf(t, f)) != 1 {
		t.Errorf("cache holds %d sessions, want 1", auth.CachedSessions(sessionsOf(t, f)))
	}
	u, n, err := f.a.ResetPassword(ctx, "alice", newPW, "admin")
	if err != nil || n != 1 || u.ClientID != "alice" {
		t.Fatalf("ResetPassword = %+v, %d, %v", u, n, err)
	}
	if f.valid(tok2) || len(mustSessions(t, f, "alice")) != 0 {
		t.Error("ResetPassword left a session")
	}
	if auth.CachedSessions(sessionsOf(t, f)) != 0 {
		t.Errorf("cache holds %d sessions after the reset", auth.CachedSessions(sessionsOf(t, f)))
	}
	f.login(t, "alice", newPW)
	if _, _, err := f.a.ResetPassword(ctx, "alice", "alice", "admin"); !errors.Is(err, auth.ErrWeakPassword) {
		t.Errorf("weak reset: %v", err)
	}
}

func mustSessions(t *testing.T, f *authFixture, id string) []auth.SessionInfo {
	t.Helper()
	_, list, err := f.a.ListSessions(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return list
}

// sessionsOf reaches the fixture's Sessions through the export hook.
func sessionsOf(t *testing.T, f *authFixture) *auth.Sessions {
	t.Helper()
	return auth.SessionsOf(f.a)
}

func TestListUsersPages(t *testing.T) {
	ctx := context.Background()
	f := userFixture(t)
	for _, id := range []string{"carol", "dave", "erin"} {
		if _, err := f.a.CreateUser(ctx, auth.NewUser{ClientID: id, Roles: []authz.Role{authz.RoleAuditor}}, newPW, "admin"); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	after := ""
	for range 10 {
		page, more := f.a.ListUsers(after, 2)
		for _, u := range page {
			got = append(got, u.ClientID)
		}
		if !more {
			break
		}
		after = page[len(page)-1].ClientID
	}
	if want := []string{"alice", "bob", "carol", "dave", "erin"}; !slices.Equal(got, want) {
		t.Errorf("pages = %v, want %v", got, want)
	}
}

func TestRegister(t *testing.T) {
	ctx := context.Background()
	f := userFixture(t)
	acct := authz.Account{Bank: "bank-b", ID: "erin"}
	calls := 0
	accept := func(context.Context) error { calls++; return nil }
	reject := func(context.Context) error { calls++; return fmt.Errorf("wrong code: %w", auth.ErrEnrollmentRejected) }
	reg := auth.Registration{ClientID: "erin", Password: newPW, Account: acct}

	u, err := f.a.Register(ctx, reg, srcA, accept)
	if err != nil || u.Source != auth.SourceRegistration || !u.HasRole(authz.RoleCustomer) || *u.Account != acct {
		t.Fatalf("Register = %+v, %v", u, err)
	}
	// A retry after a lost answer: the bank accepts the same code again.
	if again, err := f.a.Register(ctx, reg, srcA, accept); err != nil || again.ClientID != "erin" {
		t.Errorf("retry = %+v, %v", again, err)
	}
	// The same id with another password is not a retry.
	other := reg
	other.Password = "another-long-password"
	if _, err := f.a.Register(ctx, other, srcA, accept); !errors.Is(err, auth.ErrClientIDTaken) {
		t.Errorf("retry with another password: %v", err)
	}
	calls = 0
	for _, tt := range []struct {
		name      string
		r         auth.Registration
		want      error
		bankCalls int
	}{
		{"taken id", auth.Registration{ClientID: "ALICE", Password: newPW, Account: authz.Account{Bank: "bank-c", ID: "x"}}, auth.ErrClientIDTaken, 0},
		{"linked account", auth.Registration{ClientID: "frank", Password: newPW, Account: acct}, auth.ErrAccountLinked, 1},
		{"weak password", auth.Registration{ClientID: "frank", Password: "frank", Account: authz.Account{Bank: "bank-c", ID: "frank"}}, auth.ErrWeakPassword, 0},
		{"bad id", auth.Registration{ClientID: "no spaces", Password: newPW, Account: authz.Account{Bank: "bank-c", ID: "frank"}}, auth.ErrInvalidUser, 0},
	} {
		calls = 0
		if _, err := f.a.Register(ctx, tt.r, srcA, accept); !errors.Is(err, tt.want) || calls != tt.bankCalls {
			t.Errorf("%s: %v after %d bank calls, want %v after %d", tt.name, err, calls, tt.want, tt.bankCalls)
		}
	}
	if !f.hasEvent(audit.EventUserRegistered, map[string]string{auth.KeyClientID: "erin"}) {
		t.Error("no user_registered")
	}

	// Guessing codes locks the source out, for logins too; others go on.
	guess := auth.Registration{ClientID: "mallory", Password: newPW, Account: authz.Account{Bank: "bank-c", ID: "carol"}}
	calls = 0
	var locked error
	for range auth.DefaultMaxSourceFailures + 1 {
		if _, err := f.a.Register(ctx, guess, srcB, reject); errors.Is(err, auth.ErrLockedOut) {
			locked = err
			break
		} else if !errors.Is(err, auth.ErrEnrollmentRejected) {
			t.Fatalf("guess: %v", err)
		}
	}
	if locked == nil || calls != auth.DefaultMaxSourceFailures {
		t.Fatalf("after %d wrong codes: %v, want a lockout after %d", calls, locked, auth.DefaultMaxSourceFailures)
	}
	if _, _, _, err := f.a.Login(ctx, "bob", bobPW, srcB); !errors.Is(err, auth.ErrLockedOut) {
		t.Errorf("login from the guessing source: %v, want a lockout", err)
	}
	if _, err := f.a.Register(ctx, auth.Registration{ClientID: "gina", Password: newPW, Account: authz.Account{Bank: "bank-c", ID: "gina"}}, srcA, accept); err != nil {
		t.Errorf("another source registers: %v", err)
	}
}

// writeUsersFile writes the users file of entries at path atomically.
func writeUsersFile(t *testing.T, path string, entries ...string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(usersJSON(entries...)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func importEntries(t *testing.T, f *authFixture, entries ...string) auth.ImportResult {
	t.Helper()
	users, err := auth.ParseUsers("users.json", []byte(usersJSON(entries...)))
	if err != nil {
		t.Fatal(err)
	}
	res, err := f.a.Import(context.Background(), users)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestImportRules(t *testing.T) {
	ctx := context.Background()
	f := userFixture(t)
	hashes := map[string]string{} // one hash per password, as a file keeps it
	hashOf := func(pw string) string {
		if _, ok := hashes[pw]; !ok {
			hashes[pw] = mustHash(t, pw)
		}
		return hashes[pw]
	}
	aliceEntry := func(pw string) string {
		return entry("alice", hashOf(pw), `["customer"]`, `{"bank":"bank-a","account_id":"alice"}`)
	}
	bobEntry := func(pw, roles string) string {
		return entry("bob", hashOf(pw), roles, `{"bank":"bank-b","account_id":"bob"}`)
	}
	alice, _ := f.a.Users().Lookup("alice")
	bob, _ := f.a.Users().Lookup("bob")
	same := func(u *auth.User) string {
		roles := make([]string, len(u.Roles))
		for i, r := range u.Roles {
			roles[i] = fmt.Sprintf("%q", r)
		}
		return entry(u.ClientID, u.PasswordHash, "["+strings.Join(roles, ",")+"]", fmt.Sprintf(`{"bank":%q,"account_id":%q}`, u.Account.Bank, u.Account.ID))
	}
	bobTok, _ := f.login(t, "bob", bobPW)

	// The API sets alice's password; an erin is created through the API.
	if _, _, err := f.a.ResetPassword(ctx, "alice", newPW, "admin"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.a.CreateUser(ctx, auth.NewUser{ClientID: "erin", Roles: []authz.Role{authz.RoleAuditor}}, newPW, "admin"); err != nil {
		t.Fatal(err)
	}
	aliceTok, _ := f.login(t, "alice", newPW)
	f.audit.reset()

	// The file, unchanged for alice, does not undo the API's password.
	if res := importEntries(t, f, same(alice), same(bob)); res != (auth.ImportResult{}) {
		t.Errorf("unchanged file: %+v, want nothing", res)
	}
	f.login(t, "alice", newPW)

	// The file changes alice's password (the API's stays, warned and
	// audited), bob's password (applies, ends his sessions) and roles, and
	// names erin (skipped: an API user).
	res := importEntries(t, f, aliceEntry("file-password-for-alice"), bobEntry("file-password-for-bob", `["auditor"]`),
		entry("erin", mustHash(t, "file-password-for-erin"), `["admin"]`, ""))
	if res.Updated != 1 || res.Skipped != 2 {
		t.Errorf("import = %+v, want bob updated, alice's password and erin skipped", res)
	}
	f.login(t, "alice", newPW)
	if _, _, _, err := f.a.Login(ctx, "alice", "file-password-for-alice", srcA); err == nil {
		t.Error("the file overwrote a password set through the API")
	}
	if !f.valid(aliceTok) {
		t.Error("an ignored password change ended alice's session")
	}
	if !f.hasEvent(audit.EventUserImportConflict, map[string]string{auth.KeyClientID: "alice", auth.KeyReason: auth.ConflictPasswordSetThroughAPI}) ||
		!f.hasEvent(audit.EventUserImportConflict, map[string]string{auth.KeyClientID: "erin", auth.KeyReason: auth.ConflictNotAFileUser}) {
		t.Error("conflicts not audited")
	}
	if f.valid(bobTok) {
		t.Error("the file's password change left bob's session")
	}
	_, bobP := f.login(t, "bob", "file-password-for-bob")
	if !bobP.HasRole(authz.RoleAuditor) || bobP.HasRole(authz.RoleCustomer) {
		t.Errorf("bob's roles after the import: %v", bobP.Roles)
	}
	if !f.hasEvent(audit.EventPasswordChanged, map[string]string{auth.KeyClientID: "bob", auth.KeyBy: auth.ByUsersFile}) {
		t.Error("the file's password change is not audited")
	}
	if u, _ := f.a.Users().Lookup("erin"); u.Source != auth.SourceAdmin || !u.HasRole(authz.RoleAuditor) {
		t.Errorf("erin after the import: %+v", u)
	}
	// The same file again: nothing more to say (warned once).
	f.audit.reset()
	if res := importEntries(t, f, aliceEntry("file-password-for-alice"), bobEntry("file-password-for-bob", `["auditor"]`)); res != (auth.ImportResult{}) {
		t.Errorf("the same file again: %+v, want nothing", res)
	}
	if f.hasEvent(audit.EventUserImportConflict, map[string]string{auth.KeyClientID: "alice"}) {
		t.Error("the ignored password change is warned about again")
	}

	// bob leaves the file: disabled, sessions ended; back: enabled.
	bobTok, _ = f.login(t, "bob", "file-password-for-bob")
	if res := importEntries(t, f, aliceEntry("file-password-for-alice")); res.Disabled != 1 {
		t.Errorf("bob removed: %+v", res)
	}
	if u, _ := f.a.Users().Lookup("bob"); !u.Disabled || f.valid(bobTok) {
		t.Errorf("bob removed from the file: disabled %v, session valid %v", u.Disabled, f.valid(bobTok))
	}
	if res := importEntries(t, f, aliceEntry("file-password-for-alice"), bobEntry("file-password-for-bob", `["auditor"]`)); res.Updated != 1 {
		t.Errorf("bob back: %+v", res)
	}
	f.login(t, "bob", "file-password-for-bob")

	// alice (API password) leaves the file and comes back with another
	// password: still not overwritten.
	importEntries(t, f, bobEntry("file-password-for-bob", `["auditor"]`))
	importEntries(t, f, aliceEntry("yet-another-file-password"), bobEntry("file-password-for-bob", `["auditor"]`))
	f.login(t, "alice", newPW)

	// An admin's disabling outlasts the file.
	if _, _, err := f.a.DisableUser(ctx, "bob", "admin"); err != nil {
		t.Fatal(err)
	}
	importEntries(t, f, aliceEntry("file-password-for-alice"), bobEntry("other-file-password", `["auditor"]`))
	if u, _ := f.a.Users().Lookup("bob"); !u.Disabled {
		t.Error("an import enabled a user an admin had disabled")
	}
}

// syncBuffer is a log sink safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) count(sub string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Count(s.b.String(), sub)
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 10s for %s", what)
		}
		time.Sleep(5 * time.Millisecond) // polling a condition, not synchronising
	}
}

func TestWatchUsersFile(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	dir := t.TempDir()
	path := filepath.Join(dir, "users.json")
	aliceHash := mustHash(t, alicePW)
	alice := entry("alice", aliceHash, `["customer"]`, `{"bank":"bank-a","account_id":"alice"}`)
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
	logs := &syncBuffer{}
	a, err := auth.NewAuthenticator(ctx, file, sessions, auth.Config{Log: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	reload := make(chan os.Signal, 1)
	done := make(chan struct{})
	go func() { defer close(done); a.WatchUsersFile(ctx, path, 10*time.Millisecond, reload) }()
	stopped := false
	defer func() {
		if !stopped {
			cancel()
			<-done
		}
	}()

	// A new entry appears without a reload.
	writeUsersFile(t, path, alice, entry("zoe", mustHash(t, "zoe-password"), `["auditor"]`, ""))
	waitUntil(t, "zoe imported", func() bool { _, ok := a.Users().Lookup("zoe"); return ok })

	// A broken file is logged and ignored; the users stay.
	if err := os.WriteFile(path, []byte(`{"users": [`), 0o600); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the broken file logged", func() bool { return logs.count("users file not reloaded") == 1 })
	if _, ok := a.Users().Lookup("zoe"); !ok {
		t.Fatal("a broken file removed users")
	}
	if u, _ := a.Users().Lookup("zoe"); u.Disabled {
		t.Fatal("a broken file disabled users")
	}

	// Without polling, only a reload imports.
	cancel()
	<-done
	stopped = true
	ctx2, cancel2 := context.WithCancel(context.Background())
	done2 := make(chan struct{})
	defer func() { cancel2(); <-done2 }()
	go func() { defer close(done2); a.WatchUsersFile(ctx2, path, -1, reload) }()
	writeUsersFile(t, path, alice)
	reload <- os.Interrupt
	waitUntil(t, "zoe disabled on reload", func() bool { u, _ := a.Users().Lookup("zoe"); return u.Disabled })
}

// Entries that cannot be applied are skipped; the rest of the file is.
func TestImportSkipsClashes(t *testing.T) {
	f := userFixture(t)
	alice, _ := f.a.Users().Lookup("alice")
	bob, _ := f.a.Users().Lookup("bob")
	keep := func(u *auth.User, roles string) string {
		return entry(u.ClientID, u.PasswordHash, roles, fmt.Sprintf(`{"bank":%q,"account_id":%q}`, u.Account.Bank, u.Account.ID))
	}
	// bob is renamed BOB: the entry is skipped, and bob, no longer in the
	// file, is disabled.
	res := importEntries(t, f,
		keep(alice, `["customer"]`),
		entry("Alice2", mustHash(t, "x"), `["customer"]`, `{"bank":"bank-a","account_id":"alice"}`), // alice's account
		entry("BOB", bob.PasswordHash, `["customer","auditor"]`, `{"bank":"bank-b","account_id":"bob"}`),
		entry("zed", mustHash(t, "zed-password"), `["auditor"]`, ""),
	)
	if res.Added != 1 || res.Skipped != 2 || res.Disabled != 1 {
		t.Errorf("import = %+v, want zed added, Alice2 and BOB skipped, bob disabled", res)
	}
	if !f.hasEvent(audit.EventUserImportConflict, map[string]string{auth.KeyClientID: "BOB", auth.KeyReason: auth.ConflictClientIDCase}) {
		t.Error("the case clash is not audited")
	}
	if _, ok := f.a.Users().Lookup("zed"); !ok {
		t.Error("zed was not added")
	}
	if _, ok := f.a.Users().Lookup("Alice2"); ok {
		t.Error("an entry linking a linked account was added")
	}
	if !f.hasEvent(audit.EventUserImportConflict, map[string]string{auth.KeyClientID: "Alice2", auth.KeyReason: auth.ConflictAccountLinked}) {
		t.Error("the account clash is not audited")
	}
}
