package gateway

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"testing/synctest"

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
