package gateway

import (
	"context"
	"errors"
	"net/http"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	bankv1 "github.com/remitpay/remit/gen/remit/bank/v1"
	"github.com/remitpay/remit/gen/remit/bank/v1/bankv1connect"
	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
	"github.com/remitpay/remit/internal/rpcerr"
	"github.com/remitpay/remit/services/bank"
)

// connectBank is the production BankClient: BankService over the gateway's
// mutual-TLS HTTP/2 client. Prepares and commits go through a batcher each,
// so that under load one PrepareTransactions or CommitTransactions call
// carries many of them; to a bank that does not know those RPCs they go as
// the unary calls.
type connectBank struct {
	c        bankv1connect.BankServiceClient
	prepares *batcher[*bankv1.PrepareTransactionRequest, *bankv1.PrepareTransactionResponse]
	commits  *batcher[*bankv1.CommitTransactionRequest, *bankv1.CommitTransactionResponse]
}

func newConnectBank(httpClient *http.Client, url string) *connectBank {
	c := bankv1connect.NewBankServiceClient(httpClient, url, connect.WithGRPC())
	return &connectBank{
		c: c,
		prepares: &batcher[*bankv1.PrepareTransactionRequest, *bankv1.PrepareTransactionResponse]{
			unary: c.PrepareTransaction,
			batch: func(ctx context.Context, items []*bankv1.PrepareTransactionRequest) ([]*bankv1.PrepareTransactionResponse, []error, error) {
				res, err := c.PrepareTransactions(ctx, &bankv1.PrepareTransactionsRequest{Items: items})
				if err != nil {
					return nil, nil, err
				}
				out, errs := splitResults(res.GetResults())
				return out, errs, nil
			},
		},
		commits: &batcher[*bankv1.CommitTransactionRequest, *bankv1.CommitTransactionResponse]{
			unary: c.CommitTransaction,
			batch: func(ctx context.Context, items []*bankv1.CommitTransactionRequest) ([]*bankv1.CommitTransactionResponse, []error, error) {
				res, err := c.CommitTransactions(ctx, &bankv1.CommitTransactionsRequest{Items: items})
				if err != nil {
					return nil, nil, err
				}
				out, errs := splitResults(res.GetResults())
				return out, errs, nil
			},
		},
	}
}

// batchResult is a PrepareTransactionsResult or CommitTransactionsResult.
type batchResult[Res comparable] interface {
	GetResponse() Res
	GetError() *bankv1.BatchItemError
}

// splitResults turns a batch's results into each item's response or the
// error its unary call would have returned.
func splitResults[Res comparable, R batchResult[Res]](results []R) ([]Res, []error) {
	out, errs := make([]Res, len(results)), make([]error, len(results))
	var none Res
	for i, r := range results {
		switch {
		case r.GetError() != nil:
			errs[i] = itemError(r.GetError())
		case r.GetResponse() != none:
			out[i] = r.GetResponse()
		default:
			errs[i] = errors.New("bank sent a batch result without outcome")
		}
	}
	return out, errs
}

func toBankLeg(l Leg) *bankv1.Leg {
	dir := bankv1.Direction_DIRECTION_CREDIT
	if l.Debit {
		dir = bankv1.Direction_DIRECTION_DEBIT
	}
	return &bankv1.Leg{AccountId: l.AccountID, Direction: dir, Amount: l.Amount, Currency: l.Currency}
}

// refusalTable is the one place a bank's RefusalReason becomes the
// gateway's FailureReason. Every RefusalReason has a row (a test checks);
// UNSPECIFIED is a refusal the bank did not explain.
var refusalTable = map[bankv1.RefusalReason]gatewayv1.FailureReason{
	bankv1.RefusalReason_REFUSAL_REASON_UNSPECIFIED:        gatewayv1.FailureReason_FAILURE_REASON_DECLINED_BY_BANK,
	bankv1.RefusalReason_REFUSAL_REASON_INSUFFICIENT_FUNDS: gatewayv1.FailureReason_FAILURE_REASON_INSUFFICIENT_FUNDS,
	bankv1.RefusalReason_REFUSAL_REASON_ACCOUNT_NOT_FOUND:  gatewayv1.FailureReason_FAILURE_REASON_ACCOUNT_NOT_FOUND,
	bankv1.RefusalReason_REFUSAL_REASON_CURRENCY_MISMATCH:  gatewayv1.FailureReason_FAILURE_REASON_CURRENCY_MISMATCH,
	bankv1.RefusalReason_REFUSAL_REASON_BALANCE_OVERFLOW:   gatewayv1.FailureReason_FAILURE_REASON_BALANCE_OVERFLOW,
	bankv1.RefusalReason_REFUSAL_REASON_ALREADY_ABORTED:    gatewayv1.FailureReason_FAILURE_REASON_DECLINED_BY_BANK,
	bankv1.RefusalReason_REFUSAL_REASON_ACCOUNT_CLOSED:     gatewayv1.FailureReason_FAILURE_REASON_ACCOUNT_CLOSED,
	// The bank holds this id for other legs: the records disagree.
	bankv1.RefusalReason_REFUSAL_REASON_CONFLICT: gatewayv1.FailureReason_FAILURE_REASON_TRANSACTION_ID_CONFLICT,
}

// failureOf is the FailureReason of a bank refusal; reasons the table does
// not know are DECLINED_BY_BANK.
func failureOf(r bankv1.RefusalReason) gatewayv1.FailureReason {
	if f, ok := refusalTable[r]; ok {
		return f
	}
	return gatewayv1.FailureReason_FAILURE_REASON_DECLINED_BY_BANK
}

// refusalOf is the RefusalReason named by a bank error's ErrorInfo reason
// (UNSPECIFIED for one that names none).
func refusalOf(err error) bankv1.RefusalReason {
	reason := rpcerr.Reason(err)
	// A bank sends this reason for REFUSAL_REASON_CONFLICT on UpdateBalance
	// (it predates the enum).
	if reason == bank.ReasonIdempotencyKeyReused {
		return bankv1.RefusalReason_REFUSAL_REASON_CONFLICT
	}
	r, _ := rpcerr.ParseEnumReason[bankv1.RefusalReason](reason)
	return r
}

func (b *connectBank) Prepare(ctx context.Context, txID string, legs []Leg, expire time.Time) (Vote, error) {
	req := &bankv1.PrepareTransactionRequest{TransactionId: txID, ExpireTime: timestamppb.New(expire)}
	for _, l := range legs {
		req.Legs = append(req.Legs, toBankLeg(l))
	}
	res, err := b.prepares.do(ctx, req)
	if err != nil {
		return Vote{}, err
	}
	switch res.GetVote() {
	case bankv1.Vote_VOTE_YES:
		return Vote{Yes: true}, nil
	case bankv1.Vote_VOTE_NO:
		return Vote{Reason: failureOf(res.GetReason()), AccountID: res.GetAccountId()}, nil
	default:
		return Vote{}, errors.New("bank sent an unspecified vote")
	}
}

func (b *connectBank) Commit(ctx context.Context, txID string, commit bool) error {
	d := bankv1.Decision_DECISION_ABORT
	if commit {
		d = bankv1.Decision_DECISION_COMMIT
	}
	_, err := b.commits.do(ctx, &bankv1.CommitTransactionRequest{TransactionId: txID, Decision: d})
	if connect.CodeOf(err) == connect.CodeFailedPrecondition {
		return refusal(err)
	}
	return err
}

// refusal is a bank's refusing error as a *RefusalError.
func refusal(err error) *RefusalError {
	return &RefusalError{Reason: failureOf(refusalOf(err)), BankReason: rpcerr.Reason(err)}
}

// definitive returns a bank error as a *RefusalError if it is a final
// refusal (as opposed to "no answer"), and false otherwise.
func definitive(err error) (*RefusalError, bool) {
	switch connect.CodeOf(err) {
	case connect.CodeFailedPrecondition, connect.CodeNotFound, connect.CodeInvalidArgument:
		return refusal(err), true
	default:
		return nil, false
	}
}

func (b *connectBank) UpdateBalance(ctx context.Context, txID string, leg Leg) (Balance, error) {
	l := toBankLeg(leg)
	res, err := b.c.UpdateBalance(ctx, &bankv1.UpdateBalanceRequest{
		TransactionId: txID, AccountId: l.GetAccountId(), Direction: l.GetDirection(), Amount: l.GetAmount(), Currency: l.GetCurrency(),
	})
	if err != nil {
		if ref, ok := definitive(err); ok {
			return Balance{}, ref
		}
		return Balance{}, err
	}
	return Balance{Balance: res.GetBalance(), Currency: res.GetCurrency()}, nil
}

func (b *connectBank) GetBalance(ctx context.Context, accountID string) (Balance, error) {
	res, err := b.c.GetBalance(ctx, &bankv1.GetBalanceRequest{AccountId: accountID})
	if err != nil {
		if ref, ok := definitive(err); ok {
			return Balance{}, ref
		}
		return Balance{}, err
	}
	return Balance{Balance: res.GetBalance(), Available: res.GetAvailable(), Currency: res.GetCurrency()}, nil
}
