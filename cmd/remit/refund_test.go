package main

import (
	"encoding/json"
	"errors"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/remitpay/remit/client/clienttest"
	"github.com/remitpay/remit/internal/authz"
)

var refundIDRE = regexp.MustCompile(`Refund id: ([0-9a-f-]{36})`)

func TestRefundUsageErrors(t *testing.T) {
	clientEnv(t)
	tx := "0b6f4f4e-8f1c-4a57-9d2e-3c5a7e9b1d20"
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"payments", "refund"}, "missing TRANSACTION_ID: remit payments refund TRANSACTION_ID"},
		{[]string{"payments", "refund", tx}, "--amount is required"},
		{[]string{"payments", "refund", tx, "x", "--amount", "1"}, `unexpected argument "x"`},
		{[]string{"payments", "refund", "nope", "--amount", "1"}, `transaction id "nope" is not a UUID`},
		{[]string{"payments", "refund", tx, "--amount", "1", "--reason", "because"}, `--reason: refund reason "because"`},
		{[]string{"payments", "refund", tx, "--amount", "1", "--refund-id", "nope"}, `refund id "nope" is not a UUID`},
		{[]string{"payments", "refund", tx, "--amount", "1", "--description", "a\nb"}, "printable text"},
		{[]string{"payments", "list", "--amount", "1"}, "only apply to refund"},
		{[]string{"payments", "get", tx, "--refund-id", tx}, "only apply to refund"},
	} {
		if code, out, errOut := remit(t, "", tt.args...); code != exitUsage || !strings.Contains(errOut, tt.want) {
			t.Errorf("remit %q = %d, stderr %q, stdout %q; want 2 and %q", tt.args, code, errOut, out, tt.want)
		}
	}
}

func TestRefund(t *testing.T) {
	g := clienttest.New(t)
	clientEnv(t)
	loginAs(t, g, "alice")
	code, out, _ := remit(t, "", "pay", "--to", "bank-b/bob", "--amount", "10", "--description", "lunch")
	m := txIDRE.FindStringSubmatch(out)
	if code != exitOK || m == nil {
		t.Fatalf("pay = %d:\n%s", code, out)
	}
	paid := m[1]
	// The payer may not refund.
	if code, out, _ := remit(t, "", "payments", "refund", paid, "--amount", "1"); code != exitFailure || !strings.Contains(out, "FAILED: permission denied") || !refundIDRE.MatchString(out) {
		t.Errorf("refund by the payer = %d, %q", code, out)
	}
	denied := len(g.RefundCalls())

	loginAs(t, g, "bob")
	// The first answer is lost after the refund was made: the retry gets
	// it, with the same refund id, and nothing moves twice.
	g.SetHooks(clienttest.Hooks{After: func(call int, _ string) error {
		if call == 1 {
			return connect.NewError(connect.CodeUnavailable, errors.New("connection reset"))
		}
		return nil
	}})
	code, out, errOut := remit(t, "", "payments", "refund", paid, "--amount", "4", "--reason", "requested_by_customer", "--description", "sorry")
	g.SetHooks(clienttest.Hooks{})
	m = refundIDRE.FindStringSubmatch(out)
	if code != exitOK || m == nil || !strings.Contains(out, "SUCCEEDED: refunded 4.00 usd from bank-b/bob to bank-a/alice (refund of "+paid+").") ||
		!strings.Contains(out, "Refunded so far: 4.00 usd of 10.00 usd.") {
		t.Fatalf("refund = %d:\n%s%s", code, out, errOut)
	}
	refundID := m[1]
	if ids := g.RefundCalls()[denied:]; !slices.Equal(ids, []string{refundID, refundID}) {
		t.Errorf("refund ids sent %v, want %s twice", ids, refundID)
	}
	if g.Balance(clienttest.Alice) != clienttest.InitialBalance-600 || g.Balance(clienttest.Bob) != clienttest.InitialBalance+600 {
		t.Errorf("alice %d, bob %d after a 4.00 refund of 10.00", g.Balance(clienttest.Alice), g.Balance(clienttest.Bob))
	}
	// Run again with the printed refund id: the same refund, made once.
	code, out, _ = remit(t, "", "payments", "refund", paid, "--amount", "4", "--reason", "requested_by_customer", "--description", "sorry", "--refund-id", refundID)
	if code != exitOK || !strings.Contains(out, "Refund id: "+refundID) || g.Balance(clienttest.Bob) != clienttest.InitialBalance+600 {
		t.Errorf("refund again with its id = %d, bob %d:\n%s", code, g.Balance(clienttest.Bob), out)
	}

	// More than is left: refused, with the refund id.
	code, out, _ = remit(t, "", "payments", "refund", paid, "--amount", "6.01")
	if code != exitFailure || !strings.Contains(out, "REFUSED: refund exceeds payment") || !refundIDRE.MatchString(out) {
		t.Errorf("over-refund = %d:\n%s", code, out)
	}
	if code, _, errOut := remit(t, "", "payments", "refund", paid, "--amount", "1.234"); code != exitUsage || !strings.Contains(errOut, "more than 2 decimals for usd") {
		t.Errorf("refund with 3 decimals = %d, %q", code, errOut)
	}

	// No answer the client may wait for: the outcome is unknown, and the
	// output says how to retry it safely.
	g.SetHooks(clienttest.Hooks{Before: func(int, string) error { return authz.RateLimited(time.Minute) }})
	code, out, _ = remit(t, "", "payments", "refund", paid, "--amount", "1")
	g.SetHooks(clienttest.Hooks{})
	m = refundIDRE.FindStringSubmatch(out)
	if code != exitFailure || m == nil || !strings.Contains(out, "The refund may or may not have been made: run the same command again with --refund-id "+m[1]) {
		t.Fatalf("refund without an answer = %d:\n%s", code, out)
	}
	code, out, _ = remit(t, "", "payments", "refund", paid, "--amount", "1", "--refund-id", m[1], "--json")
	var res struct {
		Refund struct {
			TransactionID         string `json:"transactionId"`
			RefundedTransactionID string `json:"refundedTransactionId"`
		} `json:"refund"`
		Payment struct {
			AmountRefunded string `json:"amountRefunded"`
		} `json:"payment"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != exitOK || res.Refund.TransactionID != m[1] ||
		res.Refund.RefundedTransactionID != paid || res.Payment.AmountRefunded != "500" {
		t.Errorf("refund --json with the printed id = %d, %q (%v)", code, out, err)
	}
	if ids := g.RefundCalls(); ids[len(ids)-1] != m[1] || ids[len(ids)-2] != m[1] {
		t.Errorf("refund ids sent %v, want the retry with %s", ids, m[1])
	}

	// Both sides see the refund, linked to the payment.
	loginAs(t, g, "alice")
	code, out, _ = remit(t, "", "payments")
	if code != exitOK || !strings.Contains(out, "SUCCEEDED, refund of "+paid) || !strings.Contains(out, "SUCCEEDED, 5.00 usd refunded") {
		t.Errorf("payments list after refunds = %d:\n%s", code, out)
	}
	code, out, _ = remit(t, "", "payments", "get", paid)
	if code != exitOK || !strings.Contains(out, "5.00 usd of 10.00 usd") || !strings.Contains(out, refundID) || !strings.Contains(out, "(requested by customer)") {
		t.Errorf("payments get of the refunded payment = %d:\n%s", code, out)
	}
	code, out, _ = remit(t, "", "payments", "get", refundID)
	if code != exitOK || !strings.Contains(out, "Refund of") || !strings.Contains(out, paid) || !strings.Contains(out, "requested by customer") {
		t.Errorf("payments get of the refund = %d:\n%s", code, out)
	}
}
