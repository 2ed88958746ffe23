package gateway_test

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"connectrpc.com/connect"

	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
	"github.com/remitpay/remit/gen/remit/gateway/v1/gatewayv1connect"
	"github.com/remitpay/remit/internal/pki"
	"github.com/remitpay/remit/internal/rpcerr"
	"github.com/remitpay/remit/services/gateway/gatewaytest"
)

// authFrom returns an AuthService client of n's gateway whose connections
// come from the loopback address ip (127.0.0.0/8 is all loopback on Linux),
// so that the gateway sees a source address of its own for it.
func authFrom(t *testing.T, n *gatewaytest.Network, ip string) gatewayv1connect.AuthServiceClient {
	t.Helper()
	conf, err := pki.ClientConfig(pki.NewLayout(filepath.Join(n.Dir, "certs")).CA, "", "")
	if err != nil {
		t.Fatal(err)
	}
	conf.MinVersion = tls.VersionTLS13
	protocols := new(http.Protocols)
	protocols.SetHTTP2(true)
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	tr := &http.Transport{TLSClientConfig: conf, Protocols: protocols, DialContext: dialer.DialContext}
	t.Cleanup(tr.CloseIdleConnections)
	return gatewayv1connect.NewAuthServiceClient(&http.Client{Transport: tr}, n.Gateway.URL)
}

// loginCode logs clientID in with password through c, retrying while the
// answer is rate limited or the gateway is not up, and returns the code
// and ErrorInfo reason of the answer (0 and "" for a success).
func loginCode(t *testing.T, c gatewayv1connect.AuthServiceClient, clientID, password string) (code connect.Code, reason string) {
	t.Helper()
	var err error
	gatewaytest.Retry(t.Context(), gatewaytest.WaitTimeout, func() bool {
		_, err = c.Login(callCtx(t), &gatewayv1.LoginRequest{ClientId: clientID, Password: password})
		return !retryable(err) && rpcerr.Info(err).GetReason() != "RATE_LIMITED"
	})
	if err == nil {
		return 0, ""
	}
	return connect.CodeOf(err), rpcerr.Info(err).GetReason()
}

// TestIntegrationLoginLockoutIsNoSwitch is issue 10's lockout abuse over
// the network: wrong passwords fired in parallel at the admin from one
// source lock only that source out for the admin; the admin logs in from
// elsewhere at once, clears the lockout (customers may not), and the
// lockouts survive a gateway restart.
func TestIntegrationLoginLockoutIsNoSwitch(t *testing.T) {
	t.Parallel()
	n := gatewaytest.Start(t, gatewaytest.Options{})
	attacker, office := authFrom(t, n, "127.0.0.2"), authFrom(t, n, "127.0.0.3")

	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			_, err := attacker.Login(callCtx(t), &gatewayv1.LoginRequest{ClientId: gatewaytest.AdminID, Password: fmt.Sprint("guess", i)})
			if c := connect.CodeOf(err); c != connect.CodeUnauthenticated && c != connect.CodeResourceExhausted {
				t.Errorf("guess %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if code, reason := loginCode(t, attacker, gatewaytest.AdminID, gatewaytest.Password); reason != "LOGIN_LOCKED" {
		t.Fatalf("the guessing source with the right password: %v %s, want LOGIN_LOCKED", code, reason)
	}
	// The admin, from another source, is let in with the first try.
	if _, err := office.Login(callCtx(t), &gatewayv1.LoginRequest{ClientId: gatewaytest.AdminID, Password: gatewaytest.Password}); err != nil {
		t.Fatalf("admin from another source: %v", err)
	}

	admin, alice := n.Login(t, gatewaytest.AdminID), n.Login(t, "alice")
	_, err := alice.Admin.ClearLoginLockout(callCtx(t), &gatewayv1.ClearLoginLockoutRequest{ClientId: gatewaytest.AdminID})
	if connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Errorf("a customer clearing a lockout: %v, want permission_denied", err)
	}
	if code, _ := loginCode(t, attacker, gatewaytest.AdminID, gatewaytest.Password); code != connect.CodeResourceExhausted {
		t.Errorf("after the customer's attempt: %v, want still locked", code)
	}
	if _, err := admin.Admin.ClearLoginLockout(callCtx(t), &gatewayv1.ClearLoginLockoutRequest{ClientId: "not an id"}); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Errorf("clearing a malformed id: %v, want invalid_argument", err)
	}
	res, err := admin.Admin.ClearLoginLockout(callCtx(t), &gatewayv1.ClearLoginLockoutRequest{ClientId: gatewaytest.AdminID})
	if err != nil {
		t.Fatal(err)
	}
	if res.GetClientId() != gatewaytest.AdminID || res.GetClearedSources() != 1 || res.GetLockedSources() != 1 || res.GetAccountLocked() {
		t.Errorf("ClearLoginLockout = %v, want the one source, locked", res)
	}
	if code, reason := loginCode(t, attacker, gatewaytest.AdminID, gatewaytest.Password); code != 0 {
		t.Errorf("the cleared source with the right password: %v %s", code, reason)
	}
	if !auditHas(t, n, func(l map[string]any) bool {
		return l["event"] == "login_lockout_cleared" && l["client_id"] == gatewaytest.AdminID && l["principal"] == gatewaytest.AdminID
	}) {
		t.Error("no login_lockout_cleared audit line")
	}

	// Lockouts survive a restart.
	for i := range 5 {
		if code, _ := loginCode(t, attacker, "alice", fmt.Sprint("guess", i)); code != connect.CodeUnauthenticated {
			t.Fatalf("guess %d at alice: %v", i, code)
		}
	}
	if err := n.Gateway.Restart(); err != nil {
		t.Fatal(err)
	}
	if code, reason := loginCode(t, attacker, "alice", gatewaytest.Password); reason != "LOGIN_LOCKED" {
		t.Errorf("alice from the guessing source after a restart: %v %s, want LOGIN_LOCKED", code, reason)
	}
	if code, reason := loginCode(t, office, "alice", gatewaytest.Password); code != 0 {
		t.Errorf("alice from another source after a restart: %v %s", code, reason)
	}
}

// auditHas reports whether a line of n's gateway audit log matches.
func auditHas(t *testing.T, n *gatewaytest.Network, match func(map[string]any) bool) bool {
	t.Helper()
	f, err := os.Open(filepath.Join(n.Dir, "gateway", "audit.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close() //nolint:errcheck // read-only
	for sc := bufio.NewScanner(f); sc.Scan(); {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("audit line is not JSON: %s", sc.Text())
		}
		if match(line) {
			return true
		}
	}
	return false
}
