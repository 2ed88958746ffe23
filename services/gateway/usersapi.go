package gateway

import (
	"context"
	"encoding/base64"
	"log/slog"
	"strings"

	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
	"github.com/remitpay/remit/internal/auth"
	"github.com/remitpay/remit/internal/authz"
	"github.com/remitpay/remit/internal/logging"
	"github.com/remitpay/remit/internal/names"
)

// This file is AdminService's users and sessions (issue 12): the
// handlers of adminAPI over the Authenticator, which audits every change.

// Page sizes of ListUsers.
const (
	defaultUsersPage = 50
	maxUsersPage     = 100
)

// usersPageTokenPrefix versions ListUsers' page tokens (the last client id
// of the page, base64url).
const usersPageTokenPrefix = "u1:"

func encodeUsersPageToken(lastID string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(usersPageTokenPrefix + lastID))
}

func decodeUsersPageToken(tok string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err == nil && strings.HasPrefix(string(b), usersPageTokenPrefix) {
		if id := strings.TrimPrefix(string(b), usersPageTokenPrefix); names.ClientID(id) == nil {
			return id, nil
		}
	}
	return "", errBadPageToken
}

func targetField(ctx context.Context, clientID string) {
	logging.AddFields(ctx, slog.String("target_client_id", clientID))
}

func accountOf(ref *gatewayv1.AccountRef) *authz.Account {
	if ref == nil {
		return nil
	}
	return &authz.Account{Bank: ref.GetBank(), ID: ref.GetAccountId()}
}

// roleFromProto is the client role of r; "" (refused by CreateUser) for
// ROLE_UNSPECIFIED.
func roleFromProto(r gatewayv1.Role) authz.Role {
	for _, role := range authz.ClientRoles {
		if role.Proto() == r {
			return role
		}
	}
	return ""
}

func (a *adminAPI) CreateUser(ctx context.Context, req *gatewayv1.CreateUserRequest) (*gatewayv1.CreateUserResponse, error) {
	targetField(ctx, req.GetClientId())
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	nu := auth.NewUser{ClientID: req.GetClientId(), Account: accountOf(req.GetAccount())}
	for _, r := range req.GetRoles() {
		nu.Roles = append(nu.Roles, roleFromProto(r))
	}
	u, err := a.authn.CreateUser(ctx, nu, req.GetPassword(), p.Name())
	if err != nil {
		return nil, toConnect(err)
	}
	return &gatewayv1.CreateUserResponse{User: u.UserProto()}, nil
}

func (a *adminAPI) DisableUser(ctx context.Context, req *gatewayv1.DisableUserRequest) (*gatewayv1.DisableUserResponse, error) {
	targetField(ctx, req.GetClientId())
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	if strings.EqualFold(p.ClientID, req.GetClientId()) {
		return nil, toConnect(errCannotDisableSelf)
	}
	u, n, err := a.authn.DisableUser(ctx, req.GetClientId(), p.Name())
	if err != nil {
		return nil, toConnect(err)
	}
	return &gatewayv1.DisableUserResponse{User: u.UserProto(), RevokedSessions: clamp32(n)}, nil
}

func (a *adminAPI) EnableUser(ctx context.Context, req *gatewayv1.EnableUserRequest) (*gatewayv1.EnableUserResponse, error) {
	targetField(ctx, req.GetClientId())
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	u, err := a.authn.EnableUser(ctx, req.GetClientId(), p.Name())
	if err != nil {
		return nil, toConnect(err)
	}
	return &gatewayv1.EnableUserResponse{User: u.UserProto()}, nil
}

func (a *adminAPI) ResetPassword(ctx context.Context, req *gatewayv1.ResetPasswordRequest) (*gatewayv1.ResetPasswordResponse, error) {
	targetField(ctx, req.GetClientId())
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	u, n, err := a.authn.ResetPassword(ctx, req.GetClientId(), req.GetNewPassword(), p.Name())
	if err != nil {
		return nil, toConnect(err)
	}
	return &gatewayv1.ResetPasswordResponse{User: u.UserProto(), RevokedSessions: clamp32(n)}, nil
}

func (a *adminAPI) ListUsers(_ context.Context, req *gatewayv1.ListUsersRequest) (*gatewayv1.ListUsersResponse, error) {
	size := int(req.GetPageSize())
	switch {
	case size <= 0:
		size = defaultUsersPage
	case size > maxUsersPage:
		size = maxUsersPage
	}
	after := ""
	if tok := req.GetPageToken(); tok != "" {
		var err error
		if after, err = decodeUsersPageToken(tok); err != nil {
			return nil, toConnect(err)
		}
	}
	users, more := a.authn.ListUsers(after, size)
	res := &gatewayv1.ListUsersResponse{}
	for _, u := range users {
		res.Users = append(res.Users, u.UserProto())
	}
	if more && len(users) > 0 {
		res.NextPageToken = encodeUsersPageToken(users[len(users)-1].ClientID)
	}
	return res, nil
}

func (a *adminAPI) ListSessions(ctx context.Context, req *gatewayv1.ListSessionsRequest) (*gatewayv1.ListSessionsResponse, error) {
	targetField(ctx, req.GetClientId())
	_, list, err := a.authn.ListSessions(ctx, req.GetClientId())
	if err != nil {
		return nil, toConnect(err)
	}
	res := &gatewayv1.ListSessionsResponse{}
	for _, s := range list {
		res.Sessions = append(res.Sessions, &gatewayv1.Session{SessionId: s.ID, CreateTime: ts(s.Created), ExpireTime: ts(s.Expires)})
	}
	return res, nil
}

func (a *adminAPI) RevokeSessions(ctx context.Context, req *gatewayv1.RevokeSessionsRequest) (*gatewayv1.RevokeSessionsResponse, error) {
	targetField(ctx, req.GetClientId())
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	n, err := a.authn.RevokeSessions(ctx, req.GetClientId(), req.GetSessionId(), p.Name())
	if err != nil {
		return nil, toConnect(err)
	}
	return &gatewayv1.RevokeSessionsResponse{RevokedSessions: clamp32(n)}, nil
}
