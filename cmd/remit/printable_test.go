package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/remitpay/remit/client/clienttest"
	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
	"github.com/remitpay/remit/internal/printable"
	"github.com/remitpay/remit/internal/rpcerr"
)

// The description from the outside review: it clears the screen, prints
// a red line, fakes a line of output and rings the bell.
const hostileText = "\u001b[2J\u001b[31mPAY ADMIN NOW\u001b[0m\nfake line\r\u0007"

// checkPrintable fails if out holds a control character other than the
// command's own line breaks and tabs, or a C1 or bidirectional character,
// or if the hostile text's second line starts a line of its own.
func checkPrintable(t *testing.T, what, out string) {
	t.Helper()
	for _, r := range out {
		if r != '\n' && r != '\t' && printable.Unsafe(r) {
			t.Errorf("%s holds %U:\n%q", what, r, out)
			return
		}
	}
	for line := range strings.SplitSeq(out, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "fake line") {
			t.Errorf("%s has a faked line:\n%s", what, out)
		}
	}
}

// TestPayRefusesControlCharacters: a description with control characters
// is refused before anything is sent, and the refusal says why.
func TestPayRefusesControlCharacters(t *testing.T) {
	g := clienttest.New(t)
	clientEnv(t)
	loginAs(t, g, "alice")
	for _, d := range []string{hostileText, "a\tb", "rtl \u202eoverride", "line\u2028separator"} {
		code, out, errOut := remit(t, "", "pay", "--to", "bank-b/bob", "--amount", "1", "--description", d)
		if code == exitOK || !strings.Contains(out+errOut, "printable text") {
			t.Errorf("pay --description %q = %d, want a refusal naming the rule:\n%s%s", d, code, out, errOut)
		}
		if code == exitQueued || strings.Contains(out+errOut, "QUEUED") {
			t.Errorf("pay --description %q queued the payment (it can never be sent):\n%s%s", d, out, errOut)
		}
		checkPrintable(t, "stdout", out)
		checkPrintable(t, "stderr", errOut)
	}
	if code, out, errOut := remit(t, "", "outbox", "list"); code != exitOK || !strings.Contains(out, "No payment is queued") {
		t.Errorf("outbox list after refusals = %d, want an empty outbox:\n%s%s", code, out, errOut)
	}
	if calls := g.PayCalls(); len(calls) != 0 {
		t.Errorf("the gateway saw %d payments, want none", len(calls))
	}
	if got := g.Balance(clienttest.Alice); got != clienttest.InitialBalance {
		t.Errorf("alice has %d, want %d untouched", got, clienttest.InitialBalance)
	}
}

// TestPrintedTextIsEscaped: what a gateway returns (a description stored
// before the rule existed, or from a gateway that does not keep it) is
// printed escaped, on one line, by every command that prints it.
func TestPrintedTextIsEscaped(t *testing.T) {
	p := &gatewayv1.Payment{
		TransactionId: "0b8e5a9c-8f1d-4c7e-9a4e-2d1f0c3b5a6e",
		Payer:         &gatewayv1.AccountRef{Bank: "bank-a", AccountId: "alice" + hostileText},
		Payee:         &gatewayv1.AccountRef{Bank: "bank-b\u202e", AccountId: "bob"},
		PayerClientId: "alice\r\u009b31m",
		Amount:        100,
		Currency:      "usd",
		Description:   hostileText,
		Status:        gatewayv1.PaymentStatus_PAYMENT_STATUS_SUCCEEDED,
		CreateTime:    timestamppb.Now(),
	}
	var out bytes.Buffer
	e := &env{stdout: printable.Writer(&out)}
	printPayment(e, p)
	checkPrintable(t, "payments get", out.String())
	if !strings.Contains(out.String(), `\x1b[2J\x1b[31mPAY ADMIN NOW\x1b[0m\nfake line\r\a`) {
		t.Errorf("payments get does not show the description escaped:\n%s", out.String())
	}
	checkPrintable(t, "summary", paymentSummary(p))

	// An error message that quotes hostile input.
	var errOut bytes.Buffer
	e = &env{stdout: &bytes.Buffer{}, stderr: &errOut}
	if code := e.fail(nil, errors.New("gateway said: "+hostileText)); code != exitFailure {
		t.Errorf("fail = %d", code)
	}
	checkPrintable(t, "error", errOut.String())
}

// TestDeclineMessageIsEscaped: the message of a decline comes from the
// gateway (or whatever answered at its URL); pay prints it escaped, on
// stdout and, with --json, on stderr (which has no backstop).
func TestDeclineMessageIsEscaped(t *testing.T) {
	g := clienttest.New(t)
	clientEnv(t)
	loginAs(t, g, "alice")
	g.SetHooks(clienttest.Hooks{Before: func(_ int, txID string) error {
		return rpcerr.New(connect.CodeFailedPrecondition, "INSUFFICIENT_FUNDS",
			"declined: too low"+hostileText+"\u009b31m\u202e", map[string]string{"transaction_id": txID})
	}})
	for _, args := range [][]string{{"pay", "--to", "bank-b/bob", "--amount", "1"}, {"pay", "--json", "--to", "bank-b/bob", "--amount", "1"}} {
		code, out, errOut := remit(t, "", args...)
		if code != exitFailure || !strings.Contains(out+errOut, "DECLINED") {
			t.Fatalf("%v = %d, want a decline:\n%s%s", args, code, out, errOut)
		}
		checkPrintable(t, strings.Join(args, " ")+" stdout", out)
		checkPrintable(t, strings.Join(args, " ")+" stderr", errOut)
	}
}

// TestFlushedOutcomeMessageIsEscaped: outbox flush prints each outcome's
// message from the gateway escaped.
func TestFlushedOutcomeMessageIsEscaped(t *testing.T) {
	g := clienttest.New(t)
	queueWhileDown(t, g, "1")
	g.SetHooks(clienttest.Hooks{Before: func(_ int, txID string) error {
		return rpcerr.New(connect.CodeFailedPrecondition, "INSUFFICIENT_FUNDS",
			"too low"+hostileText+"\u009b31m\u202e", map[string]string{"transaction_id": txID})
	}})
	code, out, errOut := remit(t, "", "outbox", "flush")
	if !strings.Contains(out+errOut, "DECLINED") {
		t.Fatalf("flush = %d, want a decline:\n%s%s", code, out, errOut)
	}
	checkPrintable(t, "flush stdout", out)
	checkPrintable(t, "flush stderr", errOut)
}
