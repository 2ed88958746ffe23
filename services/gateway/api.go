package gateway

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
	"github.com/remitpay/remit/internal/authz"
	"github.com/remitpay/remit/internal/logging"
	"github.com/remitpay/remit/internal/rpcerr"
)

// api implements the gateway's client-, operator- and bank-facing services.
// Authentication and role checks are done by the authz interceptor before a
// method runs; the methods add the ownership checks (whose account?).
type api struct {
	store    *Store
	coord    *Coordinator
	registry *Registry
	instance string
	log      *slog.Logger
	// stopping is closed when the gateway starts shutting down, so that
	// WatchPayments streams end instead of holding up graceful shutdown.
	stopping <-chan struct{}
}

func principal(ctx context.Context) (*authz.Principal, error) {
	p, ok := authz.PrincipalFrom(ctx)
	if !ok {
		// The interceptor guarantees a principal; reaching here is a wiring bug.
		return nil, rpcerr.New(connect.CodeUnauthenticated, "UNAUTHENTICATED", "log in first", nil)
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

func failureProto(reason string) gatewayv1.FailureReason {
	if reason == "" {
		return gatewayv1.FailureReason_FAILURE_REASON_UNSPECIFIED
	}
	if v, ok := gatewayv1.FailureReason_value["FAILURE_REASON_"+reason]; ok {
		return gatewayv1.FailureReason(v)
	}
	return gatewayv1.FailureReason_FAILURE_REASON_DECLINED_BY_BANK
}

func paymentProto(t *Txn) *gatewayv1.Payment {
	return &gatewayv1.Payment{
		TransactionId:   t.ID,
		Payer:           toRef(t.Payer),
		Payee:           toRef(t.Payee),
		Amount:          t.Amount,
		Currency:        t.Currency,
		Description:     t.Description,
		Status:          statusProto[t.Status],
		FailureReason:   failureProto(t.FailureReason),
		CreateTime:      ts(t.CreateTime),
		CompleteTime:    ts(t.CompleteTime),
		AcknowledgeTime: ts(t.AckTime),
		PayerClientId:   t.ClientID,
	}
}

// visible reports whether p may see payment t.
func visible(p *authz.Principal, t *Txn) bool {
	if t.Kind != KindPayment {
		return false
	}
	if staff(p) {
		return true
	}
	own, ok := ownAccount(p)
	return ok && (t.Payer == own || t.Payee == own)
}

// scope resolves the account a read is about: the caller's own by default;
// customers may name only their own; staff may name any or none.
func scope(p *authz.Principal, ref *gatewayv1.AccountRef) (*Account, error) {
	own, hasOwn := ownAccount(p)
	if ref == nil {
		if staff(p) {
			return nil, nil
		}
		if !hasOwn {
			return nil, rpcerr.New(connect.CodePermissionDenied, "PERMISSION_DENIED", "this client has no account", nil)
		}
		return &own, nil
	}
	a := fromRef(ref)
	if !staff(p) && (!hasOwn || a != own) {
		return nil, rpcerr.New(connect.CodePermissionDenied, "PERMISSION_DENIED",
			"customers may only read their own account", nil)
	}
	return &a, nil
}

func (a *api) MakePayment(ctx context.Context, req *gatewayv1.MakePaymentRequest) (*gatewayv1.MakePaymentResponse, error) {
	logging.AddFields(ctx, slog.String("transaction_id", req.GetTransactionId()),
		slog.Int64("amount", req.GetAmount()), slog.String("currency", req.GetCurrency()))
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	payer, ok := ownAccount(p)
	if !ok {
		return nil, rpcerr.New(connect.CodePermissionDenied, "PERMISSION_DENIED", "this client has no account to pay from", nil)
	}
	t, err := a.coord.Pay(ctx, PaymentRequest{
		TxID: strings.ToLower(req.GetTransactionId()), ClientID: p.ClientID, Payer: payer,
		Payee: fromRef(req.GetPayee()), Amount: req.GetAmount(), Currency: req.GetCurrency(),
		Description: req.GetDescription(),
	})
	if err != nil {
		return nil, toConnect(err)
	}
	if t.Status == StatusFailed {
		return nil, declined(t)
	}
	return &gatewayv1.MakePaymentResponse{Payment: paymentProto(t)}, nil
}

func (a *api) getVisible(ctx context.Context, p *authz.Principal, id string) (*Txn, error) {
	t, err := a.store.Get(ctx, strings.ToLower(id))
	if errors.Is(err, errNotFound) || (err == nil && !visible(p, t)) {
		return nil, toConnect(fmt.Errorf("%w: %s", ErrNotFound, id))
	}
	if err != nil {
		return nil, toConnect(err)
	}
	return t, nil
}

func (a *api) GetPayment(ctx context.Context, req *gatewayv1.GetPaymentRequest) (*gatewayv1.GetPaymentResponse, error) {
	logging.AddFields(ctx, slog.String("transaction_id", req.GetTransactionId()))
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	t, err := a.getVisible(ctx, p, req.GetTransactionId())
	if err != nil {
		return nil, err
	}
	return &gatewayv1.GetPaymentResponse{Payment: paymentProto(t)}, nil
}

const (
	defaultPageSize = 50
	maxPageSize     = 100
	pageTokenPrefix = "p1:"
)

func encodePageToken(seq int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(pageTokenPrefix + strconv.FormatInt(seq, 10)))
}

func decodePageToken(tok string) (int64, error) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err == nil && strings.HasPrefix(string(b), pageTokenPrefix) {
		if seq, err := strconv.ParseInt(strings.TrimPrefix(string(b), pageTokenPrefix), 10, 64); err == nil && seq > 0 {
			return seq, nil
		}
	}
	return 0, rpcerr.New(connect.CodeInvalidArgument, "INVALID_PAGE_TOKEN",
		"page_token is not one this server issued; pass next_page_token unchanged, or omit it for the first page", nil)
}

func (a *api) ListPayments(ctx context.Context, req *gatewayv1.ListPaymentsRequest) (*gatewayv1.ListPaymentsResponse, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	acct, err := scope(p, req.GetAccount())
	if err != nil {
		return nil, err
	}
	size := int(req.GetPageSize())
	if size == 0 {
		size = defaultPageSize
	}
	size = min(size, maxPageSize)
	f := ListFilter{Account: acct, Limit: size + 1}
	if tok := req.GetPageToken(); tok != "" {
		if f.BeforeSeq, err = decodePageToken(tok); err != nil {
			return nil, err
		}
	}
	rows, err := a.store.List(ctx, f)
	if err != nil {
		return nil, toConnect(err)
	}
	res := &gatewayv1.ListPaymentsResponse{}
	if len(rows) > size {
		rows = rows[:size]
		res.NextPageToken = encodePageToken(rows[size-1].Seq)
	}
	for _, t := range rows {
		res.Payments = append(res.Payments, paymentProto(t))
	}
	return res, nil
}

func (a *api) CheckBalance(ctx context.Context, req *gatewayv1.CheckBalanceRequest) (*gatewayv1.CheckBalanceResponse, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	acct, err := scope(p, req.GetAccount())
	if err != nil {
		return nil, err
	}
	if acct == nil {
		return nil, rpcerr.New(connect.CodeInvalidArgument, "ACCOUNT_REQUIRED", "name the account to read: account.bank and account.account_id", nil)
	}
	client, st := a.registry.Lookup(acct.Bank)
	if st == BankUnknown || client == nil {
		return nil, rpcerr.New(connect.CodeNotFound, "BANK_NOT_FOUND", "no bank of that name is registered", nil)
	}
	bal, err := client.GetBalance(ctx, acct.ID)
	var ref *RefusalError
	switch {
	case errors.As(err, &ref):
		return nil, rpcerr.New(connect.CodeNotFound, ref.Reason, "no such account at that bank", nil)
	case err != nil:
		if ctx.Err() != nil {
			return nil, toConnect(ctx.Err())
		}
		return nil, rpcerr.New(connect.CodeUnavailable, "BANK_UNAVAILABLE", "the account's bank did not answer; retry shortly", nil)
	}
	return &gatewayv1.CheckBalanceResponse{Account: toRef(*acct), Balance: bal.Balance, Available: bal.Available, Currency: bal.Currency}, nil
}

func (a *api) AcknowledgePayment(ctx context.Context, req *gatewayv1.AcknowledgePaymentRequest) (*gatewayv1.AcknowledgePaymentResponse, error) {
	logging.AddFields(ctx, slog.String("transaction_id", req.GetTransactionId()))
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	t, err := a.getVisible(ctx, p, req.GetTransactionId())
	if err != nil {
		return nil, err
	}
	if own, ok := ownAccount(p); !ok || t.Payee != own {
		return nil, rpcerr.New(connect.CodePermissionDenied, "PERMISSION_DENIED", "only the payee may acknowledge a payment", nil)
	}
	if t.Status != StatusSucceeded {
		return nil, rpcerr.New(connect.CodeFailedPrecondition, "PAYMENT_NOT_SUCCEEDED", "only a succeeded payment can be acknowledged", nil)
	}
	t, err = a.store.Acknowledge(ctx, t.ID, time.Now())
	if err != nil {
		return nil, toConnect(err)
	}
	return &gatewayv1.AcknowledgePaymentResponse{Payment: paymentProto(t)}, nil
}

var eventTypes = map[string]gatewayv1.PaymentEventType{
	"succeeded":    gatewayv1.PaymentEventType_PAYMENT_EVENT_TYPE_SUCCEEDED,
	"failed":       gatewayv1.PaymentEventType_PAYMENT_EVENT_TYPE_FAILED,
	"acknowledged": gatewayv1.PaymentEventType_PAYMENT_EVENT_TYPE_ACKNOWLEDGED,
}

func (a *api) WatchPayments(ctx context.Context, req *gatewayv1.WatchPaymentsRequest, stream *connect.ServerStream[gatewayv1.WatchPaymentsResponse]) error {
	p, err := principal(ctx)
	if err != nil {
		return err
	}
	acct, err := scope(p, req.GetAccount())
	if err != nil {
		return err
	}
	cursor := req.GetAfterEventId()
	// Send the response headers now, so the client's call returns (and it
	// knows it is subscribed) before the first event exists.
	if err := stream.Send(nil); err != nil {
		return err
	}
	for {
		// Take the change signal before reading, so an event committed between
		// the read and the wait still wakes us.
		changed := a.store.EventsChanged()
		events, err := a.store.Events(ctx, acct, cursor, 100)
		if err != nil {
			return toConnect(err)
		}
		for _, e := range events {
			t, err := a.store.Get(ctx, e.TxID)
			if err != nil {
				return toConnect(err)
			}
			if err := stream.Send(&gatewayv1.WatchPaymentsResponse{
				EventId: e.ID, Type: eventTypes[e.Type], Payment: paymentProto(t),
				EventTime: ts(e.Time), Account: toRef(e.Account),
			}); err != nil {
				return err
			}
			cursor = e.ID
		}
		if len(events) == 100 {
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-a.stopping:
			return rpcerr.New(connect.CodeUnavailable, "SHUTTING_DOWN",
				"the gateway is restarting; reconnect with after_event_id set to the last event id you saw", nil)
		case <-changed:
		}
	}
}

func (a *api) UpdateBalance(ctx context.Context, req *gatewayv1.UpdateBalanceRequest) (*gatewayv1.UpdateBalanceResponse, error) {
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

func (a *api) ListBanks(ctx context.Context, _ *gatewayv1.ListBanksRequest) (*gatewayv1.ListBanksResponse, error) {
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

// bankCaller returns the calling bank's name, proven by its client certificate.
func bankCaller(ctx context.Context) (string, error) {
	p, err := principal(ctx)
	if err != nil {
		return "", err
	}
	if p.Kind != authz.KindBank || p.BankName == "" {
		return "", rpcerr.New(connect.CodePermissionDenied, "PERMISSION_DENIED", "only banks may call the coordinator", nil)
	}
	return p.BankName, nil
}

func (a *api) RegisterBank(ctx context.Context, req *gatewayv1.RegisterBankRequest) (*gatewayv1.RegisterBankResponse, error) {
	name, err := bankCaller(ctx)
	if err != nil {
		return nil, err
	}
	if name != req.GetName() {
		return nil, rpcerr.New(connect.CodePermissionDenied, "PERMISSION_DENIED", "a bank may only register under the name in its certificate", nil)
	}
	if err := a.registry.Register(ctx, name, req.GetUrl()); err != nil {
		return nil, toConnect(err)
	}
	return &gatewayv1.RegisterBankResponse{GatewayInstanceId: a.instance}, nil
}

func (a *api) GetTransactionOutcome(ctx context.Context, req *gatewayv1.GetTransactionOutcomeRequest) (*gatewayv1.GetTransactionOutcomeResponse, error) {
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
