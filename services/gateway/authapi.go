package gateway

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/time/rate"
	"google.golang.org/protobuf/types/known/timestamppb"

	bankv1 "github.com/remitpay/remit/gen/remit/bank/v1"
	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
	"github.com/remitpay/remit/internal/auth"
	"github.com/remitpay/remit/internal/authz"
	"github.com/remitpay/remit/internal/logging"
	"github.com/remitpay/remit/internal/rpcerr"
)

// Default per-source limit of AuthService.Register: a sign-up is rare,
// and each costs a bank call and a password hash.
const (
	DefaultRegisterRate  rate.Limit = 5.0 / 60 // per second: 5 a minute
	DefaultRegisterBurst            = 3
)

// reasonEnrollmentCodeInvalid is the bank's ErrorInfo reason for any code
// it refuses (ConsumeEnrollmentCode).
const reasonEnrollmentCodeInvalid = "ENROLLMENT_CODE_INVALID"

// authAPI implements AuthService over the Authenticator.
type authAPI struct {
	authn *auth.Authenticator
	// banks finds the account side of a registered bank
	// (Registry.AccountBank); tests pass a fake.
	banks func(name string) (AccountBank, BankState)
	// register limits Register per source (authz.SourceOf).
	register *authz.KeyedLimiter
	// bankCall bounds the ConsumeEnrollmentCode call.
	bankCall time.Duration
	log      *slog.Logger
}

func peerAddr(ctx context.Context) string {
	if ci, ok := connect.CallInfoForHandlerContext(ctx); ok {
		return ci.Peer().Addr
	}
	return ""
}

func (a *authAPI) Login(ctx context.Context, req *gatewayv1.LoginRequest) (*gatewayv1.LoginResponse, error) {
	token, expire, user, err := a.authn.Login(ctx, req.GetClientId(), req.GetPassword(), peerAddr(ctx))
	switch {
	case errors.Is(err, auth.ErrBadCredentials):
		return nil, toConnect(errBadCredentials)
	case err != nil:
		return nil, toConnect(err) // a lockout too: see loginLocked
	}
	// Only now, for a user that exists: the submitted client id of a failed
	// login may be a password typed into the wrong field.
	logging.AddFields(ctx, slog.String("client_id", user.ClientID))
	return &gatewayv1.LoginResponse{AccessToken: token, ExpireTime: timestamppb.New(expire), Client: user.Proto()}, nil
}

func (a *authAPI) Logout(ctx context.Context, _ *gatewayv1.LogoutRequest) (*gatewayv1.LogoutResponse, error) {
	p, ok := authz.PrincipalFrom(ctx)
	if !ok || p.SessionID == "" {
		return nil, toConnect(errNoPrincipal)
	}
	if err := a.authn.Logout(ctx, p.SessionID); err != nil {
		return nil, toConnect(err)
	}
	return &gatewayv1.LogoutResponse{}, nil
}

// enrollmentRejectedError is the bank's refusal of a code: the client reads
// errEnrollmentCodeInvalid, and the Authenticator counts it as a failure of
// the source (auth.ErrEnrollmentRejected).
type enrollmentRejectedError struct{}

func (enrollmentRejectedError) Error() string { return errEnrollmentCodeInvalid.Error() }

func (enrollmentRejectedError) Is(target error) bool {
	return target == errEnrollmentCodeInvalid || target == auth.ErrEnrollmentRejected
}

// Register signs a customer up (see auth.Authenticator.Register): the bank
// of the account consumes the enrollment code first.
func (a *authAPI) Register(ctx context.Context, req *gatewayv1.RegisterRequest) (*gatewayv1.RegisterResponse, error) {
	peer := peerAddr(ctx)
	if ok, retry := a.register.Allow(authz.SourceOf(peer), time.Now()); !ok {
		return nil, authz.RateLimited(retry)
	}
	acct := authz.Account{Bank: req.GetAccount().GetBank(), ID: req.GetAccount().GetAccountId()}
	user, err := a.authn.Register(ctx, auth.Registration{ClientID: req.GetClientId(), Password: req.GetPassword(), Account: acct}, peer,
		func(ctx context.Context) error {
			return a.consumeCode(ctx, acct, req.GetEnrollmentCode(), req.GetClientId())
		})
	if err != nil {
		return nil, toConnect(err)
	}
	logging.AddFields(ctx, slog.String("client_id", user.ClientID))
	return &gatewayv1.RegisterResponse{Client: user.Proto()}, nil
}

// consumeCode has the account's bank check and consume the enrollment code
// for clientID. The bank's answers other than a refusal are not the
// caller's business: they are logged, and the caller reads that the bank
// is unavailable (nothing was created; the same code may be retried).
func (a *authAPI) consumeCode(ctx context.Context, acct authz.Account, code, clientID string) error {
	bank, _ := a.banks(acct.Bank)
	if bank == nil {
		return errRegisterBankNotFound
	}
	cctx, cancel := context.WithTimeout(ctx, a.bankCall)
	defer cancel()
	_, err := bank.ConsumeEnrollmentCode(cctx, &bankv1.ConsumeEnrollmentCodeRequest{AccountId: acct.ID, Code: code, ClientId: clientID})
	switch {
	case err == nil:
		return nil
	case connect.CodeOf(err) == connect.CodeFailedPrecondition && rpcerr.Reason(err) == reasonEnrollmentCodeInvalid:
		return enrollmentRejectedError{}
	case ctx.Err() != nil:
		return ctx.Err()
	}
	a.log.WarnContext(ctx, "enrollment code not checked: the bank failed", "bank", acct.Bank, "err", err)
	return errRegisterBankUnavailable
}

// ChangePassword replaces the caller's password (auth.Authenticator
// .ChangePassword): a wrong current password is the same
// INVALID_CREDENTIALS as a failed login.
func (a *authAPI) ChangePassword(ctx context.Context, req *gatewayv1.ChangePasswordRequest) (*gatewayv1.ChangePasswordResponse, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	n, err := a.authn.ChangePassword(ctx, p, req.GetCurrentPassword(), req.GetNewPassword(), peerAddr(ctx))
	switch {
	case errors.Is(err, auth.ErrBadCredentials):
		return nil, toConnect(errBadCredentials)
	case errors.Is(err, auth.ErrInvalidToken):
		// The session was revoked while the call was on its way.
		return nil, authz.Unauthenticated()
	case err != nil:
		return nil, toConnect(err)
	}
	return &gatewayv1.ChangePasswordResponse{RevokedSessions: clamp32(n)}, nil
}

// clamp32 is n as an int32 count, clamped.
func clamp32[T ~int | ~int64](n T) int32 {
	return int32(min(int64(n), math.MaxInt32)) //nolint:gosec // clamped
}
