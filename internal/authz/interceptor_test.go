package authz_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/time/rate"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/emptypb"

	bankv1 "github.com/remitpay/remit/gen/remit/bank/v1"
	"github.com/remitpay/remit/gen/remit/bank/v1/bankv1connect"
	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
	"github.com/remitpay/remit/gen/remit/gateway/v1/gatewayv1connect"
	"github.com/remitpay/remit/internal/audit"
	"github.com/remitpay/remit/internal/authz"
	"github.com/remitpay/remit/internal/logging"
	"github.com/remitpay/remit/internal/logging/logtest"
	"github.com/remitpay/remit/internal/pki"
	"github.com/remitpay/remit/internal/rpcerr"
)

// Tokens known to the fake verifier.
const (
	tokenCustomer = "rmt_customer-token"
	tokenAdmin    = "rmt_admin-token"
	tokenAuditor  = "rmt_auditor-token"
	tokenBroken   = "rmt_store-is-down"    // the verifier fails
	tokenEvil     = "rmt_bank-masquerader" // the verifier returns a bank principal
)

type fakeVerifier struct{}

func (fakeVerifier) Verify(_ context.Context, token string) (*authz.Principal, error) {
	switch token {
	case tokenCustomer:
		return &authz.Principal{Kind: authz.KindClient, ClientID: "alice", Roles: []authz.Role{authz.RoleCustomer},
			Account: &authz.Account{Bank: "bank-a", ID: "alice"}, SessionID: "sess-alice"}, nil
	case tokenAdmin:
		return &authz.Principal{Kind: authz.KindClient, ClientID: "root", Roles: []authz.Role{authz.RoleAdmin}, SessionID: "sess-root"}, nil
	case tokenAuditor:
		return &authz.Principal{Kind: authz.KindClient, ClientID: "eve", Roles: []authz.Role{authz.RoleAuditor}, SessionID: "sess-eve"}, nil
	case tokenBroken:
		return nil, errors.New("database is locked")
	case tokenEvil:
		return &authz.Principal{Kind: authz.KindBank, BankName: "bank-a", Roles: []authz.Role{authz.RoleBank}}, nil
	}
	return nil, fmt.Errorf("%w: unknown token", authz.ErrUnauthenticated)
}

type recorder struct {
	mu     sync.Mutex
	events []string
	attrs  []map[string]string
}

func (r *recorder) Record(_ context.Context, event string, attrs ...slog.Attr) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := map[string]string{}
	for _, a := range attrs {
		m[a.Key] = a.Value.String()
	}
	r.events = append(r.events, event)
	r.attrs = append(r.attrs, m)
}

// pipeListener is an in-memory [net.Listener] for tests inside a synctest
// bubble, where real sockets are not allowed: dial hands one end of a
// [net.Pipe] to Accept. Every connection gets its own loopback address and
// port, as TCP connections from this machine would, so per-source-address
// rate limits see the same keys as over TCP.
type pipeListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once

	mu   sync.Mutex
	port int
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), done: make(chan struct{}), port: 40000}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *pipeListener) Addr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 443}
}

// dial is an [http.Transport] DialContext that connects to the listener.
func (l *pipeListener) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	l.mu.Lock()
	l.port++
	client := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: l.port}
	l.mu.Unlock()
	c, s := net.Pipe()
	select {
	case l.conns <- addrConn{Conn: s, local: l.Addr(), remote: client}:
		return addrConn{Conn: c, local: client, remote: l.Addr()}, nil
	case <-l.done:
		return nil, net.ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// addrConn is a [net.Pipe] end with TCP-like addresses.
type addrConn struct {
	net.Conn

	local, remote net.Addr
}

func (c addrConn) LocalAddr() net.Addr  { return c.local }
func (c addrConn) RemoteAddr() net.Addr { return c.remote }

// principalHeader is set by the test handlers to describe the principal
// they saw in their context.
const principalHeader = "Test-Principal"

func describe(ctx context.Context) string {
	p, ok := authz.PrincipalFrom(ctx)
	if !ok {
		return "anonymous"
	}
	return fmt.Sprintf("%s:%s:%s:%s", p.Kind, p.Name(), p.RoleString(), p.SessionID)
}

func setPrincipalHeader(ctx context.Context) {
	if ci, ok := connect.CallInfoForHandlerContext(ctx); ok {
		ci.ResponseHeader().Set(principalHeader, describe(ctx))
	}
}

// Every service is mounted; methods not overridden here answer
// unimplemented, which proves the call got past the interceptor.
type handlers struct {
	gatewayv1connect.UnimplementedAuthServiceHandler
	gatewayv1connect.UnimplementedPaymentServiceHandler
	gatewayv1connect.UnimplementedAdminServiceHandler
	gatewayv1connect.UnimplementedCoordinatorServiceHandler
}

// bankHandlers is separate because BankService and AdminService both have
// an UpdateBalance method.
type bankHandlers struct {
	bankv1connect.UnimplementedBankServiceHandler
}

func (handlers) Login(ctx context.Context, _ *gatewayv1.LoginRequest) (*gatewayv1.LoginResponse, error) {
	setPrincipalHeader(ctx)
	return &gatewayv1.LoginResponse{}, nil
}

func (handlers) CheckBalance(ctx context.Context, _ *gatewayv1.CheckBalanceRequest) (*gatewayv1.CheckBalanceResponse, error) {
	setPrincipalHeader(ctx)
	return &gatewayv1.CheckBalanceResponse{}, nil
}

func (handlers) WatchPayments(ctx context.Context, _ *gatewayv1.WatchPaymentsRequest, s *connect.ServerStream[gatewayv1.WatchPaymentsResponse]) error {
	s.ResponseHeader().Set(principalHeader, describe(ctx))
	return s.Send(&gatewayv1.WatchPaymentsResponse{})
}

func (handlers) RegisterBank(ctx context.Context, _ *gatewayv1.RegisterBankRequest) (*gatewayv1.RegisterBankResponse, error) {
	setPrincipalHeader(ctx)
	return &gatewayv1.RegisterBankResponse{}, nil
}

func (bankHandlers) GetBalance(ctx context.Context, _ *bankv1.GetBalanceRequest) (*bankv1.GetBalanceResponse, error) {
	setPrincipalHeader(ctx)
	return &bankv1.GetBalanceResponse{}, nil
}

type fixture struct {
	url    string
	certs  *pki.Layout
	audit  *recorder
	logs   *logtest.Buffer
	noTLSM bool
	// pipe, if set, serves over an in-memory network instead of TCP, for
	// tests inside a synctest bubble.
	pipe *pipeListener
}

type fixtureOption func(*authz.Config, *fixture)

// newFixture serves every Remit service over HTTPS (HTTP/2, TLS 1.3, client
// certificates verified if given) behind the log and authz interceptors.
func newFixture(t *testing.T, opts ...fixtureOption) *fixture {
	t.Helper()
	certs, err := pki.Generate(t.TempDir(), pki.Options{Banks: []string{"bank-a"}})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{certs: certs, audit: &recorder{}, logs: &logtest.Buffer{}}
	cfg := authz.Config{Verifier: fakeVerifier{}, Audit: f.audit, Rate: rate.Inf}
	for _, o := range opts {
		o(&cfg, f)
	}
	logger := slog.New(slog.NewJSONHandler(f.logs, nil))
	hopts := connect.WithInterceptors(logging.NewLogInterceptor(logger), authz.NewInterceptor(cfg))
	var h handlers
	mux := http.NewServeMux()
	mux.Handle(gatewayv1connect.NewAuthServiceHandler(h, hopts))
	mux.Handle(gatewayv1connect.NewPaymentServiceHandler(h, hopts))
	mux.Handle(gatewayv1connect.NewAdminServiceHandler(h, hopts))
	mux.Handle(gatewayv1connect.NewCoordinatorServiceHandler(h, hopts))
	mux.Handle(bankv1connect.NewBankServiceHandler(bankHandlers{}, hopts))

	certFile, keyFile := certs.Server(pki.GatewayName)
	tlsConf, err := pki.ServerConfig(certFile, keyFile, certs.CA, tls.VerifyClientCertIfGiven)
	if err != nil {
		t.Fatal(err)
	}
	var handler http.Handler = mux
	if !f.noTLSM {
		handler = authz.TLSStateMiddleware(mux)
	}
	srv := httptest.NewUnstartedServer(handler)
	srv.EnableHTTP2 = true
	srv.TLS = tlsConf
	if f.pipe != nil {
		if err := srv.Listener.Close(); err != nil {
			t.Fatal(err)
		}
		srv.Listener = f.pipe
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	f.url = srv.URL
	return f
}

// cred is one way of calling: a bearer token, a client certificate, both
// or neither.
type cred struct {
	name  string
	token string
	cert  string // principal name of the client certificate
	// as is the principal name in wantAllowed this credential should be
	// treated as; "anonymous" if it must not authenticate.
	as string
}

var creds = []cred{
	{name: "no credentials", as: "anonymous"},
	{name: "forged token", token: "rmt_forged", as: "anonymous"},
	{name: "customer", token: tokenCustomer, as: "customer"},
	{name: "admin", token: tokenAdmin, as: "admin"},
	{name: "auditor", token: tokenAuditor, as: "auditor"},
	{name: "bank cert", cert: "bank-a", as: "bank"},
	{name: "gateway cert", cert: pki.GatewayName, as: "gateway"},
	{name: "bank cert and token", cert: "bank-a", token: tokenCustomer, as: "anonymous"},
	{name: "token claiming a bank", token: tokenEvil, as: "anonymous"},
}

func credNamed(name string) cred {
	for _, c := range creds {
		if c.name == name {
			return c
		}
	}
	panic("no credential " + name)
}

// headerTransport adds request headers to every request, unary or stream.
type headerTransport struct {
	base   http.RoundTripper
	header http.Header
}

func (h headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, vs := range h.header {
		for _, v := range vs {
			r.Header.Add(k, v)
		}
	}
	return h.base.RoundTrip(r)
}

// client returns an HTTP/2 client that trusts the test CA, presents the
// client certificate of principal cert (if not empty) and sends header.
func (f *fixture) client(t *testing.T, cert string, header http.Header) *http.Client {
	t.Helper()
	var certFile, keyFile string
	if cert != "" {
		certFile, keyFile = f.certs.Client(cert)
	}
	conf, err := pki.ClientConfig(f.certs.CA, certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	protocols := new(http.Protocols)
	protocols.SetHTTP2(true)
	tr := &http.Transport{TLSClientConfig: conf, Protocols: protocols}
	if f.pipe != nil {
		tr.DialContext = f.pipe.dial
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: headerTransport{base: tr, header: header}}
}

func (f *fixture) credClient(t *testing.T, c cred) *http.Client {
	t.Helper()
	h := http.Header{}
	if c.token != "" {
		h.Set("Authorization", "Bearer "+c.token)
	}
	return f.client(t, c.cert, h)
}

var protocols = []struct {
	name string
	opts []connect.ClientOption
}{
	{"connect", nil},
	{"grpc", []connect.ClientOption{connect.WithGRPC()}},
	{"grpcweb", []connect.ClientOption{connect.WithGRPCWeb()}},
}

func isServerStream(t *testing.T, procedure string) bool {
	t.Helper()
	name := protoreflect.FullName(strings.ReplaceAll(strings.TrimPrefix(procedure, "/"), "/", "."))
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(name)
	if err != nil {
		t.Fatalf("%s: %v", procedure, err)
	}
	return d.(protoreflect.MethodDescriptor).IsStreamingServer()
}

// call invokes any unary or server-streaming procedure with an empty
// request (an empty message decodes as any request type) and returns the
// response header and error.
func call(ctx context.Context, t *testing.T, hc *http.Client, url, procedure string, opts ...connect.ClientOption) (http.Header, error) {
	t.Helper()
	c := connect.NewClient[emptypb.Empty, emptypb.Empty](hc, url+procedure, opts...)
	if isServerStream(t, procedure) {
		s, err := c.CallServerStream(ctx, connect.NewRequest(&emptypb.Empty{}))
		if err != nil {
			return nil, err
		}
		for s.Receive() {
		}
		err = s.Err()
		if cerr := s.Close(); err == nil {
			err = cerr
		}
		return s.ResponseHeader(), err
	}
	res, err := c.CallUnary(ctx, connect.NewRequest(&emptypb.Empty{}))
	if err != nil {
		return nil, err
	}
	return res.Header(), nil
}

func checkDenied(t *testing.T, err error, code connect.Code, reason string) {
	t.Helper()
	if got := connect.CodeOf(err); got != code {
		t.Fatalf("got %v (%v), want %v", got, err, code)
	}
	if got := rpcerr.Reason(err); got != reason {
		t.Errorf("reason %q, want %q", got, reason)
	}
	if info := rpcerr.Info(err); info == nil || info.GetDomain() != rpcerr.Domain {
		t.Errorf("ErrorInfo %v, want domain %s", info, rpcerr.Domain)
	}
}

// TestInterceptorMatrix calls every procedure with every kind of credential
// over every protocol and checks the outcome against wantAllowed.
func TestInterceptorMatrix(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	procs := slices.Sorted(func(yield func(string) bool) {
		for p := range wantAllowed {
			if !yield(p) {
				return
			}
		}
	})
	for _, c := range creds {
		hc := f.credClient(t, c)
		for _, proto := range protocols {
			for _, proc := range procs {
				t.Run(c.name+"/"+proto.name+proc, func(t *testing.T) {
					_, err := call(ctx, t, hc, f.url, proc, proto.opts...)
					switch {
					case slices.Contains(wantAllowed[proc], c.as):
						if err != nil && connect.CodeOf(err) != connect.CodeUnimplemented {
							t.Fatalf("allowed call failed: %v", err)
						}
					case c.as == "anonymous":
						checkDenied(t, err, connect.CodeUnauthenticated, authz.ReasonUnauthenticated)
					default:
						checkDenied(t, err, connect.CodePermissionDenied, authz.ReasonPermissionDenied)
					}
				})
			}
		}
	}
}

func TestHandlerSeesPrincipal(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	tests := []struct {
		cred cred
		proc string
		want string
	}{
		{credNamed("customer"), gatewayv1connect.PaymentServiceCheckBalanceProcedure, "client:alice:customer:sess-alice"},
		{credNamed("auditor"), gatewayv1connect.PaymentServiceWatchPaymentsProcedure, "client:eve:auditor:sess-eve"},
		{credNamed("bank cert"), gatewayv1connect.CoordinatorServiceRegisterBankProcedure, "bank:bank-a:bank:"},
		{credNamed("gateway cert"), bankv1connect.BankServiceGetBalanceProcedure, "gateway:gateway:gateway:"},
		// Public: credentials are optional, and a bad one is ignored.
		{credNamed("no credentials"), gatewayv1connect.AuthServiceLoginProcedure, "anonymous"},
		{credNamed("forged token"), gatewayv1connect.AuthServiceLoginProcedure, "anonymous"},
		{credNamed("admin"), gatewayv1connect.AuthServiceLoginProcedure, "client:root:admin:sess-root"},
	}
	for _, tt := range tests {
		t.Run(tt.cred.name+tt.proc, func(t *testing.T) {
			h, err := call(ctx, t, f.credClient(t, tt.cred), f.url, tt.proc)
			if err != nil {
				t.Fatal(err)
			}
			if got := h.Get(principalHeader); got != tt.want {
				t.Errorf("handler saw %q, want %q", got, tt.want)
			}
		})
	}
}

func TestUnauthenticated(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	tests := []struct {
		name   string
		header http.Header
	}{
		{"no header", http.Header{}},
		{"unknown token", http.Header{"Authorization": {"Bearer rmt_unknown"}}},
		{"basic scheme", http.Header{"Authorization": {"Basic " + tokenCustomer}}},
		{"no scheme", http.Header{"Authorization": {tokenCustomer}}},
		{"empty bearer", http.Header{"Authorization": {"Bearer "}}},
		{"two headers", http.Header{"Authorization": {"Bearer " + tokenCustomer, "Bearer " + tokenCustomer}}},
		{"overlong token", http.Header{"Authorization": {"Bearer " + strings.Repeat("x", authz.MaxTokenLen+1)}}},
	}
	var messages []string
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := call(ctx, t, f.client(t, "", tt.header), f.url, gatewayv1connect.PaymentServiceCheckBalanceProcedure)
			checkDenied(t, err, connect.CodeUnauthenticated, authz.ReasonUnauthenticated)
			if cerr, ok := errors.AsType[*connect.Error](err); ok {
				messages = append(messages, cerr.Message())
			}
		})
	}
	// One message for every cause, and it tells the user what to do.
	for _, m := range messages {
		if m != messages[0] || !strings.Contains(m, "log in again") {
			t.Errorf("messages differ or lack advice: %q", messages)
			break
		}
	}
	// The lower-case scheme is accepted (RFC 9110: case-insensitive).
	h := http.Header{"Authorization": {"bearer " + tokenCustomer}}
	if _, err := call(ctx, t, f.client(t, "", h), f.url, gatewayv1connect.PaymentServiceCheckBalanceProcedure); err != nil {
		t.Errorf("lower-case scheme: %v", err)
	}
}

func TestVerifierFailureIsInternal(t *testing.T) {
	f := newFixture(t)
	h := http.Header{"Authorization": {"Bearer " + tokenBroken}}
	_, err := call(t.Context(), t, f.client(t, "", h), f.url, gatewayv1connect.PaymentServiceCheckBalanceProcedure)
	if connect.CodeOf(err) != connect.CodeInternal {
		t.Fatalf("got %v, want internal", err)
	}
	if strings.Contains(err.Error(), "database") {
		t.Errorf("internal cause leaked to the client: %v", err)
	}
}

func TestCertificatesNeedTheMiddleware(t *testing.T) {
	f := newFixture(t, func(_ *authz.Config, f *fixture) { f.noTLSM = true })
	_, err := call(t.Context(), t, f.credClient(t, credNamed("bank cert")), f.url, gatewayv1connect.CoordinatorServiceRegisterBankProcedure)
	checkDenied(t, err, connect.CodeUnauthenticated, authz.ReasonUnauthenticated)
}

func TestDenialsAreAudited(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	_, err := call(ctx, t, f.credClient(t, credNamed("customer")), f.url, gatewayv1connect.AdminServiceUpdateBalanceProcedure)
	checkDenied(t, err, connect.CodePermissionDenied, authz.ReasonPermissionDenied)
	// Authentication failures are not authorization denials.
	_, err = call(ctx, t, f.credClient(t, credNamed("forged token")), f.url, gatewayv1connect.AdminServiceUpdateBalanceProcedure)
	checkDenied(t, err, connect.CodeUnauthenticated, authz.ReasonUnauthenticated)

	f.audit.mu.Lock()
	defer f.audit.mu.Unlock()
	if !slices.Equal(f.audit.events, []string{audit.EventAuthzDenied}) {
		t.Fatalf("audit events %v, want one %s", f.audit.events, audit.EventAuthzDenied)
	}
	got := f.audit.attrs[0]
	want := map[string]string{
		logging.KeyProcedure: gatewayv1connect.AdminServiceUpdateBalanceProcedure,
		authz.KeyPrincipal:   "alice",
		authz.KeyRole:        "customer",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("audit %s = %q, want %q", k, got[k], v)
		}
	}
	if host, _, err := net.SplitHostPort(got[logging.KeyPeer]); err != nil || host != "127.0.0.1" {
		t.Errorf("audit peer = %q", got[logging.KeyPeer])
	}
}

func TestLogLineHasPrincipalNotToken(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	if _, err := call(ctx, t, f.credClient(t, credNamed("customer")), f.url, gatewayv1connect.PaymentServiceCheckBalanceProcedure); err != nil {
		t.Fatal(err)
	}
	if _, err := call(ctx, t, f.credClient(t, credNamed("bank cert")), f.url, gatewayv1connect.CoordinatorServiceRegisterBankProcedure); err != nil {
		t.Fatal(err)
	}
	logs := f.logs.String()
	if strings.Contains(logs, tokenCustomer) || strings.Contains(logs, "Bearer") {
		t.Errorf("log contains a token:\n%s", logs)
	}
	var lines []map[string]any
	for line := range strings.Lines(logs) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("bad log line %q: %v", line, err)
		}
		lines = append(lines, m)
	}
	if len(lines) != 2 {
		t.Fatalf("got %d log lines, want 2:\n%s", len(lines), logs)
	}
	wants := []map[string]string{
		{authz.KeyPrincipal: "alice", authz.KeyPrincipalKind: "client", authz.KeyRole: "customer", authz.KeySessionID: "sess-alice"},
		{authz.KeyPrincipal: "bank-a", authz.KeyPrincipalKind: "bank", authz.KeyRole: "bank"},
	}
	for i, want := range wants {
		for k, v := range want {
			if fmt.Sprint(lines[i][k]) != v {
				t.Errorf("line %d: %s = %v, want %s", i, k, lines[i][k], v)
			}
		}
	}
}

// TestRateLimit runs in a synctest bubble, over an in-memory network, so
// that refilling the bucket takes a second of fake time.
func TestRateLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t, func(c *authz.Config, f *fixture) {
			c.Rate, c.Burst = 1, 2
			f.pipe = newPipeListener()
		})
		ctx := t.Context()
		alice := f.credClient(t, credNamed("customer"))
		root := f.credClient(t, credNamed("admin"))
		anon := f.credClient(t, credNamed("no credentials"))
		balance := gatewayv1connect.PaymentServiceCheckBalanceProcedure
		login := gatewayv1connect.AuthServiceLoginProcedure

		for i := range 2 {
			if _, err := call(ctx, t, alice, f.url, balance); err != nil {
				t.Fatalf("call %d within the burst: %v", i, err)
			}
		}
		_, err := call(ctx, t, alice, f.url, balance)
		checkDenied(t, err, connect.CodeResourceExhausted, authz.ReasonRateLimited)
		// No time passes in the bubble: the bucket refills in exactly 1s.
		retry, ok := authz.RetryAfter(err)
		if !ok || retry != time.Second {
			t.Errorf("retry hint %v, %v; want 1s", retry, ok)
		}
		var cerr *connect.Error
		if errors.As(err, &cerr) && cerr.Meta().Get("Retry-After") != "1" {
			t.Errorf("Retry-After header %q, want 1", cerr.Meta().Get("Retry-After"))
		}

		// Another principal has its own bucket.
		if _, err := call(ctx, t, root, f.url, balance); err != nil {
			t.Errorf("admin limited by alice's bucket: %v", err)
		}
		// Anonymous callers are limited per source address.
		for range 2 {
			if _, err := call(ctx, t, anon, f.url, login); err != nil {
				t.Fatal(err)
			}
		}
		_, err = call(ctx, t, anon, f.url, login)
		checkDenied(t, err, connect.CodeResourceExhausted, authz.ReasonRateLimited)

		time.Sleep(time.Second - time.Millisecond)
		_, err = call(ctx, t, alice, f.url, balance)
		checkDenied(t, err, connect.CodeResourceExhausted, authz.ReasonRateLimited)
		time.Sleep(time.Millisecond)
		if _, err := call(ctx, t, alice, f.url, balance); err != nil {
			t.Errorf("after waiting the retry hint: %v", err)
		}
	})
}

func TestRetryAfter(t *testing.T) {
	tests := []struct {
		err    error
		want   time.Duration
		wantOK bool
	}{
		{authz.RateLimited(1500 * time.Millisecond), 1500 * time.Millisecond, true},
		{authz.ResourceExhausted("LOGIN_LOCKED_OUT", "locked", time.Minute), time.Minute, true},
		{authz.RateLimited(0), time.Millisecond, true},
		{authz.PermissionDenied(), 0, false},
		{errors.New("plain"), 0, false},
	}
	for _, tt := range tests {
		got, ok := authz.RetryAfter(tt.err)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("RetryAfter(%v) = %v, %v; want %v, %v", tt.err, got, ok, tt.want, tt.wantOK)
		}
	}
}
