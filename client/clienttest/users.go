package clienttest

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/remitpay/remit/client"
	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
	"github.com/remitpay/remit/gen/remit/gateway/v1/gatewayv1connect"
	"github.com/remitpay/remit/internal/rpcerr"
)

// The users of every fake gateway also include "auditor" (password
// "auditor-pw"), who reads everything and changes nothing.

// commonPasswords stands in for the gateway's list of the most common
// passwords: each is long enough, and refused anyway.
var commonPasswords = []string{"password1234", "123456789012", "qwertyuiop12"}

// User returns clientID as the gateway stores it, or nil.
func (g *Gateway) User(clientID string) *gatewayv1.User {
	g.mu.Lock()
	defer g.mu.Unlock()
	u, ok := g.users[clientID]
	if !ok {
		return nil
	}
	return userProto(clientID, u)
}

// Password returns clientID's password, for tests that check a change.
func (g *Gateway) Password(clientID string) string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.users[clientID].password
}

// SessionCount returns how many usable sessions clientID has.
func (g *Gateway) SessionCount(clientID string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for _, id := range g.tokens {
		if id == clientID {
			n++
		}
	}
	return n
}

func userProto(clientID string, u user) *gatewayv1.User {
	p := &gatewayv1.User{
		ClientId: clientID, Roles: slices.Clone(u.roles), Disabled: u.disabled, Source: u.source,
		CreateTime: timestamppb.New(u.created), UpdateTime: timestamppb.New(u.updated),
		PasswordChangeTime: timestamppb.New(u.pwSet),
	}
	if !u.account.IsZero() {
		p.Account = u.account.Proto()
	}
	return p
}

func (g *Gateway) hasRoleLocked(clientID string, roles ...gatewayv1.Role) bool {
	for _, r := range roles {
		if slices.Contains(g.users[clientID].roles, r) {
			return true
		}
	}
	return false
}

func (g *Gateway) staffLocked(clientID string) bool {
	return g.hasRoleLocked(clientID, gatewayv1.Role_ROLE_ADMIN, gatewayv1.Role_ROLE_AUDITOR)
}

// authorizeLocked records the call and returns the caller if it holds one
// of roles, as the gateway's authz interceptor does.
func (g *Gateway) authorizeLocked(ctx context.Context, procedure, txID string, roles ...gatewayv1.Role) (string, error) {
	clientID := g.beginLocked(ctx, procedure, txID)
	if clientID == "" {
		return "", unauthenticated()
	}
	if !g.hasRoleLocked(clientID, roles...) {
		return "", permissionDenied("permission denied")
	}
	return clientID, nil
}

var (
	adminOnly = []gatewayv1.Role{gatewayv1.Role_ROLE_ADMIN}
	staffRead = []gatewayv1.Role{gatewayv1.Role_ROLE_ADMIN, gatewayv1.Role_ROLE_AUDITOR}
)

// checkPassword applies Register's password rules.
func checkPassword(pw string) error {
	if utf8.RuneCountInString(pw) < client.MinPasswordLen || slices.Contains(commonPasswords, strings.ToLower(pw)) {
		return rpcerr.New(connect.CodeInvalidArgument, "WEAK_PASSWORD",
			"the password must be at least 12 characters and not a common password", nil)
	}
	return nil
}

// takenLocked reports whether clientID is taken, compared case-insensitively.
func (g *Gateway) takenLocked(clientID string) bool {
	for id := range g.users {
		if strings.EqualFold(id, clientID) {
			return true
		}
	}
	return false
}

// linkedLocked reports whether a customer already owns account.
func (g *Gateway) linkedLocked(account client.AccountRef) bool {
	for _, u := range g.users {
		if u.account == account && slices.Contains(u.roles, gatewayv1.Role_ROLE_CUSTOMER) {
			return true
		}
	}
	return false
}

func clientIDTaken() error {
	return rpcerr.New(connect.CodeAlreadyExists, "CLIENT_ID_TAKEN", "this client id is taken: choose another", nil)
}

func accountLinked() error {
	return rpcerr.New(connect.CodeAlreadyExists, "ACCOUNT_ALREADY_LINKED", "this account is already linked to a customer", nil)
}

// revokeLocked ends clientID's sessions but keep (a token), and returns how
// many ended. Watch streams of those sessions end too.
func (g *Gateway) revokeLocked(clientID, keep, sessionID string) int32 {
	var n int32
	for tok, id := range g.tokens {
		if id != clientID || tok == keep || (sessionID != "" && g.sessions[tok].id != sessionID) {
			continue
		}
		delete(g.tokens, tok)
		delete(g.sessions, tok)
		n++
	}
	if n > 0 {
		g.wakeLocked()
	}
	return n
}

func (s authService) Register(ctx context.Context, req *gatewayv1.RegisterRequest) (*gatewayv1.RegisterResponse, error) {
	g := s.g
	g.mu.Lock()
	defer g.mu.Unlock()
	g.beginLocked(ctx, gatewayv1connect.AuthServiceRegisterProcedure, "")
	if err := checkPassword(req.GetPassword()); err != nil {
		return nil, err
	}
	if g.takenLocked(req.GetClientId()) {
		return nil, clientIDTaken()
	}
	acct := client.AccountRefFromProto(req.GetAccount())
	code, ok := g.codes[acct]
	if _, exists := g.accounts[acct]; !exists || !ok || code != req.GetEnrollmentCode() {
		// The same answer whether the account exists or not.
		return nil, rpcerr.New(connect.CodeFailedPrecondition, "ENROLLMENT_CODE_INVALID",
			"the enrollment code is wrong, expired or used: ask the account's bank for a new one", nil)
	}
	if g.linkedLocked(acct) {
		return nil, accountLinked()
	}
	delete(g.codes, acct) // one time
	now := time.Now()
	u := user{password: req.GetPassword(), account: acct, roles: []gatewayv1.Role{gatewayv1.Role_ROLE_CUSTOMER},
		source: gatewayv1.UserSource_USER_SOURCE_REGISTRATION, created: now, updated: now, pwSet: now}
	g.users[req.GetClientId()] = u
	return &gatewayv1.RegisterResponse{Client: &gatewayv1.Client{
		ClientId: req.GetClientId(), Account: acct.Proto(), Roles: u.roles,
	}}, nil
}

func (s authService) ChangePassword(ctx context.Context, req *gatewayv1.ChangePasswordRequest) (*gatewayv1.ChangePasswordResponse, error) {
	g := s.g
	g.mu.Lock()
	defer g.mu.Unlock()
	clientID := g.beginLocked(ctx, gatewayv1connect.AuthServiceChangePasswordProcedure, "")
	if clientID == "" {
		return nil, unauthenticated()
	}
	u := g.users[clientID]
	if u.password != req.GetCurrentPassword() {
		return nil, rpcerr.New(connect.CodeUnauthenticated, client.ReasonBadCredentials, "the current password is wrong", nil)
	}
	if err := checkPassword(req.GetNewPassword()); err != nil {
		return nil, err
	}
	u.password, u.updated, u.pwSet = req.GetNewPassword(), time.Now(), time.Now()
	g.users[clientID] = u
	n := g.revokeLocked(clientID, g.calls[len(g.calls)-1].Token, "")
	return &gatewayv1.ChangePasswordResponse{RevokedSessions: n}, nil
}

func (s adminService) CreateUser(ctx context.Context, req *gatewayv1.CreateUserRequest) (*gatewayv1.CreateUserResponse, error) {
	g := s.g
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, err := g.authorizeLocked(ctx, gatewayv1connect.AdminServiceCreateUserProcedure, "", adminOnly...); err != nil {
		return nil, err
	}
	if err := checkPassword(req.GetPassword()); err != nil {
		return nil, err
	}
	acct := client.AccountRefFromProto(req.GetAccount())
	customer := slices.Contains(req.GetRoles(), gatewayv1.Role_ROLE_CUSTOMER)
	switch {
	case customer && acct.IsZero():
		return nil, rpcerr.New(connect.CodeInvalidArgument, "ACCOUNT_REQUIRED", "a customer needs the account it owns", nil)
	case g.takenLocked(req.GetClientId()):
		return nil, clientIDTaken()
	case customer && g.linkedLocked(acct):
		return nil, accountLinked()
	}
	now := time.Now()
	u := user{password: req.GetPassword(), account: acct, roles: slices.Clone(req.GetRoles()),
		source: gatewayv1.UserSource_USER_SOURCE_ADMIN, created: now, updated: now, pwSet: now}
	g.users[req.GetClientId()] = u
	return &gatewayv1.CreateUserResponse{User: userProto(req.GetClientId(), u)}, nil
}

// userLocked returns the user named by a request, or not_found.
func (g *Gateway) userLocked(clientID string) (user, error) {
	u, ok := g.users[clientID]
	if !ok {
		return u, rpcerr.New(connect.CodeNotFound, "USER_NOT_FOUND", "no such user", nil)
	}
	return u, nil
}

func (s adminService) DisableUser(ctx context.Context, req *gatewayv1.DisableUserRequest) (*gatewayv1.DisableUserResponse, error) {
	g := s.g
	g.mu.Lock()
	defer g.mu.Unlock()
	caller, err := g.authorizeLocked(ctx, gatewayv1connect.AdminServiceDisableUserProcedure, "", adminOnly...)
	if err != nil {
		return nil, err
	}
	if caller == req.GetClientId() {
		return nil, rpcerr.New(connect.CodeFailedPrecondition, "CANNOT_DISABLE_SELF", "an admin cannot disable itself", nil)
	}
	u, err := g.userLocked(req.GetClientId())
	if err != nil {
		return nil, err
	}
	if !u.disabled {
		u.disabled, u.updated = true, time.Now()
		g.users[req.GetClientId()] = u
	}
	n := g.revokeLocked(req.GetClientId(), "", "")
	return &gatewayv1.DisableUserResponse{User: userProto(req.GetClientId(), u), RevokedSessions: n}, nil
}

func (s adminService) EnableUser(ctx context.Context, req *gatewayv1.EnableUserRequest) (*gatewayv1.EnableUserResponse, error) {
	g := s.g
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, err := g.authorizeLocked(ctx, gatewayv1connect.AdminServiceEnableUserProcedure, "", adminOnly...); err != nil {
		return nil, err
	}
	u, err := g.userLocked(req.GetClientId())
	if err != nil {
		return nil, err
	}
	if u.disabled {
		u.disabled, u.updated = false, time.Now()
		g.users[req.GetClientId()] = u
	}
	return &gatewayv1.EnableUserResponse{User: userProto(req.GetClientId(), u)}, nil
}

func (s adminService) ResetPassword(ctx context.Context, req *gatewayv1.ResetPasswordRequest) (*gatewayv1.ResetPasswordResponse, error) {
	g := s.g
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, err := g.authorizeLocked(ctx, gatewayv1connect.AdminServiceResetPasswordProcedure, "", adminOnly...); err != nil {
		return nil, err
	}
	u, err := g.userLocked(req.GetClientId())
	if err != nil {
		return nil, err
	}
	if err := checkPassword(req.GetNewPassword()); err != nil {
		return nil, err
	}
	u.password, u.updated, u.pwSet = req.GetNewPassword(), time.Now(), time.Now()
	g.users[req.GetClientId()] = u
	n := g.revokeLocked(req.GetClientId(), "", "")
	return &gatewayv1.ResetPasswordResponse{User: userProto(req.GetClientId(), u), RevokedSessions: n}, nil
}

// page applies AIP-158 paging to n sorted items: the index range of the
// page and the next token ("" on the last page).
func page(n int, size int32, token string) (start, end int, next string, err error) {
	if token != "" {
		start, err = strconv.Atoi(token)
		if err != nil || start < 0 || start > n {
			return 0, 0, "", rpcerr.New(connect.CodeInvalidArgument, "INVALID_PAGE_TOKEN", "bad page token", nil)
		}
	}
	sz := int(size)
	if sz == 0 {
		sz = 50
	}
	end = min(start+min(sz, 100), n)
	if end < n {
		next = strconv.Itoa(end)
	}
	return start, end, next, nil
}

func (s adminService) ListUsers(ctx context.Context, req *gatewayv1.ListUsersRequest) (*gatewayv1.ListUsersResponse, error) {
	g := s.g
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, err := g.authorizeLocked(ctx, gatewayv1connect.AdminServiceListUsersProcedure, "", staffRead...); err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(g.users))
	for id := range g.users {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	start, end, next, err := page(len(ids), req.GetPageSize(), req.GetPageToken())
	if err != nil {
		return nil, err
	}
	res := &gatewayv1.ListUsersResponse{NextPageToken: next}
	for _, id := range ids[start:end] {
		res.Users = append(res.Users, userProto(id, g.users[id]))
	}
	return res, nil
}

func (s adminService) ListSessions(ctx context.Context, req *gatewayv1.ListSessionsRequest) (*gatewayv1.ListSessionsResponse, error) {
	g := s.g
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, err := g.authorizeLocked(ctx, gatewayv1connect.AdminServiceListSessionsProcedure, "", staffRead...); err != nil {
		return nil, err
	}
	if _, err := g.userLocked(req.GetClientId()); err != nil {
		return nil, err
	}
	var list []session
	for tok, id := range g.tokens {
		if id == req.GetClientId() {
			list = append(list, g.sessions[tok])
		}
	}
	slices.SortFunc(list, func(a, b session) int {
		if c := b.created.Compare(a.created); c != 0 {
			return c // newest first
		}
		return strings.Compare(a.id, b.id)
	})
	res := &gatewayv1.ListSessionsResponse{}
	for _, se := range list {
		res.Sessions = append(res.Sessions, &gatewayv1.Session{
			SessionId: se.id, CreateTime: timestamppb.New(se.created), ExpireTime: timestamppb.New(se.expire),
		})
	}
	return res, nil
}

func (s adminService) RevokeSessions(ctx context.Context, req *gatewayv1.RevokeSessionsRequest) (*gatewayv1.RevokeSessionsResponse, error) {
	g := s.g
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, err := g.authorizeLocked(ctx, gatewayv1connect.AdminServiceRevokeSessionsProcedure, "", adminOnly...); err != nil {
		return nil, err
	}
	if _, err := g.userLocked(req.GetClientId()); err != nil {
		return nil, err
	}
	return &gatewayv1.RevokeSessionsResponse{RevokedSessions: g.revokeLocked(req.GetClientId(), "", req.GetSessionId())}, nil
}
