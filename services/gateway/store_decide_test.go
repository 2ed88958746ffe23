package gateway

import (
	"errors"
	"log/slog"
	"path/filepath"
	"testing"
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

// TestLostClaim is the crash point of the unforced claim: the gateway's
// machine loses power after a payment's claim was committed without fsync
// and its prepares were sent, before its decision was fsynced. The disk then
// holds what it held at the last fsync, before the claim (the log is copied
// before the payment to stand for it). Started from that copy, the gateway
// has no row for the id: it has decided nothing, and a bank that holds the
// id prepared and asks for its outcome gets ABORT (presumed abort), which is
// right, because no COMMIT for it was ever durable anywhere. A retry with
// the same id is then a new payment, decided once.
func TestLostClaim(t *testing.T) {
	h := newHarness(t)
	image := filepath.Join(t.TempDir(), "gateway.db")
	for _, suffix := range []string{"", "-wal"} {
		copyFile(t, h.path+suffix, image+suffix) // the last fsync
	}
	req := payment(uuid.NewString())
	if _, err := h.coord.Pay(t.Context(), req); err != nil {
		t.Fatal(err)
	}
	// One payment at a time: the claim, the decision and the
	// acknowledgement (written after Pay returns, so perhaps not yet) each
	// have a transaction of their own; only the decision is forced.
	if st := h.store.CommitStats(); st.Transactions < 2 || st.Unforced != st.Transactions-1 {
		t.Fatalf("%d transactions, %d unforced; want all but the decision unforced: this test's premise (an unforced claim) is gone", st.Transactions, st.Unforced)
	}
	if n, _ := h.a.counts(req.TxID); n != 1 {
		t.Fatalf("bank-a heard %d prepares of %s, want 1", n, req.TxID)
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
	fresh := NewCoordinator(st, h.banks, slog.New(slog.DiscardHandler), testTiming)
	if err := fresh.Recover(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Get(t.Context(), req.TxID); !errors.Is(err, errNotFound) {
		t.Fatalf("after the power loss: Get = %v, want not found (the claim was not fsynced)", err)
	}
	for _, bank := range []string{"bank-a", "bank-b"} {
		if d, err := fresh.Outcome(t.Context(), bank, req.TxID); err != nil || d != DecisionAbort {
			t.Errorf("%s asks the outcome of the lost claim: %q, %v; want ABORT", bank, d, err)
		}
	}
	got, err := fresh.Pay(t.Context(), req)
	if err != nil || got.Status != StatusSucceeded {
		t.Fatalf("retry with the same id: %v, %v; want SUCCEEDED", got, err)
	}
	if again, err := fresh.Pay(t.Context(), req); err != nil || again.Seq != got.Seq {
		t.Errorf("a second retry: %v, %v; want the stored outcome of the first", again, err)
	}
}
