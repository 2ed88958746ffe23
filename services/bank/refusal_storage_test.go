package bank_test

import (
	"database/sql"
	"errors"
	"testing"

	"github.com/remitpay/remit/internal/store"
	"github.com/remitpay/remit/internal/store/storetest"
	"github.com/remitpay/remit/services/bank"
)

// storedRefusals are the codes under which refusals have always been stored
// in prepared_transactions.refusal_reason and refused_adjustments.reason.
// Existing ledgers hold these strings: they must keep reading back as the
// same refusal.
var storedRefusals = []struct {
	code string
	err  error
}{
	{"ACCOUNT_NOT_FOUND", bank.ErrAccountNotFound},
	{"CURRENCY_MISMATCH", bank.ErrCurrencyMismatch},
	{"INSUFFICIENT_FUNDS", bank.ErrInsufficientFunds},
	{"BALANCE_OVERFLOW", bank.ErrBalanceOverflow},
	{"SOMETHING_NEWER", bank.ErrAlreadyAborted}, // unknown: still a refusal
}

// openRaw opens the ledger's database beside the ledger, to read and write
// the stored rows as an older version left them.
func openRaw(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := store.Open(t.Context(), path, "ledger")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("close database: %v", err)
		}
	})
	return db
}

func TestStoredPrepareRefusalsStillRead(t *testing.T) {
	t.Parallel()
	path := storetest.Target(t, t.TempDir(), "ledger")
	l := openLedger(t, path)
	db := openRaw(t, path)
	id := newID()
	mustPrepare(t, l, id, no(bank.ErrInsufficientFunds, "bob"), debit("bob", 80))
	var code, account string
	if err := db.QueryRowContext(t.Context(), `SELECT refusal_reason, refusal_account FROM prepared_transactions
		WHERE transaction_id = ?`, id).Scan(&code, &account); err != nil {
		t.Fatal(err)
	}
	if code != "INSUFFICIENT_FUNDS" || account != "bob" {
		t.Fatalf("stored refusal (%q, %q), want (INSUFFICIENT_FUNDS, bob): the storage format changed", code, account)
	}
	for _, r := range storedRefusals {
		if _, err := db.ExecContext(t.Context(), `UPDATE prepared_transactions SET refusal_reason = ? WHERE transaction_id = ?`, r.code, id); err != nil {
			t.Fatal(err)
		}
		mustPrepare(t, l, id, no(r.err, "bob"), debit("bob", 80))
	}
}

func TestStoredAdjustmentRefusalsStillRead(t *testing.T) {
	t.Parallel()
	path := storetest.Target(t, t.TempDir(), "ledger")
	l := openLedger(t, path)
	db := openRaw(t, path)
	id := newID()
	if _, err := l.UpdateBalance(t.Context(), id, debit("bob", 80)); !errors.Is(err, bank.ErrInsufficientFunds) {
		t.Fatalf("withdrawal beyond the balance: %v, want ErrInsufficientFunds", err)
	}
	var code string
	if err := db.QueryRowContext(t.Context(), `SELECT reason FROM refused_adjustments WHERE transaction_id = ?`, id).Scan(&code); err != nil {
		t.Fatal(err)
	}
	if code != "INSUFFICIENT_FUNDS" {
		t.Fatalf("stored refusal %q, want INSUFFICIENT_FUNDS: the storage format changed", code)
	}
	for _, r := range storedRefusals {
		if _, err := db.ExecContext(t.Context(), `UPDATE refused_adjustments SET reason = ? WHERE transaction_id = ?`, r.code, id); err != nil {
			t.Fatal(err)
		}
		if _, err := l.UpdateBalance(t.Context(), id, debit("bob", 80)); !errors.Is(err, r.err) {
			t.Errorf("stored %s: repeat got %v, want %v", r.code, err, r.err)
		}
	}
	wantBalances(t, l, "bob", balances{50, 0, 0})
}
