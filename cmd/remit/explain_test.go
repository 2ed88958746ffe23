package main

import (
	"fmt"
	"strings"
	"testing"

	"connectrpc.com/connect"

	"github.com/remitpay/remit/client"
)

// The CLI says "declined: <reason in words>: <the gateway's advice>" from the
// typed reason; a transaction id conflict, or a refused acknowledgement, is
// not worded as a decline.
func TestExplainFailures(t *testing.T) {
	s := &session{}
	tests := []struct {
		name string
		err  *client.Error
		want string
	}{
		{"decline", &client.Error{Code: connect.CodeFailedPrecondition, Reason: "INSUFFICIENT_FUNDS",
			Message: "the payer's available balance is too low"},
			"declined: insufficient funds: the payer's available balance is too low"},
		{"other failed precondition", &client.Error{Code: connect.CodeFailedPrecondition, Reason: "PAYMENT_NOT_SUCCEEDED",
			Message: "only a succeeded payment can be acknowledged"},
			"payment not succeeded: only a succeeded payment can be acknowledged"},
		{"transaction id conflict", &client.Error{Code: connect.CodeFailedPrecondition, Reason: "TRANSACTION_ID_CONFLICT",
			Message: "a bank already knows this transaction id for a different transaction"},
			"a bank already knows this transaction id for a different transaction"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := s.explain(tt.err).Error()
			if got != tt.want {
				t.Errorf("explain = %q, want %q", got, tt.want)
			}
			if (tt.err.Reason == "TRANSACTION_ID_CONFLICT" || tt.err.Reason == "PAYMENT_NOT_SUCCEEDED") && strings.Contains(got, "declined") {
				t.Errorf("%s is worded as a decline: %q", tt.err.Reason, got)
			}
		})
	}
}

// The SDK's own request check reaches the CLI wrapped in a *client.Error
// (text "invalid_argument: invalid request: ..."); the usage error shows
// only what is wrong.
func TestInvalidRequestText(t *testing.T) {
	inner := fmt.Errorf("%w: %s", client.ErrInvalidRequest, "validation error: amount: must be greater than 0")
	for _, err := range []error{inner, fmt.Errorf("invalid_argument: %w", inner)} {
		if got, want := invalidRequestText(err), "validation error: amount: must be greater than 0"; got != want {
			t.Errorf("invalidRequestText(%q) = %q, want %q", err, got, want)
		}
	}
}
