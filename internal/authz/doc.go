// Package authz decides who may call what: it holds Remit's one
// authorization policy ([Policy]), the [Principal] of a call, and the
// Connect interceptor that authenticates, rate-limits and authorizes every
// RPC before its handler runs.
//
// # Identities
//
//   - Clients present "Authorization: Bearer <token>" from Login; a
//     [TokenVerifier] (auth.Authenticator) maps it to a client principal
//     with the roles from the users file.
//   - Banks and the gateway present a client certificate issued by the
//     Remit CA; crypto/tls verifies it and [pki.PeerIdentity] reads the
//     name from it. [TLSStateMiddleware] must wrap the HTTP handler so that
//     the interceptor can see the connection state.
//
// # Invariants
//
//   - Default deny: a procedure without a [Policy] entry is refused to
//     everybody. A test fails if any generated procedure lacks an entry.
//   - Failures never reveal more than necessary: every authentication
//     failure is the same unauthenticated error, every authorization
//     failure the same permission_denied error ([Unauthenticated],
//     [PermissionDenied]), whatever the target. Handlers use the same
//     PermissionDenied for ownership failures and for targets that do not
//     exist.
//   - Roles are necessary, not sufficient: handlers check ownership with
//     [Principal.Owns], [Principal.CanRead] and [Principal.IsBank].
//   - No credential is ever logged: the interceptor adds only the
//     principal's name, kind, roles and session id to the log line.
package authz
