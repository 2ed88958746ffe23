package authz

import (
	"context"
	"slices"
	"strings"

	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
)

// Role is what a principal may do. Client roles come from the users file;
// RoleBank and RoleGateway are held only by principals proven by a client
// certificate, never by a user.
type Role string

// Roles known to the policy.
const (
	// RoleCustomer pays from, and reads, its own account only.
	RoleCustomer Role = "customer"
	// RoleAdmin deposits, withdraws and reads everything.
	RoleAdmin Role = "admin"
	// RoleAuditor reads everything and changes nothing.
	RoleAuditor Role = "auditor"
	// RoleBank is held by a bank authenticated by its client certificate.
	RoleBank Role = "bank"
	// RoleGateway is held by the gateway authenticated by its client
	// certificate (when it calls a bank).
	RoleGateway Role = "gateway"
)

// ClientRoles are the roles a user in the users file may have.
var ClientRoles = []Role{RoleCustomer, RoleAdmin, RoleAuditor}

// ParseClientRole returns the client role named s ("customer", "admin" or
// "auditor"). Bank and gateway are not client roles: no password may ever
// grant them.
func ParseClientRole(s string) (Role, bool) {
	r := Role(s)
	if slices.Contains(ClientRoles, r) {
		return r, true
	}
	return "", false
}

// Proto returns the API enum value of a client role, or ROLE_UNSPECIFIED
// for bank, gateway and unknown roles (which the API does not expose).
func (r Role) Proto() gatewayv1.Role {
	switch r {
	case RoleCustomer:
		return gatewayv1.Role_ROLE_CUSTOMER
	case RoleAdmin:
		return gatewayv1.Role_ROLE_ADMIN
	case RoleAuditor:
		return gatewayv1.Role_ROLE_AUDITOR
	default:
		return gatewayv1.Role_ROLE_UNSPECIFIED
	}
}

// Kind says how a principal proved who it is.
type Kind string

// Principal kinds.
const (
	// KindClient is a user authenticated by a bearer token from Login.
	KindClient Kind = "client"
	// KindBank is a bank authenticated by its mutual-TLS client certificate.
	KindBank Kind = "bank"
	// KindGateway is the gateway authenticated by its mutual-TLS client
	// certificate.
	KindGateway Kind = "gateway"
)

// Account names one account at one bank: the account a customer owns.
type Account struct {
	Bank string // the bank's registered name, e.g. "bank-a"
	ID   string // the account id inside that bank, e.g. "alice"
}

// Proto returns a as the API's AccountRef, or nil for a nil a.
func (a *Account) Proto() *gatewayv1.AccountRef {
	if a == nil {
		return nil
	}
	return &gatewayv1.AccountRef{Bank: a.Bank, AccountId: a.ID}
}

// Principal is the authenticated caller of an RPC. The interceptor puts it
// in the handler's context ([PrincipalFrom]); handlers use it for ownership
// checks on top of the role policy, which only says who may call a
// procedure at all.
type Principal struct {
	// Kind says how the principal was authenticated.
	Kind Kind
	// ClientID is the login name of a KindClient principal.
	ClientID string
	// Roles are the principal's roles: client roles from the users file, or
	// exactly RoleBank / RoleGateway for certificate principals.
	Roles []Role
	// Account is the account a client owns; nil for staff without one and
	// for banks and the gateway.
	Account *Account
	// BankName is the name proven by a bank's certificate (KindBank only).
	BankName string
	// SessionID identifies the login session of a KindClient principal, for
	// Logout and for correlating log lines. It is not a credential.
	SessionID string
}

// HasRole reports whether p holds role r. A nil p holds no role.
func (p *Principal) HasRole(r Role) bool {
	return p != nil && slices.Contains(p.Roles, r)
}

// HasAnyRole reports whether p holds at least one of roles.
func (p *Principal) HasAnyRole(roles ...Role) bool {
	return slices.ContainsFunc(roles, p.HasRole)
}

// IsStaff reports whether p is an admin or an auditor: a client who may read
// every account and payment, not only its own.
func (p *Principal) IsStaff() bool {
	return p != nil && p.Kind == KindClient && p.HasAnyRole(RoleAdmin, RoleAuditor)
}

// Owns reports whether p is a client that owns the account bank/accountID.
// Use it for actions only the owner may take (paying from the account,
// acknowledging a credit to it).
func (p *Principal) Owns(bank, accountID string) bool {
	return p != nil && p.Kind == KindClient && p.Account != nil &&
		p.Account.Bank == bank && p.Account.ID == accountID
}

// CanRead reports whether p may read the account bank/accountID: its owner
// or staff.
func (p *Principal) CanRead(bank, accountID string) bool {
	return p.IsStaff() || p.Owns(bank, accountID)
}

// IsBank reports whether p is the bank named name, proven by its
// certificate. CoordinatorService handlers use it so that a bank acts only
// under its own name.
func (p *Principal) IsBank(name string) bool {
	return p != nil && p.Kind == KindBank && p.BankName != "" && p.BankName == name
}

// Name returns the principal's name for logs and audit: the client id, the
// bank name, or "gateway".
func (p *Principal) Name() string {
	switch {
	case p == nil:
		return ""
	case p.Kind == KindBank:
		return p.BankName
	case p.Kind == KindGateway:
		return string(KindGateway)
	default:
		return p.ClientID
	}
}

// RoleString returns p's roles joined by commas, for logs.
func (p *Principal) RoleString() string {
	if p == nil {
		return ""
	}
	s := make([]string, len(p.Roles))
	for i, r := range p.Roles {
		s[i] = string(r)
	}
	return strings.Join(s, ",")
}

type principalKey struct{}

// WithPrincipal returns a copy of ctx carrying p. The interceptor calls it;
// tests of handlers call it to act as a principal.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the principal stored by [WithPrincipal]. Handlers of
// non-public procedures can rely on it being present when the interceptor
// is installed; ok is false otherwise (public procedures called without
// credentials).
func PrincipalFrom(ctx context.Context) (*Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(*Principal)
	return p, ok && p != nil
}
