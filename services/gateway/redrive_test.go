package gateway

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/uuid"
)

// stuckBank is a bank that accepts every call and answers none until it is
// freed, as a paused process or a wedged disk would: each call waits for its
// deadline. Once freed it answers every call YES.
type stuckBank struct {
	calls atomic.Int32
	freed atomic.Bool
}

func (b *stuckBank) wait(ctx context.Context) error {
	b.calls.Add(1)
	if b.freed.Load() {
		return nil
	}
	<-ctx.Done()
	return ctx.Err()
}

func (b *stuckBank) Prepare(ctx context.Context, _ string, _ []Leg, _ time.Time) (Vote, error) {
	return Vote{Yes: true}, b.wait(ctx)
}
func (b *stuckBank) Commit(ctx context.Context, _ string, _ bool) error { return b.wait(ctx) }
func (b *stuckBank) UpdateBalance(ctx context.Context, _ string, _ Leg) (Balance, error) {
	return Balance{Balance: 5, Currency: "usd"}, b.wait(ctx)
}
func (b *stuckBank) GetBalance(ctx context.Context, _ string) (Balance, error) {
	return Balance{}, b.wait(ctx)
}

// plusBank adds one bank (serving, as far as health checks know) to Banks.
type plusBank struct {
	Banks

	name string
	c    BankClient
}

func (p plusBank) Lookup(name string) (BankClient, BankState) {
	if name == p.name {
		return p.c, BankServing
	}
	return p.Banks.Lookup(name)
}

// pendingAtStuck records n unanswered adjustments at bank-c.
func pendingAtStuck(t *testing.T, st *Store, n int) []string {
	t.Helper()
	var ids []string
	for range n {
		id := uuid.NewString()
		if _, ok, err := st.Claim(t.Context(), &Txn{ID: id, Kind: KindAdjustment, ClientID: "admin", Fingerprint: "x",
			Payee: Account{"bank-c", "carol"}, Direction: "credit", Amount: 5, Currency: "usd",
			Status: StatusProcessing, CreateTime: time.Now()}); err != nil || !ok {
			t.Fatal(ok, err)
		}
		ids = append(ids, id)
	}
	return ids
}

// unackedPayment pays bank-a -> bank-b while bank-b does not answer phase
// two: decided COMMIT, bank-b's acknowledgement left to the re-driver.
func unackedPayment(t *testing.T, h *harness, c *Coordinator) string {
	t.Helper()
	h.b.mu.Lock()
	h.b.commitErr = func(string) error { return errors.New("connection reset") }
	h.b.mu.Unlock()
	id := uuid.NewString()
	if got, err := c.Pay(t.Context(), payment(id)); err != nil || got.Decision != DecisionCommit {
		t.Fatal(got, err)
	}
	h.b.mu.Lock()
	h.b.commitErr = nil
	h.b.mu.Unlock()
	return id
}

// staleUndecided records a payment left undecided past its deadline (its
// decision write failed), which the re-driver must abort.
func staleUndecided(t *testing.T, st *Store) string {
	t.Helper()
	id := uuid.NewString()
	past := time.Now().Add(-time.Minute)
	if _, ok, err := st.Claim(t.Context(), &Txn{ID: id, Kind: KindPayment, ClientID: "alice", Fingerprint: "x",
		Payer: Account{"bank-a", "alice"}, Payee: Account{"bank-b", "bob"}, Amount: 1, Currency: "usd",
		Status: StatusProcessing, CreateTime: past, PrepareDeadline: past, Participants: []string{"bank-a", "bank-b"}}); err != nil || !ok {
		t.Fatal(ok, err)
	}
	return id
}

// One re-driver pass with 20 unanswered adjustments at a hung bank: the hung
// bank is called once (its first silence ends its pass), and phase two and
// the stale abort at the healthy banks are done in the same pass, which
// lasts one call timeout, not twenty.
func TestRedriverPassSkipsAHungBankAfterItsFirstSilence(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		stuck := &stuckBank{}
		c := NewCoordinator(h.store, plusBank{h.banks, "bank-c", stuck}, h.coord.log, testTiming)
		pendingAtStuck(t, h.store, 20)
		paid := unackedPayment(t, h, c)
		stale := staleUndecided(t, h.store)
		synctest.Wait()

		start := time.Now()
		c.redriveOnce(t.Context())
		if took, limit := time.Since(start), 2*c.timing.AdjustCall; took > limit {
			t.Errorf("a pass with 20 adjustments at a hung bank took %v, want at most %v", took, limit)
		}
		if n := stuck.calls.Load(); n != 1 {
			t.Errorf("the hung bank was called %d times in one pass, want 1", n)
		}
		if _, d := h.b.counts(paid); len(d) != 1 || !d[0] {
			t.Errorf("bank-b got decisions %v for the decided payment, want one COMMIT", d)
		}
		if un, err := h.store.UnackedParticipants(t.Context(), paid); err != nil || len(un) != 0 {
			t.Errorf("unacknowledged after the pass: %v %v", un, err)
		}
		if got, err := h.store.Get(t.Context(), stale); err != nil || got.Decision != DecisionAbort {
			t.Errorf("stale payment after the pass: %+v %v, want ABORT", got, err)
		}
	})
}

// While the re-driver's worker for a hung bank holding 20 unanswered
// adjustments waits on it, phase two and stale aborts for the other banks
// keep their pace: each is done within two call timeouts of appearing (the
// sequential re-driver took twenty adjustment timeouts per pass). Once the
// bank answers again, every adjustment is applied.
func TestRedriverHungBankDoesNotDelayOthers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		stuck := &stuckBank{}
		c := NewCoordinator(h.store, plusBank{h.banks, "bank-c", stuck}, h.coord.log, testTiming)
		ids := pendingAtStuck(t, h.store, 20)
		runCoordinator(t, c)
		time.Sleep(testTiming.Redrive + time.Millisecond) // bank-c's worker is waiting on it now
		limit := 2 * testTiming.CommitCall

		paid := unackedPayment(t, h, c)
		stale := staleUndecided(t, h.store)
		start := time.Now()
		for {
			un, err := h.store.UnackedParticipants(t.Context(), paid)
			if err != nil {
				t.Fatal(err)
			}
			got, err := h.store.Get(t.Context(), stale)
			if err != nil {
				t.Fatal(err)
			}
			staleDone := got.Decision == DecisionAbort && aborted(h.a, stale)
			if len(un) == 0 && staleDone {
				break
			}
			if time.Since(start) > limit {
				t.Fatalf("after %v: bank-b still unacknowledged %v, stale payment decision %q; want both done within %v while bank-c hangs",
					time.Since(start), un, got.Decision, limit)
			}
			time.Sleep(testTiming.Redrive)
		}
		if n := stuck.calls.Load(); int64(n) > int64(time.Since(start)/c.timing.AdjustCall)+2 {
			t.Errorf("the hung bank was called %d times in %v: more than once per pass", n, time.Since(start))
		}

		stuck.freed.Store(true)
		deadline := time.Now().Add(10 * c.timing.AdjustCall)
		for _, id := range ids {
			for {
				got, err := h.store.Get(t.Context(), id)
				if err != nil {
					t.Fatal(err)
				}
				if got.Status == StatusSucceeded {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("adjustment %s still %s after the bank answered again", id, got.Status)
				}
				time.Sleep(testTiming.Redrive)
			}
		}
	})
}

// aborted reports whether b was sent ABORT for id.
func aborted(b *fakeBank, id string) bool {
	_, d := b.counts(id)
	return len(d) > 0 && !d[0]
}
