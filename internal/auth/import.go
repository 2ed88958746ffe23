package auth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"time"

	"github.com/remitpay/remit/internal/audit"
	"github.com/remitpay/remit/internal/authz"
)

// Values of [KeyReason] in user_import_conflict.
const (
	// ConflictPasswordSetThroughAPI: the file changed the password of a
	// user whose password was last set through the API; the API's stays.
	ConflictPasswordSetThroughAPI = "password_set_through_api"
	// ConflictNotAFileUser: the file names a user created through the API
	// (CreateUser or Register); the entry is skipped.
	ConflictNotAFileUser = "not_a_file_user"
	// ConflictClientIDCase: the file names a file user with another case
	// of its client id; the entry is skipped.
	ConflictClientIDCase = "client_id_case"
	// ConflictAccountLinked: the entry's account is linked to another
	// user; the entry is skipped (or, for a user already imported, its
	// account change is).
	ConflictAccountLinked = "account_linked"
)

// ImportResult counts what [Authenticator.Import] did.
type ImportResult struct {
	// Added users are new; Updated ones had their password, roles or
	// account changed by the file, or came back to it; Disabled ones left
	// it; Skipped entries were not applied (each logged and audited as a
	// user_import_conflict), wholly or in part.
	Added, Updated, Disabled, Skipped int
}

func (r ImportResult) changed() bool { return r.Added+r.Updated+r.Disabled+r.Skipped > 0 }

// Import applies a parsed users file to the users table (see the package
// documentation, "Users"):
//
//   - An entry whose client id names no user adds a file user.
//   - An entry of a file user updates its roles and account, and its
//     password if the file's hash changed since the last import, ending
//     the user's sessions; but if the password was last set through the
//     API (ResetPassword, ChangePassword) the API's password stays, and the
//     conflict is logged and audited once.
//   - A file user disabled because it had left the file is enabled again
//     when it comes back; one disabled by an admin stays disabled.
//   - A file user that is not in the file any more is disabled and its
//     sessions end; it is kept, with its account link, so that nobody else
//     can take the id or the account by accident.
//   - An entry that names a user created through the API, or a file user
//     with another case of its id, or an account linked to another user,
//     is skipped with a warning (and audited).
//
// The changes are one transaction: an import applies wholly or not at all.
func (a *Authenticator) Import(ctx context.Context, file *Users) (ImportResult, error) {
	var (
		res     ImportResult
		revoke  []string // users whose sessions end
		rescope []string // users whose roles or account changed: their open streams end
		records []func()
	)
	record := func(event string, attrs ...slog.Attr) {
		records = append(records, func() { a.record(ctx, event, attrs...) })
	}
	conflict := func(clientID, reason, msg string) {
		res.Skipped++
		a.log.WarnContext(ctx, "users file: "+msg, "path", file.Path(), KeyClientID, clientID, KeyReason, reason)
		record(audit.EventUserImportConflict, slog.String(KeyClientID, clientID), slog.String(KeyReason, reason))
	}
	by := slog.String(KeyBy, ByUsersFile)
	err := a.change(ctx, func(t *userTx) error {
		res, revoke, rescope, records = ImportResult{}, nil, nil, nil
		inFile := map[string]bool{}
		for _, f := range file.list {
			inFile[f.ClientID] = true
			u, err := t.byFold(f.ClientID)
			if err != nil {
				return err
			}
			if u == nil {
				if holder, err := t.accountHolder(f.Account); err != nil {
					return err
				} else if holder != "" {
					conflict(f.ClientID, ConflictAccountLinked, "entry skipped: its account is linked to another user")
					continue
				}
				nu := &User{ClientID: f.ClientID, PasswordHash: f.PasswordHash, Roles: slices.Clone(f.Roles), Account: f.Account,
					Source: SourceFile, passwordBy: passwordByFile, fileHash: f.PasswordHash}
				if err := t.insert(nu); err != nil {
					return err
				}
				res.Added++
				record(audit.EventUserCreated, append(userAttrs(nu), by)...)
				continue
			}
			switch {
			case u.Source != SourceFile:
				conflict(f.ClientID, ConflictNotAFileUser, "entry skipped: a user of this client id was created through the API")
				continue
			case u.ClientID != f.ClientID:
				conflict(f.ClientID, ConflictClientIDCase, "entry skipped: it spells the client id of user "+u.ClientID+" in another case")
				continue
			}
			changed, passwordChanged, roleChanged := false, false, false
			if f.PasswordHash != u.fileHash {
				if u.passwordBy == passwordByAPI {
					conflict(u.ClientID, ConflictPasswordSetThroughAPI,
						"password change ignored: the password was set through the API since the last import, which keeps it")
					if err := t.setFileHash(u.ClientID, f.PasswordHash); err != nil {
						return err
					}
					// Also in u: a roles or account change below writes u
					// whole, and must not put the old hash back.
					u.fileHash = f.PasswordHash
				} else {
					if u.PasswordHash != f.PasswordHash {
						u.PasswordHash, passwordChanged = f.PasswordHash, true
					}
					u.passwordBy, u.fileHash, changed = passwordByFile, f.PasswordHash, true
				}
			}
			if !slices.Equal(u.Roles, f.Roles) {
				u.Roles, changed, roleChanged = slices.Clone(f.Roles), true, true
			}
			if !sameAccount(u.Account, f.Account) {
				holder, err := t.accountHolder(f.Account)
				if err != nil {
					return err
				}
				if holder != "" && holder != u.ClientID {
					conflict(u.ClientID, ConflictAccountLinked, "account change skipped: the account is linked to another user")
				} else {
					u.Account, changed, roleChanged = f.Account, true, true
				}
			}
			if u.Disabled && u.disabledBy == disabledByFile {
				u.disabledBy, changed = "", true
				record(audit.EventUserEnabled, slog.String(KeyClientID, u.ClientID), by)
			}
			if !changed {
				continue
			}
			if err := t.update(u, passwordChanged); err != nil {
				return err
			}
			res.Updated++
			if passwordChanged {
				revoke = append(revoke, u.ClientID)
				record(audit.EventPasswordChanged, slog.String(KeyClientID, u.ClientID), by)
			}
			if roleChanged {
				rescope = append(rescope, u.ClientID)
				record(audit.EventUserUpdated, append(userAttrs(u), by)...)
			}
		}
		// File users the file no longer lists.
		list, err := a.sessions.loadUsersTx(t)
		if err != nil {
			return err
		}
		for _, u := range list {
			if u.Source != SourceFile || inFile[u.ClientID] || u.fileHash == "" {
				continue
			}
			u.fileHash = ""
			if !u.Disabled {
				u.disabledBy = disabledByFile
				res.Disabled++
				revoke = append(revoke, u.ClientID)
				record(audit.EventUserDisabled, slog.String(KeyClientID, u.ClientID), by)
			}
			if err := t.update(u, false); err != nil {
				return err
			}
		}
		// Their sessions end in this transaction: a changed password or
		// a disabling commits with the end of what it no longer allows.
		for _, id := range revoke {
			if _, err := t.revokeSessions(id, ""); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return ImportResult{}, fmt.Errorf("auth: import users file %s: %w", file.Path(), err)
	}
	a.imported.Store(file)
	// A stream keeps the principal it was opened with (an auditor's sees
	// every account): one whose user's roles or account changed ends, and
	// is opened again with the new ones. Unary calls read them at once.
	for _, id := range rescope {
		a.sessions.watchers.endClient(id, "")
	}
	for _, r := range records {
		r()
	}
	if res.changed() {
		a.record(ctx, audit.EventUsersImported, slog.String("path", file.Path()), slog.Int("added", res.Added),
			slog.Int("updated", res.Updated), slog.Int("disabled", res.Disabled), slog.Int("skipped", res.Skipped))
		a.log.InfoContext(ctx, "users file imported", "path", file.Path(), "added", res.Added,
			"updated", res.Updated, "disabled", res.Disabled, "skipped", res.Skipped)
	}
	return res, nil
}

func sameAccount(x, y *authz.Account) bool {
	if x == nil || y == nil {
		return x == y
	}
	return *x == *y
}

// ImportFile loads the users file at path ([LoadUsers]) and imports it.
func (a *Authenticator) ImportFile(ctx context.Context, path string) (ImportResult, error) {
	file, err := LoadUsers(path)
	if err != nil {
		return ImportResult{}, err
	}
	return a.Import(ctx, file)
}

// DefaultUsersPoll is how often [Authenticator.WatchUsersFile] reads the
// users file unless told otherwise.
const DefaultUsersPoll = 2 * time.Second

// WatchUsersFile imports the users file at path again whenever its content
// changes (read every poll, at most [MaxUsersFileSize] bytes; zero means
// [DefaultUsersPoll], negative only on reload) and whenever reload
// delivers (SIGHUP), until ctx ends. A file that cannot be read or parsed
// is logged and ignored: the users stay as they are, and it is tried again
// once its content changes (or on reload). The content the last import
// read counts as seen, so the first poll after the start's import does
// nothing if the file did not change.
func (a *Authenticator) WatchUsersFile(ctx context.Context, path string, poll time.Duration, reload <-chan os.Signal) {
	if poll == 0 {
		poll = DefaultUsersPoll
	}
	var tick <-chan time.Time
	if poll > 0 {
		t := time.NewTicker(poll)
		defer t.Stop()
		tick = t.C
	}
	var seen []byte // SHA-256 of the content last imported or refused
	if last := a.imported.Load(); last != nil && last.path == path {
		// What the start imported, not what the file holds now: it may
		// have changed since.
		seen = last.sum
	}
	for {
		force := false
		select {
		case <-ctx.Done():
			return
		case <-tick:
		case <-reload:
			force = true
		}
		data, err := readBounded(path)
		if err != nil {
			if force || seen != nil {
				a.log.ErrorContext(ctx, "users file not reloaded; the users stay as they are", "path", path, "err", err)
			}
			seen = nil
			continue
		}
		sum := sha256.Sum256(data)
		if !force && seen != nil && bytes.Equal(seen, sum[:]) {
			continue
		}
		seen = sum[:]
		file, err := ParseUsers(path, data)
		if err != nil {
			a.log.ErrorContext(ctx, "users file not reloaded; the users stay as they are", "path", path, "err", err)
			continue
		}
		if _, err := a.Import(ctx, file); err != nil {
			a.log.ErrorContext(ctx, "users file not imported; the users stay as they are", "path", path, "err", err)
			seen = nil // try again on the next poll
		}
	}
}

// readBounded returns the content of the file at path, an error if it is
// larger than MaxUsersFileSize.
func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close() //nolint:errcheck // opened read-only: Close cannot lose data
	if err := checkUsersFileMode(path, f); err != nil {
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxUsersFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxUsersFileSize {
		return nil, fmt.Errorf("auth: users file %s: %w: larger than %d bytes", path, ErrInvalidUsersFile, MaxUsersFileSize)
	}
	return data, nil
}
