package authz

import (
	"context"
	"crypto/tls"
	"net/http"
)

type tlsStateKey struct{}

// TLSStateMiddleware stores the request's TLS connection state in its
// context so that the interceptor, which sees only the context, headers and
// peer address of an RPC, can read the verified client certificate. Wrap
// the whole mux with it.
func TLSStateMiddleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS != nil {
			r = r.WithContext(WithTLSState(r.Context(), r.TLS))
		}
		next.ServeHTTP(w, r)
	})
}

// WithTLSState returns a copy of ctx carrying cs. [TLSStateMiddleware] uses
// it; it is exported for servers that build their contexts differently.
func WithTLSState(ctx context.Context, cs *tls.ConnectionState) context.Context {
	return context.WithValue(ctx, tlsStateKey{}, cs)
}

// TLSStateFrom returns the TLS connection state stored by
// [TLSStateMiddleware], or nil for plaintext requests or when the middleware
// is missing (in which case no certificate principal can be recognised).
func TLSStateFrom(ctx context.Context) *tls.ConnectionState {
	cs, _ := ctx.Value(tlsStateKey{}).(*tls.ConnectionState)
	return cs
}
