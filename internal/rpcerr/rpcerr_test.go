package rpcerr_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"
	"google.golang.org/protobuf/reflect/protoreflect"

	bankv1 "github.com/remitpay/remit/gen/remit/bank/v1"
	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
	"github.com/remitpay/remit/internal/rpcerr"
)

var (
	errAccountNotFound = errors.New("account not found")
	errInsufficient    = errors.New("insufficient funds")
)

var table = []rpcerr.Mapping{
	{Err: errAccountNotFound, Code: connect.CodeNotFound, Reason: "ACCOUNT_NOT_FOUND"},
	{Err: errInsufficient, Code: connect.CodeFailedPrecondition, Reason: "INSUFFICIENT_FUNDS"},
}

func TestNewAttachesErrorInfo(t *testing.T) {
	err := rpcerr.New(connect.CodeNotFound, "ACCOUNT_NOT_FOUND", "account 42 not found", map[string]string{"account_id": "42"})
	if got := err.Code(); got != connect.CodeNotFound {
		t.Fatalf("code = %v, want not_found", got)
	}
	if got := err.Message(); got != "account 42 not found" {
		t.Fatalf("message = %q", got)
	}
	info := rpcerr.Info(err)
	if info == nil {
		t.Fatal("no ErrorInfo detail")
	}
	if info.GetReason() != "ACCOUNT_NOT_FOUND" || info.GetDomain() != rpcerr.Domain || info.GetMetadata()["account_id"] != "42" {
		t.Fatalf("unexpected ErrorInfo: %v", info)
	}
	if got := rpcerr.Reason(err); got != "ACCOUNT_NOT_FOUND" {
		t.Fatalf("Reason = %q", got)
	}
}

func TestReason(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"nil", nil, ""},
		{"plain error", errors.New("boom"), ""},
		{"connect error without detail", connect.NewError(connect.CodeInternal, errors.New("x")), ""},
		{"rpcerr", rpcerr.New(connect.CodeAborted, "CONFLICT", "x", nil), "CONFLICT"},
		{"wrapped rpcerr", fmt.Errorf("wrap: %w", rpcerr.New(connect.CodeAborted, "CONFLICT", "x", nil)), "CONFLICT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := rpcerr.Reason(tt.err); got != tt.want {
				t.Fatalf("Reason = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestFromTable(t *testing.T) {
	existing := rpcerr.New(connect.CodePermissionDenied, "NOT_ALLOWED", "nope", nil)
	secret := errors.New("pq: password authentication failed for user remit at 10.0.0.7")

	tests := []struct {
		name       string
		err        error
		wantNil    bool
		wantCode   connect.Code
		wantReason string
		wantMsg    string
	}{
		{name: "nil", err: nil, wantNil: true},
		{name: "table match", err: errAccountNotFound, wantCode: connect.CodeNotFound, wantReason: "ACCOUNT_NOT_FOUND", wantMsg: "account not found"},
		{name: "wrapped table match", err: fmt.Errorf("debit: %w", errInsufficient), wantCode: connect.CodeFailedPrecondition, wantReason: "INSUFFICIENT_FUNDS", wantMsg: "debit: insufficient funds"},
		{name: "connect error passes through", err: existing, wantCode: connect.CodePermissionDenied, wantReason: "NOT_ALLOWED", wantMsg: "nope"},
		{name: "wrapped connect error passes through", err: fmt.Errorf("ctx: %w", existing), wantCode: connect.CodePermissionDenied, wantReason: "NOT_ALLOWED", wantMsg: "nope"},
		{name: "canceled", err: fmt.Errorf("query: %w", context.Canceled), wantCode: connect.CodeCanceled, wantReason: rpcerr.ReasonCanceled, wantMsg: "context canceled"},
		{name: "deadline", err: fmt.Errorf("query: %w", context.DeadlineExceeded), wantCode: connect.CodeDeadlineExceeded, wantReason: rpcerr.ReasonDeadlineExceeded, wantMsg: "context deadline exceeded"},
		{name: "unknown is internal and hides details", err: secret, wantCode: connect.CodeInternal, wantReason: rpcerr.ReasonInternal, wantMsg: rpcerr.InternalMessage},
		{name: "empty table", err: errAccountNotFound, wantCode: connect.CodeInternal, wantReason: rpcerr.ReasonInternal, wantMsg: rpcerr.InternalMessage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tbl := table
			if tt.name == "empty table" {
				tbl = nil
			}
			got := rpcerr.FromTable(tt.err, tbl)
			if tt.wantNil {
				if got != nil {
					t.Fatalf("FromTable = %v, want nil", got)
				}
				return
			}
			var cerr *connect.Error
			if !errors.As(got, &cerr) {
				t.Fatalf("FromTable returned %T, want *connect.Error", got)
			}
			if cerr.Code() != tt.wantCode {
				t.Errorf("code = %v, want %v", cerr.Code(), tt.wantCode)
			}
			if r := rpcerr.Reason(got); r != tt.wantReason {
				t.Errorf("reason = %q, want %q", r, tt.wantReason)
			}
			if cerr.Message() != tt.wantMsg {
				t.Errorf("message = %q, want %q", cerr.Message(), tt.wantMsg)
			}
		})
	}
}

func TestInternalHidesCauseButKeepsItReachable(t *testing.T) {
	cause := errors.New("disk /var/lib/remit full")
	err := rpcerr.FromTable(fmt.Errorf("save: %w", cause), table)
	if strings.Contains(err.Error(), "disk") {
		t.Fatalf("internal error leaks cause: %q", err.Error())
	}
	if !errors.Is(err, cause) {
		t.Fatal("errors.Is does not reach the hidden cause")
	}
	if c := rpcerr.Cause(err); c == nil || !strings.Contains(c.Error(), "disk") {
		t.Fatalf("Cause = %v", c)
	}
	if c := rpcerr.Cause(rpcerr.New(connect.CodeNotFound, "X", "y", nil)); c != nil {
		t.Fatalf("Cause of a non-internal error = %v, want nil", c)
	}
}

// errChecker is a grpchealth.Checker that always fails with err; grpchealth
// gives these tests a real Connect service without generated code.
type errChecker struct{ err error }

func (c errChecker) Check(context.Context, *grpchealth.CheckRequest) (*grpchealth.CheckResponse, error) {
	return nil, c.err
}

func TestReasonRoundTripsOverTheWire(t *testing.T) {
	cause := errors.New("bank 7 returned garbage: <html>secret stack</html>")
	cases := []struct {
		name       string
		err        error
		wantCode   connect.Code
		wantReason string
		wantMsg    string
	}{
		{"mapped", rpcerr.FromTable(fmt.Errorf("lookup: %w", errAccountNotFound), table), connect.CodeNotFound, "ACCOUNT_NOT_FOUND", "lookup: account not found"},
		{"internal", rpcerr.FromTable(cause, table), connect.CodeInternal, rpcerr.ReasonInternal, rpcerr.InternalMessage},
	}
	for _, c := range cases {
		mux := http.NewServeMux()
		mux.Handle(grpchealth.NewHandler(errChecker{err: c.err}))
		srv := httptest.NewUnstartedServer(mux)
		srv.EnableHTTP2 = true
		srv.StartTLS()
		t.Cleanup(srv.Close)

		protocols := map[string][]connect.ClientOption{
			"connect": nil,
			"grpc":    {connect.WithGRPC()},
			"grpcweb": {connect.WithGRPCWeb()},
		}
		for proto, opts := range protocols {
			t.Run(c.name+"/"+proto, func(t *testing.T) {
				client := grpchealth.NewClient(srv.Client(), srv.URL, opts...)
				_, err := client.Check(t.Context(), &grpchealth.CheckRequest{})
				if err == nil {
					t.Fatal("expected an error")
				}
				if got := connect.CodeOf(err); got != c.wantCode {
					t.Fatalf("code = %v, want %v", got, c.wantCode)
				}
				if got := rpcerr.Reason(err); got != c.wantReason {
					t.Fatalf("reason = %q, want %q", got, c.wantReason)
				}
				info := rpcerr.Info(err)
				if info.GetDomain() != rpcerr.Domain {
					t.Fatalf("domain = %q", info.GetDomain())
				}
				var cerr *connect.Error
				errors.As(err, &cerr)
				if cerr.Message() != c.wantMsg {
					t.Fatalf("message = %q, want %q", cerr.Message(), c.wantMsg)
				}
				if strings.Contains(err.Error(), "secret") {
					t.Fatalf("internal cause leaked to client: %q", err)
				}
			})
		}
	}
}

func TestEnumReason(t *testing.T) {
	tests := []struct {
		v    protoreflect.Enum
		want string
	}{
		{gatewayv1.FailureReason_FAILURE_REASON_INSUFFICIENT_FUNDS, "INSUFFICIENT_FUNDS"},
		{gatewayv1.FailureReason_FAILURE_REASON_TRANSACTION_ID_CONFLICT, "TRANSACTION_ID_CONFLICT"},
		{gatewayv1.FailureReason_FAILURE_REASON_UNSPECIFIED, ""},
		{gatewayv1.FailureReason(999), ""},
		{bankv1.RefusalReason_REFUSAL_REASON_CONFLICT, "CONFLICT"},
		{bankv1.RefusalReason_REFUSAL_REASON_ACCOUNT_NOT_FOUND, "ACCOUNT_NOT_FOUND"},
	}
	for _, tt := range tests {
		if got := rpcerr.EnumReason(tt.v); got != tt.want {
			t.Errorf("EnumReason(%v) = %q, want %q", tt.v, got, tt.want)
		}
	}
	// Every defined value round-trips.
	for i := range gatewayv1.FailureReason_name {
		v := gatewayv1.FailureReason(i)
		got, ok := rpcerr.ParseEnumReason[gatewayv1.FailureReason](rpcerr.EnumReason(v))
		if (v != 0) != ok || (ok && got != v) {
			t.Errorf("ParseEnumReason(EnumReason(%v)) = %v, %v", v, got, ok)
		}
	}
	for i := range bankv1.RefusalReason_name {
		v := bankv1.RefusalReason(i)
		got, ok := rpcerr.ParseEnumReason[bankv1.RefusalReason](rpcerr.EnumReason(v))
		if (v != 0) != ok || (ok && got != v) {
			t.Errorf("ParseEnumReason(EnumReason(%v)) = %v, %v", v, got, ok)
		}
	}
	for _, bad := range []string{"", "UNSPECIFIED", "FAILURE_REASON_INSUFFICIENT_FUNDS", "insufficient_funds", "NOPE"} {
		if v, ok := rpcerr.ParseEnumReason[gatewayv1.FailureReason](bad); ok {
			t.Errorf("ParseEnumReason(%q) = %v, want none", bad, v)
		}
	}
}
