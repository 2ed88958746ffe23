package logging_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"

	"github.com/remitpay/remit/internal/logging"
	"github.com/remitpay/remit/internal/logging/logtest"
	"github.com/remitpay/remit/internal/rpcerr"
)

const secretToken = "secret-token-xyz"

// rpcLines returns the RPC log lines for procedure.
func rpcLines(t *testing.T, b *logtest.Buffer, procedure string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, m := range b.WithMsg(t, logging.MsgRPC) {
		if m[logging.KeyProcedure] == procedure {
			out = append(out, m)
		}
	}
	return out
}

// waitRPCLines waits (up to 5 s) until n RPC lines for procedure exist and
// returns them: for streams the line is written after the client has
// already seen the stream end. Callers check the count.
func waitRPCLines(t *testing.T, b *logtest.Buffer, procedure string, n int) []map[string]any {
	t.Helper()
	b.Wait(5*time.Second, func(string) bool { return len(rpcLines(t, b, procedure)) >= n })
	return rpcLines(t, b, procedure)
}

const (
	checkProcedure = "/" + grpchealth.HealthV1ServiceName + "/Check"
	watchProcedure = "/" + grpchealth.HealthV1ServiceName + "/Watch"
)

// principalInterceptor simulates an authentication interceptor that adds the
// principal to the RPC's log line.
type principalInterceptor struct{}

func (principalInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		logging.AddFields(ctx, slog.String("principal", "alice"), slog.String("role", "operator"))
		return next(ctx, req)
	}
}

func (principalInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (principalInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		logging.AddFields(ctx, slog.String("principal", "alice"))
		return next(ctx, conn)
	}
}

// checker is a grpchealth Checker/Watcher whose behavior depends on the
// requested service name; grpchealth gives these tests a real Connect
// service (unary Check, server-streaming Watch) without generated code.
type checker struct {
	*grpchealth.StaticChecker
}

func (c checker) Check(ctx context.Context, req *grpchealth.CheckRequest) (*grpchealth.CheckResponse, error) {
	switch req.Service {
	case "panic":
		panic("boom in handler")
	case "missing":
		return nil, rpcerr.New(connect.CodeNotFound, "ACCOUNT_NOT_FOUND", "no such account", nil)
	case "broken":
		return nil, rpcerr.FromTable(errors.New("db down"), nil)
	}
	logging.AddFields(ctx, slog.String("transaction_id", "tx-42"), slog.Int64("amount", 1250), slog.String("currency", "EUR"))
	return c.StaticChecker.Check(ctx, req)
}

func (c checker) Watch(ctx context.Context, req *grpchealth.CheckRequest, onChange func()) (func(), error) {
	if req.Service == "panic" {
		panic("boom in stream")
	}
	return c.StaticChecker.Watch(ctx, req, onChange)
}

// headerTransport adds fixed headers to every request, like a real client
// sending credentials and retry metadata.
type headerTransport struct {
	base   http.RoundTripper
	header http.Header
}

func (h headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	maps.Copy(r.Header, h.header)
	return h.base.RoundTrip(r)
}

type fixture struct {
	logs *logtest.Buffer
	srv  *httptest.Server
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	logs := &logtest.Buffer{}
	logger := logging.New(logs, logging.FormatJSON, slog.LevelDebug)
	mux := http.NewServeMux()
	mux.Handle(grpchealth.NewHandler(
		checker{StaticChecker: grpchealth.NewStaticChecker("remit.v1.Payments")},
		connect.WithInterceptors(
			logging.NewRecoverInterceptor(logger),
			logging.NewLogInterceptor(logger),
			principalInterceptor{},
		),
	))
	srv := httptest.NewUnstartedServer(mux)
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return &fixture{logs: logs, srv: srv}
}

func (f *fixture) client(opts ...connect.ClientOption) *grpchealth.Client {
	httpClient := f.srv.Client()
	httpClient.Transport = headerTransport{base: httpClient.Transport, header: http.Header{
		"Authorization":            {"Bearer " + secretToken},
		logging.RetryAttemptHeader: {"2"},
	}}
	return grpchealth.NewClient(httpClient, f.srv.URL, opts...)
}

func TestLogInterceptorUnaryOK(t *testing.T) {
	f := newFixture(t)
	protocols := map[string][]connect.ClientOption{
		connect.ProtocolConnect: nil,
		connect.ProtocolGRPC:    {connect.WithGRPC()},
		connect.ProtocolGRPCWeb: {connect.WithGRPCWeb()},
	}
	for protocol, opts := range protocols {
		res, err := f.client(opts...).Check(t.Context(), &grpchealth.CheckRequest{})
		if err != nil || res.Status != grpchealth.StatusServing {
			t.Fatalf("%s: Check = %v, %v", protocol, res, err)
		}
	}
	lines := rpcLines(t, f.logs, checkProcedure)
	if len(lines) != len(protocols) {
		t.Fatalf("got %d RPC lines, want exactly one per RPC (%d):\n%s", len(lines), len(protocols), f.logs)
	}
	seen := map[any]bool{}
	for _, m := range lines {
		seen[m[logging.KeyProtocol]] = true
		want := map[string]any{
			"level":                 "INFO",
			logging.KeyCode:         "ok",
			logging.KeyRetryAttempt: float64(2),
			"principal":             "alice",
			"role":                  "operator",
			"transaction_id":        "tx-42",
			"amount":                float64(1250),
			"currency":              "EUR",
		}
		for k, v := range want {
			if m[k] != v {
				t.Errorf("%s = %v, want %v (line %v)", k, m[k], v, m)
			}
		}
		if peer, _ := m[logging.KeyPeer].(string); !strings.HasPrefix(peer, "127.0.0.1:") {
			t.Errorf("peer = %v", m[logging.KeyPeer])
		}
		if _, ok := m[logging.KeyDuration]; !ok {
			t.Errorf("no duration in %v", m)
		}
		for _, k := range []string{logging.KeyReason, logging.KeyError} {
			if _, ok := m[k]; ok {
				t.Errorf("successful RPC logged %s: %v", k, m)
			}
		}
		assertSnakeCase(t, m)
	}
	for protocol := range protocols {
		if !seen[protocol] {
			t.Errorf("no line with protocol %q", protocol)
		}
	}
	assertNoSecrets(t, f.logs.String())
}

func TestLogInterceptorClientError(t *testing.T) {
	f := newFixture(t)
	_, err := f.client().Check(t.Context(), &grpchealth.CheckRequest{Service: "missing"})
	if connect.CodeOf(err) != connect.CodeNotFound {
		t.Fatalf("err = %v, want not_found", err)
	}
	lines := rpcLines(t, f.logs, checkProcedure)
	if len(lines) != 1 {
		t.Fatalf("got %d lines:\n%s", len(lines), f.logs)
	}
	m := lines[0]
	if m["level"] != "WARN" || m[logging.KeyCode] != "not_found" || m[logging.KeyReason] != "ACCOUNT_NOT_FOUND" || m["principal"] != "alice" {
		t.Fatalf("unexpected line: %v", m)
	}
	assertNoSecrets(t, f.logs.String())
}

func TestLogInterceptorInternalErrorLogsHiddenCause(t *testing.T) {
	f := newFixture(t)
	_, err := f.client(connect.WithGRPC()).Check(t.Context(), &grpchealth.CheckRequest{Service: "broken"})
	if connect.CodeOf(err) != connect.CodeInternal || strings.Contains(err.Error(), "db down") {
		t.Fatalf("err = %v, want a generic internal error", err)
	}
	lines := rpcLines(t, f.logs, checkProcedure)
	if len(lines) != 1 {
		t.Fatalf("got %d lines:\n%s", len(lines), f.logs)
	}
	m := lines[0]
	if m["level"] != "ERROR" || m[logging.KeyCode] != "internal" || m[logging.KeyReason] != rpcerr.ReasonInternal || m[logging.KeyCause] != "db down" {
		t.Fatalf("unexpected line: %v", m)
	}
}

func TestRecoverInterceptorUnary(t *testing.T) {
	f := newFixture(t)
	_, err := f.client().Check(t.Context(), &grpchealth.CheckRequest{Service: "panic"})
	var cerr *connect.Error
	if !errors.As(err, &cerr) || cerr.Code() != connect.CodeInternal || cerr.Message() != rpcerr.InternalMessage {
		t.Fatalf("err = %v, want internal: %q", err, rpcerr.InternalMessage)
	}
	if strings.Contains(err.Error(), "boom") {
		t.Fatalf("panic value leaked to client: %v", err)
	}

	var panics []map[string]any
	for _, m := range f.logs.Records(t) {
		if m["msg"] == logging.MsgPanic {
			panics = append(panics, m)
		}
	}
	if len(panics) != 1 {
		t.Fatalf("got %d panic lines, want 1:\n%s", len(panics), f.logs)
	}
	p := panics[0]
	stack, _ := p["stack"].(string)
	if p["level"] != "ERROR" || p["panic"] != "boom in handler" || p[logging.KeyProcedure] != checkProcedure ||
		!strings.Contains(stack, "logging_test.checker.Check") {
		t.Fatalf("unexpected panic line: %v", p)
	}

	rpc := rpcLines(t, f.logs, checkProcedure)
	if len(rpc) != 1 || rpc[0][logging.KeyCode] != "internal" || rpc[0]["level"] != "ERROR" {
		t.Fatalf("want one internal RPC line, got %v", rpc)
	}

	// The server survived and keeps serving.
	if _, err := f.client().Check(t.Context(), &grpchealth.CheckRequest{}); err != nil {
		t.Fatalf("server unhealthy after panic: %v", err)
	}
}

func TestRecoverInterceptorStreaming(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	var last grpchealth.WatchEvent
	for ev := range f.client(connect.WithGRPC()).Watch(ctx, &grpchealth.CheckRequest{Service: "panic"}) {
		last = ev
	}
	if connect.CodeOf(last.Err) != connect.CodeInternal {
		t.Fatalf("stream ended with %v, want internal", last.Err)
	}
	lines := waitRPCLines(t, f.logs, watchProcedure, 1)
	if len(lines) != 1 || lines[0][logging.KeyCode] != "internal" {
		t.Fatalf("want one internal RPC line for the stream, got %v", lines)
	}
	if !strings.Contains(f.logs.String(), "boom in stream") {
		t.Fatalf("panic not logged:\n%s", f.logs)
	}
}

func TestLogInterceptorStreamLogsOnceWhenStreamEnds(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(t.Context())
	events := f.client(connect.WithGRPC()).Watch(ctx, &grpchealth.CheckRequest{Service: "remit.v1.Payments"})
	ev := <-events
	if ev.Err != nil || ev.Response.Status != grpchealth.StatusServing {
		t.Fatalf("first event = %+v", ev)
	}
	if lines := rpcLines(t, f.logs, watchProcedure); len(lines) != 0 {
		t.Fatalf("stream logged before it ended: %v", lines)
	}
	cancel()
	for range events {
	}
	waitRPCLines(t, f.logs, watchProcedure, 1)
	time.Sleep(50 * time.Millisecond) // would expose a second line
	lines := rpcLines(t, f.logs, watchProcedure)
	if len(lines) != 1 {
		t.Fatalf("got %d stream lines, want 1:\n%s", len(lines), f.logs)
	}
	m := lines[0]
	// grpchealth's Watch returns nil when the client goes away; the line
	// records the handler's result, like the gRPC ecosystem's loggers.
	if m[logging.KeyCode] != "ok" || m["level"] != "INFO" || m["principal"] != "alice" || m[logging.KeyProtocol] != connect.ProtocolGRPC {
		t.Fatalf("unexpected stream line: %v", m)
	}
	if d, _ := m[logging.KeyDuration].(float64); d <= 0 {
		t.Fatalf("duration = %v", m[logging.KeyDuration])
	}
	assertNoSecrets(t, f.logs.String())
}

func TestLogInterceptorStreamError(t *testing.T) {
	f := newFixture(t)
	var last grpchealth.WatchEvent
	for ev := range f.client(connect.WithGRPCWeb()).Watch(t.Context(), &grpchealth.CheckRequest{Service: "unknown.Service"}) {
		last = ev
	}
	if connect.CodeOf(last.Err) != connect.CodeNotFound {
		t.Fatalf("stream ended with %v, want not_found", last.Err)
	}
	lines := waitRPCLines(t, f.logs, watchProcedure, 1)
	if len(lines) != 1 || lines[0][logging.KeyCode] != "not_found" || lines[0]["level"] != "WARN" || lines[0][logging.KeyProtocol] != connect.ProtocolGRPCWeb {
		t.Fatalf("unexpected stream lines: %v", lines)
	}
}

func TestAddFieldsWithoutInterceptorIsNoop(_ *testing.T) {
	logging.AddFields(context.Background(), slog.String("principal", "alice")) // must not panic
}

func assertNoSecrets(t *testing.T, logs string) {
	t.Helper()
	for _, s := range []string{secretToken, "Bearer", "Authorization", "authorization"} {
		if strings.Contains(logs, s) {
			t.Fatalf("logs contain %q:\n%s", s, logs)
		}
	}
}

// A nil logger is a wiring bug: the constructors refuse it loudly instead
// of falling back to slog.Default().
func TestInterceptorsNeedALogger(t *testing.T) {
	for name, construct := range map[string]func(){
		"NewRecoverInterceptor": func() { logging.NewRecoverInterceptor(nil) },
		"NewLogInterceptor":     func() { logging.NewLogInterceptor(nil) },
	} {
		func() {
			defer func() {
				if r := recover(); !strings.Contains(fmt.Sprint(r), name+" needs a logger") {
					t.Errorf("%s(nil) panicked with %v, want a message naming it", name, r)
				}
			}()
			construct()
		}()
	}
}
