package gateway

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
	"github.com/remitpay/remit/internal/audit"
	"github.com/remitpay/remit/internal/rpcerr"
	"github.com/remitpay/remit/internal/store"
)

// Leg is one account's part in a transaction at one bank.
type Leg struct {
	AccountID string
	Debit     bool
	Amount    int64
	Currency  string
}

// Vote is a bank's answer to prepare.
type Vote struct {
	Yes bool
	// Reason is why the bank voted NO (or, for a vote the coordinator made
	// up, why no YES arrived).
	Reason gatewayv1.FailureReason
	// AccountID is the account the refusal is about, when the bank named one.
	AccountID string
}

// Balance is an account's state at its bank.
type Balance struct {
	Balance, Available int64
	Currency           string
}

// RefusalError is a bank's definitive refusal of a single-phase movement, a
// read or a phase-two call.
type RefusalError struct {
	// Reason is the refusal as a gateway outcome, e.g. INSUFFICIENT_FUNDS.
	Reason gatewayv1.FailureReason
	// BankReason is the bank's own ErrorInfo reason, for logs (phase-two
	// refusals such as CANNOT_COMMIT have no FailureReason of their own).
	BankReason string
}

func (e *RefusalError) Error() string {
	return "refused by bank: " + cmp.Or(e.BankReason, rpcerr.EnumReason(e.Reason))
}

// BankClient is how the coordinator talks to one bank. The production
// implementation speaks BankService over mutual TLS (bankclient.go). An error
// that is not a *RefusalError means "no definitive answer": the call may or
// may not have taken effect.
type BankClient interface {
	Prepare(ctx context.Context, txID string, legs []Leg, expire time.Time) (Vote, error)
	Commit(ctx context.Context, txID string, commit bool) error
	UpdateBalance(ctx context.Context, txID string, leg Leg) (Balance, error)
	GetBalance(ctx context.Context, accountID string) (Balance, error)
}

// BankState is what the coordinator knows about a bank before calling it.
type BankState int

// Bank states.
const (
	BankUnknown     BankState = iota // not registered
	BankServing                      // registered, last health check good or not yet checked
	BankUnreachable                  // registered, last health check failed
)

// Banks resolves a bank name to a client and its last known health.
type Banks interface {
	Lookup(name string) (BankClient, BankState)
}

// Timing holds the coordinator's deadlines. A zero field means
// DefaultTiming's (AdjustCall: CommitCall), so Timing{} is DefaultTiming.
type Timing struct {
	// PrepareCall bounds each PrepareTransaction call.
	PrepareCall time.Duration
	// Decision bounds phase one: a payment not decided by then is aborted.
	Decision time.Duration
	// ExpireGrace is added to the decision deadline to form the expire_time
	// sent to banks, after which they ask for the outcome.
	ExpireGrace time.Duration
	// CommitCall bounds each CommitTransaction call.
	CommitCall time.Duration
	// BalanceCall bounds each GetBalance call (CheckBalance).
	BalanceCall time.Duration
	// AdjustCall bounds each UpdateBalance call of a deposit or withdrawal;
	// zero means CommitCall.
	AdjustCall time.Duration
	// Phase2Wait is how long MakePayment waits for phase-two
	// acknowledgements before answering; the re-driver finishes the rest.
	Phase2Wait time.Duration
	// Redrive is the period of the phase-two re-driver.
	Redrive time.Duration
}

// DefaultTiming is what a real deployment uses.
var DefaultTiming = Timing{
	PrepareCall: 5 * time.Second,
	Decision:    10 * time.Second,
	ExpireGrace: 20 * time.Second,
	CommitCall:  5 * time.Second,
	BalanceCall: 5 * time.Second,
	AdjustCall:  5 * time.Second,
	Phase2Wait:  3 * time.Second,
	Redrive:     time.Second,
}

// Coordinator runs the two-phase commit for payments and the single-phase
// adjustments, over the durable log in Store.
//
// Invariants a change must keep:
//   - The transaction id is claimed durably before any bank hears of it.
//   - The decision is durable (compare-and-set) before phase two starts, and
//     once written it never changes.
//   - A COMMIT is written only if every participant voted YES before the
//     decision deadline.
//   - Phase two is re-sent until every participant acknowledged it, across
//     restarts.
type Coordinator struct {
	store  *Store
	banks  Banks
	log    *slog.Logger
	timing Timing

	audit   audit.Recorder // nil for none
	metrics *coordMetrics  // nil for none

	mu       sync.Mutex
	inflight map[string]chan struct{} // transaction id -> closed when its first run ends
	driving  map[string]bool          // phase two being driven in-process
	// redriving holds the banks whose re-driver worker is running.
	redriving map[string]bool
	wake      chan struct{}
	stopped   bool           // Stop was called: no new background work
	work      sync.WaitGroup // background work (payment runs, phase-two sends); Add under mu
}

// background runs f in a goroutine that Stop waits for, unless Stop was
// called, in which case it reports false and f does not run.
func (c *Coordinator) background(f func()) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return false
	}
	c.work.Go(f)
	return true
}

// Stop refuses new background work and waits at most timeout for what runs
// (payments in phase one or two, detached from their requests), so that the
// store and the audit log they write to can be closed after it. It reports
// whether everything finished. What it does not wait for is safe to cut, as
// a crash is: recovery aborts an undecided payment and re-drives a decided
// one.
func (c *Coordinator) Stop(timeout time.Duration) bool {
	c.mu.Lock()
	c.stopped = true
	c.mu.Unlock()
	done := make(chan struct{})
	go func() {
		c.work.Wait()
		close(done)
	}()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-done:
		return true
	case <-timer.C:
		return false
	}
}

// NewCoordinator builds a coordinator. log is required. Zero bank-call
// deadlines of timing take their defaults (see Timing).
func NewCoordinator(st *Store, banks Banks, log *slog.Logger, timing Timing) *Coordinator {
	if log == nil {
		panic("gateway: NewCoordinator needs a logger")
	}
	timing.PrepareCall = cmp.Or(timing.PrepareCall, DefaultTiming.PrepareCall)
	timing.Decision = cmp.Or(timing.Decision, DefaultTiming.Decision)
	timing.ExpireGrace = cmp.Or(timing.ExpireGrace, DefaultTiming.ExpireGrace)
	timing.CommitCall = cmp.Or(timing.CommitCall, DefaultTiming.CommitCall)
	timing.BalanceCall = cmp.Or(timing.BalanceCall, DefaultTiming.BalanceCall)
	timing.AdjustCall = cmp.Or(timing.AdjustCall, timing.CommitCall)
	timing.Phase2Wait = cmp.Or(timing.Phase2Wait, DefaultTiming.Phase2Wait)
	timing.Redrive = cmp.Or(timing.Redrive, DefaultTiming.Redrive)
	return &Coordinator{
		store: st, banks: banks, log: log, timing: timing,
		inflight:  map[string]chan struct{}{},
		driving:   map[string]bool{},
		redriving: map[string]bool{},
		wake:      make(chan struct{}, 1),
	}
}

// PaymentRequest is a validated MakePayment from an authenticated client,
// or a refund (RefundOf set; see Refund).
type PaymentRequest struct {
	TxID        string
	ClientID    string
	Payer       Account
	Payee       Account
	Amount      int64
	Currency    string
	Description string
	// RefundOf is, for a refund, the transaction id of the payment it
	// refunds; RefundReason is why.
	RefundOf     string
	RefundReason gatewayv1.RefundReason
}

// fingerprint of a payment is unchanged since before refunds existed, so
// that the rows stored then still match their retries. A refund's has a
// kind of its own, so that a refund id equal to a payment's id (or the
// other way round) is a reused key whatever the parameters.
func (r PaymentRequest) fingerprint() string {
	if r.RefundOf != "" {
		return fingerprint("refund", r.ClientID, r.RefundOf, r.Payer.Bank, r.Payer.ID, r.Payee.Bank, r.Payee.ID,
			strconv.FormatInt(r.Amount, 10), r.Currency, r.Description, rpcerr.EnumReason(r.RefundReason))
	}
	return fingerprint("payment", r.ClientID, r.Payer.Bank, r.Payer.ID, r.Payee.Bank, r.Payee.ID,
		strconv.FormatInt(r.Amount, 10), r.Currency, r.Description)
}

// RefundRequest is a validated RefundPayment from a client allowed to refund
// the payment (its payee, or an admin).
type RefundRequest struct {
	RefundID    string
	ClientID    string
	Amount      int64
	Reason      gatewayv1.RefundReason
	Description string
}

// Refund sends amount of payment orig back from its payee to its payer: a
// payment of its own, id req.RefundID, run by Pay like any other (the same
// claim, phase one, decision and phase two, the same idempotency), with the
// refundable-amount check in its claim (Store.Claim). A refund that fails
// (the payee's account cannot fund it, a bank is down, ...) takes nothing of
// the payment's refundable amount.
func (c *Coordinator) Refund(ctx context.Context, orig *Txn, req RefundRequest) (*Txn, error) {
	return c.Pay(ctx, PaymentRequest{
		TxID: req.RefundID, ClientID: req.ClientID, Payer: orig.Payee, Payee: orig.Payer,
		Amount: req.Amount, Currency: orig.Currency, Description: req.Description,
		RefundOf: orig.ID, RefundReason: req.Reason,
	})
}

// fingerprint hashes a request's parameters unambiguously (each field is
// length-prefixed), so a reused transaction id with any other parameter is
// told apart from a retry.
func fingerprint(fields ...string) string {
	h := sha256.New()
	for _, f := range fields {
		fmt.Fprintf(h, "%d:%s;", len(f), f)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Pay runs one payment to its outcome, or returns the stored outcome of an
// earlier request with the same id. A declined payment is returned as a Txn
// with Status failed, not as an error; errors are the sentinels above or
// infrastructure failures.
func (c *Coordinator) Pay(ctx context.Context, req PaymentRequest) (*Txn, error) {
	fp := req.fingerprint()
	// A replay is answered from the log. A new payment is not read for
	// first: its claim (an INSERT that does nothing when the id is taken)
	// finds an earlier request and answers it the same way. The paths that
	// may answer without claiming read first (a refund's check, a decline
	// or refusal before phase one, another request in flight with the id,
	// a log that is closing), so that a replay gets its stored outcome,
	// never today's answer.
	readFirst := func() (*Txn, bool, error) {
		t, err := c.store.Get(ctx, req.TxID)
		switch {
		case err == nil:
			t, err = c.replay(ctx, t, req.ClientID, fp)
			return t, true, err
		case errors.Is(err, errNotFound):
			return nil, false, nil
		default:
			return nil, true, err
		}
	}
	if req.RefundOf != "" {
		if t, done, err := readFirst(); done {
			return t, err
		}
		// A refund the payment cannot take is refused before anything
		// else (a bank being down included): that answer is final until
		// another refund fails. Claim checks again, atomically. The
		// refund itself is not counted: a retry that missed its row
		// above may find it claimed now, and is a replay (the claim
		// answers it from the row), not a second refund.
		if err := c.store.checkRefund(ctx, nil, req.RefundOf, req.TxID, req.Amount); err != nil {
			return nil, err
		}
	}
	now := time.Now()
	t := &Txn{
		ID: req.TxID, Kind: KindPayment, ClientID: req.ClientID, Fingerprint: fp,
		Payer: req.Payer, Payee: req.Payee, Amount: req.Amount, Currency: req.Currency,
		Description: req.Description, Status: StatusProcessing, CreateTime: now,
		PrepareDeadline: now.Add(c.timing.Decision),
		RefundOf:        req.RefundOf, RefundReason: req.RefundReason,
	}
	reason, bank, err := c.precheck(req)
	if (err != nil || reason != unspecified) && req.RefundOf == "" {
		if t, done, err := readFirst(); done {
			return t, err
		}
	}
	if err != nil {
		return nil, err
	} else if reason != unspecified {
		// A decline known before phase one is final for this id too.
		t.Status, t.FailureReason, t.FailureBank, t.Decision, t.CompleteTime = StatusFailed, reason, bank, DecisionAbort, now
		stored, claimed, err := c.store.Claim(ctx, t)
		if err != nil {
			return nil, err
		}
		if !claimed {
			return c.replay(ctx, stored, req.ClientID, fp)
		}
		c.log.Info("payment declined before phase one", "transaction_id", t.ID, "reason", rpcerr.EnumReason(reason))
		c.metrics.payment("declined")
		c.auditDecision(ctx, stored)
		return stored, nil
	}
	t.Participants = participants(req.Payer, req.Payee)

	// Take the in-flight slot before claiming, so a duplicate that sees the
	// claimed row always finds something to wait on.
	release, busy := c.acquire(req.TxID)
	if busy != nil {
		// Another request works on this id now: one that reuses the id for
		// something else is told so at once, not after that work ends.
		if t, done, err := readFirst(); done {
			return t, err
		}
		return c.waitAndReplay(ctx, req.TxID, req.ClientID, fp)
	}

	stored, claimed, err := c.store.Claim(ctx, t)
	if err != nil || !claimed {
		release()
		if errors.Is(err, store.ErrGroupClosed) {
			// Stopping: the log takes no more writes, but a replay is
			// still answered from it.
			if t, done, err := readFirst(); done {
				return t, err
			}
		}
		if err != nil {
			return nil, err
		}
		return c.replay(ctx, stored, req.ClientID, fp)
	}

	// From here on the outcome is final for this id. The protocol runs on a
	// context detached from the client's: a client that hangs up must not
	// leave a payment half-decided.
	result := make(chan *Txn, 1)
	if !c.background(func() {
		defer release()
		result <- c.run(context.WithoutCancel(ctx), stored)
	}) {
		// The gateway is stopping: claimed but not started, as after a
		// crash; recovery aborts it on the next start.
		release()
		return nil, ErrInProgress
	}
	select {
	case r := <-result:
		if r == nil {
			return nil, ErrInProgress
		}
		return r, nil
	case <-ctx.Done():
		return nil, ErrInProgress
	}
}

// acquire takes the in-flight slot of a transaction id: at most one request
// or re-driver pass works on an id at a time in this process. If another
// holds it, busy is closed when that holder releases it (taken in the same
// critical section, so the wake-up cannot be missed). Otherwise busy is nil
// and release must be called when the work ends, which wakes every waiter.
func (c *Coordinator) acquire(id string) (release func(), busy <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if held, taken := c.inflight[id]; taken {
		return nil, held
	}
	done := make(chan struct{})
	c.inflight[id] = done
	return func() {
		c.mu.Lock()
		if c.inflight[id] == done {
			delete(c.inflight, id)
		}
		c.mu.Unlock()
		close(done)
	}, nil
}

// inflightDone returns the channel closed when the current holder of id's
// slot releases it, or nil if nobody holds it.
func (c *Coordinator) inflightDone(id string) <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.inflight[id]
}

// precheck returns a final decline reason known before phase one (and the
// bank it is about, if any), ErrBankUnavailable when a bank is known to be
// down (nothing is recorded then), or UNSPECIFIED when phase one may start.
func (c *Coordinator) precheck(req PaymentRequest) (gatewayv1.FailureReason, string, error) {
	if req.Payer == req.Payee {
		return gatewayv1.FailureReason_FAILURE_REASON_SAME_ACCOUNT, "", nil
	}
	for _, b := range participants(req.Payer, req.Payee) {
		_, st := c.banks.Lookup(b)
		switch st {
		case BankUnknown:
			return gatewayv1.FailureReason_FAILURE_REASON_BANK_NOT_FOUND, b, nil
		case BankUnreachable:
			return unspecified, "", ErrBankUnavailable
		case BankServing:
			// this bank may take part
		}
	}
	return unspecified, "", nil
}

// unspecified is the FailureReason of a transaction that did not fail.
const unspecified = gatewayv1.FailureReason_FAILURE_REASON_UNSPECIFIED

func participants(payer, payee Account) []string {
	if payer.Bank == payee.Bank {
		return []string{payer.Bank}
	}
	p := []string{payer.Bank, payee.Bank}
	sort.Strings(p)
	return p
}

// replay answers a request whose id is already in the log.
func (c *Coordinator) replay(ctx context.Context, t *Txn, clientID, fp string) (*Txn, error) {
	if t.ClientID != clientID || t.Fingerprint != fp {
		return nil, ErrIdempotencyKeyReused
	}
	if t.Status != StatusProcessing {
		return c.withRefunds(ctx, t)
	}
	return c.waitAndReplay(ctx, t.ID, clientID, fp)
}

// withRefunds returns the stored outcome t of a replay with the refunds the
// payment has had since (a first answer has none: it is read only here, off
// the path of a new payment).
func (c *Coordinator) withRefunds(ctx context.Context, t *Txn) (*Txn, error) {
	if err := c.store.WithRefunds(ctx, t); err != nil {
		return nil, err
	}
	return t, nil
}

// waitAndReplay waits, within ctx, for the in-flight request with this id to
// end and returns its stored outcome.
func (c *Coordinator) waitAndReplay(ctx context.Context, id, clientID, fp string) (*Txn, error) {
	for {
		done := c.inflightDone(id)
		if done == nil {
			t, err := c.store.Get(ctx, id)
			if err != nil {
				if errors.Is(err, errNotFound) {
					return nil, ErrInProgress // the other request stopped before claiming
				}
				return nil, err
			}
			if t.ClientID != clientID || t.Fingerprint != fp {
				return nil, ErrIdempotencyKeyReused
			}
			if t.Status != StatusProcessing {
				return c.withRefunds(ctx, t)
			}
			// Still undecided with nobody working on it: its decision could
			// not be written. The re-driver aborts it once its deadline has
			// passed; until then the answer is "in progress", never a
			// PROCESSING payment presented as an outcome.
			return nil, ErrInProgress
		}
		select {
		case <-done:
		case <-ctx.Done():
			return nil, ErrInProgress
		}
	}
}

// run executes phase one, the decision and phase two for a claimed payment.
func (c *Coordinator) run(ctx context.Context, t *Txn) *Txn {
	legs := map[string][]Leg{}
	legs[t.Payer.Bank] = append(legs[t.Payer.Bank], Leg{AccountID: t.Payer.ID, Debit: true, Amount: t.Amount, Currency: t.Currency})
	legs[t.Payee.Bank] = append(legs[t.Payee.Bank], Leg{AccountID: t.Payee.ID, Amount: t.Amount, Currency: t.Currency})
	expire := t.PrepareDeadline.Add(c.timing.ExpireGrace)

	type answer struct {
		bank string
		vote Vote
	}
	answers := make(chan answer, len(legs))
	prepareStart := time.Now()
	pctx, cancel := context.WithDeadline(ctx, t.PrepareDeadline)
	defer cancel()
	for bank, l := range legs {
		go func() {
			answers <- answer{bank, c.prepare(pctx, t.ID, bank, l, expire)}
		}()
	}
	decision, why := DecisionCommit, Failure{}
	var conflicted []string // banks that hold t.ID for another transaction
	for range legs {
		a := <-answers
		if a.vote.Yes {
			continue
		}
		conflict := a.vote.Reason == gatewayv1.FailureReason_FAILURE_REASON_TRANSACTION_ID_CONFLICT
		if conflict {
			conflicted = append(conflicted, a.bank)
			// Durable before the decision, so that recovery skips the bank
			// too if the decision is never written; decide retries it.
			if err := c.store.ExcuseParticipant(ctx, t.ID, a.bank); err != nil {
				c.log.Error("cannot record a conflicting bank; retried with the decision",
					"transaction_id", t.ID, "bank", a.bank, "err", err)
			}
		}
		// The first definite reason wins over "unavailable"; a conflict wins
		// over any other, so its client is never told to pay again with a
		// new id.
		if why.Reason == unspecified || why.Reason == gatewayv1.FailureReason_FAILURE_REASON_BANK_UNAVAILABLE ||
			(conflict && why.Reason != gatewayv1.FailureReason_FAILURE_REASON_TRANSACTION_ID_CONFLICT) {
			decision, why = DecisionAbort, Failure{Reason: a.vote.Reason, Bank: a.bank, AccountID: a.vote.AccountID}
		}
	}
	c.metrics.observePhase(phasePrepare, prepareStart)
	if decision == DecisionCommit && !time.Now().Before(t.PrepareDeadline) {
		decision, why = DecisionAbort, Failure{Reason: gatewayv1.FailureReason_FAILURE_REASON_EXPIRED}
	}
	decideStart := time.Now()
	final, err := c.record(ctx, t.ID, t, decision, why, conflicted...)
	c.metrics.observePhase(phaseDecision, decideStart)
	if err != nil {
		// The decision could not be written; it stays undecided and will be
		// aborted by recovery or by a bank's outcome query. Nothing was committed.
		c.log.Error("cannot record decision; payment stays undecided until recovery", "transaction_id", t.ID, "err", err)
		return nil
	}
	if final.Decision == DecisionCommit {
		c.metrics.payment("committed")
	} else {
		c.metrics.payment("aborted")
	}
	// The audit line and phase two do not depend on each other: they run
	// side by side, and the answer waits for both, so the line is on disk
	// before the client hears the outcome, as before.
	audited := make(chan struct{})
	go func() {
		defer close(audited)
		c.auditDecision(ctx, final)
	}()
	c.drivePhase2(ctx, final, pending(final), c.timing.Phase2Wait)
	<-audited
	return final
}

// pending is the participants of a payment just decided that phase two
// must reach: all but the excused ones. None has acknowledged yet unless
// another path decided first and drove phase two already, and sending the
// decision again to one that has is harmless (CommitTransaction is
// idempotent, and an acknowledgement is recorded once). Never nil, so
// sendPhase2 need not read the log for it.
func pending(t *Txn) []string {
	out := make([]string, 0, len(t.Participants))
	for _, b := range t.Participants {
		if !slices.Contains(t.Excused, b) {
			out = append(out, b)
		}
	}
	return out
}

func (c *Coordinator) prepare(ctx context.Context, txID, bank string, legs []Leg, expire time.Time) Vote {
	client, st := c.banks.Lookup(bank)
	if st == BankUnknown || client == nil {
		return Vote{Reason: gatewayv1.FailureReason_FAILURE_REASON_BANK_NOT_FOUND}
	}
	cctx, cancel := context.WithTimeout(ctx, c.timing.PrepareCall)
	defer cancel()
	v, err := client.Prepare(cctx, txID, legs, expire)
	if err != nil {
		c.log.Warn("prepare failed; aborting", "transaction_id", txID, "bank", bank, "err", err)
		return Vote{Reason: gatewayv1.FailureReason_FAILURE_REASON_BANK_UNAVAILABLE}
	}
	if !v.Yes && v.Reason == unspecified {
		v.Reason = gatewayv1.FailureReason_FAILURE_REASON_DECLINED_BY_BANK
	}
	if v.Reason == gatewayv1.FailureReason_FAILURE_REASON_TRANSACTION_ID_CONFLICT {
		c.logConflict(txID, bank, v.AccountID)
	}
	return v
}

// logConflict reports a bank that holds txID for a different transaction:
// the gateway's and the bank's records disagree and an operator must
// reconcile them. The payment is aborted; its client is told not to pay again
// with a new id.
func (c *Coordinator) logConflict(txID, bank, account string) {
	c.log.Error("TRANSACTION ID CONFLICT: a bank holds this id for a different transaction; aborted, needs an operator",
		"transaction_id", txID, "bank", bank, "account_id", account)
}

// decide writes the decision with compare-and-set and returns the row with the
// decision that stands. If that is ABORT, the banks in unrelated are never
// sent it: they voted TRANSACTION_ID_CONFLICT, so they recorded nothing for
// this payment, and the id they hold belongs to another transaction that an
// ABORT for the id would release.
func (c *Coordinator) decide(ctx context.Context, id string, d Decision, why Failure, unrelated ...string) (*Txn, error) {
	t, err := c.record(ctx, id, nil, d, why, unrelated...)
	if err != nil {
		return nil, err
	}
	c.auditDecision(ctx, t)
	return t, nil
}

// record is decide without the audit line, which the caller writes.
// claimed is the payment as the caller claimed it, if it did (see
// Store.DecideClaimed), or nil.
func (c *Coordinator) record(ctx context.Context, id string, claimed *Txn, d Decision, why Failure, unrelated ...string) (*Txn, error) {
	var t *Txn
	var err error
	if claimed != nil {
		t, err = c.store.DecideClaimed(ctx, claimed, d, why, time.Now(), unrelated...)
	} else {
		t, err = c.store.Decide(ctx, id, d, why, time.Now(), unrelated...)
	}
	if err != nil {
		return nil, err
	}
	if t.Decision != d {
		c.log.Warn("decision already taken by another path; obeying it", "transaction_id", id,
			"wanted", string(d), "standing", string(t.Decision))
	}
	c.log.Info("payment decided", "transaction_id", id, "decision", string(t.Decision), "reason", rpcerr.EnumReason(t.FailureReason),
		"amount", t.Amount, "currency", t.Currency)
	return t, nil
}

// auditDecision appends the payment's standing decision to the audit log.
func (c *Coordinator) auditDecision(ctx context.Context, t *Txn) {
	if c.audit == nil {
		return
	}
	attrs := []slog.Attr{slog.String("transaction_id", t.ID),
		slog.String("decision", string(t.Decision)), slog.String("reason", rpcerr.EnumReason(t.FailureReason)),
		slog.String("client_id", t.ClientID), slog.String("payer", t.Payer.String()),
		slog.String("payee", t.Payee.String()), slog.Int64("amount", t.Amount), slog.String("currency", t.Currency)}
	if t.RefundOf != "" {
		attrs = append(attrs, slog.String("refunded_transaction_id", t.RefundOf),
			slog.String("refund_reason", rpcerr.EnumReason(t.RefundReason)))
	}
	c.audit.Record(ctx, audit.EventPaymentDecided, attrs...)
}

// drivePhase2 sends the standing decision to the participants in banks (nil:
// every participant that has not acknowledged it, read from the log), and
// waits at most wait for their answers; whatever is left is re-driven by
// Run. It does not wait for the acknowledgements to be written: a
// crash before that write leaves the participants unacknowledged in the
// log, and the re-driver of the next start sends them the decision again,
// which they apply once (see "Acknowledgements" in docs/protocol.md).
func (c *Coordinator) drivePhase2(ctx context.Context, t *Txn, banks []string, wait time.Duration) {
	c.mu.Lock()
	if c.driving[t.ID] {
		c.mu.Unlock()
		return
	}
	c.driving[t.ID] = true
	c.mu.Unlock()
	finished := make(chan struct{})
	delivered := sync.OnceFunc(func() { close(finished) })
	if !c.background(func() {
		defer delivered()
		defer func() {
			c.mu.Lock()
			delete(c.driving, t.ID)
			c.mu.Unlock()
		}()
		c.sendPhase2(ctx, t, banks, delivered)
	}) {
		// Stopping: the decision is durable; the re-driver of the next
		// start sends it.
		c.mu.Lock()
		delete(c.driving, t.ID)
		c.mu.Unlock()
		return
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-finished:
	case <-timer.C:
	}
}

// sendPhase2 makes one attempt at every participant in banks (nil: every
// unacknowledged participant, read from the log), calls delivered once they
// all answered, then records the acknowledgements.
func (c *Coordinator) sendPhase2(ctx context.Context, t *Txn, banks []string, delivered func()) {
	defer c.metrics.observePhase(phaseTwo, time.Now())
	if banks == nil {
		var err error
		if banks, err = c.store.UnackedParticipants(ctx, t.ID); err != nil {
			c.log.Error("read participants", "transaction_id", t.ID, "err", err)
			return
		}
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		acked []string
	)
	for _, b := range banks {
		wg.Go(func() {
			client, st := c.banks.Lookup(b)
			switch {
			case client == nil || st == BankUnknown:
				c.log.Error("phase two: bank not registered; will retry", "transaction_id", t.ID, "bank", b)
				return
			case st == BankUnreachable:
				// Its health check fails: don't spend a call timeout per payment
				// on it; the re-driver delivers once it answers again.
				return
			}
			if acked, _ := c.commitAt(ctx, client, b, t); !acked {
				return
			}
			mu.Lock()
			acked = append(acked, b)
			mu.Unlock()
		})
	}
	wg.Wait()
	delivered()
	// One write for all acknowledgements: with the claim and the decision,
	// three gateway writes per payment, each shared with other payments'
	// by group commit. The client does not wait for this one.
	if err := c.store.AckParticipants(ctx, t.ID, acked); err != nil {
		c.log.Error("record acknowledgements", "transaction_id", t.ID, "banks", acked, "err", err)
	}
}

// commitAt sends t's decision to bank once, within Timing.CommitCall, and
// reports whether the bank acknowledged it, and whether it answered at all.
// A refusal is logged loudly (the bank broke its promise or lost data) and a
// missing answer as a warning; both are retried by the re-driver.
func (c *Coordinator) commitAt(ctx context.Context, client BankClient, bank string, t *Txn) (acked, answered bool) {
	cctx, cancel := context.WithTimeout(ctx, c.timing.CommitCall)
	defer cancel()
	err := client.Commit(cctx, t.ID, t.Decision == DecisionCommit)
	if err == nil {
		return true, true
	}
	if ref, ok := errors.AsType[*RefusalError](err); ok {
		// COMMIT refused for an unknown or aborted id: the bank broke
		// its promise or lost data. Loud, and retried.
		c.log.Error("PHASE TWO REFUSED BY BANK: ledger inconsistency, needs an operator",
			"transaction_id", t.ID, "bank", bank, "decision", string(t.Decision), "reason", ref.BankReason)
		return false, true
	}
	c.log.Warn("phase two not acknowledged; will retry", "transaction_id", t.ID, "bank", bank, "err", err)
	return false, false
}

// Recover decides ABORT for every payment left undecided by a previous
// process (presumed abort); Run then sends the aborts. Call it before serving.
//
// On a shared database (replicas) an undecided payment may belong to
// another replica that is running it now: it owns it until its lease ends
// (staleAt), which needs no renewal since the owner must decide by its
// deadline. Recover aborts only those whose lease has ended (their owner
// died or lost its database); the re-driver's stale-abort pass takes the
// others if their owner does not decide them in time. Either way the
// decision is a compare-and-set: if the owner decides at the same moment,
// one decision stands and both obey it.
func (c *Coordinator) Recover(ctx context.Context) error {
	ids, err := c.store.Undecided(ctx)
	if err != nil {
		return fmt.Errorf("recovery: %w", err)
	}
	aborted := 0
	for _, id := range ids {
		if c.store.Shared() {
			t, err := c.store.Get(ctx, id)
			if err != nil {
				return fmt.Errorf("recovery: read %s: %w", id, err)
			}
			if !c.staleAt(t, time.Now()) {
				continue // another replica's, in its lease
			}
		}
		if _, err := c.decide(ctx, id, DecisionAbort, expired); err != nil {
			return fmt.Errorf("recovery: abort %s: %w", id, err)
		}
		aborted++
	}
	if aborted > 0 {
		c.log.Warn("recovery aborted undecided payments", "count", aborted)
	}
	return nil
}

// Run re-drives phase two for decided payments with unacknowledged
// participants, and unanswered adjustments, until ctx ends. Each pass aborts
// stale undecided payments itself (that needs only the log) and hands each
// bank's share of the bank calls to a worker of its own: a bank whose worker
// of an earlier pass is still busy is left out of the pass, so one slow or
// hung bank never holds up the others (see "The re-driver" in
// docs/protocol.md). Run returns once every worker it started has ended.
func (c *Coordinator) Run(ctx context.Context) {
	var workers sync.WaitGroup
	defer workers.Wait()
	ticker := time.NewTicker(c.timing.Redrive)
	defer ticker.Stop()
	for {
		c.redrivePass(ctx, &workers)
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		case <-c.wake:
		}
	}
}

// redriveOnce makes one pass of the re-driver and waits for its workers: ABORT
// for stale undecided payments, phase two for decided payments not yet
// acknowledged, and the bank call of unanswered adjustments. A step that
// cannot read the log is logged and the others still run; everything left is
// retried on the next pass.
func (c *Coordinator) redriveOnce(ctx context.Context) {
	var workers sync.WaitGroup
	c.redrivePass(ctx, &workers)
	workers.Wait()
}

// bankWork is one bank's share of a re-driver pass, oldest first.
type bankWork struct {
	phase2 []*Txn   // decided payments this bank has not acknowledged
	adjust []string // ids of unanswered adjustments at this bank
}

// redrivePass aborts stale payments, lists the pass's bank calls by bank, and
// starts a worker (counted in workers) for every bank that has work and no
// worker still running from an earlier pass.
//
// Ordering kept: a payment is listed for phase two only once its decision
// is durable (its row says so); an adjustment is retried only while its row
// is processing, under its in-flight slot, and the bank applies it once by
// id whoever asks.
func (c *Coordinator) redrivePass(ctx context.Context, workers *sync.WaitGroup) {
	c.abortStale(ctx)
	work := map[string]*bankWork{}
	of := func(bank string) *bankWork {
		w := work[bank]
		if w == nil {
			w = &bankWork{}
			work[bank] = w
		}
		return w
	}
	c.mu.Lock()
	busy := maps.Clone(c.redriving)
	c.mu.Unlock()
	c.listPhase2(ctx, busy, of)
	c.listAdjustments(ctx, busy, of)
	for bank, w := range work {
		c.mu.Lock()
		if c.redriving[bank] {
			c.mu.Unlock()
			continue
		}
		c.redriving[bank] = true
		c.mu.Unlock()
		workers.Go(func() {
			defer func() {
				c.mu.Lock()
				delete(c.redriving, bank)
				c.mu.Unlock()
			}()
			c.redriveBank(ctx, bank, w)
		})
	}
}

// loopError logs a store error of the re-driver, unless ctx ended (the
// process is stopping, and the error is that).
func (c *Coordinator) loopError(ctx context.Context, msg string, args ...any) {
	if ctx.Err() == nil {
		c.log.Error(msg, args...)
	}
}

// listPhase2 adds to each bank's work the decided payments it has not
// acknowledged, skipping banks in busy and payments being driven in-process.
// Each payment is read once, whatever the number of its banks.
func (c *Coordinator) listPhase2(ctx context.Context, busy map[string]bool, of func(string) *bankWork) {
	items, err := c.store.unackedWork(ctx)
	if err != nil {
		c.loopError(ctx, "re-driver: cannot list payments awaiting phase two; retrying next pass", "err", err)
		return
	}
	read := map[string]*Txn{}
	for _, it := range items {
		if busy[it.Bank] {
			continue
		}
		t, seen := read[it.ID]
		if !seen {
			read[it.ID] = nil
			if c.drivingNow(it.ID) {
				continue
			}
			if t, err = c.store.Get(ctx, it.ID); err != nil {
				c.loopError(ctx, "re-driver: cannot read a decided payment; phase two not sent, retrying next pass",
					"transaction_id", it.ID, "err", err)
				continue
			}
			read[it.ID] = t
		}
		if t != nil {
			of(it.Bank).phase2 = append(of(it.Bank).phase2, t)
		}
	}
}

// drivingNow reports whether phase two of id is being driven in-process (by
// its payment's own run, or a request holds its in-flight slot).
func (c *Coordinator) drivingNow(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.driving[id] || c.inflight[id] != nil
}

// listAdjustments adds to each bank's work its unanswered adjustments,
// skipping banks in busy.
func (c *Coordinator) listAdjustments(ctx context.Context, busy map[string]bool, of func(string) *bankWork) {
	items, err := c.store.pendingAdjustmentWork(ctx)
	if err != nil {
		c.loopError(ctx, "re-driver: cannot list unanswered adjustments; retrying next pass", "err", err)
		return
	}
	for _, it := range items {
		if !busy[it.Bank] {
			of(it.Bank).adjust = append(of(it.Bank).adjust, it.ID)
		}
	}
}

// redriveBank makes one pass over one bank's work: phase two first, then
// adjustments, one call at a time. A bank known to be unreachable (its health
// check fails) is not called at all; the first call it does not answer ends
// its pass, so a hung bank costs its own worker one call timeout per pass,
// not one per item, and nobody else anything. The rest waits for the next
// pass.
func (c *Coordinator) redriveBank(ctx context.Context, bank string, w *bankWork) {
	client, st := c.banks.Lookup(bank)
	switch {
	case client == nil || st == BankUnknown:
		for _, t := range w.phase2 {
			c.log.Error("phase two: bank not registered; will retry", "transaction_id", t.ID, "bank", bank)
		}
		return
	case st == BankUnreachable:
		return
	}
	for _, t := range w.phase2 {
		if ctx.Err() != nil || c.drivingNow(t.ID) {
			continue
		}
		acked, answered := c.commitAt(ctx, client, bank, t)
		if !answered {
			return
		}
		if !acked {
			continue
		}
		if err := c.store.AckParticipants(ctx, t.ID, []string{bank}); err != nil {
			c.loopError(ctx, "record acknowledgements", "transaction_id", t.ID, "banks", []string{bank}, "err", err)
		}
	}
	for _, id := range w.adjust {
		if ctx.Err() != nil {
			return
		}
		if !c.redriveAdjustment(ctx, id) {
			return
		}
	}
}

// redriveAdjustment retries the bank call of one unanswered adjustment under
// its in-flight slot. It reports false if the bank gave no definitive answer.
func (c *Coordinator) redriveAdjustment(ctx context.Context, id string) bool {
	release, busy := c.acquire(id)
	if busy != nil {
		return true // a request is calling the bank for it right now
	}
	defer release()
	t, err := c.store.Get(ctx, id)
	switch {
	case err != nil:
		c.loopError(ctx, "re-driver: cannot read an unanswered adjustment; bank not asked, retrying next pass",
			"transaction_id", id, "err", err)
		return true
	case t.Status != StatusProcessing:
		return true
	}
	_, err = c.applyAdjustment(ctx, t)
	return !errors.Is(err, errNoAnswer)
}

// abortStale decides ABORT for payments still undecided past their decision
// deadline with nobody working on them (their decision write failed). A
// bank that voted YES would otherwise hold the funds until its resolver
// asked, and the client would hear "in progress" until a restart.
func (c *Coordinator) abortStale(ctx context.Context) {
	ids, err := c.store.Undecided(ctx)
	if err != nil {
		c.loopError(ctx, "re-driver: cannot list undecided payments; stale ones not aborted, retrying next pass", "err", err)
		return
	}
	now := time.Now()
	for _, id := range ids {
		release, busy := c.acquire(id)
		if busy != nil {
			continue
		}
		t, err := c.store.Get(ctx, id)
		switch {
		case err != nil:
			c.loopError(ctx, "re-driver: cannot read an undecided payment; not aborted, retrying next pass",
				"transaction_id", id, "err", err)
		case t.Decision == DecisionNone && c.staleAt(t, now):
			if _, err := c.decide(ctx, id, DecisionAbort, expired); err != nil {
				c.loopError(ctx, "re-driver: abort stale payment", "transaction_id", id, "err", err)
			}
		}
		release()
	}
}

// staleAt reports whether the undecided payment t may be aborted at now by
// anyone but the request running it: once its prepare deadline has passed,
// or, on a log shared with other replicas, once the banks' holds of it have
// expired too (the deadline plus ExpireGrace). The owner of a payment on
// another replica records a bank's TRANSACTION_ID_CONFLICT vote (the bank
// excused) just after the vote, which can be a moment past the deadline
// (or past it by this replica's clock, if the clocks disagree); an ABORT
// taken before that record would be sent to the excused bank and release
// the holds of the other transaction it holds the id for. The grace gives
// the owner its 20 s to write it, and is the time after which the banks
// ask for an outcome themselves anyway.
func (c *Coordinator) staleAt(t *Txn, now time.Time) bool {
	deadline := t.PrepareDeadline
	if c.store.Shared() {
		deadline = deadline.Add(c.timing.ExpireGrace)
	}
	return now.After(deadline)
}

// expired is the failure of a payment aborted because no decision was taken
// in time (by recovery, the stale-abort pass or a bank's outcome query).
var expired = Failure{Reason: gatewayv1.FailureReason_FAILURE_REASON_EXPIRED}

// Outcome answers a bank's GetTransactionOutcome: the standing decision, or,
// if none was taken yet, a durable ABORT taken now.
func (c *Coordinator) Outcome(ctx context.Context, bank, id string) (Decision, error) {
	t, err := c.store.Get(ctx, id)
	if errors.Is(err, errNotFound) {
		// Never claimed here, so never committed: presumed abort.
		return DecisionAbort, nil
	}
	if err != nil {
		return DecisionNone, err
	}
	isParticipant := false
	for _, p := range t.Participants {
		isParticipant = isParticipant || p == bank
	}
	if !isParticipant {
		return DecisionNone, ErrNotParticipant
	}
	if slices.Contains(t.Excused, bank) {
		// What bank holds under id is not this payment: presumed abort
		// does not apply to a transaction the gateway has no record of
		// but may have decided before losing it.
		c.log.Error("TRANSACTION ID CONFLICT: a bank asked the outcome of an id it holds for a different transaction; not answered, its funds stay held until an operator reconciles the id",
			"transaction_id", id, "bank", bank)
		return DecisionNone, ErrExcusedParticipant
	}
	if t.Decision != DecisionNone {
		return t.Decision, nil
	}
	if c.store.Shared() && !c.staleAt(t, time.Now()) {
		// Another replica may own it still (a bank whose clock runs
		// ahead asks early): the bank asks again later, as after any
		// answer it did not get.
		return DecisionNone, ErrInProgress
	}
	t, err = c.decide(ctx, id, DecisionAbort, expired)
	if err != nil {
		return DecisionNone, err
	}
	return t.Decision, nil
}
