package bank_test

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	bankv1 "github.com/remitpay/remit/gen/remit/bank/v1"
	"github.com/remitpay/remit/gen/remit/bank/v1/bankv1connect"
	"github.com/remitpay/remit/internal/pki"
	"github.com/remitpay/remit/internal/rpcerr"
	"github.com/remitpay/remit/internal/serve"
	"github.com/remitpay/remit/services/bank"
)

// certs generates a dev CA with certificates for the gateway and bank-a.
func certs(t *testing.T) *pki.Layout {
	t.Helper()
	layout, err := pki.Generate(t.TempDir(), pki.Options{Banks: []string{"bank-a"}})
	if err != nil {
		t.Fatal(err)
	}
	return layout
}

// startBank serves the bank's HTTP handler over TLS with the given client
// authentication and returns its URL.
func startBank(t *testing.T, layout *pki.Layout, l *bank.Ledger, clientAuth tls.ClientAuthType) string {
	t.Helper()
	cert, key := layout.Server("bank-a")
	conf, err := pki.ServerConfig(cert, key, layout.CA, clientAuth)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(bank.NewHTTPHandler(l, discardLogger()))
	srv.EnableHTTP2 = true
	srv.TLS = conf
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.URL
}

// httpClient returns an HTTP/2 client trusting the dev CA and presenting the
// client certificate of principal ("" for none).
func httpClient(t *testing.T, layout *pki.Layout, principal string) *http.Client {
	t.Helper()
	var cert, key string
	if principal != "" {
		cert, key = layout.Client(principal)
	}
	conf, err := pki.ClientConfig(layout.CA, cert, key)
	if err != nil {
		t.Fatal(err)
	}
	c := serve.NewHTTP2Client(conf)
	t.Cleanup(c.CloseIdleConnections)
	return c
}

var protocols = []struct {
	name string
	opts []connect.ClientOption
}{
	{"connect", nil},
	{"grpc", []connect.ClientOption{connect.WithGRPC()}},
	{"grpcweb", []connect.ClientOption{connect.WithGRPCWeb()}},
}

func wantCode(t *testing.T, err error, code connect.Code, reason string) {
	t.Helper()
	if got := connect.CodeOf(err); got != code {
		t.Fatalf("code = %v (%v), want %v", got, err, code)
	}
	if reason != "" && rpcerr.Reason(err) != reason {
		t.Fatalf("reason = %q (%v), want %q", rpcerr.Reason(err), err, reason)
	}
}

func protoLeg(account string, dir bankv1.Direction, amount int64) *bankv1.Leg {
	return &bankv1.Leg{AccountId: account, Direction: dir, Amount: amount, Currency: "usd"}
}

func TestHandler(t *testing.T) {
	t.Parallel()
	layout := certs(t)
	l := newLedger(t)
	url := startBank(t, layout, l, tls.RequireAndVerifyClientCert)
	gatewayHTTP := httpClient(t, layout, pki.GatewayName)

	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			c := bankv1connect.NewBankServiceClient(gatewayHTTP, url, p.opts...)
			ctx := t.Context()
			before, err := c.GetBalance(ctx, &bankv1.GetBalanceRequest{AccountId: "alice"})
			if err != nil {
				t.Fatal(err)
			}

			id := newID()
			prep := &bankv1.PrepareTransactionRequest{
				TransactionId: id,
				Legs: []*bankv1.Leg{
					protoLeg("alice", bankv1.Direction_DIRECTION_DEBIT, 7),
					protoLeg("bob", bankv1.Direction_DIRECTION_CREDIT, 7),
				},
				ExpireTime: timestamppb.New(time.Now().Add(time.Minute)),
			}
			for range 2 { // a repeat gets the same vote
				res, err := c.PrepareTransaction(ctx, prep)
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(&bankv1.PrepareTransactionResponse{Vote: bankv1.Vote_VOTE_YES}, res, protocmp.Transform()); diff != "" {
					t.Fatalf("vote (-want +got):\n%s", diff)
				}
			}
			held, err := c.GetBalance(ctx, &bankv1.GetBalanceRequest{AccountId: "alice"})
			if err != nil {
				t.Fatal(err)
			}
			want := &bankv1.GetBalanceResponse{AccountId: "alice", Balance: before.GetBalance(), Held: 7, Available: before.GetBalance() - 7, Currency: "usd"}
			if diff := cmp.Diff(want, held, protocmp.Transform()); diff != "" {
				t.Fatalf("balance while prepared (-want +got):\n%s", diff)
			}

			for range 2 { // a repeat is acknowledged again
				res, err := c.CommitTransaction(ctx, &bankv1.CommitTransactionRequest{TransactionId: id, Decision: bankv1.Decision_DECISION_COMMIT})
				if err != nil {
					t.Fatal(err)
				}
				if res.GetState() != bankv1.TransactionState_TRANSACTION_STATE_COMMITTED {
					t.Fatalf("state = %v", res.GetState())
				}
			}
			after, err := c.GetBalance(ctx, &bankv1.GetBalanceRequest{AccountId: "alice"})
			if err != nil {
				t.Fatal(err)
			}
			want = &bankv1.GetBalanceResponse{AccountId: "alice", Balance: before.GetBalance() - 7, Available: before.GetBalance() - 7, Currency: "usd"}
			if diff := cmp.Diff(want, after, protocmp.Transform()); diff != "" {
				t.Fatalf("balance after commit (-want +got):\n%s", diff)
			}

			// Refusals in prepare are a NO vote that names the account.
			res, err := c.PrepareTransaction(ctx, &bankv1.PrepareTransactionRequest{
				TransactionId: newID(),
				Legs:          []*bankv1.Leg{protoLeg("alice", bankv1.Direction_DIRECTION_DEBIT, 1_000_000)},
				ExpireTime:    timestamppb.Now(),
			})
			if err != nil {
				t.Fatal(err)
			}
			wantNo := &bankv1.PrepareTransactionResponse{Vote: bankv1.Vote_VOTE_NO, Reason: bankv1.RefusalReason_REFUSAL_REASON_INSUFFICIENT_FUNDS, AccountId: "alice"}
			if diff := cmp.Diff(wantNo, res, protocmp.Transform()); diff != "" {
				t.Fatalf("vote (-want +got):\n%s", diff)
			}

			// Abort of an unknown id is presumed abort.
			ab, err := c.CommitTransaction(ctx, &bankv1.CommitTransactionRequest{TransactionId: newID(), Decision: bankv1.Decision_DECISION_ABORT})
			if err != nil || ab.GetState() != bankv1.TransactionState_TRANSACTION_STATE_ABORTED {
				t.Fatalf("abort unknown = %v, %v", ab, err)
			}

			// Deposits are idempotent by id, including the apply time.
			dep := &bankv1.UpdateBalanceRequest{TransactionId: newID(), AccountId: "bob", Direction: bankv1.Direction_DIRECTION_CREDIT, Amount: 3, Currency: "usd"}
			first, err := c.UpdateBalance(ctx, dep)
			if err != nil {
				t.Fatal(err)
			}
			again, err := c.UpdateBalance(ctx, dep)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(first, again, protocmp.Transform()); diff != "" {
				t.Fatalf("repeated deposit (-first +repeat):\n%s", diff)
			}
		})
	}
}

func TestHandlerErrors(t *testing.T) {
	t.Parallel()
	layout := certs(t)
	l := newLedger(t)
	url := startBank(t, layout, l, tls.RequireAndVerifyClientCert)
	gatewayHTTP := httpClient(t, layout, pki.GatewayName)

	reused := newID()
	if _, err := l.UpdateBalance(t.Context(), reused, credit("alice", 1)); err != nil {
		t.Fatal(err)
	}
	update := func(id, account string, dir bankv1.Direction, amount int64, currency string) *bankv1.UpdateBalanceRequest {
		return &bankv1.UpdateBalanceRequest{TransactionId: id, AccountId: account, Direction: dir, Amount: amount, Currency: currency}
	}
	credit, debit := bankv1.Direction_DIRECTION_CREDIT, bankv1.Direction_DIRECTION_DEBIT
	tests := []struct {
		name   string
		call   func(bankv1connect.BankServiceClient) error
		code   connect.Code
		reason string
	}{
		{"balance of unknown account", func(c bankv1connect.BankServiceClient) error {
			_, err := c.GetBalance(t.Context(), &bankv1.GetBalanceRequest{AccountId: "nobody"})
			return err
		}, connect.CodeNotFound, "ACCOUNT_NOT_FOUND"},
		{"withdrawal over available", func(c bankv1connect.BankServiceClient) error {
			_, err := c.UpdateBalance(t.Context(), update(newID(), "bob", debit, 51, "usd"))
			return err
		}, connect.CodeFailedPrecondition, "INSUFFICIENT_FUNDS"},
		{"deposit to unknown account", func(c bankv1connect.BankServiceClient) error {
			_, err := c.UpdateBalance(t.Context(), update(newID(), "nobody", credit, 1, "usd"))
			return err
		}, connect.CodeNotFound, "ACCOUNT_NOT_FOUND"},
		{"deposit in another currency", func(c bankv1connect.BankServiceClient) error {
			_, err := c.UpdateBalance(t.Context(), update(newID(), "carol", credit, 1, "usd"))
			return err
		}, connect.CodeFailedPrecondition, "CURRENCY_MISMATCH"},
		{"deposit overflowing", func(c bankv1connect.BankServiceClient) error {
			_, err := c.UpdateBalance(t.Context(), update(newID(), "whale", credit, 11, "usd"))
			return err
		}, connect.CodeFailedPrecondition, "BALANCE_OVERFLOW"},
		{"adjustment id reused", func(c bankv1connect.BankServiceClient) error {
			_, err := c.UpdateBalance(t.Context(), update(reused, "alice", credit, 2, "usd"))
			return err
		}, connect.CodeInvalidArgument, "IDEMPOTENCY_KEY_REUSED"},
		{"commit of unknown transaction", func(c bankv1connect.BankServiceClient) error {
			_, err := c.CommitTransaction(t.Context(), &bankv1.CommitTransactionRequest{TransactionId: newID(), Decision: bankv1.Decision_DECISION_COMMIT})
			return err
		}, connect.CodeFailedPrecondition, "CANNOT_COMMIT"},
		{"two debits of one account", func(c bankv1connect.BankServiceClient) error {
			_, err := c.PrepareTransaction(t.Context(), &bankv1.PrepareTransactionRequest{
				TransactionId: newID(),
				Legs:          []*bankv1.Leg{protoLeg("alice", debit, 1), protoLeg("alice", debit, 2)},
				ExpireTime:    timestamppb.Now(),
			})
			return err
		}, connect.CodeInvalidArgument, "INVALID_ARGUMENT"},
		// protovalidate rejects these before the handler runs.
		{"bad transaction id", func(c bankv1connect.BankServiceClient) error {
			_, err := c.PrepareTransaction(t.Context(), &bankv1.PrepareTransactionRequest{
				TransactionId: "not-a-uuid",
				Legs:          []*bankv1.Leg{protoLeg("alice", debit, 1)},
				ExpireTime:    timestamppb.Now(),
			})
			return err
		}, connect.CodeInvalidArgument, ""},
		{"no direction", func(c bankv1connect.BankServiceClient) error {
			_, err := c.UpdateBalance(t.Context(), update(newID(), "alice", bankv1.Direction_DIRECTION_UNSPECIFIED, 1, "usd"))
			return err
		}, connect.CodeInvalidArgument, ""},
		{"amount too large", func(c bankv1connect.BankServiceClient) error {
			_, err := c.UpdateBalance(t.Context(), update(newID(), "alice", credit, 1_000_000_000_001, "usd"))
			return err
		}, connect.CodeInvalidArgument, ""},
	}
	for _, p := range protocols {
		c := bankv1connect.NewBankServiceClient(gatewayHTTP, url, p.opts...)
		for _, tt := range tests {
			t.Run(p.name+"/"+tt.name, func(t *testing.T) {
				wantCode(t, tt.call(c), tt.code, tt.reason)
			})
		}
	}
	// Nothing reached the ledger through the rejected requests.
	if _, ok, _ := l.State(t.Context(), "not-a-uuid"); ok {
		t.Error("an invalid transaction id was recorded")
	}
	wantBalances(t, l, "alice", balances{101, 0, 0})
	wantBalances(t, l, "bob", balances{50, 0, 0})
}

func TestHandlerAuthorization(t *testing.T) {
	t.Parallel()
	layout := certs(t)
	l := newLedger(t)
	mtlsURL := startBank(t, layout, l, tls.RequireAndVerifyClientCert)
	// A server that lets clients without a certificate through TLS shows
	// that the interceptor, not only the handshake, refuses them.
	optionalURL := startBank(t, layout, l, tls.VerifyClientCertIfGiven)

	tests := []struct {
		name      string
		url       string
		principal string
		code      connect.Code
		reason    string
	}{
		{"gateway", mtlsURL, pki.GatewayName, 0, ""},
		{"bank certificate", mtlsURL, "bank-a", connect.CodePermissionDenied, "PERMISSION_DENIED"},
		{"bank certificate, optional TLS auth", optionalURL, "bank-a", connect.CodePermissionDenied, "PERMISSION_DENIED"},
		{"no certificate", optionalURL, "", connect.CodeUnauthenticated, "UNAUTHENTICATED"},
	}
	for _, p := range protocols {
		for _, tt := range tests {
			t.Run(p.name+"/"+tt.name, func(t *testing.T) {
				c := bankv1connect.NewBankServiceClient(httpClient(t, layout, tt.principal), tt.url, p.opts...)
				// Even an invalid request is refused for who sends it, before
				// validation can reveal anything.
				_, err := c.CommitTransaction(t.Context(), &bankv1.CommitTransactionRequest{TransactionId: "x"})
				if tt.code == 0 {
					wantCode(t, err, connect.CodeInvalidArgument, "")
					_, err = c.CommitTransaction(t.Context(), &bankv1.CommitTransactionRequest{TransactionId: newID(), Decision: bankv1.Decision_DECISION_ABORT})
					if err != nil {
						t.Fatal(err)
					}
					return
				}
				wantCode(t, err, tt.code, tt.reason)
				_, err = c.GetBalance(t.Context(), &bankv1.GetBalanceRequest{AccountId: "alice"})
				wantCode(t, err, tt.code, tt.reason)
			})
		}
	}
	// Without a client certificate the mutual-TLS server does not even
	// complete the handshake.
	c := bankv1connect.NewBankServiceClient(httpClient(t, layout, ""), mtlsURL)
	if _, err := c.GetBalance(t.Context(), &bankv1.GetBalanceRequest{AccountId: "alice"}); err == nil {
		t.Fatal("a client without certificate was served over mutual TLS")
	}
	wantBalances(t, l, "alice", balances{100, 0, 0})
}
