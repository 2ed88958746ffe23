package chaos

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/remitpay/remit/client"
	"github.com/remitpay/remit/client/outbox"
	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
	"github.com/remitpay/remit/internal/devnet"
)

// customer is a logged-in customer and its account.
type customer struct {
	id      string
	account client.AccountRef
	c       *client.Client
}

// retry is the workload's retry policy: the SDK's, a little more patient,
// so that most payments outlive a short fault and the rest end Unknown.
var retry = client.RetryPolicy{MaxAttempts: 6, BaseDelay: 200 * time.Millisecond, MaxDelay: 2 * time.Second, Jitter: 0.5}

// attemptTimeout bounds each send.
const attemptTimeout = 8 * time.Second

func newClient(url string, tlsConf *tls.Config, cred devnet.Credential) (*client.Client, error) {
	pol := retry
	return client.New(client.Config{
		GatewayURL:  url,
		TLSConfig:   tlsConf,
		Credentials: &client.Credentials{ClientID: cred.ClientID, Password: cred.Password},
		Timeout:     attemptTimeout,
		Retry:       &pol,
	})
}

// login logs cred in, retrying while the network settles.
func login(ctx context.Context, url string, tlsConf *tls.Config, cred devnet.Credential) (*client.Client, error) {
	c, err := newClient(url, tlsConf, cred)
	if err != nil {
		return nil, err
	}
	for {
		_, err := c.Login(ctx, cred.ClientID, cred.Password)
		if err == nil {
			return c, nil
		}
		select {
		case <-ctx.Done():
			return nil, errors.Join(fmt.Errorf("log in as %s: %w", cred.ClientID, err), c.Close())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// told classifies a payment's answer: the status of a final payment, or
// Unknown for anything that is not final.
func told(p *gatewayv1.Payment, err error) string {
	switch {
	case err == nil && p.GetStatus() == gatewayv1.PaymentStatus_PAYMENT_STATUS_SUCCEEDED:
		return Succeeded
	case err == nil && p.GetStatus() == gatewayv1.PaymentStatus_PAYMENT_STATUS_FAILED:
		return Failed
	case err != nil && client.IsDeclined(err):
		return Failed
	}
	return Unknown
}

// workload drives payments, replays, reads and adjustments until ctx ends.
type workload struct {
	h       *history
	custs   []customer
	auditor *client.Client
	admin   *client.Client
	// sent counts payment sends (replays included).
	sent atomic.Int64
}

// payer makes random payments between random accounts until ctx ends:
// some larger than any balance, some to an account at the same bank, and
// now and then a replay of a finished id, which must get the same answer.
func (w *workload) payer(ctx context.Context, rng *rand.Rand) {
	for ctx.Err() == nil {
		from := w.custs[rng.IntN(len(w.custs))]
		to := w.custs[rng.IntN(len(w.custs))]
		if to.id == from.id {
			continue
		}
		amount := 1 + rng.Int64N(3000)
		if rng.IntN(10) == 0 {
			amount = 1_000_000 + rng.Int64N(1000) // more than anyone holds
		}
		o := &op{id: client.NewTransactionID(), kind: "payment", payer: from.account, payee: to.account, amount: amount}
		w.h.add(o)
		w.send(ctx, from, o)
		if o.final() != Unknown && rng.IntN(6) == 0 {
			w.send(ctx, from, o) // a replay of a finished id
		}
	}
}

// send sends o as from, with o's id, and records the answer.
func (w *workload) send(ctx context.Context, from customer, o *op) {
	w.sent.Add(1)
	p, err := from.c.Pay(ctx, client.PaymentRequest{
		TransactionID: o.id, Payee: o.payee, Amount: o.amount, Currency: "usd", Description: "chaos",
	})
	if ctx.Err() != nil && err != nil {
		w.h.record(o.id, Unknown)
		return
	}
	w.h.record(o.id, told(p, err))
}

// reader takes balance snapshots as the auditor; an impossible one is an
// anomaly.
func (w *workload) reader(ctx context.Context, rng *rand.Rand) {
	for ctx.Err() == nil {
		c := w.custs[rng.IntN(len(w.custs))]
		acct := c.account
		res, err := w.auditor.Balance(ctx, &acct)
		anomaly := ""
		if err == nil && (res.GetBalance() < 0 || res.GetAvailable() < 0 || res.GetAvailable() > res.GetBalance()) {
			anomaly = fmt.Sprintf("%s: balance %d, available %d", c.account, res.GetBalance(), res.GetAvailable())
		}
		if err == nil {
			w.h.read(anomaly)
		}
		sleep(ctx, 50*time.Millisecond)
	}
}

// adjuster deposits and withdraws as the admin, now and then.
func (w *workload) adjuster(ctx context.Context, rng *rand.Rand) {
	for ctx.Err() == nil {
		sleep(ctx, time.Duration(500+rng.IntN(1500))*time.Millisecond)
		c := w.custs[rng.IntN(len(w.custs))]
		o := &op{id: client.NewTransactionID(), kind: "adjustment", payee: c.account, amount: 1 + rng.Int64N(5000), deposit: rng.IntN(2) == 0}
		w.h.add(o)
		w.adjust(ctx, o)
	}
}

func (w *workload) adjust(ctx context.Context, o *op) {
	var err error
	if o.deposit {
		_, err = w.admin.Deposit(ctx, o.id, o.payee, o.amount, "usd")
	} else {
		_, err = w.admin.Withdraw(ctx, o.id, o.payee, o.amount, "usd")
	}
	switch {
	case err == nil:
		w.h.record(o.id, Succeeded)
	case client.IsDeclined(err):
		w.h.record(o.id, Failed)
	default:
		w.h.record(o.id, Unknown)
	}
}

// resolve sends every operation whose outcome is still Unknown again, with
// its id, until each has a final answer or ctx ends: what a client does
// once the gateway answers again.
func (w *workload) resolve(ctx context.Context) {
	byAccount := map[client.AccountRef]customer{}
	for _, c := range w.custs {
		byAccount[c.account] = c
	}
	for ctx.Err() == nil {
		var open []*op
		w.h.mu.Lock()
		for _, o := range w.h.ops {
			if o.kind != "outbox" && o.final() == Unknown {
				open = append(open, o)
			}
		}
		w.h.mu.Unlock()
		if len(open) == 0 {
			return
		}
		for _, o := range open {
			if o.kind == "adjustment" {
				w.adjust(ctx, o)
			} else {
				w.send(ctx, byAccount[o.payer], o)
			}
		}
	}
}

// offline queues payments from one customer in an outbox while clients
// are cut off from the gateway, as `remit pay` does, and flushes them once
// healed. It returns the outbox for the checker.
type offline struct {
	o    *outbox.Outbox
	from customer
}

func (f *offline) queue(ctx context.Context, w *workload, rng *rand.Rand, n int) {
	for range n {
		to := w.custs[rng.IntN(len(w.custs))]
		if to.id == f.from.id {
			continue
		}
		req := client.PaymentRequest{TransactionID: client.NewTransactionID(), Payee: to.account, Amount: 1 + rng.Int64N(2000), Currency: "usd", Description: "chaos outbox"}
		w.h.add(&op{id: req.TransactionID, kind: "outbox", payer: f.from.account, payee: to.account, amount: req.Amount})
		// Queued or sent: either way the outcome comes from the outbox.
		// The send gives up soon, as a person at a terminal would; the
		// payment is durably queued before it starts.
		pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		_, _, _ = f.o.Pay(pctx, f.from.c, req)
		cancel()
	}
}

// flush sends what is queued until nothing is, then records each queued
// id's outcome from the outbox history.
func (f *offline) flush(ctx context.Context, h *history) error {
	for {
		items, err := f.o.List(ctx)
		if err != nil {
			return err
		}
		if len(items) == 0 {
			break
		}
		if _, err := f.o.Flush(ctx, f.from.c); err != nil && ctx.Err() != nil {
			return err
		}
		sleep(ctx, 500*time.Millisecond)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	h.mu.Lock()
	var ids []string
	for id, o := range h.ops {
		if o.kind == "outbox" {
			ids = append(ids, id)
		}
	}
	h.mu.Unlock()
	for _, id := range ids {
		out, err := f.o.Outcome(ctx, id)
		if err != nil {
			h.record(id, Unknown)
			continue
		}
		if out.Status == outbox.StatusSucceeded {
			h.record(id, Succeeded)
		} else {
			h.record(id, Failed)
		}
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
