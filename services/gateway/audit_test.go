package gateway_test

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"connectrpc.com/connect"

	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
	"github.com/remitpay/remit/gen/remit/gateway/v1/gatewayv1connect"
	"github.com/remitpay/remit/services/gateway/gatewaytest"
)

// TestOwnershipDenialsAreAudited checks that a denial decided by a handler's
// ownership check (bob reading alice's balance), not only by the role policy,
// reaches the audit log.
func TestOwnershipDenialsAreAudited(t *testing.T) {
	net := gatewaytest.Start(t, gatewaytest.Options{})
	bob := net.Login(t, "bob")
	_, err := bob.Payments.CheckBalance(context.Background(), &gatewayv1.CheckBalanceRequest{Account: gatewaytest.Ref("alice")})
	if connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Fatalf("bob reading alice's balance: %v, want permission_denied", err)
	}
	f, err := os.Open(filepath.Join(net.Dir, "gateway", "audit.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	found := false
	for sc := bufio.NewScanner(f); sc.Scan(); {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("audit line is not JSON: %s", sc.Text())
		}
		if line["event"] == "authz_denied" && line["principal"] == "bob" &&
			line["procedure"] == gatewayv1connect.PaymentServiceCheckBalanceProcedure {
			found = true
		}
	}
	if !found {
		t.Fatal("no authz_denied audit line for bob's ownership denial")
	}
}
