package client

import (
	"context"
	"strings"

	"github.com/google/uuid"

	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
	"github.com/remitpay/remit/internal/names"
	"github.com/remitpay/remit/internal/rpcerr"
)

// ErrorInfo reasons of refunds that are refused rather than declined: no
// money moved and nothing is recorded under the refund id.
const (
	// ReasonRefundExceedsPayment: the refund would take the refunds of the
	// payment (those still processing included) above its amount. The same
	// refund id may succeed later, if a refund still processing fails.
	ReasonRefundExceedsPayment = "REFUND_EXCEEDS_PAYMENT"
	// ReasonPaymentNotRefundable: the payment did not succeed, or is itself
	// a refund.
	ReasonPaymentNotRefundable = "PAYMENT_NOT_REFUNDABLE"
)

// RefundRequest is one refund, partial or full, of a payment the caller
// received (or any payment, for an admin).
type RefundRequest struct {
	// RefundID is the refund's idempotency key, a UUID, and becomes the
	// refund's transaction id. Leave it empty to have one generated; reuse
	// it to retry the same refund safely.
	RefundID string
	// TransactionID is the transaction id of the payment to refund.
	TransactionID string
	// Amount is what to send back, in the payment's currency's minor unit:
	// positive, at most what is left to refund.
	Amount int64
	// Reason is why; REFUND_REASON_UNSPECIFIED gives none.
	Reason gatewayv1.RefundReason
	// Description is free text shown to both sides, under the rules of a
	// payment's description.
	Description string
}

// Normalize returns r with a generated refund id if it had none and
// lowercase ids otherwise, or an ErrInvalidRequest error for a request the
// gateway would reject. A caller that prints or stores the refund id
// before sending (the CLI, to say how to retry) normalizes first.
func (r RefundRequest) Normalize() (RefundRequest, error) {
	id, err := normalizeTxID(r.RefundID)
	if err != nil {
		return r, invalid("refund id %q is not a UUID like 0b8e5a9c-8f1d-4c7e-9a4e-2d1f0c3b5a6e", r.RefundID)
	}
	r.RefundID = id
	u, err := uuid.Parse(r.TransactionID)
	if err != nil || len(r.TransactionID) != 36 {
		return r, invalid("transaction id %q is not a UUID", r.TransactionID)
	}
	r.TransactionID = u.String()
	if r.RefundID == r.TransactionID {
		return r, invalid("the refund id must differ from the transaction id of the payment it refunds")
	}
	if r.Amount <= 0 || r.Amount > MaxAmount {
		return r, invalid("amount %d must be between 1 and %d minor units", r.Amount, int64(MaxAmount))
	}
	if _, ok := gatewayv1.RefundReason_name[int32(r.Reason)]; !ok {
		return r, invalid("refund reason %d is not defined", r.Reason)
	}
	if n := len([]rune(r.Description)); n > MaxDescriptionLen {
		return r, invalid("description is %d characters; at most %d", n, MaxDescriptionLen)
	}
	if err := names.Text(r.Description); err != nil {
		return r, invalid("description %v", err)
	}
	return r, nil
}

// Refund sends money back from the payee of a SUCCEEDED payment to its
// payer, through the same two-phase commit as a payment, and returns the
// refund (itself a Payment, SUCCEEDED, whose RefundedTransactionId is the
// original) and the refunded payment with its AmountRefunded and Refunds
// updated. It is idempotent by refund id exactly as [Client.Pay] is by
// transaction id, and retried the same way, always with the same refund
// id. A refund the payee cannot fund is declined INSUFFICIENT_FUNDS
// ([IsDeclined]); one above what is left to refund is failed_precondition
// [ReasonRefundExceedsPayment]. Every error after validation is an
// [*Error] whose TransactionID is the refund id.
func (c *Client) Refund(ctx context.Context, req RefundRequest) (*gatewayv1.RefundPaymentResponse, error) {
	req, err := req.Normalize()
	if err != nil {
		return nil, err
	}
	msg := &gatewayv1.RefundPaymentRequest{
		RefundId: req.RefundID, TransactionId: req.TransactionID, Amount: req.Amount,
		Reason: req.Reason, Description: req.Description,
	}
	var res *gatewayv1.RefundPaymentResponse
	err = c.call(ctx, "refund", req.RefundID, func(ctx context.Context) error {
		var err error
		res, err = c.pay.RefundPayment(ctx, msg)
		return err
	})
	return res, err
}

// ParseRefundReason parses a refund reason as people type it:
// "duplicate", "fraudulent" or "requested_by_customer" (any case, dashes
// for underscores), and "" for none.
func ParseRefundReason(s string) (gatewayv1.RefundReason, error) {
	if s == "" {
		return gatewayv1.RefundReason_REFUND_REASON_UNSPECIFIED, nil
	}
	r, ok := rpcerr.ParseEnumReason[gatewayv1.RefundReason](strings.ToUpper(strings.ReplaceAll(s, "-", "_")))
	if !ok {
		return r, invalid("refund reason %q: want duplicate, fraudulent or requested_by_customer", s)
	}
	return r, nil
}

// RefundReasonWords is a RefundReason in lower-case words, e.g. "requested
// by customer", and "" for UNSPECIFIED.
func RefundReasonWords(r gatewayv1.RefundReason) string {
	return strings.ToLower(strings.ReplaceAll(rpcerr.EnumReason(r), "_", " "))
}
