package gateway

import (
	"context"
	"log/slog"
	"strings"

	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
	"github.com/remitpay/remit/internal/authz"
	"github.com/remitpay/remit/internal/logging"
)

// coordinatorAPI implements CoordinatorService, which banks call (proven by
// their client certificates): registration and the outcome of a transaction.
type coordinatorAPI struct {
	coord    *Coordinator
	registry *Registry
	// instance identifies this gateway process to registering banks.
	instance string
}

// bankCaller returns the calling bank's name, proven by its client certificate.
func bankCaller(ctx context.Context) (string, error) {
	p, err := principal(ctx)
	if err != nil {
		return "", err
	}
	if p.Kind != authz.KindBank || p.BankName == "" {
		return "", toConnect(errNotBank)
	}
	return p.BankName, nil
}

func (a *coordinatorAPI) RegisterBank(ctx context.Context, req *gatewayv1.RegisterBankRequest) (*gatewayv1.RegisterBankResponse, error) {
	name, err := bankCaller(ctx)
	if err != nil {
		return nil, err
	}
	if name != req.GetName() {
		return nil, toConnect(errWrongBankName)
	}
	if err := a.registry.Register(ctx, name, req.GetUrl()); err != nil {
		return nil, toConnect(err)
	}
	return &gatewayv1.RegisterBankResponse{GatewayInstanceId: a.instance}, nil
}

func (a *coordinatorAPI) GetTransactionOutcome(ctx context.Context, req *gatewayv1.GetTransactionOutcomeRequest) (*gatewayv1.GetTransactionOutcomeResponse, error) {
	logging.AddFields(ctx, slog.String("transaction_id", req.GetTransactionId()))
	name, err := bankCaller(ctx)
	if err != nil {
		return nil, err
	}
	d, err := a.coord.Outcome(ctx, name, strings.ToLower(req.GetTransactionId()))
	if err != nil {
		return nil, toConnect(err)
	}
	out := gatewayv1.TransactionOutcome_TRANSACTION_OUTCOME_ABORTED
	if d == DecisionCommit {
		out = gatewayv1.TransactionOutcome_TRANSACTION_OUTCOME_COMMITTED
	}
	return &gatewayv1.GetTransactionOutcomeResponse{Outcome: out}, nil
}
