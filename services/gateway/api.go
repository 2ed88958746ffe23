package gateway

import (
	"context"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
	"github.com/remitpay/remit/internal/authz"
)

// What the service handlers share. Each service has its own type and file:
// authAPI (authapi.go), paymentAPI (paymentapi.go), adminAPI (adminapi.go)
// and coordinatorAPI (coordinatorapi.go). Authentication and role checks are
// done by the authz interceptor before a method runs; the methods add the
// ownership checks (whose account?), call the coordinator, store or
// registry, and translate: protos in, protos or table errors (errors.go) out.

func principal(ctx context.Context) (*authz.Principal, error) {
	p, ok := authz.PrincipalFrom(ctx)
	if !ok {
		// The interceptor guarantees a principal; reaching here is a wiring bug.
		return nil, toConnect(errNoPrincipal)
	}
	return p, nil
}

func staff(p *authz.Principal) bool {
	return p.HasRole(authz.RoleAdmin) || p.HasRole(authz.RoleAuditor)
}

func ownAccount(p *authz.Principal) (Account, bool) {
	if p.Account == nil {
		return Account{}, false
	}
	return Account{Bank: p.Account.Bank, ID: p.Account.ID}, true
}

func fromRef(r *gatewayv1.AccountRef) Account {
	return Account{Bank: r.GetBank(), ID: r.GetAccountId()}
}

func toRef(a Account) *gatewayv1.AccountRef {
	if a == (Account{}) {
		return nil
	}
	return &gatewayv1.AccountRef{Bank: a.Bank, AccountId: a.ID}
}

func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

var statusProto = map[Status]gatewayv1.PaymentStatus{
	StatusProcessing: gatewayv1.PaymentStatus_PAYMENT_STATUS_PROCESSING,
	StatusSucceeded:  gatewayv1.PaymentStatus_PAYMENT_STATUS_SUCCEEDED,
	StatusFailed:     gatewayv1.PaymentStatus_PAYMENT_STATUS_FAILED,
}

func paymentProto(t *Txn) *gatewayv1.Payment {
	reason := t.FailureReason
	if t.Status == StatusFailed {
		reason = failedReason(reason)
	}
	return &gatewayv1.Payment{
		TransactionId:   t.ID,
		Payer:           toRef(t.Payer),
		Payee:           toRef(t.Payee),
		Amount:          t.Amount,
		Currency:        t.Currency,
		Description:     t.Description,
		Status:          statusProto[t.Status],
		FailureReason:   reason,
		CreateTime:      ts(t.CreateTime),
		CompleteTime:    ts(t.CompleteTime),
		AcknowledgeTime: ts(t.AckTime),
		PayerClientId:   t.ClientID,

		RefundedTransactionId: t.RefundOf,
		RefundReason:          t.RefundReason,
		AmountRefunded:        t.Refunded(),
		Refunds:               refundsProto(t.Refunds),
	}
}

// refundsProto lists a payment's refunds as the payment shows them. It reads
// what t.Refunds holds: the reads that show a payment fill it first
// (Store.WithRefunds).
func refundsProto(rs []Refund) []*gatewayv1.RefundSummary {
	var out []*gatewayv1.RefundSummary
	for _, r := range rs {
		out = append(out, &gatewayv1.RefundSummary{
			TransactionId: r.ID, Amount: r.Amount, Status: statusProto[r.Status],
			Reason: r.Reason, CreateTime: ts(r.CreateTime),
		})
	}
	return out
}
