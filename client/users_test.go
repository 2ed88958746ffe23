package client_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/remitpay/remit/client"
	"github.com/remitpay/remit/client/clienttest"
	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
)

const strongPassword = "correct horse battery"

var erin = client.AccountRef{Bank: "bank-b", ID: "erin"}

// openErin opens bank-b/erin as an admin and issues its enrollment code.
func openErin(t *testing.T, g *clienttest.Gateway) {
	t.Helper()
	admin := newClient(t, g, "admin", nil)
	if _, err := admin.OpenAccount(t.Context(), client.OpenAccountRequest{Account: erin, Currency: "usd"}); err != nil {
		t.Fatal(err)
	}
	g.SetEnrollmentCode(erin, "code-1234")
}

func reasonOf(err error) (connect.Code, string) {
	var e *client.Error
	if !errors.As(err, &e) {
		return connect.CodeOf(err), ""
	}
	return e.Code, e.Reason
}

func TestRegister(t *testing.T) {
	g := newGateway(t)
	openErin(t, g)
	rec := &recorder{}
	c := newClient(t, g, "", &client.RetryPolicy{MaxAttempts: 4, Sleep: rec.sleep})
	ctx := t.Context()
	reg := client.Registration{ClientID: "erin", Password: strongPassword, Account: erin, EnrollmentCode: "code-1234"}

	// Refused locally: nothing is sent.
	before := len(g.Calls())
	for _, bad := range []client.Registration{
		{ClientID: "erin", Password: "short", Account: erin, EnrollmentCode: "x"},
		{ClientID: "bad id", Password: strongPassword, Account: erin, EnrollmentCode: "x"},
		{ClientID: "erin", Password: strongPassword, Account: client.AccountRef{Bank: "bank-b"}, EnrollmentCode: "x"},
		{ClientID: "erin", Password: strongPassword, Account: erin},
	} {
		if _, err := c.Register(ctx, bad); !errors.Is(err, client.ErrInvalidRequest) {
			t.Errorf("Register(%+v) = %v, want ErrInvalidRequest", bad, err)
		}
	}
	if len(g.Calls()) != before {
		t.Errorf("invalid registrations were sent: %v", procedures(g)[before:])
	}

	// A wrong code and an unknown account fail alike.
	for _, r := range []client.Registration{
		{ClientID: "erin", Password: strongPassword, Account: erin, EnrollmentCode: "wrong"},
		{ClientID: "erin", Password: strongPassword, Account: client.AccountRef{Bank: "bank-b", ID: "nobody"}, EnrollmentCode: "code-1234"},
	} {
		if code, reason := reasonOf(mustErr(c.Register(ctx, r))); code != connect.CodeFailedPrecondition || reason != "ENROLLMENT_CODE_INVALID" {
			t.Errorf("Register(%s, code %s) = %v %s, want failed_precondition ENROLLMENT_CODE_INVALID", r.Account, r.EnrollmentCode, code, reason)
		}
	}
	weak := reg
	weak.Password = "password1234"
	if code, reason := reasonOf(mustErr(c.Register(ctx, weak))); code != connect.CodeInvalidArgument || reason != "WEAK_PASSWORD" {
		t.Errorf("Register with a common password = %v %s, want WEAK_PASSWORD", code, reason)
	}

	got, err := c.Register(ctx, reg)
	if err != nil {
		t.Fatal(err)
	}
	if got.GetClientId() != "erin" || client.AccountRefFromProto(got.GetAccount()) != erin ||
		!slices.Equal(got.GetRoles(), []gatewayv1.Role{gatewayv1.Role_ROLE_CUSTOMER}) {
		t.Errorf("Register = %v", got)
	}
	if c.Token() != "" || c.Session() != nil {
		t.Error("Register logged in; it must leave that to Login")
	}
	// The code is used up and the client id taken: a second try fails, once.
	if code, _ := reasonOf(mustErr(c.Register(ctx, reg))); code != connect.CodeAlreadyExists {
		t.Errorf("Register again = %v, want already_exists", code)
	}
	if s, err := c.Login(ctx, "erin", strongPassword); err != nil || client.AccountRefFromProto(s.Client.GetAccount()) != erin {
		t.Fatalf("Login after Register = %v, %v", s, err)
	}

	// No answer: sent once, never retried, and the error says the outcome
	// is unknown.
	g.SetDown(true)
	reg2 := client.Registration{ClientID: "erin2", Password: strongPassword, Account: erin, EnrollmentCode: "x"}
	if err := mustErr(c.Register(ctx, reg2)); !client.IsRetryable(err) {
		t.Errorf("Register while down = %v, want a retryable (unknown outcome) error", err)
	}
	if d := rec.get(); len(d) != 0 {
		t.Errorf("Register was retried (delays %v)", d)
	}
}

func mustErr[T any](_ T, err error) error { return err }

func TestChangePassword(t *testing.T) {
	g := newGateway(t)
	other := g.Token("alice") // another session of alice, elsewhere
	cfg := g.Config()
	cfg.Token = g.Token("alice")
	cfg.Credentials = &client.Credentials{ClientID: "alice", Password: "alice-pw"}
	cfg.Retry = &client.RetryPolicy{MaxAttempts: 3, Sleep: (&recorder{}).sleep}
	c, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ctx := t.Context()

	if _, err := c.ChangePassword(ctx, "alice-pw", "short"); !errors.Is(err, client.ErrInvalidRequest) {
		t.Errorf("ChangePassword to a short password = %v, want ErrInvalidRequest", err)
	}
	// A wrong current password is not a rejected token: no re-login, no retry.
	n := len(g.Calls())
	code, reason := reasonOf(mustErr(c.ChangePassword(ctx, "wrong", strongPassword)))
	if code != connect.CodeUnauthenticated || reason != client.ReasonBadCredentials {
		t.Errorf("ChangePassword(wrong current) = %v %s, want unauthenticated BAD_CREDENTIALS", code, reason)
	}
	if got := procedures(g)[n:]; !slices.Equal(got, []string{"ChangePassword"}) {
		t.Errorf("calls %v, want one ChangePassword", got)
	}

	revoked, err := c.ChangePassword(ctx, "alice-pw", strongPassword)
	if err != nil || revoked != 1 {
		t.Fatalf("ChangePassword = %d, %v; want 1 other session revoked", revoked, err)
	}
	if g.Password("alice") != strongPassword || g.SessionCount("alice") != 1 {
		t.Errorf("password %q, %d sessions; want the new one and only this session", g.Password("alice"), g.SessionCount("alice"))
	}
	other2 := newClient(t, g, "", nil)
	other2.SetToken(other)
	if _, err := other2.Balance(ctx, nil); connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Errorf("the other session after the change = %v, want unauthenticated", err)
	}
	// The re-login uses the new password.
	g.RevokeTokens()
	if _, err := c.Balance(ctx, nil); err != nil {
		t.Errorf("Balance after the token expired = %v; the re-login must use the new password", err)
	}
}

func TestAdminUsers(t *testing.T) {
	g := newGateway(t)
	ctx := t.Context()
	admin := newClient(t, g, "admin", &client.RetryPolicy{MaxAttempts: 3, Sleep: (&recorder{}).sleep})
	customer := newClient(t, g, "alice", nil)

	if code, _ := reasonOf(mustErr(customer.CreateUser(ctx, client.NewUser{ClientID: "x", Password: strongPassword,
		Roles: []gatewayv1.Role{gatewayv1.Role_ROLE_AUDITOR}}))); code != connect.CodePermissionDenied {
		t.Errorf("CreateUser by a customer = %v, want permission_denied", code)
	}
	if _, err := admin.CreateUser(ctx, client.NewUser{ClientID: "carol", Password: strongPassword,
		Roles: []gatewayv1.Role{gatewayv1.Role_ROLE_CUSTOMER}}); !errors.Is(err, client.ErrInvalidRequest) {
		t.Errorf("CreateUser of a customer without an account = %v, want ErrInvalidRequest", err)
	}
	u, err := admin.CreateUser(ctx, client.NewUser{ClientID: "carol", Password: strongPassword,
		Roles: []gatewayv1.Role{gatewayv1.Role_ROLE_CUSTOMER}, Account: client.AccountRef{Bank: "bank-a", ID: "carol"}})
	if err != nil || u.GetSource() != gatewayv1.UserSource_USER_SOURCE_ADMIN || u.GetAccount().GetAccountId() != "carol" {
		t.Fatalf("CreateUser = %v, %v", u, err)
	}
	if code, reason := reasonOf(mustErr(admin.CreateUser(ctx, client.NewUser{ClientID: "Carol", Password: strongPassword,
		Roles: []gatewayv1.Role{gatewayv1.Role_ROLE_AUDITOR}}))); code != connect.CodeAlreadyExists || reason != "CLIENT_ID_TAKEN" {
		t.Errorf("CreateUser of a taken id = %v %s", code, reason)
	}

	// Every user, over pages of two, by client id.
	var ids []string
	for u, err := range admin.Users(ctx, 2) {
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, u.GetClientId())
	}
	if want := []string{"admin", "alice", "auditor", "bob", "carol"}; !slices.Equal(ids, want) {
		t.Errorf("Users = %v, want %v", ids, want)
	}
	if n := count(g, "ListUsers"); n != 3 {
		t.Errorf("%d ListUsers calls for 5 users in pages of 2, want 3", n)
	}
	page, err := admin.UsersPage(ctx, 2, "")
	if err != nil || len(page.GetUsers()) != 2 || page.GetNextPageToken() == "" {
		t.Errorf("UsersPage = %v, %v", page, err)
	}

	// Sessions, one revoked, then the rest by disabling.
	g.Token("carol")
	g.Token("carol")
	sessions, err := admin.Sessions(ctx, "carol")
	if err != nil || len(sessions) != 2 {
		t.Fatalf("Sessions = %v, %v", sessions, err)
	}
	if n, err := admin.RevokeSessions(ctx, "carol", sessions[0].GetSessionId()); err != nil || n != 1 || g.SessionCount("carol") != 1 {
		t.Errorf("RevokeSessions(one) = %d, %v; %d left", n, err, g.SessionCount("carol"))
	}
	dis, err := admin.DisableUser(ctx, "carol")
	if err != nil || !dis.GetUser().GetDisabled() || dis.GetRevokedSessions() != 1 || g.SessionCount("carol") != 0 {
		t.Fatalf("DisableUser = %v, %v", dis, err)
	}
	login := newClient(t, g, "", nil)
	if _, err := login.Login(ctx, "carol", strongPassword); connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Errorf("Login of a disabled user = %v", err)
	}
	if code, _ := reasonOf(mustErr(admin.DisableUser(ctx, "admin"))); code != connect.CodeFailedPrecondition {
		t.Errorf("an admin disabling itself = %v, want failed_precondition", code)
	}
	if en, err := admin.EnableUser(ctx, "carol"); err != nil || en.GetDisabled() {
		t.Errorf("EnableUser = %v, %v", en, err)
	}
	const newPW = "a brand new password"
	g.Token("carol")
	if res, err := admin.ResetPassword(ctx, "carol", newPW); err != nil || res.GetRevokedSessions() != 1 || g.Password("carol") != newPW {
		t.Errorf("ResetPassword = %v, %v", res, err)
	}
	if _, err := login.Login(ctx, "carol", newPW); err != nil {
		t.Errorf("Login with the reset password = %v", err)
	}
	if code, _ := reasonOf(mustErr(admin.EnableUser(ctx, "nobody"))); code != connect.CodeNotFound {
		t.Errorf("EnableUser(nobody) = %v, want not_found", code)
	}
}

// CreateUser and ResetPassword are sent once, even when the answer is lost;
// DisableUser, being idempotent, is retried.
func TestUserWritesRetryOnlyWhenIdempotent(t *testing.T) {
	g := newGateway(t)
	rec := &recorder{}
	admin := newClient(t, g, "admin", &client.RetryPolicy{MaxAttempts: 3, Sleep: rec.sleep})
	g.SetDown(true)
	if err := mustErr(admin.CreateUser(t.Context(), client.NewUser{ClientID: "ops", Password: strongPassword,
		Roles: []gatewayv1.Role{gatewayv1.Role_ROLE_ADMIN}})); !client.IsRetryable(err) {
		t.Errorf("CreateUser while down = %v", err)
	}
	if err := mustErr(admin.ResetPassword(t.Context(), "bob", strongPassword)); !client.IsRetryable(err) {
		t.Errorf("ResetPassword while down = %v", err)
	}
	if d := rec.get(); len(d) != 0 {
		t.Errorf("CreateUser or ResetPassword was retried (delays %v)", d)
	}
	_, _ = admin.DisableUser(t.Context(), "bob")
	if d := rec.get(); len(d) != 2 {
		t.Errorf("DisableUser slept %v, want 2 retries", d)
	}
}

// Disabling a user ends its open watch stream: the watch, having no
// credentials to log in again with, ends with the final unauthenticated
// error after the events it saw.
func TestDisableEndsWatch(t *testing.T) {
	g := newGateway(t)
	watcher := newClient(t, g, "bob", nil)
	admin := newClient(t, g, "admin", nil)
	if _, err := newClient(t, g, "alice", nil).Pay(t.Context(), payment(100)); err != nil {
		t.Fatal(err)
	}
	// A bound, not a synchronisation: a watch that never ends fails here.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	var events int
	var last error
	for ev, err := range watcher.Watch(ctx, 0) {
		if err != nil {
			last = err
			continue
		}
		events++
		if ev.GetEventId() > 0 && events == 1 {
			if _, err := admin.DisableUser(t.Context(), "bob"); err != nil {
				t.Fatal(err)
			}
		}
	}
	if events != 1 || connect.CodeOf(last) != connect.CodeUnauthenticated {
		t.Errorf("Watch saw %d events and ended with %v; want 1 and unauthenticated", events, last)
	}
}
