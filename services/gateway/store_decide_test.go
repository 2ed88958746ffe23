package gateway

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/uuid"

	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
)

// TestPayAnswersWhatIsStored: the answer to a new payment is built from
// its claim without reading the row back (Store.DecideClaimed); it must be
// exactly the row the log holds, field for field, for a COMMIT, a decline
// by a bank and a decline before phase one.
func TestPayAnswersWhatIsStored(t *testing.T) {
	h := newHarness(t)
	committed := payment("decided-from-claim")
	committed.Description = "with a description"
	tooMuch := payment("declined-by-bank")
	h.a.vote = func(txID string, _ []Leg) (Vote, error) {
		if txID == tooMuch.TxID {
			return Vote{Reason: gatewayv1.FailureReason_FAILURE_REASON_INSUFFICIENT_FUNDS, AccountID: "alice"}, nil
		}
		return Vote{Yes: true}, nil
	}
	same := payment("same-account")
	same.Payee = same.Payer
	for _, req := range []PaymentRequest{committed, tooMuch, same} {
		got, err := h.coord.Pay(t.Context(), req)
		if err != nil {
			t.Fatalf("%s: %v", req.TxID, err)
		}
		stored, err := h.store.Get(t.Context(), req.TxID)
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(stored, got, cmpopts.EquateEmpty(), cmp.Comparer(func(a, b time.Time) bool {
			return a.Equal(b) && a.Location() == b.Location()
		})); d != "" {
			t.Errorf("%s: answer differs from the stored row (-stored +answer):\n%s", req.TxID, d)
		}
		if want := map[string]Status{committed.TxID: StatusSucceeded}[req.TxID]; want != "" && got.Status != want {
			t.Errorf("%s: status %s, want %s", req.TxID, got.Status, want)
		}
		if stored.Seq == 0 || stored.CompleteTime.IsZero() {
			t.Errorf("%s: stored row lacks its rowid or completion time: %+v", req.TxID, stored)
		}
	}
}

// TestClaimAndDecisionAreForced: of one payment's three writes, only the
// acknowledgement is unforced. The claim must stay forced: with an
// unforced claim, a power loss could leave banks holding an id the
// gateway no longer knows; a bank's resolver would then be told ABORT
// (presumed abort) while a client's retry with the same id claims it
// again and collects a repeat YES from that same bank, which then applies
// the ABORT and refuses the COMMIT another bank applies: money created
// (found by review; see "Why the claim stays forced" in docs/protocol.md).
func TestClaimAndDecisionAreForced(t *testing.T) {
	h := newHarness(t)
	req := payment(uuid.NewString())
	if _, err := h.coord.Pay(t.Context(), req); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		un, err := h.store.UnackedParticipants(t.Context(), req.TxID)
		if err != nil {
			t.Fatal(err)
		}
		if len(un) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("acknowledgements not written after 5 s: %v", un)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if st := h.store.CommitStats(); st.Transactions != 3 || st.Unforced != 1 {
		t.Errorf("%d transactions, %d unforced; want 3 (claim, decision, acknowledgement), of which only the acknowledgement is unforced", st.Transactions, st.Unforced)
	}
}

// TestKeyReuseWhileInFlight: a request that reuses the id of a payment
// still in flight, from another client, is refused at once, not after
// that payment ends (protocol.md case 10). Found by review: without the
// read before waiting it waited, and past its deadline got
// REQUEST_IN_PROGRESS, which says "retry with the same id".
func TestKeyReuseWhileInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		h.a.block = make(chan struct{}) // bank-a's prepare hangs until its deadline
		id := uuid.NewString()
		done := make(chan struct{})
		go func() {
			defer close(done)
			_, _ = h.coord.Pay(t.Context(), payment(id))
		}()
		time.Sleep(100 * time.Millisecond)
		synctest.Wait()
		if _, err := h.store.Get(t.Context(), id); err != nil {
			t.Fatalf("the first request has not claimed: %v", err)
		}
		other := payment(id)
		other.ClientID = "mallory"
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		if _, err := h.coord.Pay(ctx, other); !errors.Is(err, ErrIdempotencyKeyReused) {
			t.Errorf("another client, the same id, the first in flight: %v after %v; want ErrIdempotencyKeyReused at once", err, time.Since(start))
		}
		<-done
	})
}
