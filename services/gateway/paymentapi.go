package gateway

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"

	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
	"github.com/remitpay/remit/internal/authz"
	"github.com/remitpay/remit/internal/logging"
)

// paymentAPI implements PaymentService, for customers (their own account)
// and staff (any account).
type paymentAPI struct {
	store *Store
	coord *Coordinator
	// stopping is closed when the gateway starts shutting down, so that
	// WatchPayments streams end instead of holding up graceful shutdown.
	stopping <-chan struct{}
	// maxStreams caps the WatchPayments streams of one principal (zero:
	// DefaultMaxWatchStreams); watchBuffer is each stream's lag allowance
	// in events (zero: the default; tests set it small).
	maxStreams, watchBuffer int

	hubOnce sync.Once
	hub     *watchHub
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
			return nil, nil //nolint:nilnil // no account is the answer: staff reading without one read every account
		}
		if !hasOwn {
			return nil, toConnect(errNoAccount)
		}
		return &own, nil
	}
	a := fromRef(ref)
	if !staff(p) && (!hasOwn || a != own) {
		return nil, toConnect(errNotOwn)
	}
	return &a, nil
}

func (a *paymentAPI) MakePayment(ctx context.Context, req *gatewayv1.MakePaymentRequest) (*gatewayv1.MakePaymentResponse, error) {
	logging.AddFields(ctx, slog.String("transaction_id", req.GetTransactionId()),
		slog.Int64("amount", req.GetAmount()), slog.String("currency", req.GetCurrency()))
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	payer, ok := ownAccount(p)
	if !ok {
		return nil, toConnect(errNoPayer)
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
	// A replay's refunds were read by the coordinator; a new payment has none.
	return &gatewayv1.MakePaymentResponse{Payment: paymentProto(t)}, nil
}

// RefundPayment sends amount of a SUCCEEDED payment back from its payee to
// its payer (Coordinator.Refund). Only the payment's payee or an admin may:
// a caller who may not see the payment gets not_found, as from GetPayment;
// its payer, who sees it, gets permission_denied. The answer carries the
// refund and the payment as it stands after it.
func (a *paymentAPI) RefundPayment(ctx context.Context, req *gatewayv1.RefundPaymentRequest) (*gatewayv1.RefundPaymentResponse, error) {
	refundID := strings.ToLower(req.GetRefundId())
	logging.AddFields(ctx, slog.String("transaction_id", refundID),
		slog.String("refunded_transaction_id", req.GetTransactionId()), slog.Int64("amount", req.GetAmount()))
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	orig, err := a.getVisible(ctx, p, req.GetTransactionId())
	if err != nil {
		return nil, err
	}
	if !p.HasRole(authz.RoleAdmin) {
		if own, ok := ownAccount(p); !ok || orig.Payee != own {
			return nil, toConnect(errNotRefunder)
		}
	}
	t, err := a.coord.Refund(ctx, orig, RefundRequest{
		RefundID: refundID, ClientID: p.ClientID, Amount: req.GetAmount(),
		Reason: req.GetReason(), Description: req.GetDescription(),
	})
	if err != nil {
		return nil, toConnect(err)
	}
	if t.Status == StatusFailed {
		return nil, declined(t)
	}
	if orig, err = a.store.Get(ctx, orig.ID); err != nil {
		return nil, toConnect(err)
	}
	if err := a.store.WithRefunds(ctx, orig); err != nil {
		return nil, toConnect(err)
	}
	return &gatewayv1.RefundPaymentResponse{Refund: paymentProto(t), Payment: paymentProto(orig)}, nil
}

// visiblePayment names the call's transaction in its log line and reads it
// for the caller, who must be allowed to see it (else NOT_FOUND, as for a
// payment that does not exist).
func (a *paymentAPI) visiblePayment(ctx context.Context, id string) (*authz.Principal, *Txn, error) {
	logging.AddFields(ctx, slog.String("transaction_id", id))
	p, err := principal(ctx)
	if err != nil {
		return nil, nil, err
	}
	t, err := a.getVisible(ctx, p, id)
	return p, t, err
}

// shown reads the refunds of a payment about to be shown to a client.
func (a *paymentAPI) shown(ctx context.Context, t *Txn) (*gatewayv1.Payment, error) {
	if err := a.store.WithRefunds(ctx, t); err != nil {
		return nil, toConnect(err)
	}
	return paymentProto(t), nil
}

func (a *paymentAPI) getVisible(ctx context.Context, p *authz.Principal, id string) (*Txn, error) {
	t, err := a.store.Get(ctx, strings.ToLower(id))
	if errors.Is(err, errNotFound) || (err == nil && !visible(p, t)) {
		return nil, toConnect(fmt.Errorf("%w: %s", ErrNotFound, id))
	}
	if err != nil {
		return nil, toConnect(err)
	}
	return t, nil
}

func (a *paymentAPI) GetPayment(ctx context.Context, req *gatewayv1.GetPaymentRequest) (*gatewayv1.GetPaymentResponse, error) {
	_, t, err := a.visiblePayment(ctx, req.GetTransactionId())
	if err != nil {
		return nil, err
	}
	shown, err := a.shown(ctx, t)
	if err != nil {
		return nil, err
	}
	return &gatewayv1.GetPaymentResponse{Payment: shown}, nil
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
	return 0, errBadPageToken
}

func (a *paymentAPI) ListPayments(ctx context.Context, req *gatewayv1.ListPaymentsRequest) (*gatewayv1.ListPaymentsResponse, error) {
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
			return nil, toConnect(err)
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
	// One query for the refunds of the whole page.
	if err := a.store.WithRefunds(ctx, rows...); err != nil {
		return nil, toConnect(err)
	}
	for _, t := range rows {
		res.Payments = append(res.Payments, paymentProto(t))
	}
	return res, nil
}

func (a *paymentAPI) CheckBalance(ctx context.Context, req *gatewayv1.CheckBalanceRequest) (*gatewayv1.CheckBalanceResponse, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	acct, err := scope(p, req.GetAccount())
	if err != nil {
		return nil, err
	}
	if acct == nil {
		return nil, toConnect(errAccountRequired)
	}
	bal, err := a.coord.Balance(ctx, *acct)
	if err != nil {
		return nil, toConnect(err)
	}
	return &gatewayv1.CheckBalanceResponse{Account: toRef(*acct), Balance: bal.Balance, Available: bal.Available, Currency: bal.Currency}, nil
}

func (a *paymentAPI) AcknowledgePayment(ctx context.Context, req *gatewayv1.AcknowledgePaymentRequest) (*gatewayv1.AcknowledgePaymentResponse, error) {
	p, t, err := a.visiblePayment(ctx, req.GetTransactionId())
	if err != nil {
		return nil, err
	}
	if own, ok := ownAccount(p); !ok || t.Payee != own {
		return nil, toConnect(errNotPayee)
	}
	if t.Status != StatusSucceeded {
		return nil, toConnect(errNotSucceeded)
	}
	t, err = a.store.Acknowledge(ctx, t.ID, time.Now())
	if err != nil {
		return nil, toConnect(err)
	}
	shown, err := a.shown(ctx, t)
	if err != nil {
		return nil, err
	}
	return &gatewayv1.AcknowledgePaymentResponse{Payment: shown}, nil
}

var eventTypes = map[string]gatewayv1.PaymentEventType{
	"succeeded":    gatewayv1.PaymentEventType_PAYMENT_EVENT_TYPE_SUCCEEDED,
	"failed":       gatewayv1.PaymentEventType_PAYMENT_EVENT_TYPE_FAILED,
	"acknowledged": gatewayv1.PaymentEventType_PAYMENT_EVENT_TYPE_ACKNOWLEDGED,
}

// WatchPayments sends the caller's payment events after after_event_id, then
// every new one as it happens. A principal holds at most maxStreams streams
// at once (resource_exhausted TOO_MANY_STREAMS beyond). The stream reads the
// log itself only to catch up (on opening, and when it fell behind); new
// events come from the hub, which reads each one once for every stream
// (watch.go).
func (a *paymentAPI) WatchPayments(ctx context.Context, req *gatewayv1.WatchPaymentsRequest, stream *connect.ServerStream[gatewayv1.WatchPaymentsResponse]) error {
	p, err := principal(ctx)
	if err != nil {
		return err
	}
	acct, err := scope(p, req.GetAccount())
	if err != nil {
		return err
	}
	hub := a.watchHub()
	sub, err := hub.join(ctx, p, acct)
	if err != nil {
		return toConnect(err)
	}
	defer hub.leave(sub)
	cursor := req.GetAfterEventId()
	send := func(e Event, t *Txn) error {
		if err := stream.Send(&gatewayv1.WatchPaymentsResponse{
			EventId: e.ID, Type: eventTypes[e.Type], Payment: paymentProto(t),
			EventTime: ts(e.Time), Account: toRef(e.Account),
		}); err != nil {
			return err
		}
		cursor = e.ID
		return nil
	}
	// catchUp sends what the log holds after cursor; registered with the
	// hub first, so that nothing committed meanwhile is missed.
	catchUp := func() error {
		for {
			events, err := a.store.Events(ctx, acct, cursor, catchUpBatch)
			if err != nil {
				return toConnect(err)
			}
			txns := make([]*Txn, len(events))
			for i, e := range events {
				if txns[i], err = a.store.Get(ctx, e.TxID); err != nil {
					return toConnect(err)
				}
			}
			// One query for the refunds of the batch's payments.
			if err := a.store.WithRefunds(ctx, txns...); err != nil {
				return toConnect(err)
			}
			for i, e := range events {
				if err := send(e, txns[i]); err != nil {
					return err
				}
			}
			if len(events) < catchUpBatch {
				return nil
			}
		}
	}
	// Send the response headers now, so the client's call returns (and it
	// knows it is subscribed) before the first event exists.
	if err := stream.Send(nil); err != nil {
		return err
	}
	if err := catchUp(); err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-a.stopping:
			return toConnect(errShuttingDown)
		case e := <-sub.ch:
			if e.ID <= cursor {
				continue // sent by a catch-up already
			}
			if err := send(e.Event, e.txn); err != nil {
				return err
			}
		case <-sub.resync:
			hub.caughtUp(sub)
			if err := catchUp(); err != nil {
				return err
			}
		}
	}
}

// watchHub returns the hub of the API's streams, built on first use.
func (a *paymentAPI) watchHub() *watchHub {
	a.hubOnce.Do(func() {
		a.hub = newWatchHub(a.store, a.maxStreams, a.watchBuffer, a.stopping)
	})
	return a.hub
}
