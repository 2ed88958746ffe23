package gateway_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
	"github.com/remitpay/remit/internal/rpcerr"
	"github.com/remitpay/remit/services/gateway"
	"github.com/remitpay/remit/services/gateway/gatewaytest"
)

// Through the whole gateway (login, the authz interceptor, the default
// Config): a client id holds at most gateway.DefaultMaxWatchStreams open
// streams, each of them gets the payment's event, one more is refused with
// resource_exhausted TOO_MANY_STREAMS naming the limit, and another user
// still watches.
func TestIntegrationWatchStreamCap(t *testing.T) {
	t.Parallel()
	n := gatewaytest.Start(t, gatewaytest.Options{})
	alice, bob := n.Login(t, "alice"), n.Login(t, "bob")

	var open []*watcher
	for range gateway.DefaultMaxWatchStreams {
		open = append(open, watch(t, bob, &gatewayv1.WatchPaymentsRequest{}))
	}
	other := watch(t, alice, &gatewayv1.WatchPaymentsRequest{})
	p := mustPay(t, alice, "bob", 100)
	for _, w := range open {
		wantBobEvent(t, w.next(t), gatewayv1.PaymentEventType_PAYMENT_EVENT_TYPE_SUCCEEDED, p.GetTransactionId())
	}
	if e := other.next(t); e.GetPayment().GetTransactionId() != p.GetTransactionId() {
		t.Errorf("alice's stream got %v, want the event of %s", e, p.GetTransactionId())
	}

	extra := watch(t, bob, &gatewayv1.WatchPaymentsRequest{})
	select {
	case err := <-extra.done:
		cerr, ok := errors.AsType[*connect.Error](err)
		if !ok || cerr.Code() != connect.CodeResourceExhausted || rpcerr.Reason(err) != "TOO_MANY_STREAMS" ||
			!strings.Contains(cerr.Message(), "at most 8") {
			t.Fatalf("stream %d of bob: %v (reason %q), want resource_exhausted TOO_MANY_STREAMS naming the limit",
				gateway.DefaultMaxWatchStreams+1, err, rpcerr.Reason(err))
		}
	case e := <-extra.events:
		t.Fatalf("stream %d of bob was accepted: %v", gateway.DefaultMaxWatchStreams+1, e)
	case <-time.After(5 * time.Second):
		t.Fatalf("stream %d of bob was neither refused nor ended within 5s", gateway.DefaultMaxWatchStreams+1)
	}
}
