package clienttest

import (
	"context"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/remitpay/remit/client"
	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
	"github.com/remitpay/remit/gen/remit/gateway/v1/gatewayv1connect"
	"github.com/remitpay/remit/internal/rpcerr"
)

// RefundCalls returns the refund ids of every RefundPayment request
// received, in order, repeats included.
func (g *Gateway) RefundCalls() []string {
	var ids []string
	for _, c := range g.Calls() {
		if c.Procedure == gatewayv1connect.PaymentServiceRefundPaymentProcedure {
			ids = append(ids, c.TransactionID)
		}
	}
	return ids
}

// RefundPayment sends money back from a SUCCEEDED payment's payee to its
// payer, idempotent by refund id like MakePayment; the original payment's
// amount_refunded and refunds follow.
func (s paymentService) RefundPayment(ctx context.Context, req *gatewayv1.RefundPaymentRequest) (*gatewayv1.RefundPaymentResponse, error) {
	g := s.g
	refund, err := g.idempotent(ctx, gatewayv1connect.PaymentServiceRefundPaymentProcedure, req.GetRefundId(), req,
		func(clientID string) (*gatewayv1.Payment, error) {
			if !g.hasRoleLocked(clientID, gatewayv1.Role_ROLE_CUSTOMER, gatewayv1.Role_ROLE_ADMIN) {
				return nil, permissionDenied("only the payee or an admin may refund a payment")
			}
			orig, err := g.visibleLocked(clientID, req.GetTransactionId())
			if err != nil {
				return nil, err
			}
			payer, payee := client.AccountRefFromProto(orig.GetPayee()), client.AccountRefFromProto(orig.GetPayer())
			if !g.hasRoleLocked(clientID, gatewayv1.Role_ROLE_ADMIN) && g.users[clientID].account != payer {
				return nil, permissionDenied("only the payee or an admin may refund a payment")
			}
			if orig.GetStatus() != gatewayv1.PaymentStatus_PAYMENT_STATUS_SUCCEEDED || orig.GetRefundedTransactionId() != "" {
				return nil, rpcerr.New(connect.CodeFailedPrecondition, client.ReasonPaymentNotRefundable,
					"only a succeeded payment that is not itself a refund can be refunded", nil)
			}
			var pending int64
			for _, r := range orig.GetRefunds() {
				if r.GetStatus() != gatewayv1.PaymentStatus_PAYMENT_STATUS_FAILED {
					pending += r.GetAmount()
				}
			}
			if req.GetAmount() > orig.GetAmount()-pending {
				return nil, rpcerr.New(connect.CodeFailedPrecondition, client.ReasonRefundExceedsPayment,
					"the refund exceeds what is left to refund of the payment", nil)
			}
			now := timestamppb.New(time.Now())
			p := &gatewayv1.Payment{
				TransactionId: req.GetRefundId(), Payer: payer.Proto(), Payee: payee.Proto(),
				Amount: req.GetAmount(), Currency: orig.GetCurrency(), Description: req.GetDescription(),
				CreateTime: now, CompleteTime: now, PayerClientId: clientID,
				RefundedTransactionId: orig.GetTransactionId(), RefundReason: req.GetReason(),
			}
			switch {
			case g.closedLocked(payer) || g.closedLocked(payee):
				p.Status, p.FailureReason = gatewayv1.PaymentStatus_PAYMENT_STATUS_FAILED, gatewayv1.FailureReason_FAILURE_REASON_ACCOUNT_CLOSED
			case g.balances[payer] < req.GetAmount():
				p.Status, p.FailureReason = gatewayv1.PaymentStatus_PAYMENT_STATUS_FAILED, gatewayv1.FailureReason_FAILURE_REASON_INSUFFICIENT_FUNDS
			default:
				g.balances[payer] -= req.GetAmount()
				g.balances[payee] += req.GetAmount()
				p.Status = gatewayv1.PaymentStatus_PAYMENT_STATUS_SUCCEEDED
				orig.AmountRefunded += req.GetAmount()
			}
			orig.Refunds = append(orig.Refunds, &gatewayv1.RefundSummary{
				TransactionId: p.GetTransactionId(), Amount: p.GetAmount(), Status: p.GetStatus(),
				Reason: p.GetRefundReason(), CreateTime: now,
			})
			typ := gatewayv1.PaymentEventType_PAYMENT_EVENT_TYPE_SUCCEEDED
			if p.GetStatus() == gatewayv1.PaymentStatus_PAYMENT_STATUS_FAILED {
				typ = gatewayv1.PaymentEventType_PAYMENT_EVENT_TYPE_FAILED
			}
			g.addEventLocked(typ, p, payer)
			g.addEventLocked(typ, p, payee)
			return p, nil
		})
	if err != nil {
		return nil, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	res := &gatewayv1.RefundPaymentResponse{Refund: refund}
	if t := g.txns[refund.GetRefundedTransactionId()]; t != nil {
		res.Payment = proto.CloneOf(t.payment)
	}
	return res, nil
}
