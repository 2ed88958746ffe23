package main

import (
	"context"
	"os"

	"github.com/remitpay/remit/client"
	"github.com/remitpay/remit/client/outbox"
	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
)

// crashAfterSendEnv names a test hook, used by the end-to-end tests only
// (e2e/cli_outbox_test.go): when it is "1", the CLI kills itself with
// SIGKILL right after the gateway answered a payment sent from the outbox
// and before the outbox recorded the answer. That is the one window in
// which a crash leaves a payment queued although the gateway decided it;
// the test then checks that the next flush still moves the money exactly
// once. It is honoured nowhere else and changes nothing when unset.
const crashAfterSendEnv = "REMIT_TEST_CRASH_AFTER_SEND"

// outboxGateway is the gateway the outbox sends through: the client
// itself, or, under the test hook, a wrapper that crashes after the send.
func outboxGateway(c *client.Client) outbox.Gateway {
	if os.Getenv(crashAfterSendEnv) == "1" {
		return crashAfterSend{c}
	}
	return c
}

// crashAfterSend is the test hook of crashAfterSendEnv.
type crashAfterSend struct{ outbox.Gateway }

func (g crashAfterSend) Pay(ctx context.Context, req client.PaymentRequest) (*gatewayv1.Payment, error) {
	p, err := g.Gateway.Pay(ctx, req)
	if err == nil || !client.IsRetryable(err) {
		// The gateway answered; the outbox has not recorded it yet.
		if self, ferr := os.FindProcess(os.Getpid()); ferr == nil {
			_ = self.Kill() // SIGKILL: no deferred function, no cleanup runs
			select {}       // never reached: the process is gone
		}
	}
	return p, err
}
