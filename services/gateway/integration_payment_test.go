package gateway_test

import (
	"testing"

	"connectrpc.com/connect"

	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
	"github.com/remitpay/remit/services/bank"
	"github.com/remitpay/remit/services/gateway/gatewaytest"
)

// All banks vote YES: a cross-bank and a same-bank payment each move money
// exactly once, at the payer's and the payee's bank.
func TestIntegrationAllYes(t *testing.T) {
	t.Parallel()
	n := gatewaytest.Start(t, gatewaytest.Options{})
	alice, admin := n.Login(t, "alice"), n.Login(t, gatewaytest.AdminID)

	cross := mustPay(t, alice, "bob", 1000)
	same := mustPay(t, alice, "dave", 500)
	for _, p := range []*gatewayv1.Payment{cross, same} {
		if p.GetCompleteTime() == nil || p.GetPayerClientId() != "alice" || p.GetCurrency() != gatewaytest.Currency {
			t.Errorf("payment %s: complete_time %v payer_client_id %q currency %q", p.GetTransactionId(),
				p.GetCompleteTime(), p.GetPayerClientId(), p.GetCurrency())
		}
		wantStatus(t, getPayment(t, admin, p.GetTransactionId()), gatewayv1.PaymentStatus_PAYMENT_STATUS_SUCCEEDED)
	}
	want := map[string]int64{"alice": 98500, "bob": 101000, "dave": 100500}
	waitFunds(t, admin, allSettled(want))

	stopBanks(t, n)
	b := readBooks(t, n, cross.GetTransactionId(), same.GetTransactionId())
	checkAccounts(t, b, want)
	checkJournal(t, b, cross.GetTransactionId(), paymentEntries("alice", "bob", 1000))
	checkJournal(t, b, same.GetTransactionId(), map[string][]string{"bank-a": {"alice debit 500", "dave credit 500"}})
	for id, want := range map[string]map[string]bank.State{
		cross.GetTransactionId(): {"bank-a": bank.StateCommitted, "bank-b": bank.StateCommitted},
		same.GetTransactionId():  {"bank-a": bank.StateCommitted},
	} {
		for _, name := range gatewaytest.BankNames {
			if got := b.state[id][name]; got != want[name] {
				t.Errorf("state of %s at %s: %q, want %q", id, name, got, want[name])
			}
		}
	}
}

// One bank votes NO: the payment is declined with that bank's reason, stored
// FAILED, and every hold the other bank took is released.
func TestIntegrationOneNo(t *testing.T) {
	t.Parallel()
	n := gatewaytest.Start(t, gatewaytest.Options{})
	alice, admin := n.Login(t, "alice"), n.Login(t, gatewaytest.AdminID)

	tests := []struct {
		name     string
		payee    *gatewayv1.AccountRef
		amount   int64
		currency string // default usd
		reason   string
	}{
		// bank-a (payer) votes NO, bank-b (payee) voted YES and reserved the credit.
		{"payer's bank: insufficient funds", gatewaytest.Ref("bob"), gatewaytest.Opening + 1, "", "INSUFFICIENT_FUNDS"},
		// bank-b (payee) votes NO, bank-a voted YES and held alice's funds.
		{"payee's bank: no such account", &gatewayv1.AccountRef{Bank: "bank-b", AccountId: "zed"}, 700, "", "ACCOUNT_NOT_FOUND"},
		// Same bank, one prepare with two legs, NO.
		{"same bank: insufficient funds", gatewaytest.Ref("dave"), 2 * gatewaytest.Opening, "", "INSUFFICIENT_FUNDS"},
		// Both banks refuse the leg in another currency.
		{"currency mismatch", gatewaytest.Ref("bob"), 500, "eur", "CURRENCY_MISMATCH"},
		// Declined by the gateway before any bank hears of it.
		{"same account", gatewaytest.Ref("alice"), 500, "", "SAME_ACCOUNT"},
		{"unknown bank", &gatewayv1.AccountRef{Bank: "bank-z", AccountId: "zed"}, 500, "", "BANK_NOT_FOUND"},
	}
	var ids []string
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := newID()
			ids = append(ids, id)
			currency := tt.currency
			if currency == "" {
				currency = gatewaytest.Currency
			}
			req := &gatewayv1.MakePaymentRequest{TransactionId: id, Payee: tt.payee, Amount: tt.amount, Currency: currency}
			_, err := makePayment(t.Context(), alice, req)
			wantError(t, err, connect.CodeFailedPrecondition, tt.reason)
			p := getPayment(t, admin, id)
			wantStatus(t, p, gatewayv1.PaymentStatus_PAYMENT_STATUS_FAILED,
				gatewayv1.FailureReason(gatewayv1.FailureReason_value["FAILURE_REASON_"+tt.reason]))
			// The stored outcome is the answer to a repeat, too.
			_, err = makePayment(t.Context(), alice, req)
			wantError(t, err, connect.CodeFailedPrecondition, tt.reason)
			// No hold left anywhere: available == balance == opening.
			waitFunds(t, admin, allSettled(nil))
		})
	}

	stopBanks(t, n)
	b := readBooks(t, n, ids...)
	checkAccounts(t, b, nil)
	for _, id := range ids {
		checkJournal(t, b, id, nil)
		checkNotPrepared(t, b, id)
	}
}
