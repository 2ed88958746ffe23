package gateway

import (
	"context"
	"log/slog"
	"strings"

	"connectrpc.com/connect"

	bankv1 "github.com/remitpay/remit/gen/remit/bank/v1"
	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
	"github.com/remitpay/remit/internal/audit"
	"github.com/remitpay/remit/internal/logging"
	"github.com/remitpay/remit/internal/rpcerr"
	"github.com/remitpay/remit/services/bank"
)

// The account RPCs of AdminService forward to the bank that holds the
// accounts (BankService over mutual TLS, through Registry.AccountBank) and
// pass its answers on: the gateway keeps no copy of the accounts. A change
// is audited once the bank confirmed it.

// accountBankErrors maps the ErrorInfo reasons of a bank's account errors to
// the gateway's sentinels (the same reason names).
var accountBankErrors = map[string]error{
	bank.ReasonAccountExists:        errAccountExists,
	bank.ReasonIdempotencyKeyReused: errOpenKeyReused,
	bank.ReasonAccountNotEmpty:      errAccountNotEmpty,
	bank.ReasonInvalidPageToken:     errBadPageToken,
	rpcerr.EnumReason(bankv1.RefusalReason_REFUSAL_REASON_ACCOUNT_NOT_FOUND): ErrBalanceAccountNotFound,
}

// accountBank returns the account side of a registered bank: not registered
// is errAccountBankNotFound, known to be unreachable ErrBalanceUnavailable
// (the call would only spend its timeout).
func (a *adminAPI) accountBank(name string) (AccountBank, error) {
	ab, st := a.registry.AccountBank(name)
	switch {
	case ab == nil || st == BankUnknown:
		return nil, errAccountBankNotFound
	case st == BankUnreachable:
		return nil, ErrBalanceUnavailable
	}
	return ab, nil
}

// callBank runs one account call at bank name within Timing.AdjustCall and
// turns its error into the gateway's: the bank's refusals by
// accountBankErrors, no answer as ErrBalanceUnavailable (unavailable
// BANK_UNAVAILABLE; every account call is safe to repeat), anything else
// internal, logged.
func callBank[T any](ctx context.Context, a *adminAPI, name string, call func(context.Context, AccountBank) (T, error)) (T, error) {
	var zero T
	ab, err := a.accountBank(name)
	if err != nil {
		return zero, err
	}
	timeout := a.coord.timing.AdjustCall
	if timeout <= 0 {
		timeout = a.coord.timing.CommitCall
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	res, err := call(cctx, ab)
	if err == nil {
		return res, nil
	}
	if mapped, ok := accountBankErrors[rpcerr.Reason(err)]; ok {
		return zero, mapped
	}
	switch {
	case ctx.Err() != nil:
		return zero, ctx.Err()
	case isNoAnswer(err):
		a.coord.log.Warn("account call not answered by bank", "bank", name, "err", err)
		return zero, ErrBalanceUnavailable
	default:
		a.coord.log.Error("account call refused by bank for a reason the gateway does not know", "bank", name,
			"code", connect.CodeOf(err).String(), "reason", rpcerr.Reason(err), "err", err)
		return zero, rpcerr.Internal(err)
	}
}

// isNoAnswer reports whether a bank call failed without the bank's answer:
// the bank could not be reached or did not answer in time (a bank's own
// errors carry an ErrorInfo; a transport's do not).
func isNoAnswer(err error) bool {
	switch connect.CodeOf(err) {
	case connect.CodeUnavailable, connect.CodeDeadlineExceeded:
		return true
	case connect.CodeUnknown, connect.CodeCanceled:
		return rpcerr.Info(err) == nil
	default:
		return false
	}
}

// accountProto is a bank's account as AdminService shows it.
func accountProto(bankName string, a *bankv1.Account) *gatewayv1.Account {
	st := gatewayv1.AccountState_ACCOUNT_STATE_UNSPECIFIED
	switch a.GetState() {
	case bankv1.AccountState_ACCOUNT_STATE_OPEN:
		st = gatewayv1.AccountState_ACCOUNT_STATE_OPEN
	case bankv1.AccountState_ACCOUNT_STATE_CLOSED:
		st = gatewayv1.AccountState_ACCOUNT_STATE_CLOSED
	default:
	}
	return &gatewayv1.Account{
		Account: &gatewayv1.AccountRef{Bank: bankName, AccountId: a.GetAccountId()},
		Owner:   a.GetOwner(), Currency: a.GetCurrency(), State: st,
		Balance: a.GetBalance(), Available: a.GetBalance() - a.GetHeld(),
		OpenTime: a.GetOpenTime(), CloseTime: a.GetCloseTime(),
	}
}

func (a *adminAPI) record(ctx context.Context, event string, attrs ...slog.Attr) {
	if a.coord.audit == nil {
		return
	}
	a.coord.audit.Record(ctx, event, attrs...)
}

// OpenAccount implements gatewayv1connect.AdminServiceHandler.
func (a *adminAPI) OpenAccount(ctx context.Context, req *gatewayv1.OpenAccountRequest) (*gatewayv1.OpenAccountResponse, error) {
	ref := req.GetAccount()
	requestID := strings.ToLower(req.GetRequestId())
	owner := req.GetOwner()
	if owner == "" {
		owner = ref.GetAccountId()
	}
	logging.AddFields(ctx, slog.String("request_id", requestID), slog.String("bank", ref.GetBank()),
		slog.String("account_id", ref.GetAccountId()), slog.String("currency", req.GetCurrency()))
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	acct, err := callBank(ctx, a, ref.GetBank(), func(ctx context.Context, b AccountBank) (*bankv1.Account, error) {
		return b.OpenAccount(ctx, &bankv1.OpenAccountRequest{
			RequestId: requestID, AccountId: ref.GetAccountId(), Currency: req.GetCurrency(), Owner: owner,
		})
	})
	if err != nil {
		return nil, toConnect(err)
	}
	a.record(ctx, audit.EventAccountOpened, slog.String("principal", p.Name()), slog.String("request_id", requestID),
		slog.String("bank", ref.GetBank()), slog.String("account_id", ref.GetAccountId()),
		slog.String("owner", owner), slog.String("currency", req.GetCurrency()))
	return &gatewayv1.OpenAccountResponse{Account: accountProto(ref.GetBank(), acct)}, nil
}

// CloseAccount implements gatewayv1connect.AdminServiceHandler.
func (a *adminAPI) CloseAccount(ctx context.Context, req *gatewayv1.CloseAccountRequest) (*gatewayv1.CloseAccountResponse, error) {
	ref := req.GetAccount()
	logging.AddFields(ctx, slog.String("bank", ref.GetBank()), slog.String("account_id", ref.GetAccountId()))
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	acct, err := callBank(ctx, a, ref.GetBank(), func(ctx context.Context, b AccountBank) (*bankv1.Account, error) {
		return b.CloseAccount(ctx, ref.GetAccountId())
	})
	if err != nil {
		return nil, toConnect(err)
	}
	a.record(ctx, audit.EventAccountClosed, slog.String("principal", p.Name()),
		slog.String("bank", ref.GetBank()), slog.String("account_id", ref.GetAccountId()))
	return &gatewayv1.CloseAccountResponse{Account: accountProto(ref.GetBank(), acct)}, nil
}

// ListAccounts implements gatewayv1connect.AdminServiceHandler. Page size
// and token go to the bank as they are: the bank applies AIP-158's limits
// and issues the tokens.
func (a *adminAPI) ListAccounts(ctx context.Context, req *gatewayv1.ListAccountsRequest) (*gatewayv1.ListAccountsResponse, error) {
	logging.AddFields(ctx, slog.String("bank", req.GetBank()))
	type page struct {
		accounts []*bankv1.Account
		next     string
	}
	pg, err := callBank(ctx, a, req.GetBank(), func(ctx context.Context, b AccountBank) (page, error) {
		accounts, next, err := b.ListAccounts(ctx, req.GetPageSize(), req.GetPageToken())
		return page{accounts, next}, err
	})
	if err != nil {
		return nil, toConnect(err)
	}
	res := &gatewayv1.ListAccountsResponse{NextPageToken: pg.next, Accounts: make([]*gatewayv1.Account, len(pg.accounts))}
	for i, acct := range pg.accounts {
		res.Accounts[i] = accountProto(req.GetBank(), acct)
	}
	return res, nil
}
