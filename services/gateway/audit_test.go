package gateway_test

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

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
	defer f.Close() //nolint:errcheck // read-only: closing a file that was only read reports nothing
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

// TestLogoutEndsOpenStreams checks that revoking a session also ends the
// WatchPayments streams opened with it: a stolen token that is logged out
// stops receiving events.
func TestLogoutEndsOpenStreams(t *testing.T) {
	net := gatewaytest.Start(t, gatewaytest.Options{})
	bob := net.Login(t, "bob")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	stream, err := bob.Payments.WatchPayments(ctx, &gatewayv1.WatchPaymentsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Auth.Logout(ctx, &gatewayv1.LogoutRequest{}); err != nil {
		t.Fatal(err)
	}
	for stream.Receive() {
	}
	if ctx.Err() != nil {
		t.Fatal("the stream outlived its revoked session")
	}
	if code := connect.CodeOf(stream.Err()); code != connect.CodeUnauthenticated {
		t.Fatalf("stream ended with %v, want unauthenticated", stream.Err())
	}
}
