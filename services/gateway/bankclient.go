package gateway

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	bankv1 "github.com/remitpay/remit/gen/remit/bank/v1"
	"github.com/remitpay/remit/gen/remit/bank/v1/bankv1connect"
	"github.com/remitpay/remit/internal/rpcerr"
)

// connectBank is the production BankClient: BankService over the gateway's
// mutual-TLS HTTP/2 client.
type connectBank struct {
	c bankv1connect.BankServiceClient
}

func newConnectBank(httpClient *http.Client, url string) *connectBank {
	return &connectBank{c: bankv1connect.NewBankServiceClient(httpClient, url, connect.WithGRPC())}
}

func toBankLeg(l Leg) *bankv1.Leg {
	dir := bankv1.Direction_DIRECTION_CREDIT
	if l.Debit {
		dir = bankv1.Direction_DIRECTION_DEBIT
	}
	return &bankv1.Leg{AccountId: l.AccountID, Direction: dir, Amount: l.Amount, Currency: l.Currency}
}

// refusalName turns a bank RefusalReason into the gateway's reason name.
func refusalName(r bankv1.RefusalReason) string {
	switch r {
	case bankv1.RefusalReason_REFUSAL_REASON_INSUFFICIENT_FUNDS:
		return "INSUFFICIENT_FUNDS"
	case bankv1.RefusalReason_REFUSAL_REASON_ACCOUNT_NOT_FOUND:
		return "ACCOUNT_NOT_FOUND"
	case bankv1.RefusalReason_REFUSAL_REASON_CURRENCY_MISMATCH:
		return "CURRENCY_MISMATCH"
	case bankv1.RefusalReason_REFUSAL_REASON_BALANCE_OVERFLOW:
		return "BALANCE_OVERFLOW"
	default:
		return "DECLINED_BY_BANK"
	}
}

func (b *connectBank) Prepare(ctx context.Context, txID string, legs []Leg, expire time.Time) (Vote, error) {
	req := &bankv1.PrepareTransactionRequest{TransactionId: txID, ExpireTime: timestamppb.New(expire)}
	for _, l := range legs {
		req.Legs = append(req.Legs, toBankLeg(l))
	}
	res, err := b.c.PrepareTransaction(ctx, req)
	if err != nil {
		return Vote{}, err
	}
	switch res.GetVote() {
	case bankv1.Vote_VOTE_YES:
		return Vote{Yes: true}, nil
	case bankv1.Vote_VOTE_NO:
		return Vote{Reason: refusalName(res.GetReason())}, nil
	default:
		return Vote{}, errors.New("bank sent an unspecified vote")
	}
}

func (b *connectBank) Commit(ctx context.Context, txID string, commit bool) error {
	d := bankv1.Decision_DECISION_ABORT
	if commit {
		d = bankv1.Decision_DECISION_COMMIT
	}
	_, err := b.c.CommitTransaction(ctx, &bankv1.CommitTransactionRequest{TransactionId: txID, Decision: d})
	if connect.CodeOf(err) == connect.CodeFailedPrecondition {
		return &RefusalError{Reason: rpcerr.Reason(err)}
	}
	return err
}

// definitive reports whether a bank error is a final refusal (as opposed to
// "no answer"), and its reason.
func definitive(err error) (string, bool) {
	switch connect.CodeOf(err) {
	case connect.CodeFailedPrecondition, connect.CodeNotFound, connect.CodeInvalidArgument:
		reason := rpcerr.Reason(err)
		if reason == "" {
			reason = "DECLINED_BY_BANK"
		}
		return strings.TrimPrefix(reason, "REFUSAL_REASON_"), true
	}
	return "", false
}

func (b *connectBank) UpdateBalance(ctx context.Context, txID string, leg Leg) (Balance, error) {
	l := toBankLeg(leg)
	res, err := b.c.UpdateBalance(ctx, &bankv1.UpdateBalanceRequest{
		TransactionId: txID, AccountId: l.AccountId, Direction: l.Direction, Amount: l.Amount, Currency: l.Currency,
	})
	if err != nil {
		if reason, ok := definitive(err); ok {
			return Balance{}, &RefusalError{Reason: reason}
		}
		return Balance{}, err
	}
	return Balance{Balance: res.GetBalance(), Currency: res.GetCurrency()}, nil
}

func (b *connectBank) GetBalance(ctx context.Context, accountID string) (Balance, error) {
	res, err := b.c.GetBalance(ctx, &bankv1.GetBalanceRequest{AccountId: accountID})
	if err != nil {
		if reason, ok := definitive(err); ok {
			return Balance{}, &RefusalError{Reason: reason}
		}
		return Balance{}, err
	}
	return Balance{Balance: res.GetBalance(), Available: res.GetAvailable(), Currency: res.GetCurrency()}, nil
}
