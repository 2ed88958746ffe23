package bank_test

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"

	bankv1 "github.com/remitpay/remit/gen/remit/bank/v1"
	"github.com/remitpay/remit/gen/remit/bank/v1/bankv1connect"
	"github.com/remitpay/remit/internal/pki"
	"github.com/remitpay/remit/internal/rpcerr"
	"github.com/remitpay/remit/internal/serve"
	"github.com/remitpay/remit/services/bank"
)

// The security tests run real bank processes (bank.Run, mutual TLS over
// 127.0.0.1, SQLite) and attack them as every kind of client: only the
// gateway's client certificate, issued by the Remit CA, may call
// BankService. They also show that a pinned client (pki.RequirePeer) talks
// only to the server it meant to reach.

// secBankTimeout bounds one call and the waits of these tests.
const secBankTimeout = 10 * time.Second

// secOpening is alice's opening balance at every bank these tests run.
const secOpening = 100

var secBankProtocols = []struct {
	name string
	opts []connect.ClientOption
}{
	{"connect", nil},
	{"grpc", []connect.ClientOption{connect.WithGRPC()}},
	{"grpcweb", []connect.ClientOption{connect.WithGRPCWeb()}},
}

// secRunBank runs bank name as a real process on the certificates of layout
// and returns its URL once it serves the gateway. Its gateway URL leads
// nowhere: registration keeps failing quietly, which does not concern the
// bank's own server.
func secRunBank(t *testing.T, layout *pki.Layout, name string) string {
	t.Helper()
	cert, key := layout.Server(name)
	serverTLS, err := pki.ServerConfig(cert, key, layout.CA, tls.RequireAndVerifyClientCert)
	if err != nil {
		t.Fatal(err)
	}
	ccert, ckey := layout.Client(name)
	gatewayTLS, err := pki.ClientConfig(layout.CA, ccert, ckey)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "https://" + ln.Addr().String()
	dir := t.TempDir()
	ledger := ledgerTarget(t, dir)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- bank.Run(ctx, bank.Config{
			Name: name, Listener: ln, PublicURL: url, GatewayURL: "https://127.0.0.1:1",
			ServerTLS: serverTLS, GatewayTLS: gatewayTLS, DataDir: dir, Database: ledger,
			Accounts: []bank.AccountSeed{{ID: "alice", Owner: "alice", Currency: "usd", Opening: secOpening}},
			Logger:   slog.New(slog.DiscardHandler),
		})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%s: %v", name, err)
			}
		case <-time.After(secBankTimeout + serve.DefaultShutdownTimeout):
			t.Errorf("%s did not stop", name)
		}
	})

	gw := bankv1connect.NewBankServiceClient(secHTTP(t, secClientTLS(t, layout, pki.GatewayName)), url)
	deadline := time.Now().Add(secBankTimeout)
	for {
		ctx, cancel := context.WithTimeout(t.Context(), secBankTimeout)
		_, err := gw.GetBalance(ctx, &bankv1.GetBalanceRequest{AccountId: "alice"})
		cancel()
		if err == nil {
			return url
		}
		select {
		case err := <-done:
			t.Fatalf("%s exited: %v", name, err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not serve within %s: %v", name, secBankTimeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// secClientTLS trusts layout's CA and presents principal's client
// certificate ("" for none).
func secClientTLS(t *testing.T, layout *pki.Layout, principal string) *tls.Config {
	t.Helper()
	var cert, key string
	if principal != "" {
		cert, key = layout.Client(principal)
	}
	conf, err := pki.ClientConfig(layout.CA, cert, key)
	if err != nil {
		t.Fatal(err)
	}
	return conf
}

// secWithCert returns conf presenting the certificate in certFile/keyFile
// whatever it is meant for: pki.ClientConfig refuses a server certificate
// as a client certificate, an attacker's client does not.
func secWithCert(t *testing.T, conf *tls.Config, certFile, keyFile string) *tls.Config {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	conf = conf.Clone()
	conf.Certificates = []tls.Certificate{cert}
	return conf
}

func secHTTP(t *testing.T, conf *tls.Config) *http.Client {
	t.Helper()
	c := serve.NewHTTP2Client(conf)
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// secHandshake connects to url's host with conf and reads the server's first
// bytes. In TLS 1.3 the client's side of the handshake ends before the
// server has checked the client's certificate; a server that refuses it
// answers the first read with an alert.
func secHandshake(t *testing.T, url string, conf *tls.Config) error {
	t.Helper()
	conf = conf.Clone()
	conf.NextProtos = []string{"h2"}
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: secBankTimeout}, Config: conf}
	ctx, cancel := context.WithTimeout(t.Context(), secBankTimeout)
	defer cancel()
	conn, err := d.DialContext(ctx, "tcp", strings.TrimPrefix(url, "https://"))
	if err != nil {
		return err
	}
	defer conn.Close() //nolint:errcheck // a read-only probe: the Read's error is the answer
	if err := conn.SetDeadline(time.Now().Add(secBankTimeout)); err != nil {
		return err
	}
	// An HTTP/2 server sends its SETTINGS frame first.
	_, err = conn.Read(make([]byte, 1))
	return err
}

// TestBankSecurityMutualTLS calls a real bank as every kind of client: the
// gateway's certificate is served, another Remit certificate is denied,
// and anything else does not get past the handshake.
func TestBankSecurityMutualTLS(t *testing.T) {
	t.Parallel()
	layout, err := pki.Generate(t.TempDir(), pki.Options{Banks: []string{"bank-a", "bank-b"}})
	if err != nil {
		t.Fatal(err)
	}
	// Another CA issuing certificates with the very same identities
	// (remit://gateway, remit://bank-a): only the CA tells them apart.
	other, err := pki.Generate(t.TempDir(), pki.Options{Banks: []string{"bank-a"}})
	if err != nil {
		t.Fatal(err)
	}
	url := secRunBank(t, layout, "bank-a")
	trustOnly := secClientTLS(t, layout, "")
	gatewayServerCert, gatewayServerKey := layout.Server(pki.GatewayName)
	otherGatewayCert, otherGatewayKey := other.Client(pki.GatewayName)
	otherBankCert, otherBankKey := other.Client("bank-a")

	// What happens to a client.
	const (
		served    = "served"
		denied    = "permission_denied"
		handshake = "refused in the handshake" // before any RPC
	)
	tests := []struct {
		name string
		tls  *tls.Config
		want string
	}{
		{"the gateway's client certificate", secClientTLS(t, layout, pki.GatewayName), served},
		{"the bank's own client certificate", secClientTLS(t, layout, "bank-a"), denied},
		{"another bank's client certificate", secClientTLS(t, layout, "bank-b"), denied},
		{"a gateway certificate from another CA", secWithCert(t, trustOnly, otherGatewayCert, otherGatewayKey), handshake},
		{"a bank-a certificate from another CA", secWithCert(t, trustOnly, otherBankCert, otherBankKey), handshake},
		{"the gateway's server certificate as a client certificate", secWithCert(t, trustOnly, gatewayServerCert, gatewayServerKey), handshake},
		{"no client certificate", trustOnly, handshake},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := secHandshake(t, url, tt.tls)
			switch {
			case tt.want == handshake && err == nil:
				t.Fatal("the bank completed the TLS handshake")
			case tt.want == handshake && !strings.Contains(err.Error(), "remote error: tls:"):
				t.Fatalf("handshake: %v; want the bank to refuse the certificate with an alert", err)
			case tt.want != handshake && err != nil:
				t.Fatalf("handshake: %v", err)
			}

			hc := secHTTP(t, tt.tls)
			for _, p := range secBankProtocols {
				t.Run(p.name, func(t *testing.T) {
					c := bankv1connect.NewBankServiceClient(hc, url, p.opts...)
					ctx, cancel := context.WithTimeout(t.Context(), secBankTimeout)
					defer cancel()
					// A valid credit: refused for who sends it, never for
					// what it says.
					_, errUpdate := c.UpdateBalance(ctx, &bankv1.UpdateBalanceRequest{
						TransactionId: uuid.NewString(), AccountId: "alice", Direction: bankv1.Direction_DIRECTION_CREDIT,
						Amount: 1, Currency: "usd",
					})
					_, errBalance := c.GetBalance(ctx, &bankv1.GetBalanceRequest{AccountId: "alice"})
					// The account procedures (issue 12), each valid: an
					// opening, a listing, and a close and an enrollment whose
					// served answer is the ledger's own refusal.
					_, errOpen := c.OpenAccount(ctx, &bankv1.OpenAccountRequest{
						RequestId: uuid.NewString(), AccountId: "sec-" + uuid.NewString()[:8], Currency: "usd", Owner: "mallory",
					})
					_, errList := c.ListAccounts(ctx, &bankv1.ListAccountsRequest{})
					_, errClose := c.CloseAccount(ctx, &bankv1.CloseAccountRequest{AccountId: "nobody"})
					_, errEnroll := c.ConsumeEnrollmentCode(ctx, &bankv1.ConsumeEnrollmentCodeRequest{
						AccountId: "alice", Code: "ABCD-EFGH-JKLM-NPQR", ClientId: "mallory",
					})
					for reason, err := range map[string]error{"ACCOUNT_NOT_FOUND": errClose, "ENROLLMENT_CODE_INVALID": errEnroll} {
						if tt.want == served && rpcerr.Reason(err) != reason {
							t.Errorf("served call answered %v, want the ledger's %s", err, reason)
						}
					}
					calls := []error{errUpdate, errBalance, errOpen, errList}
					if tt.want != served {
						calls = append(calls, errClose, errEnroll)
					}
					for _, err := range calls {
						switch {
						case tt.want == served && err != nil:
							t.Errorf("refused: %v", err)
						case tt.want == handshake && err == nil:
							t.Error("served")
						case tt.want == handshake && rpcerr.Info(err) != nil:
							// A refused connection carries no answer of the bank.
							t.Errorf("error %v carries the bank's answer; want no connection", err)
						case tt.want == denied && (connect.CodeOf(err) != connect.CodePermissionDenied || rpcerr.Reason(err) != "PERMISSION_DENIED"):
							t.Errorf("error %v (reason %q), want permission_denied with reason PERMISSION_DENIED", err, rpcerr.Reason(err))
						}
					}
				})
			}
		})
	}

	// Only the gateway's three credits moved money.
	gw := bankv1connect.NewBankServiceClient(secHTTP(t, secClientTLS(t, layout, pki.GatewayName)), url)
	ctx, cancel := context.WithTimeout(t.Context(), secBankTimeout)
	defer cancel()
	res, err := gw.GetBalance(ctx, &bankv1.GetBalanceRequest{AccountId: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(secOpening + len(secBankProtocols)); res.GetBalance() != want {
		t.Errorf("alice's balance = %d, want %d (the opening balance and the gateway's credits only)", res.GetBalance(), want)
	}
}

// TestBankSecurityPinnedClient shows that a client pinned with
// pki.RequirePeer refuses a server that presents another Remit identity,
// although that server's certificate is valid for the same address and
// issued by the same CA, and one issued by another CA.
func TestBankSecurityPinnedClient(t *testing.T) {
	t.Parallel()
	layout, err := pki.Generate(t.TempDir(), pki.Options{Banks: []string{"bank-a", "bank-b"}})
	if err != nil {
		t.Fatal(err)
	}
	other, err := pki.Generate(t.TempDir(), pki.Options{Banks: []string{"bank-a"}})
	if err != nil {
		t.Fatal(err)
	}
	bankA, bankB, foreignA := secRunBank(t, layout, "bank-a"), secRunBank(t, layout, "bank-b"), secRunBank(t, other, "bank-a")

	gatewayTLS := secClientTLS(t, layout, pki.GatewayName)
	bankATLS := secClientTLS(t, layout, "bank-a")
	tests := []struct {
		name   string
		tls    *tls.Config
		url    string
		served bool
		why    string // in the refusal
	}{
		{"pinned to bank-a, at bank-a", pki.RequirePeer(gatewayTLS, pki.BankIdentity("bank-a")), bankA, true, ""},
		{"pinned to bank-a, at bank-b", pki.RequirePeer(gatewayTLS, pki.BankIdentity("bank-a")), bankB, false,
			"peer is " + pki.BankIdentity("bank-b").String() + ", want " + pki.BankIdentity("bank-a").String()},
		{"pinned to bank-a, at a bank-a of another CA", pki.RequirePeer(gatewayTLS, pki.BankIdentity("bank-a")), foreignA, false, "certificate signed by unknown authority"},
		// What banks do when they call the gateway: a bank server is no gateway.
		{"pinned to the gateway, at bank-b", pki.RequirePeer(bankATLS, pki.GatewayIdentity()), bankB, false,
			"peer is " + pki.BankIdentity("bank-b").String() + ", want " + pki.GatewayIdentity().String()},
		// Without the pin, host name verification alone accepts any Remit
		// server on 127.0.0.1: the reason for the pin.
		{"not pinned, at bank-b", gatewayTLS, bankB, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := bankv1connect.NewBankServiceClient(secHTTP(t, tt.tls), tt.url)
			ctx, cancel := context.WithTimeout(t.Context(), secBankTimeout)
			defer cancel()
			_, err := c.GetBalance(ctx, &bankv1.GetBalanceRequest{AccountId: "alice"})
			switch {
			case tt.served && err != nil:
				t.Fatalf("not served: %v", err)
			case !tt.served && err == nil:
				t.Fatal("the client talked to the wrong server")
			case !tt.served && (connect.CodeOf(err) != connect.CodeUnavailable || !strings.Contains(err.Error(), tt.why)):
				t.Fatalf("error %v, want unavailable because %q", err, tt.why)
			}
		})
	}
}
