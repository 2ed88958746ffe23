package gateway_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
	"github.com/remitpay/remit/internal/rpcerr"
	"github.com/remitpay/remit/services/gateway/gatewaytest"
)

// A bank that hangs with 20 unanswered deposits (its ledger is locked: it
// answers health checks, but no call) does not hold up the re-driver's work
// for the other banks: a payment whose phase two was cut at bank-b settles
// within a few commit timeouts of bank-b coming back, where the sequential
// re-driver first sat out 20 adjustment timeouts (40 s here) per pass. Once
// the hung bank answers, every deposit is applied exactly once.
func TestIntegrationRedriverHungBankBacklog(t *testing.T) {
	t.Parallel()
	timing := windowTiming
	timing.AdjustCall = 2 * time.Second
	n := gatewaytest.Start(t, gatewaytest.Options{Timing: timing, RegisterInterval: time.Hour, Metrics: true})
	bob, admin := n.Login(t, "bob"), n.Login(t, gatewaytest.AdminID)

	releaseC := n.Banks["bank-c"].LockLedger(t)
	const deposits, amount = 20, 10 // also the payment's amount
	var wg sync.WaitGroup
	errs := make(chan error, deposits)
	for range deposits {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			_, err := admin.Admin.UpdateBalance(ctx, &gatewayv1.UpdateBalanceRequest{
				TransactionId: newID(), Account: gatewaytest.Ref("carol"), Direction: gatewayv1.Direction_DIRECTION_CREDIT,
				Amount: amount, Currency: gatewaytest.Currency,
			})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		// Recorded, not answered: the re-driver keeps asking bank-c.
		if connect.CodeOf(err) != connect.CodeAborted || rpcerr.Reason(err) != "REQUEST_IN_PROGRESS" {
			t.Fatalf("deposit at the hung bank: %v (reason %q), want aborted REQUEST_IN_PROGRESS", err, rpcerr.Reason(err))
		}
	}

	decidedWhileCut(t, n, bob, admin, amount, "bank-b")
	start := time.Now()
	n.Banks["bank-b"].Proxy.Restore()
	waitFunds(t, admin, map[string]funds{"alice": settled(gatewaytest.Opening + amount), "bob": settled(gatewaytest.Opening - amount)})
	if took, limit := time.Since(start), 6*timing.CommitCall; took > limit {
		t.Errorf("phase two at bank-b took %v after it came back while bank-c hung, want under %v", took, limit)
	}

	releaseC()
	waitFunds(t, admin, map[string]funds{"carol": settled(gatewaytest.Opening + deposits*amount)})
	stopBanks(t, n)
	checkAccounts(t, readBooks(t, n), map[string]int64{
		"alice": gatewaytest.Opening + amount, "bob": gatewaytest.Opening - amount, "carol": gatewaytest.Opening + deposits*amount,
	})
}
