package gateway_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"

	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
	"github.com/remitpay/remit/services/gateway/gatewaytest"
)

// BenchmarkMakePayment measures one cross-bank payment end to end: the
// client's MakePayment over TLS, the gateway's durable claim, parallel
// prepares at two banks (each a durable SQLite transaction), the durable
// decision, and phase two at both banks. Data lives on the real disk, so
// every fsync is paid. Run with `task bench:go` or
// `go test -run '^$' -bench MakePayment ./services/gateway/`.
func BenchmarkMakePayment(b *testing.B) {
	for _, tc := range []struct {
		name     string
		sameBank bool
	}{{"cross-bank", false}, {"same-bank", true}} {
		b.Run(tc.name, func(b *testing.B) {
			net := gatewaytest.Start(b, gatewaytest.Options{OnDisk: true})
			alice := net.Login(b, "alice")
			payee := "bob"
			if tc.sameBank {
				payee = "dave"
			}
			other := net.Login(b, payee)
			ctx := context.Background()
			var n atomic.Int64
			b.SetParallelism(8) // 16 concurrent clients on 2 cores: a busy gateway
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					// Alternate directions so balances never run out.
					from, to := alice, gatewaytest.Ref(payee)
					if n.Add(1)%2 == 0 {
						from, to = other, gatewaytest.Ref("alice")
					}
					_, err := from.Payments.MakePayment(ctx, &gatewayv1.MakePaymentRequest{
						TransactionId: uuid.NewString(), Payee: to, Amount: 1, Currency: "usd",
					})
					if err != nil {
						b.Error(fmt.Errorf("payment %d: %w", n.Load(), err))
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "payments/s")
		})
	}
}
