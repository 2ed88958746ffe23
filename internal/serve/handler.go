package serve

import (
	"context"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"
	"connectrpc.com/grpcreflect"
	"connectrpc.com/validate"

	"github.com/remitpay/remit/internal/logging"
	"github.com/remitpay/remit/internal/rpcerr"
)

// Per-RPC limits applied by [HandlerOptions].
const (
	// ReadMaxBytes is the largest (decompressed) request message a handler
	// accepts. Payment messages are small; the cap protects memory.
	ReadMaxBytes = 1 << 20
	// CompressMinBytes is the smallest response message worth compressing;
	// below it compression costs more CPU than it saves bandwidth.
	CompressMinBytes = 1024
	// MountReadMaxBytes is the largest (decompressed) request message the
	// health and reflection services accept: a service name, a file name
	// or a symbol. It caps what a compressed request may inflate to on
	// endpoints anybody may call.
	MountReadMaxBytes = 4 << 10
	// maxEchoedName is the longest client-supplied name an error message
	// repeats.
	maxEchoedName = 64
)

// ReasonUnknownService is the ErrorInfo reason of a health check for a
// service the server does not have.
const ReasonUnknownService = "UNKNOWN_SERVICE"

var sharedValidator = sync.OnceValue(func() *validate.Interceptor {
	return validate.NewInterceptor()
})

// ValidateInterceptor returns the process-wide protovalidate interceptor
// (connect v1 API). It is shared so that compiled validation rules are
// cached once per process instead of once per service.
func ValidateInterceptor() *validate.Interceptor {
	return sharedValidator()
}

// HandlerOptions returns the options every Remit Connect handler must be
// built with, so that all services share the same interceptor chain and
// limits. The chain, outermost first, is:
//
//  1. logging.RecoverInterceptor — turns panics anywhere below into
//     internal errors;
//  2. logging.LogInterceptor — one line per RPC, including RPCs rejected by
//     later interceptors;
//  3. extra..., in the given order — the RPC metrics
//     (metrics.RPCInterceptor, first so it counts every code the client
//     sees), then authentication and authorization;
//  4. ValidateInterceptor — protovalidate request validation.
//
// Validation deliberately runs last, after authn/authz: unauthenticated or
// unauthorized callers are rejected cheaply and learn nothing about the
// request schema or its constraints from validation errors, and validation
// work is only spent on legitimate callers.
//
// It also sets connect.WithReadMaxBytes([ReadMaxBytes]) and
// connect.WithCompressMinBytes([CompressMinBytes]).
func HandlerOptions(logger *slog.Logger, extra ...connect.Interceptor) []connect.HandlerOption {
	interceptors := make([]connect.Interceptor, 0, len(extra)+3)
	interceptors = append(interceptors,
		logging.NewRecoverInterceptor(logger),
		logging.NewLogInterceptor(logger),
	)
	interceptors = append(interceptors, extra...)
	interceptors = append(interceptors, ValidateInterceptor())
	return []connect.HandlerOption{
		connect.WithInterceptors(interceptors...),
		connect.WithReadMaxBytes(ReadMaxBytes),
		connect.WithCompressMinBytes(CompressMinBytes),
	}
}

// Mount registers the standard gRPC health service and the gRPC server
// reflection service (v1 and v1alpha, for older grpcurl and friends) on mux,
// so that load balancers, Kubernetes probes and operators can talk to any
// Remit server the same way.
//
// serviceNames are fully-qualified Protobuf service names (e.g.
// "remit.gateway.v1.PaymentService"); they are reported SERVING, together
// with the whole server (""), and listed by reflection along with the health
// service itself. Their generated code must be linked into the binary for
// reflection to describe them. opts (typically a subset of
// [HandlerOptions], often without per-RPC logging to avoid probe noise)
// apply to both services; whatever they say, the services accept requests
// of at most [MountReadMaxBytes] (decompressed), and an unknown service's
// name is echoed only shortened and sanitized. [Serve] throttles anonymous
// calls to both per source (see [SourceLimits]).
//
// The returned checker lets callers flip services to NOT_SERVING, e.g. at
// the start of shutdown or when a bank connection is lost.
func Mount(mux *http.ServeMux, serviceNames []string, opts ...connect.HandlerOption) *grpchealth.StaticChecker {
	opts = append(slices.Clip(opts), connect.WithReadMaxBytes(MountReadMaxBytes))
	checker := grpchealth.NewStaticChecker(serviceNames...)
	mux.Handle(grpchealth.NewHandler(quietChecker{checker}, opts...))

	reflected := make([]string, 0, len(serviceNames)+1)
	reflected = append(reflected, serviceNames...)
	reflected = append(reflected, grpchealth.HealthV1ServiceName)
	reflector := grpcreflect.NewStaticReflector(reflected...)
	mux.Handle(grpcreflect.NewHandlerV1(reflector, opts...))
	mux.Handle(grpcreflect.NewHandlerV1Alpha(reflector, opts...))
	return checker
}

// quietChecker is a StaticChecker whose unknown-service errors do not repeat
// the client's input (grpchealth's say "unknown service <name>", whatever
// its size).
type quietChecker struct{ *grpchealth.StaticChecker }

func (c quietChecker) Check(ctx context.Context, req *grpchealth.CheckRequest) (*grpchealth.CheckResponse, error) {
	res, err := c.StaticChecker.Check(ctx, req)
	if err != nil {
		return nil, unknownService(req.Service, err)
	}
	return res, nil
}

func (c quietChecker) Watch(ctx context.Context, req *grpchealth.CheckRequest, onChange func()) (func(), error) {
	stop, err := c.StaticChecker.Watch(ctx, req, onChange)
	if err != nil {
		return nil, unknownService(req.Service, err)
	}
	return stop, nil
}

// unknownService replaces the static checker's not_found error; other
// errors (there are none today) pass unchanged.
func unknownService(name string, err error) error {
	if connect.CodeOf(err) != connect.CodeNotFound {
		return err
	}
	return rpcerr.New(connect.CodeNotFound, ReasonUnknownService, "unknown service "+strconv.Quote(shorten(name)), nil)
}

// shorten keeps at most maxEchoedName bytes of a client-supplied name, and
// only the characters of Protobuf names.
func shorten(name string) string {
	cut := len(name) > maxEchoedName
	if cut {
		name = name[:maxEchoedName]
	}
	name = strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_':
			return r
		}
		return '?'
	}, name)
	if cut {
		name += "..."
	}
	return name
}
