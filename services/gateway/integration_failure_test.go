package gateway_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
	"github.com/remitpay/remit/services/bank"
	"github.com/remitpay/remit/services/gateway"
	"github.com/remitpay/remit/services/gateway/gatewaytest"
)

// Failure tests. A slow bank is a bank whose ledger write lock the test holds
// (gatewaytest.Bank.LockLedger): it stays healthy, but its prepare and commit
// wait. An unreachable bank is one whose proxy is cut: the gateway cannot
// reach it, while it can still reach the gateway.

// windowTiming gives a test seconds between the first and the last vote, and
// keeps the banks' resolvers out of the way (expiry far off), so the test
// controls which path delivers phase two.
var windowTiming = gateway.Timing{
	PrepareCall: 5 * time.Second,
	Decision:    5 * time.Second,
	ExpireGrace: 30 * time.Second,
	CommitCall:  500 * time.Millisecond,
	Phase2Wait:  500 * time.Millisecond,
	Redrive:     50 * time.Millisecond,
}

// windowOptions runs a network with windowTiming and without the banks'
// registration heartbeat (they register once, at start), so that nothing but
// payments writes to the coordinator log.
var windowOptions = gatewaytest.Options{Timing: windowTiming, RegisterInterval: time.Hour, Metrics: true}

type payResult struct {
	p   *gatewayv1.Payment
	err error
}

// payAsync starts a payment and returns the channel its result arrives on.
func payAsync(ctx context.Context, c *gatewaytest.Client, id, payee string, amount int64) <-chan payResult {
	ch := make(chan payResult, 1)
	go func() {
		p, err := payCtx(ctx, c, id, payee, amount)
		ch <- payResult{p, err}
	}()
	return ch
}

func await(t *testing.T, ch <-chan payResult) payResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(gatewaytest.WaitTimeout):
		t.Fatal("MakePayment did not return")
		return payResult{}
	}
}

// waitHeld waits until the account's bank reports amount held on the
// opening balance (available = Opening - amount): the bank voted YES and
// holds the debit.
func waitHeld(t *testing.T, admin *gatewaytest.Client, account string, amount int64) {
	t.Helper()
	waitFunds(t, admin, map[string]funds{account: {gatewaytest.Opening, gatewaytest.Opening - amount}})
}

// checkPrepared reads a bank's ledger and fails unless txID is prepared there
// and the account has held (debit) or incoming (credit) exactly amount, its
// balance untouched.
func checkPrepared(t *testing.T, n *gatewaytest.Network, txID, account string, debit bool, amount int64) {
	t.Helper()
	name := gatewaytest.Customers[account]
	n.Banks[name].Inspect(t, func(l *bank.Ledger) {
		st, ok, err := l.State(t.Context(), txID)
		if err != nil {
			t.Fatal(err)
		}
		if !ok || st != bank.StatePrepared {
			t.Errorf("%s: state of %s is %q (known %v), want prepared", name, txID, st, ok)
		}
		a, err := l.Balance(t.Context(), account)
		if err != nil {
			t.Fatal(err)
		}
		held, incoming := int64(0), amount
		if debit {
			held, incoming = amount, 0
		}
		if a.Balance != gatewaytest.Opening || a.Held != held || a.Incoming != incoming {
			t.Errorf("%s: %s has balance %d held %d incoming %d, want %d held %d incoming %d",
				name, account, a.Balance, a.Held, a.Incoming, gatewaytest.Opening, held, incoming)
		}
	})
}

func wantStates(t *testing.T, b books, txID string, want map[string]bank.State) {
	t.Helper()
	for _, name := range gatewaytest.BankNames {
		if got := b.state[txID][name]; got != want[name] {
			t.Errorf("state of %s at %s: %q, want %q", txID, name, got, want[name])
		}
	}
}

// A bank that does not answer prepare in time: the payment fails with
// BANK_UNAVAILABLE, nothing moves, and once the bank answers again every
// hold is released (the gateway re-drives ABORT until it is acknowledged).
func TestIntegrationPrepareTimeout(t *testing.T) {
	t.Parallel()
	n := gatewaytest.Start(t, gatewaytest.Options{})
	alice, admin := n.Login(t, "alice"), n.Login(t, gatewaytest.AdminID)

	release := n.Banks["bank-a"].LockLedger(t) // the payer's bank is slow
	id := newID()
	start := time.Now()
	_, err := pay(t, alice, id, "bob", 1200)
	wantError(t, err, connect.CodeFailedPrecondition, "BANK_UNAVAILABLE")
	if d, limit := time.Since(start), gatewaytest.FastTiming.Decision+gatewaytest.FastTiming.Phase2Wait+time.Second; d > limit {
		t.Errorf("MakePayment took %v with a silent bank, want under %v", d, limit)
	}
	wantStatus(t, getPayment(t, admin, id), gatewayv1.PaymentStatus_PAYMENT_STATUS_FAILED,
		gatewayv1.FailureReason_FAILURE_REASON_BANK_UNAVAILABLE)
	// bank-b voted YES (a reserved credit) and got the ABORT.
	waitState(t, n, "bank-b", id, bank.StateAborted)
	waitFunds(t, admin, map[string]funds{"bob": settled(gatewaytest.Opening)})

	// The slow bank now handles the late prepare and the re-driven ABORT, in
	// whichever order: either way nothing stays held.
	release()
	waitState(t, n, "bank-a", id, bank.StateAborted)
	waitFunds(t, admin, allSettled(nil))

	stopBanks(t, n)
	b := readBooks(t, n, id)
	checkAccounts(t, b, nil)
	checkJournal(t, b, id, nil)
	wantStates(t, b, id, map[string]bank.State{"bank-a": bank.StateAborted, "bank-b": bank.StateAborted})
}

// A bank unreachable in phase two: the payment succeeds (every vote was YES),
// the unreachable bank keeps the funds held, and the COMMIT is re-driven when
// it is reachable again, applied exactly once.
func TestIntegrationPhaseTwoUnreachable(t *testing.T) {
	t.Parallel()
	n := gatewaytest.Start(t, windowOptions)
	bob, admin := n.Login(t, "bob"), n.Login(t, gatewaytest.AdminID)

	id := decidedWhileCut(t, n, bob, admin, 700, "bank-b").GetTransactionId()
	waitFunds(t, admin, map[string]funds{"alice": settled(gatewaytest.Opening + 700)})
	checkPrepared(t, n, id, "bob", true, 700) // decided COMMIT, not heard yet

	n.Banks["bank-b"].Proxy.Restore()
	want := map[string]int64{"alice": gatewaytest.Opening + 700, "bob": gatewaytest.Opening - 700}
	waitFunds(t, admin, allSettled(want))

	stopBanks(t, n)
	b := readBooks(t, n, id)
	checkAccounts(t, b, want)
	checkJournal(t, b, id, paymentEntries("bob", "alice", 700))
	wantStates(t, b, id, map[string]bank.State{"bank-a": bank.StateCommitted, "bank-b": bank.StateCommitted})
}

// decidedWhileCut drives a payment of amount from bob (bank-b) to alice
// (bank-a) to a durable COMMIT decided while the proxies of the banks named in
// cut are cut, so that those banks voted YES but cannot hear the decision. It
// returns the payment once MakePayment answered SUCCEEDED.
//
// To cut only after both votes reached the gateway, the test holds the
// coordinator log's write lock while the last vote arrives: bank-a (slow, its
// ledger locked) votes after bank-b, the gateway's decision then waits for the
// log, and waitDecisionPending sees that wait before anything is cut.
func decidedWhileCut(t *testing.T, n *gatewaytest.Network, bob, admin *gatewaytest.Client, amount int64, cut ...string) *gatewayv1.Payment {
	t.Helper()
	releaseA := n.Banks["bank-a"].LockLedger(t)
	id := newID()
	ch := payAsync(t.Context(), bob, id, "alice", amount)
	waitHeld(t, admin, "bob", amount) // bank-b voted YES; the id is claimed
	releaseLog := n.Gateway.LockDB(t)
	releaseA()
	waitDecisionPending(t, n, admin, id)
	for _, name := range cut {
		n.Banks[name].Proxy.Cut()
	}
	releaseLog()

	r := await(t, ch)
	if r.err != nil {
		t.Fatalf("payment: %v", r.err)
	}
	wantStatus(t, r.p, gatewayv1.PaymentStatus_PAYMENT_STATUS_SUCCEEDED)
	return r.p
}

// waitDecisionPending waits until the gateway has every vote of txID and its
// decision waits for the coordinator log's write lock (held by the test):
// the gateway's metrics show one write waiting for its group commit on the
// log. Nothing else writes to the log meanwhile: the claim committed before
// phase one began, and windowOptions turns the banks' registration
// heartbeat off. Reads of the log still answer (they use the read-only
// pool), and one shows the payment undecided.
func waitDecisionPending(t *testing.T, n *gatewaytest.Network, admin *gatewaytest.Client, txID string) {
	t.Helper()
	gatewaytest.WaitFor(t, "the decision of "+txID+" waiting for the log", func() error {
		waiting, ok := scrape(t, n.Gateway.MetricsURL()).value("remit_store_commit_waiting", "database", "payments")
		switch {
		case !ok:
			t.Fatal("the gateway exports no remit_store_commit_waiting for the payments database")
		case waiting == 0:
			return errors.New("no write waits for the log: not every vote is in")
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	res, err := admin.Payments.GetPayment(ctx, &gatewayv1.GetPaymentRequest{TransactionId: txID})
	if err != nil {
		t.Fatalf("GetPayment while the log is locked: %v", err)
	}
	if res.GetPayment().GetStatus() != gatewayv1.PaymentStatus_PAYMENT_STATUS_PROCESSING {
		t.Fatalf("payment %s was decided while the test held the log's lock: %v", txID, res.GetPayment())
	}
}

// The gateway restarts between the decision and phase two: the COMMIT is in
// its log, and the restarted gateway delivers it to every bank, once.
func TestIntegrationGatewayRestartAfterDecision(t *testing.T) {
	t.Parallel()
	n := gatewaytest.Start(t, windowOptions)
	bob, admin := n.Login(t, "bob"), n.Login(t, gatewaytest.AdminID)

	p := decidedWhileCut(t, n, bob, admin, 700, "bank-a", "bank-b")
	id := p.GetTransactionId()
	n.Gateway.Stop(t)
	checkPrepared(t, n, id, "bob", true, 700)
	checkPrepared(t, n, id, "alice", false, 700)

	n.Banks["bank-a"].Proxy.Restore()
	n.Banks["bank-b"].Proxy.Restore()
	n.Gateway.Start(t)
	want := map[string]int64{"alice": gatewaytest.Opening + 700, "bob": gatewaytest.Opening - 700}
	waitFunds(t, admin, allSettled(want))
	wantStatus(t, getPayment(t, admin, id), gatewayv1.PaymentStatus_PAYMENT_STATUS_SUCCEEDED)
	// The restarted gateway answers a duplicate with the stored payment.
	again, err := pay(t, bob, id, "alice", 700)
	if err != nil {
		t.Fatalf("duplicate after restart: %v", err)
	}
	if d := cmp.Diff(p, again, protocmp.Transform()); d != "" {
		t.Errorf("duplicate after restart (-before +after):\n%s", d)
	}

	stopBanks(t, n)
	b := readBooks(t, n, id)
	checkAccounts(t, b, want)
	checkJournal(t, b, id, paymentEntries("bob", "alice", 700))
	wantStates(t, b, id, map[string]bank.State{"bank-a": bank.StateCommitted, "bank-b": bank.StateCommitted})
}

// A client that hangs up (its deadline passes) during phase one does not
// stop the payment: it completes, and a retry with the same id gets it.
func TestIntegrationClientHangsUp(t *testing.T) {
	t.Parallel()
	n := gatewaytest.Start(t, windowOptions)
	alice, admin := n.Login(t, "alice"), n.Login(t, gatewaytest.AdminID)

	release := n.Banks["bank-b"].LockLedger(t) // bank-b votes late
	id := newID()
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	_, err := payCtx(ctx, alice, id, "bob", 800)
	cancel()
	if code := connect.CodeOf(err); code != connect.CodeDeadlineExceeded && code != connect.CodeAborted {
		t.Fatalf("payment with a 300ms deadline and a slow bank: %v, want deadline_exceeded or aborted", err)
	}
	waitHeld(t, admin, "alice", 800)
	release()

	p, err := pay(t, alice, id, "bob", 800)
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	wantStatus(t, p, gatewayv1.PaymentStatus_PAYMENT_STATUS_SUCCEEDED)
	want := map[string]int64{"alice": gatewaytest.Opening - 800, "bob": gatewaytest.Opening + 800}
	waitFunds(t, admin, allSettled(want))

	stopBanks(t, n)
	b := readBooks(t, n, id)
	checkAccounts(t, b, want)
	checkJournal(t, b, id, paymentEntries("alice", "bob", 800))
}

// The gateway stops while a prepare is still out (before any decision): after
// restart the payment is aborted (presumed abort), it reads FAILED, and every
// hold is released, including the one the late vote takes.
func TestIntegrationGatewayRestartBeforeDecision(t *testing.T) {
	t.Parallel()
	n := gatewaytest.Start(t, windowOptions)
	alice, admin := n.Login(t, "alice"), n.Login(t, gatewaytest.AdminID)

	release := n.Banks["bank-b"].LockLedger(t) // the payee's bank is slow
	id := newID()
	ctx, cancel := context.WithCancel(t.Context())
	ch := payAsync(ctx, alice, id, "bob", 800)
	waitHeld(t, admin, "alice", 800) // bank-a voted YES
	cancel()                         // the client hangs up...
	if r := await(t, ch); connect.CodeOf(r.err) != connect.CodeCanceled {
		t.Fatalf("canceled payment: %v, %v", r.p, r.err)
	}
	n.Gateway.Stop(t) // ...and the gateway stops before bank-b votes.

	n.Gateway.SetTiming(gatewaytest.FastTiming)
	n.Gateway.Start(t)
	wantStatus(t, getPayment(t, admin, id), gatewayv1.PaymentStatus_PAYMENT_STATUS_FAILED)
	waitFunds(t, admin, map[string]funds{"alice": settled(gatewaytest.Opening)}) // ABORT reached bank-a

	release() // bank-b now sees the dead gateway's prepare and the new one's ABORT
	waitState(t, n, "bank-b", id, bank.StateAborted)
	waitFunds(t, admin, allSettled(nil))
	wantStatus(t, getPayment(t, admin, id), gatewayv1.PaymentStatus_PAYMENT_STATUS_FAILED)

	stopBanks(t, n)
	b := readBooks(t, n, id)
	checkAccounts(t, b, nil)
	checkJournal(t, b, id, nil)
	wantStates(t, b, id, map[string]bank.State{"bank-a": bank.StateAborted, "bank-b": bank.StateAborted})
}

// A bank restarts after voting YES and before phase two: the restarted bank
// still holds the funds (the vote was durable) and applies the COMMIT once.
func TestIntegrationBankRestartWhilePrepared(t *testing.T) {
	t.Parallel()
	n := gatewaytest.Start(t, windowOptions)
	alice, admin := n.Login(t, "alice"), n.Login(t, gatewaytest.AdminID)

	release := n.Banks["bank-b"].LockLedger(t) // bank-b votes last
	id := newID()
	ch := payAsync(t.Context(), alice, id, "bob", 900)
	waitHeld(t, admin, "alice", 900) // bank-a voted YES

	n.Banks["bank-a"].Stop(t)
	checkPrepared(t, n, id, "alice", true, 900)
	n.Banks["bank-a"].Start(t)
	release()

	r := await(t, ch)
	if r.err != nil {
		t.Fatalf("payment: %v", r.err)
	}
	wantStatus(t, r.p, gatewayv1.PaymentStatus_PAYMENT_STATUS_SUCCEEDED)
	want := map[string]int64{"alice": gatewaytest.Opening - 900, "bob": gatewaytest.Opening + 900}
	waitFunds(t, admin, allSettled(want))

	stopBanks(t, n)
	b := readBooks(t, n, id)
	checkAccounts(t, b, want)
	checkJournal(t, b, id, paymentEntries("alice", "bob", 900))
	wantStates(t, b, id, map[string]bank.State{"bank-a": bank.StateCommitted, "bank-b": bank.StateCommitted})
}

// Expiry: a prepared transaction past its expire time whose gateway is down
// stays prepared with its funds held (a bank never aborts a YES on its own);
// when the gateway is back, each bank's resolver learns COMMIT through
// GetTransactionOutcome (the proxies stay cut, so the re-driver cannot be the
// one) and applies it once.
func TestIntegrationExpiryWaitsForGateway(t *testing.T) {
	t.Parallel()
	timing := windowTiming
	timing.PrepareCall, timing.Decision, timing.ExpireGrace = 2*time.Second, 2*time.Second, 500*time.Millisecond
	opts := windowOptions
	opts.Timing = timing
	n := gatewaytest.Start(t, opts)
	bob, admin := n.Login(t, "bob"), n.Login(t, gatewaytest.AdminID)

	id := decidedWhileCut(t, n, bob, admin, 700, "bank-a", "bank-b").GetTransactionId()
	n.Gateway.Stop(t)

	// Wait until both banks consider it expired, then keep checking for a
	// while (many resolver rounds) that nothing was released.
	expired := func() error {
		for _, name := range []string{"bank-a", "bank-b"} {
			var ids []string
			var err error
			n.Banks[name].Inspect(t, func(l *bank.Ledger) { ids, err = l.Expired(t.Context(), time.Now()) })
			if err != nil {
				return err
			}
			if !slices.Contains(ids, id) {
				return fmt.Errorf("%s does not list %s as expired: %v", name, id, ids)
			}
		}
		return nil
	}
	gatewaytest.WaitFor(t, "expiry at both banks", expired)
	// Expired lists prepared transactions only.
	gatewaytest.Holds(t, time.Second, "with the gateway down", expired)
	checkPrepared(t, n, id, "bob", true, 700)
	checkPrepared(t, n, id, "alice", false, 700)

	n.Gateway.Start(t)
	waitState(t, n, "bank-a", id, bank.StateCommitted)
	waitState(t, n, "bank-b", id, bank.StateCommitted)

	n.Banks["bank-a"].Proxy.Restore()
	n.Banks["bank-b"].Proxy.Restore()
	want := map[string]int64{"alice": gatewaytest.Opening + 700, "bob": gatewaytest.Opening - 700}
	waitFunds(t, admin, allSettled(want))
	wantStatus(t, getPayment(t, admin, id), gatewayv1.PaymentStatus_PAYMENT_STATUS_SUCCEEDED)

	stopBanks(t, n)
	b := readBooks(t, n, id)
	checkAccounts(t, b, want)
	checkJournal(t, b, id, paymentEntries("bob", "alice", 700))
}
