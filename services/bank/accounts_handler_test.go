package bank_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	bankv1 "github.com/remitpay/remit/gen/remit/bank/v1"
	"github.com/remitpay/remit/gen/remit/bank/v1/bankv1connect"
	"github.com/remitpay/remit/internal/pki"
	"github.com/remitpay/remit/services/bank"
)

// syncBuffer is a log destination safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startLoggedBank is startBank (mutual TLS) with the bank's log kept.
func startLoggedBank(t *testing.T, layout *pki.Layout, l *bank.Ledger) (string, *syncBuffer) {
	t.Helper()
	cert, key := layout.Server("bank-a")
	conf, err := pki.ServerConfig(cert, key, layout.CA, tls.RequireAndVerifyClientCert)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	srv := httptest.NewUnstartedServer(bank.NewHTTPHandler(l, slog.New(slog.NewJSONHandler(logs, nil))))
	srv.EnableHTTP2 = true
	srv.TLS = conf
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.URL, logs
}

func TestHandlerAccounts(t *testing.T) {
	t.Parallel()
	layout := certs(t)
	l := newLedger(t)
	url, _ := startLoggedBank(t, layout, l)
	gatewayHTTP := httpClient(t, layout, pki.GatewayName)

	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			c := bankv1connect.NewBankServiceClient(gatewayHTTP, url, p.opts...)
			ctx := t.Context()
			id := "erin-" + p.name
			req := &bankv1.OpenAccountRequest{RequestId: strings.ToUpper(newID()), AccountId: id, Currency: "usd", Owner: "erin"}
			res, err := c.OpenAccount(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			opened := res.GetAccount()
			want := &bankv1.Account{AccountId: id, Owner: "erin", Currency: "usd", State: bankv1.AccountState_ACCOUNT_STATE_OPEN}
			if d := cmp.Diff(want, opened, protocmp.Transform(), protocmp.IgnoreFields(&bankv1.Account{}, "open_time")); d != "" || opened.GetOpenTime() == nil {
				t.Errorf("opened (-want +got):\n%s", d)
			}
			// The request id is a UUID in any case.
			req.RequestId = strings.ToLower(req.GetRequestId())
			again, err := c.OpenAccount(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(opened, again.GetAccount(), protocmp.Transform()); d != "" {
				t.Errorf("repeat (-first +repeat):\n%s", d)
			}
			_, err = c.OpenAccount(ctx, &bankv1.OpenAccountRequest{RequestId: req.GetRequestId(), AccountId: id, Currency: "eur", Owner: "erin"})
			wantCode(t, err, connect.CodeInvalidArgument, "IDEMPOTENCY_KEY_REUSED")
			_, err = c.OpenAccount(ctx, &bankv1.OpenAccountRequest{RequestId: newID(), AccountId: id, Currency: "usd", Owner: "erin"})
			wantCode(t, err, connect.CodeAlreadyExists, "ACCOUNT_EXISTS")
			_, err = c.OpenAccount(ctx, &bankv1.OpenAccountRequest{RequestId: newID(), AccountId: id, Currency: "usd"})
			wantCode(t, err, connect.CodeInvalidArgument, "") // owner is required at the bank

			// Close: not while it holds money; then closed, and it refuses payments.
			if _, err := c.UpdateBalance(ctx, &bankv1.UpdateBalanceRequest{TransactionId: newID(), AccountId: id,
				Direction: bankv1.Direction_DIRECTION_CREDIT, Amount: 5, Currency: "usd"}); err != nil {
				t.Fatal(err)
			}
			_, err = c.CloseAccount(ctx, &bankv1.CloseAccountRequest{AccountId: id})
			wantCode(t, err, connect.CodeFailedPrecondition, "ACCOUNT_NOT_EMPTY")
			if _, err := c.UpdateBalance(ctx, &bankv1.UpdateBalanceRequest{TransactionId: newID(), AccountId: id,
				Direction: bankv1.Direction_DIRECTION_DEBIT, Amount: 5, Currency: "usd"}); err != nil {
				t.Fatal(err)
			}
			closed, err := c.CloseAccount(ctx, &bankv1.CloseAccountRequest{AccountId: id})
			if err != nil {
				t.Fatal(err)
			}
			if a := closed.GetAccount(); a.GetState() != bankv1.AccountState_ACCOUNT_STATE_CLOSED || a.GetCloseTime() == nil {
				t.Errorf("closed = %v", a)
			}
			if _, err := c.CloseAccount(ctx, &bankv1.CloseAccountRequest{AccountId: id}); err != nil {
				t.Errorf("closing again: %v", err)
			}
			_, err = c.CloseAccount(ctx, &bankv1.CloseAccountRequest{AccountId: "nobody"})
			wantCode(t, err, connect.CodeNotFound, "ACCOUNT_NOT_FOUND")
			vote, err := c.PrepareTransaction(ctx, &bankv1.PrepareTransactionRequest{TransactionId: newID(),
				Legs:       []*bankv1.Leg{protoLeg("alice", bankv1.Direction_DIRECTION_DEBIT, 1), protoLeg(id, bankv1.Direction_DIRECTION_CREDIT, 1)},
				ExpireTime: timestamppb.New(time.Now().Add(time.Minute))})
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(&bankv1.PrepareTransactionResponse{Vote: bankv1.Vote_VOTE_NO, Reason: bankv1.RefusalReason_REFUSAL_REASON_ACCOUNT_CLOSED, AccountId: id},
				vote, protocmp.Transform()); d != "" {
				t.Errorf("vote on a closed payee (-want +got):\n%s", d)
			}
			_, err = c.UpdateBalance(ctx, &bankv1.UpdateBalanceRequest{TransactionId: newID(), AccountId: id,
				Direction: bankv1.Direction_DIRECTION_CREDIT, Amount: 5, Currency: "usd"})
			wantCode(t, err, connect.CodeFailedPrecondition, "ACCOUNT_CLOSED")
			bal, err := c.GetBalance(ctx, &bankv1.GetBalanceRequest{AccountId: id})
			if err != nil || bal.GetBalance() != 0 {
				t.Errorf("GetBalance of a closed account = %v, %v", bal, err)
			}
		})
	}

	c := bankv1connect.NewBankServiceClient(gatewayHTTP, url)
	ctx := t.Context()
	var ids []string
	token := ""
	for {
		res, err := c.ListAccounts(ctx, &bankv1.ListAccountsRequest{PageSize: 2, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.GetAccounts()) > 2 {
			t.Fatalf("page of %d", len(res.GetAccounts()))
		}
		for _, a := range res.GetAccounts() {
			ids = append(ids, a.GetAccountId())
		}
		if token = res.GetNextPageToken(); token == "" {
			break
		}
	}
	want := []string{"alice", "bob", "carol", "erin-connect", "erin-grpc", "erin-grpcweb", "whale"}
	if d := cmp.Diff(want, ids); d != "" {
		t.Errorf("listed (-want +got):\n%s", d)
	}
	_, err := c.ListAccounts(ctx, &bankv1.ListAccountsRequest{PageToken: "bogus"})
	wantCode(t, err, connect.CodeInvalidArgument, "INVALID_PAGE_TOKEN")
}

// TestHandlerEnrollment: every failure of ConsumeEnrollmentCode is the same
// error (code, reason, message), whether the account exists or not, and the
// bank's log line says what happened without the code.
func TestHandlerEnrollment(t *testing.T) {
	t.Parallel()
	layout := certs(t)
	l := newLedger(t)
	url, logs := startLoggedBank(t, layout, l)
	c := bankv1connect.NewBankServiceClient(httpClient(t, layout, pki.GatewayName), url, connect.WithGRPC())
	ctx := t.Context()
	code := issue(t, l, "alice", 0)
	bobs := issue(t, l, "bob", 0)

	consume := func(account, code, client string) (*bankv1.ConsumeEnrollmentCodeResponse, error) {
		return c.ConsumeEnrollmentCode(ctx, &bankv1.ConsumeEnrollmentCodeRequest{AccountId: account, Code: code, ClientId: client})
	}
	var first error
	for _, tt := range []struct{ name, account, code, client string }{
		{"wrong code", "alice", bobs, "alice-new"},
		{"unknown account", "nobody", code, "alice-new"},
		{"unknown account, well-formed code", "nobody", bobs, "alice-new"},
	} {
		_, err := consume(tt.account, tt.code, tt.client)
		wantCode(t, err, connect.CodeFailedPrecondition, "ENROLLMENT_CODE_INVALID")
		if first == nil {
			first = err
		} else if err.Error() != first.Error() {
			t.Errorf("%s: %q, want the same text as every failure: %q", tt.name, err, first)
		}
	}
	res, err := consume("alice", strings.ToLower(code), "alice-new")
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(&bankv1.ConsumeEnrollmentCodeResponse{AccountId: "alice", Currency: "usd"}, res, protocmp.Transform()); d != "" {
		t.Errorf("consumed (-want +got):\n%s", d)
	}
	if _, err := consume("alice", code, "alice-new"); err != nil {
		t.Errorf("retry by the same client: %v", err)
	}
	_, err = consume("alice", code, "mallory")
	wantCode(t, err, connect.CodeFailedPrecondition, "ENROLLMENT_CODE_INVALID")
	if err.Error() != first.Error() {
		t.Errorf("consumed code for another client: %q, want %q", err, first)
	}

	text := logs.String()
	for _, secret := range []string{code, bobs, strings.ReplaceAll(code, "-", ""), strings.ToLower(code)} {
		if strings.Contains(text, secret) {
			t.Errorf("the bank's log contains a code:\n%s", text)
		}
	}
	for _, want := range []string{`"why":"wrong code"`, `"why":"no such account"`, `"enrollment":"consumed"`, `"why":"consumed by another client"`} {
		if !strings.Contains(text, want) {
			t.Errorf("the bank's log lacks %s:\n%s", want, text)
		}
	}
}

// TestEnrollWhileBankRuns: `remit bank enroll` (bank.Enroll) writes into the
// ledger of a running bank that is busy writing, and the running bank
// accepts the code at once.
func TestEnrollWhileBankRuns(t *testing.T) {
	t.Parallel()
	layout := certs(t)
	dataDir := t.TempDir()
	seeds := []bank.AccountSeed{{ID: "alice", Owner: "alice", Currency: "usd", Opening: 100}}
	if _, err := bank.Enroll(t.Context(), ledgerTarget(t, dataDir), "alice", 0); err == nil {
		t.Fatal("Enroll created a ledger where there was none")
	}
	url, stop := startRun(t, layout, "https://127.0.0.1:1", dataDir, seeds)
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	c := bankv1connect.NewBankServiceClient(httpClient(t, layout, pki.GatewayName), url)
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := c.GetBalance(t.Context(), &bankv1.GetBalanceRequest{AccountId: "alice"})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the bank does not serve: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// The bank writes all along.
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	writes := make(chan error, 1)
	wg.Go(func() {
		for ctx.Err() == nil {
			_, err := c.UpdateBalance(ctx, &bankv1.UpdateBalanceRequest{TransactionId: newID(), AccountId: "alice",
				Direction: bankv1.Direction_DIRECTION_CREDIT, Amount: 1, Currency: "usd"})
			if err != nil && ctx.Err() == nil {
				writes <- err
				return
			}
		}
	})
	var codes []bank.EnrollmentCode
	for range 3 {
		code, err := bank.Enroll(t.Context(), ledgerTarget(t, dataDir), "alice", time.Hour)
		if err != nil {
			t.Fatalf("Enroll while the bank runs: %v", err)
		}
		codes = append(codes, code)
	}
	cancel()
	wg.Wait()
	select {
	case err := <-writes:
		t.Fatalf("the bank's own writes failed meanwhile: %v", err)
	default:
	}
	if _, err := bank.Enroll(t.Context(), ledgerTarget(t, dataDir), "nobody", 0); err == nil {
		t.Error("Enroll for an unknown account succeeded")
	}
	// Only the newest code works.
	for i, code := range codes {
		_, err := c.ConsumeEnrollmentCode(t.Context(), &bankv1.ConsumeEnrollmentCodeRequest{AccountId: "alice", Code: code.Code, ClientId: "alice-new"})
		if i < len(codes)-1 {
			wantCode(t, err, connect.CodeFailedPrecondition, "ENROLLMENT_CODE_INVALID")
		} else if err != nil {
			t.Fatalf("the newest code: %v", err)
		}
	}
}
