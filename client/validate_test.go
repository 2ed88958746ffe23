package client_test

import (
	"errors"
	"testing"

	"buf.build/go/protovalidate"
	"connectrpc.com/connect"

	"github.com/remitpay/remit/client"
)

// TestRequestsCheckedBeforeSending: every unary request goes through
// protovalidate on the way out, with the rules the gateway applies, so a
// request with a bad name fails locally, as invalid_argument wrapping
// ErrInvalidRequest and the violation, and nothing reaches the gateway.
func TestRequestsCheckedBeforeSending(t *testing.T) {
	g := newGateway(t)
	c := newClient(t, g, "alice", &client.RetryPolicy{MaxAttempts: 3, Sleep: (&recorder{}).sleep})
	badBank := client.AccountRef{Bank: "Bank_A", ID: "bob"}
	badID := client.AccountRef{Bank: "bank-a", ID: "bob smith"}
	calls := map[string]func() error{
		"Balance(bad bank)": func() error { _, err := c.Balance(t.Context(), &badBank); return err },
		"Balance(bad id)":   func() error { _, err := c.Balance(t.Context(), &badID); return err },
		"Payments(bad bank)": func() error {
			for _, err := range c.Payments(t.Context(), client.PaymentFilter{Account: badBank}) {
				return err
			}
			return nil
		},
		"Login(bad client id)": func() error { _, err := c.Login(t.Context(), "al ice", "pw"); return err },
	}
	wantRule := map[string]string{
		"Balance(bad bank)":    "remit.bank_name",
		"Balance(bad id)":      "remit.id",
		"Payments(bad bank)":   "remit.bank_name",
		"Login(bad client id)": "remit.id",
	}
	for name, call := range calls {
		err := call()
		var verr *protovalidate.ValidationError
		switch {
		case !errors.Is(err, client.ErrInvalidRequest):
			t.Errorf("%s = %v, want ErrInvalidRequest", name, err)
		case connect.CodeOf(err) != connect.CodeInvalidArgument || client.IsRetryable(err):
			t.Errorf("%s = %v, want a final invalid_argument", name, err)
		case !errors.As(err, &verr) || len(verr.Violations) != 1 || verr.Violations[0].Proto.GetRuleId() != wantRule[name]:
			t.Errorf("%s = %v, want one violation of %s", name, err, wantRule[name])
		}
	}
	if n := len(g.Calls()); n != 0 {
		t.Errorf("%d requests sent, want 0: %v", n, g.Calls())
	}
	// A valid request still goes out.
	if _, err := c.Balance(t.Context(), nil); err != nil {
		t.Fatalf("Balance(own) = %v", err)
	}
	if n := len(g.Calls()); n != 1 {
		t.Errorf("%d requests sent for one valid call, want 1", n)
	}
}
