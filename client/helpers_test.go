package client_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/remitpay/remit/client"
	"github.com/remitpay/remit/client/clienttest"
)

var (
	alice = clienttest.Alice
	bob   = clienttest.Bob
)

const initial = clienttest.InitialBalance

func newGateway(t *testing.T) *clienttest.Gateway {
	t.Helper()
	return clienttest.New(t)
}

// newClient returns a client of g logged in as clientID (by token; "" for
// none), with the given retry policy (nil: no retries, no sleeping).
func newClient(t *testing.T, g *clienttest.Gateway, clientID string, retry *client.RetryPolicy) *client.Client {
	t.Helper()
	cfg := g.Config()
	if clientID != "" {
		cfg.Token = g.Token(clientID)
	}
	if retry == nil {
		retry = &client.RetryPolicy{MaxAttempts: 1}
	}
	cfg.Retry = retry
	c, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// payment is a payment of amount cents from the caller to bob.
func payment(amount int64) client.PaymentRequest {
	return client.PaymentRequest{Payee: bob, Amount: amount, Currency: "usd", Description: "test"}
}

// recorder is an injected RetryPolicy.Sleep that records delays and
// returns at once.
type recorder struct {
	mu     sync.Mutex
	delays []time.Duration
}

func (r *recorder) sleep(ctx context.Context, d time.Duration) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.delays = append(r.delays, d)
	return ctx.Err()
}

func (r *recorder) get() []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.delays)
}

// hooksFailing fails the first n requests of every transaction id with
// fail() before anything is recorded.
func hooksFailing(n int, fail func() error) clienttest.Hooks {
	return clienttestHooks(func(call int) error {
		if call <= n {
			return fail()
		}
		return nil
	}, nil)
}

// clienttestHooks adapts per-call functions to clienttest.Hooks.
func clienttestHooks(before, after func(call int) error) clienttest.Hooks {
	var h clienttest.Hooks
	if before != nil {
		h.Before = func(call int, _ string) error { return before(call) }
	}
	if after != nil {
		h.After = func(call int, _ string) error { return after(call) }
	}
	return h
}

type clienttestCall = clienttest.Call
