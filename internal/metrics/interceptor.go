package metrics

import (
	"context"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/remitpay/remit/internal/logging"
)

// RPCInterceptor counts and times every RPC a server handles, by procedure
// and Connect code ("ok" for success), as remit_rpc_requests_total and
// remit_rpc_duration_seconds. It goes right after the logging interceptor
// in the chain (see serve.HandlerOptions), so it sees the code the client
// sees, including rejections by authentication, authorization, validation
// and rate limiting. A panic below it is counted as internal, the code
// RecoverInterceptor answers with.
//
// The procedure label only takes the values of the procedures mounted on
// the server (an unknown path never reaches an interceptor), so its
// cardinality is bounded by the API.
type RPCInterceptor struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewRPCInterceptor registers the RPC metrics on reg and returns the
// interceptor that records them.
func NewRPCInterceptor(reg prometheus.Registerer) *RPCInterceptor {
	i := &RPCInterceptor{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "rpc_requests_total",
			Help: "RPCs handled, by procedure and Connect code (ok for success).",
		}, []string{"procedure", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "rpc_duration_seconds",
			Help:    "Time from the RPC reaching the interceptor chain to its answer (for a stream: to its end), by procedure and Connect code.",
			Buckets: LatencyBuckets,
		}, []string{"procedure", "code"}),
	}
	reg.MustRegister(i.requests, i.duration)
	return i
}

var _ connect.Interceptor = (*RPCInterceptor)(nil)

// observe records one finished RPC. returned is false while a panic
// unwinds through the interceptor.
func (i *RPCInterceptor) observe(procedure string, start time.Time, err error, returned bool) {
	code := "ok"
	if !returned {
		code = connect.CodeInternal.String()
	} else if c, ok := logging.CodeOf(err); !ok {
		code = c.String()
	}
	i.requests.WithLabelValues(procedure, code).Inc()
	i.duration.WithLabelValues(procedure, code).Observe(time.Since(start).Seconds())
}

// WrapUnary implements connect.Interceptor.
func (i *RPCInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (_ connect.AnyResponse, err error) {
		if req.Spec().IsClient {
			return next(ctx, req)
		}
		start, returned := time.Now(), false
		defer func() { i.observe(req.Spec().Procedure, start, err, returned) }()
		res, err := next(ctx, req)
		returned = true
		return res, err
	}
}

// WrapStreamingClient implements connect.Interceptor; client calls are not
// recorded.
func (i *RPCInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

// WrapStreamingHandler implements connect.Interceptor.
func (i *RPCInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) (err error) {
		start, returned := time.Now(), false
		defer func() { i.observe(conn.Spec().Procedure, start, err, returned) }()
		err = next(ctx, conn)
		returned = true
		return err
	}
}
