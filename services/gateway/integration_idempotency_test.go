package gateway_test

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
	"github.com/remitpay/remit/services/gateway/gatewaytest"
)

// Idempotency over the API: duplicates, sequential or concurrent, get the
// stored payment and move money once; a reused id with other parameters or
// by another client is refused without leaking the original.
func TestIntegrationIdempotency(t *testing.T) {
	t.Parallel()
	// No registration heartbeat: it would mark the cut bank serving again
	// (see TestIntegrationHeartbeatKeepsUnreachableBankUnreachable).
	n := gatewaytest.Start(t, gatewaytest.Options{RegisterInterval: time.Hour})
	clients := map[string]*gatewaytest.Client{}
	for id := range gatewaytest.Customers {
		clients[id] = n.Login(t, id)
	}
	alice, bob, admin := clients["alice"], clients["bob"], n.Login(t, gatewaytest.AdminID)
	want := map[string]int64{}
	for id := range gatewaytest.Customers {
		want[id] = gatewaytest.Opening
	}
	var ids []string

	// Sequential duplicates, also spelled in upper case.
	seq := newID()
	ids = append(ids, seq)
	first, err := pay(t, alice, seq, "dave", 4321)
	if err != nil {
		t.Fatal(err)
	}
	want["alice"] -= 4321
	want["dave"] += 4321
	for _, dup := range []string{seq, strings.ToUpper(seq)} {
		again, err := pay(t, alice, dup, "dave", 4321)
		if err != nil {
			t.Fatalf("duplicate %s: %v", dup, err)
		}
		if d := cmp.Diff(first, again, protocmp.Transform()); d != "" {
			t.Errorf("duplicate %s returned another payment (-first +again):\n%s", dup, d)
		}
	}
	waitFunds(t, admin, allSettled(want))

	// Hundreds of concurrent duplicates over a few ids.
	type spec struct {
		id, payer, payee string
		amount           int64
	}
	specs := []spec{
		{newID(), "alice", "bob", 11}, {newID(), "bob", "carol", 22}, {newID(), "carol", "dave", 33},
		{newID(), "dave", "alice", 44}, {newID(), "alice", "dave", 55},
	}
	const callers = 200
	results := make([]*gatewayv1.Payment, callers)
	errs := make([]error, callers)
	var wg sync.WaitGroup
	for i := range callers {
		s := specs[i%len(specs)]
		wg.Go(func() { results[i], errs[i] = payCtx(t.Context(), clients[s.payer], s.id, s.payee, s.amount) })
	}
	wg.Wait()
	for i := range callers {
		s := specs[i%len(specs)]
		if errs[i] != nil {
			t.Errorf("caller %d (%s): %v", i, s.id, errs[i])
			continue
		}
		if d := cmp.Diff(results[i%len(specs)], results[i], protocmp.Transform()); d != "" {
			t.Errorf("caller %d got another payment for %s than caller %d (-want +got):\n%s", i, s.id, i%len(specs), d)
		}
	}
	for _, s := range specs {
		ids = append(ids, s.id)
		want[s.payer] -= s.amount
		want[s.payee] += s.amount
	}
	waitFunds(t, admin, allSettled(want))

	// Reuse with other parameters, by the same client.
	_, err = alice.Payments.MakePayment(callCtx(t), &gatewayv1.MakePaymentRequest{
		TransactionId: seq, Payee: gatewaytest.Ref("dave"), Amount: 4322, Currency: gatewaytest.Currency,
		Description: "integration alice to dave",
	})
	wantError(t, err, connect.CodeInvalidArgument, "IDEMPOTENCY_KEY_REUSED")
	_, err = alice.Payments.MakePayment(callCtx(t), &gatewayv1.MakePaymentRequest{
		TransactionId: seq, Payee: gatewaytest.Ref("bob"), Amount: 4321, Currency: gatewaytest.Currency,
		Description: "integration alice to dave",
	})
	wantError(t, err, connect.CodeInvalidArgument, "IDEMPOTENCY_KEY_REUSED")

	// Reuse by another client: refused, and nothing about alice's payment
	// (payer, payee, amount, description) is in the answer.
	_, err = bob.Payments.MakePayment(callCtx(t), &gatewayv1.MakePaymentRequest{
		TransactionId: seq, Payee: gatewaytest.Ref("dave"), Amount: 4321, Currency: gatewaytest.Currency,
		Description: "integration alice to dave",
	})
	wantError(t, err, connect.CodeInvalidArgument, "IDEMPOTENCY_KEY_REUSED")
	text := errorText(err)
	for _, secret := range []string{"alice", "bank-a", strconv.Itoa(4321), "integration", first.GetCreateTime().AsTime().Format("2006")} {
		if strings.Contains(text, secret) {
			t.Errorf("bob's refusal %q leaks %q of alice's payment", text, secret)
		}
	}
	if _, err := bob.Payments.GetPayment(callCtx(t), &gatewayv1.GetPaymentRequest{TransactionId: seq}); connect.CodeOf(err) != connect.CodeNotFound {
		t.Errorf("bob reads alice's payment to dave: %v, want not_found", err)
	}

	// A bank known to be down before phase one: unavailable, nothing
	// recorded, and the same id goes through once the bank is back.
	n.Banks["bank-c"].Proxy.Cut()
	waitBankStatus(t, admin, "bank-c", gatewayv1.BankStatus_BANK_STATUS_NOT_SERVING)
	later := newID()
	ids = append(ids, later)
	_, err = alice.Payments.MakePayment(callCtx(t), &gatewayv1.MakePaymentRequest{
		TransactionId: later, Payee: gatewaytest.Ref("carol"), Amount: 66, Currency: gatewaytest.Currency,
		Description: "integration alice to carol",
	})
	wantError(t, err, connect.CodeUnavailable, "BANK_UNAVAILABLE")
	if _, err := admin.Payments.GetPayment(callCtx(t), &gatewayv1.GetPaymentRequest{TransactionId: later}); connect.CodeOf(err) != connect.CodeNotFound {
		t.Errorf("payment refused as unavailable was recorded: GetPayment says %v, want not_found", err)
	}
	n.Banks["bank-c"].Proxy.Restore()
	waitBankStatus(t, admin, "bank-c", gatewayv1.BankStatus_BANK_STATUS_SERVING)
	mustPayID(t, alice, later, "carol", 66)
	want["alice"] -= 66
	want["carol"] += 66
	waitFunds(t, admin, allSettled(want))

	stopBanks(t, n)
	b := readBooks(t, n, ids...)
	checkAccounts(t, b, want)
	checkJournal(t, b, seq, map[string][]string{"bank-a": {"alice debit 4321", "dave credit 4321"}})
	for _, s := range specs {
		checkJournal(t, b, s.id, paymentEntries(s.payer, s.payee, s.amount))
	}
	checkJournal(t, b, later, paymentEntries("alice", "carol", 66))
}

func mustPayID(t *testing.T, c *gatewaytest.Client, id, payee string, amount int64) {
	t.Helper()
	p, err := pay(t, c, id, payee, amount)
	if err != nil {
		t.Fatalf("%s pays %d to %s (%s): %v", c.ID, amount, payee, id, err)
	}
	wantStatus(t, p, gatewayv1.PaymentStatus_PAYMENT_STATUS_SUCCEEDED)
}

// waitBankStatus waits until ListBanks shows bank name with status.
func waitBankStatus(t *testing.T, admin *gatewaytest.Client, name string, status gatewayv1.BankStatus) {
	t.Helper()
	gatewaytest.WaitFor(t, fmt.Sprintf("%s %v", name, status), func() error {
		res, err := admin.Admin.ListBanks(callCtx(t), &gatewayv1.ListBanksRequest{})
		if err != nil {
			return err
		}
		for _, b := range res.GetBanks() {
			if b.GetName() == name {
				if b.GetStatus() != status {
					return fmt.Errorf("status %v", b.GetStatus())
				}
				return nil
			}
		}
		return fmt.Errorf("%s not listed", name)
	})
}

// A bank the gateway cannot reach stays unreachable in ListBanks, and new
// payments touching it are refused as unavailable (nothing recorded), even
// though the bank itself keeps registering: its heartbeat proves it is alive,
// not that the gateway can reach it.
func TestIntegrationHeartbeatKeepsUnreachableBankUnreachable(t *testing.T) {
	t.Parallel()
	n := gatewaytest.Start(t, gatewaytest.Options{})
	alice, admin := n.Login(t, "alice"), n.Login(t, gatewaytest.AdminID)

	n.Banks["bank-c"].Proxy.Cut()
	waitBankStatus(t, admin, "bank-c", gatewayv1.BankStatus_BANK_STATUS_NOT_SERVING)
	// Several heartbeats (every 200ms) and health checks (every 100ms) later:
	gatewaytest.Holds(t, 1500*time.Millisecond, "bank-c cut off", func() error {
		res, err := admin.Admin.ListBanks(callCtx(t), &gatewayv1.ListBanksRequest{})
		if err != nil {
			return err
		}
		for _, b := range res.GetBanks() {
			if b.GetName() == "bank-c" && b.GetStatus() == gatewayv1.BankStatus_BANK_STATUS_SERVING {
				return fmt.Errorf("bank-c, unreachable for the gateway, is listed SERVING again: %v", b)
			}
		}
		id := newID()
		_, err = alice.Payments.MakePayment(callCtx(t), &gatewayv1.MakePaymentRequest{
			TransactionId: id, Payee: gatewaytest.Ref("carol"), Amount: 1, Currency: gatewaytest.Currency,
		})
		if connect.CodeOf(err) != connect.CodeUnavailable {
			return fmt.Errorf("payment to a bank the gateway cannot reach: %w, want unavailable and nothing recorded", err)
		}
		return nil
	})
}
