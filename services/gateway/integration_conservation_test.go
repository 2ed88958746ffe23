package gateway_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
	"github.com/remitpay/remit/internal/rpcerr"
	"github.com/remitpay/remit/services/bank"
	"github.com/remitpay/remit/services/gateway/gatewaytest"
)

// Conservation: many concurrent payments in both directions across the three
// banks (and within bank-a), some larger than any balance. Afterwards no money
// was created or destroyed, no balance is negative, nothing is held, and the
// journals agree with the gateway: every SUCCEEDED payment is journaled once
// at the payer's and once at the payee's bank, every FAILED one nowhere.
func TestIntegrationConservation(t *testing.T) {
	t.Parallel()
	n := gatewaytest.Start(t, gatewaytest.Options{})
	conservation(t, n, 300, 16, nil)
}

// Conservation while processes fail: the same checks, with banks cut off,
// slowed down and restarted, and the gateway restarted, during the payments.
func TestIntegrationConservationUnderFaults(t *testing.T) {
	t.Parallel()
	n := gatewaytest.Start(t, gatewaytest.Options{})
	conservation(t, n, 150, 12, func(stop <-chan struct{}, rng *rand.Rand) {
		var done []string
		defer func() { t.Logf("faults: %v", done) }()
		// pause waits d, or less if the payments are all answered.
		pause := func(d time.Duration) {
			select {
			case <-stop:
			case <-time.After(d):
			}
		}
		for step := 1; ; step++ {
			pause(100 * time.Millisecond)
			select {
			case <-stop:
				return
			default:
			}
			b := n.Banks[gatewaytest.BankNames[rng.IntN(len(gatewaytest.BankNames))]]
			var err error
			switch {
			case step == 2:
				done = append(done, "restart "+b.Name)
				err = b.Restart()
			case step == 4:
				done = append(done, "restart gateway")
				err = n.Gateway.Restart()
			case rng.IntN(2) == 0:
				done = append(done, "cut "+b.Name)
				b.Proxy.Cut()
				pause(200 * time.Millisecond)
				b.Proxy.Restore()
			default:
				done = append(done, "slow "+b.Name)
				var release func()
				if release, err = b.TryLockLedger(); err == nil {
					pause(700 * time.Millisecond) // longer than a prepare may take
					release()
				}
			}
			if err != nil {
				t.Errorf("fault step %d: %v", step, err)
				return
			}
		}
	})
}

// conservation makes random payments with workers goroutines while faults
// (if not nil) runs, then checks that money was conserved.
func conservation(t *testing.T, n *gatewaytest.Network, payments, workers int, faults func(stop <-chan struct{}, rng *rand.Rand)) {
	t.Helper()
	customers := []string{"alice", "bob", "carol", "dave"}
	clients := map[string]*gatewaytest.Client{}
	for _, id := range customers {
		clients[id] = n.Login(t, id)
	}
	admin := n.Login(t, gatewaytest.AdminID)

	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	type attempt struct {
		id, payer, payee string
		amount           int64
		p                *gatewayv1.Payment
		err              error
	}
	attempts := make([]*attempt, payments)
	for i := range attempts {
		payer := customers[rng.IntN(len(customers))]
		payee := payer
		for payee == payer {
			payee = customers[rng.IntN(len(customers))]
		}
		amount := 1 + rng.Int64N(40000)
		if rng.IntN(10) == 0 {
			amount = gatewaytest.Opening + 1 + rng.Int64N(gatewaytest.Opening) // never fits
		}
		attempts[i] = &attempt{id: newID(), payer: payer, payee: payee, amount: amount}
	}
	work := make(chan *attempt)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for a := range work {
				a.p, a.err = payCtx(t.Context(), clients[a.payer], a.id, a.payee, a.amount)
			}
		})
	}
	stopFaults, faultsDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(faultsDone)
		if faults != nil {
			faults(stopFaults, rand.New(rand.NewPCG(seed, 1)))
		}
	}()
	for _, a := range attempts {
		work <- a
	}
	close(work)
	wg.Wait()
	close(stopFaults)
	<-faultsDone
	for _, name := range gatewaytest.BankNames {
		n.Banks[name].Proxy.Restore()
	}

	// Every answer is a success or a decline; tally what the clients saw.
	var succeeded int
	declined := map[string]int{}
	for _, a := range attempts {
		switch {
		case a.err == nil && a.p.GetStatus() == gatewayv1.PaymentStatus_PAYMENT_STATUS_SUCCEEDED:
			succeeded++
		case connect.CodeOf(a.err) == connect.CodeFailedPrecondition &&
			slices.Contains([]string{"INSUFFICIENT_FUNDS", "BANK_UNAVAILABLE", "EXPIRED"}, rpcerr.Reason(a.err)):
			declined[rpcerr.Reason(a.err)]++
		default:
			t.Errorf("payment %s (%s pays %d to %s): %v, %v", a.id, a.payer, a.amount, a.payee, a.p, a.err)
		}
	}
	t.Logf("%d succeeded, declined: %v", succeeded, declined)
	if succeeded == 0 {
		t.Fatal("no payment succeeded: the test proves nothing")
	}

	// The gateway's record, read page by page, has each payment once, with
	// the outcome its client was told.
	listed := map[string]*gatewayv1.Payment{}
	var token string
	for page := 0; ; page++ {
		if page > payments {
			t.Fatal("ListPayments never ends")
		}
		res, err := admin.Payments.ListPayments(callCtx(t), &gatewayv1.ListPaymentsRequest{PageSize: 37, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range res.GetPayments() {
			if listed[p.GetTransactionId()] != nil {
				t.Errorf("ListPayments lists %s twice", p.GetTransactionId())
			}
			listed[p.GetTransactionId()] = p
		}
		if token = res.GetNextPageToken(); token == "" {
			break
		}
	}
	if len(listed) != payments {
		t.Errorf("ListPayments lists %d payments, want %d", len(listed), payments)
	}
	want := map[string]int64{}
	for _, id := range customers {
		want[id] = gatewaytest.Opening
	}
	var ids []string
	for _, a := range attempts {
		ids = append(ids, a.id)
		p := listed[a.id]
		switch {
		case p == nil:
			t.Errorf("payment %s is not listed", a.id)
		case (a.err == nil) != (p.GetStatus() == gatewayv1.PaymentStatus_PAYMENT_STATUS_SUCCEEDED):
			t.Errorf("payment %s: client was told %v, %v; the gateway lists it %v", a.id, a.p.GetStatus(), a.err, p.GetStatus())
		case p.GetStatus() == gatewayv1.PaymentStatus_PAYMENT_STATUS_SUCCEEDED:
			want[a.payer] -= a.amount
			want[a.payee] += a.amount
		}
	}

	// Phase two may still be re-driven for a few: wait until no bank holds a
	// prepared transaction, then check the books.
	gatewaytest.WaitFor(t, "no prepared transaction left", func() error {
		for _, name := range gatewaytest.BankNames {
			var prepared []string
			var err error
			n.Banks[name].Inspect(t, func(l *bank.Ledger) {
				prepared, err = l.Expired(t.Context(), time.Now().AddDate(100, 0, 0))
			})
			if err != nil {
				return err
			}
			if len(prepared) > 0 {
				return fmt.Errorf("%s still has %d prepared", name, len(prepared))
			}
		}
		return nil
	})
	waitFunds(t, admin, allSettled(want))

	stopBanks(t, n)
	b := readBooks(t, n, ids...)
	var total int64
	for _, a := range b.accounts {
		total += a.Balance
		if a.Balance < 0 {
			t.Errorf("account %s has a negative balance %d", a.ID, a.Balance)
		}
	}
	if total != int64(len(customers))*gatewaytest.Opening {
		t.Errorf("sum of all balances is %d, want %d", total, int64(len(customers))*gatewaytest.Opening)
	}
	checkAccounts(t, b, want)
	for _, a := range attempts {
		p := listed[a.id]
		if p == nil {
			continue
		}
		checkNotPrepared(t, b, a.id)
		if p.GetStatus() == gatewayv1.PaymentStatus_PAYMENT_STATUS_SUCCEEDED {
			checkJournal(t, b, a.id, paymentEntries(a.payer, a.payee, a.amount))
		} else {
			checkJournal(t, b, a.id, nil)
		}
	}
}
