package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
)

// claimRefundable claims a payment (or, refundOf set, a refund) of amount in st as
// it would stand with status, and returns its id.
func claimRefundable(t *testing.T, st *Store, refundOf string, amount int64, status Status) (string, error) {
	t.Helper()
	id := uuid.NewString()
	now := time.Now()
	tx := &Txn{ID: id, Kind: KindPayment, ClientID: "alice", Fingerprint: "fp", Payer: Account{"bank-a", "alice"},
		Payee: Account{"bank-b", "bob"}, Amount: amount, Currency: "usd", Status: status, CreateTime: now,
		PrepareDeadline: now.Add(time.Minute), RefundOf: refundOf,
		RefundReason: gatewayv1.RefundReason_REFUND_REASON_DUPLICATE}
	if refundOf != "" {
		tx.Payer, tx.Payee = tx.Payee, tx.Payer
	}
	switch status {
	case StatusSucceeded:
		tx.Decision, tx.CompleteTime = DecisionCommit, now
	case StatusFailed:
		tx.Decision, tx.CompleteTime = DecisionAbort, now
		tx.FailureReason = gatewayv1.FailureReason_FAILURE_REASON_INSUFFICIENT_FUNDS
	case StatusProcessing:
	}
	_, claimed, err := st.Claim(t.Context(), tx)
	if err == nil && !claimed {
		t.Fatalf("claim %s: the id was taken", id)
	}
	return id, err
}

func mustClaim(t *testing.T, st *Store, refundOf string, amount int64, status Status) string {
	t.Helper()
	id, err := claimRefundable(t, st, refundOf, amount, status)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// The refundable-amount check: refunds processing or succeeded count, failed
// ones do not; only a succeeded payment that is not a refund takes refunds;
// a refused claim writes nothing.
func TestClaimChecksTheRefundableAmount(t *testing.T) {
	h := newHarness(t)
	st := h.store
	paid := mustClaim(t, st, "", 1000, StatusSucceeded)
	mustClaim(t, st, paid, 300, StatusSucceeded)
	mustClaim(t, st, paid, 200, StatusProcessing)
	mustClaim(t, st, paid, 400, StatusFailed) // a decline recorded at the claim (checked too): takes nothing
	processing := mustClaim(t, st, "", 1000, StatusProcessing)
	declined := mustClaim(t, st, "", 1000, StatusFailed)

	for _, c := range []struct {
		name     string
		original string
		amount   int64
		want     error
	}{
		{"what is left", paid, 500, nil},
		{"one more than is left", paid, 501, ErrRefundExceedsPayment},
		{"a processing payment", processing, 1, ErrPaymentNotRefundable},
		{"a failed payment", declined, 1, ErrPaymentNotRefundable},
		{"no such payment", uuid.NewString(), 1, ErrNotFound},
	} {
		if err := st.CheckRefund(t.Context(), c.original, c.amount); !errors.Is(err, c.want) {
			t.Errorf("CheckRefund, %s: %v, want %v", c.name, err, c.want)
		}
		id, err := claimRefundable(t, st, c.original, c.amount, StatusProcessing)
		if !errors.Is(err, c.want) {
			t.Errorf("Claim, %s: %v, want %v", c.name, err, c.want)
		}
		if _, gerr := st.Get(t.Context(), id); c.want != nil && !errors.Is(gerr, errNotFound) {
			t.Errorf("Claim, %s: refused but recorded (%v)", c.name, gerr)
		}
	}
	// paid is now fully refunded (300 + 200 + 500); a refund is not refundable.
	if err := st.CheckRefund(t.Context(), paid, 1); !errors.Is(err, ErrRefundExceedsPayment) {
		t.Errorf("fully refunded: %v, want %v", err, ErrRefundExceedsPayment)
	}
	r := mustClaim(t, st, mustClaim(t, st, "", 50, StatusSucceeded), 50, StatusSucceeded)
	if _, err := claimRefundable(t, st, r, 1, StatusProcessing); !errors.Is(err, ErrPaymentNotRefundable) {
		t.Errorf("refund of a refund: %v, want %v", err, ErrPaymentNotRefundable)
	}
}

// A payment carries all its refunds, so their number is bounded: declined
// refunds count too (they cost a payee with no money nothing), and the
// bound refuses the next one however small.
func TestRefundsPerPaymentAreBounded(t *testing.T) {
	h := newHarness(t)
	paid := mustClaim(t, h.store, "", 1_000_000, StatusSucceeded)
	for i := range MaxRefundsPerPayment {
		status := StatusFailed
		if i%10 == 0 {
			status = StatusSucceeded
		}
		mustClaim(t, h.store, paid, 1, status)
	}
	if err := h.store.CheckRefund(t.Context(), paid, 1); !errors.Is(err, ErrTooManyRefunds) {
		t.Errorf("CheckRefund of refund %d: %v, want %v", MaxRefundsPerPayment+1, err, ErrTooManyRefunds)
	}
	id, err := claimRefundable(t, h.store, paid, 1, StatusProcessing)
	if !errors.Is(err, ErrTooManyRefunds) {
		t.Fatalf("Claim of refund %d: %v, want %v", MaxRefundsPerPayment+1, err, ErrTooManyRefunds)
	}
	if _, gerr := h.store.Get(t.Context(), id); !errors.Is(gerr, errNotFound) {
		t.Errorf("the refused refund was recorded (%v)", gerr)
	}
	if got := connect.CodeOf(toConnect(err)); got != connect.CodeFailedPrecondition {
		t.Errorf("code of too many refunds = %v, want failed_precondition", got)
	}
}

// Many refunds of one payment claimed at once (group commit runs them in one
// SQLite transaction, each in its savepoint) never exceed it: exactly as
// many as fit are claimed, the others are refused and leave nothing.
func TestConcurrentRefundClaimsNeverExceed(t *testing.T) {
	h := newHarness(t)
	paid := mustClaim(t, h.store, "", 1000, StatusSucceeded)
	const callers = 64
	errs := make([]error, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() { _, errs[i] = claimRefundable(t, h.store, paid, 100, StatusProcessing) })
	}
	wg.Wait()
	claimed := 0
	for _, err := range errs {
		switch {
		case err == nil:
			claimed++
		case !errors.Is(err, ErrRefundExceedsPayment):
			t.Errorf("claim: %v", err)
		}
	}
	if claimed != 10 {
		t.Errorf("%d refunds of 100 of a payment of 1000 claimed, want 10", claimed)
	}
	p, err := h.store.Get(t.Context(), paid)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.store.WithRefunds(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	if len(p.Refunds) != claimed {
		t.Errorf("the payment has %d refunds recorded, want the %d claimed", len(p.Refunds), claimed)
	}
}

// WithRefunds reads the refunds of a whole page in one query, oldest first,
// and leaves refunds and adjustments alone.
func TestWithRefundsIsOneQuery(t *testing.T) {
	h := newHarness(t)
	st := h.store
	want := map[string][]string{}
	for i := range 5 {
		p := mustClaim(t, st, "", 1000, StatusSucceeded)
		want[p] = nil
		for j := range i {
			status := StatusSucceeded
			if j%2 == 1 {
				status = StatusFailed
			}
			want[p] = append(want[p], mustClaim(t, st, p, 100, status))
		}
	}
	rows, err := st.List(t.Context(), ListFilter{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	before := st.reads.Load()
	if err := st.WithRefunds(t.Context(), rows...); err != nil {
		t.Fatal(err)
	}
	if n := st.reads.Load() - before; n != 1 {
		t.Errorf("the refunds of %d payments cost %d reads, want 1", len(rows), n)
	}
	for _, r := range rows {
		if r.RefundOf != "" {
			if r.Refunds != nil || r.RefundReason != gatewayv1.RefundReason_REFUND_REASON_DUPLICATE {
				t.Errorf("refund %s: refunds %v, reason %v", r.ID, r.Refunds, r.RefundReason)
			}
			continue
		}
		var got []string
		var sum int64
		for _, x := range r.Refunds {
			got = append(got, x.ID)
			if x.Status == StatusSucceeded {
				sum += x.Amount
			}
		}
		if d := cmp.Diff(want[r.ID], got); d != "" {
			t.Errorf("refunds of %s (-want +got):\n%s", r.ID, d)
		}
		if r.Refunded() != sum {
			t.Errorf("%s: Refunded %d, want %d", r.ID, r.Refunded(), sum)
		}
	}
}

// A crash during a refund's phase one (its claim durable, no decision): a
// gateway started on the log as the crash left it aborts the refund
// (presumed abort, Recover), the re-driver sends both banks the ABORT, a
// bank's outcome query hears ABORT, and the refund's amount is refundable
// again. The image of the log is taken while the refund's prepare is held at
// the bank, so nothing after the claim is in it. Real time: the log's files
// are copied.
func TestRefundCrashBeforeDecisionIsRecovered(t *testing.T) {
	sqliteOnly(t, "the crash image")
	h := newHarness(t)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	paid, err := h.coord.Pay(ctx, payment(uuid.NewString()))
	if err != nil || paid.Status != StatusSucceeded {
		t.Fatalf("payment: %v, %v", paid, err)
	}
	rid := uuid.NewString()
	inPrepare, unblock := make(chan struct{}), make(chan struct{})
	var once sync.Once
	h.a.vote = func(txID string, _ []Leg) (Vote, error) { // bank-a is the refund's payee's
		if txID == rid {
			once.Do(func() { close(inPrepare) })
			<-unblock
		}
		return Vote{Yes: true}, nil
	}
	done := make(chan error, 1)
	go func() {
		_, err := h.coord.Refund(ctx, paid, RefundRequest{RefundID: rid, ClientID: "bob", Amount: 1250})
		done <- err
	}()
	select {
	case <-inPrepare:
	case <-ctx.Done():
		t.Fatal("the refund's prepare never reached bank-a")
	}
	image := filepath.Join(t.TempDir(), "gateway.db")
	for _, suffix := range []string{"", "-wal"} {
		copyFile(t, h.path+suffix, image+suffix)
	}
	close(unblock)
	if err := <-done; err != nil {
		t.Fatalf("the refund before the crash image: %v", err)
	}

	st, err := OpenStore(t.Context(), image)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Error(err)
		}
	})
	r, err := st.Get(t.Context(), rid)
	if err != nil || r.Status != StatusProcessing || r.RefundOf != paid.ID {
		t.Fatalf("after the crash: %v, %v; want the refund of %s claimed and undecided", r, err, paid.ID)
	}
	if err := st.CheckRefund(t.Context(), paid.ID, 1); !errors.Is(err, ErrRefundExceedsPayment) {
		t.Errorf("while the refund is undecided: %v, want %v (it counts)", err, ErrRefundExceedsPayment)
	}
	a, b := newFakeBank(), newFakeBank()
	banks := &fakeBanks{banks: map[string]*fakeBank{"bank-a": a, "bank-b": b}, states: map[string]BankState{}}
	fresh := NewCoordinator(st, banks, slog.New(slog.DiscardHandler), testTiming)
	if err := fresh.Recover(t.Context()); err != nil {
		t.Fatal(err)
	}
	r, err = st.Get(t.Context(), rid)
	if err != nil || r.Status != StatusFailed || r.FailureReason != gatewayv1.FailureReason_FAILURE_REASON_EXPIRED {
		t.Fatalf("after recovery: %v, %v; want FAILED EXPIRED", r, err)
	}
	if d, err := fresh.Outcome(t.Context(), "bank-a", rid); err != nil || d != DecisionAbort {
		t.Errorf("bank-a asks the outcome: %v, %v; want abort", d, err)
	}
	if err := st.CheckRefund(t.Context(), paid.ID, 1250); err != nil {
		t.Errorf("after the refund failed: %v, want the whole payment refundable again", err)
	}
	runCoordinator(t, fresh)
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, da := a.counts(rid)
		_, db := b.counts(rid)
		if len(da) > 0 && len(db) > 0 {
			if da[0] || db[0] {
				t.Fatalf("decisions sent: bank-a %v bank-b %v, want ABORT", da, db)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the re-driver did not send the ABORT: bank-a %v bank-b %v", da, db)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Retries of one refund sent at once, while its first request claims it, all
// get the refund (or REQUEST_IN_PROGRESS while it runs), never
// REFUND_EXCEEDS_PAYMENT: a retry is answered from the refund's row, so the
// refund must not count against itself in any check a retry passes through.
// A retry that read the log before the claim committed and checks the
// refundable amount after it would count its own first request; the rounds
// make that interleaving likely.
func TestRefundRetriesRacingTheClaimAreReplays(t *testing.T) {
	h := newHarness(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	const rounds, retries = 20, 32
	for round := range rounds {
		paid, err := h.coord.Pay(ctx, payment(uuid.NewString()))
		if err != nil || paid.Status != StatusSucceeded {
			t.Fatalf("payment: %v, %v", paid, err)
		}
		req := RefundRequest{RefundID: uuid.NewString(), ClientID: "bob", Amount: paid.Amount}
		errs := make([]error, retries)
		var wg sync.WaitGroup
		for i := range retries {
			wg.Go(func() {
				r, err := h.coord.Refund(ctx, paid, req)
				switch {
				case err != nil:
					errs[i] = err
				case r.ID != req.RefundID || r.Status != StatusSucceeded:
					errs[i] = fmt.Errorf("got %s %s", r.ID, r.Status)
				}
			})
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil && !errors.Is(err, ErrInProgress) {
				t.Fatalf("round %d, retry %d of refund %s: %v; want the refund", round, i, req.RefundID, err)
			}
		}
	}
}
