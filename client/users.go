package client

import (
	"context"
	"iter"
	"unicode/utf8"

	"connectrpc.com/connect"

	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
	"github.com/remitpay/remit/internal/names"
)

// MinPasswordLen is the shortest password the gateway accepts for a new
// password (Register, ChangePassword, CreateUser, ResetPassword), in
// characters. The client refuses a shorter one before sending it, so that a
// typo costs no rate-limited attempt; the gateway also refuses the most
// common passwords (invalid_argument WEAK_PASSWORD).
const MinPasswordLen = 12

// maxPasswordLen is the API's limit on every password field, in characters.
const maxPasswordLen = 256

// ReasonBadCredentials is the ErrorInfo reason of a ChangePassword whose
// current password is wrong (unauthenticated, like a failed login); the
// token itself was fine.
const ReasonBadCredentials = "BAD_CREDENTIALS"

// validateNewPassword checks a new password against the gateway's length
// rule.
func validateNewPassword(password string) error {
	switch n := utf8.RuneCountInString(password); {
	case n < MinPasswordLen:
		return invalid("the password is %d characters; at least %d are needed", n, MinPasswordLen)
	case n > maxPasswordLen:
		return invalid("the password is %d characters; at most %d are allowed", n, maxPasswordLen)
	}
	return nil
}

func validateClientID(clientID string) error {
	if err := names.ClientID(clientID); err != nil {
		return invalid("client id %v", err)
	}
	return nil
}

// callOnce runs fn once: for calls that are not idempotent (Register,
// ChangePassword, CreateUser, ResetPassword), where sending the request
// again after a lost answer would not return the first outcome but fail
// (the client id is taken, the code is used) or count as another failed
// login. The only second try is after a re-login with Credentials when the
// gateway rejected the token itself (reason UNAUTHENTICATED): then it did
// not look at the request. Errors are [*Error] values; Retryable on them
// still says whether the outcome is unknown, so that the caller can check
// (log in, list the users) before trying again.
func (c *Client) callOnce(ctx context.Context, op string, fn func(context.Context) error) error {
	token := c.Token()
	err := c.attempt(ctx, callState{token: token}, fn)
	if err == nil {
		return nil
	}
	e := newError(err, "", 1)
	if e.Code != connect.CodeUnauthenticated || e.Reason != ReasonUnauthenticated || c.creds.Load() == nil || ctx.Err() != nil {
		return e
	}
	if lerr := c.relogin(ctx, token); lerr != nil {
		c.log.DebugContext(ctx, "re-login failed", "op", op, "error", lerr)
		return e
	}
	if err := c.attempt(ctx, callState{token: c.Token(), attempt: 1}, fn); err != nil {
		return newError(err, "", 2)
	}
	return nil
}

// Registration is a new customer's sign-up: the client id and password to
// create, and the bank account to link, proven by the one-time enrollment
// code that account's bank issued (`remit bank enroll`).
type Registration struct {
	// ClientID is the login name to create.
	ClientID string
	// Password is the new password: at least MinPasswordLen characters,
	// not a common one.
	Password string
	// Account is the bank account to link; it becomes the customer's own.
	Account AccountRef
	// EnrollmentCode is the code the account's bank issued for it.
	EnrollmentCode string
}

// Register signs a new customer up and returns it (its client id, linked
// account and the customer role). It does not log in and keeps neither the
// password nor a token: call [Client.Login] next. It is sent once, never
// retried: a retry after a lost answer would find the client id taken and
// the code used. When the error is retryable (no answer), the customer may
// exist: try to log in before asking the bank for a new code. A wrong,
// expired or used code, and an account that does not exist, all fail alike
// (failed_precondition ENROLLMENT_CODE_INVALID).
func (c *Client) Register(ctx context.Context, r Registration) (*gatewayv1.Client, error) {
	if err := validateClientID(r.ClientID); err != nil {
		return nil, err
	}
	if err := validateNewPassword(r.Password); err != nil {
		return nil, err
	}
	if err := r.Account.validate(); err != nil {
		return nil, err
	}
	if r.EnrollmentCode == "" {
		return nil, invalid("an enrollment code is required: the account's bank issues it")
	}
	msg := &gatewayv1.RegisterRequest{
		ClientId: r.ClientID, Password: r.Password, Account: r.Account.Proto(), EnrollmentCode: r.EnrollmentCode,
	}
	var res *gatewayv1.RegisterResponse
	err := c.attempt(ctx, callState{}, func(ctx context.Context) error {
		var err error
		res, err = c.auth.Register(ctx, msg)
		return err
	})
	if err != nil {
		return nil, newError(err, "", 1)
	}
	return res.GetClient(), nil
}

// ChangePassword replaces the logged-in client's password, given the
// current one, and returns how many of its other sessions the gateway ended
// (the session of this Client stays). A wrong current password is
// unauthenticated with reason [ReasonBadCredentials] and counts as a failed
// login, so it is sent once, never retried. Credentials configured on the
// Client are updated to the new password for later re-logins.
func (c *Client) ChangePassword(ctx context.Context, current, newPassword string) (revoked int32, err error) {
	if current == "" {
		return 0, invalid("the current password is required")
	}
	if err := validateNewPassword(newPassword); err != nil {
		return 0, err
	}
	msg := &gatewayv1.ChangePasswordRequest{CurrentPassword: current, NewPassword: newPassword}
	var res *gatewayv1.ChangePasswordResponse
	err = c.callOnce(ctx, "change_password", func(ctx context.Context) error {
		var err error
		res, err = c.auth.ChangePassword(ctx, msg)
		return err
	})
	if err != nil {
		return 0, err
	}
	c.loginMu.Lock()
	if creds := c.creds.Load(); creds != nil {
		c.creds.Store(&Credentials{ClientID: creds.ClientID, Password: newPassword})
	}
	c.loginMu.Unlock()
	return res.GetRevokedSessions(), nil
}

// NewUser is a user for [Client.CreateUser] to create.
type NewUser struct {
	// ClientID is the login name.
	ClientID string
	// Password follows Register's rules.
	Password string
	// Roles are at least one of customer, admin and auditor.
	Roles []gatewayv1.Role
	// Account is the account the user owns: required for a customer,
	// optional for staff.
	Account AccountRef
}

// CreateUser creates a user (admins only) and returns it. Like Register it
// is sent once: a retry after a lost answer would find the client id taken
// (already_exists CLIENT_ID_TAKEN), so on a retryable error list the users
// to find out. The account is not checked at its bank.
func (c *Client) CreateUser(ctx context.Context, u NewUser) (*gatewayv1.User, error) {
	if err := validateClientID(u.ClientID); err != nil {
		return nil, err
	}
	if err := validateNewPassword(u.Password); err != nil {
		return nil, err
	}
	if len(u.Roles) == 0 {
		return nil, invalid("a user needs at least one role")
	}
	msg := &gatewayv1.CreateUserRequest{ClientId: u.ClientID, Password: u.Password, Roles: u.Roles}
	customer := false
	for _, r := range u.Roles {
		customer = customer || r == gatewayv1.Role_ROLE_CUSTOMER
	}
	switch {
	case !u.Account.IsZero():
		if err := u.Account.validate(); err != nil {
			return nil, err
		}
		msg.Account = u.Account.Proto()
	case customer:
		return nil, invalid("a customer needs the account it owns")
	}
	var res *gatewayv1.CreateUserResponse
	err := c.callOnce(ctx, "create_user", func(ctx context.Context) error {
		var err error
		res, err = c.admin.CreateUser(ctx, msg)
		return err
	})
	if err != nil {
		return nil, err
	}
	return res.GetUser(), nil
}

// DisableUser stops clientID from logging in and ends all its sessions at
// once (admins only); it returns the user and how many sessions ended.
// Disabling twice is harmless, so it is retried like the reads.
func (c *Client) DisableUser(ctx context.Context, clientID string) (*gatewayv1.DisableUserResponse, error) {
	if err := validateClientID(clientID); err != nil {
		return nil, err
	}
	var res *gatewayv1.DisableUserResponse
	err := c.call(ctx, "disable_user", "", func(ctx context.Context) error {
		var err error
		res, err = c.admin.DisableUser(ctx, &gatewayv1.DisableUserRequest{ClientId: clientID})
		return err
	})
	return res, err
}

// EnableUser lets a disabled user log in again (admins only). Idempotent
// and retried.
func (c *Client) EnableUser(ctx context.Context, clientID string) (*gatewayv1.User, error) {
	if err := validateClientID(clientID); err != nil {
		return nil, err
	}
	var res *gatewayv1.EnableUserResponse
	err := c.call(ctx, "enable_user", "", func(ctx context.Context) error {
		var err error
		res, err = c.admin.EnableUser(ctx, &gatewayv1.EnableUserRequest{ClientId: clientID})
		return err
	})
	if err != nil {
		return nil, err
	}
	return res.GetUser(), nil
}

// ResetPassword sets clientID's password without the current one and ends
// all its sessions (admins only). It is sent once, like CreateUser: the
// API does not declare it idempotent.
func (c *Client) ResetPassword(ctx context.Context, clientID, newPassword string) (*gatewayv1.ResetPasswordResponse, error) {
	if err := validateClientID(clientID); err != nil {
		return nil, err
	}
	if err := validateNewPassword(newPassword); err != nil {
		return nil, err
	}
	msg := &gatewayv1.ResetPasswordRequest{ClientId: clientID, NewPassword: newPassword}
	var res *gatewayv1.ResetPasswordResponse
	err := c.callOnce(ctx, "reset_password", func(ctx context.Context) error {
		var err error
		res, err = c.admin.ResetPassword(ctx, msg)
		return err
	})
	return res, err
}

// UsersPage returns one page of users by client id (admins and auditors):
// at most pageSize (0: the gateway's default of 50, capped at 100), after
// pageToken (empty: the first page). Its NextPageToken is empty on the last
// page.
func (c *Client) UsersPage(ctx context.Context, pageSize int32, pageToken string) (*gatewayv1.ListUsersResponse, error) {
	msg := &gatewayv1.ListUsersRequest{PageSize: pageSize, PageToken: pageToken}
	var res *gatewayv1.ListUsersResponse
	err := c.call(ctx, "list_users", "", func(ctx context.Context) error {
		var err error
		res, err = c.admin.ListUsers(ctx, msg)
		return err
	})
	return res, err
}

// Users iterates over every user by client id, fetching pages of pageSize
// lazily as the loop advances. An error ends the iteration as its last
// element.
func (c *Client) Users(ctx context.Context, pageSize int32) iter.Seq2[*gatewayv1.User, error] {
	return pages(func(token string) ([]*gatewayv1.User, string, error) {
		res, err := c.UsersPage(ctx, pageSize, token)
		return res.GetUsers(), res.GetNextPageToken(), err
	})
}

// pages follows AIP-158 page tokens: fetch returns one page's items and the
// next token, empty on the last page.
func pages[T any](fetch func(token string) ([]T, string, error)) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		token := ""
		for {
			items, next, err := fetch(token)
			if err != nil {
				var zero T
				yield(zero, err)
				return
			}
			for _, it := range items {
				if !yield(it, nil) {
					return
				}
			}
			if next == "" || next == token {
				return
			}
			token = next
		}
	}
}

// Sessions lists clientID's usable sessions, newest first (admins and
// auditors).
func (c *Client) Sessions(ctx context.Context, clientID string) ([]*gatewayv1.Session, error) {
	if err := validateClientID(clientID); err != nil {
		return nil, err
	}
	var res *gatewayv1.ListSessionsResponse
	err := c.call(ctx, "list_sessions", "", func(ctx context.Context) error {
		var err error
		res, err = c.admin.ListSessions(ctx, &gatewayv1.ListSessionsRequest{ClientId: clientID})
		return err
	})
	if err != nil {
		return nil, err
	}
	return res.GetSessions(), nil
}

// RevokeSessions ends one session of clientID (sessionID set) or all of
// them (sessionID empty), at once, open watch streams included (admins
// only), and returns how many ended. Idempotent and retried.
func (c *Client) RevokeSessions(ctx context.Context, clientID, sessionID string) (int32, error) {
	if err := validateClientID(clientID); err != nil {
		return 0, err
	}
	msg := &gatewayv1.RevokeSessionsRequest{ClientId: clientID, SessionId: sessionID}
	var res *gatewayv1.RevokeSessionsResponse
	err := c.call(ctx, "revoke_sessions", "", func(ctx context.Context) error {
		var err error
		res, err = c.admin.RevokeSessions(ctx, msg)
		return err
	})
	if err != nil {
		return 0, err
	}
	return res.GetRevokedSessions(), nil
}
