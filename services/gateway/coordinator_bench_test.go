package gateway

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/remitpay/remit/internal/store/storetest"

	"github.com/google/uuid"

	"github.com/remitpay/remit/internal/benchtest"
)

// benchCoordinator is a coordinator over a store on the real disk (every
// fsync paid) and two in-memory banks that vote YES at once (fakeBank), so
// that a benchmark measures the gateway's own decision path: the claim,
// the phase-one fan-out, the durable decision, phase two and the
// acknowledgements.
func benchCoordinator(b *testing.B) (*Coordinator, *Store) {
	b.Helper()
	st, err := OpenStore(context.Background(), storetest.Target(b, b.TempDir(), "gateway"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := st.Close(); err != nil {
			b.Error(err)
		}
	})
	banks := &fakeBanks{banks: map[string]*fakeBank{"bank-a": newFakeBank(), "bank-b": newFakeBank()}, states: map[string]BankState{}}
	timing := testTiming
	timing.PrepareCall, timing.CommitCall, timing.Decision = 5*time.Second, 5*time.Second, 10*time.Second
	return NewCoordinator(st, banks, slog.New(slog.DiscardHandler), timing), st
}

// BenchmarkCoordinatorPay measures Coordinator.Pay for a cross-bank payment
// whose banks answer at once: what the gateway itself costs per payment,
// one at a time and 16 at once. Compare runs with benchstat:
//
//	go test -run '^$' -bench 'CoordinatorPay|StoreClaim' -count 6 ./services/gateway/ > old.txt
func BenchmarkCoordinatorPay(b *testing.B) {
	for _, tc := range []struct {
		name     string
		parallel bool
	}{{"serial", false}, {"parallel-16", true}} {
		b.Run(tc.name, func(b *testing.B) {
			coord, _ := benchCoordinator(b)
			ctx := context.Background()
			pay := func() error {
				t, err := coord.Pay(ctx, payment(uuid.NewString()))
				if err != nil {
					return err
				}
				if t.Status != StatusSucceeded {
					b.Errorf("payment %s: status %s (%s)", t.ID, t.Status, t.FailureReason)
				}
				return nil
			}
			benchtest.Payments(b, tc.parallel, pay)
		})
	}
}

// BenchmarkStoreClaim measures the idempotency claim alone: inserting a new
// PROCESSING payment and its participants in one fsynced transaction
// ("new"), and claiming an id already taken, which reads the stored row
// and writes nothing ("existing", a client's retry).
func BenchmarkStoreClaim(b *testing.B) {
	b.Run("new", func(b *testing.B) {
		_, st := benchCoordinator(b)
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			if _, claimed, err := st.Claim(ctx, claimTxn(uuid.NewString())); err != nil || !claimed {
				b.Fatalf("claim: claimed %v, %v", claimed, err)
			}
		}
	})
	b.Run("new-parallel-16", func(b *testing.B) {
		_, st := benchCoordinator(b)
		ctx := context.Background()
		b.ReportAllocs()
		b.SetParallelism(8)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, claimed, err := st.Claim(ctx, claimTxn(uuid.NewString())); err != nil || !claimed {
					b.Errorf("claim: claimed %v, %v", claimed, err)
					return
				}
			}
		})
	})
	b.Run("existing", func(b *testing.B) {
		_, st := benchCoordinator(b)
		ctx := context.Background()
		t := claimTxn(uuid.NewString())
		if _, claimed, err := st.Claim(ctx, t); err != nil || !claimed {
			b.Fatalf("first claim: claimed %v, %v", claimed, err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, claimed, err := st.Claim(ctx, t); err != nil || claimed {
				b.Fatalf("repeat claim: claimed %v, %v", claimed, err)
			}
		}
	})
}

// claimTxn is the row Coordinator.Pay claims for payment(id).
func claimTxn(id string) *Txn {
	req := payment(id)
	now := time.Now()
	return &Txn{
		ID: id, Kind: KindPayment, ClientID: req.ClientID, Fingerprint: "bench",
		Payer: req.Payer, Payee: req.Payee, Amount: req.Amount, Currency: req.Currency,
		Description: req.Description, Status: StatusProcessing, CreateTime: now,
		PrepareDeadline: now.Add(time.Minute), Participants: participants(req.Payer, req.Payee),
	}
}
