package gateway

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"

	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
	"github.com/remitpay/remit/internal/rpcerr"
)

// A bank that already holds the id for a different transaction refuses
// it: the payment is recorded FAILED with ABORT and TRANSACTION_ID_CONFLICT,
// logged at error level for an operator, and its client gets
// failed_precondition with that reason (which the SDK does not count as a
// decline), naming the bank.
func TestTransactionIDConflictIsAbortedAndLoud(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		var logs bytes.Buffer
		h.coord = NewCoordinator(h.store, h.banks, slog.New(slog.NewTextHandler(&logs, nil)), testTiming)
		conflict := gatewayv1.FailureReason_FAILURE_REASON_TRANSACTION_ID_CONFLICT
		h.b.vote = func(string, []Leg) (Vote, error) { return Vote{Reason: conflict, AccountID: "bob"}, nil }
		id := uuid.NewString()
		got, err := h.coord.Pay(t.Context(), payment(id))
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != StatusFailed || got.Decision != DecisionAbort || got.FailureReason != conflict ||
			got.FailureBank != "bank-b" || got.FailureAccount != "bob" {
			t.Fatalf("got %s/%s/%s at %s/%s, want failed/abort/TRANSACTION_ID_CONFLICT at bank-b/bob",
				got.Status, got.Decision, got.FailureReason, got.FailureBank, got.FailureAccount)
		}
		if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), "TRANSACTION ID CONFLICT") {
			t.Errorf("no error-level log of the conflict:\n%s", logs.String())
		}
		err = declined(got)
		if connect.CodeOf(err) != connect.CodeFailedPrecondition || rpcerr.Reason(err) != "TRANSACTION_ID_CONFLICT" ||
			rpcerr.Info(err).GetMetadata()["bank"] != "bank-b" {
			t.Errorf("client gets %v (reason %q, metadata %v)", err, rpcerr.Reason(err), rpcerr.Info(err).GetMetadata())
		}
	})
}

// A conflict wins over any other refusal, whichever answers first, so the
// client is never told "declined, pay again with a new id" about an id a
// bank holds for another transaction.
func TestTransactionIDConflictWinsOverOtherRefusals(t *testing.T) {
	conflict := gatewayv1.FailureReason_FAILURE_REASON_TRANSACTION_ID_CONFLICT
	funds := gatewayv1.FailureReason_FAILURE_REASON_INSUFFICIENT_FUNDS
	for _, conflictFirst := range []bool{false, true} {
		name := "decline first"
		if conflictFirst {
			name = "conflict first"
		}
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newHarness(t)
				first, second := 0*time.Millisecond, 10*time.Millisecond
				if conflictFirst {
					first, second = second, first
				}
				h.a.vote = func(string, []Leg) (Vote, error) {
					time.Sleep(first)
					return Vote{Reason: funds, AccountID: "alice"}, nil
				}
				h.b.vote = func(string, []Leg) (Vote, error) {
					time.Sleep(second)
					return Vote{Reason: conflict, AccountID: "bob"}, nil
				}
				got, err := h.coord.Pay(t.Context(), payment(uuid.NewString()))
				if err != nil {
					t.Fatal(err)
				}
				if got.FailureReason != conflict || got.FailureBank != "bank-b" {
					t.Errorf("recorded %v at %s, want TRANSACTION_ID_CONFLICT at bank-b", got.FailureReason, got.FailureBank)
				}
			})
		})
	}
}

// The bank that voted TRANSACTION_ID_CONFLICT recorded nothing for this
// payment, and the id it holds belongs to another transaction: an ABORT for
// the id would release that one. So it is never sent the decision, not in
// phase two and not by the re-driver, while the other participant is.
func TestTransactionIDConflictVoterIsNotSentTheAbort(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		h.b.vote = func(string, []Leg) (Vote, error) {
			return Vote{Reason: gatewayv1.FailureReason_FAILURE_REASON_TRANSACTION_ID_CONFLICT, AccountID: "bob"}, nil
		}
		id := uuid.NewString()
		if _, err := h.coord.Pay(t.Context(), payment(id)); err != nil {
			t.Fatal(err)
		}
		if _, d := h.b.counts(id); len(d) != 0 {
			t.Errorf("bank-b, which holds %s for another transaction, was sent decisions %v", id, d)
		}
		if _, d := h.a.counts(id); len(d) != 1 || d[0] {
			t.Errorf("bank-a got decisions %v, want one ABORT", d)
		}
		unacked, err := h.store.UnackedParticipants(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if len(unacked) != 0 {
			t.Errorf("participants still to be sent the decision: %v", unacked)
		}
	})
}
