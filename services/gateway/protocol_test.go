package gateway_test

import (
	"context"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"

	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
	"github.com/remitpay/remit/gen/remit/gateway/v1/gatewayv1connect"
	"github.com/remitpay/remit/services/gateway/gatewaytest"
)

// TestEveryRPCOverEveryProtocol runs each gateway RPC's main case against a
// real gateway and real banks over TLS, once with the Connect protocol, once
// with gRPC and once with gRPC-Web, and checks the answers, not just the
// absence of errors.
func TestEveryRPCOverEveryProtocol(t *testing.T) {
	net := gatewaytest.Start(t, gatewaytest.Options{})
	protocols := []struct {
		name string
		opts []connect.ClientOption
	}{
		{"connect", nil},
		{"grpc", []connect.ClientOption{connect.WithGRPC()}},
		{"grpc-web", []connect.ClientOption{connect.WithGRPCWeb()}},
	}
	for _, proto := range protocols {
		t.Run(proto.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			alice := net.LoginWith(t, "alice", proto.opts...)
			bob := net.LoginWith(t, "bob", proto.opts...)
			admin := net.LoginWith(t, gatewaytest.AdminID, proto.opts...)

			before, err := bob.Payments.CheckBalance(ctx, &gatewayv1.CheckBalanceRequest{})
			if err != nil {
				t.Fatalf("CheckBalance: %v", err)
			}

			// WatchPayments: bob subscribes before the payment exists.
			wctx, wcancel := context.WithCancel(ctx)
			defer wcancel()
			stream, err := bob.Payments.WatchPayments(wctx, &gatewayv1.WatchPaymentsRequest{})
			if err != nil {
				t.Fatalf("WatchPayments: %v", err)
			}

			id := uuid.NewString()
			paid, err := alice.Payments.MakePayment(ctx, &gatewayv1.MakePaymentRequest{
				TransactionId: id, Payee: gatewaytest.Ref("bob"), Amount: 700, Currency: "usd", Description: proto.name,
			})
			if err != nil {
				t.Fatalf("MakePayment: %v", err)
			}
			if got := paid.GetPayment(); got.GetStatus() != gatewayv1.PaymentStatus_PAYMENT_STATUS_SUCCEEDED || got.GetAmount() != 700 {
				t.Fatalf("MakePayment = %v", got)
			}

			var event *gatewayv1.WatchPaymentsResponse
			for stream.Receive() {
				if e := stream.Msg(); e.GetPayment().GetTransactionId() == id {
					event = e
					break
				}
			}
			if event == nil {
				t.Fatalf("WatchPayments ended without the payment's event: %v", stream.Err())
			}
			if event.GetType() != gatewayv1.PaymentEventType_PAYMENT_EVENT_TYPE_SUCCEEDED || event.GetEventId() <= 0 {
				t.Fatalf("event = %v", event)
			}
			wcancel()

			after, err := bob.Payments.CheckBalance(ctx, &gatewayv1.CheckBalanceRequest{})
			if err != nil {
				t.Fatal(err)
			}
			if after.GetBalance() != before.GetBalance()+700 {
				t.Fatalf("bob's balance %d -> %d, want +700", before.GetBalance(), after.GetBalance())
			}

			got, err := bob.Payments.GetPayment(ctx, &gatewayv1.GetPaymentRequest{TransactionId: id})
			if err != nil || got.GetPayment().GetDescription() != proto.name {
				t.Fatalf("GetPayment = %v, %v", got, err)
			}
			list, err := alice.Payments.ListPayments(ctx, &gatewayv1.ListPaymentsRequest{PageSize: 1})
			if err != nil || len(list.GetPayments()) != 1 || list.GetPayments()[0].GetTransactionId() != id {
				t.Fatalf("ListPayments (newest first) = %v, %v", list, err)
			}
			ack, err := bob.Payments.AcknowledgePayment(ctx, &gatewayv1.AcknowledgePaymentRequest{TransactionId: id})
			if err != nil || ack.GetPayment().GetAcknowledgeTime() == nil {
				t.Fatalf("AcknowledgePayment = %v, %v", ack, err)
			}
			rid := uuid.NewString()
			ref, err := bob.Payments.RefundPayment(ctx, &gatewayv1.RefundPaymentRequest{
				RefundId: rid, TransactionId: id, Amount: 200, Reason: gatewayv1.RefundReason_REFUND_REASON_DUPLICATE,
			})
			if err != nil || ref.GetRefund().GetRefundedTransactionId() != id || ref.GetRefund().GetPayee().GetAccountId() != "alice" ||
				ref.GetPayment().GetAmountRefunded() != 200 || len(ref.GetPayment().GetRefunds()) != 1 {
				t.Fatalf("RefundPayment = %v, %v", ref, err)
			}

			dep, err := admin.Admin.UpdateBalance(ctx, &gatewayv1.UpdateBalanceRequest{
				TransactionId: uuid.NewString(), Account: gatewaytest.Ref("carol"),
				Direction: gatewayv1.Direction_DIRECTION_CREDIT, Amount: 5, Currency: "usd",
			})
			if err != nil || dep.GetBalance() <= 0 {
				t.Fatalf("UpdateBalance = %v, %v", dep, err)
			}
			banks, err := admin.Admin.ListBanks(ctx, &gatewayv1.ListBanksRequest{})
			if err != nil || len(banks.GetBanks()) != len(gatewaytest.BankNames) {
				t.Fatalf("ListBanks = %v, %v", banks, err)
			}

			// CoordinatorService, as bank-a with its client certificate.
			coord := gatewayv1connect.NewCoordinatorServiceClient(net.CertHTTPClient(t, "bank-a"), net.Gateway.URL, proto.opts...)
			out, err := coord.GetTransactionOutcome(ctx, &gatewayv1.GetTransactionOutcomeRequest{TransactionId: id})
			if err != nil || out.GetOutcome() != gatewayv1.TransactionOutcome_TRANSACTION_OUTCOME_COMMITTED {
				t.Fatalf("GetTransactionOutcome = %v, %v", out, err)
			}
			out, err = coord.GetTransactionOutcome(ctx, &gatewayv1.GetTransactionOutcomeRequest{TransactionId: rid})
			if err != nil || out.GetOutcome() != gatewayv1.TransactionOutcome_TRANSACTION_OUTCOME_COMMITTED {
				t.Fatalf("GetTransactionOutcome of the refund = %v, %v", out, err)
			}
			url := net.Banks["bank-a"].URL()
			reg, err := coord.RegisterBank(ctx, &gatewayv1.RegisterBankRequest{Name: "bank-a", Url: url})
			if err != nil || reg.GetGatewayInstanceId() == "" {
				t.Fatalf("RegisterBank = %v, %v", reg, err)
			}

			if _, err := alice.Auth.Logout(ctx, &gatewayv1.LogoutRequest{}); err != nil {
				t.Fatalf("Logout: %v", err)
			}
			_, err = alice.Payments.CheckBalance(ctx, &gatewayv1.CheckBalanceRequest{})
			if connect.CodeOf(err) != connect.CodeUnauthenticated {
				t.Fatalf("a logged-out token still works: %v", err)
			}
		})
	}
}
