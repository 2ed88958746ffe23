package e2e_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"
	"connectrpc.com/grpcreflect"
	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/testing/protocmp"

	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
	"github.com/remitpay/remit/gen/remit/gateway/v1/gatewayv1connect"
	"github.com/remitpay/remit/internal/serve"
)

// session is a logged-in customer talking Connect JSON.
type session struct {
	c     *jsonClient
	token string
}

func login(t *testing.T, c *jsonClient, clientID, password string) *session {
	t.Helper()
	var res gatewayv1.LoginResponse
	ok(t, c, "", "/remit.gateway.v1.AuthService/Login",
		fmt.Sprintf(`{"clientId":%q,"password":%q}`, clientID, password), &res)
	if res.GetAccessToken() == "" || res.GetClient().GetClientId() != clientID {
		t.Fatalf("Login(%s) = %v", clientID, &res)
	}
	return &session{c: c, token: res.GetAccessToken()}
}

// ok posts a Connect JSON request, requires 200 and decodes the response
// strictly into out.
func ok(t *testing.T, c *jsonClient, token, procedure, body string, out proto.Message) {
	t.Helper()
	status, data := c.post(token, procedure, body)
	if status != http.StatusOK {
		t.Fatalf("POST %s %s: HTTP %d: %s", procedure, body, status, data)
	}
	if err := protojson.Unmarshal(data, out); err != nil {
		t.Fatalf("POST %s: response %s is not a %T: %v", procedure, data, out, err)
	}
}

func (s *session) balance(t *testing.T) int64 {
	t.Helper()
	var res gatewayv1.CheckBalanceResponse
	ok(t, s.c, s.token, "/remit.gateway.v1.PaymentService/CheckBalance", `{}`, &res)
	if res.GetCurrency() != "usd" {
		t.Errorf("CheckBalance currency = %q, want usd", res.GetCurrency())
	}
	return res.GetBalance()
}

func (s *session) pay(t *testing.T, txID, bank, account string, amount int64) *gatewayv1.Payment {
	t.Helper()
	var res gatewayv1.MakePaymentResponse
	ok(t, s.c, s.token, "/remit.gateway.v1.PaymentService/MakePayment", payBody(txID, bank, account, amount), &res)
	return res.GetPayment()
}

func payBody(txID, bank, account string, amount int64) string {
	// int64 is a JSON string in protojson; Connect servers accept both.
	return fmt.Sprintf(`{"transactionId":%q,"payee":{"bank":%q,"accountId":%q},"amount":"%d","currency":"usd","description":"e2e"}`,
		txID, bank, account, amount)
}

// connectError is the Connect protocol's JSON error body.
type connectError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Details []struct {
		Type  string `json:"type"`
		Value string `json:"value"`
	} `json:"details"`
}

// TestUp is the whole story of a newcomer: `remit up`, log in, pay, check
// balances, over Connect JSON, gRPC and gRPC-Web; then kill -9 and restart.
func TestUp(t *testing.T) {
	skipIfShort(t)
	dir := filepath.Join(t.TempDir(), "net")
	port := freeBasePort(t)
	up := startUp(t, dir, port)

	banner := up.output()
	for _, want := range []string{
		fmt.Sprintf("https://127.0.0.1:%d", port),
		fmt.Sprintf("https://127.0.0.1:%d", port+3),
		filepath.Join(dir, "certs", "ca.pem"),
		filepath.Join(dir, "credentials.json"),
		"/remit.gateway.v1.AuthService/Login",
		fmt.Sprintf("grpcurl -cacert %s 127.0.0.1:%d list", filepath.Join(dir, "certs", "ca.pem"), port),
		"remit login",
		fmt.Sprintf("Wallet          https://127.0.0.1:%d/ ", port),
	} {
		if !strings.Contains(banner, want) {
			t.Errorf("banner lacks %q:\n%s", want, banner)
		}
	}
	pw := readPasswords(t, dir)
	for id, p := range pw {
		if strings.Contains(banner, p) {
			t.Errorf("the banner prints %s's password: captured output would keep it", id)
		}
	}

	c := newJSONClient(t, dir, port)
	t.Run("wallet page", func(t *testing.T) {
		// The banner's wallet URL serves the embedded page with its CSP.
		res, err := c.http.Get(c.base + "/")
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(res.Body)
		_ = res.Body.Close() // read whole; nothing to flush
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != http.StatusOK || !strings.Contains(string(body), "<title>Remit wallet</title>") ||
			!strings.HasPrefix(res.Header.Get("Content-Security-Policy"), "default-src 'none'") {
			t.Errorf("GET %s/: %d, CSP %q, body %.200q", c.base, res.StatusCode, res.Header.Get("Content-Security-Policy"), body)
		}
	})
	t.Run("banner curl example", func(t *testing.T) {
		// Run the banner's curl command as curl would.
		var curl string
		for l := range strings.SplitSeq(banner, "\n") {
			if strings.HasPrefix(strings.TrimSpace(l), "curl ") && curl == "" {
				curl = l // the first: the login example
			}
		}
		body, url := dataArg.FindStringSubmatch(curl), regexp.MustCompile(`https://\S+`).FindString(curl)
		if body == nil || !strings.HasPrefix(url, c.base+"/") || !strings.Contains(curl, "--cacert "+filepath.Join(dir, "certs", "ca.pem")) {
			t.Fatalf("banner curl line %q: want --cacert, -d '...' and a URL on the gateway", curl)
		}
		// The placeholder is what a newcomer replaces with alice's
		// password from credentials.json.
		if !strings.Contains(body[1], "ALICE-PASSWORD") {
			t.Fatalf("banner curl line %q: want the ALICE-PASSWORD placeholder", curl)
		}
		var res gatewayv1.LoginResponse
		ok(t, c, "", strings.TrimPrefix(url, c.base), strings.ReplaceAll(body[1], "ALICE-PASSWORD", pw["alice"]), &res)
		if res.GetAccessToken() == "" {
			t.Errorf("the banner's curl example logged in no one: %v", &res)
		}
	})
	alice := login(t, c, "alice", pw["alice"])
	bob := login(t, c, "bob", pw["bob"])

	t.Run("curl JSON", func(t *testing.T) {
		if got := alice.balance(t); got != 100000 {
			t.Fatalf("alice's opening balance = %d, want 100000", got)
		}
		txID := uuid.NewString()
		p := alice.pay(t, txID, "bank-b", "bob", 1250)
		if p.GetStatus() != gatewayv1.PaymentStatus_PAYMENT_STATUS_SUCCEEDED || p.GetTransactionId() != txID || p.GetAmount() != 1250 {
			t.Fatalf("MakePayment = %v", p)
		}
		if a, b := alice.balance(t), bob.balance(t); a != 98750 || b != 101250 {
			t.Fatalf("after paying 1250: alice %d bob %d, want 98750 101250", a, b)
		}

		// The same request again is the same payment, not a second one.
		again := alice.pay(t, txID, "bank-b", "bob", 1250)
		if diff := cmp.Diff(p, again, protocmp.Transform()); diff != "" {
			t.Errorf("retried MakePayment differs (-first +retry):\n%s", diff)
		}
		if a, b := alice.balance(t), bob.balance(t); a != 98750 || b != 101250 {
			t.Fatalf("after the retry: alice %d bob %d, want 98750 101250", a, b)
		}

		var got gatewayv1.GetPaymentResponse
		ok(t, c, alice.token, "/remit.gateway.v1.PaymentService/GetPayment", fmt.Sprintf(`{"transactionId":%q}`, txID), &got)
		if diff := cmp.Diff(p, got.GetPayment(), protocmp.Transform()); diff != "" {
			t.Errorf("GetPayment (-MakePayment +GetPayment):\n%s", diff)
		}
		var list gatewayv1.ListPaymentsResponse
		ok(t, c, bob.token, "/remit.gateway.v1.PaymentService/ListPayments", `{"pageSize":10}`, &list)
		if len(list.GetPayments()) != 1 || list.GetPayments()[0].GetTransactionId() != txID {
			t.Errorf("bob's ListPayments = %v, want the one payment %s", &list, txID)
		}

		// A decline: more than alice has.
		status, body := c.post(alice.token, "/remit.gateway.v1.PaymentService/MakePayment", payBody(uuid.NewString(), "bank-b", "bob", 10_000_000))
		if status != http.StatusBadRequest {
			t.Fatalf("overdraft: HTTP %d %s, want 400", status, body)
		}
		var ce connectError
		if err := json.Unmarshal(body, &ce); err != nil || ce.Code != "failed_precondition" {
			t.Fatalf("overdraft error = %s (%v), want code failed_precondition", body, err)
		}
		if reason := errorReason(t, ce); reason != "INSUFFICIENT_FUNDS" {
			t.Errorf("overdraft reason = %q, want INSUFFICIENT_FUNDS (%s)", reason, body)
		}
		if a := alice.balance(t); a != 98750 {
			t.Errorf("after the decline alice has %d, want 98750", a)
		}
	})

	t.Run("gRPC and gRPC-Web", func(t *testing.T) {
		tlsConf := clientTLS(t, dir)
		h2 := serve.NewHTTP2Client(tlsConf)
		h1conf := tlsConf.Clone()
		h1conf.NextProtos = []string{"http/1.1"} // like a browser without h2
		h1 := &http.Client{Transport: &http.Transport{TLSClientConfig: h1conf}}
		base := fmt.Sprintf("https://127.0.0.1:%d", port)
		for name, opts := range map[string][]connect.ClientOption{
			"grpc":     {connect.WithGRPC()},
			"grpc-web": {connect.WithGRPCWeb()},
		} {
			httpClient := h2
			if name == "grpc-web" {
				httpClient = h1
			}
			opts = append(opts, connect.WithInterceptors(bearer(alice.token)))
			payments := gatewayv1connect.NewPaymentServiceClient(httpClient, base, opts...)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			res, err := payments.CheckBalance(ctx, &gatewayv1.CheckBalanceRequest{})
			cancel()
			if err != nil {
				t.Errorf("%s CheckBalance: %v", name, err)
				continue
			}
			if res.GetBalance() != 98750 || res.GetAccount().GetAccountId() != "alice" {
				t.Errorf("%s CheckBalance = %v, want alice with 98750", name, res)
			}
		}
		// Unauthenticated over gRPC is a gRPC status, not an HTTP error.
		payments := gatewayv1connect.NewPaymentServiceClient(h2, base, connect.WithGRPC())
		_, err := payments.CheckBalance(context.Background(), &gatewayv1.CheckBalanceRequest{})
		if connect.CodeOf(err) != connect.CodeUnauthenticated {
			t.Errorf("CheckBalance without a token: %v, want unauthenticated", err)
		}
	})

	t.Run("health", func(t *testing.T) {
		status, body := c.post("", "/grpc.health.v1.Health/Check", `{}`)
		var hr struct {
			Status string `json:"status"`
		}
		_ = json.Unmarshal(body, &hr) // a body that is not JSON leaves Status empty, which fails below
		// connect's grpchealth names the standard SERVING value
		// SERVING_STATUS_SERVING in JSON; both mean serving.
		if status != http.StatusOK || hr.Status != "SERVING" && hr.Status != "SERVING_STATUS_SERVING" {
			t.Errorf("Connect JSON health check: HTTP %d %s", status, body)
		}
		hc := grpchealth.NewClient(serve.NewHTTP2Client(clientTLS(t, dir)), c.base, connect.WithGRPC())
		res, err := hc.Check(context.Background(), &grpchealth.CheckRequest{Service: gatewayv1connect.PaymentServiceName})
		if err != nil || res.Status != grpchealth.StatusServing {
			t.Errorf("gRPC health check of %s: %v, %v", gatewayv1connect.PaymentServiceName, res, err)
		}
	})
	t.Run("reflection", func(t *testing.T) {
		// What `grpcurl -cacert ca.pem 127.0.0.1:PORT list` does.
		rc := grpcreflect.NewClient(serve.NewHTTP2Client(clientTLS(t, dir)), c.base, connect.WithGRPC())
		stream := rc.NewStream(context.Background())
		defer stream.Close() //nolint:errcheck // the ListServices answer below is the result
		names, err := stream.ListServices()
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []protoreflect.FullName{gatewayv1connect.AuthServiceName, gatewayv1connect.PaymentServiceName, grpchealth.HealthV1ServiceName} {
			if !slices.Contains(names, want) {
				t.Errorf("reflection lists %v, without %s", names, want)
			}
		}
		if _, err := stream.FileContainingSymbol(gatewayv1connect.PaymentServiceName); err != nil {
			t.Errorf("reflection cannot describe %s: %v", gatewayv1connect.PaymentServiceName, err)
		}
	})
	t.Run("metrics", func(t *testing.T) {
		// Every process serves its metrics where the banner says, on the
		// ports after the API ports; the payments above moved them.
		if len(up.metrics) != 4 {
			t.Fatalf("banner lists metrics for %v, want all 4 processes:\n%s", up.metrics, banner)
		}
		want := map[string]string{
			"gateway": `remit_rpc_requests_total{code="ok",procedure="/remit.gateway.v1.PaymentService/MakePayment"}`,
			"bank-a":  `remit_rpc_requests_total{code="ok",procedure="/remit.bank.v1.BankService/PrepareTransaction"}`,
			"bank-b":  `remit_rpc_requests_total{code="ok",procedure="/remit.bank.v1.BankService/CommitTransaction"}`,
			"bank-c":  "remit_bank_prepared_transactions 0",
		}
		for i, name := range []string{"gateway", "bank-a", "bank-b", "bank-c"} {
			if url := fmt.Sprintf("http://127.0.0.1:%d/metrics", port+4+i); up.metrics[name] != url {
				t.Errorf("%s metrics at %s, want %s", name, up.metrics[name], url)
			}
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, up.metrics[name], nil)
			if err != nil {
				t.Fatal(err)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("scrape %s: %v", name, err)
			}
			body, err := io.ReadAll(res.Body)
			if cerr := res.Body.Close(); err == nil {
				err = cerr
			}
			if err != nil || res.StatusCode != http.StatusOK || !strings.Contains(string(body), want[name]) {
				t.Errorf("scrape %s: %s %v, want %s in:\n%.3000s", name, res.Status, err, want[name], body)
			}
		}
	})
	if t.Failed() {
		return
	}

	// kill -9 of up alone: the kernel kills its children (Pdeathsig).
	firstPIDs := up.pids
	if err := up.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if code := up.waitExit(); code != -int(syscall.SIGKILL) {
		t.Errorf("up exit = %d, want killed by SIGKILL", code)
	}
	waitGone(t, firstPIDs, port)

	// Up again on the same directory: no new init, same data.
	up = startUp(t, dir, port)
	if strings.Contains(up.output(), "Initialised") {
		t.Errorf("second up initialised again:\n%s", up.output())
	}
	c = newJSONClient(t, dir, port)
	alice, bob = login(t, c, "alice", pw["alice"]), login(t, c, "bob", pw["bob"])
	if a, b := alice.balance(t), bob.balance(t); a != 98750 || b != 101250 {
		t.Errorf("after restart: alice %d bob %d, want 98750 101250", a, b)
	}

	// SIGTERM (like Ctrl-C) stops everything cleanly with status 0.
	pids := up.pids
	if err := up.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := up.waitExit(); code != 0 {
		t.Errorf("up exit after SIGTERM = %d, want 0", code)
	}
	waitGone(t, pids, port)
}

// TestUpChildDies checks that up notices a child that exits on its own,
// stops the others and fails.
func TestUpChildDies(t *testing.T) {
	skipIfShort(t)
	dir := filepath.Join(t.TempDir(), "net")
	port := freeBasePort(t)
	up := startUp(t, dir, port)
	if err := syscall.Kill(up.pids["bank-b"], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if code := up.waitExit(); code != 1 {
		t.Errorf("up exit after bank-b died = %d, want 1", code)
	}
	if !strings.Contains(up.logs(), "bank-b exited unexpectedly") {
		t.Errorf("up did not report bank-b's exit:\n%s", up.logs())
	}
	waitGone(t, up.pids, port)
}

// errorReason returns the ErrorInfo reason of a Connect JSON error.
func errorReason(t *testing.T, ce connectError) string {
	t.Helper()
	for _, d := range ce.Details {
		if d.Type != "google.rpc.ErrorInfo" {
			continue
		}
		raw, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(d.Value, "="))
		if err != nil {
			t.Fatalf("error detail value %q: %v", d.Value, err)
		}
		var info errdetails.ErrorInfo
		if err := proto.Unmarshal(raw, &info); err != nil {
			t.Fatal(err)
		}
		return info.GetReason()
	}
	return ""
}

// bearer sends token as the Authorization header of every request.
func bearer(token string) connect.UnaryInterceptorFunc {
	return func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			req.Header().Set("Authorization", "Bearer "+token)
			return next(ctx, req)
		}
	}
}
