package auth

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/remitpay/remit/internal/audit"
	"github.com/remitpay/remit/internal/authz"
	"github.com/remitpay/remit/internal/names"
)

// Errors of user management. Their messages are written for the caller.
var (
	// ErrClientIDTaken: a user with this client id (compared
	// case-insensitively) exists.
	ErrClientIDTaken = errors.New("this client id is taken; choose another")
	// ErrAccountLinked: the account is linked to another user already.
	ErrAccountLinked = errors.New("this account is already linked to a user")
	// ErrAccountRequired: a customer needs an account.
	ErrAccountRequired = errors.New("a customer needs an account: set account.bank and account.account_id")
	// ErrInvalidUser: the user to create is malformed (no role, a role a
	// client cannot have, an invalid name).
	ErrInvalidUser = errors.New("invalid user")
	// ErrEnrollmentRejected is what the proof passed to
	// [Authenticator.Register] wraps when the bank refused the enrollment
	// code: the failure counts in the source's login throttle.
	ErrEnrollmentRejected = errors.New("auth: enrollment code rejected")
)

// Audit attribute keys of user management.
const (
	KeyBy              = "by"
	KeyRoles           = "roles"
	KeyBank            = "bank"
	KeyAccountID       = "account_id"
	KeyRevokedSessions = "revoked_sessions"
	KeyUserSource      = "user_source"
)

// Values of [KeyBy] that are not an admin's principal name.
const (
	BySelf         = "self"
	ByRegistration = "registration"
	ByUsersFile    = "users_file"
)

// NewUser is a user to create through the API.
type NewUser struct {
	ClientID string
	Roles    []authz.Role
	// Account is required for a customer, optional for staff.
	Account *authz.Account
}

func (nu NewUser) validate() error {
	if err := names.ClientID(nu.ClientID); err != nil {
		return fmt.Errorf("%w: client_id %w", ErrInvalidUser, err)
	}
	if len(nu.Roles) == 0 {
		return fmt.Errorf("%w: give at least one role", ErrInvalidUser)
	}
	for i, r := range nu.Roles {
		if _, ok := authz.ParseClientRole(string(r)); !ok {
			return fmt.Errorf("%w: a user may be customer, admin or auditor", ErrInvalidUser)
		}
		if slices.Contains(nu.Roles[:i], r) {
			return fmt.Errorf("%w: duplicate role %s", ErrInvalidUser, r)
		}
	}
	if a := nu.Account; a != nil {
		if err := names.Bank(a.Bank); err != nil {
			return fmt.Errorf("%w: account.bank %w", ErrInvalidUser, err)
		}
		if err := names.AccountID(a.ID); err != nil {
			return fmt.Errorf("%w: account.account_id %w", ErrInvalidUser, err)
		}
	} else if slices.Contains(nu.Roles, authz.RoleCustomer) {
		return ErrAccountRequired
	}
	return nil
}

func userAttrs(u *User) []slog.Attr {
	attrs := []slog.Attr{slog.String(KeyClientID, u.ClientID), slog.String(KeyRoles, rolesColumn(u.Roles))}
	if u.Account != nil {
		attrs = append(attrs, slog.String(KeyBank, u.Account.Bank), slog.String(KeyAccountID, u.Account.ID))
	}
	return attrs
}

// change runs fn in a write transaction of the users table under mu and
// refreshes the snapshot after it committed.
//
// Other processes on the same database (gateway replicas) refresh theirs
// when they hear of it (topicUsers): a user disabled, a password or roles
// changed on one replica holds on all.
func (a *Authenticator) change(ctx context.Context, fn func(t *userTx) error) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	// The notice is part of the change's transaction: the other replicas
	// hear of it exactly when it commits.
	if err := a.sessions.usersTx(ctx, func(t *userTx) error {
		if err := fn(t); err != nil {
			return err
		}
		return a.sessions.bus.PublishIn(t.ctx, t.tx, topicUsers, "")
	}); err != nil {
		return err
	}
	return a.refresh(ctx)
}

// topicUsers is the change bus's topic of the users table: a notice means
// "read it again".
const topicUsers = "users"

// heardUsers refreshes the snapshot after another process changed the
// users (or this one's listener reconnected).
func (a *Authenticator) heardUsers() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.refresh(context.Background()); err != nil {
		a.log.Error("cannot reload the users another gateway replica changed; serving the previous snapshot", "err", err)
	}
}

// CreateUser creates a user for an admin (principal, for the audit log):
// the password follows [CheckPassword]; a taken client id is
// [ErrClientIDTaken], an account linked to another user [ErrAccountLinked].
func (a *Authenticator) CreateUser(ctx context.Context, nu NewUser, password, principal string) (*User, error) {
	if err := nu.validate(); err != nil {
		return nil, err
	}
	if err := CheckPassword(nu.ClientID, password); err != nil {
		return nil, err
	}
	if _, taken := a.users.Load().LookupFold(nu.ClientID); taken {
		return nil, ErrClientIDTaken // spares the hash; the insert checks again
	}
	u, err := a.create(ctx, nu, password, SourceAdmin)
	if err != nil {
		return nil, err
	}
	a.record(ctx, audit.EventUserCreated, append(userAttrs(u), slog.String(KeyBy, principal))...)
	return u, nil
}

func (a *Authenticator) create(ctx context.Context, nu NewUser, password string, source Source) (*User, error) {
	hash, err := a.hashNew(ctx, password)
	if err != nil {
		return nil, err
	}
	u := &User{ClientID: nu.ClientID, PasswordHash: hash, Roles: slices.Clone(nu.Roles), Source: source, passwordBy: passwordByAPI}
	if nu.Account != nil {
		acct := *nu.Account
		u.Account = &acct
	}
	if err := a.change(ctx, func(t *userTx) error { return t.insert(u) }); err != nil {
		return nil, err
	}
	created, _ := a.users.Load().Lookup(u.ClientID)
	return created, nil
}

// Registration is a customer's sign-up: [Authenticator.Register].
type Registration struct {
	ClientID string
	Password string
	Account  authz.Account
}

// Register signs a new customer up: the client id must be free, the
// password pass [CheckPassword], and prove (the bank consuming the
// enrollment code for this client id) must succeed; then the customer is
// created with the account linked, unless another user holds it
// ([ErrAccountLinked]), in one transaction.
//
// Attempts count against the source's login throttle (remoteAddr, as for
// Login): while the source is locked out Register returns a
// [*LockoutError] without calling prove, and a proof that fails with
// [ErrEnrollmentRejected] counts as a failed login of the source, so that
// guessing codes locks the source out like guessing passwords.
//
// A retry after a lost answer succeeds: if the client id is already the
// registered customer of this account, prove is called again (the bank
// accepts the same code from the same client id) and, if the password is
// the stored one too, the existing user is returned.
func (a *Authenticator) Register(ctx context.Context, r Registration, remoteAddr string, prove func(context.Context) error) (*User, error) {
	nu := NewUser{ClientID: r.ClientID, Roles: []authz.Role{authz.RoleCustomer}, Account: &r.Account}
	if err := nu.validate(); err != nil {
		return nil, err
	}
	if err := CheckPassword(r.ClientID, r.Password); err != nil {
		return nil, err
	}
	src := authz.SourceOf(remoteAddr)
	srcKey := throttleKey{src: src}
	if retry, ok := a.sources.begin(srcKey, time.Now()); !ok {
		return nil, &LockoutError{RetryAfter: retry}
	}
	failed := false
	defer func() {
		lock, _, _ := a.sources.end(srcKey, time.Now(), failed, false)
		if failed {
			a.persist(ctx, throttleRef{a.sources, srcKey})
			if lock > 0 {
				a.record(ctx, audit.EventLoginLocked, slog.String(KeySource, src),
					slog.String(KeyLocked, LockedSource), slog.Duration(KeyRetryAfter, lock))
			}
		}
	}()

	existing, taken := a.users.Load().LookupFold(r.ClientID)
	retry := taken && existing.ClientID == r.ClientID && existing.Source == SourceRegistration &&
		!existing.Disabled && existing.Account != nil && *existing.Account == r.Account
	if taken && !retry {
		return nil, ErrClientIDTaken
	}
	if err := prove(ctx); err != nil {
		if errors.Is(err, ErrEnrollmentRejected) {
			failed = true
			a.record(ctx, audit.EventRegisterFailed, slog.String(KeySource, src),
				slog.String(KeyBank, r.Account.Bank), slog.String(KeyAccountID, r.Account.ID),
				slog.String(KeyReason, "enrollment_code_invalid"))
		}
		return nil, err
	}
	if retry {
		// Checked as a login (throttled, counted, audited): with a
		// consumed code this path answers whether a password is right.
		switch _, err := a.authenticate(ctx, existing.ClientID, r.Password, remoteAddr); {
		case errors.Is(err, ErrBadCredentials):
			return nil, ErrClientIDTaken
		case err != nil:
			return nil, err
		}
		return existing, nil
	}
	u, err := a.create(ctx, nu, r.Password, SourceRegistration)
	if err != nil {
		if errors.Is(err, ErrAccountLinked) {
			a.record(ctx, audit.EventRegisterFailed, slog.String(KeySource, src),
				slog.String(KeyBank, r.Account.Bank), slog.String(KeyAccountID, r.Account.ID),
				slog.String(KeyReason, "account_already_linked"))
		}
		return nil, err
	}
	a.record(ctx, audit.EventUserRegistered, append(userAttrs(u), slog.String(KeySource, src), slog.String(KeyBy, ByRegistration))...)
	return u, nil
}

// lookupForChange returns the user named clientID (case-insensitively) in
// the transaction, or ErrUnknownUser.
func lookupForChange(t *userTx, clientID string) (*User, error) {
	u, err := t.byFold(clientID)
	if err != nil {
		return nil, err
	}
	if u == nil {
		return nil, ErrUnknownUser
	}
	return u, nil
}

// DisableUser disables clientID (case-insensitively) for an admin
// (principal) and ends every session it has at once, open streams
// included. Disabling a disabled user succeeds and ends nothing more.
func (a *Authenticator) DisableUser(ctx context.Context, clientID, principal string) (*User, int64, error) {
	var id string
	var n int64
	wasDisabled := false
	err := a.change(ctx, func(t *userTx) error {
		u, err := lookupForChange(t, clientID)
		if err != nil {
			return err
		}
		id, wasDisabled = u.ClientID, u.Disabled && u.disabledBy == disabledByAdmin
		if wasDisabled {
			return nil
		}
		// An admin's disabling outlasts the file: an import does not
		// enable it again.
		u.disabledBy = disabledByAdmin
		if err := t.update(u, false); err != nil {
			return err
		}
		n, err = t.revokeSessions(id, "")
		return err
	})
	if err != nil {
		return nil, 0, err
	}
	u, _ := a.users.Load().Lookup(id)
	if !wasDisabled || n > 0 {
		a.record(ctx, audit.EventUserDisabled, slog.String(KeyClientID, id), slog.String(KeyBy, principal), slog.Int64(KeyRevokedSessions, n))
	}
	return u, n, nil
}

// EnableUser lets a disabled user log in again (an admin, principal). A
// file user that had left the users file becomes an admin user: the file
// no longer manages it.
func (a *Authenticator) EnableUser(ctx context.Context, clientID, principal string) (*User, error) {
	var id string
	changed := false
	err := a.change(ctx, func(t *userTx) error {
		u, err := lookupForChange(t, clientID)
		if err != nil {
			return err
		}
		id = u.ClientID
		if !u.Disabled {
			return nil
		}
		changed = true
		u.disabledBy = ""
		if u.Source == SourceFile && u.fileHash == "" {
			if _, err := t.tx.ExecContext(t.ctx, `UPDATE users SET source = ? WHERE client_id = ?`, string(SourceAdmin), u.ClientID); err != nil {
				return err
			}
		}
		return t.update(u, false)
	})
	if err != nil {
		return nil, err
	}
	if changed {
		a.record(ctx, audit.EventUserEnabled, slog.String(KeyClientID, id), slog.String(KeyBy, principal))
	}
	u, _ := a.users.Load().Lookup(id)
	return u, nil
}

// ResetPassword sets clientID's password for an admin (principal), without
// the current one, and ends every session of the user at once. The
// password follows [CheckPassword]; the users file no longer changes it
// (see [Authenticator.Import]).
func (a *Authenticator) ResetPassword(ctx context.Context, clientID, password, principal string) (*User, int64, error) {
	u, ok := a.users.Load().LookupFold(clientID)
	if !ok {
		return nil, 0, ErrUnknownUser
	}
	if err := CheckPassword(u.ClientID, password); err != nil {
		return nil, 0, err
	}
	id, n, err := a.setPassword(ctx, u.ClientID, password, "", "")
	if err != nil {
		return nil, 0, err
	}
	a.record(ctx, audit.EventPasswordReset, slog.String(KeyClientID, id), slog.String(KeyBy, principal), slog.Int64(KeyRevokedSessions, n))
	cur, _ := a.users.Load().Lookup(id)
	return cur, n, nil
}

// setPassword stores a new password set through the API and revokes every
// session of the user but keep, in the same transaction. If keep is set (ChangePassword), it must
// still be a usable session of the user and the stored hash still
// verified (the one the current password was checked against), both
// checked in the write transaction: a session revoked, or a password
// changed by someone else, while this change was on its way wins over it
// ([ErrInvalidToken], [ErrBadCredentials]).
func (a *Authenticator) setPassword(ctx context.Context, clientID, password, keep, verified string) (string, int64, error) {
	hash, err := a.hashNew(ctx, password)
	if err != nil {
		return "", 0, err
	}
	var id string
	var n int64
	if err := a.change(ctx, func(t *userTx) error {
		u, err := lookupForChange(t, clientID)
		if err != nil {
			return err
		}
		id = u.ClientID
		if keep != "" {
			var one int
			err := t.tx.QueryRowContext(t.ctx, `SELECT 1 FROM sessions WHERE id = ? AND client_id = ? AND revoked_at IS NULL AND expires_at > ?`,
				keep, id, t.now.UnixMilli()).Scan(&one)
			switch {
			case errors.Is(err, sql.ErrNoRows):
				return ErrInvalidToken
			case err != nil:
				return err
			}
		}
		if verified != "" && u.PasswordHash != verified {
			return ErrBadCredentials
		}
		u.PasswordHash, u.passwordBy = hash, passwordByAPI
		if err := t.update(u, true); err != nil {
			return err
		}
		n, err = t.revokeSessions(id, keep)
		return err
	}); err != nil {
		return "", 0, err
	}
	return id, n, nil
}

// ChangePassword replaces the password of p (the caller) given its
// current one, checked like a login from remoteAddr: a wrong one is
// [ErrBadCredentials] and counts as a failed login, and a locked-out
// source gets a [*LockoutError]. Every other session of the caller ends at
// once; p's own stays. It returns how many ended. If p's session was
// revoked while the call was on its way it is [ErrInvalidToken], and if the
// password changed meanwhile [ErrBadCredentials]: nothing changes.
func (a *Authenticator) ChangePassword(ctx context.Context, p *authz.Principal, current, newPassword, remoteAddr string) (int64, error) {
	if p == nil || p.Kind != authz.KindClient {
		return 0, ErrBadCredentials
	}
	if err := CheckPassword(p.ClientID, newPassword); err != nil {
		return 0, err
	}
	user, err := a.authenticate(ctx, p.ClientID, current, remoteAddr)
	if err != nil {
		return 0, err
	}
	if p.SessionID == "" {
		return 0, ErrInvalidToken
	}
	id, n, err := a.setPassword(ctx, p.ClientID, newPassword, p.SessionID, user.PasswordHash)
	if err != nil {
		return 0, err
	}
	a.record(ctx, audit.EventPasswordChanged, slog.String(KeyClientID, id), slog.String(KeyBy, BySelf),
		slog.String(KeySessionID, p.SessionID), slog.Int64(KeyRevokedSessions, n))
	return n, nil
}

// ListUsers returns at most limit users, by client id, starting after
// the client id given ("" for the first page), and whether there are
// more. It reads the in-memory snapshot.
func (a *Authenticator) ListUsers(after string, limit int) (users []*User, more bool) {
	all := a.users.Load().list // sorted by client id (loadUsers)
	i, found := slices.BinarySearchFunc(all, after, func(u *User, id string) int { return strings.Compare(u.ClientID, id) })
	if found {
		i++
	}
	end := min(i+limit, len(all))
	return slices.Clone(all[i:end]), end < len(all)
}

// ListSessions returns the usable sessions of clientID
// (case-insensitively), newest first, or ErrUnknownUser.
func (a *Authenticator) ListSessions(ctx context.Context, clientID string) (string, []SessionInfo, error) {
	u, ok := a.users.Load().LookupFold(clientID)
	if !ok {
		return "", nil, ErrUnknownUser
	}
	list, err := a.sessions.List(ctx, u.ClientID)
	return u.ClientID, list, err
}

// RevokeSessions ends the session sessionID of clientID, or every session
// of it if sessionID is "", at once (open streams included), for an admin
// (principal), and returns how many ended.
func (a *Authenticator) RevokeSessions(ctx context.Context, clientID, sessionID, principal string) (int64, error) {
	u, ok := a.users.Load().LookupFold(clientID)
	if !ok {
		return 0, ErrUnknownUser
	}
	var n int64
	attrs := []slog.Attr{slog.String(KeyClientID, u.ClientID), slog.String(KeyBy, principal)}
	if sessionID == "" {
		var err error
		if n, err = a.sessions.RevokeClient(ctx, u.ClientID); err != nil {
			return 0, err
		}
	} else {
		ok, err := a.sessions.RevokeSession(ctx, u.ClientID, sessionID)
		if err != nil {
			return 0, err
		}
		if ok {
			n = 1
		}
		attrs = append(attrs, slog.String(KeySessionID, sessionID))
	}
	a.record(ctx, audit.EventSessionsRevoked, append(attrs, slog.Int64(KeyRevokedSessions, n))...)
	return n, nil
}

// SessionEnded implements [authz.SessionNotifier]: the returned channel is
// closed as soon as session sessionID of clientID is revoked (Logout,
// RevokeSessions, a disabled user, a changed or reset password, a password
// changed or a user removed by the users file). stop releases the watch.
func (a *Authenticator) SessionEnded(clientID, sessionID string) (ended <-chan struct{}, stop func()) {
	return a.sessions.watchers.watch(clientID, sessionID)
}

var _ authz.SessionNotifier = (*Authenticator)(nil)
