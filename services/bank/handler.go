package bank

import (
	"context"
	"log/slog"
	"net/http"
	"strings"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	bankv1 "github.com/remitpay/remit/gen/remit/bank/v1"
	"github.com/remitpay/remit/gen/remit/bank/v1/bankv1connect"
	"github.com/remitpay/remit/internal/logging"
	"github.com/remitpay/remit/internal/metrics"
	"github.com/remitpay/remit/internal/serve"
)

// NewHTTPHandler returns the bank's whole HTTP surface: BankService behind
// the standard interceptor chain (recover, log, gateway-only authorization,
// protovalidate), plus the gRPC health and reflection services. Serve it over
// TLS that requires and verifies client certificates; the handler reads the
// verified peer certificate from the request. logger is required; nil
// panics.
func NewHTTPHandler(l *Ledger, logger *slog.Logger) http.Handler {
	return newHTTPHandler(l, logger, nil, nil)
}

// newHTTPHandler is [NewHTTPHandler] with the RPC metrics interceptor
// first after logging and the batch size metrics; nil records no metrics.
func newHTTPHandler(l *Ledger, logger *slog.Logger, rpc *metrics.RPCInterceptor, batches *batchMetrics) http.Handler {
	if logger == nil {
		panic("bank: NewHTTPHandler needs a logger")
	}
	chain := []connect.Interceptor{gatewayOnly{}}
	if rpc != nil {
		chain = []connect.Interceptor{rpc, gatewayOnly{}}
	}
	mux := http.NewServeMux()
	mux.Handle(bankv1connect.NewBankServiceHandler(&service{ledger: l, batches: batches}, serve.HandlerOptions(logger, chain...)...))
	// Health and reflection are open to any client the TLS layer verified
	// (gateway, banks, operators' grpcurl with a dev certificate).
	serve.Mount(mux, []string{bankv1connect.BankServiceName},
		connect.WithInterceptors(logging.NewRecoverInterceptor(logger)))
	return withTLSState(mux)
}

// NewHandler returns the BankService implementation over l, without any
// interceptors: authorization and validation come from [NewHTTPHandler].
func NewHandler(l *Ledger) bankv1connect.BankServiceHandler { return &service{ledger: l} }

type service struct {
	ledger  *Ledger
	batches *batchMetrics // nil: not recorded
}

var _ bankv1connect.BankServiceHandler = (*service)(nil)

// txID normalizes a UUID transaction id, as the gateway does, so upper- and
// lower-case spellings are the same transaction.
func txID(ctx context.Context, id string) string {
	id = normalizeID(id)
	logging.AddFields(ctx, slog.String("transaction_id", id))
	return id
}

func normalizeID(id string) string { return strings.ToLower(id) }

func directionOf(d bankv1.Direction) Direction {
	switch d {
	case bankv1.Direction_DIRECTION_CREDIT:
		return Credit
	case bankv1.Direction_DIRECTION_DEBIT:
		return Debit
	default:
		return ""
	}
}

func legOf(l *bankv1.Leg) Leg {
	return Leg{AccountID: l.GetAccountId(), Direction: directionOf(l.GetDirection()), Amount: l.GetAmount(), Currency: l.GetCurrency()}
}

// logFields receives the log fields of one prepare or commit: the RPC's log
// line for a unary call, nothing for a batch item (a batch logs one line for
// all its items).
type logFields func(attrs ...slog.Attr)

func rpcFields(ctx context.Context) logFields {
	return func(attrs ...slog.Attr) { logging.AddFields(ctx, attrs...) }
}

func noFields(...slog.Attr) {}

// PrepareTransaction implements bankv1connect.BankServiceHandler. Refusals
// are a NO vote, not an error.
func (s *service) PrepareTransaction(ctx context.Context, req *bankv1.PrepareTransactionRequest) (*bankv1.PrepareTransactionResponse, error) {
	return s.prepare(ctx, req, rpcFields(ctx))
}

// prepare is one PrepareTransaction, already validated, for the unary RPC and
// for each item of PrepareTransactions.
func (s *service) prepare(ctx context.Context, req *bankv1.PrepareTransactionRequest, log logFields) (*bankv1.PrepareTransactionResponse, error) {
	id := normalizeID(req.GetTransactionId())
	log(slog.String("transaction_id", id))
	legs := make([]Leg, len(req.GetLegs()))
	for i, l := range req.GetLegs() {
		legs[i] = legOf(l)
	}
	vote, err := s.ledger.Prepare(ctx, id, legs, req.GetExpireTime().AsTime())
	if err != nil {
		return nil, toConnect(err)
	}
	if vote.Yes {
		log(slog.String("vote", "yes"))
		return &bankv1.PrepareTransactionResponse{Vote: bankv1.Vote_VOTE_YES}, nil
	}
	reason := refusalOf(vote.Reason)
	log(slog.String("vote", "no"), slog.String("refusal", reason.String()))
	return &bankv1.PrepareTransactionResponse{Vote: bankv1.Vote_VOTE_NO, Reason: reason, AccountId: vote.AccountID}, nil
}

// CommitTransaction implements bankv1connect.BankServiceHandler.
func (s *service) CommitTransaction(ctx context.Context, req *bankv1.CommitTransactionRequest) (*bankv1.CommitTransactionResponse, error) {
	return s.commit(ctx, req, rpcFields(ctx))
}

// commit is one CommitTransaction, already validated, for the unary RPC and
// for each item of CommitTransactions.
func (s *service) commit(ctx context.Context, req *bankv1.CommitTransactionRequest, log logFields) (*bankv1.CommitTransactionResponse, error) {
	id := normalizeID(req.GetTransactionId())
	commit := req.GetDecision() == bankv1.Decision_DECISION_COMMIT
	log(slog.String("transaction_id", id), slog.String("decision", decisionName(commit)))
	state, err := s.ledger.Commit(ctx, id, commit)
	if err != nil {
		return nil, toConnect(err)
	}
	res := &bankv1.CommitTransactionResponse{State: bankv1.TransactionState_TRANSACTION_STATE_ABORTED}
	if state == StateCommitted {
		res.State = bankv1.TransactionState_TRANSACTION_STATE_COMMITTED
	}
	return res, nil
}

// UpdateBalance implements bankv1connect.BankServiceHandler.
func (s *service) UpdateBalance(ctx context.Context, req *bankv1.UpdateBalanceRequest) (*bankv1.UpdateBalanceResponse, error) {
	id := txID(ctx, req.GetTransactionId())
	leg := Leg{AccountID: req.GetAccountId(), Direction: directionOf(req.GetDirection()), Amount: req.GetAmount(), Currency: req.GetCurrency()}
	logging.AddFields(ctx, slog.Int64("amount", leg.Amount), slog.String("currency", leg.Currency))
	adj, err := s.ledger.UpdateBalance(ctx, id, leg)
	if err != nil {
		return nil, toConnect(err)
	}
	return &bankv1.UpdateBalanceResponse{Balance: adj.Balance, Currency: adj.Currency, ApplyTime: timestamppb.New(adj.ApplyTime)}, nil
}

// GetBalance implements bankv1connect.BankServiceHandler.
func (s *service) GetBalance(ctx context.Context, req *bankv1.GetBalanceRequest) (*bankv1.GetBalanceResponse, error) {
	a, err := s.ledger.Balance(ctx, req.GetAccountId())
	if err != nil {
		return nil, toConnect(err)
	}
	return &bankv1.GetBalanceResponse{
		AccountId: a.ID,
		Balance:   a.Balance,
		Available: a.Available(),
		Held:      a.Held,
		Currency:  a.Currency,
	}, nil
}
