package client_test

import (
	"errors"
	"slices"
	"testing"

	"connectrpc.com/connect"

	"github.com/remitpay/remit/client"
	"github.com/remitpay/remit/client/clienttest"
	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
	"github.com/remitpay/remit/gen/remit/gateway/v1/gatewayv1connect"
)

// OpenAccount is retried with the same request id, and a retry returns the
// account opened.
func TestOpenAccountRetriesWithSameRequestID(t *testing.T) {
	g := newGateway(t)
	ctx := t.Context()
	rec := &recorder{}
	admin := newClient(t, g, "admin", &client.RetryPolicy{MaxAttempts: 3, Sleep: rec.sleep})
	// The first answer is lost after the account was opened.
	g.SetHooks(clienttestHooks(nil, func(call int) error {
		if call == 1 {
			return connect.NewError(connect.CodeUnavailable, errors.New("connection reset"))
		}
		return nil
	}))
	a, err := admin.OpenAccount(ctx, client.OpenAccountRequest{Account: erin, Currency: "usd", Owner: "erin"})
	if err != nil || a.GetState() != gatewayv1.AccountState_ACCOUNT_STATE_OPEN || a.GetBalance() != 0 || a.GetOwner() != "erin" {
		t.Fatalf("OpenAccount = %v, %v", a, err)
	}
	g.SetHooks(clienttest.Hooks{})
	var ids []string
	var attempts []int
	for _, c := range g.Calls() {
		if c.Procedure == gatewayv1connect.AdminServiceOpenAccountProcedure {
			ids, attempts = append(ids, c.TransactionID), append(attempts, c.RetryAttempt)
		}
	}
	if len(ids) != 2 || ids[0] != ids[1] || ids[0] == "" || !slices.Equal(attempts, []int{0, 1}) {
		t.Errorf("OpenAccount sent request ids %v (attempts %v), want the same id twice", ids, attempts)
	}

	reqID := ids[0]
	if _, err := admin.OpenAccount(ctx, client.OpenAccountRequest{RequestID: reqID, Account: erin, Currency: "eur", Owner: "erin"}); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Errorf("OpenAccount reusing the request id = %v, want IDEMPOTENCY_KEY_REUSED", err)
	} else if _, reason := reasonOf(err); reason != client.ReasonIdempotencyKeyReused {
		t.Errorf("reason %q, want %s", reason, client.ReasonIdempotencyKeyReused)
	}
	if code, reason := reasonOf(mustErr(admin.OpenAccount(ctx, client.OpenAccountRequest{Account: erin, Currency: "usd"}))); code != connect.CodeAlreadyExists || reason != "ACCOUNT_EXISTS" {
		t.Errorf("OpenAccount of an open account = %v %s", code, reason)
	}
	for _, bad := range []client.OpenAccountRequest{
		{RequestID: "nope", Account: erin, Currency: "usd"},
		{Account: erin, Currency: "USD"},
		{Account: client.AccountRef{Bank: "bank-b"}, Currency: "usd"},
		{Account: erin, Currency: "usd", Owner: "bad owner"},
	} {
		if _, err := admin.OpenAccount(ctx, bad); !errors.Is(err, client.ErrInvalidRequest) {
			t.Errorf("OpenAccount(%+v) = %v, want ErrInvalidRequest", bad, err)
		}
	}
	var accounts []string
	for a, err := range admin.Accounts(ctx, "bank-b", 1) {
		if err != nil {
			t.Fatal(err)
		}
		accounts = append(accounts, a.GetAccount().GetAccountId())
	}
	if !slices.Equal(accounts, []string{"bob", "erin"}) {
		t.Errorf("Accounts(bank-b) = %v", accounts)
	}
}

// A closed account takes no payment: the decline is ACCOUNT_CLOSED.
func TestCloseAccount(t *testing.T) {
	g := newGateway(t)
	ctx := t.Context()
	admin := newClient(t, g, "admin", nil)
	if code, reason := reasonOf(mustErr(admin.CloseAccount(ctx, bob))); code != connect.CodeFailedPrecondition || reason != "ACCOUNT_NOT_EMPTY" {
		t.Errorf("CloseAccount with money in it = %v %s", code, reason)
	}
	if _, err := admin.Withdraw(ctx, "", bob, initial, "usd"); err != nil {
		t.Fatal(err)
	}
	for range 2 { // closing twice succeeds
		a, err := admin.CloseAccount(ctx, bob)
		if err != nil || a.GetState() != gatewayv1.AccountState_ACCOUNT_STATE_CLOSED || a.GetCloseTime() == nil {
			t.Fatalf("CloseAccount = %v, %v", a, err)
		}
	}
	_, err := newClient(t, g, "alice", nil).Pay(ctx, payment(100))
	if r, ok := client.FailureReasonOf(err); !client.IsDeclined(err) || !ok || r != gatewayv1.FailureReason_FAILURE_REASON_ACCOUNT_CLOSED {
		t.Errorf("Pay to a closed account = %v, want declined ACCOUNT_CLOSED", err)
	}
	if _, err := newClient(t, g, "auditor", nil).CloseAccount(ctx, alice); connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Errorf("CloseAccount by an auditor = %v, want permission_denied", err)
	}
}
