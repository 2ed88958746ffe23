package metrics_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/remitpay/remit/internal/logging"
	"github.com/remitpay/remit/internal/metrics"
)

const procedure = "/remit.test.v1.TestService/Ping"

// TestRPCInterceptor counts each RPC once by procedure and code: ok, the
// code of an error, and internal for a panic that RecoverInterceptor
// (outside it) turns into an error.
func TestRPCInterceptor(t *testing.T) {
	reg := metrics.NewRegistry()
	logger := slog.New(slog.DiscardHandler)
	results := map[string]func() error{
		"ok":        func() error { return nil },
		"not_found": func() error { return connect.NewError(connect.CodeNotFound, errors.New("no such thing")) },
		"unknown":   func() error { return errors.New("plain error") },
		"internal":  func() error { panic("boom") },
	}
	mux := http.NewServeMux()
	mux.Handle(procedure, connect.NewUnaryHandler(procedure,
		func(_ context.Context, req *connect.Request[emptypb.Empty]) (*connect.Response[emptypb.Empty], error) {
			if err := results[req.Header().Get("Want")](); err != nil {
				return nil, err
			}
			return connect.NewResponse(&emptypb.Empty{}), nil
		},
		connect.WithInterceptors(logging.NewRecoverInterceptor(logger), logging.NewLogInterceptor(logger), metrics.NewRPCInterceptor(reg)),
	))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	client := connect.NewClient[emptypb.Empty, emptypb.Empty](srv.Client(), srv.URL+procedure)

	for code := range results {
		req := connect.NewRequest(&emptypb.Empty{})
		req.Header().Set("Want", code)
		_, err := client.CallUnary(t.Context(), req)
		got := "ok"
		if err != nil {
			got = connect.CodeOf(err).String()
		}
		if got != code {
			t.Errorf("call wanting %s: %v", code, err)
		}
	}
	want := `
# HELP remit_rpc_requests_total RPCs handled, by procedure and Connect code (ok for success).
# TYPE remit_rpc_requests_total counter
remit_rpc_requests_total{code="internal",procedure="/remit.test.v1.TestService/Ping"} 1
remit_rpc_requests_total{code="not_found",procedure="/remit.test.v1.TestService/Ping"} 1
remit_rpc_requests_total{code="ok",procedure="/remit.test.v1.TestService/Ping"} 1
remit_rpc_requests_total{code="unknown",procedure="/remit.test.v1.TestService/Ping"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "remit_rpc_requests_total"); err != nil {
		t.Error(err)
	}
	if n, err := testutil.GatherAndCount(reg, "remit_rpc_duration_seconds"); err != nil || n != 4 {
		t.Errorf("remit_rpc_duration_seconds: %d series, %v; want 4", n, err)
	}
}

// TestHandler serves the registry at /metrics (with the Go and process
// collectors) and pprof under /debug/pprof/, and nothing else.
func TestHandler(t *testing.T) {
	srv := httptest.NewServer(metrics.Handler(metrics.NewRegistry(), slog.New(slog.DiscardHandler)))
	t.Cleanup(srv.Close)
	for path, want := range map[string]string{
		"/metrics":                  "go_goroutines",
		"/debug/pprof/":             "goroutine",
		"/debug/pprof/heap?debug=1": "heap profile",
		"/debug/pprof/cmdline":      "metrics.test",
		"/debug/pprof/nonexistent":  "Unknown profile",
		"/":                         "404 page not found",
		"/debug/vars":               "404 page not found",
	} {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		res, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(res.Body)
		if cerr := res.Body.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(body), want) {
			t.Errorf("GET %s: %s, body %.200q, want it to contain %q", path, res.Status, body, want)
		}
	}
}
