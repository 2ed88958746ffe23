package gateway_test

import (
	"errors"
	"maps"
	"strings"
	"testing"

	"connectrpc.com/connect"

	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
	"github.com/remitpay/remit/internal/rpcerr"
	"github.com/remitpay/remit/services/gateway/gatewaytest"
)

// A decline names, in its ErrorInfo metadata, the bank that refused and the
// account it refused, next to the transaction id; the repeat of the request
// gets the same answer from the stored outcome. The wire message is the
// gateway's advice, without a "declined: " prefix (the reason says that).
func TestIntegrationDeclineNamesRefusingAccount(t *testing.T) {
	t.Parallel()
	n := gatewaytest.Start(t, gatewaytest.Options{})
	alice, admin := n.Login(t, "alice"), n.Login(t, gatewaytest.AdminID)

	wantDecline := func(t *testing.T, err error, want map[string]string) {
		t.Helper()
		wantError(t, err, connect.CodeFailedPrecondition, "INSUFFICIENT_FUNDS")
		if got := rpcerr.Info(err).GetMetadata(); !maps.Equal(got, want) {
			t.Errorf("ErrorInfo metadata = %v, want %v", got, want)
		}
		cerr, ok := errors.AsType[*connect.Error](err)
		if !ok {
			t.Fatalf("error %v (%T) is not a *connect.Error", err, err)
		}
		if cerr.Message() == "" || strings.HasPrefix(cerr.Message(), "declined") {
			t.Errorf("message = %q, want the advice alone", cerr.Message())
		}
	}

	t.Run("payment", func(t *testing.T) {
		id := newID()
		req := &gatewayv1.MakePaymentRequest{TransactionId: id, Payee: gatewaytest.Ref("bob"),
			Amount: gatewaytest.Opening + 1, Currency: gatewaytest.Currency}
		want := map[string]string{"transaction_id": id, "bank": gatewaytest.Customers["alice"], "account_id": "alice"}
		for range 2 { // the decision, then its replay
			_, err := makePayment(t.Context(), alice, req)
			wantDecline(t, err, want)
		}
	})

	t.Run("withdrawal", func(t *testing.T) {
		id := newID()
		req := &gatewayv1.UpdateBalanceRequest{TransactionId: id, Account: gatewaytest.Ref("carol"),
			Direction: gatewayv1.Direction_DIRECTION_DEBIT, Amount: gatewaytest.Opening + 1, Currency: gatewaytest.Currency}
		want := map[string]string{"transaction_id": id, "bank": gatewaytest.Customers["carol"], "account_id": "carol"}
		for range 2 {
			var err error
			gatewaytest.Retry(t.Context(), gatewaytest.WaitTimeout, func() bool {
				_, err = admin.Admin.UpdateBalance(callCtx(t), req)
				return !retryable(err)
			})
			wantDecline(t, err, want)
		}
	})
}
