package bank_test

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	bankv1 "github.com/remitpay/remit/gen/remit/bank/v1"
	"github.com/remitpay/remit/gen/remit/bank/v1/bankv1connect"
	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
	"github.com/remitpay/remit/gen/remit/gateway/v1/gatewayv1connect"
	"github.com/remitpay/remit/internal/pki"
	"github.com/remitpay/remit/services/bank"
)

// registryGateway is a CoordinatorService that records registrations,
// checking that the caller's certificate names the bank it registers.
type registryGateway struct {
	gatewayv1connect.UnimplementedCoordinatorServiceHandler

	registered chan string // URLs
}

func (g *registryGateway) RegisterBank(_ context.Context, req *gatewayv1.RegisterBankRequest) (*gatewayv1.RegisterBankResponse, error) {
	select {
	case g.registered <- req.GetUrl():
	default:
	}
	return &gatewayv1.RegisterBankResponse{GatewayInstanceId: "gw-test"}, nil
}

func startGateway(t *testing.T, layout *pki.Layout, g *registryGateway) string {
	t.Helper()
	cert, key := layout.Server(pki.GatewayName)
	conf, err := pki.ServerConfig(cert, key, layout.CA, tls.RequireAndVerifyClientCert)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	path, h := gatewayv1connect.NewCoordinatorServiceHandler(g)
	mux.Handle(path, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id, ok := pki.PeerIdentity(r.TLS); !ok || id != pki.BankIdentity("bank-a") {
			http.Error(w, "not bank-a", http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	}))
	srv := httptest.NewUnstartedServer(mux)
	srv.EnableHTTP2 = true
	srv.TLS = conf
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.URL
}

// startRun runs a bank process on a fresh port and returns its URL and a
// function that stops it and returns Run's result.
func startRun(t *testing.T, layout *pki.Layout, gatewayURL, dataDir string, seeds []bank.AccountSeed) (string, func() error) {
	t.Helper()
	cert, key := layout.Server("bank-a")
	serverTLS, err := pki.ServerConfig(cert, key, layout.CA, tls.RequireAndVerifyClientCert)
	if err != nil {
		t.Fatal(err)
	}
	ccert, ckey := layout.Client("bank-a")
	gatewayTLS, err := pki.ClientConfig(layout.CA, ccert, ckey)
	if err != nil {
		t.Fatal(err)
	}
	ledger := ledgerTarget(t, dataDir)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "https://" + ln.Addr().String()
	ctx, cancel := context.WithCancel(t.Context())
	result := make(chan error, 1)
	go func() {
		result <- bank.Run(ctx, bank.Config{
			Name: "bank-a", Listener: ln, PublicURL: url, GatewayURL: gatewayURL,
			ServerTLS: serverTLS, GatewayTLS: gatewayTLS, DataDir: dataDir, Database: ledger,
			Accounts: seeds, Logger: discardLogger(),
		})
	}()
	stop := func() error {
		cancel()
		return <-result
	}
	return url, stop
}

func TestRun(t *testing.T) {
	t.Parallel()
	layout := certs(t)
	gw := &registryGateway{registered: make(chan string, 1)}
	gatewayURL := startGateway(t, layout, gw)
	dataDir := t.TempDir()
	seeds := []bank.AccountSeed{{ID: "alice", Owner: "Alice", Currency: "usd", Opening: 100}}

	url, stop := startRun(t, layout, gatewayURL, dataDir, seeds)
	select {
	case got := <-gw.registered:
		if got != url {
			t.Fatalf("registered URL %q, want %q", got, url)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the bank did not register with the gateway")
	}
	c := bankv1connect.NewBankServiceClient(httpClient(t, layout, pki.GatewayName), url, connect.WithGRPC())
	if _, err := c.UpdateBalance(t.Context(), &bankv1.UpdateBalanceRequest{
		TransactionId: newID(), AccountId: "alice", Direction: bankv1.Direction_DIRECTION_DEBIT, Amount: 40, Currency: "usd",
	}); err != nil {
		t.Fatal(err)
	}
	if err := stop(); err != nil {
		t.Fatalf("Run returned %v after shutdown", err)
	}

	// A restart keeps the books: the seed's opening balance is not applied again.
	seeds[0].Opening = 1000
	url, stop = startRun(t, layout, gatewayURL, dataDir, seeds)
	defer func() {
		if err := stop(); err != nil {
			t.Errorf("Run returned %v after shutdown", err)
		}
	}()
	c = bankv1connect.NewBankServiceClient(httpClient(t, layout, pki.GatewayName), url)
	res, err := c.GetBalance(t.Context(), &bankv1.GetBalanceRequest{AccountId: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	if res.GetBalance() != 60 {
		t.Fatalf("balance after restart = %d, want 60", res.GetBalance())
	}
}

func TestRunRejectsUnsafeConfig(t *testing.T) {
	t.Parallel()
	layout := certs(t)
	cert, key := layout.Server("bank-a")
	noClientAuth, err := pki.ServerConfig(cert, key, layout.CA, tls.NoClientCert)
	if err != nil {
		t.Fatal(err)
	}
	err = bank.Run(t.Context(), bank.Config{
		Name: "bank-a", Addr: "127.0.0.1:0", PublicURL: "http://127.0.0.1:1", GatewayURL: "https://127.0.0.1:2",
		ServerTLS: noClientAuth, GatewayTLS: &tls.Config{}, DataDir: t.TempDir(),
	})
	if err == nil {
		t.Fatal("Run accepted a server without mutual TLS and a plaintext public URL")
	}
	for _, want := range []string{"mutual TLS", "https://", "no logger"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}
