package client

import (
	"context"
	"errors"
	"iter"
	"strings"

	"connectrpc.com/connect"
	"github.com/google/uuid"

	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
	"github.com/remitpay/remit/internal/names"
)

// AccountRef names one account at one bank, e.g. bank-a/alice.
type AccountRef struct {
	// Bank is the bank's registered name.
	Bank string
	// ID is the account's id inside that bank.
	ID string
}

// ParseAccountRef parses "BANK/ACCOUNT", the form users type and
// AccountRef.String prints.
func ParseAccountRef(s string) (AccountRef, error) {
	bank, id, ok := strings.Cut(s, "/")
	a := AccountRef{Bank: bank, ID: id}
	if !ok {
		return AccountRef{}, invalid("account %q is not BANK/ACCOUNT, e.g. bank-a/alice", s)
	}
	if err := a.validate(); err != nil {
		return AccountRef{}, err
	}
	return a, nil
}

// String returns "BANK/ACCOUNT".
func (a AccountRef) String() string { return a.Bank + "/" + a.ID }

// IsZero reports whether a names no account.
func (a AccountRef) IsZero() bool { return a == AccountRef{} }

// Proto returns a as the API's AccountRef.
func (a AccountRef) Proto() *gatewayv1.AccountRef {
	return &gatewayv1.AccountRef{Bank: a.Bank, AccountId: a.ID}
}

// AccountRefFromProto converts the API's AccountRef; nil becomes the zero
// AccountRef.
func AccountRefFromProto(r *gatewayv1.AccountRef) AccountRef {
	return AccountRef{Bank: r.GetBank(), ID: r.GetAccountId()}
}

// validate checks a with the gateway's own naming rules (internal/names).
func (a AccountRef) validate() error {
	if err := names.Bank(a.Bank); err != nil {
		return invalid("bank %v", err)
	}
	if err := names.AccountID(a.ID); err != nil {
		return invalid("account id %v", err)
	}
	return nil
}

// validateCurrency checks currency with the gateway's own rule.
func validateCurrency(currency string) error {
	if err := names.Currency(currency); err != nil {
		return invalid("currency %v", err)
	}
	return nil
}

// MaxAmount is the largest amount the gateway accepts in one payment, in
// minor units.
const MaxAmount = 1_000_000_000_000

// MaxDescriptionLen is the longest description the gateway accepts, in
// characters.
const MaxDescriptionLen = 200

// PaymentRequest is one payment from the caller's own account.
type PaymentRequest struct {
	// TransactionID is the payment's idempotency key, a UUID. Leave it empty
	// to have one generated; reuse it to retry a payment safely.
	TransactionID string
	// Payee is the account to credit.
	Payee AccountRef
	// Amount is in the currency's minor unit (cents for usd); see
	// ParseAmount.
	Amount int64
	// Currency is a lowercase ISO 4217 code, e.g. "usd".
	Currency string
	// Description is free text shown to both sides.
	Description string
}

// NewTransactionID returns a new random transaction id (a UUIDv4).
func NewTransactionID() string { return uuid.NewString() }

// Normalize returns r with a generated transaction id if it had none and a
// lowercase one otherwise (the gateway compares ids in lowercase), or an
// ErrInvalidRequest error for a request the gateway would reject. Callers
// that persist a request before sending it (the outbox) normalize it first,
// so that every send carries identical bytes.
func (r PaymentRequest) Normalize() (PaymentRequest, error) {
	id, err := normalizeTxID(r.TransactionID)
	if err != nil {
		return r, err
	}
	r.TransactionID = id
	if err := r.Payee.validate(); err != nil {
		return r, err
	}
	if err := validateMoney(r.Amount, r.Currency); err != nil {
		return r, err
	}
	if n := len([]rune(r.Description)); n > MaxDescriptionLen {
		return r, invalid("description is %d characters; at most %d", n, MaxDescriptionLen)
	}
	if err := names.Text(r.Description); err != nil {
		return r, invalid("description %v", err)
	}
	return r, nil
}

func normalizeTxID(id string) (string, error) {
	if id == "" {
		return NewTransactionID(), nil
	}
	u, err := uuid.Parse(id)
	if err != nil || len(id) != 36 {
		return "", invalid("transaction id %q is not a UUID like 0b8e5a9c-8f1d-4c7e-9a4e-2d1f0c3b5a6e", id)
	}
	return u.String(), nil
}

func validateMoney(amount int64, currency string) error {
	if amount <= 0 || amount > MaxAmount {
		return invalid("amount %d must be between 1 and %d minor units", amount, int64(MaxAmount))
	}
	return validateCurrency(currency)
}

// Pay makes a payment from the caller's account and returns it SUCCEEDED.
// It retries with the same transaction id as the package documentation
// describes; a decline is an [*Error] for which [IsDeclined] is true. Every
// error that happened after validation is an [*Error] carrying the
// transaction id, so the caller can retry the same payment later.
func (c *Client) Pay(ctx context.Context, req PaymentRequest) (*gatewayv1.Payment, error) {
	req, err := req.Normalize()
	if err != nil {
		return nil, err
	}
	msg := &gatewayv1.MakePaymentRequest{
		TransactionId: req.TransactionID,
		Payee:         req.Payee.Proto(),
		Amount:        req.Amount,
		Currency:      req.Currency,
		Description:   req.Description,
	}
	var res *gatewayv1.MakePaymentResponse
	err = c.call(ctx, "pay", req.TransactionID, func(ctx context.Context) error {
		var err error
		res, err = c.pay.MakePayment(ctx, msg)
		return err
	})
	if err != nil {
		return nil, err
	}
	return res.GetPayment(), nil
}

// Payment returns one payment the caller sent or received (or any, for
// staff).
func (c *Client) Payment(ctx context.Context, transactionID string) (*gatewayv1.Payment, error) {
	id, err := uuid.Parse(transactionID)
	if err != nil {
		return nil, invalid("transaction id %q is not a UUID", transactionID)
	}
	var res *gatewayv1.GetPaymentResponse
	err = c.call(ctx, "get_payment", id.String(), func(ctx context.Context) error {
		var err error
		res, err = c.pay.GetPayment(ctx, &gatewayv1.GetPaymentRequest{TransactionId: id.String()})
		return err
	})
	if err != nil {
		return nil, err
	}
	return res.GetPayment(), nil
}

// PaymentFilter narrows [Client.Payments].
type PaymentFilter struct {
	// Account limits the list to payments involving this account. Zero
	// means the caller's own account (customers) or every account (staff).
	Account AccountRef
	// PageSize is how many payments each request fetches; 0 means the
	// gateway's default (50), and the gateway caps it at 100.
	PageSize int32
}

// Payments iterates over the payments the caller sent or received, newest
// first, fetching pages lazily as the loop advances. An error ends the
// iteration as its last element; stop early with break.
func (c *Client) Payments(ctx context.Context, f PaymentFilter) iter.Seq2[*gatewayv1.Payment, error] {
	return func(yield func(*gatewayv1.Payment, error) bool) {
		req := &gatewayv1.ListPaymentsRequest{PageSize: f.PageSize}
		if !f.Account.IsZero() {
			req.Account = f.Account.Proto()
		}
		for {
			var res *gatewayv1.ListPaymentsResponse
			err := c.call(ctx, "list_payments", "", func(ctx context.Context) error {
				var err error
				res, err = c.pay.ListPayments(ctx, req)
				return err
			})
			if err != nil {
				yield(nil, err)
				return
			}
			for _, p := range res.GetPayments() {
				if !yield(p, nil) {
					return
				}
			}
			if res.GetNextPageToken() == "" {
				return
			}
			req.PageToken = res.GetNextPageToken()
		}
	}
}

// Balance returns an account's balance as its bank reports it. A nil
// account means the caller's own.
func (c *Client) Balance(ctx context.Context, account *AccountRef) (*gatewayv1.CheckBalanceResponse, error) {
	req := &gatewayv1.CheckBalanceRequest{}
	if account != nil {
		req.Account = account.Proto()
	}
	var res *gatewayv1.CheckBalanceResponse
	err := c.call(ctx, "balance", "", func(ctx context.Context) error {
		var err error
		res, err = c.pay.CheckBalance(ctx, req)
		return err
	})
	return res, err
}

// Acknowledge confirms, as the payee, that a payment's credit was seen.
// Acknowledging twice is harmless, so it is retried like a payment.
func (c *Client) Acknowledge(ctx context.Context, transactionID string) (*gatewayv1.Payment, error) {
	id, err := uuid.Parse(transactionID)
	if err != nil {
		return nil, invalid("transaction id %q is not a UUID", transactionID)
	}
	var res *gatewayv1.AcknowledgePaymentResponse
	err = c.call(ctx, "acknowledge", id.String(), func(ctx context.Context) error {
		var err error
		res, err = c.pay.AcknowledgePayment(ctx, &gatewayv1.AcknowledgePaymentRequest{TransactionId: id.String()})
		return err
	})
	if err != nil {
		return nil, err
	}
	return res.GetPayment(), nil
}

// errStreamEnded stands for a watch stream the server closed without an
// error (a gateway shutting down); the watch reconnects.
var errStreamEnded = connect.NewError(connect.CodeUnavailable, errors.New("the gateway closed the event stream"))

// Watch follows the events of the caller's payments (every account's, for
// staff): first every event after afterEventID, then live ones. When the
// stream breaks for a retryable reason it reconnects after a backoff,
// resuming after the last event delivered, so no event is lost or repeated;
// an expired token is renewed once per failure with Credentials. A final
// error (permission denied, unauthenticated without credentials) is the last
// element. The iteration ends silently when ctx is done.
//
// A stream has no per-call deadline; dead connections are detected by the
// HTTP/2 transport's pings.
func (c *Client) Watch(ctx context.Context, afterEventID int64) iter.Seq2[*gatewayv1.WatchPaymentsResponse, error] {
	return func(yield func(*gatewayv1.WatchPaymentsResponse, error) bool) {
		cursor := afterEventID
		failures := 0
		relogged := false
		for ctx.Err() == nil {
			token := c.Token()
			err := c.watchOnce(ctx, callState{token: token, attempt: failures}, &cursor, func(ev *gatewayv1.WatchPaymentsResponse) bool {
				failures, relogged = 0, false
				return yield(ev, nil)
			})
			if errors.Is(err, errStopped) || ctx.Err() != nil {
				return
			}
			e := newError(err, "", failures+1)
			if e.Code == connect.CodeUnauthenticated && c.creds.Load() != nil && !relogged {
				relogged = true
				if c.relogin(ctx, token) == nil {
					continue
				}
			}
			if !e.Retryable {
				yield(nil, e)
				return
			}
			failures++
			delay := max(c.retry.Delay(failures), e.RetryAfter)
			c.log.DebugContext(ctx, "watch reconnecting", "after_event_id", cursor, "code", e.Code.String(), "delay", delay)
			if c.retry.Sleep(ctx, delay) != nil {
				return
			}
		}
	}
}

// errStopped reports that the consumer of a Watch iteration stopped it.
var errStopped = errors.New("stopped by the consumer")

// watchOnce opens one stream after *cursor and delivers its events to
// deliver, advancing *cursor, until the stream ends.
func (c *Client) watchOnce(ctx context.Context, st callState, cursor *int64, deliver func(*gatewayv1.WatchPaymentsResponse) bool) error {
	ctx, cancel := context.WithCancel(context.WithValue(ctx, callStateKey{}, st))
	defer cancel()
	stream, err := c.pay.WatchPayments(ctx, &gatewayv1.WatchPaymentsRequest{AfterEventId: *cursor})
	if err != nil {
		return err
	}
	defer stream.Close() //nolint:errcheck // releases the stream; Receive's and Err's results are the outcome
	for stream.Receive() {
		ev := stream.Msg()
		if ev.GetEventId() <= *cursor {
			continue // never deliver an event twice
		}
		*cursor = ev.GetEventId()
		if !deliver(ev) {
			return errStopped
		}
	}
	if err := stream.Err(); err != nil {
		return err
	}
	return errStreamEnded
}
