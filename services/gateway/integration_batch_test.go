package gateway_test

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/remitpay/remit/services/gateway/gatewaytest"
)

// Batched delivery: many concurrent payments while each bank in turn is slow
// for a moment, so that its prepares and commits queue up behind the ones in
// flight and go as batch RPCs. Money is conserved exactly as with unary
// calls (the conservation checks), and the banks did get batches: their
// batch size histogram and RPC counters show PrepareTransactions and
// CommitTransactions calls.
func TestIntegrationBatchedConservation(t *testing.T) {
	t.Parallel()
	n := gatewaytest.Start(t, gatewaytest.Options{Metrics: true})
	var prepares, commits float64
	conservation(t, n, 300, 32, func(stop <-chan struct{}, _ *rand.Rand) {
		// The checks stop the banks: read their metrics once the payments
		// are answered, before that.
		defer func() {
			<-stop
			for _, name := range gatewaytest.BankNames {
				f := scrape(t, n.Banks[name].MetricsURL())
				p, _ := f.value("remit_bank_batch_items", "phase", "prepare")
				c, _ := f.value("remit_bank_batch_items", "phase", "commit")
				rpcs, _ := f.value("remit_rpc_requests_total", "procedure", "/remit.bank.v1.BankService/PrepareTransactions", "code", "ok")
				t.Logf("%s: %v prepare batches, %v commit batches, %v PrepareTransactions ok", name, p, c, rpcs)
				prepares += p
				commits += c
			}
		}()
		for _, name := range gatewaytest.BankNames {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			release, err := n.Banks[name].TryLockLedger()
			if err != nil {
				t.Errorf("slow %s: %v", name, err)
				return
			}
			// Shorter than a prepare may take: the calls held here are
			// answered, and the ones behind them form batches.
			select {
			case <-stop:
			case <-time.After(200 * time.Millisecond):
			}
			release()
		}
	})
	if prepares == 0 || commits == 0 {
		t.Errorf("no batches formed under load: %v prepare and %v commit batches", prepares, commits)
	}
}
