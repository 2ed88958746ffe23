package gateway

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/remitpay/remit/internal/store/storetest"

	"github.com/google/uuid"

	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
	"github.com/remitpay/remit/internal/logging/logtest"
	"github.com/remitpay/remit/internal/store"
)

// fakeBank is an in-memory participant for coordinator unit tests. The real
// bank over TLS is exercised by the integration tests in this package.
type fakeBank struct {
	mu        sync.Mutex
	updates   map[string]int
	update    func(txID string) (Balance, error)
	balance   func() (Balance, error) // GetBalance's answer; nil: an error
	prepares  map[string]int
	decisions map[string][]bool
	vote      func(txID string, legs []Leg) (Vote, error)
	commitErr func(txID string) error
	block     chan struct{} // when non-nil, Prepare blocks until ctx ends
}

func newFakeBank() *fakeBank {
	return &fakeBank{prepares: map[string]int{}, decisions: map[string][]bool{}, updates: map[string]int{}}
}

func (b *fakeBank) Prepare(ctx context.Context, txID string, legs []Leg, _ time.Time) (Vote, error) {
	b.mu.Lock()
	b.prepares[txID]++
	vote, block := b.vote, b.block
	b.mu.Unlock()
	if block != nil {
		<-ctx.Done()
		return Vote{}, ctx.Err()
	}
	if vote != nil {
		return vote(txID, legs)
	}
	return Vote{Yes: true}, nil
}

func (b *fakeBank) Commit(_ context.Context, txID string, commit bool) error {
	b.mu.Lock()
	f := b.commitErr
	b.mu.Unlock()
	if f != nil {
		if err := f(txID); err != nil {
			return err
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.decisions[txID] = append(b.decisions[txID], commit)
	return nil
}

func (b *fakeBank) UpdateBalance(_ context.Context, txID string, _ Leg) (Balance, error) {
	b.mu.Lock()
	b.updates[txID]++
	f := b.update
	b.mu.Unlock()
	if f != nil {
		return f(txID)
	}
	return Balance{Balance: 500, Currency: "usd"}, nil
}
func (b *fakeBank) GetBalance(context.Context, string) (Balance, error) {
	b.mu.Lock()
	f := b.balance
	b.mu.Unlock()
	if f != nil {
		return f()
	}
	return Balance{}, errors.New("not used")
}

func (b *fakeBank) counts(txID string) (prepares int, decisions []bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.prepares[txID], append([]bool(nil), b.decisions[txID]...)
}

type fakeBanks struct {
	mu     sync.Mutex
	banks  map[string]*fakeBank
	states map[string]BankState
}

func (f *fakeBanks) Lookup(name string) (BankClient, BankState) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, ok := f.banks[name]
	if !ok {
		return nil, BankUnknown
	}
	if st, ok := f.states[name]; ok {
		return b, st
	}
	return b, BankServing
}

var testTiming = Timing{
	PrepareCall: 300 * time.Millisecond,
	Decision:    2 * time.Second,
	ExpireGrace: time.Second,
	CommitCall:  300 * time.Millisecond,
	Phase2Wait:  time.Second,
	Redrive:     20 * time.Millisecond,
}

type harness struct {
	store *Store
	path  string
	a, b  *fakeBank
	banks *fakeBanks
	coord *Coordinator
}

// newHarness builds a coordinator over a fresh store and two fake banks. Call
// it inside the test's synctest bubble: the store's goroutines and every
// timer of the coordinator then run on the bubble's fake clock, so deadlines
// and re-drive periods are exact and take no real time.
func newHarness(t *testing.T) *harness {
	t.Helper()
	path := storetest.Target(t, t.TempDir(), "gateway")
	st, err := OpenStore(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Error(err)
		}
	})
	h := &harness{store: st, path: path, a: newFakeBank(), b: newFakeBank()}
	h.banks = &fakeBanks{banks: map[string]*fakeBank{"bank-a": h.a, "bank-b": h.b}, states: map[string]BankState{}}
	h.coord = NewCoordinator(st, h.banks, slog.New(slog.DiscardHandler), testTiming)
	return h
}

func payment(id string) PaymentRequest {
	return PaymentRequest{TxID: id, ClientID: "alice", Payer: Account{"bank-a", "alice"}, Payee: Account{"bank-b", "bob"},
		Amount: 1250, Currency: "usd", Description: "lunch"}
}

// runCoordinator runs c's re-driver until the test ends, and waits for it to
// stop before the store closes.
func runCoordinator(t *testing.T, c *Coordinator) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

func TestPayAllYesCommitsEverywhere(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		id := uuid.NewString()
		got, err := h.coord.Pay(t.Context(), payment(id))
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != StatusSucceeded || got.Decision != DecisionCommit {
			t.Fatalf("status %s decision %s, want succeeded/commit", got.Status, got.Decision)
		}
		for name, b := range map[string]*fakeBank{"bank-a": h.a, "bank-b": h.b} {
			p, d := b.counts(id)
			if p != 1 || len(d) != 1 || !d[0] {
				t.Errorf("%s: prepares %d decisions %v, want 1 prepare and one COMMIT", name, p, d)
			}
		}
		synctest.Wait() // Pay returns before the acknowledgements are written
		un, _ := h.store.UnackedParticipants(t.Context(), id)
		if len(un) != 0 {
			t.Errorf("unacknowledged participants %v after a clean commit", un)
		}
	})
}

func TestPayOneNoAbortsEverywhere(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		h.a.vote = func(string, []Leg) (Vote, error) {
			return Vote{Reason: gatewayv1.FailureReason_FAILURE_REASON_INSUFFICIENT_FUNDS}, nil
		}
		id := uuid.NewString()
		got, err := h.coord.Pay(t.Context(), payment(id))
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != StatusFailed || got.FailureReason != gatewayv1.FailureReason_FAILURE_REASON_INSUFFICIENT_FUNDS {
			t.Fatalf("got %s/%s, want failed/INSUFFICIENT_FUNDS", got.Status, got.FailureReason)
		}
		for _, b := range []*fakeBank{h.a, h.b} {
			if _, d := b.counts(id); len(d) != 1 || d[0] {
				t.Errorf("decisions %v, want one ABORT", d)
			}
		}
	})
}

// TestPayPrepareTimeoutAborts: a bank that never answers prepare costs the
// payment exactly one PrepareCall, then it is aborted everywhere.
func TestPayPrepareTimeoutAborts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		h.b.block = make(chan struct{})
		id := uuid.NewString()
		start := time.Now()
		got, err := h.coord.Pay(t.Context(), payment(id))
		if err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d != testTiming.PrepareCall {
			t.Errorf("the payment took %v, want exactly the prepare-call timeout %v", d, testTiming.PrepareCall)
		}
		if got.Status != StatusFailed || got.FailureReason != gatewayv1.FailureReason_FAILURE_REASON_BANK_UNAVAILABLE {
			t.Fatalf("got %s/%s, want failed/BANK_UNAVAILABLE", got.Status, got.FailureReason)
		}
		if _, d := h.a.counts(id); len(d) != 1 || d[0] {
			t.Errorf("the bank that voted YES got %v, want one ABORT", d)
		}
	})
}

// TestYesAfterTheDecisionDeadlineAborts: a YES that arrives once the decision
// deadline has passed does not count; the payment is aborted as EXPIRED.
func TestYesAfterTheDecisionDeadlineAborts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		h.b.vote = func(string, []Leg) (Vote, error) {
			// A bank that ignores the call's deadline and answers late.
			time.Sleep(testTiming.Decision)
			return Vote{Yes: true}, nil
		}
		id := uuid.NewString()
		got, err := h.coord.Pay(t.Context(), payment(id))
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != StatusFailed || got.Decision != DecisionAbort || got.FailureReason != gatewayv1.FailureReason_FAILURE_REASON_EXPIRED {
			t.Fatalf("got %s/%s/%s, want failed/abort/EXPIRED", got.Status, got.Decision, got.FailureReason)
		}
		for _, b := range []*fakeBank{h.a, h.b} {
			if _, d := b.counts(id); len(d) != 1 || d[0] {
				t.Errorf("decisions %v, want one ABORT", d)
			}
		}
	})
}

func TestPhaseTwoIsRedrivenUntilAcknowledged(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		var down atomic.Bool
		var attempts atomic.Int32
		down.Store(true)
		h.b.commitErr = func(string) error {
			attempts.Add(1)
			if down.Load() {
				return errors.New("connection refused")
			}
			return nil
		}
		id := uuid.NewString()
		got, err := h.coord.Pay(t.Context(), payment(id))
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != StatusSucceeded {
			t.Fatalf("status %s, want succeeded: the decision is the commit point", got.Status)
		}
		synctest.Wait() // Pay returns before the acknowledgements are written
		un, _ := h.store.UnackedParticipants(t.Context(), id)
		if len(un) != 1 || un[0] != "bank-b" {
			t.Fatalf("unacknowledged = %v, want [bank-b]", un)
		}
		// While the bank is down the re-driver tries once a period: one
		// attempt at start, then one per tick.
		attempts.Store(0)
		runCoordinator(t, h.coord)
		time.Sleep(5*testTiming.Redrive - time.Millisecond)
		synctest.Wait()
		if n := attempts.Load(); n != 5 {
			t.Errorf("%d phase-two attempts in 5 re-drive periods, want 5", n)
		}
		if un, _ := h.store.UnackedParticipants(t.Context(), id); len(un) != 1 {
			t.Fatalf("unacknowledged = %v while the bank is down, want [bank-b]", un)
		}
		// Once it is back, the next pass delivers.
		down.Store(false)
		time.Sleep(testTiming.Redrive)
		synctest.Wait()
		if un, _ := h.store.UnackedParticipants(t.Context(), id); len(un) != 0 {
			t.Fatalf("unacknowledged = %v one re-drive period after the bank came back", un)
		}
		if _, d := h.b.counts(id); len(d) != 1 || !d[0] {
			t.Fatalf("bank-b decisions %v, want exactly one COMMIT once it came back", d)
		}
		// Acknowledged: no more calls.
		n := attempts.Load()
		time.Sleep(10 * testTiming.Redrive)
		synctest.Wait()
		if extra := attempts.Load() - n; extra != 0 {
			t.Errorf("%d phase-two calls after the acknowledgement, want none", extra)
		}
	})
}

// claimedTxn is the claim of payment(id) as a previous process wrote it:
// undecided, with the prepare deadline the given time from now.
func claimedTxn(id string, deadline time.Duration) *Txn {
	now := time.Now()
	return &Txn{ID: id, Kind: KindPayment, ClientID: "alice", Fingerprint: payment(id).fingerprint(),
		Payer: Account{"bank-a", "alice"}, Payee: Account{"bank-b", "bob"}, Amount: 1250, Currency: "usd",
		Status: StatusProcessing, CreateTime: now, PrepareDeadline: now.Add(deadline), Participants: []string{"bank-a", "bank-b"}}
}

func TestRestartBeforeDecisionAborts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		id := uuid.NewString()
		// A previous process claimed the id and prepared, then died undecided.
		tx := claimedTxn(id, time.Second)
		if _, ok, err := h.store.Claim(t.Context(), tx); err != nil || !ok {
			t.Fatal(ok, err)
		}
		fresh := NewCoordinator(h.store, h.banks, h.coord.log, testTiming)
		if err := fresh.Recover(t.Context()); err != nil {
			t.Fatal(err)
		}
		got, _ := h.store.Get(t.Context(), id)
		if got.Decision != DecisionAbort || got.Status != StatusFailed {
			t.Fatalf("after recovery: %s/%s, want abort/failed", got.Decision, got.Status)
		}
		runCoordinator(t, fresh)
		synctest.Wait()
		for name, b := range map[string]*fakeBank{"bank-a": h.a, "bank-b": h.b} {
			if _, d := b.counts(id); len(d) != 1 || d[0] {
				t.Fatalf("%s decisions %v after the re-driver's first pass, want one ABORT", name, d)
			}
		}
		// A retry by the client now returns the stored failure, not a new attempt.
		again, err := fresh.Pay(t.Context(), payment(id))
		if err != nil || again.Status != StatusFailed {
			t.Fatalf("retry after recovery: %v %v", again, err)
		}
		if p, _ := h.a.counts(id); p != 0 {
			t.Fatalf("retry prepared again (%d prepares)", p)
		}
	})
}

func TestRestartAfterCommitDecisionRedrivesCommit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		h.a.commitErr = func(string) error { return errors.New("down") }
		h.b.commitErr = h.a.commitErr
		id := uuid.NewString()
		if got, err := h.coord.Pay(t.Context(), payment(id)); err != nil || got.Decision != DecisionCommit {
			t.Fatal(got, err)
		}
		// "Restart": a new coordinator over a reopened store.
		if err := h.store.Close(); err != nil {
			t.Fatal(err)
		}
		st, err := OpenStore(t.Context(), h.path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := st.Close(); err != nil {
				t.Error(err)
			}
		})
		h.a.commitErr, h.b.commitErr = nil, nil
		fresh := NewCoordinator(st, h.banks, h.coord.log, testTiming)
		if err := fresh.Recover(t.Context()); err != nil {
			t.Fatal(err)
		}
		runCoordinator(t, fresh)
		synctest.Wait()
		if un, _ := st.UnackedParticipants(t.Context(), id); len(un) != 0 {
			t.Fatalf("unacknowledged %v after the re-driver's first pass", un)
		}
		for _, b := range []*fakeBank{h.a, h.b} {
			if _, d := b.counts(id); len(d) != 1 || !d[0] {
				t.Fatalf("decisions %v, want one COMMIT after restart", d)
			}
		}
	})
}

func TestOutcomeQueryAbortsUndecidedAndPaymentObeys(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		id := uuid.NewString()
		release := make(chan struct{})
		h.a.vote = func(string, []Leg) (Vote, error) {
			// While phase one is running, bank-b's resolver asks for the outcome.
			d, err := h.coord.Outcome(context.Background(), "bank-b", id)
			if err != nil || d != DecisionAbort {
				t.Errorf("outcome of undecided = %v %v, want ABORT", d, err)
			}
			close(release)
			return Vote{Yes: true}, nil
		}
		got, err := h.coord.Pay(t.Context(), payment(id))
		if err != nil {
			t.Fatal(err)
		}
		<-release
		if got.Decision != DecisionAbort || got.Status != StatusFailed {
			t.Fatalf("payment ended %s/%s after the gateway told a bank ABORT; it must obey", got.Decision, got.Status)
		}
		for _, b := range []*fakeBank{h.a, h.b} {
			if _, d := b.counts(id); len(d) != 1 || d[0] {
				t.Fatalf("decisions %v, want one ABORT", d)
			}
		}
		if _, err := h.coord.Outcome(t.Context(), "bank-c", id); !errors.Is(err, ErrNotParticipant) {
			t.Fatalf("a non-participant asked and got %v, want ErrNotParticipant", err)
		}
		if d, err := h.coord.Outcome(t.Context(), "bank-a", uuid.NewString()); err != nil || d != DecisionAbort {
			t.Fatalf("unknown id: %v %v, want presumed abort", d, err)
		}
	})
}

func TestConcurrentDuplicatesPrepareOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		ids := []string{uuid.NewString(), uuid.NewString(), uuid.NewString()}
		var wg sync.WaitGroup
		results := make(chan *Txn, 300)
		for i := range 300 {
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
				defer cancel()
				got, err := h.coord.Pay(ctx, payment(ids[i%len(ids)]))
				if err != nil {
					t.Errorf("duplicate %d: %v", i, err)
					return
				}
				results <- got
			})
		}
		wg.Wait()
		close(results)
		for got := range results {
			if got.Status != StatusSucceeded {
				t.Fatalf("a duplicate saw %s", got.Status)
			}
		}
		for _, id := range ids {
			for _, b := range []*fakeBank{h.a, h.b} {
				if p, d := b.counts(id); p != 1 || len(d) != 1 {
					t.Fatalf("%s: %d prepares, %d decisions; want exactly 1 each", id, p, len(d))
				}
			}
		}
	})
}

func TestIdempotencyConflictsAndUnavailable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		ctx := t.Context()
		id := uuid.NewString()
		if _, err := h.coord.Pay(ctx, payment(id)); err != nil {
			t.Fatal(err)
		}
		changed := payment(id)
		changed.Amount++
		if _, err := h.coord.Pay(ctx, changed); !errors.Is(err, ErrIdempotencyKeyReused) {
			t.Fatalf("different amount: %v, want ErrIdempotencyKeyReused", err)
		}
		other := payment(id)
		other.ClientID = "mallory"
		if _, err := h.coord.Pay(ctx, other); !errors.Is(err, ErrIdempotencyKeyReused) {
			t.Fatalf("other client: %v, want ErrIdempotencyKeyReused", err)
		}

		h.banks.states["bank-b"] = BankUnreachable
		id2 := uuid.NewString()
		if _, err := h.coord.Pay(ctx, payment(id2)); !errors.Is(err, ErrBankUnavailable) {
			t.Fatalf("known-down bank: %v, want ErrBankUnavailable", err)
		}
		if _, err := h.store.Get(ctx, id2); !errors.Is(err, errNotFound) {
			t.Fatalf("a refused-unavailable payment was recorded: %v", err)
		}
		delete(h.banks.states, "bank-b")
		if got, err := h.coord.Pay(ctx, payment(id2)); err != nil || got.Status != StatusSucceeded {
			t.Fatalf("retry of the same id once the bank is back: %v %v", got, err)
		}

		same := payment(uuid.NewString())
		same.Payee = same.Payer
		got, err := h.coord.Pay(ctx, same)
		if err != nil || got.Status != StatusFailed || got.FailureReason != gatewayv1.FailureReason_FAILURE_REASON_SAME_ACCOUNT {
			t.Fatalf("same account: %+v %v", got, err)
		}
		unknown := payment(uuid.NewString())
		unknown.Payee.Bank = "bank-z"
		got, err = h.coord.Pay(ctx, unknown)
		if err != nil || got.Status != StatusFailed || got.FailureReason != gatewayv1.FailureReason_FAILURE_REASON_BANK_NOT_FOUND {
			t.Fatalf("unknown bank: %+v %v", got, err)
		}
	})
}

func TestSameBankPaymentIsOnePrepareWithTwoLegs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		var legs []Leg
		h.a.vote = func(_ string, l []Leg) (Vote, error) { legs = l; return Vote{Yes: true}, nil }
		req := payment(uuid.NewString())
		req.Payee = Account{"bank-a", "dave"}
		got, err := h.coord.Pay(t.Context(), req)
		if err != nil || got.Status != StatusSucceeded {
			t.Fatal(got, err)
		}
		if len(legs) != 2 || !legs[0].Debit || legs[1].Debit || legs[0].AccountID != "alice" || legs[1].AccountID != "dave" {
			t.Fatalf("legs %+v, want debit alice and credit dave", legs)
		}
		if p, _ := h.b.counts(req.TxID); p != 0 {
			t.Fatal("bank-b was asked about a bank-a internal payment")
		}
	})
}

func TestConcurrentAdjustmentsCallTheBankOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		release := make(chan struct{})
		h.a.update = func(string) (Balance, error) {
			<-release // hold the first call at the bank while duplicates arrive
			return Balance{Balance: 500, Currency: "usd"}, nil
		}
		req := AdjustRequest{TxID: uuid.NewString(), ClientID: "admin", Account: Account{"bank-a", "alice"}, Amount: 5, Currency: "usd"}
		var wg sync.WaitGroup
		results := make(chan *Txn, 50)
		for range 50 {
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
				defer cancel()
				got, err := h.coord.Adjust(ctx, req)
				if err != nil {
					t.Errorf("duplicate: %v", err)
					return
				}
				results <- got
			})
		}
		// Every duplicate has arrived and waits: the bank was called once.
		synctest.Wait()
		h.a.mu.Lock()
		n := h.a.updates[req.TxID]
		h.a.mu.Unlock()
		if n != 1 {
			t.Fatalf("the bank was called %d times while 50 duplicates waited, want 1", n)
		}
		close(release)
		wg.Wait()
		close(results)
		for got := range results {
			if got.Status != StatusSucceeded || got.ResultBalance != 500 {
				t.Fatalf("a duplicate saw %+v", got)
			}
		}
		h.a.mu.Lock()
		defer h.a.mu.Unlock()
		if n := h.a.updates[req.TxID]; n != 1 {
			t.Fatalf("the bank was called %d times for one adjustment, want 1", n)
		}
	})
}

func TestUnansweredAdjustmentIsInProgressNotUnavailable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		h.a.update = func(string) (Balance, error) { return Balance{}, errors.New("connection reset") }
		req := AdjustRequest{TxID: uuid.NewString(), ClientID: "admin", Account: Account{"bank-a", "alice"}, Amount: 5, Currency: "usd"}
		if _, err := h.coord.Adjust(t.Context(), req); !errors.Is(err, ErrInProgress) {
			t.Fatalf("unanswered adjustment: %v, want ErrInProgress (recorded; retry with the same id)", err)
		}
		h.a.update = nil
		got, err := h.coord.Adjust(t.Context(), req)
		if err != nil || got.Status != StatusSucceeded {
			t.Fatalf("retry with the same id: %+v %v", got, err)
		}
	})
}

// TestStaleUndecidedPaymentIsAbortedByTheRedriver: a payment whose decision
// could not be written is left alone until its decision deadline, then
// aborted by the re-driver's next pass.
func TestStaleUndecidedPaymentIsAbortedByTheRedriver(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		id := uuid.NewString()
		tx := claimedTxn(id, testTiming.Decision)
		if _, ok, err := h.store.Claim(t.Context(), tx); err != nil || !ok {
			t.Fatal(ok, err)
		}
		if _, err := h.coord.Pay(t.Context(), payment(id)); !errors.Is(err, ErrInProgress) {
			t.Fatalf("undecided payment nobody works on: %v, want ErrInProgress", err)
		}
		runCoordinator(t, h.coord)
		decision := func() Decision {
			got, err := h.store.Get(t.Context(), id)
			if err != nil {
				t.Fatal(err)
			}
			return got.Decision
		}
		// Until its deadline it may still be decided by its own run: untouched.
		time.Sleep(testTiming.Decision - testTiming.Redrive/2)
		synctest.Wait()
		if d := decision(); d != DecisionNone {
			t.Fatalf("decision %q before the deadline, want none", d)
		}
		// The first pass after the deadline aborts it.
		time.Sleep(2 * testTiming.Redrive)
		synctest.Wait()
		if d := decision(); d != DecisionAbort {
			t.Fatalf("decision %q one re-drive period after the deadline, want abort", d)
		}
		got, err := h.coord.Pay(t.Context(), payment(id))
		if err != nil || got.Status != StatusFailed || got.FailureReason != gatewayv1.FailureReason_FAILURE_REASON_EXPIRED {
			t.Fatalf("after the re-driver: %+v %v, want FAILED EXPIRED", got, err)
		}
		// The next pass sends the ABORT.
		time.Sleep(testTiming.Redrive)
		synctest.Wait()
		for _, b := range []*fakeBank{h.a, h.b} {
			if _, d := b.counts(id); len(d) != 1 || d[0] {
				t.Fatalf("decisions %v after the stale abort, want one ABORT", d)
			}
		}
	})
}

// wantError fails unless exactly one ERROR record with message msg was
// logged, carrying err and, if id is not empty, transaction_id.
func wantError(t *testing.T, l *logtest.Buffer, msg, id string) {
	t.Helper()
	rs := l.WithMsg(t, msg)
	if len(rs) != 1 {
		t.Errorf("%d records %q, want 1", len(rs), msg)
		return
	}
	r := rs[0]
	if r["level"] != "ERROR" {
		t.Errorf("%q logged at %v, want ERROR", msg, r["level"])
	}
	if e, _ := r["err"].(string); e == "" {
		t.Errorf("%q logged without the error: %v", msg, r)
	}
	if id != "" && r["transaction_id"] != id {
		t.Errorf("%q logged transaction_id %v, want %s", msg, r["transaction_id"], id)
	}
}

// TestRedriverLogsStoreErrors: the loop that guarantees phase two never
// drops a store error silently, neither when it cannot list its work nor
// when it cannot read one transaction.
func TestRedriverLogsStoreErrors(t *testing.T) {
	t.Run("list", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			h := newHarness(t)
			logs := &logtest.Buffer{}
			h.coord.log = slog.New(slog.NewJSONHandler(logs, nil))
			if err := h.store.Close(); err != nil {
				t.Fatal(err)
			}
			h.coord.redriveOnce(t.Context())
			l := logs
			wantError(t, l, "re-driver: cannot list payments awaiting phase two; retrying next pass", "")
			wantError(t, l, "re-driver: cannot list undecided payments; stale ones not aborted, retrying next pass", "")
			wantError(t, l, "re-driver: cannot list unanswered adjustments; retrying next pass", "")
		})
	})
	t.Run("read", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			h := newHarness(t)
			ctx := t.Context()
			// A decided payment bank-b has not acknowledged.
			h.b.commitErr = func(string) error { return errors.New("connection refused") }
			decided := uuid.NewString()
			if got, err := h.coord.Pay(ctx, payment(decided)); err != nil || got.Decision != DecisionCommit {
				t.Fatal(got, err)
			}
			// A stale undecided payment.
			stale := uuid.NewString()
			past := time.Now().Add(-time.Minute)
			if _, ok, err := h.store.Claim(ctx, &Txn{ID: stale, Kind: KindPayment, ClientID: "alice", Fingerprint: "x",
				Payer: Account{"bank-a", "alice"}, Payee: Account{"bank-b", "bob"}, Amount: 1, Currency: "usd",
				Status: StatusProcessing, CreateTime: past, PrepareDeadline: past, Participants: []string{"bank-a", "bank-b"}}); err != nil || !ok {
				t.Fatal(ok, err)
			}
			// An adjustment the bank has not answered.
			h.a.update = func(string) (Balance, error) { return Balance{}, errors.New("connection reset") }
			adj := uuid.NewString()
			if _, err := h.coord.Adjust(ctx, AdjustRequest{TxID: adj, ClientID: "admin", Account: Account{"bank-a", "alice"}, Amount: 5, Currency: "usd"}); !errors.Is(err, ErrInProgress) {
				t.Fatal(err)
			}
			// Every row becomes unreadable; the lists still work.
			if _, err := h.store.db.ExecContext(ctx, dialectSQL(h.store.db, `UPDATE transactions SET create_time = 'unreadable'`,
				`ALTER TABLE transactions ALTER COLUMN create_time TYPE TEXT USING 'unreadable'`)); err != nil {
				t.Fatal(err)
			}
			logs := &logtest.Buffer{}
			h.coord.log = slog.New(slog.NewJSONHandler(logs, nil))
			h.coord.redriveOnce(ctx)
			wantError(t, logs, "re-driver: cannot read a decided payment; phase two not sent, retrying next pass", decided)
			wantError(t, logs, "re-driver: cannot read an undecided payment; not aborted, retrying next pass", stale)
			wantError(t, logs, "re-driver: cannot read an unanswered adjustment; bank not asked, retrying next pass", adj)
		})
	})
	t.Run("stopping", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			// A store error caused by the process stopping is not news.
			h := newHarness(t)
			logs := &logtest.Buffer{}
			h.coord.log = slog.New(slog.NewJSONHandler(logs, nil))
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			h.coord.redriveOnce(ctx)
			if rs := logs.WithMsg(t, "re-driver: cannot list payments awaiting phase two; retrying next pass"); len(rs) != 0 {
				t.Errorf("logged %v after ctx ended", rs)
			}
		})
	})
}

// A bank refusal the client is told only in general terms (a balance read
// answered as not found, an adjustment DECLINED_BY_BANK) keeps the bank's own
// reason in a Warn log record.
func TestBankOwnReasonIsLogged(t *testing.T) {
	frozen := &RefusalError{Reason: gatewayv1.FailureReason_FAILURE_REASON_DECLINED_BY_BANK, BankReason: "ACCOUNT_FROZEN"}
	notFound := &RefusalError{Reason: gatewayv1.FailureReason_FAILURE_REASON_ACCOUNT_NOT_FOUND, BankReason: "ACCOUNT_NOT_FOUND"}
	wantWarn := func(t *testing.T, l *logtest.Buffer, msg string, n int) {
		t.Helper()
		rs := l.WithMsg(t, msg)
		if len(rs) != n {
			t.Fatalf("%d records %q, want %d", len(rs), msg, n)
		}
		for _, r := range rs {
			if r["level"] != "WARN" || r["reason"] != "ACCOUNT_FROZEN" || r["bank"] != "bank-a" || r["account_id"] != "alice" {
				t.Errorf("%q = %v, want WARN with the bank's reason ACCOUNT_FROZEN, bank and account", msg, r)
			}
		}
	}
	const balanceMsg = "balance read refused by bank for another reason than a missing account; answered as not found"
	t.Run("balance", func(t *testing.T) {
		for _, tt := range []struct {
			ref   *RefusalError
			warns int
		}{{frozen, 1}, {notFound, 0}} {
			h := newHarness(t)
			logs := &logtest.Buffer{}
			h.coord.log = slog.New(slog.NewJSONHandler(logs, nil))
			h.a.balance = func() (Balance, error) { return Balance{}, tt.ref }
			if _, err := h.coord.Balance(t.Context(), Account{"bank-a", "alice"}); !errors.Is(err, ErrBalanceAccountNotFound) {
				t.Fatalf("balance refused with %s: %v, want ErrBalanceAccountNotFound", tt.ref.BankReason, err)
			}
			wantWarn(t, logs, balanceMsg, tt.warns)
		}
	})
	t.Run("adjustment", func(t *testing.T) {
		h := newHarness(t)
		logs := &logtest.Buffer{}
		h.coord.log = slog.New(slog.NewJSONHandler(logs, nil))
		h.a.update = func(string) (Balance, error) { return Balance{}, frozen }
		req := AdjustRequest{TxID: uuid.NewString(), ClientID: "admin", Account: Account{"bank-a", "alice"}, Amount: 5, Currency: "usd"}
		got, err := h.coord.Adjust(t.Context(), req)
		if err != nil || got.Status != StatusFailed || got.FailureReason != gatewayv1.FailureReason_FAILURE_REASON_DECLINED_BY_BANK {
			t.Fatalf("adjustment refused with ACCOUNT_FROZEN: %+v %v, want FAILED DECLINED_BY_BANK", got, err)
		}
		wantWarn(t, logs, "adjustment declined by bank for a reason of its own", 1)
	})
}

// A zero Timing is DefaultTiming: a payment is decided (not EXPIRED by a
// zero Decision) and the re-driver runs (no zero-period ticker panic).
func TestZeroTimingIsDefaultTiming(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		c := NewCoordinator(h.store, h.banks, slog.New(slog.DiscardHandler), Timing{})
		if c.timing != DefaultTiming {
			t.Errorf("NewCoordinator(Timing{}) runs with %+v, want DefaultTiming %+v", c.timing, DefaultTiming)
		}
		runCoordinator(t, c)
		got, err := c.Pay(t.Context(), payment(uuid.NewString()))
		if err != nil || got.Status != StatusSucceeded || got.Decision != DecisionCommit {
			t.Fatalf("payment with Timing{}: %+v %v, want succeeded", got, err)
		}
		time.Sleep(3 * DefaultTiming.Redrive) // the re-driver ticks
	})
}

// lockLog takes the coordinator log's write lock from another connection,
// as a slow disk or another writer would hold it, until release is called.
// It may run on any goroutine: it returns failures instead of failing t,
// which only its release uses, to report a failed close.
func lockLog(t *testing.T, path string) (release func(), err error) { //nolint:thelper // not a helper: it runs off the test goroutine
	db, err := store.Open(context.Background(), path, "gateway")
	if err != nil {
		return nil, err
	}
	tx, err := db.BeginTx(context.Background(), nil) // the write lock: BEGIN IMMEDIATE, or on PostgreSQL the store's writer lock
	if err != nil {
		return nil, errors.Join(err, db.Close())
	}
	return sync.OnceFunc(func() {
		tx.Rollback()
		if err := db.Close(); err != nil {
			t.Error(err)
		}
	}), nil
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestAcknowledgementAfterTheReplyCrashPoint: Pay answers once every bank
// has applied the decision, without waiting for the acknowledgements to be
// written. The crash that point allows (the client told SUCCEEDED, the
// acknowledgements not in the log) is taken as an image of the log's files
// while the write is held back; a coordinator started on that image finds
// the participants unacknowledged, sends them the decision again, and
// records them. (A real bank applies a repeated COMMIT once:
// TestIntegrationGatewayRestartAfterDecision.) Real time, not synctest:
// the lock is another SQLite connection's.
func TestAcknowledgementAfterTheReplyCrashPoint(t *testing.T) {
	sqliteOnly(t, "the crash image")
	h := newHarness(t)
	// Pay waits for phase two "for ever": only the bank's answers, not the
	// acknowledgement write (held back for longer than Pay's context,
	// by SQLite's busy timeout), may end that wait.
	timing := testTiming
	timing.Phase2Wait = time.Hour
	h.coord = NewCoordinator(h.store, h.banks, slog.New(slog.DiscardHandler), timing)
	var locked atomic.Bool
	var release func()
	var lockErr error
	h.b.commitErr = func(string) error {
		if locked.CompareAndSwap(false, true) {
			release, lockErr = lockLog(t, h.path) // after the decision, before the acknowledgement
		}
		return nil
	}
	id := uuid.NewString()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	got, err := h.coord.Pay(ctx, payment(id))
	if err != nil {
		t.Fatalf("Pay: %v (did it wait for the acknowledgement write?)", err)
	}
	if got.Status != StatusSucceeded {
		t.Fatalf("status %s, want succeeded", got.Status)
	}
	if !locked.Load() {
		t.Fatal("bank-b was never sent the decision")
	}
	if lockErr != nil {
		t.Fatalf("lock the log: %v", lockErr)
	}
	// The log as a crash now would leave it: the writer cannot write, so
	// the files are still.
	image := filepath.Join(t.TempDir(), "gateway.db")
	for _, suffix := range []string{"", "-wal"} {
		copyFile(t, h.path+suffix, image+suffix)
	}
	release()

	st, err := OpenStore(t.Context(), image)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Error(err)
		}
	})
	tx, err := st.Get(t.Context(), id)
	if err != nil || tx.Decision != DecisionCommit {
		t.Fatalf("after the crash: %v, %v; want the COMMIT decision, written before the reply", tx, err)
	}
	if un, _ := st.UnackedParticipants(t.Context(), id); len(un) != 2 {
		t.Fatalf("after the crash: unacknowledged %v, want both banks (the acknowledgement was not written yet)", un)
	}
	fresh := NewCoordinator(st, h.banks, slog.New(slog.DiscardHandler), testTiming)
	if err := fresh.Recover(t.Context()); err != nil {
		t.Fatal(err)
	}
	runCoordinator(t, fresh)
	deadline := time.Now().Add(10 * time.Second)
	for {
		un, err := st.UnackedParticipants(t.Context(), id)
		if err == nil && len(un) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the restart: unacknowledged %v (%v), want none", un, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for name, b := range map[string]*fakeBank{"bank-a": h.a, "bank-b": h.b} {
		if _, d := b.counts(id); len(d) != 2 || !d[0] || !d[1] {
			t.Errorf("%s: decisions %v, want COMMIT twice (before the crash, and again from the re-driver)", name, d)
		}
	}
}
