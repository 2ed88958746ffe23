package authz

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/time/rate"

	"github.com/remitpay/remit/internal/audit"
	"github.com/remitpay/remit/internal/logging"
	"github.com/remitpay/remit/internal/pki"
	"github.com/remitpay/remit/internal/rpcerr"
)

// TokenVerifier turns a bearer token into the client principal it speaks
// for. The gateway adapts its session store and users file to it
// (auth.Authenticator implements it).
//
// Verify must return an error wrapping [ErrUnauthenticated] for a token that
// is unknown, malformed, expired or revoked, or whose user no longer
// exists; any other error is treated as an internal failure (the store is
// down), not as bad credentials.
type TokenVerifier interface {
	Verify(ctx context.Context, token string) (*Principal, error)
}

// SessionNotifier is implemented by a [TokenVerifier] that knows at once
// when a session ends (auth.Authenticator): an open stream of that session
// then ends immediately, with unauthenticated, instead of at its next
// periodic re-verification (Config.StreamRecheck), which stays as the
// backstop (an expiry, a verifier without notifications).
type SessionNotifier interface {
	// SessionEnded returns a channel that is closed once session sessionID
	// of clientID is revoked, and stop, which releases the watch.
	SessionEnded(clientID, sessionID string) (ended <-chan struct{}, stop func())
}

// MaxTokenLen bounds the bearer tokens the interceptor passes to its
// TokenVerifier; longer ones are rejected without a lookup.
const MaxTokenLen = 512

// Log line keys added by the interceptor with logging.AddFields.
const (
	KeyPrincipal     = "principal"
	KeyPrincipalKind = "principal_kind"
	KeyRole          = "role"
	KeySessionID     = "session_id"
)

// Config configures [NewInterceptor]. The zero value is usable: it accepts
// certificate principals only, uses [Policy] and the default rate limit,
// and audits nothing.
type Config struct {
	// Verifier verifies bearer tokens. Nil means bearer tokens are not
	// accepted (banks, which only serve the gateway's certificate).
	Verifier TokenVerifier
	// Audit receives an authz_denied event for every permission_denied
	// answer. Nil disables auditing.
	Audit audit.Recorder
	// Policy maps procedures to rules; nil means [Policy].
	Policy map[string]Rule
	// Rate and Burst are the per-principal token bucket: Rate requests per
	// second sustained, up to Burst at once. Anonymous callers share a
	// bucket per source address ([SourceOf]). Zero means [DefaultRate] and
	// [DefaultBurst]; rate.Inf disables rate limiting.
	Rate  rate.Limit
	Burst int
	// StreamRecheck is how often an open stream's bearer token is verified
	// again; a stream whose token expired or was revoked ends with
	// unauthenticated. Zero means [DefaultStreamRecheck].
	StreamRecheck time.Duration
}

// Interceptor is the handler-side connect.Interceptor that authenticates
// every RPC, rate-limits it per principal and authorizes it against the
// policy, for unary and streaming procedures alike, before the handler (and
// before request validation) runs. In order:
//
//  1. Authentication. A client certificate verified by crypto/tls against
//     the Remit CA ([pki.PeerIdentity], read from the context stored by
//     [TLSStateMiddleware]) makes a bank or gateway principal; an
//     "Authorization: Bearer <token>" header is checked by the
//     [TokenVerifier] and makes a client principal. Presenting both is
//     refused as ambiguous.
//  2. Rate limiting per principal (anonymous callers: per source address)
//     -> resource_exhausted, reason RATE_LIMITED, with a retry hint.
//  3. Authorization with [Authorize]: missing or invalid credentials on a
//     non-public procedure -> unauthenticated; an authenticated principal
//     whose roles the rule does not list, or a procedure without a rule ->
//     permission_denied (audited as authz_denied).
//
// The principal is stored in the context ([PrincipalFrom]) and added to the
// RPC's log line (principal, principal_kind, role, session_id) with
// logging.AddFields. Tokens, headers and certificates are never logged.
type Interceptor struct {
	tokens  TokenVerifier
	recheck time.Duration
	audit   audit.Recorder
	policy  map[string]Rule
	limits  *limiters
}

var _ connect.Interceptor = (*Interceptor)(nil)

// NewInterceptor returns an [Interceptor] configured by cfg.
func NewInterceptor(cfg Config) *Interceptor {
	i := &Interceptor{
		tokens:  cfg.Verifier,
		recheck: cfg.StreamRecheck,
		audit:   cfg.Audit,
		policy:  cfg.Policy,
	}
	if i.recheck <= 0 {
		i.recheck = DefaultStreamRecheck
	}
	if i.policy == nil {
		i.policy = Policy
	}
	limit, burst := cfg.Rate, cfg.Burst
	if limit == 0 {
		limit = DefaultRate
	}
	if burst <= 0 {
		burst = DefaultBurst
	}
	i.limits = newLimiters(limit, burst)
	return i
}

// WrapUnary implements connect.Interceptor for unary handlers; client-side
// calls pass through untouched.
func (i *Interceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if req.Spec().IsClient {
			return next(ctx, req)
		}
		ctx, err := i.check(ctx, req.Spec().Procedure, req.Header(), req.Peer())
		if err != nil {
			return nil, err
		}
		res, err := next(ctx, req)
		i.auditHandlerDenial(ctx, req.Spec().Procedure, req.Peer(), err)
		return res, err
	}
}

// auditHandlerDenial records a permission_denied decided by the handler
// itself (an ownership check: a customer naming another's account), so
// that every authorization denial reaches the audit log, not only the
// role checks made here.
func (i *Interceptor) auditHandlerDenial(ctx context.Context, procedure string, peer connect.Peer, err error) {
	if connect.CodeOf(err) != connect.CodePermissionDenied {
		return
	}
	if p, ok := PrincipalFrom(ctx); ok {
		i.recordDenial(ctx, procedure, p, peer)
	}
}

// WrapStreamingClient implements connect.Interceptor; it is a no-op because
// the interceptor only protects handlers.
func (i *Interceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

// WrapStreamingHandler implements connect.Interceptor for streaming
// handlers. The check runs once, when the stream opens.
func (i *Interceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		ctx, err := i.check(ctx, conn.Spec().Procedure, conn.RequestHeader(), conn.Peer())
		if err != nil {
			return err
		}
		ctx, stop := i.watchSession(ctx, conn.RequestHeader())
		err = next(ctx, conn)
		if stop() {
			// The session ended while the stream was open: say so, rather
			// than ending the stream as if the caller had hung up.
			return Unauthenticated()
		}
		i.auditHandlerDenial(ctx, conn.Spec().Procedure, conn.Peer(), err)
		return err
	}
}

// DefaultStreamRecheck is how often an open stream's token is re-verified.
const DefaultStreamRecheck = 30 * time.Second

// errSessionEnded is the cancel cause of a stream whose token stopped
// working while it was open.
var errSessionEnded = errors.New("authz: session ended during the stream")

// watchSession re-verifies a stream's bearer token every StreamRecheck and
// cancels the returned context once the token is expired or revoked, so
// that a long-lived stream (WatchPayments) does not outlive its session; a
// verifier that is a [SessionNotifier] cancels it at once on revocation.
// stop ends the watch and reports whether the session had ended.
func (i *Interceptor) watchSession(ctx context.Context, header http.Header) (context.Context, func() bool) {
	p, ok := PrincipalFrom(ctx)
	token := bearerToken(header)
	if !ok || p.Kind != KindClient || token == "" || i.tokens == nil {
		return ctx, func() bool { return false }
	}
	ctx, cancel := context.WithCancelCause(ctx)
	done := make(chan struct{})
	var ended <-chan struct{} // nil: never
	unwatch := func() {}
	if n, ok := i.tokens.(SessionNotifier); ok && p.SessionID != "" {
		ended, unwatch = n.SessionEnded(p.ClientID, p.SessionID)
		// A revocation between check's verification and the watch told
		// no one: verify once more now that the watch is in place, so
		// that such a stream ends at once too, not at the next recheck.
		if !i.stillFor(ctx, token, p) {
			cancel(errSessionEnded)
		}
	}
	go func() {
		defer unwatch()
		t := time.NewTicker(i.recheck)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-ended:
				cancel(errSessionEnded)
				return
			case <-t.C:
				if !i.stillFor(ctx, token, p) {
					cancel(errSessionEnded)
					return
				}
			}
		}
	}()
	return ctx, func() bool {
		close(done)
		ended := errors.Is(context.Cause(ctx), errSessionEnded)
		cancel(nil)
		return ended
	}
}

// stillFor reports whether token still speaks for p as the stream was
// opened with: a revoked or expired token does not, nor one whose user's
// roles or account changed since (the stream would keep what it was
// allowed to see, an auditor's every account). A verifier that failed
// otherwise (the store is down) is given the benefit of the doubt until
// the next check.
func (i *Interceptor) stillFor(ctx context.Context, token string, p *Principal) bool {
	now, err := i.tokens.Verify(ctx, token)
	switch {
	case errors.Is(err, ErrUnauthenticated):
		return false
	case err != nil:
		return true
	}
	return now != nil && now.ClientID == p.ClientID && slices.Equal(now.Roles, p.Roles) &&
		(now.Account == nil) == (p.Account == nil) && (now.Account == nil || *now.Account == *p.Account)
}

// bearerToken returns the token of a single "Authorization: Bearer" header,
// or "".
func bearerToken(header http.Header) string {
	values := header.Values("Authorization")
	if len(values) != 1 {
		return ""
	}
	scheme, token, ok := strings.Cut(strings.TrimSpace(values[0]), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(token)
}

// check authenticates, rate-limits and authorizes one call and returns the
// context for the handler.
func (i *Interceptor) check(ctx context.Context, procedure string, header http.Header, peer connect.Peer) (context.Context, error) {
	p, authErr := i.authenticate(ctx, header)
	if authErr != nil && !errors.Is(authErr, ErrUnauthenticated) {
		// The verifier failed (store down, context canceled): not the
		// caller's fault, and not a reason to tell them to log in again.
		if ctxErr := ctx.Err(); ctxErr != nil {
			return ctx, rpcerr.FromTable(ctxErr, nil)
		}
		return ctx, rpcerr.Internal(authErr)
	}
	if p != nil {
		ctx = WithPrincipal(ctx, p)
		attrs := []slog.Attr{
			slog.String(KeyPrincipal, p.Name()),
			slog.String(KeyPrincipalKind, string(p.Kind)),
			slog.String(KeyRole, p.RoleString()),
		}
		if p.SessionID != "" {
			attrs = append(attrs, slog.String(KeySessionID, p.SessionID))
		}
		logging.AddFields(ctx, attrs...)
	}

	key := "source:" + SourceOf(peer.Addr)
	if p != nil {
		key = string(p.Kind) + ":" + p.Name()
	}
	if ok, retry := i.limits.allow(key, time.Now()); !ok {
		return ctx, RateLimited(retry)
	}

	switch err := Authorize(i.policy, procedure, p); {
	case err == nil:
		return ctx, nil
	case errors.Is(err, ErrUnauthenticated):
		return ctx, Unauthenticated()
	default:
		i.recordDenial(ctx, procedure, p, peer)
		return ctx, PermissionDenied()
	}
}

// authenticate returns the caller's principal, nil and nil for an anonymous
// caller, or an error wrapping ErrUnauthenticated for bad credentials.
func (i *Interceptor) authenticate(ctx context.Context, header http.Header) (*Principal, error) {
	var certPrincipal *Principal
	if id, ok := pki.PeerIdentity(TLSStateFrom(ctx)); ok {
		switch id.Kind {
		case pki.KindBank:
			certPrincipal = &Principal{Kind: KindBank, BankName: id.Name, Roles: []Role{RoleBank}}
		case pki.KindGateway:
			certPrincipal = &Principal{Kind: KindGateway, Roles: []Role{RoleGateway}}
		}
	}
	values := header.Values("Authorization")
	if len(values) == 0 {
		return certPrincipal, nil
	}
	if certPrincipal != nil {
		return nil, errors.Join(ErrUnauthenticated, errors.New("both a client certificate and a bearer token"))
	}
	if len(values) > 1 || i.tokens == nil {
		return nil, ErrUnauthenticated
	}
	scheme, token, ok := strings.Cut(strings.TrimSpace(values[0]), " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" || len(token) > MaxTokenLen {
		return nil, ErrUnauthenticated
	}
	p, err := i.tokens.Verify(ctx, token)
	if err != nil {
		return nil, err
	}
	if p == nil || p.Kind != KindClient || !onlyClientRoles(p.Roles) {
		// A token can only ever speak for a client; anything else is a bug
		// in the verifier and must not grant bank or gateway powers.
		return nil, ErrUnauthenticated
	}
	return p, nil
}

func (i *Interceptor) recordDenial(ctx context.Context, procedure string, p *Principal, peer connect.Peer) {
	if i.audit == nil {
		return
	}
	i.audit.Record(ctx, audit.EventAuthzDenied,
		slog.String(logging.KeyProcedure, procedure),
		slog.String(KeyPrincipal, p.Name()),
		slog.String(KeyPrincipalKind, string(p.Kind)),
		slog.String(KeyRole, p.RoleString()),
		slog.String(logging.KeyPeer, peer.Addr),
	)
}

func onlyClientRoles(roles []Role) bool {
	for _, r := range roles {
		if _, ok := ParseClientRole(string(r)); !ok {
			return false
		}
	}
	return true
}
