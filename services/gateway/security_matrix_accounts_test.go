package gateway_test

import (
	"context"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"

	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
	"github.com/remitpay/remit/gen/remit/gateway/v1/gatewayv1connect"
	"github.com/remitpay/remit/services/gateway/gatewaytest"
)

// secMatrixCustomers is the part of the security matrix for the procedures
// of customers, accounts and refunds (issue 12). Cells that change
// something act on users and accounts of their own, made as setup by the
// admin (secEnv.as), never on alice's: the other cells still need her
// sessions. Where a successful call cannot be repeated for every identity
// and protocol without side effects on the rest of the matrix, the allowed
// call is shaped to end in a domain error past authorization
// (invalid_argument WEAK_PASSWORD), as the matrix's doc comment allows;
// their successes are tested in the integration tests.
func secMatrixCustomers() map[string]secRow {
	const (
		ok       = secOK
		unauth   = connect.CodeUnauthenticated
		denied   = connect.CodePermissionDenied
		notFound = connect.CodeNotFound
		invalid  = connect.CodeInvalidArgument
	)
	// adminOnly and staffRead are the codes of an admin-only and an admin
	// and auditor procedure.
	adminOnly := []connect.Code{unauth, unauth, unauth, unauth, denied, denied, denied, ok, denied, denied, unauth, unauth}
	staffRead := []connect.Code{unauth, unauth, unauth, unauth, denied, denied, ok, ok, denied, denied, unauth, unauth}
	// newUser makes a staff user of its own as setup, with the admin's
	// session, and returns its client id.
	newUser := func(ctx context.Context, t *testing.T, c *secCaller) string {
		t.Helper()
		admin := c.env.as(t, gatewaytest.AdminID) //nolint:contextcheck // the login is setup under the test's context, not part of the call ctx bounds
		id := "sec-" + strings.ReplaceAll(uuid.NewString()[:13], "-", "")
		_, err := admin.admin.CreateUser(ctx, &gatewayv1.CreateUserRequest{
			ClientId: id, Password: gatewaytest.Password, Roles: []gatewayv1.Role{gatewayv1.Role_ROLE_AUDITOR},
		})
		if err != nil {
			t.Fatalf("setup: create user %s: %v", id, err)
		}
		return id
	}
	// newAccount opens an empty account of its own at bank-a as setup.
	newAccount := func(ctx context.Context, t *testing.T, c *secCaller) *gatewayv1.AccountRef {
		t.Helper()
		ref := &gatewayv1.AccountRef{Bank: "bank-a", AccountId: "sec-" + strings.ReplaceAll(uuid.NewString()[:13], "-", "")}
		admin := c.env.as(t, gatewaytest.AdminID) //nolint:contextcheck // the login is setup under the test's context, not part of the call ctx bounds
		_, err := secRetry(ctx, func(ctx context.Context) (*gatewayv1.OpenAccountResponse, error) {
			return admin.admin.OpenAccount(ctx, &gatewayv1.OpenAccountRequest{
				RequestId: uuid.NewString(), Account: ref, Currency: gatewaytest.Currency,
			})
		})
		if err != nil {
			t.Fatalf("setup: open account %v: %v", ref, err)
		}
		return ref
	}
	return map[string]secRow{
		// Columns: no token, expired, revoked, forged, customer, other customer,
		// auditor, admin, bank cert, gateway cert, no client cert, cert and token.

		// Register is public: credentials sent along are ignored. A weak
		// password is refused before the bank is asked for the code, so the
		// cell counts no failed code against the source.
		gatewayv1connect.AuthServiceRegisterProcedure: {
			want: []connect.Code{invalid, invalid, invalid, invalid, invalid, invalid, invalid, invalid, invalid, invalid, invalid, invalid},
			call: func(ctx context.Context, _ *testing.T, c *secCaller) (proto.Message, error) {
				return c.auth.Register(ctx, &gatewayv1.RegisterRequest{
					ClientId: "sec-newcomer", Password: "short", Account: gatewaytest.Ref("erin"), EnrollmentCode: "AAAA-BBBB-CCCC-DDDD",
				})
			},
		},
		// A weak new password is refused after authorization and before the
		// current password is checked: nothing changes, no session ends.
		gatewayv1connect.AuthServiceChangePasswordProcedure: {
			want: []connect.Code{unauth, unauth, unauth, unauth, invalid, invalid, invalid, invalid, denied, denied, unauth, unauth},
			call: func(ctx context.Context, _ *testing.T, c *secCaller) (proto.Message, error) {
				return c.auth.ChangePassword(ctx, &gatewayv1.ChangePasswordRequest{CurrentPassword: gatewaytest.Password, NewPassword: "short"})
			},
		},
		// The fixture's payment dave -> alice: alice (its payee) and admins
		// refund 1 of its 100 each time; bob may not see it.
		gatewayv1connect.PaymentServiceRefundPaymentProcedure: {
			want: []connect.Code{unauth, unauth, unauth, unauth, ok, notFound, denied, ok, denied, denied, unauth, unauth},
			call: func(ctx context.Context, _ *testing.T, c *secCaller) (proto.Message, error) {
				req := &gatewayv1.RefundPaymentRequest{
					RefundId: uuid.NewString(), TransactionId: c.env.fx.received, Amount: 1,
					Reason: gatewayv1.RefundReason_REFUND_REASON_REQUESTED_BY_CUSTOMER,
				}
				return secRetry(ctx, func(ctx context.Context) (*gatewayv1.RefundPaymentResponse, error) {
					return c.pay.RefundPayment(ctx, req)
				})
			},
			check: func(t *testing.T, c *secCaller, res proto.Message) {
				t.Helper()
				r := res.(*gatewayv1.RefundPaymentResponse)
				f := r.GetRefund()
				if f.GetRefundedTransactionId() != c.env.fx.received || !proto.Equal(f.GetPayer(), gatewaytest.Ref("alice")) ||
					!proto.Equal(f.GetPayee(), gatewaytest.Ref("dave")) || f.GetStatus() != gatewayv1.PaymentStatus_PAYMENT_STATUS_SUCCEEDED ||
					f.GetPayerClientId() != c.id.login {
					t.Errorf("refund by %s = %v, want a succeeded refund alice -> dave of the fixture's payment", c.id.login, f)
				}
				if p := r.GetPayment(); p.GetTransactionId() != c.env.fx.received || p.GetAmountRefunded() < 1 {
					t.Errorf("refunded payment = %v, want the fixture's with amount_refunded >= 1", p)
				}
			},
		},
		gatewayv1connect.AdminServiceCreateUserProcedure: {
			want: adminOnly,
			call: func(ctx context.Context, _ *testing.T, c *secCaller) (proto.Message, error) {
				return c.admin.CreateUser(ctx, &gatewayv1.CreateUserRequest{
					ClientId: "sec-" + strings.ReplaceAll(uuid.NewString()[:13], "-", ""), Password: gatewaytest.Password,
					Roles: []gatewayv1.Role{gatewayv1.Role_ROLE_AUDITOR},
				})
			},
			check: func(t *testing.T, _ *secCaller, res proto.Message) {
				t.Helper()
				if u := res.(*gatewayv1.CreateUserResponse).GetUser(); !strings.HasPrefix(u.GetClientId(), "sec-") || u.GetDisabled() {
					t.Errorf("CreateUser = %v, want an enabled sec- user", u)
				}
			},
		},
		gatewayv1connect.AdminServiceDisableUserProcedure: {
			want: adminOnly,
			call: func(ctx context.Context, t *testing.T, c *secCaller) (proto.Message, error) {
				t.Helper()
				return c.admin.DisableUser(ctx, &gatewayv1.DisableUserRequest{ClientId: newUser(ctx, t, c)})
			},
			check: func(t *testing.T, _ *secCaller, res proto.Message) {
				t.Helper()
				if u := res.(*gatewayv1.DisableUserResponse).GetUser(); !u.GetDisabled() {
					t.Errorf("DisableUser = %v, want it disabled", u)
				}
			},
		},
		// carol is enabled: enabling her again changes nothing.
		gatewayv1connect.AdminServiceEnableUserProcedure: {
			want: adminOnly,
			call: func(ctx context.Context, _ *testing.T, c *secCaller) (proto.Message, error) {
				return c.admin.EnableUser(ctx, &gatewayv1.EnableUserRequest{ClientId: "carol"})
			},
			check: func(t *testing.T, _ *secCaller, res proto.Message) {
				t.Helper()
				if u := res.(*gatewayv1.EnableUserResponse).GetUser(); u.GetClientId() != "carol" || u.GetDisabled() {
					t.Errorf("EnableUser = %v, want carol enabled", u)
				}
			},
		},
		gatewayv1connect.AdminServiceResetPasswordProcedure: {
			want: adminOnly,
			call: func(ctx context.Context, t *testing.T, c *secCaller) (proto.Message, error) {
				t.Helper()
				return c.admin.ResetPassword(ctx, &gatewayv1.ResetPasswordRequest{ClientId: newUser(ctx, t, c), NewPassword: "sec-" + uuid.NewString()})
			},
		},
		gatewayv1connect.AdminServiceListUsersProcedure: {
			want: staffRead,
			call: func(ctx context.Context, _ *testing.T, c *secCaller) (proto.Message, error) {
				return c.admin.ListUsers(ctx, &gatewayv1.ListUsersRequest{PageSize: 100})
			},
			check: func(t *testing.T, _ *secCaller, res proto.Message) {
				t.Helper()
				for _, u := range res.(*gatewayv1.ListUsersResponse).GetUsers() {
					if u.GetClientId() == "alice" {
						return
					}
				}
				t.Error("ListUsers does not list alice")
			},
		},
		gatewayv1connect.AdminServiceListSessionsProcedure: {
			want: staffRead,
			call: func(ctx context.Context, _ *testing.T, c *secCaller) (proto.Message, error) {
				return c.admin.ListSessions(ctx, &gatewayv1.ListSessionsRequest{ClientId: "alice"})
			},
			check: func(t *testing.T, _ *secCaller, res proto.Message) {
				t.Helper()
				if len(res.(*gatewayv1.ListSessionsResponse).GetSessions()) == 0 {
					t.Error("ListSessions lists no session of alice, who is logged in")
				}
			},
		},
		// The sessions of a user of its own: alice's are the matrix's.
		gatewayv1connect.AdminServiceRevokeSessionsProcedure: {
			want: adminOnly,
			call: func(ctx context.Context, t *testing.T, c *secCaller) (proto.Message, error) {
				t.Helper()
				return c.admin.RevokeSessions(ctx, &gatewayv1.RevokeSessionsRequest{ClientId: newUser(ctx, t, c)})
			},
		},
		gatewayv1connect.AdminServiceOpenAccountProcedure: {
			want: adminOnly,
			call: func(ctx context.Context, _ *testing.T, c *secCaller) (proto.Message, error) {
				req := &gatewayv1.OpenAccountRequest{
					RequestId: uuid.NewString(), Currency: gatewaytest.Currency,
					Account: &gatewayv1.AccountRef{Bank: "bank-a", AccountId: "sec-" + strings.ReplaceAll(uuid.NewString()[:13], "-", "")},
				}
				return secRetry(ctx, func(ctx context.Context) (*gatewayv1.OpenAccountResponse, error) {
					return c.admin.OpenAccount(ctx, req)
				})
			},
			check: func(t *testing.T, _ *secCaller, res proto.Message) {
				t.Helper()
				if a := res.(*gatewayv1.OpenAccountResponse).GetAccount(); a.GetState() != gatewayv1.AccountState_ACCOUNT_STATE_OPEN || a.GetBalance() != 0 {
					t.Errorf("OpenAccount = %v, want an open, empty account", a)
				}
			},
		},
		gatewayv1connect.AdminServiceCloseAccountProcedure: {
			want: adminOnly,
			call: func(ctx context.Context, t *testing.T, c *secCaller) (proto.Message, error) {
				t.Helper()
				ref := newAccount(ctx, t, c)
				return secRetry(ctx, func(ctx context.Context) (*gatewayv1.CloseAccountResponse, error) {
					return c.admin.CloseAccount(ctx, &gatewayv1.CloseAccountRequest{Account: ref})
				})
			},
			check: func(t *testing.T, _ *secCaller, res proto.Message) {
				t.Helper()
				if a := res.(*gatewayv1.CloseAccountResponse).GetAccount(); a.GetState() != gatewayv1.AccountState_ACCOUNT_STATE_CLOSED {
					t.Errorf("CloseAccount = %v, want it closed", a)
				}
			},
		},
		gatewayv1connect.AdminServiceListAccountsProcedure: {
			want: staffRead,
			call: func(ctx context.Context, _ *testing.T, c *secCaller) (proto.Message, error) {
				return secRetry(ctx, func(ctx context.Context) (*gatewayv1.ListAccountsResponse, error) {
					return c.admin.ListAccounts(ctx, &gatewayv1.ListAccountsRequest{Bank: "bank-a", PageSize: 100})
				})
			},
			check: func(t *testing.T, _ *secCaller, res proto.Message) {
				t.Helper()
				for _, a := range res.(*gatewayv1.ListAccountsResponse).GetAccounts() {
					if proto.Equal(a.GetAccount(), gatewaytest.Ref("alice")) {
						return
					}
				}
				t.Error("ListAccounts of bank-a does not list alice")
			},
		},
	}
}
