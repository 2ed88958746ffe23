package bank

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net/http"

	"connectrpc.com/connect"

	"github.com/remitpay/remit/internal/logging"
	"github.com/remitpay/remit/internal/pki"
	"github.com/remitpay/remit/internal/rpcerr"
)

// tlsStateKey is the context key of the request's *tls.ConnectionState.
type tlsStateKey struct{}

// withTLSState makes each request's TLS connection state available to
// [gatewayOnly]: Connect interceptors see the context but not the
// *http.Request.
func withTLSState(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS != nil {
			r = r.WithContext(context.WithValue(r.Context(), tlsStateKey{}, r.TLS))
		}
		h.ServeHTTP(w, r)
	})
}

// gatewayOnly is the bank's authorization interceptor: every BankService call
// must come over a connection whose client certificate was verified against
// the Remit CA and names the gateway. A verified bank (or any other)
// certificate gets permission_denied; no verified certificate at all gets
// unauthenticated.
type gatewayOnly struct{}

var _ connect.Interceptor = gatewayOnly{}

func (gatewayOnly) authorize(ctx context.Context) error {
	cs, _ := ctx.Value(tlsStateKey{}).(*tls.ConnectionState)
	if cs == nil || len(cs.VerifiedChains) == 0 {
		return rpcerr.New(connect.CodeUnauthenticated, "UNAUTHENTICATED", "a client certificate issued by the Remit CA is required", nil)
	}
	id, ok := pki.PeerIdentity(cs)
	if !ok || id.Kind != pki.KindGateway {
		return rpcerr.New(connect.CodePermissionDenied, "PERMISSION_DENIED", "only the gateway may call a bank", nil)
	}
	logging.AddFields(ctx, slog.String("caller", id.String()))
	return nil
}

// WrapUnary implements connect.Interceptor.
func (g gatewayOnly) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if req.Spec().IsClient {
			return next(ctx, req)
		}
		if err := g.authorize(ctx); err != nil {
			return nil, err
		}
		return next(ctx, req)
	}
}

// WrapStreamingClient implements connect.Interceptor; clients are not
// authorized here.
func (gatewayOnly) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

// WrapStreamingHandler implements connect.Interceptor.
func (g gatewayOnly) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		if err := g.authorize(ctx); err != nil {
			return err
		}
		return next(ctx, conn)
	}
}
