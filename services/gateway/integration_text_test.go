package gateway_test

import (
	"errors"
	"strings"
	"testing"

	"buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go/buf/validate"
	"connectrpc.com/connect"

	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
	"github.com/remitpay/remit/services/gateway/gatewaytest"
)

// A description with control characters (the review's: it clears the
// payee's screen and fakes a line) is refused by the gateway itself,
// invalid_argument with the remit.text violation on description, before
// any money moves, and the same id is then free for a clean payment.
func TestIntegrationDescriptionMustBePrintable(t *testing.T) {
	t.Parallel()
	n := gatewaytest.Start(t, gatewaytest.Options{})
	alice, admin := n.Login(t, "alice"), n.Login(t, gatewaytest.AdminID)

	id := newID()
	for _, d := range []string{
		"\u001b[2J\u001b[31mPAY ADMIN NOW\u001b[0m\nfake line\r\u0007",
		"tab\there", "c1 \u009b2J", "rtl \u202eoverride", "line\u2028separator",
	} {
		_, err := alice.Payments.MakePayment(callCtx(t), &gatewayv1.MakePaymentRequest{
			TransactionId: id, Payee: gatewaytest.Ref("bob"), Amount: 100, Currency: gatewaytest.Currency,
			Description: d,
		})
		if connect.CodeOf(err) != connect.CodeInvalidArgument {
			t.Fatalf("description %q: %v, want invalid_argument", d, err)
		}
		if got := violation(err); got != "remit.text description" {
			t.Errorf("description %q: violation %q, want remit.text on description", d, got)
		}
	}
	waitFunds(t, admin, allSettled(map[string]int64{"alice": 100000, "bob": 100000}))
	p, err := pay(t, alice, id, "bob", 100)
	if err != nil || p.GetStatus() != gatewayv1.PaymentStatus_PAYMENT_STATUS_SUCCEEDED {
		t.Fatalf("a clean payment with the refused id: %v, %v", p, err)
	}
	waitFunds(t, admin, allSettled(map[string]int64{"alice": 99900, "bob": 100100}))
}

// violation is "rule field" of err's first protovalidate violation.
func violation(err error) string {
	var cerr *connect.Error
	if !errors.As(err, &cerr) {
		return ""
	}
	for _, d := range cerr.Details() {
		v, derr := d.Value()
		if vs, ok := v.(*validate.Violations); ok && derr == nil && len(vs.GetViolations()) > 0 {
			first := vs.GetViolations()[0]
			var path []string
			for _, e := range first.GetField().GetElements() {
				path = append(path, e.GetFieldName())
			}
			return first.GetRuleId() + " " + strings.Join(path, ".")
		}
	}
	return ""
}
