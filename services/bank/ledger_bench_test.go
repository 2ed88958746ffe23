package bank_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/remitpay/remit/internal/benchtest"
	"github.com/remitpay/remit/internal/store/storetest"
	"github.com/remitpay/remit/services/bank"
)

// BenchmarkLedgerPrepareCommit measures a bank's two durable steps of one
// payment: Prepare (the YES vote with its hold, one fsynced SQLite
// transaction) then Commit (applying it, another), on the real disk. The
// same-bank case has both legs at this bank; the cross-bank case one debit.
// Parallel runs 16 payments at once over distinct accounts, as a busy bank
// sees them. Compare runs with benchstat:
//
//	go test -run '^$' -bench LedgerPrepareCommit -count 6 ./services/bank/ > old.txt
func BenchmarkLedgerPrepareCommit(b *testing.B) {
	for _, tc := range []struct {
		name     string
		sameBank bool
		parallel bool
	}{
		{"cross-bank", false, false},
		{"same-bank", true, false},
		{"cross-bank-parallel-16", false, true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			ctx := context.Background()
			l, err := bank.OpenLedger(ctx, storetest.Target(b, b.TempDir(), "ledger"))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() {
				if err := l.Close(); err != nil {
					b.Error(err)
				}
			})
			const accounts = 64
			for i := range accounts {
				id := fmt.Sprintf("acct-%02d", i)
				if _, err := l.EnsureAccount(ctx, bank.AccountSeed{ID: id, Owner: id, Currency: "usd", Opening: 1 << 40}); err != nil {
					b.Fatal(err)
				}
			}
			var n atomic.Int64
			pay := func() error {
				i := n.Add(1)
				legs := []bank.Leg{{AccountID: fmt.Sprintf("acct-%02d", i%accounts), Direction: bank.Debit, Amount: 1, Currency: "usd"}}
				if tc.sameBank {
					legs = append(legs, bank.Leg{AccountID: fmt.Sprintf("acct-%02d", (i+1)%accounts), Direction: bank.Credit, Amount: 1, Currency: "usd"})
				}
				id := uuid.NewString()
				vote, err := l.Prepare(ctx, id, legs, time.Now().Add(time.Minute))
				if err != nil {
					return err
				}
				if !vote.Yes {
					return fmt.Errorf("prepare %s voted NO: %w", id, vote.Reason)
				}
				if _, err := l.Commit(ctx, id, true); err != nil {
					return err
				}
				return nil
			}
			benchtest.Payments(b, tc.parallel, pay)
		})
	}
}
