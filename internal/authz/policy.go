package authz

import (
	"errors"

	"connectrpc.com/grpchealth"
	"connectrpc.com/grpcreflect"

	"github.com/remitpay/remit/gen/remit/bank/v1/bankv1connect"
	"github.com/remitpay/remit/gen/remit/gateway/v1/gatewayv1connect"
)

// Rule says who may call one procedure.
type Rule struct {
	// Public procedures need no credentials at all (Login, health checks).
	// Credentials that are sent anyway are still checked, and a valid one
	// puts its principal in the context, but an invalid one is ignored.
	Public bool
	// Roles lists the roles allowed to call a non-public procedure; a
	// principal needs at least one of them. An empty list allows nobody.
	Roles []Role
}

// Allows reports whether r lets p call the procedure. p may be nil
// (anonymous).
func (r Rule) Allows(p *Principal) bool {
	return r.Public || p.HasAnyRole(r.Roles...)
}

// Health and reflection procedures, mounted next to every Remit service by
// the serve package.
const (
	healthCheckProcedure       = "/" + grpchealth.HealthV1ServiceName + "/Check"
	healthWatchProcedure       = "/" + grpchealth.HealthV1ServiceName + "/Watch"
	reflectionV1Procedure      = "/" + grpcreflect.ReflectV1ServiceName + "/ServerReflectionInfo"
	reflectionV1AlphaProcedure = "/" + grpcreflect.ReflectV1AlphaServiceName + "/ServerReflectionInfo"
)

var (
	anyClient = []Role{RoleCustomer, RoleAdmin, RoleAuditor}
	customer  = []Role{RoleCustomer}
	staffRead = []Role{RoleAdmin, RoleAuditor}
	admin     = []Role{RoleAdmin}
	refunders = []Role{RoleCustomer, RoleAdmin}
	bank      = []Role{RoleBank}
	gateway   = []Role{RoleGateway}
)

// Policy is Remit's one declarative authorization table: for every
// procedure ("/package.Service/Method") of every service, which roles may
// call it. A procedure missing from the table is denied to everybody
// (default deny), and a test fails the build if any generated procedure is
// missing or any entry names a procedure that does not exist.
//
// Roles only say who may call a procedure at all. Ownership is enforced by
// the handlers on top of it, with the [Principal] from the context: a
// customer pays only from, and reads only, its own account and payments; a
// bank acts only under its own name ([Principal.IsBank]).
//
// Treat Policy as read-only; the interceptor reads it concurrently.
var Policy = map[string]Rule{
	// AuthService: anyone may try to log in; Logout revokes the caller's own
	// token.
	gatewayv1connect.AuthServiceLoginProcedure:  {Public: true},
	gatewayv1connect.AuthServiceLogoutProcedure: {Roles: anyClient},
	// Register signs a new customer up (the enrollment code is the
	// credential); ChangePassword changes the caller's own.
	gatewayv1connect.AuthServiceRegisterProcedure:       {Public: true},
	gatewayv1connect.AuthServiceChangePasswordProcedure: {Roles: anyClient},

	// PaymentService: nobody pays or acknowledges on another's behalf, so
	// staff may read but never move money through it. Reads are filtered to
	// the caller's own account unless the caller is staff.
	gatewayv1connect.PaymentServiceMakePaymentProcedure:        {Roles: customer},
	gatewayv1connect.PaymentServiceAcknowledgePaymentProcedure: {Roles: customer},
	gatewayv1connect.PaymentServiceGetPaymentProcedure:         {Roles: anyClient},
	gatewayv1connect.PaymentServiceListPaymentsProcedure:       {Roles: anyClient},
	gatewayv1connect.PaymentServiceCheckBalanceProcedure:       {Roles: anyClient},
	gatewayv1connect.PaymentServiceWatchPaymentsProcedure:      {Roles: anyClient},
	// A refund is made by the refunded payment's payee (checked by the
	// handler) or by an admin.
	gatewayv1connect.PaymentServiceRefundPaymentProcedure: {Roles: refunders},

	// AdminService: admins change balances and clear login lockouts;
	// auditors read.
	gatewayv1connect.AdminServiceUpdateBalanceProcedure:     {Roles: admin},
	gatewayv1connect.AdminServiceListBanksProcedure:         {Roles: staffRead},
	gatewayv1connect.AdminServiceClearLoginLockoutProcedure: {Roles: admin},
	// Users, their sessions and accounts: admins change, auditors read.
	gatewayv1connect.AdminServiceCreateUserProcedure:     {Roles: admin},
	gatewayv1connect.AdminServiceDisableUserProcedure:    {Roles: admin},
	gatewayv1connect.AdminServiceEnableUserProcedure:     {Roles: admin},
	gatewayv1connect.AdminServiceResetPasswordProcedure:  {Roles: admin},
	gatewayv1connect.AdminServiceListUsersProcedure:      {Roles: staffRead},
	gatewayv1connect.AdminServiceListSessionsProcedure:   {Roles: staffRead},
	gatewayv1connect.AdminServiceRevokeSessionsProcedure: {Roles: admin},
	gatewayv1connect.AdminServiceOpenAccountProcedure:    {Roles: admin},
	gatewayv1connect.AdminServiceCloseAccountProcedure:   {Roles: admin},
	gatewayv1connect.AdminServiceListAccountsProcedure:   {Roles: staffRead},

	// CoordinatorService: banks only, each under its own name (checked by
	// the handler).
	gatewayv1connect.CoordinatorServiceRegisterBankProcedure:          {Roles: bank},
	gatewayv1connect.CoordinatorServiceGetTransactionOutcomeProcedure: {Roles: bank},

	// BankService: the gateway only.
	bankv1connect.BankServicePrepareTransactionProcedure:    {Roles: gateway},
	bankv1connect.BankServiceCommitTransactionProcedure:     {Roles: gateway},
	bankv1connect.BankServicePrepareTransactionsProcedure:   {Roles: gateway},
	bankv1connect.BankServiceCommitTransactionsProcedure:    {Roles: gateway},
	bankv1connect.BankServiceUpdateBalanceProcedure:         {Roles: gateway},
	bankv1connect.BankServiceGetBalanceProcedure:            {Roles: gateway},
	bankv1connect.BankServiceOpenAccountProcedure:           {Roles: gateway},
	bankv1connect.BankServiceCloseAccountProcedure:          {Roles: gateway},
	bankv1connect.BankServiceListAccountsProcedure:          {Roles: gateway},
	bankv1connect.BankServiceConsumeEnrollmentCodeProcedure: {Roles: gateway},

	// Health checks come from load balancers and probes that hold no
	// credentials. Reflection only describes the public API schema (the
	// protos are not secret) and lets grpcurl work without proto files; it
	// reveals no data.
	healthCheckProcedure:       {Public: true},
	healthWatchProcedure:       {Public: true},
	reflectionV1Procedure:      {Public: true},
	reflectionV1AlphaProcedure: {Public: true},
}

// Sentinel errors of [Authorize], turned into Connect errors by
// [Unauthenticated] and [PermissionDenied].
var (
	// ErrUnauthenticated means the caller presented no credentials, or
	// credentials that are invalid, expired or revoked. A [TokenVerifier]
	// wraps it for tokens it rejects.
	ErrUnauthenticated = errors.New("authz: missing or invalid credentials")
	// ErrPermissionDenied means the caller is authenticated but not allowed.
	ErrPermissionDenied = errors.New("authz: permission denied")
)

// Authorize decides whether p (nil for an anonymous caller) may call
// procedure under policy: nil if allowed, [ErrPermissionDenied] if the
// procedure is not in policy (default deny) or p's roles are not allowed,
// and [ErrUnauthenticated] if the procedure needs credentials and p is nil.
func Authorize(policy map[string]Rule, procedure string, p *Principal) error {
	rule, ok := policy[procedure]
	switch {
	case !ok:
		return ErrPermissionDenied
	case rule.Public:
		return nil
	case p == nil:
		return ErrUnauthenticated
	case rule.Allows(p):
		return nil
	default:
		return ErrPermissionDenied
	}
}
