package gateway

import (
	"context"
	"errors"
	"strconv"
	"time"

	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
)

// AdjustRequest is a validated deposit or withdrawal from an admin.
type AdjustRequest struct {
	TxID     string
	ClientID string
	Account  Account
	Debit    bool
	Amount   int64
	Currency string
}

func (r AdjustRequest) direction() string {
	if r.Debit {
		return "debit"
	}
	return "credit"
}

func (r AdjustRequest) fingerprint() string {
	return fingerprint("adjustment", r.ClientID, r.Account.Bank, r.Account.ID, r.direction(),
		strconv.FormatInt(r.Amount, 10), r.Currency)
}

// Adjust credits or debits one account single-phase, idempotent by id. The
// row is claimed first; the bank call is itself idempotent by id, and its
// refusals are final there too, so a retry of an unanswered adjustment (by
// the client or the re-driver) is safe. Only one caller at a time talks to
// the bank about an id: duplicates wait for its outcome. A refusal is
// returned as a Txn with Status failed.
func (c *Coordinator) Adjust(ctx context.Context, req AdjustRequest) (*Txn, error) {
	fp := req.fingerprint()
	for {
		t, err := c.store.Get(ctx, req.TxID)
		switch {
		case err == nil:
			if t.ClientID != req.ClientID || t.Fingerprint != fp {
				return nil, ErrIdempotencyKeyReused
			}
			if t.Status != StatusProcessing {
				return t, nil
			}
		case !errors.Is(err, errNotFound):
			return nil, err
		}
		release, busy := c.acquire(req.TxID)
		if busy != nil {
			select {
			case <-busy:
				continue // its holder finished: read the outcome again
			case <-ctx.Done():
				return nil, ErrInProgress
			}
		}
		defer release()
		return c.adjustLocked(ctx, req, fp)
	}
}

// adjustLocked does Adjust's work while holding the id's in-flight slot.
func (c *Coordinator) adjustLocked(ctx context.Context, req AdjustRequest, fp string) (*Txn, error) {
	t, err := c.store.Get(ctx, req.TxID)
	switch {
	case err == nil:
		if t.ClientID != req.ClientID || t.Fingerprint != fp {
			return nil, ErrIdempotencyKeyReused
		}
		if t.Status != StatusProcessing {
			return t, nil
		}
	case errors.Is(err, errNotFound):
		now := time.Now()
		t = &Txn{
			ID: req.TxID, Kind: KindAdjustment, ClientID: req.ClientID, Fingerprint: fp,
			Payee: req.Account, Direction: req.direction(), Amount: req.Amount, Currency: req.Currency,
			Status: StatusProcessing, CreateTime: now,
		}
		switch _, st := c.banks.Lookup(req.Account.Bank); st {
		case BankUnknown:
			t.Status, t.FailureReason, t.FailureBank, t.CompleteTime = StatusFailed,
				gatewayv1.FailureReason_FAILURE_REASON_BANK_NOT_FOUND, req.Account.Bank, now
		case BankUnreachable:
			return nil, ErrBankUnavailable // nothing recorded: the same id may be retried
		case BankServing:
			// the adjustment goes to the bank below
		}
		stored, claimed, err := c.store.Claim(ctx, t)
		if err != nil {
			return nil, err
		}
		if !claimed && (stored.ClientID != req.ClientID || stored.Fingerprint != fp) {
			return nil, ErrIdempotencyKeyReused
		}
		t = stored
		if t.Status != StatusProcessing {
			return t, nil
		}
	default:
		return nil, err
	}
	// Detached from the client: a hang-up must not cut a bank call whose
	// outcome would then be unknown.
	out, err := c.applyAdjustment(context.WithoutCancel(ctx), t)
	if err != nil || out.Status == StatusProcessing {
		// The row is recorded and the re-driver keeps asking the bank, so
		// the movement may still happen: the caller must retry with the
		// same id, never a new one.
		return nil, ErrInProgress
	}
	return out, nil
}

// errNoAnswer is applyAdjustment's error when the bank gave no definitive
// answer: it was not asked (not registered, or known to be unreachable) or
// its call failed or timed out. The adjustment stays processing.
var errNoAnswer = errors.New("no definitive answer from the bank")

// applyAdjustment makes one attempt at the bank call of a processing
// adjustment and records a definitive answer, which it returns. It returns
// errNoAnswer when the bank gave none, and the store's error when the answer
// could not be recorded (the bank applied it once by id; a retry reads it).
// A bank whose health check fails is not called, as in phase two: the call
// would only spend Timing.AdjustCall.
func (c *Coordinator) applyAdjustment(ctx context.Context, t *Txn) (*Txn, error) {
	client, st := c.banks.Lookup(t.Payee.Bank)
	if client == nil || st != BankServing {
		return nil, errNoAnswer
	}
	cctx, cancel := context.WithTimeout(ctx, c.timing.AdjustCall)
	defer cancel()
	bal, err := client.UpdateBalance(cctx, t.ID, Leg{AccountID: t.Payee.ID, Debit: t.Direction == "debit", Amount: t.Amount, Currency: t.Currency})
	var ref *RefusalError
	switch {
	case err == nil:
		out, err := c.store.FinishAdjustment(ctx, t.ID, StatusSucceeded, Failure{}, bal.Balance, time.Now())
		if err != nil {
			c.log.Error("record adjustment", "transaction_id", t.ID, "err", err)
			return nil, err
		}
		return out, nil
	case errors.As(err, &ref):
		// The adjustment has one account: a refusal is about it.
		switch ref.Reason {
		case gatewayv1.FailureReason_FAILURE_REASON_TRANSACTION_ID_CONFLICT:
			c.logConflict(t.ID, t.Payee.Bank, t.Payee.ID)
		case gatewayv1.FailureReason_FAILURE_REASON_DECLINED_BY_BANK:
			// The client is told only that the bank declined: keep its cause.
			c.log.Warn("adjustment declined by bank for a reason of its own",
				"transaction_id", t.ID, "bank", t.Payee.Bank, "account_id", t.Payee.ID, "reason", ref.BankReason)
		default:
			// a reason the client is told as such
		}
		f := Failure{Reason: ref.Reason, Bank: t.Payee.Bank, AccountID: t.Payee.ID}
		out, err := c.store.FinishAdjustment(ctx, t.ID, StatusFailed, f, 0, time.Now())
		if err != nil {
			c.log.Error("record adjustment", "transaction_id", t.ID, "err", err)
			return nil, err
		}
		return out, nil
	default:
		c.log.Warn("adjustment not answered by bank; will retry", "transaction_id", t.ID, "bank", t.Payee.Bank, "err", err)
		return nil, errNoAnswer
	}
}
