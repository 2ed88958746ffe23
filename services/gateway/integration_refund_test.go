package gateway_test

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	gocmp "github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
	"github.com/remitpay/remit/gen/remit/gateway/v1/gatewayv1connect"
	"github.com/remitpay/remit/internal/rpcerr"
	"github.com/remitpay/remit/services/bank"
	"github.com/remitpay/remit/services/gateway/gatewaytest"
)

// Refunds (PaymentService.RefundPayment) over the real network: a refund is
// a payment from the refunded payment's payee back to its payer, through the
// same two-phase commit, idempotent by refund id, never exceeding the
// payment.

const (
	byCustomer = gatewayv1.RefundReason_REFUND_REASON_REQUESTED_BY_CUSTOMER
	duplicate  = gatewayv1.RefundReason_REFUND_REASON_DUPLICATE
)

// refund sends RefundPayment from c, retrying the same refund id while the
// answer is retryable, and returns the final answer.
func refund(ctx context.Context, c *gatewaytest.Client, req *gatewayv1.RefundPaymentRequest) (*gatewayv1.RefundPaymentResponse, error) {
	var res *gatewayv1.RefundPaymentResponse
	var err error
	gatewaytest.Retry(ctx, gatewaytest.WaitTimeout, func() bool {
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		defer cancel()
		res, err = c.Payments.RefundPayment(cctx, req)
		return !retryable(err) || ctx.Err() != nil
	})
	return res, err
}

func refundReq(refundID, txID string, amount int64, reason gatewayv1.RefundReason) *gatewayv1.RefundPaymentRequest {
	return &gatewayv1.RefundPaymentRequest{
		RefundId: refundID, TransactionId: txID, Amount: amount, Reason: reason, Description: "refund of " + txID[:8],
	}
}

// mustRefund refunds and fails the test unless the refund succeeded.
func mustRefund(t *testing.T, c *gatewaytest.Client, txID string, amount int64) *gatewayv1.RefundPaymentResponse {
	t.Helper()
	res, err := refund(t.Context(), c, refundReq(newID(), txID, amount, byCustomer))
	if err != nil {
		t.Fatalf("%s refunds %d of %s: %v", c.ID, amount, txID, err)
	}
	wantStatus(t, res.GetRefund(), gatewayv1.PaymentStatus_PAYMENT_STATUS_SUCCEEDED)
	return res
}

// wantRefunded fails unless p shows amount refunded and exactly the refunds
// in want (transaction id and status), oldest first.
func wantRefunded(t *testing.T, p *gatewayv1.Payment, amount int64, want ...string) {
	t.Helper()
	if p.GetAmountRefunded() != amount {
		t.Errorf("payment %s: amount_refunded %d, want %d", p.GetTransactionId(), p.GetAmountRefunded(), amount)
	}
	var got []string
	for _, r := range p.GetRefunds() {
		got = append(got, r.GetTransactionId()+" "+r.GetStatus().String())
	}
	if d := gocmp.Diff(want, got); d != "" {
		t.Errorf("payment %s: refunds (-want +got):\n%s", p.GetTransactionId(), d)
	}
}

func succeeded(id string) string { return id + " PAYMENT_STATUS_SUCCEEDED" }
func failed(id string) string    { return id + " PAYMENT_STATUS_FAILED" }

// Partial refunds add up to the payment and never beyond it; a full refund
// leaves nothing to refund; the refund and the payment show each other.
func TestIntegrationRefundPartialsAddUp(t *testing.T) {
	t.Parallel()
	n := gatewaytest.Start(t, gatewaytest.Options{})
	alice, bob, admin := n.Login(t, "alice"), n.Login(t, "bob"), n.Login(t, gatewaytest.AdminID)

	p := mustPay(t, alice, "bob", 10000)
	id := p.GetTransactionId()
	first := mustRefund(t, bob, id, 3000)
	r := first.GetRefund()
	if r.GetRefundedTransactionId() != id || r.GetRefundReason() != byCustomer || r.GetAmount() != 3000 ||
		r.GetPayer().GetAccountId() != "bob" || r.GetPayee().GetAccountId() != "alice" ||
		r.GetPayerClientId() != "bob" || r.GetCurrency() != gatewaytest.Currency || len(r.GetRefunds()) != 0 {
		t.Errorf("refund %v: want 3000 %s from bob to alice by bob, linked to %s with its reason", r, gatewaytest.Currency, id)
	}
	wantRefunded(t, first.GetPayment(), 3000, succeeded(r.GetTransactionId()))
	if s := first.GetPayment().GetRefunds()[0]; s.GetAmount() != 3000 || s.GetReason() != byCustomer || s.GetCreateTime() == nil {
		t.Errorf("refund summary %v: want 3000, its reason and its create time", s)
	}
	second := mustRefund(t, bob, id, 5000).GetRefund().GetTransactionId()

	// 2001 would go beyond: refused, nothing recorded.
	over := newID()
	_, err := refund(t.Context(), bob, refundReq(over, id, 2001, byCustomer))
	wantError(t, err, connect.CodeFailedPrecondition, "REFUND_EXCEEDS_PAYMENT")
	if !strings.Contains(err.Error(), "2000") {
		t.Errorf("refusal %q does not say what is left (2000)", err)
	}
	if _, err := admin.Payments.GetPayment(callCtx(t), &gatewayv1.GetPaymentRequest{TransactionId: over}); connect.CodeOf(err) != connect.CodeNotFound {
		t.Errorf("a refused refund was recorded: GetPayment says %v, want not_found", err)
	}
	// The rest is refundable; then nothing is, by the payee or an admin.
	last := mustRefund(t, bob, id, 2000)
	third := last.GetRefund().GetTransactionId()
	wantRefunded(t, last.GetPayment(), 10000, succeeded(r.GetTransactionId()), succeeded(second), succeeded(third))
	for _, c := range []*gatewaytest.Client{bob, admin} {
		_, err := refund(t.Context(), c, refundReq(newID(), id, 1, byCustomer))
		wantError(t, err, connect.CodeFailedPrecondition, "REFUND_EXCEEDS_PAYMENT")
	}
	// Both parties read the payment with its refunds.
	for _, c := range []*gatewaytest.Client{alice, bob} {
		res, err := c.Payments.GetPayment(callCtx(t), &gatewayv1.GetPaymentRequest{TransactionId: id})
		if err != nil {
			t.Fatal(err)
		}
		wantRefunded(t, res.GetPayment(), 10000, succeeded(r.GetTransactionId()), succeeded(second), succeeded(third))
	}
	// A replay of the payment shows its refunds too.
	again, err := pay(t, alice, id, "bob", 10000)
	if err != nil {
		t.Fatal(err)
	}
	wantRefunded(t, again, 10000, succeeded(r.GetTransactionId()), succeeded(second), succeeded(third))

	waitFunds(t, admin, allSettled(nil))
	stopBanks(t, n)
	b := readBooks(t, n, id, r.GetTransactionId(), second, third, over)
	checkAccounts(t, b, nil)
	checkJournal(t, b, r.GetTransactionId(), paymentEntries("bob", "alice", 3000))
	checkJournal(t, b, second, paymentEntries("bob", "alice", 5000))
	checkJournal(t, b, third, paymentEntries("bob", "alice", 2000))
	checkJournal(t, b, over, nil)
}

// Only a SUCCEEDED payment that is not a refund can be refunded.
func TestIntegrationRefundNotRefundable(t *testing.T) {
	t.Parallel()
	n := gatewaytest.Start(t, gatewaytest.Options{})
	alice, bob, admin := n.Login(t, "alice"), n.Login(t, "bob"), n.Login(t, gatewaytest.AdminID)

	declinedID := newID()
	_, err := pay(t, alice, declinedID, "bob", gatewaytest.Opening+1)
	wantError(t, err, connect.CodeFailedPrecondition, "INSUFFICIENT_FUNDS")
	r := mustRefund(t, bob, mustPay(t, alice, "bob", 500).GetTransactionId(), 200).GetRefund()

	for name, c := range map[string]struct {
		who  *gatewaytest.Client
		txID string
	}{
		"failed payment":         {bob, declinedID},
		"failed payment, admin":  {admin, declinedID},
		"a refund, by its payee": {alice, r.GetTransactionId()},
		"a refund, admin":        {admin, r.GetTransactionId()},
	} {
		id := newID()
		_, err := refund(t.Context(), c.who, refundReq(id, c.txID, 100, duplicate))
		wantError(t, err, connect.CodeFailedPrecondition, "PAYMENT_NOT_REFUNDABLE")
		if _, err := admin.Payments.GetPayment(callCtx(t), &gatewayv1.GetPaymentRequest{TransactionId: id}); connect.CodeOf(err) != connect.CodeNotFound {
			t.Errorf("%s: the refused refund was recorded: %v", name, err)
		}
	}
	waitFunds(t, admin, allSettled(map[string]int64{"alice": gatewaytest.Opening - 300, "bob": gatewaytest.Opening + 300}))
}

// A refund the payee's account cannot fund is declined INSUFFICIENT_FUNDS
// like a payment, stored FAILED (a replay gets the same decline), listed on
// the payment, and its amount is refundable again.
func TestIntegrationRefundInsufficientFunds(t *testing.T) {
	t.Parallel()
	n := gatewaytest.Start(t, gatewaytest.Options{})
	alice, bob, carol, admin := n.Login(t, "alice"), n.Login(t, "bob"), n.Login(t, "carol"), n.Login(t, gatewaytest.AdminID)

	id := mustPay(t, alice, "bob", 5000).GetTransactionId()
	mustPay(t, bob, "carol", gatewaytest.Opening+4000) // bob keeps 1000
	poor := newID()
	req := refundReq(poor, id, 5000, byCustomer)
	_, err := refund(t.Context(), bob, req)
	wantError(t, err, connect.CodeFailedPrecondition, "INSUFFICIENT_FUNDS")
	if info := rpcerr.Info(err); info.GetMetadata()["transaction_id"] != poor {
		t.Errorf("decline metadata %v, want the refund's id %s", info.GetMetadata(), poor)
	}
	_, again := refund(t.Context(), bob, req)
	wantError(t, again, connect.CodeFailedPrecondition, "INSUFFICIENT_FUNDS")
	fr := getPayment(t, admin, poor)
	wantStatus(t, fr, gatewayv1.PaymentStatus_PAYMENT_STATUS_FAILED, gatewayv1.FailureReason_FAILURE_REASON_INSUFFICIENT_FUNDS)
	if fr.GetRefundedTransactionId() != id {
		t.Errorf("failed refund %v not linked to %s", fr, id)
	}
	wantRefunded(t, getPayment(t, admin, id), 0, failed(poor))

	// Once bob has the money, the whole amount is refundable again.
	mustPay(t, carol, "bob", 4000)
	ok := mustRefund(t, bob, id, 5000)
	okID := ok.GetRefund().GetTransactionId()
	wantRefunded(t, ok.GetPayment(), 5000, failed(poor), succeeded(okID))

	want := map[string]int64{"alice": gatewaytest.Opening, "bob": 0, "carol": 2 * gatewaytest.Opening}
	waitFunds(t, admin, allSettled(want))
	stopBanks(t, n)
	b := readBooks(t, n, poor, okID)
	checkAccounts(t, b, want)
	checkJournal(t, b, poor, nil)
	checkNotPrepared(t, b, poor)
	checkJournal(t, b, okID, paymentEntries("bob", "alice", 5000))
}

// Concurrent refunds of one payment never exceed it: of 8 refunds of 40%
// each, at most 2 succeed; of 16 of 1/5, at most 5; every other is refused
// REFUND_EXCEEDS_PAYMENT, and the money moved is what the refunds say.
func TestIntegrationConcurrentRefunds(t *testing.T) {
	t.Parallel()
	n := gatewaytest.Start(t, gatewaytest.Options{})
	alice, bob, admin := n.Login(t, "alice"), n.Login(t, "bob"), n.Login(t, gatewaytest.AdminID)

	var refunded int64
	var ids []string
	for _, c := range []struct {
		amount, each int64
		callers, max int
	}{{10000, 4000, 8, 2}, {5000, 1000, 16, 5}} {
		id := mustPay(t, alice, "bob", c.amount).GetTransactionId()
		ids = append(ids, id)
		var wg sync.WaitGroup
		res := make([]*gatewayv1.RefundPaymentResponse, c.callers)
		errs := make([]error, c.callers)
		for i := range c.callers {
			who := bob
			if i%4 == 3 {
				who = admin // the payee and an admin race too
			}
			wg.Go(func() { res[i], errs[i] = refund(t.Context(), who, refundReq(newID(), id, c.each, byCustomer)) })
		}
		wg.Wait()
		var won []string
		for i, err := range errs {
			switch {
			case err == nil:
				wantStatus(t, res[i].GetRefund(), gatewayv1.PaymentStatus_PAYMENT_STATUS_SUCCEEDED)
				won = append(won, res[i].GetRefund().GetTransactionId())
			case rpcerr.Reason(err) != "REFUND_EXCEEDS_PAYMENT":
				t.Errorf("refund %d of %s: %v, want success or REFUND_EXCEEDS_PAYMENT", i, id, err)
			}
		}
		if len(won) == 0 || len(won) > c.max {
			t.Fatalf("%d concurrent refunds of %d out of %d: %d succeeded, want 1 to %d", c.callers, c.each, c.amount, len(won), c.max)
		}
		p := getPayment(t, admin, id)
		if got := p.GetAmountRefunded(); got != int64(len(won))*c.each || got > c.amount {
			t.Errorf("payment %s: amount_refunded %d, want %d (%d refunds of %d)", id, got, int64(len(won))*c.each, len(won), c.each)
		}
		if len(p.GetRefunds()) != len(won) {
			t.Errorf("payment %s lists %d refunds, want the %d that succeeded (refused ones are not recorded)", id, len(p.GetRefunds()), len(won))
		}
		refunded += int64(len(won)) * c.each
		ids = append(ids, won...)
	}
	want := map[string]int64{"alice": gatewaytest.Opening - 15000 + refunded, "bob": gatewaytest.Opening + 15000 - refunded}
	waitFunds(t, admin, allSettled(want))
	stopBanks(t, n)
	checkAccounts(t, readBooks(t, n, ids...), want)
}

// Idempotency by refund id, with MakePayment's semantics: a replay gets the
// same answer and moves nothing twice; the id with other parameters, by
// another caller, or equal to a payment's id is IDEMPOTENCY_KEY_REUSED; a
// duplicate while the first is in flight waits for it, or is told
// REQUEST_IN_PROGRESS when its deadline runs out first.
func TestIntegrationRefundIdempotency(t *testing.T) {
	t.Parallel()
	n := gatewaytest.Start(t, windowOptions)
	alice, bob, admin := n.Login(t, "alice"), n.Login(t, "bob"), n.Login(t, gatewaytest.AdminID)

	id := mustPay(t, alice, "bob", 8000).GetTransactionId()
	other := mustPay(t, alice, "bob", 8000).GetTransactionId()
	bobsOwn := mustPay(t, bob, "alice", 10).GetTransactionId()
	rid := newID()
	req := refundReq(rid, id, 1500, duplicate)
	first, err := refund(t.Context(), bob, req)
	if err != nil {
		t.Fatal(err)
	}
	for _, dup := range []string{rid, strings.ToUpper(rid)} {
		again, err := refund(t.Context(), bob, refundReq(dup, id, 1500, duplicate))
		if err != nil {
			t.Fatalf("replay %s: %v", dup, err)
		}
		if d := gocmp.Diff(first, again, protocmp.Transform()); d != "" {
			t.Errorf("replay %s (-first +again):\n%s", dup, d)
		}
	}

	reused := map[string]struct {
		who *gatewaytest.Client
		req *gatewayv1.RefundPaymentRequest
	}{
		"other amount":      {bob, refundReq(rid, id, 1501, duplicate)},
		"other reason":      {bob, refundReq(rid, id, 1500, byCustomer)},
		"other description": {bob, &gatewayv1.RefundPaymentRequest{RefundId: rid, TransactionId: id, Amount: 1500, Reason: duplicate, Description: "other"}},
		"other payment":     {bob, refundReq(rid, other, 1500, duplicate)},
		"other caller":      {admin, req},
		"the payment's id":  {bob, refundReq(id, id, 1500, duplicate)},
		"a payment's id":    {bob, refundReq(bobsOwn, id, 1500, duplicate)},
	}
	for name, c := range reused {
		_, err := c.who.Payments.RefundPayment(callCtx(t), c.req)
		if connect.CodeOf(err) != connect.CodeInvalidArgument || rpcerr.Reason(err) != "IDEMPOTENCY_KEY_REUSED" {
			t.Errorf("%s: %v, want invalid_argument IDEMPOTENCY_KEY_REUSED", name, err)
		}
	}
	// And a payment with the refund's id.
	_, err = bob.Payments.MakePayment(callCtx(t), &gatewayv1.MakePaymentRequest{
		TransactionId: rid, Payee: gatewaytest.Ref("alice"), Amount: 1500, Currency: gatewaytest.Currency,
	})
	wantError(t, err, connect.CodeInvalidArgument, "IDEMPOTENCY_KEY_REUSED")

	// In flight: alice's bank (the refund's payee) is slow.
	release := n.Banks["bank-a"].LockLedger(t)
	slow := refundReq(newID(), id, 2500, byCustomer)
	ch := make(chan error, 1)
	var slowRes *gatewayv1.RefundPaymentResponse
	go func() {
		var err error
		slowRes, err = refund(t.Context(), bob, slow)
		ch <- err
	}()
	// bank-b voted YES: bob's 2500 are held (after 1500 refunded and 10 paid).
	bobBalance := gatewaytest.Opening + 16000 - 1500 - 10
	waitFunds(t, admin, map[string]funds{"bob": {bobBalance, bobBalance - 2500}})
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	_, err = bob.Payments.RefundPayment(ctx, slow)
	cancel()
	if code := connect.CodeOf(err); code != connect.CodeAborted && code != connect.CodeDeadlineExceeded {
		t.Errorf("duplicate in flight: %v, want aborted REQUEST_IN_PROGRESS (or deadline_exceeded)", err)
	} else if code == connect.CodeAborted && rpcerr.Reason(err) != "REQUEST_IN_PROGRESS" {
		t.Errorf("duplicate in flight: reason %q, want REQUEST_IN_PROGRESS", rpcerr.Reason(err))
	}
	waiting := make(chan error, 1)
	var waitRes *gatewayv1.RefundPaymentResponse
	go func() {
		var err error
		waitRes, err = refund(t.Context(), bob, slow) // waits for the first
		waiting <- err
	}()
	release()
	for _, c := range []chan error{ch, waiting} {
		select {
		case err := <-c:
			if err != nil {
				t.Fatalf("slow refund: %v", err)
			}
		case <-time.After(gatewaytest.WaitTimeout):
			t.Fatal("slow refund did not return")
		}
	}
	if d := gocmp.Diff(slowRes.GetRefund(), waitRes.GetRefund(), protocmp.Transform()); d != "" {
		t.Errorf("the duplicate got another refund (-first +duplicate):\n%s", d)
	}
	wantRefunded(t, getPayment(t, admin, id), 4000, succeeded(rid), succeeded(slow.GetRefundId()))

	want := map[string]int64{"alice": gatewaytest.Opening - 16000 + 4000 + 10, "bob": bobBalance - 2500}
	waitFunds(t, admin, allSettled(want))
	stopBanks(t, n)
	b := readBooks(t, n, rid, slow.GetRefundId())
	checkAccounts(t, b, want)
	checkJournal(t, b, rid, paymentEntries("bob", "alice", 1500))
	checkJournal(t, b, slow.GetRefundId(), paymentEntries("bob", "alice", 2500))
}

// Only the payee of the payment, or an admin, may refund it: its payer is
// refused, a customer who may not see it is told it does not exist.
func TestIntegrationRefundAuthorization(t *testing.T) {
	t.Parallel()
	n := gatewaytest.Start(t, gatewaytest.Options{})
	alice, bob, admin := n.Login(t, "alice"), n.Login(t, "bob"), n.Login(t, gatewaytest.AdminID)
	carol, dave := n.Login(t, "carol"), n.Login(t, "dave")

	id := mustPay(t, alice, "bob", 3000).GetTransactionId()
	_, err := alice.Payments.RefundPayment(callCtx(t), refundReq(newID(), id, 100, byCustomer))
	wantError(t, err, connect.CodePermissionDenied, "PERMISSION_DENIED")
	for _, c := range []*gatewaytest.Client{carol, dave} { // dave banks with alice at bank-a
		_, err := c.Payments.RefundPayment(callCtx(t), refundReq(newID(), id, 100, byCustomer))
		wantError(t, err, connect.CodeNotFound, "NOT_FOUND")
		if strings.Contains(errorText(err), "alice") || strings.Contains(errorText(err), "3000") {
			t.Errorf("%s's refusal %q leaks the payment", c.ID, errorText(err))
		}
	}
	_, err = bob.Payments.RefundPayment(callCtx(t), refundReq(newID(), newID(), 100, byCustomer))
	wantError(t, err, connect.CodeNotFound, "NOT_FOUND")

	res, err := refund(t.Context(), admin, refundReq(newID(), id, 1000, gatewayv1.RefundReason_REFUND_REASON_FRAUDULENT))
	if err != nil {
		t.Fatalf("admin refunds: %v", err)
	}
	if r := res.GetRefund(); r.GetPayerClientId() != gatewaytest.AdminID || r.GetPayer().GetAccountId() != "bob" ||
		r.GetPayee().GetAccountId() != "alice" {
		t.Errorf("admin's refund %v: want from bob to alice, made by admin", r)
	}
	// The audit log has the payer's denial and the refund's decision,
	// linked to the payment (written before the answer).
	var denied, decided bool
	f, err := os.Open(filepath.Join(n.Dir, "gateway", "audit.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close() //nolint:errcheck // read-only
	for sc := bufio.NewScanner(f); sc.Scan(); {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("audit line is not JSON: %s", sc.Text())
		}
		denied = denied || line["event"] == "authz_denied" && line["principal"] == "alice" &&
			line["procedure"] == gatewayv1connect.PaymentServiceRefundPaymentProcedure
		decided = decided || line["event"] == "payment_decided" && line["transaction_id"] == res.GetRefund().GetTransactionId() &&
			line["refunded_transaction_id"] == id && line["refund_reason"] == "FRAUDULENT" && line["client_id"] == gatewaytest.AdminID
	}
	if !denied || !decided {
		t.Errorf("audit log: payer's refund denied %v, refund's decision linked to the payment %v; want both", denied, decided)
	}
	waitFunds(t, admin, allSettled(map[string]int64{"alice": gatewaytest.Opening - 2000, "bob": gatewaytest.Opening + 2000}))
}

// Both parties see a refund, linked to the payment, in WatchPayments (its
// own SUCCEEDED or FAILED event on each account, as for a payment; the
// payment gets no event of its own) and in ListPayments, where the payment
// shows its refunds.
func TestIntegrationRefundEventsAndLists(t *testing.T) {
	t.Parallel()
	n := gatewaytest.Start(t, gatewaytest.Options{})
	alice, bob, admin := n.Login(t, "alice"), n.Login(t, "bob"), n.Login(t, gatewaytest.AdminID)
	aw, bw := watch(t, alice, &gatewayv1.WatchPaymentsRequest{}), watch(t, bob, &gatewayv1.WatchPaymentsRequest{})

	id := mustPay(t, alice, "bob", 6000).GetTransactionId()
	rid := mustRefund(t, bob, id, 2500).GetRefund().GetTransactionId()
	// A refund bob cannot fund: bob pays all but 100 to carol first.
	drain := mustPay(t, bob, "carol", gatewaytest.Opening+6000-2500-100).GetTransactionId()
	fid := newID()
	_, err := refund(t.Context(), bob, refundReq(fid, id, 3500, byCustomer))
	wantError(t, err, connect.CodeFailedPrecondition, "INSUFFICIENT_FUNDS")
	// The payee acknowledges the payment: an event of the payment, which
	// shows its refunds.
	if _, err := bob.Payments.AcknowledgePayment(callCtx(t), &gatewayv1.AcknowledgePaymentRequest{TransactionId: id}); err != nil {
		t.Fatal(err)
	}

	type ev struct {
		typ  gatewayv1.PaymentEventType
		txID string
	}
	events := func(w *watcher, who string, want []ev) []*gatewayv1.WatchPaymentsResponse {
		t.Helper()
		var got []*gatewayv1.WatchPaymentsResponse
		for i, e := range want {
			m := w.next(t)
			if m.GetType() != e.typ || m.GetPayment().GetTransactionId() != e.txID || m.GetAccount().GetAccountId() != who {
				t.Fatalf("%s's event %d: %v, want %v of %s on %s", who, i, m, e.typ, e.txID, who)
			}
			got = append(got, m)
		}
		return got
	}
	const (
		ok  = gatewayv1.PaymentEventType_PAYMENT_EVENT_TYPE_SUCCEEDED
		bad = gatewayv1.PaymentEventType_PAYMENT_EVENT_TYPE_FAILED
		ack = gatewayv1.PaymentEventType_PAYMENT_EVENT_TYPE_ACKNOWLEDGED
	)
	checkStream := func(got []*gatewayv1.WatchPaymentsResponse, who string) {
		t.Helper()
		for _, m := range got {
			p := m.GetPayment()
			switch p.GetTransactionId() {
			case rid, fid:
				if p.GetRefundedTransactionId() != id || p.GetRefundReason() != byCustomer {
					t.Errorf("%s: refund event %v not linked to %s with its reason", who, m, id)
				}
			case id:
				if m.GetType() == ack {
					wantRefunded(t, p, 2500, succeeded(rid), failed(fid))
				}
			}
		}
	}
	checkStream(events(aw, "alice", []ev{{ok, id}, {ok, rid}, {bad, fid}, {ack, id}}), "alice")
	checkStream(events(bw, "bob", []ev{{ok, id}, {ok, rid}, {ok, drain}, {bad, fid}, {ack, id}}), "bob")
	for _, w := range []*watcher{aw, bw} {
		select {
		case e := <-w.events:
			t.Errorf("an event more: %v", e)
		case <-time.After(200 * time.Millisecond):
		}
	}
	// Reconnecting from the start replays every event (the catch-up reads
	// the log, not the hub): the payment's first event shows its refunds.
	again := watch(t, alice, &gatewayv1.WatchPaymentsRequest{})
	got := events(again, "alice", []ev{{ok, id}, {ok, rid}, {bad, fid}, {ack, id}})
	checkStream(got, "alice")
	wantRefunded(t, got[0].GetPayment(), 2500, succeeded(rid), failed(fid))

	// ListPayments, newest first, for both parties and the admin; one page
	// at a time, too.
	for _, c := range []struct {
		who  *gatewaytest.Client
		acct *gatewayv1.AccountRef
		want []string
	}{
		{alice, nil, []string{fid, rid, id}},
		{bob, nil, []string{fid, drain, rid, id}},
		{admin, gatewaytest.Ref("alice"), []string{fid, rid, id}},
	} {
		for _, size := range []int32{0, 1} {
			var list []*gatewayv1.Payment
			tok := ""
			for {
				res, err := c.who.Payments.ListPayments(callCtx(t), &gatewayv1.ListPaymentsRequest{Account: c.acct, PageSize: size, PageToken: tok})
				if err != nil {
					t.Fatal(err)
				}
				list = append(list, res.GetPayments()...)
				if tok = res.GetNextPageToken(); tok == "" {
					break
				}
			}
			var ids []string
			for _, p := range list {
				ids = append(ids, p.GetTransactionId())
				switch p.GetTransactionId() {
				case id:
					wantRefunded(t, p, 2500, succeeded(rid), failed(fid))
				case rid, fid:
					if p.GetRefundedTransactionId() != id {
						t.Errorf("%s lists refund %v unlinked", c.who.ID, p)
					}
				case drain:
					if p.GetRefundedTransactionId() != "" || len(p.GetRefunds()) != 0 {
						t.Errorf("%s lists payment %v with refund fields", c.who.ID, p)
					}
				}
			}
			if d := gocmp.Diff(c.want, ids); d != "" {
				t.Errorf("%s lists (page size %d) (-want +got):\n%s", c.who.ID, size, d)
			}
		}
	}
}

// The gateway stops while a refund's prepare is still out (before any
// decision): the refund ends FAILED (decided by its own run, which the stop
// waits for, or by recovery on the next start), every hold is released,
// including the one the late vote takes, nothing moved, and its amount is
// refundable again. Money is conserved over every account. (The crash
// proper, the process gone before the decision, is
// TestRefundCrashBeforeDecisionIsRecovered.)
func TestIntegrationRefundGatewayRestartBeforeDecision(t *testing.T) {
	t.Parallel()
	n := gatewaytest.Start(t, windowOptions)
	alice, bob, admin := n.Login(t, "alice"), n.Login(t, "bob"), n.Login(t, gatewaytest.AdminID)

	id := mustPay(t, alice, "bob", 4000).GetTransactionId()
	release := n.Banks["bank-a"].LockLedger(t) // the refund's payee's bank is slow
	rid := newID()
	ctx, cancel := context.WithCancel(t.Context())
	ch := make(chan error, 1)
	go func() {
		_, err := bob.Payments.RefundPayment(ctx, refundReq(rid, id, 3000, byCustomer))
		ch <- err
	}()
	bobBalance := gatewaytest.Opening + 4000
	waitFunds(t, admin, map[string]funds{"bob": {bobBalance, bobBalance - 3000}}) // bank-b voted YES
	cancel()
	if err := <-ch; connect.CodeOf(err) != connect.CodeCanceled {
		t.Fatalf("canceled refund: %v", err)
	}
	// While undecided, the refund counts: nothing more than 1000 is left.
	_, err := bob.Payments.RefundPayment(callCtx(t), refundReq(newID(), id, 1001, byCustomer))
	wantError(t, err, connect.CodeFailedPrecondition, "REFUND_EXCEEDS_PAYMENT")
	n.Gateway.Stop(t)

	n.Gateway.SetTiming(gatewaytest.FastTiming)
	n.Gateway.Start(t)
	r := getPayment(t, admin, rid)
	wantStatus(t, r, gatewayv1.PaymentStatus_PAYMENT_STATUS_FAILED,
		gatewayv1.FailureReason_FAILURE_REASON_EXPIRED, gatewayv1.FailureReason_FAILURE_REASON_BANK_UNAVAILABLE)
	if r.GetRefundedTransactionId() != id {
		t.Errorf("recovered refund %v not linked to %s", r, id)
	}
	waitFunds(t, admin, map[string]funds{"bob": settled(bobBalance)}) // the ABORT reached bank-b
	release()
	waitState(t, n, "bank-a", rid, bank.StateAborted)
	// A retry gets the stored outcome; the amount is free again.
	_, err = refund(t.Context(), bob, refundReq(rid, id, 3000, byCustomer))
	wantError(t, err, connect.CodeFailedPrecondition, rpcerr.EnumReason(r.GetFailureReason()))
	full := mustRefund(t, bob, id, 4000).GetRefund().GetTransactionId()
	wantRefunded(t, getPayment(t, admin, id), 4000, failed(rid), succeeded(full))

	waitFunds(t, admin, allSettled(nil))
	stopBanks(t, n)
	b := readBooks(t, n, rid, full)
	checkAccounts(t, b, nil)
	checkJournal(t, b, rid, nil)
	wantStates(t, b, rid, map[string]bank.State{"bank-a": bank.StateAborted, "bank-b": bank.StateAborted})
	checkJournal(t, b, full, paymentEntries("bob", "alice", 4000))
}

// Crash after the COMMIT of a refund, before any bank heard it: the banks
// keep the funds held past expire_time while the gateway is down, then learn
// COMMIT from the restarted gateway through GetTransactionOutcome (the
// proxies stay cut, so the re-driver cannot be the one), and apply it once;
// the client was told SUCCEEDED, and a retry after the restart gets the same
// refund. Money is conserved over every account.
func TestIntegrationRefundGatewayRestartAfterDecision(t *testing.T) {
	t.Parallel()
	timing := windowTiming
	timing.PrepareCall, timing.Decision, timing.ExpireGrace = 2*time.Second, 2*time.Second, 500*time.Millisecond
	opts := windowOptions
	opts.Timing = timing
	n := gatewaytest.Start(t, opts)
	alice, bob, admin := n.Login(t, "alice"), n.Login(t, "bob"), n.Login(t, gatewaytest.AdminID)

	id := mustPay(t, alice, "bob", 2000).GetTransactionId()
	bobBalance := gatewaytest.Opening + 2000

	// As decidedWhileCut: bank-a votes last, the decision waits for the
	// log, both proxies are cut, then the COMMIT is written.
	releaseA := n.Banks["bank-a"].LockLedger(t)
	req := refundReq(newID(), id, 700, byCustomer)
	type result struct {
		res *gatewayv1.RefundPaymentResponse
		err error
	}
	ch := make(chan result, 1)
	go func() {
		res, err := refund(t.Context(), bob, req)
		ch <- result{res, err}
	}()
	waitFunds(t, admin, map[string]funds{"bob": {bobBalance, bobBalance - 700}})
	releaseLog := n.Gateway.LockDB(t)
	releaseA()
	waitDecisionPending(t, n, admin, req.GetRefundId())
	n.Banks["bank-a"].Proxy.Cut()
	n.Banks["bank-b"].Proxy.Cut()
	releaseLog()
	var first result
	select {
	case first = <-ch:
	case <-time.After(gatewaytest.WaitTimeout):
		t.Fatal("RefundPayment did not return")
	}
	if first.err != nil {
		t.Fatalf("refund: %v", first.err)
	}
	wantStatus(t, first.res.GetRefund(), gatewayv1.PaymentStatus_PAYMENT_STATUS_SUCCEEDED)
	n.Gateway.Stop(t)

	rid := req.GetRefundId()
	gatewaytest.WaitFor(t, "expiry at both banks", func() error {
		for _, name := range []string{"bank-a", "bank-b"} {
			var ids []string
			var err error
			n.Banks[name].Inspect(t, func(l *bank.Ledger) { ids, err = l.Expired(t.Context(), time.Now()) })
			if err != nil {
				return err
			}
			if !strings.Contains(strings.Join(ids, " "), rid) {
				return fmt.Errorf("%s does not list %s as expired: %v", name, rid, ids)
			}
		}
		return nil
	})
	n.Gateway.Start(t)
	waitState(t, n, "bank-a", rid, bank.StateCommitted)
	waitState(t, n, "bank-b", rid, bank.StateCommitted)
	n.Banks["bank-a"].Proxy.Restore()
	n.Banks["bank-b"].Proxy.Restore()
	want := map[string]int64{"alice": gatewaytest.Opening - 2000 + 700, "bob": bobBalance - 700}
	waitFunds(t, admin, allSettled(want))
	again, err := refund(t.Context(), bob, req)
	if err != nil {
		t.Fatalf("retry after restart: %v", err)
	}
	if d := gocmp.Diff(first.res, again, protocmp.Transform()); d != "" {
		t.Errorf("retry after restart (-before +after):\n%s", d)
	}
	wantRefunded(t, getPayment(t, admin, id), 700, succeeded(rid))

	stopBanks(t, n)
	b := readBooks(t, n, rid)
	checkAccounts(t, b, want)
	checkJournal(t, b, rid, paymentEntries("bob", "alice", 700))
}

// Conservation of refunds while processes fail: workers pay and at once
// refund parts of what they paid, two or three refunds at a time by the
// payee or an admin (some more than is left), while banks are cut off,
// slowed down and restarted and the gateway restarts. Afterwards every
// refund a client was told SUCCEEDED is SUCCEEDED in the gateway and
// journaled once at both banks, every other is FAILED and journaled nowhere
// (or, refused at the claim, not recorded), no payment is refunded beyond
// its amount, nothing is held, and no money was created or destroyed.
func TestIntegrationRefundConservationUnderFaults(t *testing.T) {
	t.Parallel()
	n := gatewaytest.Start(t, gatewaytest.Options{})
	customers := []string{"alice", "bob", "carol", "dave"}
	clients := map[string]*gatewaytest.Client{}
	for _, id := range customers {
		clients[id] = n.Login(t, id)
	}
	admin := n.Login(t, gatewaytest.AdminID)

	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	type payment struct {
		id, payer, payee string
		amount           int64
		err              error
	}
	type attempt struct {
		req *gatewayv1.RefundPaymentRequest
		of  *payment
		err error
	}
	var (
		mu       sync.Mutex
		payments []*payment
		attempts []*attempt
	)
	faultsDone := make(chan struct{})
	var wg sync.WaitGroup
	for w := range uint64(6) {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(seed, w+2))
			// Until the faults are over, and at least a few rounds each.
			for round := 0; ; round++ {
				select {
				case <-faultsDone:
					if round >= 3 {
						return
					}
				default:
				}
				p := &payment{id: newID(), payer: customers[rng.IntN(len(customers))], amount: 1000 + rng.Int64N(9000)}
				for p.payee = p.payer; p.payee == p.payer; {
					p.payee = customers[rng.IntN(len(customers))]
				}
				_, p.err = payCtx(t.Context(), clients[p.payer], p.id, p.payee, p.amount)
				mu.Lock()
				payments = append(payments, p)
				mu.Unlock()
				if p.err != nil {
					continue
				}
				var refunds sync.WaitGroup
				for range 2 + rng.IntN(2) {
					by := clients[p.payee]
					if rng.IntN(4) == 0 {
						by = admin
					}
					a := &attempt{req: refundReq(newID(), p.id, 1+rng.Int64N(p.amount*2/3), byCustomer), of: p}
					mu.Lock()
					attempts = append(attempts, a)
					mu.Unlock()
					refunds.Go(func() { _, a.err = refund(t.Context(), by, a.req) })
				}
				refunds.Wait()
			}
		})
	}
	var done []string
	frng := rand.New(rand.NewPCG(seed, 1))
	for step := range 8 {
		time.Sleep(150 * time.Millisecond) // let payments and refunds run between faults
		b := n.Banks[gatewaytest.BankNames[frng.IntN(len(gatewaytest.BankNames))]]
		var err error
		switch {
		case step == 1 || step == 5:
			done = append(done, "restart gateway")
			err = n.Gateway.Restart()
		case step == 3:
			done = append(done, "restart "+b.Name)
			err = b.Restart()
		case frng.IntN(2) == 0:
			done = append(done, "cut "+b.Name)
			b.Proxy.Cut()
			time.Sleep(200 * time.Millisecond)
			b.Proxy.Restore()
		default:
			done = append(done, "slow "+b.Name)
			var release func()
			if release, err = b.TryLockLedger(); err == nil {
				time.Sleep(700 * time.Millisecond) // longer than a prepare may take
				release()
			}
		}
		if err != nil {
			t.Fatalf("fault step %d: %v", step, err)
		}
	}
	t.Logf("faults: %v", done)
	close(faultsDone)
	wg.Wait()

	okPayment := func(err error) bool {
		return err == nil || connect.CodeOf(err) == connect.CodeFailedPrecondition &&
			slices.Contains([]string{"INSUFFICIENT_FUNDS", "BANK_UNAVAILABLE", "EXPIRED"}, rpcerr.Reason(err))
	}
	told := map[string]string{} // refund id -> "" (succeeded) or the decline's reason
	tally := map[string]int{}
	for _, a := range attempts {
		reason := rpcerr.Reason(a.err)
		if !okPayment(a.err) && reason != "REFUND_EXCEEDS_PAYMENT" {
			t.Errorf("refund %s of %s: %v", a.req.GetRefundId(), a.of.id, a.err)
		}
		told[a.req.GetRefundId()] = reason
		tally[cmp.Or(reason, "SUCCEEDED")]++
	}
	t.Logf("%d payments, refunds: %v", len(payments), tally)
	if tally["SUCCEEDED"] == 0 || tally["REFUND_EXCEEDS_PAYMENT"] == 0 {
		t.Fatal("no refund succeeded, or none was refused as too much: the test proves nothing")
	}

	want := map[string]int64{}
	for _, id := range customers {
		want[id] = gatewaytest.Opening
	}
	var ids []string
	for _, p := range payments {
		if !okPayment(p.err) {
			t.Errorf("payment %s: %v", p.id, p.err)
		}
		ids = append(ids, p.id)
		got := getPayment(t, admin, p.id)
		if (p.err == nil) != (got.GetStatus() == gatewayv1.PaymentStatus_PAYMENT_STATUS_SUCCEEDED) {
			t.Errorf("payment %s: client told %v, the gateway has it %v", p.id, p.err, got.GetStatus())
		}
		if got.GetStatus() != gatewayv1.PaymentStatus_PAYMENT_STATUS_SUCCEEDED {
			continue
		}
		want[p.payer] -= p.amount
		want[p.payee] += p.amount
		var sum int64
		for _, r := range got.GetRefunds() {
			reason, ok := told[r.GetTransactionId()]
			switch {
			case !ok:
				t.Errorf("payment %s lists refund %s nobody made", p.id, r.GetTransactionId())
			case reason == "REFUND_EXCEEDS_PAYMENT":
				t.Errorf("refund %s was refused at the claim but is recorded: %v", r.GetTransactionId(), r)
			case (reason == "") != (r.GetStatus() == gatewayv1.PaymentStatus_PAYMENT_STATUS_SUCCEEDED):
				t.Errorf("refund %s: client told %q, the gateway has it %v", r.GetTransactionId(), reason, r.GetStatus())
			}
			if r.GetStatus() == gatewayv1.PaymentStatus_PAYMENT_STATUS_SUCCEEDED {
				sum += r.GetAmount()
			}
			ids = append(ids, r.GetTransactionId())
		}
		if sum != got.GetAmountRefunded() || sum > p.amount {
			t.Errorf("payment %s of %d: refunds succeeded %d, amount_refunded %d", p.id, p.amount, sum, got.GetAmountRefunded())
		}
		want[p.payer] += sum
		want[p.payee] -= sum
	}
	for id, reason := range told {
		if reason == "" && !slices.Contains(ids, id) {
			t.Errorf("refund %s was told SUCCEEDED but its payment does not list it", id)
		}
	}

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
		id := a.req.GetRefundId()
		checkNotPrepared(t, b, id)
		if told[id] == "" {
			checkJournal(t, b, id, paymentEntries(a.of.payee, a.of.payer, a.req.GetAmount()))
		} else {
			checkJournal(t, b, id, nil)
		}
	}
}

// A refund whose paying account (the payment's payee) was closed since is
// declined ACCOUNT_CLOSED like a payment: the decline names the account,
// its replay is the same decline, nothing stays held or incoming anywhere,
// and its amount is free again (a second refund is declined the same way,
// not REFUND_EXCEEDS_PAYMENT).
func TestIntegrationRefundAccountClosed(t *testing.T) {
	t.Parallel()
	n := gatewaytest.Start(t, gatewaytest.Options{})
	alice, admin := n.Login(t, "alice"), n.Login(t, gatewaytest.AdminID)
	erin := &gatewayv1.AccountRef{Bank: "bank-b", AccountId: "erin"}
	retry := func(call func() error) {
		t.Helper()
		var err error
		gatewaytest.Retry(t.Context(), gatewaytest.WaitTimeout, func() bool {
			err = call()
			return !retryable(err)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	retry(func() error {
		_, err := admin.Admin.OpenAccount(callCtx(t), &gatewayv1.OpenAccountRequest{RequestId: newID(), Account: erin, Currency: gatewaytest.Currency})
		return err
	})
	p, err := makePayment(t.Context(), alice, &gatewayv1.MakePaymentRequest{
		TransactionId: newID(), Payee: erin, Amount: 300, Currency: gatewaytest.Currency,
	})
	if err != nil {
		t.Fatal(err)
	}
	id := p.GetTransactionId()
	withdrawal := newID()
	retry(func() error {
		_, err := admin.Admin.UpdateBalance(callCtx(t), &gatewayv1.UpdateBalanceRequest{
			TransactionId: withdrawal, Account: erin, Direction: gatewayv1.Direction_DIRECTION_DEBIT, Amount: 300, Currency: gatewaytest.Currency,
		})
		return err
	})
	retry(func() error {
		_, err := admin.Admin.CloseAccount(callCtx(t), &gatewayv1.CloseAccountRequest{Account: erin})
		return err
	})

	rid := newID()
	req := refundReq(rid, id, 300, byCustomer)
	_, err = refund(t.Context(), admin, req)
	wantError(t, err, connect.CodeFailedPrecondition, "ACCOUNT_CLOSED")
	if md := rpcerr.Info(err).GetMetadata(); md["transaction_id"] != rid || md["bank"] != "bank-b" || md["account_id"] != "erin" {
		t.Errorf("decline metadata %v, want the refund %s and bank-b/erin", md, rid)
	}
	_, again := refund(t.Context(), admin, req)
	wantError(t, again, connect.CodeFailedPrecondition, "ACCOUNT_CLOSED")
	second := newID()
	_, err = refund(t.Context(), admin, refundReq(second, id, 300, byCustomer))
	wantError(t, err, connect.CodeFailedPrecondition, "ACCOUNT_CLOSED")
	wantRefunded(t, getPayment(t, admin, id), 0, failed(rid), failed(second))

	want := map[string]int64{"alice": gatewaytest.Opening - 300}
	waitFunds(t, admin, allSettled(want))
	stopBanks(t, n)
	b := readBooks(t, n, rid, second)
	checkAccounts(t, b, want)
	for _, r := range []string{rid, second} {
		checkJournal(t, b, r, nil)
		checkNotPrepared(t, b, r)
	}
	if a := b.accounts["erin"]; !a.Closed || a.Balance != 0 || a.Held != 0 || a.Incoming != 0 {
		t.Errorf("erin's account after the declined refunds: %+v, want closed and empty", a)
	}
}
