package gateway

import (
	"context"
	"path/filepath"
	"testing"
	"testing/fstest"

	"github.com/google/uuid"

	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
	"github.com/remitpay/remit/internal/rpcerr"
	"github.com/remitpay/remit/internal/store"
)

// An old gateway.db (migration 001 only) with the legacy strings in
// failure_reason loads and reads back as typed reasons; opening it twice
// shows the migrations are idempotent. A failed row stored without a reason
// shows DECLINED_BY_BANK in its Payment and its error alike.
func TestOldGatewayDBLoads(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "gateway.db")
	db, err := store.OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	body, err := migrationFiles.ReadFile("migrations/001_init.sql")
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Migrate(ctx, db, "gateway", fstest.MapFS{"001_init.sql": {Data: body}}); err != nil {
		t.Fatal(err)
	}
	rows := map[string]gatewayv1.FailureReason{
		"INSUFFICIENT_FUNDS":     gatewayv1.FailureReason_FAILURE_REASON_INSUFFICIENT_FUNDS,
		"IDEMPOTENCY_KEY_REUSED": gatewayv1.FailureReason_FAILURE_REASON_TRANSACTION_ID_CONFLICT,
		"INVALID_ARGUMENT":       gatewayv1.FailureReason_FAILURE_REASON_DECLINED_BY_BANK,
		"DECLINED_BY_BANK":       gatewayv1.FailureReason_FAILURE_REASON_DECLINED_BY_BANK,
		"":                       gatewayv1.FailureReason_FAILURE_REASON_UNSPECIFIED,
	}
	ids := map[string]string{}
	for stored := range rows {
		id := uuid.NewString()
		ids[stored] = id
		if _, err := db.ExecContext(ctx, `INSERT INTO transactions (transaction_id, kind, client_id, fingerprint,
			payer_bank, payer_account, payee_bank, payee_account, direction, amount, currency, description, status,
			failure_reason, decision, create_time) VALUES (?, 'adjustment', 'admin', 'fp', '', '', 'bank-a', 'alice',
			'debit', 5, 'usd', '', 'failed', ?, NULL, 1)`, id, stored); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	for range 2 { // migrations are idempotent: open twice
		st, err := OpenStore(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		for stored, want := range rows {
			got, err := st.Get(ctx, ids[stored])
			if err != nil {
				t.Fatal(err)
			}
			if got.FailureReason != want || got.FailureBank != "" || got.FailureAccount != "" {
				t.Errorf("stored %q reads as %v (%q/%q), want %v", stored, got.FailureReason, got.FailureBank, got.FailureAccount, want)
			}
			if stored == "" {
				shown, reason := paymentProto(got).GetFailureReason(), rpcerr.Reason(declined(got))
				if shown != gatewayv1.FailureReason_FAILURE_REASON_DECLINED_BY_BANK || reason != "DECLINED_BY_BANK" {
					t.Errorf("failed row without a reason shows %v in its Payment and %q in its error, want DECLINED_BY_BANK in both", shown, reason)
				}
			}
		}
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
