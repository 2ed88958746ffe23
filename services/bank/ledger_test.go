package bank_test

import (
	"context"
	"errors"
	"maps"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/uuid"

	"github.com/remitpay/remit/internal/store/storetest"
	"github.com/remitpay/remit/services/bank"
)

// nearMax is an opening balance 10 below the largest int64.
const nearMax = math.MaxInt64 - 10

var defaultSeeds = []bank.AccountSeed{
	{ID: "alice", Owner: "Alice", Currency: "usd", Opening: 100},
	{ID: "bob", Owner: "Bob", Currency: "usd", Opening: 50},
	{ID: "carol", Owner: "Carol", Currency: "eur", Opening: 0},
	{ID: "whale", Owner: "Whale", Currency: "usd", Opening: nearMax},
}

// openLedger opens a ledger at path with the default accounts. A test that
// checks the times the ledger records opens it inside a synctest bubble,
// where time.Now stands still until the test sleeps.
func openLedger(t *testing.T, path string) *bank.Ledger {
	t.Helper()
	l, err := bank.OpenLedger(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("close ledger: %v", err)
		}
	})
	for _, s := range defaultSeeds {
		if _, err := l.EnsureAccount(t.Context(), s); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

// ledgerTarget is the ledger of a bank whose data directory is dataDir:
// dataDir/ledger.db, or its PostgreSQL schema (storetest).
func ledgerTarget(tb testing.TB, dataDir string) string {
	tb.Helper()
	return storetest.Target(tb, dataDir, "ledger")
}

func newLedger(t *testing.T) *bank.Ledger {
	t.Helper()
	return openLedger(t, storetest.Target(t, t.TempDir(), "ledger"))
}

func newID() string { return uuid.NewString() }

func debit(account string, amount int64) bank.Leg {
	return bank.Leg{AccountID: account, Direction: bank.Debit, Amount: amount, Currency: "usd"}
}

func credit(account string, amount int64) bank.Leg {
	return bank.Leg{AccountID: account, Direction: bank.Credit, Amount: amount, Currency: "usd"}
}

var yes = bank.Vote{Yes: true}

func no(reason error, account string) bank.Vote { return bank.Vote{Reason: reason, AccountID: account} }

// balances is the (balance, held, incoming) of an account.
type balances struct{ Balance, Held, Incoming int64 }

func wantBalances(t *testing.T, l *bank.Ledger, account string, want balances) {
	t.Helper()
	a, err := l.Balance(t.Context(), account)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, balances{a.Balance, a.Held, a.Incoming}); diff != "" {
		t.Errorf("account %s (-want +got):\n%s", account, diff)
	}
	if a.Available() != a.Balance-a.Held || a.Available() < 0 {
		t.Errorf("account %s: available %d with balance %d, held %d", account, a.Available(), a.Balance, a.Held)
	}
}

func mustPrepare(t *testing.T, l *bank.Ledger, id string, want bank.Vote, legs ...bank.Leg) {
	t.Helper()
	got, err := l.Prepare(t.Context(), id, legs, time.Now().Add(time.Minute))
	if err != nil {
		t.Fatalf("prepare %s: %v", id, err)
	}
	if diff := cmp.Diff(want, got, cmpopts.EquateErrors()); diff != "" {
		t.Fatalf("prepare %s vote (-want +got):\n%s", id, diff)
	}
}

func mustCommit(t *testing.T, l *bank.Ledger, id string, commit bool, want bank.State) {
	t.Helper()
	got, err := l.Commit(t.Context(), id, commit)
	if err != nil {
		t.Fatalf("commit=%v %s: %v", commit, id, err)
	}
	if got != want {
		t.Fatalf("commit=%v %s: state %q, want %q", commit, id, got, want)
	}
}

func TestPrepareRefusals(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		legs []bank.Leg
		want bank.Vote
	}{
		{"unknown account", []bank.Leg{debit("nobody", 1)}, no(bank.ErrAccountNotFound, "nobody")},
		{"unknown payee at same bank", []bank.Leg{debit("alice", 1), credit("nobody", 1)}, no(bank.ErrAccountNotFound, "nobody")},
		{"currency mismatch", []bank.Leg{credit("carol", 5)}, no(bank.ErrCurrencyMismatch, "carol")},
		{"insufficient funds", []bank.Leg{debit("alice", 101)}, no(bank.ErrInsufficientFunds, "alice")},
		{"empty account", []bank.Leg{{AccountID: "carol", Direction: bank.Debit, Amount: 1, Currency: "eur"}}, no(bank.ErrInsufficientFunds, "carol")},
		{"credit overflow", []bank.Leg{credit("whale", 11)}, no(bank.ErrBalanceOverflow, "whale")},
		{"overflow leg refuses the whole transaction", []bank.Leg{debit("alice", 20), credit("whale", 11)}, no(bank.ErrBalanceOverflow, "whale")},
		{"existence is checked before funds", []bank.Leg{debit("alice", 1000), credit("nobody", 1)}, no(bank.ErrAccountNotFound, "nobody")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLedger(t)
			id := newID()
			mustPrepare(t, l, id, tt.want, tt.legs...)
			// Nothing is held or reserved by a NO.
			wantBalances(t, l, "alice", balances{100, 0, 0})
			wantBalances(t, l, "whale", balances{nearMax, 0, 0})
			// A repeat repeats the same NO.
			mustPrepare(t, l, id, tt.want, tt.legs...)
			// The gateway's ABORT of a refused transaction is harmless.
			mustCommit(t, l, id, false, bank.StateAborted)
			if _, err := l.Commit(t.Context(), id, true); !errors.Is(err, bank.ErrCannotCommit) {
				t.Errorf("commit of refused transaction: %v, want ErrCannotCommit", err)
			}
		})
	}
}

func TestPrepareRefusalIsFinal(t *testing.T) {
	t.Parallel()
	// A NO is recorded: once funds arrive, a repeat of the refused prepare
	// still votes NO, so a stale prepare can never hold funds after the
	// gateway acted on the NO.
	l := newLedger(t)
	id := newID()
	mustPrepare(t, l, id, no(bank.ErrInsufficientFunds, "bob"), debit("bob", 80))
	if _, err := l.UpdateBalance(t.Context(), newID(), credit("bob", 100)); err != nil {
		t.Fatal(err)
	}
	mustPrepare(t, l, id, no(bank.ErrInsufficientFunds, "bob"), debit("bob", 80))
	wantBalances(t, l, "bob", balances{150, 0, 0})
}

func TestPrepareInvalidLegs(t *testing.T) {
	t.Parallel()
	l := newLedger(t)
	tests := []struct {
		name string
		id   string
		legs []bank.Leg
	}{
		{"no id", "", []bank.Leg{debit("alice", 1)}},
		{"no legs", newID(), nil},
		{"zero amount", newID(), []bank.Leg{debit("alice", 0)}},
		{"negative amount", newID(), []bank.Leg{credit("alice", -5)}},
		{"bad direction", newID(), []bank.Leg{{AccountID: "alice", Direction: "sideways", Amount: 1, Currency: "usd"}}},
		{"two debits on one account", newID(), []bank.Leg{debit("alice", 10), debit("alice", 20)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := l.Prepare(t.Context(), tt.id, tt.legs, time.Now()); !errors.Is(err, bank.ErrInvalidArgument) {
				t.Errorf("err = %v, want ErrInvalidArgument", err)
			}
		})
	}
	wantBalances(t, l, "alice", balances{100, 0, 0})
}

func TestHoldsAndAvailable(t *testing.T) {
	t.Parallel()
	l := newLedger(t)
	ctx := t.Context()
	t1, t2, t3 := newID(), newID(), newID()

	mustPrepare(t, l, t1, yes, debit("alice", 30))
	wantBalances(t, l, "alice", balances{100, 30, 0})
	a, _ := l.Balance(ctx, "alice")
	if a.Available() != 70 {
		t.Fatalf("available = %d, want 70", a.Available())
	}
	// The hold counts against later debits, two-phase or single-phase.
	mustPrepare(t, l, t2, no(bank.ErrInsufficientFunds, "alice"), debit("alice", 71))
	if _, err := l.UpdateBalance(ctx, newID(), debit("alice", 71)); !errors.Is(err, bank.ErrInsufficientFunds) {
		t.Fatalf("withdrawal over available: %v, want ErrInsufficientFunds", err)
	}
	mustPrepare(t, l, t3, yes, debit("alice", 70))
	wantBalances(t, l, "alice", balances{100, 100, 0})
	if _, err := l.UpdateBalance(ctx, newID(), debit("alice", 1)); !errors.Is(err, bank.ErrInsufficientFunds) {
		t.Fatalf("withdrawal with nothing available: %v, want ErrInsufficientFunds", err)
	}
	// A deposit raises available while holds stay.
	if _, err := l.UpdateBalance(ctx, newID(), credit("alice", 5)); err != nil {
		t.Fatal(err)
	}
	wantBalances(t, l, "alice", balances{105, 100, 0})

	mustCommit(t, l, t1, true, bank.StateCommitted)
	wantBalances(t, l, "alice", balances{75, 70, 0})
	mustCommit(t, l, t3, false, bank.StateAborted)
	wantBalances(t, l, "alice", balances{75, 0, 0})
}

func TestPrepareCommitAbortIdempotency(t *testing.T) {
	t.Parallel()
	l := newLedger(t)
	ctx := t.Context()

	// Prepare twice holds once; legs in another order are the same legs.
	committed := newID()
	mustPrepare(t, l, committed, yes, debit("alice", 10), credit("bob", 10))
	mustPrepare(t, l, committed, yes, credit("bob", 10), debit("alice", 10))
	wantBalances(t, l, "alice", balances{100, 10, 0})
	wantBalances(t, l, "bob", balances{50, 0, 10})
	// Other legs under the same id are a conflict, and hold nothing.
	mustPrepare(t, l, committed, no(bank.ErrIdempotencyKeyReused, ""), debit("alice", 11), credit("bob", 11))

	// Commit twice applies once.
	mustCommit(t, l, committed, true, bank.StateCommitted)
	mustCommit(t, l, committed, true, bank.StateCommitted)
	wantBalances(t, l, "alice", balances{90, 0, 0})
	wantBalances(t, l, "bob", balances{60, 0, 0})
	entries, err := l.Entries(ctx, committed)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 {
		t.Fatalf("journal has %d entries for the payment, want 2: %+v", len(entries), entries)
	}
	// A prepare of a committed id repeats YES and holds nothing.
	mustPrepare(t, l, committed, yes, debit("alice", 10), credit("bob", 10))
	wantBalances(t, l, "alice", balances{90, 0, 0})
	// A commit is never undone.
	if _, err := l.Commit(ctx, committed, false); !errors.Is(err, bank.ErrAlreadyCommitted) {
		t.Fatalf("abort after commit: %v, want ErrAlreadyCommitted", err)
	}

	// Abort twice releases once; then commit is refused and prepare says NO.
	aborted := newID()
	mustPrepare(t, l, aborted, yes, debit("alice", 40))
	mustCommit(t, l, aborted, false, bank.StateAborted)
	mustCommit(t, l, aborted, false, bank.StateAborted)
	wantBalances(t, l, "alice", balances{90, 0, 0})
	if _, err := l.Commit(ctx, aborted, true); !errors.Is(err, bank.ErrCannotCommit) {
		t.Fatalf("commit after abort: %v, want ErrCannotCommit", err)
	}
	mustPrepare(t, l, aborted, no(bank.ErrAlreadyAborted, ""), debit("alice", 40))
	wantBalances(t, l, "alice", balances{90, 0, 0})

	// Commit of an id never prepared is an error and records nothing.
	unknown := newID()
	if _, err := l.Commit(ctx, unknown, true); !errors.Is(err, bank.ErrCannotCommit) {
		t.Fatalf("commit unknown: %v, want ErrCannotCommit", err)
	}
	if _, ok, _ := l.State(ctx, unknown); ok {
		t.Fatal("commit of an unknown id recorded something")
	}

	// Abort of an id never prepared succeeds (presumed abort) and leaves a
	// tombstone, so a prepare delayed in the network cannot hold funds.
	late := newID()
	mustCommit(t, l, late, false, bank.StateAborted)
	mustCommit(t, l, late, false, bank.StateAborted)
	mustPrepare(t, l, late, no(bank.ErrAlreadyAborted, ""), debit("alice", 5))
	wantBalances(t, l, "alice", balances{90, 0, 0})
	if _, err := l.Commit(ctx, late, true); !errors.Is(err, bank.ErrCannotCommit) {
		t.Fatalf("commit of tombstone: %v, want ErrCannotCommit", err)
	}
}

func TestSameBankPayment(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		l := newLedger(t)
		ctx := t.Context()
		id := newID()
		mustPrepare(t, l, id, yes, debit("alice", 40), credit("bob", 40))
		mustCommit(t, l, id, true, bank.StateCommitted)
		wantBalances(t, l, "alice", balances{60, 0, 0})
		wantBalances(t, l, "bob", balances{90, 0, 0})

		got, err := l.Entries(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		want := []bank.Entry{
			{TransactionID: id, AccountID: "alice", Direction: bank.Debit, Amount: 40, Balance: 60, Kind: bank.KindPayment, Time: time.Now()},
			{TransactionID: id, AccountID: "bob", Direction: bank.Credit, Amount: 40, Balance: 90, Kind: bank.KindPayment, Time: time.Now()},
		}
		if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(bank.Entry{}, "ID")); diff != "" {
			t.Errorf("journal (-want +got):\n%s", diff)
		}

		// Payer and payee the same account: a debit and a credit that cancel out.
		self := newID()
		mustPrepare(t, l, self, yes, debit("alice", 60), credit("alice", 60))
		wantBalances(t, l, "alice", balances{60, 60, 60})
		mustCommit(t, l, self, true, bank.StateCommitted)
		wantBalances(t, l, "alice", balances{60, 0, 0})
	})
}

func TestOverflowReservesIncomingCredits(t *testing.T) {
	t.Parallel()
	l := newLedger(t)
	ctx := t.Context()
	first := newID()
	mustPrepare(t, l, first, yes, credit("whale", 6))
	wantBalances(t, l, "whale", balances{nearMax, 0, 6})
	// 6 promised + 6 more would overflow once both commit.
	mustPrepare(t, l, newID(), no(bank.ErrBalanceOverflow, "whale"), credit("whale", 6))
	if _, err := l.UpdateBalance(ctx, newID(), credit("whale", 5)); !errors.Is(err, bank.ErrBalanceOverflow) {
		t.Fatalf("deposit over the reserved headroom: %v, want ErrBalanceOverflow", err)
	}
	if _, err := l.UpdateBalance(ctx, newID(), credit("whale", 4)); err != nil {
		t.Fatal(err)
	}
	// The promise is kept: the commit fits exactly.
	mustCommit(t, l, first, true, bank.StateCommitted)
	wantBalances(t, l, "whale", balances{math.MaxInt64, 0, 0})
	if _, err := l.UpdateBalance(ctx, newID(), credit("whale", 1)); !errors.Is(err, bank.ErrBalanceOverflow) {
		t.Fatalf("deposit at MaxInt64: %v, want ErrBalanceOverflow", err)
	}
	// Debits of a full account still work.
	mustPrepare(t, l, newID(), yes, debit("whale", math.MaxInt64))
}

func TestUpdateBalance(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		leg         bank.Leg
		wantErr     error
		wantBalance int64
	}{
		{"deposit", credit("alice", 25), nil, 125},
		{"withdrawal", debit("alice", 100), nil, 0},
		{"overdraft", debit("alice", 101), bank.ErrInsufficientFunds, 100},
		{"unknown account", credit("nobody", 1), bank.ErrAccountNotFound, 100},
		{"currency mismatch", credit("carol", 1), bank.ErrCurrencyMismatch, 100},
		{"overflow", credit("whale", 11), bank.ErrBalanceOverflow, 100},
		{"zero amount", credit("alice", 0), bank.ErrInvalidArgument, 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := newLedger(t)
				id := newID()
				got, err := l.UpdateBalance(t.Context(), id, tt.leg)
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				wantBalances(t, l, "alice", balances{tt.wantBalance, 0, 0})
				entries, _ := l.Entries(t.Context(), id)
				if tt.wantErr != nil {
					if len(entries) != 0 {
						t.Errorf("a refused adjustment was journaled: %+v", entries)
					}
					return
				}
				want := bank.Adjustment{Balance: tt.wantBalance, Currency: "usd", ApplyTime: time.Now()}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("result (-want +got):\n%s", diff)
				}
				if len(entries) != 1 || entries[0].Kind != bank.KindAdjustment || entries[0].Balance != tt.wantBalance {
					t.Errorf("journal = %+v, want one adjustment with balance %d", entries, tt.wantBalance)
				}
			})
		})
	}
}

func TestUpdateBalanceIdempotency(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		l := newLedger(t)
		ctx := t.Context()
		id := newID()
		first, err := l.UpdateBalance(ctx, id, credit("alice", 10))
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Hour)
		if _, err := l.UpdateBalance(ctx, newID(), credit("alice", 1)); err != nil {
			t.Fatal(err)
		}
		// The repeat returns the original result and moves nothing.
		again, err := l.UpdateBalance(ctx, id, credit("alice", 10))
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(first, again); diff != "" {
			t.Errorf("repeat (-first +repeat):\n%s", diff)
		}
		wantBalances(t, l, "alice", balances{111, 0, 0})

		for _, leg := range []bank.Leg{credit("alice", 11), debit("alice", 10), credit("bob", 10)} {
			if _, err := l.UpdateBalance(ctx, id, leg); !errors.Is(err, bank.ErrIdempotencyKeyReused) {
				t.Errorf("reuse with %+v: %v, want ErrIdempotencyKeyReused", leg, err)
			}
		}
		// Ids are shared with payments, both ways.
		mustPrepare(t, l, id, no(bank.ErrIdempotencyKeyReused, ""), credit("alice", 10))
		payment := newID()
		mustPrepare(t, l, payment, yes, debit("alice", 10))
		if _, err := l.UpdateBalance(ctx, payment, debit("alice", 10)); !errors.Is(err, bank.ErrIdempotencyKeyReused) {
			t.Errorf("adjustment under a payment's id: %v, want ErrIdempotencyKeyReused", err)
		}
		wantBalances(t, l, "alice", balances{111, 10, 0})

		// A refusal is as final as an application: the same id is refused again
		// even once the account could afford it, so a caller told "refused" can
		// never be contradicted by a retry that was still in flight.
		retry := newID()
		if _, err := l.UpdateBalance(ctx, retry, debit("bob", 60)); !errors.Is(err, bank.ErrInsufficientFunds) {
			t.Fatal(err)
		}
		if _, err := l.UpdateBalance(ctx, newID(), credit("bob", 10)); err != nil {
			t.Fatal(err)
		}
		before := balanceOf(t, l, "bob")
		if _, err := l.UpdateBalance(ctx, retry, debit("bob", 60)); !errors.Is(err, bank.ErrInsufficientFunds) {
			t.Fatalf("retry of a refused id after a deposit: %v, want the same ErrInsufficientFunds", err)
		}
		if _, err := l.UpdateBalance(ctx, retry, debit("bob", 5)); !errors.Is(err, bank.ErrIdempotencyKeyReused) {
			t.Fatalf("refused id reused with another amount: %v, want ErrIdempotencyKeyReused", err)
		}
		if after := balanceOf(t, l, "bob"); after != before {
			t.Fatalf("a repeated refusal moved money: %d -> %d", before, after)
		}
		unknown := newID()
		for range 2 {
			if _, err := l.UpdateBalance(ctx, unknown, credit("nobody", 5)); !errors.Is(err, bank.ErrAccountNotFound) {
				t.Fatalf("unknown account: %v, want ErrAccountNotFound both times", err)
			}
		}
	})
}

func balanceOf(t *testing.T, l *bank.Ledger, id string) int64 {
	t.Helper()
	a, err := l.Balance(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return a.Balance
}

func TestEnsureAccount(t *testing.T) {
	t.Parallel()
	l := newLedger(t)
	ctx := t.Context()
	created, err := l.EnsureAccount(ctx, bank.AccountSeed{ID: "alice", Owner: "Alice", Currency: "usd", Opening: 999})
	if err != nil || created {
		t.Fatalf("EnsureAccount of an existing account = %v, %v; want false, nil", created, err)
	}
	wantBalances(t, l, "alice", balances{100, 0, 0})
	if _, err := l.EnsureAccount(ctx, bank.AccountSeed{ID: "alice", Currency: "eur"}); err == nil {
		t.Fatal("EnsureAccount with another currency succeeded")
	}
	entries, err := l.Entries(ctx, "opening:alice")
	if err != nil || len(entries) != 1 || entries[0].Kind != bank.KindOpening || entries[0].Amount != 100 {
		t.Fatalf("opening entries = %+v, %v", entries, err)
	}
	if _, err := l.Balance(ctx, "nobody"); !errors.Is(err, bank.ErrAccountNotFound) {
		t.Fatalf("Balance(nobody) = %v, want ErrAccountNotFound", err)
	}
}

func TestDurableAcrossReopen(t *testing.T) {
	t.Parallel()
	path := storetest.Target(t, t.TempDir(), "ledger")
	ctx := context.Background()
	l, err := bank.OpenLedger(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range defaultSeeds {
		if _, err := l.EnsureAccount(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	committed, prepared := newID(), newID()
	mustPrepare(t, l, committed, yes, debit("alice", 30), credit("bob", 30))
	mustCommit(t, l, committed, true, bank.StateCommitted)
	mustPrepare(t, l, prepared, yes, debit("alice", 20))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	// Reopen as a restarted process would, seeding the same accounts.
	l = openLedger(t, path)
	wantBalances(t, l, "alice", balances{70, 20, 0})
	wantBalances(t, l, "bob", balances{80, 0, 0})
	mustCommit(t, l, committed, true, bank.StateCommitted)
	wantBalances(t, l, "alice", balances{70, 20, 0})
	// The prepared transaction survived with its hold and can be decided.
	mustCommit(t, l, prepared, true, bank.StateCommitted)
	wantBalances(t, l, "alice", balances{50, 0, 0})
}

func TestExpiredAndPrune(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		l := newLedger(t)
		ctx := t.Context()
		start := time.Now()
		soon, later, decided, never := newID(), newID(), newID(), newID()
		for _, p := range []struct {
			id     string
			expire time.Time
		}{{soon, start.Add(time.Minute)}, {later, start.Add(time.Hour)}, {decided, start}, {never, time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)}} {
			if v, err := l.Prepare(ctx, p.id, []bank.Leg{debit("alice", 10)}, p.expire); err != nil || !v.Yes {
				t.Fatalf("prepare: %+v, %v", v, err)
			}
		}
		mustCommit(t, l, decided, true, bank.StateCommitted)
		tombstone, aborted := newID(), newID()
		mustCommit(t, l, tombstone, false, bank.StateAborted)
		mustPrepare(t, l, aborted, yes, debit("bob", 5), credit("alice", 5))
		mustCommit(t, l, aborted, false, bank.StateAborted)

		expired := func(at time.Time) []string {
			t.Helper()
			ids, err := l.Expired(ctx, at)
			if err != nil {
				t.Fatal(err)
			}
			return ids
		}
		if got := expired(start.Add(time.Minute - time.Nanosecond)); len(got) != 0 {
			t.Errorf("expired before any expiry: %v", got)
		}
		if diff := cmp.Diff([]string{soon}, expired(start.Add(time.Minute))); diff != "" {
			t.Errorf("expired at the first expiry (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]string{soon, later}, expired(start.Add(24*time.Hour))); diff != "" {
			t.Errorf("expired a day later (-want +got):\n%s", diff)
		}

		// Pruning keeps prepared records whatever their age.
		n, err := l.Prune(ctx, start.Add(time.Second))
		if err != nil || n != 3 {
			t.Fatalf("Prune = %d, %v; want 3 (the committed, the aborted and the tombstone)", n, err)
		}
		for id, want := range map[string]bool{soon: true, later: true, decided: false, tombstone: false, aborted: false} {
			if _, ok, err := l.State(ctx, id); err != nil || ok != want {
				t.Errorf("State(%s) known = %v, %v; want %v", id, ok, err, want)
			}
		}
		// The journal outlives the record: the payment is still applied once.
		mustCommit(t, l, decided, true, bank.StateCommitted)
		if _, err := l.Commit(ctx, decided, false); !errors.Is(err, bank.ErrAlreadyCommitted) {
			t.Errorf("abort of a pruned committed payment: %v, want ErrAlreadyCommitted", err)
		}
		mustPrepare(t, l, decided, no(bank.ErrIdempotencyKeyReused, ""), debit("alice", 10))
		wantBalances(t, l, "alice", balances{90, 30, 0})
		// A pruned abort is forgotten with its legs: a prepare arriving after the
		// retention period is a new transaction (which the resolver will settle
		// with the gateway once it expires).
		mustPrepare(t, l, aborted, yes, debit("bob", 5), credit("alice", 5))
		wantBalances(t, l, "bob", balances{50, 5, 0})
	})
}

// TestConcurrentDebits races many payers for one account: a debit is only
// prepared while available covers it, so available never goes below zero and
// balance, held and the journal always agree.
func TestConcurrentDebits(t *testing.T) {
	t.Parallel()
	l := newLedger(t)
	ctx := t.Context()
	const workers, amount = 64, 7

	stop := make(chan struct{})
	watcherDone := make(chan struct{})
	go func() {
		defer close(watcherDone)
		for {
			select {
			case <-stop:
				return
			default:
			}
			a, err := l.Balance(ctx, "alice")
			if err != nil {
				t.Error(err)
				return
			}
			if a.Held < 0 || a.Available() < 0 || a.Held > a.Balance {
				t.Errorf("inconsistent account: %+v", a)
				return
			}
		}
	}()

	var mu sync.Mutex
	var committed []string
	var withdrawn atomic.Int64
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() {
			id := newID()
			v, err := l.Prepare(ctx, id, []bank.Leg{debit("alice", amount), credit("bob", amount)}, time.Now().Add(time.Minute))
			if err != nil {
				t.Error(err)
				return
			}
			if !v.Yes {
				if !errors.Is(v.Reason, bank.ErrInsufficientFunds) {
					t.Errorf("vote %+v", v)
				}
				return
			}
			commit := i%3 != 0
			if _, err := l.Commit(ctx, id, commit); err != nil {
				t.Error(err)
				return
			}
			if commit {
				mu.Lock()
				committed = append(committed, id)
				mu.Unlock()
			}
		})
		// Single-phase withdrawals compete for the same funds.
		wg.Go(func() {
			_, err := l.UpdateBalance(ctx, newID(), debit("alice", 1))
			switch {
			case err == nil:
				withdrawn.Add(1)
			case !errors.Is(err, bank.ErrInsufficientFunds):
				t.Error(err)
			}
		})
	}
	wg.Wait()
	close(stop)
	<-watcherDone

	alice, _ := l.Balance(ctx, "alice")
	bob, _ := l.Balance(ctx, "bob")
	if alice.Held != 0 || bob.Incoming != 0 {
		t.Errorf("holds left: alice %+v, bob %+v", alice, bob)
	}
	if got := int64(len(committed)) * amount; bob.Balance != 50+got {
		t.Errorf("bob has %d, want %d after %d payments", bob.Balance, 50+got, len(committed))
	}
	// Money is conserved: what left alice went to bob or was withdrawn.
	if want := 100 - int64(len(committed))*amount - withdrawn.Load(); alice.Balance != want {
		t.Errorf("alice has %d, want %d after %d payments and %d withdrawals", alice.Balance, want, len(committed), withdrawn.Load())
	}
	if len(committed) == 0 || withdrawn.Load() == 0 {
		t.Errorf("the race did not exercise both paths: %d payments, %d withdrawals", len(committed), withdrawn.Load())
	}
	for _, id := range committed {
		if e, err := l.Entries(ctx, id); err != nil || len(e) != 2 {
			t.Errorf("journal of %s: %d entries, %v; want 2", id, len(e), err)
		}
	}
}

// Stats counts what the bank's metrics export with aggregate queries: it
// must agree with Expired and Accounts, which list the same rows.
func TestStats(t *testing.T) {
	l := newLedger(t)
	ctx := t.Context()
	now := time.Now()
	mustPrepare(t, l, newID(), yes, debit("alice", 10), credit("bob", 10)) // expires in a minute
	if v, err := l.Prepare(ctx, newID(), []bank.Leg{debit("bob", 7)}, now.Add(-time.Second)); err != nil || !v.Yes {
		t.Fatalf("prepare: %+v, %v", v, err)
	}
	committed := newID()
	mustPrepare(t, l, committed, yes, debit("alice", 1))
	mustCommit(t, l, committed, true, bank.StateCommitted)

	st, err := l.Stats(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	all, err := l.Expired(ctx, time.Unix(0, math.MaxInt64))
	if err != nil {
		t.Fatal(err)
	}
	expired, err := l.Expired(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	accounts, err := l.Accounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	held := map[string]int64{}
	for _, a := range accounts {
		held[a.Currency] += a.Held
	}
	if st.Prepared != 2 || len(all) != 2 || st.Expired != 1 || len(expired) != 1 {
		t.Errorf("Stats prepared %d, expired %d; listed %d and %d; want 2 and 1", st.Prepared, st.Expired, len(all), len(expired))
	}
	if st.Accounts != len(accounts) || !maps.Equal(st.Held, held) || held["usd"] != 17 {
		t.Errorf("Stats accounts %d, held %v; listed %d accounts holding %v; want 17 usd held", st.Accounts, st.Held, len(accounts), held)
	}
}
