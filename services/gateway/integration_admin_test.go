package gateway_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
	"github.com/remitpay/remit/services/gateway/gatewaytest"
)

// Deposits and withdrawals through AdminService.UpdateBalance: idempotent by
// transaction id, a withdrawal never goes below the available balance, and
// only admins may move money this way.
func TestIntegrationAdminUpdateBalance(t *testing.T) {
	t.Parallel()
	n := gatewaytest.Start(t, gatewaytest.Options{})
	alice, admin := n.Login(t, "alice"), n.Login(t, gatewaytest.AdminID)

	// update retries the same id while the answer is retryable, as a client must.
	update := func(c *gatewaytest.Client, id string, dir gatewayv1.Direction, amount int64) (res *gatewayv1.UpdateBalanceResponse, err error) {
		gatewaytest.Retry(t.Context(), gatewaytest.WaitTimeout, func() bool {
			res, err = c.Admin.UpdateBalance(callCtx(t), &gatewayv1.UpdateBalanceRequest{
				TransactionId: id, Account: gatewaytest.Ref("carol"), Direction: dir, Amount: amount, Currency: gatewaytest.Currency,
			})
			return !retryable(err)
		})
		return res, err
	}
	credit, debit := gatewayv1.Direction_DIRECTION_CREDIT, gatewayv1.Direction_DIRECTION_DEBIT
	deposit, withdrawal, overdraft := newID(), newID(), newID()

	steps := []struct {
		name    string
		c       *gatewaytest.Client
		id      string
		dir     gatewayv1.Direction
		amount  int64
		code    connect.Code // 0: success
		reason  string
		balance int64 // carol's balance after the step
	}{
		{"deposit", admin, deposit, credit, 5000, 0, "", 105000},
		{"deposit repeated", admin, deposit, credit, 5000, 0, "", 105000},
		{"withdrawal", admin, withdrawal, debit, 3000, 0, "", 102000},
		{"withdrawal repeated", admin, withdrawal, debit, 3000, 0, "", 102000},
		{"withdrawal beyond available", admin, overdraft, debit, 102001, connect.CodeFailedPrecondition, "INSUFFICIENT_FUNDS", 102000},
		{"refused withdrawal repeated", admin, overdraft, debit, 102001, connect.CodeFailedPrecondition, "INSUFFICIENT_FUNDS", 102000},
		{"deposit id reused for another amount", admin, deposit, credit, 5001, connect.CodeInvalidArgument, "IDEMPOTENCY_KEY_REUSED", 102000},
		{"deposit id reused for a withdrawal", admin, deposit, debit, 5000, connect.CodeInvalidArgument, "IDEMPOTENCY_KEY_REUSED", 102000},
		{"customer deposits", alice, newID(), credit, 1, connect.CodePermissionDenied, "PERMISSION_DENIED", 102000},
	}
	var first *gatewayv1.UpdateBalanceResponse
	for _, s := range steps {
		res, err := update(s.c, s.id, s.dir, s.amount)
		if s.code == 0 {
			if err != nil {
				t.Fatalf("%s: %v", s.name, err)
			}
			if res.GetBalance() != s.balance || res.GetTransactionId() != s.id || res.GetCurrency() != gatewaytest.Currency {
				t.Errorf("%s: %v, want balance %d", s.name, res, s.balance)
			}
			if s.id == deposit && first == nil {
				first = res
			} else if s.id == deposit {
				if d := cmp.Diff(first, res, protocmp.Transform()); d != "" {
					t.Errorf("%s: another answer than the first (-first +repeat):\n%s", s.name, d)
				}
			}
		} else {
			wantError(t, err, s.code, s.reason)
		}
		waitFunds(t, admin, map[string]funds{"carol": settled(s.balance)})
	}

	// A payment's id is not an adjustment's, and the other way round.
	p := mustPay(t, alice, "bob", 10)
	_, err := update(admin, p.GetTransactionId(), credit, 10)
	wantError(t, err, connect.CodeInvalidArgument, "IDEMPOTENCY_KEY_REUSED")
	_, err = pay(t, alice, deposit, "bob", 5000)
	wantError(t, err, connect.CodeInvalidArgument, "IDEMPOTENCY_KEY_REUSED")

	stopBanks(t, n)
	b := readBooks(t, n, deposit, withdrawal, overdraft)
	checkAccounts(t, b, map[string]int64{"carol": 102000, "alice": gatewaytest.Opening - 10, "bob": gatewaytest.Opening + 10})
	checkJournal(t, b, deposit, map[string][]string{"bank-c": {"carol credit 5000 adjustment"}})
	checkJournal(t, b, withdrawal, map[string][]string{"bank-c": {"carol debit 3000 adjustment"}})
	checkJournal(t, b, overdraft, nil)
}

// watcher receives a WatchPayments stream in the background.
type watcher struct {
	events chan *gatewayv1.WatchPaymentsResponse
	cancel context.CancelFunc
	done   chan error
}

// The stream is opened in the background too: a Connect client's
// WatchPayments returns only once the response headers arrive (see
// TestIntegrationWatchOpensBeforeFirstEvent).
func watch(t *testing.T, c *gatewaytest.Client, req *gatewayv1.WatchPaymentsRequest) *watcher {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	w := &watcher{events: make(chan *gatewayv1.WatchPaymentsResponse, 100), cancel: cancel, done: make(chan error, 1)}
	go func() {
		stream, err := c.Payments.WatchPayments(ctx, req)
		if err != nil {
			w.done <- err
			return
		}
		for stream.Receive() {
			w.events <- stream.Msg()
		}
		w.done <- stream.Err()
		_ = stream.Close() // the stream already ended; its error is sent above
	}()
	// A stream left open would hold the gateway's graceful shutdown.
	t.Cleanup(w.close)
	return w
}

func (w *watcher) close() { w.cancel() }

// next returns the next event, failing the test if none arrives in time.
func (w *watcher) next(t *testing.T) *gatewayv1.WatchPaymentsResponse {
	t.Helper()
	select {
	case e := <-w.events:
		return e
	case err := <-w.done:
		t.Fatalf("stream ended: %v", err)
	case <-time.After(gatewaytest.WaitTimeout):
		t.Fatal("no event")
	}
	return nil
}

// wantBobEvent fails the test unless e is a typ event of txID on bob's
// account (the account these tests watch).
func wantBobEvent(t *testing.T, e *gatewayv1.WatchPaymentsResponse, typ gatewayv1.PaymentEventType, txID string) {
	t.Helper()
	if e.GetType() != typ || e.GetPayment().GetTransactionId() != txID || e.GetAccount().GetAccountId() != "bob" || e.GetEventId() <= 0 {
		t.Fatalf("event %v, want %v of %s for bob", e, typ, txID)
	}
}

// WatchPayments and AcknowledgePayment: the payee sees the payer's payment;
// a reconnect with after_event_id (to a restarted gateway) replays nothing
// already seen and everything missed, then follows live; acknowledging is for
// the payee only and idempotent.
func TestIntegrationWatchAndAcknowledge(t *testing.T) {
	t.Parallel()
	n := gatewaytest.Start(t, gatewaytest.Options{})
	alice, bob := n.Login(t, "alice"), n.Login(t, "bob")

	w := watch(t, bob, &gatewayv1.WatchPaymentsRequest{})
	p1 := mustPay(t, alice, "bob", 101)
	e1 := w.next(t)
	wantBobEvent(t, e1, gatewayv1.PaymentEventType_PAYMENT_EVENT_TYPE_SUCCEEDED, p1.GetTransactionId())
	if e1.GetPayment().GetAmount() != 101 || e1.GetPayment().GetPayer().GetAccountId() != "alice" {
		t.Errorf("event payment %v, want alice's 101", e1.GetPayment())
	}
	w.close()

	// Missed while disconnected: a payment, and a declined one (bob's
	// account is a party to it, so he gets its FAILED event).
	p2 := mustPay(t, alice, "bob", 102)
	failed := newID()
	_, err := pay(t, alice, failed, "bob", 10*gatewaytest.Opening)
	wantError(t, err, connect.CodeFailedPrecondition, "INSUFFICIENT_FUNDS")

	// The event log is durable: a restarted gateway replays it.
	n.Gateway.Stop(t)
	n.Gateway.Start(t)

	w = watch(t, bob, &gatewayv1.WatchPaymentsRequest{AfterEventId: e1.GetEventId()})
	e2 := w.next(t)
	wantBobEvent(t, e2, gatewayv1.PaymentEventType_PAYMENT_EVENT_TYPE_SUCCEEDED, p2.GetTransactionId())
	e3 := w.next(t)
	wantBobEvent(t, e3, gatewayv1.PaymentEventType_PAYMENT_EVENT_TYPE_FAILED, failed)
	if e1.GetEventId() >= e2.GetEventId() || e2.GetEventId() >= e3.GetEventId() {
		t.Errorf("event ids %d, %d, %d do not increase", e1.GetEventId(), e2.GetEventId(), e3.GetEventId())
	}

	// Acknowledge: the payee once, again harmlessly; never the payer.
	ack := func(c *gatewaytest.Client, id string) (*gatewayv1.Payment, error) {
		res, err := c.Payments.AcknowledgePayment(callCtx(t), &gatewayv1.AcknowledgePaymentRequest{TransactionId: id})
		return res.GetPayment(), err
	}
	a1, err := ack(bob, p2.GetTransactionId())
	if err != nil {
		t.Fatal(err)
	}
	if a1.GetAcknowledgeTime() == nil {
		t.Fatalf("acknowledged payment has no acknowledge_time: %v", a1)
	}
	wantBobEvent(t, w.next(t), gatewayv1.PaymentEventType_PAYMENT_EVENT_TYPE_ACKNOWLEDGED, p2.GetTransactionId())
	a2, err := ack(bob, p2.GetTransactionId())
	if err != nil {
		t.Fatalf("second acknowledgement: %v", err)
	}
	if !a2.GetAcknowledgeTime().AsTime().Equal(a1.GetAcknowledgeTime().AsTime()) {
		t.Errorf("second acknowledgement moved acknowledge_time from %v to %v", a1.GetAcknowledgeTime().AsTime(), a2.GetAcknowledgeTime().AsTime())
	}
	_, err = ack(alice, p2.GetTransactionId())
	wantError(t, err, connect.CodePermissionDenied, "PERMISSION_DENIED")
	_, err = ack(bob, failed)
	wantError(t, err, connect.CodeFailedPrecondition, "PAYMENT_NOT_SUCCEEDED")

	// The repeat added no event: the next one is the next payment's.
	p3 := mustPay(t, alice, "bob", 103)
	wantBobEvent(t, w.next(t), gatewayv1.PaymentEventType_PAYMENT_EVENT_TYPE_SUCCEEDED, p3.GetTransactionId())

	// A customer watches only their own account.
	spy := watch(t, bob, &gatewayv1.WatchPaymentsRequest{Account: gatewaytest.Ref("alice")})
	select {
	case e := <-spy.events:
		t.Errorf("bob receives alice's event %v", e)
	case err := <-spy.done:
		wantError(t, err, connect.CodePermissionDenied, "PERMISSION_DENIED")
	case <-time.After(gatewaytest.WaitTimeout):
		t.Error("bob's watch of alice's account neither fails nor ends")
	}
}

// A watch with nothing to replay is established at once: the client's
// WatchPayments returns (the server sent its response headers) before any
// event exists, so a client can tell "connected, nothing yet" from "still
// connecting" and no idle-timeout in between cuts a header-less request.
func TestIntegrationWatchOpensBeforeFirstEvent(t *testing.T) {
	t.Parallel()
	n := gatewaytest.Start(t, gatewaytest.Options{})
	bob := n.Login(t, "bob")

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	opened := make(chan error, 1)
	go func() {
		s, err := bob.Payments.WatchPayments(ctx, &gatewayv1.WatchPaymentsRequest{})
		if err == nil {
			defer s.Close() //nolint:errcheck // the test is about opening the stream; its end is the test's cancel
		}
		opened <- err
	}()
	select {
	case err := <-opened:
		if err != nil {
			t.Fatalf("WatchPayments: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("WatchPayments did not return within 5s with no event to send: the gateway sends no response headers until the first event")
	}
}

// An UpdateBalance whose bank does not answer in time: the gateway must not
// tell the admin "unavailable: nothing was recorded" (the answer that means a
// new transaction id is safe) and then apply the adjustment anyway. Whatever
// the first answer, retrying the same id applies it exactly once.
func TestIntegrationUnansweredAdjustment(t *testing.T) {
	t.Parallel()
	n := gatewaytest.Start(t, gatewaytest.Options{})
	admin := n.Login(t, gatewaytest.AdminID)

	release := n.Banks["bank-c"].LockLedger(t) // carol's bank does not answer
	id := newID()
	req := &gatewayv1.UpdateBalanceRequest{
		TransactionId: id, Account: gatewaytest.Ref("carol"), Direction: gatewayv1.Direction_DIRECTION_CREDIT,
		Amount: 5000, Currency: gatewaytest.Currency,
	}
	_, first := admin.Admin.UpdateBalance(callCtx(t), req)
	nothingRecorded := connect.CodeOf(first) == connect.CodeUnavailable
	t.Logf("first answer with the bank silent: %v", first)
	release()

	if nothingRecorded {
		// Told nothing was recorded: the deposit must not happen on its own.
		gatewaytest.Holds(t, 1500*time.Millisecond, "adjustment re-driven after unavailable", func() error {
			f, err := checkBalance(callCtx(t), admin, "carol")
			if err == nil && f.Balance != gatewaytest.Opening {
				return fmt.Errorf("UpdateBalance answered %q, yet carol's balance became %d: the adjustment was recorded and "+
					"re-driven; an admin who believed the answer and used a new id would deposit twice", first, f.Balance)
			}
			return nil
		})
	}
	var res *gatewayv1.UpdateBalanceResponse
	var err error
	gatewaytest.Retry(t.Context(), gatewaytest.WaitTimeout, func() bool {
		res, err = admin.Admin.UpdateBalance(callCtx(t), req)
		return !retryable(err)
	})
	if err != nil {
		t.Fatalf("retried deposit: %v", err)
	}
	if res.GetBalance() != gatewaytest.Opening+5000 {
		t.Errorf("retried deposit: balance %d, want %d", res.GetBalance(), gatewaytest.Opening+5000)
	}
	waitFunds(t, admin, map[string]funds{"carol": settled(gatewaytest.Opening + 5000)})

	stopBanks(t, n)
	b := readBooks(t, n, id)
	checkAccounts(t, b, map[string]int64{"carol": gatewaytest.Opening + 5000})
	checkJournal(t, b, id, map[string][]string{"bank-c": {"carol credit 5000 adjustment"}})
}

// A gateway with a client watching its payments still stops promptly and
// cleanly, and the watch ends with an error that tells the client to
// reconnect: long-lived streams must not hold a graceful shutdown (and a
// restart) for the whole shutdown timeout.
func TestIntegrationGatewayStopsWithOpenWatch(t *testing.T) {
	t.Parallel()
	n := gatewaytest.Start(t, gatewaytest.Options{})
	alice, bob := n.Login(t, "alice"), n.Login(t, "bob")

	w := watch(t, bob, &gatewayv1.WatchPaymentsRequest{})
	p := mustPay(t, alice, "bob", 100)
	wantBobEvent(t, w.next(t), gatewayv1.PaymentEventType_PAYMENT_EVENT_TYPE_SUCCEEDED, p.GetTransactionId())

	start := time.Now()
	err := n.Gateway.Restart()
	if d := time.Since(start); err != nil || d > 5*time.Second {
		t.Errorf("gateway restart with an open watch took %v: %v", d.Round(time.Millisecond), err)
	}
	select {
	case err := <-w.done:
		if code := connect.CodeOf(err); code != connect.CodeUnavailable {
			t.Errorf("watch ended with %v, want unavailable (reconnect)", err)
		}
	case <-time.After(gatewaytest.WaitTimeout):
		t.Error("the watch did not end when its gateway stopped")
	}
}
