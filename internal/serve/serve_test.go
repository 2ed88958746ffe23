package serve_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"
	"connectrpc.com/grpcreflect"
	"golang.org/x/net/http2"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/remitpay/remit/internal/logging"
	"github.com/remitpay/remit/internal/logging/logtest"
	"github.com/remitpay/remit/internal/rpcerr"
	"github.com/remitpay/remit/internal/serve"
)

const (
	secretToken    = "secret-token-xyz"
	testService    = "remit.test.v1.TestService"
	checkProcedure = "/" + grpchealth.HealthV1ServiceName + "/Check"
)

// testPKI is a self-signed server certificate for 127.0.0.1, generated per
// test run (internal/pki is not a dependency of this package).
type testPKI struct {
	serverTLS *tls.Config
	clientTLS *tls.Config
}

var (
	pkiOnce sync.Once
	pki     testPKI
)

func newPKI(t *testing.T) testPKI {
	t.Helper()
	pkiOnce.Do(func() {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber:          big.NewInt(1),
			Subject:               pkix.Name{CommonName: "remit test server"},
			NotBefore:             time.Now().Add(-time.Hour),
			NotAfter:              time.Now().Add(time.Hour),
			KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
			ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			BasicConstraintsValid: true,
			IsCA:                  true,
			IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
			DNSNames:              []string{"localhost"},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			panic(err)
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			panic(err)
		}
		pool := x509.NewCertPool()
		pool.AddCert(cert)
		pki = testPKI{
			serverTLS: &tls.Config{
				MinVersion:   tls.VersionTLS13,
				Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}},
			},
			clientTLS: &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: pool},
		}
	})
	return pki
}

// server is a running serve.Serve instance on 127.0.0.1.
type server struct {
	url     string
	addr    string
	logs    *logtest.Buffer
	logger  *slog.Logger
	checker *grpchealth.StaticChecker
	client  *http.Client
	cancel  context.CancelFunc
	done    chan error

	stopOnce sync.Once
	result   error
}

// stop cancels the server's context and returns Serve's result; it may be
// called more than once.
func (s *server) stop(t *testing.T) error {
	t.Helper()
	// Idle HTTP/2 clients otherwise hold the connection until the server's
	// GOAWAY grace period (1s) expires.
	s.client.CloseIdleConnections()
	s.cancel()
	s.stopOnce.Do(func() {
		select {
		case s.result = <-s.done:
		case <-time.After(15 * time.Second):
			s.result = errors.New("Serve did not return after ctx cancel")
			t.Error(s.result)
		}
	})
	return s.result
}

type options struct {
	checker   grpchealth.Checker // replaces the static checker's handler if set
	extra     []connect.Interceptor
	configure func(*serve.Config)
	// bareMount mounts health and reflection without handler options, as
	// the gateway and the banks do.
	bareMount bool
}

func startServer(t *testing.T, opts options) *server {
	t.Helper()
	p := newPKI(t)
	logs := &logtest.Buffer{}
	logger := logging.New(logs, logging.FormatJSON, slog.LevelDebug)
	handlerOpts := serve.HandlerOptions(logger, opts.extra...)

	mux := http.NewServeMux()
	var checker *grpchealth.StaticChecker
	switch {
	case opts.checker != nil:
		mux.Handle(grpchealth.NewHandler(opts.checker, handlerOpts...))
	case opts.bareMount:
		checker = serve.Mount(mux, []string{testService})
	default:
		checker = serve.Mount(mux, []string{testService}, handlerOpts...)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := serve.Config{TLS: p.serverTLS, Handler: mux, Logger: logger}
	if opts.configure != nil {
		opts.configure(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve.Serve(ctx, ln, cfg) }()
	s := &server{
		url:     "https://" + ln.Addr().String(),
		addr:    ln.Addr().String(),
		logs:    logs,
		logger:  logger,
		checker: checker,
		client:  serve.NewHTTP2Client(p.clientTLS),
		cancel:  cancel,
		done:    done,
	}
	t.Cleanup(func() { _ = s.stop(t) })
	return s
}

var protocols = []struct {
	name string
	opts []connect.ClientOption
}{
	{connect.ProtocolConnect, nil},
	{connect.ProtocolGRPC, []connect.ClientOption{connect.WithGRPC()}},
	{connect.ProtocolGRPCWeb, []connect.ClientOption{connect.WithGRPCWeb()}},
}

func TestHealthOverAllProtocols(t *testing.T) {
	s := startServer(t, options{})
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			client := grpchealth.NewClient(s.client, s.url, p.opts...)
			for _, svc := range []string{"", testService} {
				res, err := client.Check(t.Context(), &grpchealth.CheckRequest{Service: svc})
				if err != nil {
					t.Fatalf("Check(%q): %v", svc, err)
				}
				if res.Status != grpchealth.StatusServing {
					t.Fatalf("Check(%q) = %v, want serving", svc, res.Status)
				}
			}
			_, err := client.Check(t.Context(), &grpchealth.CheckRequest{Service: "unknown.Service"})
			if connect.CodeOf(err) != connect.CodeNotFound {
				t.Fatalf("unknown service: %v, want not_found", err)
			}
		})
	}

	// The returned checker controls what clients see.
	s.checker.SetStatus(testService, grpchealth.StatusNotServing)
	res, err := grpchealth.NewClient(s.client, s.url, connect.WithGRPC()).Check(t.Context(), &grpchealth.CheckRequest{Service: testService})
	if err != nil || res.Status != grpchealth.StatusNotServing {
		t.Fatalf("after SetStatus: %v, %v", res, err)
	}

	// Every RPC above was logged once, with its protocol.
	lines := s.logs.WithMsg(t, logging.MsgRPC)
	if want := len(protocols)*3 + 1; len(lines) != want {
		t.Fatalf("got %d RPC lines, want %d:\n%s", len(lines), want, s.logs)
	}
	for _, p := range protocols {
		if !slices.ContainsFunc(lines, func(m map[string]any) bool { return m[logging.KeyProtocol] == p.name }) {
			t.Errorf("no RPC line for protocol %s", p.name)
		}
	}
	if got := s.logs.WithMsg(t, "listening"); len(got) != 1 || got[0]["addr"] != s.addr {
		t.Errorf("listening line = %v, want addr %s", got, s.addr)
	}
}

func TestServesHTTP2OverTLS13(t *testing.T) {
	s := startServer(t, options{})
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, s.url+"/nothing-here", nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	if res.ProtoMajor != 2 {
		t.Errorf("protocol = %s, want HTTP/2", res.Proto)
	}
	if res.TLS == nil || res.TLS.Version != tls.VersionTLS13 {
		t.Errorf("TLS state = %+v, want TLS 1.3", res.TLS)
	}

	// A client limited to TLS 1.2 cannot connect at all.
	tls12 := newPKI(t).clientTLS.Clone()
	tls12.MinVersion, tls12.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
	conn, err := tls.Dial("tcp", s.addr, tls12)
	if err == nil {
		err = conn.Handshake()
		_ = conn.Close()
	}
	if err == nil {
		t.Fatal("TLS 1.2 handshake succeeded")
	}
}

// rewriteTransport sends reflection v1 requests to the v1alpha service, to
// check that both are mounted.
type rewriteTransport struct{ base http.RoundTripper }

func (r rewriteTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.URL.Path = strings.Replace(req.URL.Path, grpcreflect.ReflectV1ServiceName, grpcreflect.ReflectV1AlphaServiceName, 1)
	return r.base.RoundTrip(req)
}

func TestReflection(t *testing.T) {
	s := startServer(t, options{})
	for name, httpClient := range map[string]*http.Client{
		"v1":      s.client,
		"v1alpha": {Transport: rewriteTransport{base: s.client.Transport}},
	} {
		t.Run(name, func(t *testing.T) {
			stream := grpcreflect.NewClient(httpClient, s.url, connect.WithGRPC()).NewStream(t.Context())
			defer func() { _, _ = stream.Close() }()
			names, err := stream.ListServices()
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{testService, grpchealth.HealthV1ServiceName} {
				if !slices.ContainsFunc(names, func(n protoreflect.FullName) bool { return string(n) == want }) {
					t.Errorf("ListServices = %v, missing %s", names, want)
				}
			}
			// The health service's descriptor is linked in, so it resolves.
			if _, err := stream.FileContainingSymbol(grpchealth.HealthV1ServiceName); err != nil {
				t.Errorf("FileContainingSymbol(health): %v", err)
			}
		})
	}
}

func TestServeRefusesInsecureConfig(t *testing.T) {
	p := newPKI(t)
	tls12 := p.serverTLS.Clone()
	tls12.MinVersion = tls.VersionTLS12
	defaultMin := p.serverTLS.Clone()
	defaultMin.MinVersion = 0
	noCert := &tls.Config{MinVersion: tls.VersionTLS13}
	handler := http.NotFoundHandler()

	tests := []struct {
		name string
		cfg  serve.Config
		want error
	}{
		{"nil TLS", serve.Config{Handler: handler}, serve.ErrNoTLS},
		{"TLS 1.2 allowed", serve.Config{TLS: tls12, Handler: handler}, serve.ErrTLSVersion},
		{"default MinVersion", serve.Config{TLS: defaultMin, Handler: handler}, serve.ErrTLSVersion},
		{"no certificate", serve.Config{TLS: noCert, Handler: handler}, serve.ErrNoCertificate},
		{"nil handler", serve.Config{TLS: p.serverTLS}, serve.ErrNoHandler},
		{"nil logger", serve.Config{TLS: p.serverTLS, Handler: handler}, serve.ErrNoLogger},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			err = serve.Serve(t.Context(), ln, tt.cfg)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Serve = %v, want %v", err, tt.want)
			}
			if _, err := ln.Accept(); err == nil {
				t.Fatal("listener still open after refusal")
			}

			// Run refuses before listening: the address stays free.
			addr := ln.Addr().String()
			cfg := tt.cfg
			cfg.Addr = addr
			if err := serve.Run(t.Context(), cfg); !errors.Is(err, tt.want) {
				t.Fatalf("Run = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestRunListensOnAddr(t *testing.T) {
	p := newPKI(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()

	mux := http.NewServeMux()
	serve.Mount(mux, nil)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- serve.Run(ctx, serve.Config{Addr: addr, TLS: p.serverTLS, Handler: mux, Logger: slog.New(slog.DiscardHandler)})
	}()
	httpClient := serve.NewHTTP2Client(p.clientTLS)
	client := grpchealth.NewClient(httpClient, "https://"+addr, connect.WithGRPC())
	var res *grpchealth.CheckResponse
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		res, err = client.Check(t.Context(), &grpchealth.CheckRequest{})
		if err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil || res.Status != grpchealth.StatusServing {
		t.Fatalf("Check via Run: %v, %v", res, err)
	}
	httpClient.CloseIdleConnections()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
}

// slowChecker answers Check after a delay, to have an RPC in flight during
// shutdown.
type slowChecker struct {
	started chan struct{}
	delay   time.Duration
}

func (c *slowChecker) Check(ctx context.Context, _ *grpchealth.CheckRequest) (*grpchealth.CheckResponse, error) {
	close(c.started)
	select {
	case <-time.After(c.delay):
		return &grpchealth.CheckResponse{Status: grpchealth.StatusServing}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func TestGracefulShutdownFinishesInFlightRPCs(t *testing.T) {
	checker := &slowChecker{started: make(chan struct{}), delay: 300 * time.Millisecond}
	s := startServer(t, options{checker: checker})
	client := grpchealth.NewClient(s.client, s.url, connect.WithGRPC())

	rpcErr := make(chan error, 1)
	go func() {
		_, err := client.Check(context.Background(), &grpchealth.CheckRequest{})
		rpcErr <- err
	}()
	<-checker.started
	if err := s.stop(t); err != nil {
		t.Fatalf("Serve after graceful shutdown = %v, want nil", err)
	}
	if err := <-rpcErr; err != nil {
		t.Fatalf("in-flight RPC failed during graceful shutdown: %v", err)
	}
	if len(s.logs.WithMsg(t, "stopped")) != 1 {
		t.Errorf("no stopped line:\n%s", s.logs)
	}

	// The port is closed now.
	if conn, err := net.DialTimeout("tcp", s.addr, time.Second); err == nil {
		_ = conn.Close()
		t.Fatal("server still accepts connections after shutdown")
	}
}

func TestShutdownTimeoutForcesClose(t *testing.T) {
	s := startServer(t, options{configure: func(c *serve.Config) { c.ShutdownTimeout = 200 * time.Millisecond }})
	// A Watch stream never ends on its own.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	events := grpchealth.NewClient(s.client, s.url, connect.WithGRPC()).Watch(ctx, &grpchealth.CheckRequest{})
	if ev := <-events; ev.Err != nil {
		t.Fatal(ev.Err)
	}
	start := time.Now()
	err := s.stop(t)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Serve = %v, want a shutdown deadline error", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("shutdown took %v", d)
	}
	for range events { // the stream is torn down
	}
}

func TestPlaintextIsRejected(t *testing.T) {
	s := startServer(t, options{})

	// A raw HTTP/1.1 request on the TLS port gets no service.
	conn, err := net.DialTimeout("tcp", s.addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close() //nolint:errcheck // test connection; what the server answered is the result
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}", checkProcedure, s.addr)
	if res, err := http.ReadResponse(bufio.NewReader(conn), nil); err == nil {
		_ = res.Body.Close()
		if res.StatusCode == http.StatusOK {
			t.Fatalf("plaintext HTTP/1.1 request got %s", res.Status)
		}
	}

	// A Connect client over plaintext HTTP/1.1 fails.
	for _, p := range protocols {
		plain := grpchealth.NewClient(&http.Client{Timeout: 5 * time.Second}, "http://"+s.addr, p.opts...)
		if _, err := plain.Check(t.Context(), &grpchealth.CheckRequest{}); err == nil {
			t.Fatalf("%s over plaintext HTTP/1.1 succeeded", p.name)
		}
	}

	// h2c with prior knowledge fails too.
	h2cProtocols := new(http.Protocols)
	h2cProtocols.SetUnencryptedHTTP2(true)
	h2c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Protocols: h2cProtocols}}
	if _, err := grpchealth.NewClient(h2c, "http://"+s.addr, connect.WithGRPC()).Check(t.Context(), &grpchealth.CheckRequest{}); err == nil {
		t.Fatal("gRPC over h2c succeeded")
	}

	// And the HTTP/2 client refuses http:// URLs outright.
	if _, err := grpchealth.NewClient(s.client, "http://"+s.addr, connect.WithGRPC()).Check(t.Context(), &grpchealth.CheckRequest{}); err == nil {
		t.Fatal("NewHTTP2Client sent a plaintext request")
	}
}

// authInterceptor simulates authentication placed in HandlerOptions' extra:
// it adds the principal to the RPC's log line.
type authInterceptor struct{}

func (authInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if !strings.HasPrefix(req.Header().Get("Authorization"), "Bearer ") {
			return nil, rpcerr.New(connect.CodeUnauthenticated, "MISSING_CREDENTIALS", "missing bearer token", nil)
		}
		logging.AddFields(ctx, slog.String("principal", "bank-7"), slog.String("role", "bank"))
		return next(ctx, req)
	}
}

func (authInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (authInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

// headerTransport adds fixed headers to every request.
type headerTransport struct {
	base   http.RoundTripper
	header http.Header
}

func (h headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	maps.Copy(r.Header, h.header)
	return h.base.RoundTrip(r)
}

// paymentChecker stands in for a payment handler: it adds business fields
// to the log line, or fails in the way the requested "service" says.
type paymentChecker struct{}

var errInsufficientFunds = errors.New("insufficient funds")

func (paymentChecker) Check(ctx context.Context, req *grpchealth.CheckRequest) (*grpchealth.CheckResponse, error) {
	switch req.Service {
	case "panic":
		var m map[string]int
		m["boom"]++ //nolint:staticcheck // SA5000 is the point: a nil map write, a real bug, not a deliberate panic
	case "insufficient":
		return nil, rpcerr.FromTable(fmt.Errorf("debit account 1234: %w", errInsufficientFunds), []rpcerr.Mapping{
			{Err: errInsufficientFunds, Code: connect.CodeFailedPrecondition, Reason: "INSUFFICIENT_FUNDS"},
		})
	case "meta":
		return nil, rpcerr.New(connect.CodeAlreadyExists, "DUPLICATE_TRANSFER", "transfer already submitted", map[string]string{"transaction_id": "tx-9"})
	}
	logging.AddFields(ctx, slog.String("transaction_id", "tx-1"), slog.Int64("amount", 990), slog.String("currency", "USD"))
	return &grpchealth.CheckResponse{Status: grpchealth.StatusServing}, nil
}

func authedClient(s *server, opts ...connect.ClientOption) *grpchealth.Client {
	httpClient := &http.Client{Transport: headerTransport{base: s.client.Transport, header: http.Header{
		"Authorization":            {"Bearer " + secretToken},
		logging.RetryAttemptHeader: {"1"},
	}}}
	return grpchealth.NewClient(httpClient, s.url, opts...)
}

func TestLogLinePerRPCWithFieldsAndNoSecrets(t *testing.T) {
	s := startServer(t, options{checker: paymentChecker{}, extra: []connect.Interceptor{authInterceptor{}}})
	for _, p := range protocols {
		if _, err := authedClient(s, p.opts...).Check(t.Context(), &grpchealth.CheckRequest{}); err != nil {
			t.Fatalf("%s: %v", p.name, err)
		}
	}
	// Rejected by authentication: still logged, without the business fields.
	_, err := grpchealth.NewClient(s.client, s.url).Check(t.Context(), &grpchealth.CheckRequest{})
	if connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Fatalf("unauthenticated call: %v", err)
	}

	lines := s.logs.WithMsg(t, logging.MsgRPC)
	if len(lines) != len(protocols)+1 {
		t.Fatalf("got %d RPC lines, want %d:\n%s", len(lines), len(protocols)+1, s.logs)
	}
	for _, m := range lines[:len(protocols)] {
		want := map[string]any{
			logging.KeyProcedure:    checkProcedure,
			logging.KeyCode:         "ok",
			"level":                 "INFO",
			"principal":             "bank-7",
			"role":                  "bank",
			"transaction_id":        "tx-1",
			"amount":                float64(990),
			"currency":              "USD",
			logging.KeyRetryAttempt: float64(1),
		}
		for k, v := range want {
			if m[k] != v {
				t.Errorf("%s = %v, want %v in %v", k, m[k], v, m)
			}
		}
	}
	last := lines[len(lines)-1]
	if last[logging.KeyCode] != "unauthenticated" || last[logging.KeyReason] != "MISSING_CREDENTIALS" || last["level"] != "WARN" {
		t.Errorf("unexpected unauthenticated line: %v", last)
	}
	if _, ok := last["principal"]; ok {
		t.Errorf("rejected call logged a principal: %v", last)
	}

	logs := s.logs.String()
	for _, secret := range []string{secretToken, "Bearer", "Authorization", "authorization"} {
		if strings.Contains(logs, secret) {
			t.Fatalf("logs contain %q:\n%s", secret, logs)
		}
	}
}

func TestRecoverTurnsPanicIntoInternal(t *testing.T) {
	s := startServer(t, options{checker: paymentChecker{}, extra: []connect.Interceptor{authInterceptor{}}})
	for _, p := range protocols {
		_, err := authedClient(s, p.opts...).Check(t.Context(), &grpchealth.CheckRequest{Service: "panic"})
		var cerr *connect.Error
		if !errors.As(err, &cerr) || cerr.Code() != connect.CodeInternal || cerr.Message() != rpcerr.InternalMessage {
			t.Fatalf("%s: err = %v, want internal %q", p.name, err, rpcerr.InternalMessage)
		}
		if rpcerr.Reason(err) != rpcerr.ReasonInternal {
			t.Fatalf("%s: reason = %q", p.name, rpcerr.Reason(err))
		}
	}
	panics := s.logs.WithMsg(t, logging.MsgPanic)
	if len(panics) != len(protocols) {
		t.Fatalf("got %d panic lines, want one per panic (%d):\n%s", len(panics), len(protocols), s.logs)
	}
	for _, p := range panics {
		stack, _ := p["stack"].(string)
		if p["level"] != "ERROR" || !strings.Contains(fmt.Sprint(p["panic"]), "nil map") || !strings.Contains(stack, "paymentChecker.Check") {
			t.Fatalf("unexpected panic line: %v", p)
		}
	}
	// The process survived and still serves.
	if _, err := authedClient(s).Check(t.Context(), &grpchealth.CheckRequest{}); err != nil {
		t.Fatalf("after panic: %v", err)
	}
}

func TestRPCErrReasonRoundTrip(t *testing.T) {
	s := startServer(t, options{checker: paymentChecker{}, extra: []connect.Interceptor{authInterceptor{}}})
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			client := authedClient(s, p.opts...)

			_, err := client.Check(t.Context(), &grpchealth.CheckRequest{Service: "insufficient"})
			if connect.CodeOf(err) != connect.CodeFailedPrecondition || rpcerr.Reason(err) != "INSUFFICIENT_FUNDS" {
				t.Fatalf("err = %v (reason %q)", err, rpcerr.Reason(err))
			}

			_, err = client.Check(t.Context(), &grpchealth.CheckRequest{Service: "meta"})
			info := rpcerr.Info(err)
			if connect.CodeOf(err) != connect.CodeAlreadyExists || info.GetReason() != "DUPLICATE_TRANSFER" ||
				info.GetDomain() != rpcerr.Domain || info.GetMetadata()["transaction_id"] != "tx-9" {
				t.Fatalf("err = %v, info = %v", err, info)
			}
		})
	}
	for _, m := range s.logs.WithMsg(t, logging.MsgRPC) {
		switch m[logging.KeyCode] {
		case "failed_precondition":
			if m[logging.KeyReason] != "INSUFFICIENT_FUNDS" || m["level"] != "WARN" {
				t.Errorf("unexpected line: %v", m)
			}
		case "already_exists":
			if m[logging.KeyReason] != "DUPLICATE_TRANSFER" {
				t.Errorf("unexpected line: %v", m)
			}
		default:
			t.Errorf("unexpected line: %v", m)
		}
	}
}

func TestRequestBodyLimit(t *testing.T) {
	s := startServer(t, options{configure: func(c *serve.Config) { c.MaxBodyBytes = 256 }})
	for _, p := range protocols {
		client := grpchealth.NewClient(s.client, s.url, p.opts...)
		if _, err := client.Check(t.Context(), &grpchealth.CheckRequest{Service: testService}); err != nil {
			t.Fatalf("%s: small request: %v", p.name, err)
		}
		_, err := client.Check(t.Context(), &grpchealth.CheckRequest{Service: strings.Repeat("x", serve.MountReadMaxBytes/2)})
		if connect.CodeOf(err) != connect.CodeResourceExhausted || !strings.Contains(err.Error(), "MaxBytesReader") {
			t.Fatalf("%s: oversized body: %v, want resource_exhausted from the body limit", p.name, err)
		}
	}
}

func TestReadMaxBytes(t *testing.T) {
	// A handler built with HandlerOptions (not Mount's, which allow less).
	s := startServer(t, options{checker: paymentChecker{}, configure: func(c *serve.Config) { c.MaxBodyBytes = 8 << 20 }})
	client := grpchealth.NewClient(s.client, s.url, connect.WithGRPC())
	if _, err := client.Check(t.Context(), &grpchealth.CheckRequest{Service: strings.Repeat("x", serve.ReadMaxBytes/2)}); err != nil {
		t.Fatalf("a message under the limit: %v", err)
	}
	_, err := client.Check(t.Context(), &grpchealth.CheckRequest{Service: strings.Repeat("x", serve.ReadMaxBytes+1)})
	if connect.CodeOf(err) != connect.CodeResourceExhausted {
		t.Fatalf("err = %v, want resource_exhausted", err)
	}
}

func TestNewHTTP2ClientRefusesPlaintext(t *testing.T) {
	var hits atomic.Int32
	plain := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	defer plain.Close()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, plain.URL, strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	if res, err := serve.NewHTTP2Client(nil).Do(req); err == nil {
		_ = res.Body.Close()
		t.Fatalf("http:// request answered %s", res.Status)
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("plaintext server saw %d requests", n)
	}
}

func TestHandleSignals(t *testing.T) {
	ctx, stop := serve.HandleSignals(t.Context())
	defer stop()
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("context not canceled by SIGTERM")
	}
}

func TestHTTP2Settings(t *testing.T) {
	s := startServer(t, options{})
	conf := newPKI(t).clientTLS.Clone()
	conf.NextProtos = []string{"h2"}
	conn, err := tls.Dial("tcp", s.addr, conf)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close() //nolint:errcheck // test connection; what the server answered is the result
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if got := conn.ConnectionState().NegotiatedProtocol; got != "h2" {
		t.Fatalf("ALPN = %q, want h2", got)
	}
	if _, err := conn.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	framer := http2.NewFramer(conn, conn)
	if err := framer.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	for {
		f, err := framer.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		sf, ok := f.(*http2.SettingsFrame)
		if !ok || sf.IsAck() {
			continue
		}
		v, ok := sf.Value(http2.SettingMaxConcurrentStreams)
		if !ok || v != serve.DefaultMaxConcurrentStreams {
			t.Fatalf("SETTINGS_MAX_CONCURRENT_STREAMS = %d (sent: %v), want %d", v, ok, serve.DefaultMaxConcurrentStreams)
		}
		return
	}
}
