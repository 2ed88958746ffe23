package client_test

import (
	"errors"
	"testing"

	"connectrpc.com/connect"

	"github.com/remitpay/remit/client"
	"github.com/remitpay/remit/client/clienttest"
	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
)

func TestRefundRetriesWithSameRefundID(t *testing.T) {
	g := newGateway(t)
	ctx := t.Context()
	p, err := newClient(t, g, "alice", nil).Pay(ctx, payment(10_00))
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	bobC := newClient(t, g, "bob", &client.RetryPolicy{MaxAttempts: 4, Sleep: rec.sleep})
	// The first try finds the gateway unable to decide; the retry refunds.
	g.SetHooks(hooksFailing(1, func() error {
		return connect.NewError(connect.CodeUnavailable, errors.New("bank unavailable"))
	}))
	res, err := bobC.Refund(ctx, client.RefundRequest{TransactionID: p.GetTransactionId(), Amount: 4_00,
		Reason: gatewayv1.RefundReason_REFUND_REASON_REQUESTED_BY_CUSTOMER, Description: "sorry"})
	g.SetHooks(clienttest.Hooks{})
	if err != nil {
		t.Fatal(err)
	}
	refund := res.GetRefund()
	if ids := g.RefundCalls(); len(ids) != 2 || ids[0] != ids[1] || ids[0] != refund.GetTransactionId() {
		t.Errorf("refund ids sent %v, want the refund's id %s twice", ids, refund.GetTransactionId())
	}
	if refund.GetRefundedTransactionId() != p.GetTransactionId() || refund.GetStatus() != gatewayv1.PaymentStatus_PAYMENT_STATUS_SUCCEEDED ||
		client.AccountRefFromProto(refund.GetPayer()) != bob || client.AccountRefFromProto(refund.GetPayee()) != alice {
		t.Errorf("refund = %v", refund)
	}
	if orig := res.GetPayment(); orig.GetAmountRefunded() != 4_00 || len(orig.GetRefunds()) != 1 || orig.GetRefunds()[0].GetTransactionId() != refund.GetTransactionId() {
		t.Errorf("refunded payment = %v", orig)
	}
	if g.Balance(alice) != initial-6_00 || g.Balance(bob) != initial+6_00 {
		t.Errorf("balances alice %d bob %d, want the 4.00 back once", g.Balance(alice), g.Balance(bob))
	}

	// The same refund id again is the same refund: nothing moves twice.
	again, err := bobC.Refund(ctx, client.RefundRequest{RefundID: refund.GetTransactionId(), TransactionID: p.GetTransactionId(), Amount: 4_00,
		Reason: gatewayv1.RefundReason_REFUND_REASON_REQUESTED_BY_CUSTOMER, Description: "sorry"})
	if err != nil || again.GetRefund().GetTransactionId() != refund.GetTransactionId() || g.Balance(bob) != initial+6_00 {
		t.Errorf("Refund replay = %v, %v; bob %d", again, err, g.Balance(bob))
	}
	// More than is left: refused, nothing moved.
	_, err = bobC.Refund(ctx, client.RefundRequest{TransactionID: p.GetTransactionId(), Amount: 6_01})
	if _, reason := reasonOf(err); reason != client.ReasonRefundExceedsPayment || client.IsRetryable(err) {
		t.Errorf("over-refund = %v, want final %s", err, client.ReasonRefundExceedsPayment)
	}
	var e *client.Error
	if !errors.As(err, &e) || e.TransactionID == "" || e.TransactionID == p.GetTransactionId() {
		t.Errorf("over-refund error carries transaction id %q, want the refund id", e.TransactionID)
	}
	// The payer may not refund its own payment.
	if _, err := newClient(t, g, "alice", nil).Refund(ctx, client.RefundRequest{TransactionID: p.GetTransactionId(), Amount: 1}); connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Errorf("Refund by the payer = %v, want permission_denied", err)
	}
	// A refund is not refundable.
	if _, reason := reasonOf(mustErr(newClient(t, g, "alice", nil).Refund(ctx, client.RefundRequest{TransactionID: refund.GetTransactionId(), Amount: 1}))); reason != client.ReasonPaymentNotRefundable {
		t.Errorf("refund of a refund = %s, want %s", reason, client.ReasonPaymentNotRefundable)
	}
}

func TestRefundValidation(t *testing.T) {
	g := newGateway(t)
	c := newClient(t, g, "bob", nil)
	tx := client.NewTransactionID()
	for _, bad := range []client.RefundRequest{
		{TransactionID: "nope", Amount: 1},
		{TransactionID: tx, Amount: 0},
		{TransactionID: tx, Amount: client.MaxAmount + 1},
		{TransactionID: tx, Amount: 1, RefundID: "nope"},
		{TransactionID: tx, Amount: 1, RefundID: tx},
		{TransactionID: tx, Amount: 1, Reason: 99},
		{TransactionID: tx, Amount: 1, Description: "a\nb"},
	} {
		if _, err := c.Refund(t.Context(), bad); !errors.Is(err, client.ErrInvalidRequest) {
			t.Errorf("Refund(%+v) = %v, want ErrInvalidRequest", bad, err)
		}
	}
	if n := len(g.RefundCalls()); n != 0 {
		t.Errorf("%d invalid refunds were sent", n)
	}
}

func TestParseRefundReason(t *testing.T) {
	for in, want := range map[string]gatewayv1.RefundReason{
		"":                      gatewayv1.RefundReason_REFUND_REASON_UNSPECIFIED,
		"duplicate":             gatewayv1.RefundReason_REFUND_REASON_DUPLICATE,
		"FRAUDULENT":            gatewayv1.RefundReason_REFUND_REASON_FRAUDULENT,
		"requested_by_customer": gatewayv1.RefundReason_REFUND_REASON_REQUESTED_BY_CUSTOMER,
		"requested-by-customer": gatewayv1.RefundReason_REFUND_REASON_REQUESTED_BY_CUSTOMER,
	} {
		if got, err := client.ParseRefundReason(in); err != nil || got != want {
			t.Errorf("ParseRefundReason(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"unspecified", "REFUND_REASON_DUPLICATE", "because"} {
		if _, err := client.ParseRefundReason(bad); !errors.Is(err, client.ErrInvalidRequest) {
			t.Errorf("ParseRefundReason(%q) = %v, want ErrInvalidRequest", bad, err)
		}
	}
	if got := client.RefundReasonWords(gatewayv1.RefundReason_REFUND_REASON_REQUESTED_BY_CUSTOMER); got != "requested by customer" {
		t.Errorf("RefundReasonWords = %q", got)
	}
	if client.RefundReasonWords(gatewayv1.RefundReason_REFUND_REASON_UNSPECIFIED) != "" {
		t.Error("RefundReasonWords(UNSPECIFIED) is not empty")
	}
}
