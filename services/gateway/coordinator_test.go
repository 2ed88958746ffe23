package gateway

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
)

// fakeBank is an in-memory participant for coordinator unit tests. The real
// bank over TLS is exercised by the integration tests in this package.
type fakeBank struct {
	mu        sync.Mutex
	updates   map[string]int
	update    func(txID string) (Balance, error)
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

func newHarness(t *testing.T) *harness {
	t.Helper()
	path := filepath.Join(t.TempDir(), "gateway.db")
	st, err := OpenStore(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	h := &harness{store: st, path: path, a: newFakeBank(), b: newFakeBank()}
	h.banks = &fakeBanks{banks: map[string]*fakeBank{"bank-a": h.a, "bank-b": h.b}, states: map[string]BankState{}}
	h.coord = NewCoordinator(st, h.banks, slog.New(slog.NewTextHandler(io.Discard, nil)), testTiming, nil)
	return h
}

func payment(id string) PaymentRequest {
	return PaymentRequest{TxID: id, ClientID: "alice", Payer: Account{"bank-a", "alice"}, Payee: Account{"bank-b", "bob"},
		Amount: 1250, Currency: "usd", Description: "lunch"}
}

func TestPayAllYesCommitsEverywhere(t *testing.T) {
	h := newHarness(t)
	id := uuid.NewString()
	got, err := h.coord.Pay(context.Background(), payment(id))
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
	un, _ := h.store.UnackedParticipants(context.Background(), id)
	if len(un) != 0 {
		t.Errorf("unacknowledged participants %v after a clean commit", un)
	}
}

func TestPayOneNoAbortsEverywhere(t *testing.T) {
	h := newHarness(t)
	h.a.vote = func(string, []Leg) (Vote, error) { return Vote{Reason: "INSUFFICIENT_FUNDS"}, nil }
	id := uuid.NewString()
	got, err := h.coord.Pay(context.Background(), payment(id))
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != StatusFailed || got.FailureReason != "INSUFFICIENT_FUNDS" {
		t.Fatalf("got %s/%s, want failed/INSUFFICIENT_FUNDS", got.Status, got.FailureReason)
	}
	for _, b := range []*fakeBank{h.a, h.b} {
		if _, d := b.counts(id); len(d) != 1 || d[0] {
			t.Errorf("decisions %v, want one ABORT", d)
		}
	}
}

func TestPayPrepareTimeoutAborts(t *testing.T) {
	h := newHarness(t)
	h.b.block = make(chan struct{})
	id := uuid.NewString()
	got, err := h.coord.Pay(context.Background(), payment(id))
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != StatusFailed || got.FailureReason != "BANK_UNAVAILABLE" {
		t.Fatalf("got %s/%s, want failed/BANK_UNAVAILABLE", got.Status, got.FailureReason)
	}
	if _, d := h.a.counts(id); len(d) != 1 || d[0] {
		t.Errorf("the bank that voted YES got %v, want one ABORT", d)
	}
}

func TestPhaseTwoIsRedrivenUntilAcknowledged(t *testing.T) {
	h := newHarness(t)
	var down atomic.Bool
	down.Store(true)
	h.b.commitErr = func(string) error {
		if down.Load() {
			return errors.New("connection refused")
		}
		return nil
	}
	id := uuid.NewString()
	got, err := h.coord.Pay(context.Background(), payment(id))
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != StatusSucceeded {
		t.Fatalf("status %s, want succeeded: the decision is the commit point", got.Status)
	}
	un, _ := h.store.UnackedParticipants(context.Background(), id)
	if len(un) != 1 || un[0] != "bank-b" {
		t.Fatalf("unacknowledged = %v, want [bank-b]", un)
	}
	down.Store(false)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go h.coord.Run(ctx)
	waitFor(t, func() bool {
		un, _ := h.store.UnackedParticipants(context.Background(), id)
		return len(un) == 0
	})
	if _, d := h.b.counts(id); len(d) != 1 || !d[0] {
		t.Fatalf("bank-b decisions %v, want exactly one COMMIT once it came back", d)
	}
}

func TestRestartBeforeDecisionAborts(t *testing.T) {
	h := newHarness(t)
	id := uuid.NewString()
	// A previous process claimed the id and prepared, then died undecided.
	now := time.Now()
	tx := &Txn{ID: id, Kind: KindPayment, ClientID: "alice", Fingerprint: payment(id).fingerprint(),
		Payer: Account{"bank-a", "alice"}, Payee: Account{"bank-b", "bob"}, Amount: 1250, Currency: "usd",
		Status: StatusProcessing, CreateTime: now, PrepareDeadline: now.Add(time.Second), Participants: []string{"bank-a", "bank-b"}}
	if _, ok, err := h.store.Claim(context.Background(), tx); err != nil || !ok {
		t.Fatal(ok, err)
	}
	fresh := NewCoordinator(h.store, h.banks, h.coord.log, testTiming, nil)
	if err := fresh.Recover(context.Background()); err != nil {
		t.Fatal(err)
	}
	got, _ := h.store.Get(context.Background(), id)
	if got.Decision != DecisionAbort || got.Status != StatusFailed {
		t.Fatalf("after recovery: %s/%s, want abort/failed", got.Decision, got.Status)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go fresh.Run(ctx)
	waitFor(t, func() bool {
		_, da := h.a.counts(id)
		_, db := h.b.counts(id)
		return len(da) == 1 && len(db) == 1
	})
	if _, d := h.a.counts(id); d[0] {
		t.Fatal("recovery sent COMMIT for an undecided payment")
	}
	// A retry by the client now returns the stored failure, not a new attempt.
	again, err := fresh.Pay(context.Background(), payment(id))
	if err != nil || again.Status != StatusFailed {
		t.Fatalf("retry after recovery: %v %v", again, err)
	}
	if p, _ := h.a.counts(id); p != 0 {
		t.Fatalf("retry prepared again (%d prepares)", p)
	}
}

func TestRestartAfterCommitDecisionRedrivesCommit(t *testing.T) {
	h := newHarness(t)
	h.a.commitErr = func(string) error { return errors.New("down") }
	h.b.commitErr = h.a.commitErr
	id := uuid.NewString()
	if got, err := h.coord.Pay(context.Background(), payment(id)); err != nil || got.Decision != DecisionCommit {
		t.Fatal(got, err)
	}
	// "Restart": a new coordinator over a reopened store.
	h.store.Close()
	st, err := OpenStore(context.Background(), h.path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	h.a.commitErr, h.b.commitErr = nil, nil
	fresh := NewCoordinator(st, h.banks, h.coord.log, testTiming, nil)
	if err := fresh.Recover(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go fresh.Run(ctx)
	waitFor(t, func() bool {
		un, _ := st.UnackedParticipants(context.Background(), id)
		return len(un) == 0
	})
	for _, b := range []*fakeBank{h.a, h.b} {
		if _, d := b.counts(id); len(d) != 1 || !d[0] {
			t.Fatalf("decisions %v, want one COMMIT after restart", d)
		}
	}
}

func TestOutcomeQueryAbortsUndecidedAndPaymentObeys(t *testing.T) {
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
	got, err := h.coord.Pay(context.Background(), payment(id))
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
	if _, err := h.coord.Outcome(context.Background(), "bank-c", id); !errors.Is(err, ErrNotParticipant) {
		t.Fatalf("a non-participant asked and got %v, want ErrNotParticipant", err)
	}
	if d, err := h.coord.Outcome(context.Background(), "bank-a", uuid.NewString()); err != nil || d != DecisionAbort {
		t.Fatalf("unknown id: %v %v, want presumed abort", d, err)
	}
}

func TestConcurrentDuplicatesPrepareOnce(t *testing.T) {
	h := newHarness(t)
	ids := []string{uuid.NewString(), uuid.NewString(), uuid.NewString()}
	var wg sync.WaitGroup
	results := make(chan *Txn, 300)
	for i := range 300 {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
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
}

func TestIdempotencyConflictsAndUnavailable(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
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
	if err != nil || got.Status != StatusFailed || got.FailureReason != "SAME_ACCOUNT" {
		t.Fatalf("same account: %+v %v", got, err)
	}
	unknown := payment(uuid.NewString())
	unknown.Payee.Bank = "bank-z"
	got, err = h.coord.Pay(ctx, unknown)
	if err != nil || got.Status != StatusFailed || got.FailureReason != "BANK_NOT_FOUND" {
		t.Fatalf("unknown bank: %+v %v", got, err)
	}
}

func TestSameBankPaymentIsOnePrepareWithTwoLegs(t *testing.T) {
	h := newHarness(t)
	var legs []Leg
	h.a.vote = func(_ string, l []Leg) (Vote, error) { legs = l; return Vote{Yes: true}, nil }
	req := payment(uuid.NewString())
	req.Payee = Account{"bank-a", "dave"}
	got, err := h.coord.Pay(context.Background(), req)
	if err != nil || got.Status != StatusSucceeded {
		t.Fatal(got, err)
	}
	if len(legs) != 2 || !legs[0].Debit || legs[1].Debit || legs[0].AccountID != "alice" || legs[1].AccountID != "dave" {
		t.Fatalf("legs %+v, want debit alice and credit dave", legs)
	}
	if p, _ := h.b.counts(req.TxID); p != 0 {
		t.Fatal("bank-b was asked about a bank-a internal payment")
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestConcurrentAdjustmentsCallTheBankOnce(t *testing.T) {
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
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			got, err := h.coord.Adjust(ctx, req)
			if err != nil {
				t.Errorf("duplicate: %v", err)
				return
			}
			results <- got
		})
	}
	waitFor(t, func() bool {
		h.a.mu.Lock()
		defer h.a.mu.Unlock()
		return h.a.updates[req.TxID] == 1
	})
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
}

func TestUnansweredAdjustmentIsInProgressNotUnavailable(t *testing.T) {
	h := newHarness(t)
	h.a.update = func(string) (Balance, error) { return Balance{}, errors.New("connection reset") }
	req := AdjustRequest{TxID: uuid.NewString(), ClientID: "admin", Account: Account{"bank-a", "alice"}, Amount: 5, Currency: "usd"}
	if _, err := h.coord.Adjust(context.Background(), req); !errors.Is(err, ErrInProgress) {
		t.Fatalf("unanswered adjustment: %v, want ErrInProgress (recorded; retry with the same id)", err)
	}
	h.a.update = nil
	got, err := h.coord.Adjust(context.Background(), req)
	if err != nil || got.Status != StatusSucceeded {
		t.Fatalf("retry with the same id: %+v %v", got, err)
	}
}

func TestStaleUndecidedPaymentIsAbortedByTheRedriver(t *testing.T) {
	h := newHarness(t)
	id := uuid.NewString()
	past := time.Now().Add(-time.Minute)
	tx := &Txn{ID: id, Kind: KindPayment, ClientID: "alice", Fingerprint: payment(id).fingerprint(),
		Payer: Account{"bank-a", "alice"}, Payee: Account{"bank-b", "bob"}, Amount: 1250, Currency: "usd",
		Status: StatusProcessing, CreateTime: past, PrepareDeadline: past.Add(time.Second), Participants: []string{"bank-a", "bank-b"}}
	if _, ok, err := h.store.Claim(context.Background(), tx); err != nil || !ok {
		t.Fatal(ok, err)
	}
	if _, err := h.coord.Pay(context.Background(), payment(id)); !errors.Is(err, ErrInProgress) {
		t.Fatalf("undecided payment nobody works on: %v, want ErrInProgress", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go h.coord.Run(ctx)
	waitFor(t, func() bool {
		got, _ := h.store.Get(context.Background(), id)
		return got.Decision == DecisionAbort
	})
	got, err := h.coord.Pay(context.Background(), payment(id))
	if err != nil || got.Status != StatusFailed || got.FailureReason != "EXPIRED" {
		t.Fatalf("after the re-driver: %+v %v, want FAILED EXPIRED", got, err)
	}
}
