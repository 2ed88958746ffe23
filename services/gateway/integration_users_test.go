package gateway_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"connectrpc.com/connect"

	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
	"github.com/remitpay/remit/internal/auth"
	"github.com/remitpay/remit/internal/rpcerr"
	"github.com/remitpay/remit/services/gateway/gatewaytest"
)

const usersTestPassword = "a-long-enough-passphrase"

// wantEnded waits for w to end and fails unless it ended with
// unauthenticated within bound.
func wantEnded(t *testing.T, w *watcher, bound time.Duration) {
	t.Helper()
	start := time.Now()
	select {
	case err := <-w.done:
		if connect.CodeOf(err) != connect.CodeUnauthenticated {
			t.Fatalf("stream ended with %v, want unauthenticated", err)
		}
		t.Logf("stream ended %v after the revocation", time.Since(start))
	case e := <-w.events:
		t.Fatalf("stream got %v, want its end", e)
	case <-time.After(bound):
		t.Fatalf("stream still open %v after its session was revoked", bound)
	}
}

// Streams re-verify their token only every StreamRecheck (a minute here):
// a revoked session's stream must end long before that.
const (
	longRecheck = time.Minute
	endsWithin  = 5 * time.Second
)

// TestIntegrationUsersAdmin: an admin creates a customer and staff, lists
// users page by page, disables (not itself) and enables, resets a password,
// lists and revokes sessions; each change ends the sessions it must at
// once, open WatchPayments streams included.
func TestIntegrationUsersAdmin(t *testing.T) {
	t.Parallel()
	n := gatewaytest.Start(t, gatewaytest.Options{StreamRecheck: longRecheck})
	admin := n.Login(t, gatewaytest.AdminID)
	ctx := callCtx(t)

	created, err := admin.Admin.CreateUser(ctx, &gatewayv1.CreateUserRequest{
		ClientId: "erin", Password: usersTestPassword, Roles: []gatewayv1.Role{gatewayv1.Role_ROLE_CUSTOMER},
		Account: &gatewayv1.AccountRef{Bank: "bank-b", AccountId: "erin"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if u := created.GetUser(); u.GetSource() != gatewayv1.UserSource_USER_SOURCE_ADMIN || u.GetDisabled() ||
		u.GetAccount().GetAccountId() != "erin" || u.GetCreateTime() == nil {
		t.Errorf("created %v", u)
	}
	if _, err := admin.Admin.CreateUser(ctx, &gatewayv1.CreateUserRequest{
		ClientId: "Erin", Password: usersTestPassword, Roles: []gatewayv1.Role{gatewayv1.Role_ROLE_AUDITOR},
	}); err == nil {
		t.Error("a client id taken in another case was created")
	} else {
		wantError(t, err, connect.CodeAlreadyExists, "CLIENT_ID_TAKEN")
	}
	_, err = admin.Admin.CreateUser(ctx, &gatewayv1.CreateUserRequest{
		ClientId: "frank", Password: usersTestPassword, Roles: []gatewayv1.Role{gatewayv1.Role_ROLE_CUSTOMER}, Account: gatewaytest.Ref("bob"),
	})
	wantError(t, err, connect.CodeAlreadyExists, "ACCOUNT_ALREADY_LINKED")
	_, err = admin.Admin.CreateUser(ctx, &gatewayv1.CreateUserRequest{
		ClientId: "frank", Password: "password1234", Roles: []gatewayv1.Role{gatewayv1.Role_ROLE_AUDITOR},
	})
	wantError(t, err, connect.CodeInvalidArgument, "WEAK_PASSWORD")
	_, err = admin.Admin.CreateUser(ctx, &gatewayv1.CreateUserRequest{
		ClientId: "frank", Password: usersTestPassword, Roles: []gatewayv1.Role{gatewayv1.Role_ROLE_CUSTOMER},
	})
	wantError(t, err, connect.CodeInvalidArgument, "ACCOUNT_REQUIRED")

	// Pages of two, by client id, until the empty token.
	var ids []string
	token := ""
	for range 10 {
		res, err := admin.Admin.ListUsers(ctx, &gatewayv1.ListUsersRequest{PageSize: 2, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range res.GetUsers() {
			ids = append(ids, u.GetClientId())
		}
		if token = res.GetNextPageToken(); token == "" {
			break
		}
	}
	if want := []string{"admin", "alice", "bob", "carol", "dave", "erin"}; !slices.Equal(ids, want) {
		t.Errorf("ListUsers pages = %v, want %v", ids, want)
	}
	_, err = admin.Admin.ListUsers(ctx, &gatewayv1.ListUsersRequest{PageToken: "bm90LWEtdG9rZW4"})
	wantError(t, err, connect.CodeInvalidArgument, "INVALID_PAGE_TOKEN")

	// Disable: erin's session and stream end at once, its login fails like a wrong password.
	erin := n.LoginPassword(t, "erin", usersTestPassword)
	erinWatch := watch(t, erin, &gatewayv1.WatchPaymentsRequest{})
	waitSessions(t, admin, "erin", 1)
	dis, err := admin.Admin.DisableUser(ctx, &gatewayv1.DisableUserRequest{ClientId: "erin"})
	if err != nil || !dis.GetUser().GetDisabled() || dis.GetRevokedSessions() != 1 {
		t.Fatalf("DisableUser = %v, %v", dis, err)
	}
	wantEnded(t, erinWatch, endsWithin)
	_, err = erin.Payments.ListPayments(ctx, &gatewayv1.ListPaymentsRequest{})
	wantError(t, err, connect.CodeUnauthenticated, "UNAUTHENTICATED")
	_, err = erin.Auth.Login(ctx, &gatewayv1.LoginRequest{ClientId: "erin", Password: usersTestPassword})
	wantError(t, err, connect.CodeUnauthenticated, "INVALID_CREDENTIALS")
	_, err = admin.Admin.DisableUser(ctx, &gatewayv1.DisableUserRequest{ClientId: gatewaytest.AdminID})
	wantError(t, err, connect.CodeFailedPrecondition, "CANNOT_DISABLE_SELF")
	_, err = admin.Admin.DisableUser(ctx, &gatewayv1.DisableUserRequest{ClientId: "nobody"})
	wantError(t, err, connect.CodeNotFound, "USER_NOT_FOUND")
	if res, err := admin.Admin.EnableUser(ctx, &gatewayv1.EnableUserRequest{ClientId: "erin"}); err != nil || res.GetUser().GetDisabled() {
		t.Fatalf("EnableUser = %v, %v", res, err)
	}
	erin = n.LoginPassword(t, "erin", usersTestPassword)

	// ListSessions and RevokeSessions, one then all.
	carol1 := n.Login(t, "carol")
	first := waitSessions(t, admin, "carol", 1)[0].GetSessionId()
	carol2 := n.Login(t, "carol")
	carolWatch := watch(t, carol2, &gatewayv1.WatchPaymentsRequest{})
	list := waitSessions(t, admin, "carol", 2)
	if list[0].GetCreateTime().AsTime().Before(list[1].GetCreateTime().AsTime()) {
		t.Errorf("sessions not newest first: %v", list)
	}
	// The stream's session is the one that is not carol1's (the two may
	// share a millisecond, so the order does not tell them apart).
	second := list[0].GetSessionId()
	if second == first {
		second = list[1].GetSessionId()
	}
	rev, err := admin.Admin.RevokeSessions(ctx, &gatewayv1.RevokeSessionsRequest{ClientId: "carol", SessionId: second})
	if err != nil || rev.GetRevokedSessions() != 1 {
		t.Fatalf("RevokeSessions(one) = %v, %v", rev, err)
	}
	wantEnded(t, carolWatch, endsWithin)
	if _, err := carol1.Payments.ListPayments(ctx, &gatewayv1.ListPaymentsRequest{}); err != nil {
		t.Errorf("the other session: %v", err)
	}
	if rev, err := admin.Admin.RevokeSessions(ctx, &gatewayv1.RevokeSessionsRequest{ClientId: "carol"}); err != nil || rev.GetRevokedSessions() != 1 {
		t.Fatalf("RevokeSessions(all) = %v, %v", rev, err)
	}
	_, err = carol1.Payments.ListPayments(ctx, &gatewayv1.ListPaymentsRequest{})
	wantError(t, err, connect.CodeUnauthenticated, "UNAUTHENTICATED")

	// ResetPassword ends every session; the new password works.
	erinWatch = watch(t, erin, &gatewayv1.WatchPaymentsRequest{})
	waitSessions(t, admin, "erin", 1)
	reset, err := admin.Admin.ResetPassword(ctx, &gatewayv1.ResetPasswordRequest{ClientId: "erin", NewPassword: "another-long-passphrase"})
	if err != nil || reset.GetRevokedSessions() != 1 {
		t.Fatalf("ResetPassword = %v, %v", reset, err)
	}
	wantEnded(t, erinWatch, endsWithin)
	n.LoginPassword(t, "erin", "another-long-passphrase")
	_, err = admin.Admin.ResetPassword(ctx, &gatewayv1.ResetPasswordRequest{ClientId: "erin", NewPassword: "erin"})
	wantError(t, err, connect.CodeInvalidArgument, "WEAK_PASSWORD")
}

// waitSessions waits until clientID has want usable sessions and returns
// them (a watch stream's session exists once its login returned, but the
// stream may still be opening).
func waitSessions(t *testing.T, admin *gatewaytest.Client, clientID string, want int) []*gatewayv1.Session {
	t.Helper()
	var list []*gatewayv1.Session
	gatewaytest.WaitFor(t, "sessions of "+clientID, func() error {
		res, err := admin.Admin.ListSessions(callCtx(t), &gatewayv1.ListSessionsRequest{ClientId: clientID})
		if err != nil {
			return err
		}
		if list = res.GetSessions(); len(list) != want {
			return errors.New("not yet")
		}
		return nil
	})
	return list
}

// TestIntegrationChangePassword: a customer changes its password; its
// other session ends at once, and so does the WatchPayments stream open on
// it, long before the stream's periodic re-check; the calling session
// stays. A wrong current password is a failed login.
func TestIntegrationChangePassword(t *testing.T) {
	t.Parallel()
	n := gatewaytest.Start(t, gatewaytest.Options{StreamRecheck: longRecheck})
	here, there := n.Login(t, "bob"), n.Login(t, "bob")
	stream := watch(t, there, &gatewayv1.WatchPaymentsRequest{})
	ownStream := watch(t, here, &gatewayv1.WatchPaymentsRequest{})
	ctx := callCtx(t)

	_, err := here.Auth.ChangePassword(ctx, &gatewayv1.ChangePasswordRequest{CurrentPassword: "not-the-password", NewPassword: usersTestPassword})
	wantError(t, err, connect.CodeUnauthenticated, "INVALID_CREDENTIALS")
	_, err = here.Auth.ChangePassword(ctx, &gatewayv1.ChangePasswordRequest{CurrentPassword: gatewaytest.Password, NewPassword: "qwerty123456"})
	wantError(t, err, connect.CodeInvalidArgument, "WEAK_PASSWORD")

	// The stream is open (it gets an event) before the change.
	p := mustPay(t, n.Login(t, "alice"), "bob", 100)
	wantBobEvent(t, stream.next(t), gatewayv1.PaymentEventType_PAYMENT_EVENT_TYPE_SUCCEEDED, p.GetTransactionId())
	wantBobEvent(t, ownStream.next(t), gatewayv1.PaymentEventType_PAYMENT_EVENT_TYPE_SUCCEEDED, p.GetTransactionId())

	res, err := here.Auth.ChangePassword(ctx, &gatewayv1.ChangePasswordRequest{CurrentPassword: gatewaytest.Password, NewPassword: usersTestPassword})
	if err != nil || res.GetRevokedSessions() != 1 {
		t.Fatalf("ChangePassword = %v, %v; want 1 session revoked", res, err)
	}
	wantEnded(t, stream, endsWithin)
	_, err = there.Payments.ListPayments(ctx, &gatewayv1.ListPaymentsRequest{})
	wantError(t, err, connect.CodeUnauthenticated, "UNAUTHENTICATED")
	if _, err := here.Payments.ListPayments(ctx, &gatewayv1.ListPaymentsRequest{}); err != nil {
		t.Errorf("the calling session: %v", err)
	}
	p = mustPay(t, n.Login(t, "alice"), "bob", 100)
	wantBobEvent(t, ownStream.next(t), gatewayv1.PaymentEventType_PAYMENT_EVENT_TYPE_SUCCEEDED, p.GetTransactionId())
	_, err = here.Auth.Login(ctx, &gatewayv1.LoginRequest{ClientId: "bob", Password: gatewaytest.Password})
	wantError(t, err, connect.CodeUnauthenticated, "INVALID_CREDENTIALS")
	n.LoginPassword(t, "bob", usersTestPassword)
}

// TestIntegrationUsersFileReload: `remit users passwd` on the running
// gateway's file (auth.SetPassword) applies without a restart and ends the
// user's sessions, streams included; a password set through the API is not
// overwritten by the file.
func TestIntegrationUsersFileReload(t *testing.T) {
	t.Parallel()
	n := gatewaytest.Start(t, gatewaytest.Options{StreamRecheck: longRecheck})
	dave := n.Login(t, "dave")
	stream := watch(t, dave, &gatewayv1.WatchPaymentsRequest{})
	admin := n.Login(t, gatewaytest.AdminID)
	waitSessions(t, admin, "dave", 1)
	ctx := callCtx(t)

	// alice's password is set through the API first.
	if _, err := admin.Admin.ResetPassword(ctx, &gatewayv1.ResetPasswordRequest{ClientId: "alice", NewPassword: usersTestPassword}); err != nil {
		t.Fatal(err)
	}
	if err := auth.SetPassword(n.UsersFile(), "alice", "alice-file-password"); err != nil {
		t.Fatal(err)
	}
	if err := auth.SetPassword(n.UsersFile(), "dave", "dave-file-password"); err != nil {
		t.Fatal(err)
	}
	wantEnded(t, stream, gatewaytest.WaitTimeout)
	n.LoginPassword(t, "dave", "dave-file-password")
	n.LoginPassword(t, "alice", usersTestPassword)
	_, err := admin.Auth.Login(ctx, &gatewayv1.LoginRequest{ClientId: "alice", Password: "alice-file-password"})
	if connect.CodeOf(err) != connect.CodeUnauthenticated || rpcerr.Reason(err) != "INVALID_CREDENTIALS" {
		t.Errorf("the file's password for alice: %v, want INVALID_CREDENTIALS (the API's password stays)", err)
	}
}
