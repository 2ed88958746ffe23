package logging

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"time"

	"connectrpc.com/connect"

	"github.com/remitpay/remit/internal/rpcerr"
)

// RetryAttemptHeader is the request header in which Remit clients send the
// retry attempt number (0 or absent for the first try). LogInterceptor
// records it so that retries of the same payment can be told apart in logs.
const RetryAttemptHeader = "Remit-Retry-Attempt"

// Keys of the RPC log line, exported so that tests and log queries do not
// repeat string literals.
const (
	// KeyProcedure is the full Connect procedure, e.g. "/pkg.Service/Method".
	KeyProcedure = "procedure"
	// KeyProtocol is "connect", "grpc" or "grpcweb", to tell client kinds apart.
	KeyProtocol = "protocol"
	// KeyPeer is the caller's network address, for tracing abuse to a source.
	KeyPeer = "peer"
	// KeyCode is "ok" or the Connect code string the RPC ended with.
	KeyCode = "code"
	// KeyReason is the AIP-193 ErrorInfo reason of a failed RPC, if any.
	KeyReason = "reason"
	// KeyDuration is how long the handler (or stream) ran.
	KeyDuration = "duration"
	// KeyRetryAttempt is the client's retry attempt from RetryAttemptHeader.
	KeyRetryAttempt = "retry_attempt"
	// KeyError is the error message the client received.
	KeyError = "error"
	// KeyCause is the internal cause hidden from the client (see rpcerr.Cause),
	// so operators can diagnose internal errors.
	KeyCause = "cause"
)

// MsgRPC is the message of the one line LogInterceptor writes per RPC.
const MsgRPC = "rpc"

// MsgPanic is the message of the line RecoverInterceptor writes when it
// recovers a handler panic.
const MsgPanic = "panic recovered"

// errAbandoned stands in for the result of a handler that never returned
// normally (it panicked or called runtime.Goexit), so that LogInterceptor can
// still write its line while the panic propagates to RecoverInterceptor.
var errAbandoned = connect.NewError(connect.CodeInternal, errors.New("handler panicked"))

// handlerRPC is one served RPC, unary or streaming, as the interceptors of
// this package see it.
type handlerRPC struct {
	spec   connect.Spec
	peer   connect.Peer
	header http.Header
}

// handlerInterceptor is the connect.Interceptor both RecoverInterceptor and
// LogInterceptor are made of: unary and streaming handlers alike run inside
// around, which calls call (the rest of the chain and the handler) and
// returns its error or one in its place; client-side calls pass untouched.
type handlerInterceptor struct {
	logger *slog.Logger
	around func(ctx context.Context, rpc handlerRPC, call func(context.Context) error) error
}

// newHandlerInterceptor is the constructor of constructor's interceptor;
// logger is required.
func newHandlerInterceptor(constructor string, logger *slog.Logger,
	around func(context.Context, handlerRPC, func(context.Context) error) error,
) handlerInterceptor {
	if logger == nil {
		panic("logging: " + constructor + " needs a logger")
	}
	return handlerInterceptor{logger: logger, around: around}
}

// WrapUnary implements connect.Interceptor for unary handlers.
func (h handlerInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if req.Spec().IsClient {
			return next(ctx, req)
		}
		var res connect.AnyResponse
		err := h.around(ctx, handlerRPC{req.Spec(), req.Peer(), req.Header()}, func(ctx context.Context) (err error) {
			res, err = next(ctx, req)
			return err
		})
		return res, err
	}
}

// WrapStreamingClient implements connect.Interceptor; it is a no-op because
// the interceptors of this package only act on served RPCs.
func (handlerInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

// WrapStreamingHandler implements connect.Interceptor for streaming handlers.
func (h handlerInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		return h.around(ctx, handlerRPC{conn.Spec(), conn.Peer(), conn.RequestHeader()}, func(ctx context.Context) error {
			return next(ctx, conn)
		})
	}
}

// RecoverInterceptor is a handler-side connect.Interceptor that converts a
// panic in any inner interceptor or handler (unary or streaming) into a
// connect.CodeInternal error and logs the panic with its stack once. Without
// it a single bad request could crash a Connect handler's goroutine and,
// outside net/http's own recovery, the whole payment gateway.
//
// It must be the outermost interceptor so that it also covers every other
// interceptor. Panics with http.ErrAbortHandler are re-raised, since that
// value is net/http's deliberate way to abort a response.
type RecoverInterceptor struct {
	handlerInterceptor
}

var _ connect.Interceptor = (*RecoverInterceptor)(nil)

// NewRecoverInterceptor returns a [RecoverInterceptor] logging to logger.
// logger is required; nil panics.
func NewRecoverInterceptor(logger *slog.Logger) *RecoverInterceptor {
	i := &RecoverInterceptor{}
	i.handlerInterceptor = newHandlerInterceptor("NewRecoverInterceptor", logger, i.recovered)
	return i
}

// recovered runs call and turns a panic in it into an internal error.
func (i *RecoverInterceptor) recovered(ctx context.Context, rpc handlerRPC, call func(context.Context) error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = i.handle(ctx, rpc.spec.Procedure, r)
		}
	}()
	return call(ctx)
}

// handle logs a recovered panic value and returns the error sent to the
// client. It must be called from the deferred function so that the stack
// still contains the panicking frames.
func (i *RecoverInterceptor) handle(ctx context.Context, procedure string, r any) error {
	if r == http.ErrAbortHandler { //nolint:errorlint,err113 // r is a panic value (any), not a wrapped error: compared as net/http's server does
		panic(r)
	}
	i.logger.LogAttrs(ctx, slog.LevelError, MsgPanic,
		slog.String(KeyProcedure, procedure),
		slog.String("panic", fmt.Sprint(r)),
		slog.String("stack", string(debug.Stack())),
	)
	return rpcerr.Internal(fmt.Errorf("panic: %v", r))
}

// LogInterceptor is a handler-side connect.Interceptor that writes exactly
// one log line per RPC — for streams, when the stream ends — so that every
// request to the gateway is accounted for with a uniform set of keys:
// procedure, protocol, peer, code ("ok" or the Connect code), reason (the
// AIP-193 ErrorInfo reason, if any), duration, retry_attempt (from the
// [RetryAttemptHeader] request header, if present), error and cause (for
// failures), plus anything added with [AddFields].
//
// The level is info for ok, warn for errors caused by the client and error
// for server-side failures (see [LevelForCode]).
//
// It never logs request or response bodies or headers: they carry bearer
// tokens, account numbers and other secrets. Place it just inside
// [RecoverInterceptor] and outside authentication so that rejected calls are
// logged too and authenticators can AddFields the principal.
type LogInterceptor struct {
	handlerInterceptor
}

var _ connect.Interceptor = (*LogInterceptor)(nil)

// NewLogInterceptor returns a [LogInterceptor] logging to logger.
// logger is required; nil panics.
func NewLogInterceptor(logger *slog.Logger) *LogInterceptor {
	i := &LogInterceptor{}
	i.handlerInterceptor = newHandlerInterceptor("NewLogInterceptor", logger, i.logged)
	return i
}

// logged runs call and writes its line when it ends, also while it panics.
func (i *LogInterceptor) logged(ctx context.Context, rpc handlerRPC, call func(context.Context) error) (err error) {
	ctx, f := withFields(ctx)
	start := time.Now()
	returned := false
	defer func() {
		result := err
		if !returned {
			// Panicking: log now, let the panic reach RecoverInterceptor.
			result = errAbandoned
		}
		i.log(ctx, rpc, f, start, result)
	}()
	err = call(ctx)
	returned = true
	return err
}

func (i *LogInterceptor) log(ctx context.Context, rpc handlerRPC, f *fields, start time.Time, err error) {
	spec, peer, header := rpc.spec, rpc.peer, rpc.header
	duration := time.Since(start)
	code, ok := CodeOf(err)
	level := LevelForCode(code, ok)
	if !i.logger.Enabled(ctx, level) {
		return
	}
	codeStr := "ok"
	if !ok {
		codeStr = code.String()
	}
	extra := f.snapshot()
	attrs := make([]slog.Attr, 0, 10+len(extra))
	attrs = append(attrs,
		slog.String(KeyProcedure, spec.Procedure),
		slog.String(KeyProtocol, peer.Protocol),
		slog.String(KeyPeer, peer.Addr),
		slog.String(KeyCode, codeStr),
	)
	if reason := rpcerr.Reason(err); reason != "" {
		attrs = append(attrs, slog.String(KeyReason, reason))
	}
	attrs = append(attrs, slog.Duration(KeyDuration, duration))
	// Only this one header is read, and only as a number: the headers
	// themselves (Authorization!) must never reach the logs.
	if v := header.Get(RetryAttemptHeader); v != "" {
		if n, perr := strconv.Atoi(v); perr == nil && n >= 0 {
			attrs = append(attrs, slog.Int(KeyRetryAttempt, n))
		}
	}
	if err != nil {
		attrs = append(attrs, slog.String(KeyError, errorMessage(err)))
		if cause := rpcerr.Cause(err); cause != nil {
			attrs = append(attrs, slog.String(KeyCause, cause.Error()))
		}
	}
	attrs = append(attrs, extra...)
	i.logger.LogAttrs(ctx, level, MsgRPC, attrs...)
}

// errorMessage is the message the client receives for err.
func errorMessage(err error) string {
	if cerr, ok := errors.AsType[*connect.Error](err); ok {
		return cerr.Message()
	}
	return err.Error()
}

// CodeOf returns the Connect code a handler's err results in on the wire,
// and ok=true if err is nil. Unlike connect.CodeOf it maps bare context
// errors to canceled and deadline_exceeded, as Connect itself does when
// sending them, so that logs show what the client saw.
func CodeOf(err error) (code connect.Code, ok bool) {
	if err == nil {
		return 0, true
	}
	var cerr *connect.Error
	switch {
	case errors.As(err, &cerr):
		return cerr.Code(), false
	case errors.Is(err, context.Canceled):
		return connect.CodeCanceled, false
	case errors.Is(err, context.DeadlineExceeded):
		return connect.CodeDeadlineExceeded, false
	default:
		return connect.CodeUnknown, false
	}
}

// LevelForCode returns the level of an RPC's log line: info for success
// (ok=true), warn for failures caused by the client (so they do not page
// anyone) and error for server-side failures (which should). Unlisted codes
// are treated as errors.
func LevelForCode(code connect.Code, ok bool) slog.Level {
	if ok {
		return slog.LevelInfo
	}
	switch code {
	case connect.CodeInvalidArgument,
		connect.CodeFailedPrecondition,
		connect.CodeNotFound,
		connect.CodePermissionDenied,
		connect.CodeUnauthenticated,
		connect.CodeAlreadyExists,
		connect.CodeAborted,
		connect.CodeResourceExhausted,
		connect.CodeOutOfRange,
		connect.CodeCanceled:
		return slog.LevelWarn
	default:
		// internal, unknown, data_loss, unavailable, deadline_exceeded,
		// unimplemented and anything unexpected.
		return slog.LevelError
	}
}
