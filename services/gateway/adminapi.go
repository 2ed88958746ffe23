package gateway

import (
	"context"
	"log/slog"
	"strings"

	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
	"github.com/remitpay/remit/internal/auth"
	"github.com/remitpay/remit/internal/logging"
)

// adminAPI implements AdminService: deposits and withdrawals, the bank
// list, clearing login lockouts, users and sessions (usersapi.go).
type adminAPI struct {
	coord    *Coordinator
	registry *Registry
	authn    *auth.Authenticator
}

func (a *adminAPI) ClearLoginLockout(ctx context.Context, req *gatewayv1.ClearLoginLockoutRequest) (*gatewayv1.ClearLoginLockoutResponse, error) {
	logging.AddFields(ctx, slog.String("target_client_id", req.GetClientId()))
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	res, err := a.authn.ClearLockout(ctx, req.GetClientId(), p.Name())
	if err != nil {
		return nil, toConnect(err)
	}
	return &gatewayv1.ClearLoginLockoutResponse{
		ClientId: req.GetClientId(), ClearedSources: clamp32(res.ClearedSources),
		LockedSources: clamp32(res.LockedSources),
		AccountLocked: res.AccountLocked,
	}, nil
}

func (a *adminAPI) UpdateBalance(ctx context.Context, req *gatewayv1.UpdateBalanceRequest) (*gatewayv1.UpdateBalanceResponse, error) {
	logging.AddFields(ctx, slog.String("transaction_id", req.GetTransactionId()),
		slog.Int64("amount", req.GetAmount()), slog.String("currency", req.GetCurrency()))
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	t, err := a.coord.Adjust(ctx, AdjustRequest{
		TxID: strings.ToLower(req.GetTransactionId()), ClientID: p.ClientID, Account: fromRef(req.GetAccount()),
		Debit: req.GetDirection() == gatewayv1.Direction_DIRECTION_DEBIT, Amount: req.GetAmount(), Currency: req.GetCurrency(),
	})
	if err != nil {
		return nil, toConnect(err)
	}
	if t.Status == StatusFailed {
		return nil, declined(t)
	}
	return &gatewayv1.UpdateBalanceResponse{TransactionId: t.ID, Account: toRef(t.Payee), Balance: t.ResultBalance, Currency: t.Currency}, nil
}

func (a *adminAPI) ListBanks(ctx context.Context, _ *gatewayv1.ListBanksRequest) (*gatewayv1.ListBanksResponse, error) {
	banks, err := a.registry.List(ctx)
	if err != nil {
		return nil, toConnect(err)
	}
	res := &gatewayv1.ListBanksResponse{}
	for _, b := range banks {
		st := gatewayv1.BankStatus_BANK_STATUS_UNSPECIFIED
		if b.Observed {
			st = gatewayv1.BankStatus_BANK_STATUS_NOT_SERVING
			if b.Status == BankServing {
				st = gatewayv1.BankStatus_BANK_STATUS_SERVING
			}
		}
		res.Banks = append(res.Banks, &gatewayv1.Bank{Name: b.Name, Url: b.URL, Status: st, LastSeenTime: ts(b.LastSeen)})
	}
	return res, nil
}
