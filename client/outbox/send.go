package outbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/remitpay/remit/client"
	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
	"github.com/remitpay/remit/internal/rpcerr"
	"github.com/remitpay/remit/internal/store"
)

// Send sends one queued payment now, out of order if older ones are queued,
// and returns it if it succeeded. A final failure is returned as the
// *client.Error the gateway gave (the payment is then in history); a
// *QueuedError means it is still queued.
func (o *Outbox) Send(ctx context.Context, gw Gateway, txID string) (*gatewayv1.Payment, error) {
	unlock, err := o.lockFlush(ctx, o.opts.Wait)
	if err != nil {
		return nil, err
	}
	defer unlock()
	it, err := getItem(ctx, o.db, txID)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && !o.owns(it)) {
		return nil, fmt.Errorf("%w: %s", ErrNotQueued, txID)
	}
	if err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	out, err := o.send(ctx, gw, it)
	if err != nil {
		return nil, err
	}
	return out.Payment, out.Err()
}

// Flush sends this client's queued payments, oldest first, until none is
// left or one cannot be finished; it stops there so that order is kept. The
// error is nil if every payment reached a final outcome (declines included:
// see the report), a *QueuedError for the payment that stopped the flush,
// ErrBusy if another flush is running, or a local failure.
func (o *Outbox) Flush(ctx context.Context, gw Gateway) (FlushReport, error) {
	unlock, err := o.lockFlush(ctx, o.opts.Wait)
	if err != nil {
		rep := FlushReport{Remaining: o.remaining(ctx)}
		rep.Elsewhere, _ = o.Elsewhere(context.WithoutCancel(ctx))
		return rep, err
	}
	defer unlock()
	return o.flushLocked(ctx, gw, 0)
}

// flushLocked is Flush with the lock held; uptoSeq > 0 stops after the
// payment with that sequence number.
func (o *Outbox) flushLocked(ctx context.Context, gw Gateway, uptoSeq int64) (rep FlushReport, err error) {
	defer func() {
		rep.Remaining = o.remaining(ctx)
		rep.Elsewhere, _ = o.Elsewhere(context.WithoutCancel(ctx))
	}()
	for {
		it, err := o.oldest(ctx)
		if errors.Is(err, sql.ErrNoRows) {
			return rep, nil
		}
		if err != nil {
			return rep, fmt.Errorf("outbox: %w", err)
		}
		if uptoSeq > 0 && it.seq > uptoSeq {
			return rep, nil
		}
		out, err := o.send(ctx, gw, it)
		if err != nil {
			return rep, err
		}
		rep.Outcomes = append(rep.Outcomes, out)
	}
}

// owns reports whether this handle may send it.
func (o *Outbox) owns(it Item) bool {
	return it.ClientID == o.opts.ClientID && it.GatewayURL == o.opts.GatewayURL
}

func (o *Outbox) oldest(ctx context.Context) (Item, error) {
	return scanItem(o.db.QueryRowContext(ctx, `SELECT `+itemColumns+` FROM queued
		WHERE client_id = ? AND gateway = ? ORDER BY seq LIMIT 1`, o.opts.ClientID, o.opts.GatewayURL))
}

func (o *Outbox) remaining(ctx context.Context) int {
	var n int
	_ = o.db.QueryRowContext(context.WithoutCancel(ctx), `SELECT count(*) FROM queued WHERE client_id = ? AND gateway = ?`,
		o.opts.ClientID, o.opts.GatewayURL).Scan(&n)
	return n
}

// send sends one queued payment (the caller holds the lock) and records the
// result: a final outcome moves it to history, anything else leaves it
// queued and is returned as a *QueuedError.
func (o *Outbox) send(ctx context.Context, gw Gateway, it Item) (Outcome, error) {
	// Count the attempt before sending, so attempts also counts sends that
	// a crash interrupted.
	started := time.Now()
	if _, err := o.db.ExecContext(ctx, `UPDATE queued SET attempts = attempts + 1, last_attempt = ? WHERE seq = ?`,
		started.UnixNano(), it.seq); err != nil {
		return Outcome{}, &QueuedError{TransactionID: it.TransactionID, Cause: fmt.Errorf("outbox: %w", err)}
	}
	it.Attempts++
	p, err := gw.Pay(ctx, it.Request())
	if errors.Is(err, client.ErrInvalidRequest) {
		p, err = o.refusedLocally(ctx, gw, it, err)
	}

	// Record on a detached context: the answer must not be dropped because
	// the caller is going away. (If the process dies here instead, the next
	// flush resends and the gateway replays the outcome.)
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	out, cause := o.outcomeOf(it, p, err)
	if cause != nil {
		if _, err := o.db.ExecContext(rctx, `UPDATE queued SET last_error = ? WHERE seq = ?`, cause.Error(), it.seq); err != nil {
			cause = errors.Join(cause, fmt.Errorf("outbox: record attempt: %w", err))
		}
		return Outcome{}, &QueuedError{TransactionID: it.TransactionID, Cause: cause}
	}
	if err := o.record(rctx, it, out); err != nil {
		// Still queued: the next flush resends and gets the stored outcome.
		return Outcome{}, &QueuedError{TransactionID: it.TransactionID, Cause: err}
	}
	if o.opts.OnOutcome != nil {
		o.opts.OnOutcome(out)
	}
	return out, nil
}

// stale is how long after its last send a queued payment that the client
// now refuses to send may be taken as never received when the gateway
// does not know its id: longer than any send of it could still be on its
// way (every send carries its deadline, and the gateway refuses a request
// whose deadline has passed).
const stale = time.Minute

// refusedLocallyError wraps the client's refusal of a queued payment that
// the gateway never received: it is final, FAILED.
type refusedLocallyError struct{ err error }

func (e refusedLocallyError) Error() string { return e.err.Error() }
func (e refusedLocallyError) Unwrap() error { return e.err }

// refusedLocally handles a queued payment that the client refuses to send
// (refused, ErrInvalidRequest): the rules changed since it was queued,
// for example a description an older version accepted and the printable
// text rule now refuses. An older gateway may have received and applied
// it under its id, so the gateway is asked for that id: a payment it
// knows is the outcome; one it does not know, at least [stale] after the
// last send, was never received and can never be sent again, so it ends
// FAILED with the client's refusal. Anything else keeps it queued.
func (o *Outbox) refusedLocally(ctx context.Context, gw Gateway, it Item, refused error) (*gatewayv1.Payment, error) {
	p, err := gw.Payment(ctx, it.TransactionID)
	if err == nil {
		return p, nil
	}
	if connect.CodeOf(err) == connect.CodeNotFound && finalAnswer(err) &&
		(it.LastAttempt.IsZero() || time.Since(it.LastAttempt) > stale) {
		return nil, refusedLocallyError{refused}
	}
	// The gateway's answer is only context here: %v, so that it is
	// never taken for the payment's outcome.
	return nil, fmt.Errorf("%w (asking the gateway for its outcome: %v)", refused, err) //nolint:errorlint // see above
}

// errProcessing stands for a payment the gateway returned without a final
// status; a resend returns the final one once it is decided.
var errProcessing = errors.New("the gateway has not decided the payment yet")

// outcomeOf turns the result of a send into a final outcome, or returns
// why the payment must stay queued. When unsure it keeps the payment: a
// needless resend is harmless, a payment dropped from the outbox is lost.
func (o *Outbox) outcomeOf(it Item, p *gatewayv1.Payment, err error) (Outcome, error) {
	out := Outcome{
		TransactionID: it.TransactionID, ClientID: it.ClientID, GatewayURL: it.GatewayURL,
		Payee: it.Payee, Amount: it.Amount, Currency: it.Currency, Description: it.Description,
		Created: it.Created, Completed: time.Now(), Attempts: it.Attempts,
	}
	if err == nil {
		switch p.GetStatus() {
		case gatewayv1.PaymentStatus_PAYMENT_STATUS_SUCCEEDED:
			out.Status, out.Payment = StatusSucceeded, p
			return out, nil
		case gatewayv1.PaymentStatus_PAYMENT_STATUS_FAILED:
			// The code and reason the gateway's error for this failure
			// carries; the reason in words stands in for its message.
			r := p.GetFailureReason()
			out.Status, out.Payment = StatusFailed, p
			out.Code, out.Reason, out.Message = connect.CodeFailedPrecondition.String(), rpcerr.EnumReason(r), client.FailureWords(r)
			return out, nil
		default:
			return out, errProcessing
		}
	}
	if r, ok := errors.AsType[refusedLocallyError](err); ok {
		out.Status, out.err = StatusFailed, r.err
		out.Code, out.Reason, out.Message = connect.CodeInvalidArgument.String(), "INVALID_REQUEST", r.err.Error()
		return out, nil
	}
	var e *client.Error
	if !errors.As(err, &e) {
		return out, err // a local failure: nothing is known about the payment
	}
	if e.Retryable || !finalAnswer(err) {
		return out, err
	}
	out.Status, out.err = StatusFailed, err
	out.Code, out.Reason, out.Message = e.Code.String(), e.Reason, e.Message
	return out, nil
}

// finalAnswer reports whether err is a final outcome of a payment given by
// the gateway itself: a Remit error (an ErrorInfo of domain remit.dev) with
// a code that no resend of the same request can change. Only then may a
// payment leave the outbox without succeeding.
//
// Everything else keeps it queued: an error without Remit's ErrorInfo did
// not come from the gateway (a proxy, a load balancer, a server that is
// not a gateway at all answering 404), so no gateway may have seen the
// payment; unauthenticated means the gateway did not look at it (it goes
// out after the next login); internal, unknown and data_loss mean the
// gateway failed while handling it and may still decide (and commit) it in
// its recovery, so recording FAILED could make the user pay twice; and
// aborted, unavailable, resource_exhausted, deadline_exceeded and canceled
// are transient. A needless resend is harmless (the gateway replays the
// stored outcome); a payment dropped from the outbox is lost.
func finalAnswer(err error) bool {
	info := rpcerr.Info(err)
	if info == nil || info.GetDomain() != rpcerr.Domain {
		return false
	}
	switch connect.CodeOf(err) {
	case connect.CodeFailedPrecondition, // a decline: INSUFFICIENT_FUNDS, ACCOUNT_NOT_FOUND, ...
		connect.CodeInvalidArgument,  // IDEMPOTENCY_KEY_REUSED, or the request refused as given
		connect.CodePermissionDenied, // this client has no account to pay from
		connect.CodeNotFound,
		connect.CodeAlreadyExists,
		connect.CodeOutOfRange:
		return true
	default:
		return false
	}
}

// record moves a payment from the queue to history in one transaction.
func (o *Outbox) record(ctx context.Context, it Item, out Outcome) error {
	payment := ""
	if out.Payment != nil {
		b, err := protojson.Marshal(out.Payment)
		if err != nil {
			return fmt.Errorf("outbox: encode payment: %w", err)
		}
		payment = string(b)
	}
	err := store.InTx(ctx, o.db, func(tx *sql.Tx) error {
		// Enqueue refuses an id that is in history, so a conflict here only
		// comes from an outbox written by an older version, which queued
		// such ids again. Whatever happened to that second request, the
		// recorded success of the first stays: it is the payment that moved
		// money.
		if _, err := tx.ExecContext(ctx, `INSERT INTO history
			(transaction_id, client_id, gateway, status, code, reason, message, payment, payee_bank, payee_account,
			 amount, currency, description, created, completed, attempts)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (transaction_id) DO UPDATE SET
				client_id = excluded.client_id, gateway = excluded.gateway, status = excluded.status,
				code = excluded.code, reason = excluded.reason, message = excluded.message,
				payment = excluded.payment, payee_bank = excluded.payee_bank,
				payee_account = excluded.payee_account, amount = excluded.amount, currency = excluded.currency,
				description = excluded.description, created = excluded.created, completed = excluded.completed,
				attempts = excluded.attempts
			WHERE history.status <> 'SUCCEEDED'`,
			out.TransactionID, out.ClientID, out.GatewayURL, string(out.Status), out.Code, out.Reason, out.Message,
			payment, out.Payee.Bank, out.Payee.ID, out.Amount, out.Currency, out.Description,
			out.Created.UnixNano(), out.Completed.UnixNano(), out.Attempts); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM queued WHERE seq = ?`, it.seq)
		return err
	})
	if err != nil {
		return fmt.Errorf("outbox: record outcome: %w", err)
	}
	return nil
}

// Pay is `remit pay`: it queues the payment durably, then, holding the
// lock, sends this client's older queued payments and this one, in order.
// It returns the payment if it succeeded; queued=true with a *QueuedError
// (carrying the transaction id and the cause) if it is safely queued for a
// later flush; or the gateway's final *client.Error for it (see
// finalAnswer): a decline (client.IsDeclined); a TRANSACTION_ID_CONFLICT,
// which is not one (a bank holds the id for a different transaction, and
// an operator must reconcile it before anything is paid again); or another
// final refusal, such as IDEMPOTENCY_KEY_REUSED or permission_denied. An
// error with queued=false from before the enqueue means nothing was saved
// or sent: an invalid request, or ErrTransactionIDReused for an id already
// used locally for a different payment. A transaction id that already has
// a final outcome in history, for the same payment, is not sent again: Pay
// returns that outcome. Outcomes of older payments are reported through
// Options.OnOutcome.
func (o *Outbox) Pay(ctx context.Context, gw Gateway, req client.PaymentRequest) (p *gatewayv1.Payment, queued bool, err error) {
	it, done, err := o.enqueue(ctx, req)
	if err != nil {
		return nil, false, err
	}
	if done != nil {
		return done.Payment, false, done.Err()
	}
	id := it.TransactionID
	unlock, err := o.lockFlush(ctx, true)
	if err != nil {
		return nil, true, &QueuedError{TransactionID: id, Cause: err}
	}
	defer unlock()
	rep, ferr := o.flushLocked(ctx, gw, it.seq)
	for _, out := range rep.Outcomes {
		if out.TransactionID == id {
			return out.Payment, false, out.Err()
		}
	}

	// Whoever sent it (a flush that held the lock before us), once it has
	// left the queue its final outcome is in history.
	rctx := context.WithoutCancel(ctx)
	switch _, err := getItem(rctx, o.db, id); {
	case errors.Is(err, sql.ErrNoRows):
		out, err := o.outcome(rctx, id)
		if err != nil {
			return nil, false, fmt.Errorf("outbox: payment %s left the queue but its outcome is not in history: %w", id, err)
		}
		return out.Payment, false, out.Err()
	case err != nil:
		return nil, true, &QueuedError{TransactionID: id, Cause: fmt.Errorf("outbox: %w", err)}
	}
	var qe *QueuedError
	switch {
	case errors.As(ferr, &qe) && qe.TransactionID == id:
		return nil, true, qe
	case qe != nil:
		return nil, true, &QueuedError{TransactionID: id,
			Cause: fmt.Errorf("waiting behind older queued payment %s: %w", qe.TransactionID, qe.Cause)}
	case ferr != nil:
		return nil, true, &QueuedError{TransactionID: id, Cause: ferr}
	default:
		return nil, true, &QueuedError{TransactionID: id, Cause: errors.New("not sent yet")}
	}
}

// maxWatchDelay caps the backoff of FlushWatch while the gateway is
// unreachable, so it notices the gateway's return within half a minute.
const maxWatchDelay = 30 * time.Second

// FlushWatch runs until ctx is done: whenever this client has queued
// payments it checks the gateway's health, flushes as soon as the gateway
// is reachable, and backs off (doubling from every up to 30s) while it is
// not or while a flush cannot finish. notify, if not nil, is called after
// every health failure (with an empty report) and every flush. It returns
// nil when ctx is done, or a local failure (the database).
func (o *Outbox) FlushWatch(ctx context.Context, gw Gateway, every time.Duration, notify func(FlushReport, error)) error {
	if every <= 0 {
		every = 2 * time.Second
	}
	if notify == nil {
		notify = func(FlushReport, error) {}
	}
	maxDelay := max(every, maxWatchDelay)
	delay := every
	for {
		n, err := o.count(ctx)
		switch {
		case ctx.Err() != nil:
			return nil //nolint:nilerr // FlushWatch returns nil once ctx is done (documented): stopping is not a failure
		case err != nil:
			return err
		case n == 0:
			delay = every
		default:
			if herr := gw.Health(ctx); herr != nil {
				notify(FlushReport{Remaining: n}, herr)
				delay = min(2*delay, maxDelay)
				break
			}
			unlock, err := o.lockFlush(ctx, true)
			if err != nil {
				if ctx.Err() != nil {
					return nil //nolint:nilerr // FlushWatch returns nil once ctx is done (documented): stopping is not a failure
				}
				return err
			}
			rep, ferr := o.flushLocked(ctx, gw, 0)
			unlock()
			if ctx.Err() != nil {
				return nil //nolint:nilerr // FlushWatch returns nil once ctx is done (documented): stopping is not a failure
			}
			notify(rep, ferr)
			if ferr != nil {
				if _, ok := errors.AsType[*QueuedError](ferr); !ok {
					return ferr
				}
				delay = min(2*delay, maxDelay)
			} else {
				delay = every
			}
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

func (o *Outbox) count(ctx context.Context) (int, error) {
	var n int
	err := o.db.QueryRowContext(ctx, `SELECT count(*) FROM queued WHERE client_id = ? AND gateway = ?`,
		o.opts.ClientID, o.opts.GatewayURL).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("outbox: %w", err)
	}
	return n, nil
}
