package gateway_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
	"github.com/remitpay/remit/services/gateway/gatewaytest"
)

// TestIntegrationReplicasShareOneLog: two gateway replicas on one
// PostgreSQL schema (skipped on SQLite). The same payment sent to both at
// once moves money once and both answer it the same; bob's stream on the
// second replica sees the payment whichever replica decided it; a
// token of one works on the other, and a logout on the second ends it on
// the first.
func TestIntegrationReplicasShareOneLog(t *testing.T) {
	n := gatewaytest.Start(t, gatewaytest.Options{})
	second := n.AddReplica(t)
	admin := n.Login(t, gatewaytest.AdminID)
	alice := n.Login(t, "alice")
	aliceThere := alice.At(second.URL) // the same session, at the other replica
	bobThere := n.Login(t, "bob").At(second.URL)

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	stream, err := bobThere.Payments.WatchPayments(ctx, &gatewayv1.WatchPaymentsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	events := make(chan *gatewayv1.WatchPaymentsResponse, 16)
	go func() {
		for stream.Receive() {
			events <- stream.Msg()
		}
		close(events)
	}()

	for round := range 5 {
		id := newID()
		req := &gatewayv1.MakePaymentRequest{TransactionId: id, Payee: gatewaytest.Ref("bob"), Amount: 7,
			Currency: gatewaytest.Currency, Description: "replicas"}
		var wg sync.WaitGroup
		answers := make([]*gatewayv1.Payment, 2)
		errs := make([]error, 2)
		for i, c := range []*gatewaytest.Client{alice, aliceThere} {
			wg.Go(func() { answers[i], errs[i] = makePayment(ctx, c, req) })
		}
		wg.Wait()
		for i := range answers {
			if errs[i] != nil {
				t.Fatalf("round %d, replica %d: %v", round, i+1, errs[i])
			}
			if answers[i].GetTransactionId() != id || answers[i].GetStatus() != gatewayv1.PaymentStatus_PAYMENT_STATUS_SUCCEEDED {
				t.Fatalf("round %d, replica %d answered %v", round, i+1, answers[i])
			}
		}
		// bob's stream on the second replica hears of it.
		deadline := time.After(10 * time.Second)
	wait:
		for {
			select {
			case e, ok := <-events:
				if !ok {
					t.Fatalf("bob's stream on the second replica ended: %v", stream.Err())
				}
				if e.GetPayment().GetTransactionId() == id && e.GetType() == gatewayv1.PaymentEventType_PAYMENT_EVENT_TYPE_SUCCEEDED {
					break wait
				}
			case <-deadline:
				t.Fatalf("round %d: bob's stream on the second replica never saw %s", round, id)
			}
		}
	}
	// A payment decided by the first replica alone reaches bob's stream on
	// the second (through the change bus, or its hub's reading the log).
	only := mustPay(t, alice, "bob", 3)
	deadline := time.After(10 * time.Second)
	for seen := false; !seen; {
		select {
		case e, ok := <-events:
			if !ok {
				t.Fatalf("bob's stream on the second replica ended: %v", stream.Err())
			}
			seen = e.GetPayment().GetTransactionId() == only.GetTransactionId()
		case <-deadline:
			t.Fatalf("bob's stream on the second replica never saw %s, decided by the first", only.GetTransactionId())
		}
	}
	// Five payments of 7, each sent twice at once, and one of 3: 38
	// moved, not 73.
	waitFunds(t, admin, map[string]funds{
		"alice": settled(gatewaytest.Opening - 38),
		"bob":   settled(gatewaytest.Opening + 38),
	})

	if _, err := aliceThere.Auth.Logout(callCtx(t), &gatewayv1.LogoutRequest{}); err != nil {
		t.Fatal(err)
	}
	gatewaytest.WaitFor(t, "the logout on the second replica to end the session on the first", func() error {
		_, err := alice.Payments.CheckBalance(callCtx(t), &gatewayv1.CheckBalanceRequest{})
		switch {
		case connect.CodeOf(err) == connect.CodeUnauthenticated:
			return nil
		case err == nil:
			return errors.New("the first replica still takes the token")
		}
		return err
	})
}
