package gateway

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

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
