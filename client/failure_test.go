package client_test

import (
	"errors"
	"fmt"
	"testing"

	"connectrpc.com/connect"

	"github.com/remitpay/remit/client"
	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
	"github.com/remitpay/remit/internal/rpcerr"
)

func TestFailureReasonOfAndIsDeclined(t *testing.T) {
	tests := []struct {
		name     string
		err      error
		want     gatewayv1.FailureReason
		ok       bool
		declined bool
	}{
		{"insufficient funds", &client.Error{Code: connect.CodeFailedPrecondition, Reason: "INSUFFICIENT_FUNDS"},
			gatewayv1.FailureReason_FAILURE_REASON_INSUFFICIENT_FUNDS, true, true},
		{"wrapped", fmt.Errorf("pay: %w", &client.Error{Code: connect.CodeFailedPrecondition, Reason: "BANK_NOT_FOUND"}),
			gatewayv1.FailureReason_FAILURE_REASON_BANK_NOT_FOUND, true, true},
		// Failed, but not a decline: paying again with a new id could pay twice.
		{"transaction id conflict", &client.Error{Code: connect.CodeFailedPrecondition, Reason: "TRANSACTION_ID_CONFLICT"},
			gatewayv1.FailureReason_FAILURE_REASON_TRANSACTION_ID_CONFLICT, true, false},
		// BANK_UNAVAILABLE with unavailable: nothing recorded, not a failure.
		{"bank unavailable before recording", &client.Error{Code: connect.CodeUnavailable, Reason: "BANK_UNAVAILABLE"},
			gatewayv1.FailureReason_FAILURE_REASON_UNSPECIFIED, false, false},
		{"other failed precondition", &client.Error{Code: connect.CodeFailedPrecondition, Reason: "PAYMENT_NOT_SUCCEEDED"},
			gatewayv1.FailureReason_FAILURE_REASON_UNSPECIFIED, false, true},
		{"not an *Error", errors.New("boom"), gatewayv1.FailureReason_FAILURE_REASON_UNSPECIFIED, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := client.FailureReasonOf(tt.err)
			if got != tt.want || ok != tt.ok {
				t.Errorf("FailureReasonOf = %v, %v; want %v, %v", got, ok, tt.want, tt.ok)
			}
			if d := client.IsDeclined(tt.err); d != tt.declined {
				t.Errorf("IsDeclined = %v, want %v", d, tt.declined)
			}
		})
	}
	if got := client.FailureWords(gatewayv1.FailureReason_FAILURE_REASON_INSUFFICIENT_FUNDS); got != "insufficient funds" {
		t.Errorf("FailureWords = %q", got)
	}
	if got := client.FailureWords(gatewayv1.FailureReason_FAILURE_REASON_UNSPECIFIED); got != "" {
		t.Errorf("FailureWords(UNSPECIFIED) = %q, want empty", got)
	}
}

// Gateways before the typed FailureReason started decline messages with
// "declined: " (or sent just "declined"); the SDK drops it, for one release,
// so that the CLI does not say "declined: declined: ...".
func TestOldGatewayDeclinePrefixIsDropped(t *testing.T) {
	for msg, want := range map[string]string{
		"declined: the payer's available balance is too low": "the payer's available balance is too low",
		"declined": "",
		"the payer's available balance is too low": "the payer's available balance is too low",
	} {
		g := newGateway(t)
		c := newClient(t, g, "alice", nil)
		g.SetHooks(hooksFailing(1, func() error {
			return rpcerr.New(connect.CodeFailedPrecondition, "INSUFFICIENT_FUNDS", msg, nil)
		}))
		_, err := c.Pay(t.Context(), payment(1))
		var e *client.Error
		if !errors.As(err, &e) || !client.IsDeclined(err) {
			t.Fatalf("Pay() = %v, want a decline", err)
		}
		if e.Message != want {
			t.Errorf("message %q reads %q, want %q", msg, e.Message, want)
		}
	}
}
