package auth

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/remitpay/remit/internal/authz"
	"github.com/remitpay/remit/internal/store"
)

// Who set a user's password last, and who disabled it (users columns
// password_by and disabled_by).
const (
	passwordByFile = "file"
	passwordByAPI  = "api"

	disabledByAdmin = "admin"
	disabledByFile  = "file"
)

const userColumns = `client_id, password_hash, roles, account_bank, account_id, source, disabled_by,
	password_by, file_password_hash, created_at, updated_at, password_changed_at`

type rowScanner interface{ Scan(dest ...any) error }

func scanUser(r rowScanner) (*User, error) {
	var (
		u                             User
		roles                         string
		bank, acct, disabledBy, fileH sql.NullString
		created, updated, passwordAt  int64
	)
	if err := r.Scan(&u.ClientID, &u.PasswordHash, &roles, &bank, &acct, &u.Source, &disabledBy,
		&u.passwordBy, &fileH, &created, &updated, &passwordAt); err != nil {
		return nil, err
	}
	for s := range strings.SplitSeq(roles, ",") {
		if r, ok := authz.ParseClientRole(s); ok {
			u.Roles = append(u.Roles, r)
		}
	}
	if bank.Valid {
		u.Account = &authz.Account{Bank: bank.String, ID: acct.String}
	}
	u.disabledBy, u.Disabled = disabledBy.String, disabledBy.Valid
	u.fileHash = fileH.String
	u.Created, u.Updated, u.PasswordChanged = time.UnixMilli(created).UTC(), time.UnixMilli(updated).UTC(), time.UnixMilli(passwordAt).UTC()
	return &u, nil
}

func rolesColumn(roles []authz.Role) string {
	s := make([]string, len(roles))
	for i, r := range roles {
		s[i] = string(r)
	}
	return strings.Join(s, ",")
}

func accountColumns(a *authz.Account) (bank, id any) {
	if a == nil {
		return nil, nil
	}
	return a.Bank, a.ID
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// loadUsers reads every user, by client id.
func (s *Sessions) loadUsers(ctx context.Context) ([]*User, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+userColumns+` FROM users ORDER BY client_id`)
	if err != nil {
		return nil, fmt.Errorf("auth: load users: %w", err)
	}
	defer rows.Close()
	var out []*User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("auth: load users: %w", err)
		}
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("auth: load users: %w", err)
	}
	return out, nil
}

// loadUsersTx reads every user inside t.
func (s *Sessions) loadUsersTx(t *userTx) ([]*User, error) {
	rows, err := t.tx.QueryContext(t.ctx, `SELECT `+userColumns+` FROM users ORDER BY client_id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// userTx is the user table inside one write transaction.
type userTx struct {
	ctx context.Context //nolint:containedctx // the ctx of the call that runs the transaction; lives as long
	tx  *sql.Tx
	now time.Time
	s   *Sessions
	// ended are the (client id, kept session) pairs whose sessions this
	// transaction revoked: their cache entries and streams end once it
	// commits.
	ended [][2]string
}

// revokeSessions revokes, in this transaction, every usable session of
// clientID but keep ("" for none), and publishes it to the other replicas
// with the commit: a password or a user's state and the end of the
// sessions it no longer allows commit together, so that no crash, no
// caller hanging up and no failure in between can leave the one without
// the other. It returns how many sessions it ended.
func (t *userTx) revokeSessions(clientID, keep string) (int64, error) {
	n, err := t.s.revokeOthersIn(t.ctx, t.tx, clientID, keep, t.now.UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("auth: revoke sessions of %q: %w", clientID, err)
	}
	t.ended = append(t.ended, [2]string{clientID, keep})
	return n, nil
}

func (s *Sessions) usersTx(ctx context.Context, fn func(t *userTx) error) error {
	var t *userTx
	err := store.InTx(ctx, s.db, func(tx *sql.Tx) error {
		t = &userTx{ctx: ctx, tx: tx, now: time.Now(), s: s}
		return fn(t)
	})
	if t != nil {
		// Whether it committed or not (a failed COMMIT may still have
		// committed): forgetting a session that lives is only a cache miss.
		for _, e := range t.ended {
			s.cache.revokeClient(e[0], e[1])
			s.watchers.endClient(e[0], e[1])
		}
	}
	return err
}

// issueIf issues a session for clientID, as issue does, only if the user
// is still enabled with passwordHash, checked in the same write
// transaction as the session's insert: a change of the password or a
// disabling (which revokes the user's sessions in its own transaction)
// either commits before, and is seen here (ErrBadCredentials, no session),
// or after, and revokes this session with the others. The writer lock
// orders the two, across replicas too.
func (s *Sessions) issueIf(ctx context.Context, clientID, passwordHash string) (token, sessionID string, expire time.Time, err error) {
	token, sessionID, hash, expire, now, err := s.newToken(clientID)
	if err != nil {
		return "", "", time.Time{}, err
	}
	err = store.InTx(ctx, s.db, func(tx *sql.Tx) error {
		u, err := scanUser(tx.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE client_id = ?`, clientID))
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return ErrBadCredentials
		case err != nil:
			return fmt.Errorf("auth: read user %q: %w", clientID, err)
		case u.Disabled || u.PasswordHash != passwordHash:
			return ErrBadCredentials
		}
		_, err = s.stmts.Exec(ctx, tx, sqlSessionInsert, sessionID, hash[:], clientID, now.UnixMilli(), expire.UnixMilli())
		return err
	})
	if err != nil {
		if !errors.Is(err, ErrBadCredentials) {
			err = fmt.Errorf("auth: store session: %w", err)
		}
		return "", "", time.Time{}, err
	}
	s.maybePrune(ctx, now)
	return token, sessionID, expire, nil
}

// byFold returns the user whose client id equals clientID case-insensitively.
func (t *userTx) byFold(clientID string) (*User, error) {
	u, err := scanUser(t.tx.QueryRowContext(t.ctx, `SELECT `+userColumns+` FROM users WHERE lower(client_id) = lower(?)`, clientID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil //nolint:nilnil // no such user is an answer
	}
	return u, err
}

// accountHolder returns the client id linked to a, or "".
func (t *userTx) accountHolder(a *authz.Account) (string, error) {
	if a == nil {
		return "", nil
	}
	var id string
	err := t.tx.QueryRowContext(t.ctx, `SELECT client_id FROM users WHERE account_bank = ? AND account_id = ?`, a.Bank, a.ID).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return id, err
}

// insert adds u, checking the unique client id (case-insensitively) and
// account first so that a clash is a sentinel error, not a constraint
// violation. Write transactions are BEGIN IMMEDIATE, so the checks and the
// insert cannot interleave with another writer's.
func (t *userTx) insert(u *User) error {
	if other, err := t.byFold(u.ClientID); err != nil {
		return err
	} else if other != nil {
		return ErrClientIDTaken
	}
	if holder, err := t.accountHolder(u.Account); err != nil {
		return err
	} else if holder != "" {
		return ErrAccountLinked
	}
	bank, acct := accountColumns(u.Account)
	now := t.now.UnixMilli()
	_, err := t.tx.ExecContext(t.ctx, `INSERT INTO users (`+userColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		u.ClientID, u.PasswordHash, rolesColumn(u.Roles), bank, acct, string(u.Source), nullString(u.disabledBy),
		u.passwordBy, nullString(u.fileHash), now, now, now)
	return err
}

// update writes every field of u but its creation time, and sets
// updated_at (and password_changed_at if passwordChanged).
func (t *userTx) update(u *User, passwordChanged bool) error {
	bank, acct := accountColumns(u.Account)
	now := t.now.UnixMilli()
	q := `UPDATE users SET password_hash = ?, roles = ?, account_bank = ?, account_id = ?, disabled_by = ?,
		password_by = ?, file_password_hash = ?, updated_at = ?`
	args := []any{u.PasswordHash, rolesColumn(u.Roles), bank, acct, nullString(u.disabledBy), u.passwordBy, nullString(u.fileHash), now}
	if passwordChanged {
		q += `, password_changed_at = ?`
		args = append(args, now)
	}
	q += ` WHERE client_id = ?`
	args = append(args, u.ClientID)
	res, err := t.tx.ExecContext(t.ctx, q, args...)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return ErrUnknownUser
	}
	return nil
}

// setFileHash records the file's hash of a user without changing anything
// else (an ignored password change of the file, already warned about).
func (t *userTx) setFileHash(clientID, hash string) error {
	_, err := t.tx.ExecContext(t.ctx, `UPDATE users SET file_password_hash = ? WHERE client_id = ?`, hash, clientID)
	return err
}
