package serve

import (
	"log/slog"
	"net/http"
	"sync"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"
	"connectrpc.com/grpcreflect"
	"connectrpc.com/validate"

	"github.com/remitpay/remit/internal/logging"
)

// Per-RPC limits applied by [HandlerOptions].
const (
	// ReadMaxBytes is the largest (decompressed) request message a handler
	// accepts. Payment messages are small; the cap protects memory.
	ReadMaxBytes = 1 << 20
	// CompressMinBytes is the smallest response message worth compressing;
	// below it compression costs more CPU than it saves bandwidth.
	CompressMinBytes = 1024
)

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
// apply to both services.
//
// The returned checker lets callers flip services to NOT_SERVING, e.g. at
// the start of shutdown or when a bank connection is lost.
func Mount(mux *http.ServeMux, serviceNames []string, opts ...connect.HandlerOption) *grpchealth.StaticChecker {
	checker := grpchealth.NewStaticChecker(serviceNames...)
	mux.Handle(grpchealth.NewHandler(checker, opts...))

	reflected := make([]string, 0, len(serviceNames)+1)
	reflected = append(reflected, serviceNames...)
	reflected = append(reflected, grpchealth.HealthV1ServiceName)
	reflector := grpcreflect.NewStaticReflector(reflected...)
	mux.Handle(grpcreflect.NewHandlerV1(reflector, opts...))
	mux.Handle(grpcreflect.NewHandlerV1Alpha(reflector, opts...))
	return checker
}
