package gateway

import (
	"context"
	"errors"
	"log/slog"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
	"github.com/remitpay/remit/gen/remit/gateway/v1/gatewayv1connect"
	"github.com/remitpay/remit/internal/auth"
	"github.com/remitpay/remit/internal/authz"
	"github.com/remitpay/remit/internal/logging"
)

// authAPI implements AuthService over the Authenticator.
type authAPI struct {
	gatewayv1connect.UnimplementedAuthServiceHandler // issue 12: until implemented

	authn *auth.Authenticator
}

func (a *authAPI) Login(ctx context.Context, req *gatewayv1.LoginRequest) (*gatewayv1.LoginResponse, error) {
	peer := ""
	if ci, ok := connect.CallInfoForHandlerContext(ctx); ok {
		peer = ci.Peer().Addr
	}
	token, expire, user, err := a.authn.Login(ctx, req.GetClientId(), req.GetPassword(), peer)
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
