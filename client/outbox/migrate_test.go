package outbox_test

import (
	"testing"

	"github.com/remitpay/remit/client"
	"github.com/remitpay/remit/client/outbox"
)

// History written before the gateway dropped the "declined: " prefix of its
// messages reads as if written today: migration 002 strips the prefix.
func TestOldDeclinePrefixIsStripped(t *testing.T) {
	e := newEnv(t)
	if err := e.open(t, outbox.Options{}).Close(); err != nil {
		t.Fatal(err)
	}
	db := openDB(t, e.dir)
	old, bare, empty := client.NewTransactionID(), client.NewTransactionID(), client.NewTransactionID()
	for id, msg := range map[string]string{old: "declined: insufficient funds", bare: "no such account", empty: "declined"} {
		if _, err := db.ExecContext(t.Context(), `INSERT INTO history
			(transaction_id, client_id, gateway, status, code, reason, message, payment, payee_bank, payee_account,
			 amount, currency, description, created, completed, attempts)
			VALUES (?, 'alice', ?, 'FAILED', 'failed_precondition', 'INSUFFICIENT_FUNDS', ?, '', 'bank-b', 'bob', 100, 'usd', '', 1, 2, 1)`,
			id, e.g.URL, msg); err != nil {
			t.Fatal(err)
		}
	}
	// As an outbox of the previous version left it: migration 002 not applied.
	if _, err := db.ExecContext(t.Context(), `DELETE FROM schema_migrations WHERE version = 2`); err != nil {
		t.Fatal(err)
	}
	h := historyByID(t, e.open(t, outbox.Options{}))
	for id, want := range map[string]string{old: "insufficient funds", bare: "no such account", empty: ""} {
		if got := h[id].Message; got != want {
			t.Errorf("message of %s = %q, want %q", id, got, want)
		}
		if !client.IsDeclined(h[id].Err()) {
			t.Errorf("%s no longer reads as a decline: %v", id, h[id].Err())
		}
	}
}
