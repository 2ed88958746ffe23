package gateway_test

import (
	"strings"
	"testing"

	"connectrpc.com/connect"

	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
	"github.com/remitpay/remit/services/gateway/gatewaytest"
)

// A real bank's IDEMPOTENCY_KEY_REUSED on UpdateBalance reaches the client
// as failed_precondition TRANSACTION_ID_CONFLICT, and nothing moves. While
// the gateway knows an id it answers a reuse itself (invalid_argument
// IDEMPOTENCY_KEY_REUSED) and never asks the bank; the bank is reached with
// an id it already holds only after the gateway lost its coordinator log (a
// restored backup, a lost disk): the case the reason exists for.
func TestIntegrationBankIdempotencyKeyReusedIsTransactionIDConflict(t *testing.T) {
	t.Parallel()
	n := gatewaytest.Start(t, gatewaytest.Options{})
	admin := n.Login(t, gatewaytest.AdminID)
	update := func(req *gatewayv1.UpdateBalanceRequest) error {
		t.Helper()
		var err error
		gatewaytest.Retry(t.Context(), gatewaytest.WaitTimeout, func() bool {
			_, err = admin.Admin.UpdateBalance(callCtx(t), req)
			return !retryable(err)
		})
		return err
	}
	deposit := func(id string, amount int64) *gatewayv1.UpdateBalanceRequest {
		return &gatewayv1.UpdateBalanceRequest{TransactionId: id, Account: gatewaytest.Ref("alice"),
			Direction: gatewayv1.Direction_DIRECTION_CREDIT, Amount: amount, Currency: gatewaytest.Currency}
	}

	id := newID()
	if err := update(deposit(id, 5)); err != nil {
		t.Fatalf("deposit: %v", err)
	}
	// The gateway intercepts a reuse it knows of.
	wantError(t, update(deposit(id, 7)), connect.CodeInvalidArgument, "IDEMPOTENCY_KEY_REUSED")

	n.Gateway.Stop(t)
	n.Gateway.WipeLog(t)
	n.Gateway.Start(t)
	n.WaitReady(t) // the banks registered again in the new log

	for range 2 { // the bank's refusal, then the stored outcome
		err := update(deposit(id, 7))
		wantError(t, err, connect.CodeFailedPrecondition, "TRANSACTION_ID_CONFLICT")
		// Worded for an adjustment: what not to retry, and who fixes it.
		if msg := err.Error(); !strings.Contains(msg, "do not retry the deposit or withdrawal") ||
			!strings.Contains(msg, "operator") {
			t.Errorf("message %q does not tell an admin what to do", msg)
		}
	}
	waitFunds(t, admin, map[string]funds{"alice": settled(gatewaytest.Opening + 5)})
}
