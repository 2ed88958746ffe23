package gateway

import (
	"bytes"
	"database/sql"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"

	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
	"github.com/remitpay/remit/internal/rpcerr"
	"github.com/remitpay/remit/internal/store"
	"github.com/remitpay/remit/internal/store/storetest"
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
		synctest.Wait() // Pay returns before the acknowledgements are written
		unacked, err := h.store.UnackedParticipants(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if len(unacked) != 0 {
			t.Errorf("participants still to be sent the decision: %v", unacked)
		}
	})
}

// The conflicting bank is recorded as soon as its vote arrives, before the
// decision: if the decision cannot be written, the stale-abort pass that
// later aborts the payment (it knows no votes) still skips that bank.
func TestTransactionIDConflictVoterIsSkippedWhenTheDecisionIsNotWritten(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		h.b.vote = func(string, []Leg) (Vote, error) {
			// The decision write will fail (disk full, I/O error...).
			if _, err := h.store.db.ExecContext(t.Context(), dialectSQL(h.store.db,
				`CREATE TRIGGER fail_decision BEFORE UPDATE OF decision ON transactions
					BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END`,
				`CREATE FUNCTION fail_decision() RETURNS trigger LANGUAGE plpgsql AS $$
					BEGIN RAISE EXCEPTION 'disk I/O error'; END $$;
				CREATE TRIGGER fail_decision BEFORE UPDATE OF decision ON transactions
					FOR EACH ROW EXECUTE FUNCTION fail_decision()`)); err != nil {
				t.Error(err)
			}
			return Vote{Reason: gatewayv1.FailureReason_FAILURE_REASON_TRANSACTION_ID_CONFLICT}, nil
		}
		id := uuid.NewString()
		if _, err := h.coord.Pay(t.Context(), payment(id)); err == nil {
			t.Fatal("Pay succeeded; want the payment left undecided")
		}
		if _, err := h.store.db.ExecContext(t.Context(), dialectSQL(h.store.db,
			`DROP TRIGGER fail_decision`, `DROP TRIGGER fail_decision ON transactions`)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(testTiming.Decision + time.Second)
		h.coord.redriveOnce(t.Context()) // aborts the stale payment
		h.coord.redriveOnce(t.Context()) // phase two
		synctest.Wait()
		got, err := h.store.Get(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if got.Decision != DecisionAbort {
			t.Fatalf("decision %q, want abort", got.Decision)
		}
		if _, d := h.b.counts(id); len(d) != 0 {
			t.Errorf("bank-b, which voted TRANSACTION_ID_CONFLICT, was sent decisions %v", d)
		}
		if _, d := h.a.counts(id); len(d) != 1 || d[0] {
			t.Errorf("bank-a got decisions %v, want one ABORT", d)
		}
	})
}

// The conflicting bank is not told the payment's outcome either: what it
// holds under the id is another transaction, which the gateway may have
// decided before it lost its record, so presumed abort does not apply. Its
// resolver gets a definite refusal and keeps the funds held for an operator.
// The other participant is told ABORT; an excused bank is not counted as
// having acknowledged anything.
func TestTransactionIDConflictVoterIsNotToldTheOutcome(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		h.b.vote = func(string, []Leg) (Vote, error) {
			return Vote{Reason: gatewayv1.FailureReason_FAILURE_REASON_TRANSACTION_ID_CONFLICT}, nil
		}
		id := uuid.NewString()
		if _, err := h.coord.Pay(t.Context(), payment(id)); err != nil {
			t.Fatal(err)
		}
		if d, err := h.coord.Outcome(t.Context(), "bank-b", id); !errors.Is(err, ErrExcusedParticipant) {
			t.Errorf("Outcome(bank-b) = %v, %v; want ErrExcusedParticipant", d, err)
		}
		if err := toConnect(ErrExcusedParticipant); connect.CodeOf(err) != connect.CodeFailedPrecondition ||
			rpcerr.Reason(err) != "TRANSACTION_ID_CONFLICT" {
			t.Errorf("on the wire: %v (reason %q)", err, rpcerr.Reason(err))
		}
		if d, err := h.coord.Outcome(t.Context(), "bank-a", id); err != nil || d != DecisionAbort {
			t.Errorf("Outcome(bank-a) = %v, %v; want abort", d, err)
		}
		got, err := h.store.Get(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got.Excused, []string{"bank-b"}) {
			t.Errorf("Excused = %v, want [bank-b]", got.Excused)
		}
		var acked int
		if err := h.store.db.QueryRowContext(t.Context(), `SELECT acked FROM participants WHERE transaction_id = ? AND bank = 'bank-b'`,
			id).Scan(&acked); err != nil {
			t.Fatal(err)
		}
		if acked != participantExcused {
			t.Errorf("bank-b's participant row acked = %d, want %d (excused, not acknowledged)", acked, participantExcused)
		}
	})
}

// dialectSQL is sqlite or postgres, whichever db speaks: for the tests
// that break the store on purpose (a trigger, a column of the wrong type).
func dialectSQL(db *sql.DB, sqlite, postgres string) string {
	if store.DialectOf(db) == store.Postgres {
		return postgres
	}
	return sqlite
}

// sqliteOnly skips a test that copies SQLite's files (a crash image) on a
// PostgreSQL run: there the writer lock the test holds would also stop the
// copy from opening, and PostgreSQL's own recovery keeps every committed
// transaction.
func sqliteOnly(t *testing.T, what string) {
	t.Helper()
	if storetest.Backend() != "sqlite" {
		t.Skipf("%s copies SQLite's files; this run is on %s", what, storetest.Backend())
	}
}
