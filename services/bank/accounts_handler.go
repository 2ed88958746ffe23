package bank

import (
	"context"
	"errors"
	"log/slog"

	"google.golang.org/protobuf/types/known/timestamppb"

	bankv1 "github.com/remitpay/remit/gen/remit/bank/v1"
	"github.com/remitpay/remit/internal/logging"
)

// accountProto is a as BankService sends it.
func accountProto(a Account) *bankv1.Account {
	st := bankv1.AccountState_ACCOUNT_STATE_OPEN
	if a.Closed {
		st = bankv1.AccountState_ACCOUNT_STATE_CLOSED
	}
	out := &bankv1.Account{
		AccountId: a.ID, Owner: a.Owner, Currency: a.Currency, State: st,
		Balance: a.Balance, Held: a.Held, Incoming: a.Incoming, OpenTime: timestamppb.New(a.OpenTime),
	}
	if !a.CloseTime.IsZero() {
		out.CloseTime = timestamppb.New(a.CloseTime)
	}
	return out
}

// OpenAccount implements bankv1connect.BankServiceHandler.
func (s *service) OpenAccount(ctx context.Context, req *bankv1.OpenAccountRequest) (*bankv1.OpenAccountResponse, error) {
	id := normalizeID(req.GetRequestId())
	logging.AddFields(ctx, slog.String("request_id", id), slog.String("account_id", req.GetAccountId()),
		slog.String("currency", req.GetCurrency()))
	a, err := s.ledger.OpenAccount(ctx, OpenRequest{RequestID: id, AccountID: req.GetAccountId(), Owner: req.GetOwner(), Currency: req.GetCurrency()})
	if err != nil {
		return nil, toConnect(err)
	}
	return &bankv1.OpenAccountResponse{Account: accountProto(a)}, nil
}

// CloseAccount implements bankv1connect.BankServiceHandler.
func (s *service) CloseAccount(ctx context.Context, req *bankv1.CloseAccountRequest) (*bankv1.CloseAccountResponse, error) {
	logging.AddFields(ctx, slog.String("account_id", req.GetAccountId()))
	a, err := s.ledger.CloseAccount(ctx, req.GetAccountId())
	if err != nil {
		return nil, toConnect(err)
	}
	return &bankv1.CloseAccountResponse{Account: accountProto(a)}, nil
}

// ListAccounts implements bankv1connect.BankServiceHandler.
func (s *service) ListAccounts(ctx context.Context, req *bankv1.ListAccountsRequest) (*bankv1.ListAccountsResponse, error) {
	accounts, next, err := s.ledger.ListAccounts(ctx, int(req.GetPageSize()), req.GetPageToken())
	if err != nil {
		return nil, toConnect(err)
	}
	res := &bankv1.ListAccountsResponse{NextPageToken: next, Accounts: make([]*bankv1.Account, len(accounts))}
	for i, a := range accounts {
		res.Accounts[i] = accountProto(a)
	}
	logging.AddFields(ctx, slog.Int("accounts", len(accounts)))
	return res, nil
}

// ConsumeEnrollmentCode implements bankv1connect.BankServiceHandler. The
// RPC's log line says which account and client id, and why a code failed;
// never the code.
func (s *service) ConsumeEnrollmentCode(ctx context.Context, req *bankv1.ConsumeEnrollmentCodeRequest) (*bankv1.ConsumeEnrollmentCodeResponse, error) {
	logging.AddFields(ctx, slog.String("account_id", req.GetAccountId()), slog.String("client_id", req.GetClientId()))
	e, err := s.ledger.ConsumeEnrollmentCode(ctx, req.GetAccountId(), req.GetCode(), req.GetClientId())
	if failed, ok := errors.AsType[*EnrollmentError](err); ok {
		logging.AddFields(ctx, slog.String("enrollment", "refused"), slog.String("why", failed.Why))
	}
	if err != nil {
		return nil, toConnect(err)
	}
	outcome := "consumed"
	if e.Repeat {
		outcome = "consumed again by the same client"
	}
	logging.AddFields(ctx, slog.String("enrollment", outcome))
	return &bankv1.ConsumeEnrollmentCodeResponse{AccountId: e.AccountID, Currency: e.Currency}, nil
}
