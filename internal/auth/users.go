package auth

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
	"github.com/remitpay/remit/internal/authz"
	"github.com/remitpay/remit/internal/names"
)

// MaxUsersFileSize bounds the users file LoadUsers reads.
const MaxUsersFileSize = 16 << 20

// Errors of the users file helpers.
var (
	// ErrInvalidUsersFile wraps every reason LoadUsers or ParseUsers rejects
	// a users file for.
	ErrInvalidUsersFile = errors.New("invalid users file")
	// ErrUserExists is returned by AddUser for a client id already in the
	// file (compared case-insensitively).
	ErrUserExists = errors.New("user already exists")
	// ErrUnknownUser is returned by SetPassword for a client id not in the
	// file, and by the Authenticator's user management for a client id
	// that names no user.
	ErrUnknownUser = errors.New("no such user")
)

// User is one entry of the users file: a client that can log in.
type User struct {
	// ClientID is the login name, unique in the file (case-insensitively).
	ClientID string
	// PasswordHash is the argon2id PHC string of the password; the password
	// itself is never stored.
	PasswordHash string
	// Roles are the user's client roles, at least one, without duplicates.
	Roles []authz.Role
	// Account is the account the user owns. Customers must have one; staff
	// may.
	Account *authz.Account

	// The rest is what the gateway's database keeps about a user; a users
	// file does not set it (see [Authenticator.Users]).

	// Disabled users cannot log in and have no usable session.
	Disabled bool
	// Source says where the user came from; "" for a user parsed from a
	// users file that was not imported.
	Source Source
	// Created, Updated and PasswordChanged are when the user was created,
	// last changed, and when its password was last set.
	Created, Updated, PasswordChanged time.Time

	// Import bookkeeping (see import.go).
	disabledBy string // "", disabledByAdmin or disabledByFile
	passwordBy string // passwordByFile or passwordByAPI
	fileHash   string // the file's hash at the last import
}

// Source says where a user was created.
type Source string

// Sources of users.
const (
	// SourceFile: imported from the users file.
	SourceFile Source = "file"
	// SourceAdmin: created by an admin (AdminService.CreateUser).
	SourceAdmin Source = "admin"
	// SourceRegistration: signed up with AuthService.Register.
	SourceRegistration Source = "registration"
)

// Proto returns s as the API's enum.
func (s Source) Proto() gatewayv1.UserSource {
	switch s {
	case SourceFile:
		return gatewayv1.UserSource_USER_SOURCE_FILE
	case SourceAdmin:
		return gatewayv1.UserSource_USER_SOURCE_ADMIN
	case SourceRegistration:
		return gatewayv1.UserSource_USER_SOURCE_REGISTRATION
	default:
		return gatewayv1.UserSource_USER_SOURCE_UNSPECIFIED
	}
}

// HasRole reports whether u holds role r.
func (u *User) HasRole(r authz.Role) bool { return slices.Contains(u.Roles, r) }

// Proto returns u as the API's Client message (without any secret).
func (u *User) Proto() *gatewayv1.Client {
	c := &gatewayv1.Client{ClientId: u.ClientID, Account: u.Account.Proto()}
	for _, r := range u.Roles {
		c.Roles = append(c.Roles, r.Proto())
	}
	return c
}

// UserProto returns u as the admin API's User message (without any
// secret).
func (u *User) UserProto() *gatewayv1.User {
	out := &gatewayv1.User{
		ClientId: u.ClientID, Account: u.Account.Proto(), Disabled: u.Disabled, Source: u.Source.Proto(),
		CreateTime: tsOrNil(u.Created), UpdateTime: tsOrNil(u.Updated), PasswordChangeTime: tsOrNil(u.PasswordChanged),
	}
	for _, r := range u.Roles {
		out.Roles = append(out.Roles, r.Proto())
	}
	return out
}

func tsOrNil(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

// Principal returns the client principal u is when it presents a token of
// login session sessionID. Roles and account are copies.
func (u *User) Principal(sessionID string) *authz.Principal {
	p := &authz.Principal{
		Kind:      authz.KindClient,
		ClientID:  u.ClientID,
		Roles:     slices.Clone(u.Roles),
		SessionID: sessionID,
	}
	if u.Account != nil {
		a := *u.Account
		p.Account = &a
	}
	return p
}

// Users is a parsed, validated users file. It is immutable and safe for
// concurrent use; reloading means loading a new one.
type Users struct {
	path   string
	list   []*User
	byID   map[string]*User
	byFold map[string]*User // by lowercase client id; nil until needed
	sum    []byte           // SHA-256 of the content parsed (ParseUsers); nil for a snapshot
}

// snapshot builds the Users of the database's list (by client id).
func snapshot(list []*User) *Users {
	u := &Users{list: list, byID: make(map[string]*User, len(list)), byFold: make(map[string]*User, len(list))}
	for _, usr := range list {
		u.byID[usr.ClientID] = usr
		u.byFold[strings.ToLower(usr.ClientID)] = usr
	}
	return u
}

// LookupFold returns the user whose client id equals clientID
// case-insensitively, if any (client ids are unique that way). The
// returned User must not be modified.
func (u *Users) LookupFold(clientID string) (*User, bool) {
	if u == nil {
		return nil, false
	}
	if u.byFold == nil {
		for _, usr := range u.list {
			if strings.EqualFold(usr.ClientID, clientID) {
				return usr, true
			}
		}
		return nil, false
	}
	usr, ok := u.byFold[strings.ToLower(clientID)]
	return usr, ok
}

// Lookup returns the user with clientID (exact match), if any. The returned
// User must not be modified.
func (u *Users) Lookup(clientID string) (*User, bool) {
	if u == nil {
		return nil, false
	}
	usr, ok := u.byID[clientID]
	return usr, ok
}

// All returns the users in file order. The Users must not be modified.
func (u *Users) All() []*User {
	if u == nil {
		return nil
	}
	return slices.Clone(u.list)
}

// Len returns the number of users.
func (u *Users) Len() int {
	if u == nil {
		return 0
	}
	return len(u.list)
}

// Path returns the file the users were loaded from ("" if parsed from
// memory under another name).
func (u *Users) Path() string { return u.path }

// The on-disk format. Field names are the file's keys; fileUser is kept
// apart from User so the domain type does not carry JSON concerns.
type usersFile struct {
	Users *[]fileUser `json:"users"`
}

type fileUser struct {
	ClientID     string       `json:"client_id"`
	PasswordHash string       `json:"password_hash"`
	Roles        []string     `json:"roles"`
	Account      *fileAccount `json:"account,omitempty"`
}

type fileAccount struct {
	Bank      string `json:"bank"`
	AccountID string `json:"account_id"`
}

// allowedKeys lists the exact (case-sensitive) keys of every object in the
// file, by the key that holds the object ("" for the top level, "users[]"
// for an entry). encoding/json matches keys case-insensitively and keeps
// the last of duplicate keys; a credential file must not be able to say one
// thing to a reviewer and another to the loader, so both are refused.
var allowedKeys = map[string][]string{
	"":        {"users"},
	"users[]": {"client_id", "password_hash", "roles", "account"},
	"account": {"bank", "account_id"},
}

// LoadUsers reads and validates the users file at path (JSON, see the
// package documentation). It is strict: unknown, misspelled or duplicate
// keys, trailing data, invalid ids, unknown roles, customers without an
// account, duplicate client ids (case-insensitively) and unparsable password
// hashes are all errors, which name the file and the offending entry.
func LoadUsers(path string) (*Users, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("auth: users file: %w", err)
	}
	defer f.Close() //nolint:errcheck // opened read-only: Close cannot lose data
	if err := checkUsersFileMode(path, f); err != nil {
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxUsersFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("auth: users file %s: %w", path, err)
	}
	if len(data) > MaxUsersFileSize {
		return nil, fmt.Errorf("auth: users file %s: %w: larger than %d bytes", path, ErrInvalidUsersFile, MaxUsersFileSize)
	}
	u, err := ParseUsers(path, data)
	if err != nil {
		return nil, err
	}
	return u, nil
}

// checkUsersFileMode refuses a users file that others than its owner may
// write: the gateway imports it within seconds, so whoever can write it can
// make themselves an admin. (Its own writes are mode 0600.)
func checkUsersFileMode(path string, f *os.File) error {
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("auth: users file %s: %w", path, err)
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		return fmt.Errorf("auth: users file %s: %w: mode %04o lets others than its owner write it; run chmod go-w %s",
			path, ErrInvalidUsersFile, perm, path)
	}
	return nil
}

// ParseUsers is [LoadUsers] for a file already in memory; name is used in
// error messages and returned by [Users.Path].
func ParseUsers(name string, data []byte) (*Users, error) {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("auth: users file %s: %w: %s", name, ErrInvalidUsersFile, fmt.Sprintf(format, args...))
	}
	if err := checkKeys(data); err != nil {
		return nil, fail("%s", describeJSONError(data, err))
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var file usersFile
	if err := dec.Decode(&file); err != nil {
		return nil, fail("%s", describeJSONError(data, err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fail("unexpected data after the top-level object")
	}
	if file.Users == nil {
		return nil, fail(`missing "users"`)
	}
	sum := sha256.Sum256(data)
	u := &Users{path: name, byID: make(map[string]*User, len(*file.Users)), sum: sum[:]}
	folded := make(map[string]int, len(*file.Users))
	for i, fu := range *file.Users {
		entry := fmt.Sprintf("users[%d]", i)
		if fu.ClientID != "" {
			entry = fmt.Sprintf("users[%d] (%s)", i, quoteShort(fu.ClientID))
		}
		usr, err := fu.toUser()
		if err != nil {
			return nil, fail("%s: %v", entry, err)
		}
		key := strings.ToLower(usr.ClientID)
		if j, dup := folded[key]; dup {
			return nil, fail("%s: duplicate client_id (also users[%d])", entry, j)
		}
		folded[key] = i
		u.list = append(u.list, usr)
		u.byID[usr.ClientID] = usr
	}
	return u, nil
}

func (fu fileUser) toUser() (*User, error) {
	if err := names.ClientID(fu.ClientID); err != nil {
		return nil, fmt.Errorf("client_id %w", err)
	}
	if _, _, _, err := parseHash(fu.PasswordHash); err != nil {
		// Do not echo the hash: it is not the password, but it is still
		// material for an offline guessing attack.
		return nil, fmt.Errorf("password_hash: %w", err)
	}
	if len(fu.Roles) == 0 {
		return nil, errors.New(`"roles" must list at least one of customer, admin, auditor`)
	}
	usr := &User{ClientID: fu.ClientID, PasswordHash: fu.PasswordHash}
	for _, s := range fu.Roles {
		r, ok := authz.ParseClientRole(s)
		if !ok {
			return nil, fmt.Errorf("unknown role %s (want customer, admin or auditor)", quoteShort(s))
		}
		if slices.Contains(usr.Roles, r) {
			return nil, fmt.Errorf("duplicate role %q", s)
		}
		usr.Roles = append(usr.Roles, r)
	}
	if fu.Account != nil {
		if err := names.Bank(fu.Account.Bank); err != nil {
			return nil, fmt.Errorf("account.bank %w", err)
		}
		if err := names.AccountID(fu.Account.AccountID); err != nil {
			return nil, fmt.Errorf("account.account_id %w", err)
		}
		usr.Account = &authz.Account{Bank: fu.Account.Bank, ID: fu.Account.AccountID}
	}
	if usr.HasRole(authz.RoleCustomer) && usr.Account == nil {
		return nil, errors.New(`a customer needs an "account"`)
	}
	return usr, nil
}

// checkKeys walks the JSON document and rejects duplicate keys and keys not
// spelled exactly as in allowedKeys. Type errors are left to the decoder.
func checkKeys(data []byte) error {
	type frame struct {
		object bool
		holder string // the key (or "key[]") holding this container
		key    string // the last key read in an object
		seen   map[string]bool
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	var stack []*frame
	expectKey := func() bool {
		if len(stack) == 0 {
			return false
		}
		top := stack[len(stack)-1]
		return top.object && top.key == ""
	}
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if expectKey() {
			if _, isDelim := tok.(json.Delim); !isDelim {
				top := stack[len(stack)-1]
				k, _ := tok.(string)
				if top.seen[k] {
					return fmt.Errorf("duplicate key %s", quoteShort(k))
				}
				top.seen[k] = true
				if allowed, known := allowedKeys[top.holder]; known && !slices.Contains(allowed, k) {
					return fmt.Errorf("unknown key %s", quoteShort(k))
				}
				top.key = k
				continue
			}
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			holder := ""
			if len(stack) > 0 {
				parent := stack[len(stack)-1]
				if parent.object {
					holder = parent.key
				} else {
					holder = parent.holder + "[]"
				}
			}
			stack = append(stack, &frame{object: tok == json.Delim('{'), holder: holder, seen: map[string]bool{}})
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
		// A value (scalar or a just-closed container) ends the current key.
		if len(stack) > 0 && stack[len(stack)-1].object {
			stack[len(stack)-1].key = ""
		}
		if len(stack) == 0 {
			// Trailing data is reported by the decoder pass.
			return nil
		}
	}
}

// describeJSONError adds the line and column to JSON syntax and type
// errors, which otherwise only carry a byte offset.
func describeJSONError(data []byte, err error) string {
	var offset int64 = -1
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		offset = syn.Offset
	case errors.As(err, &typ):
		offset = typ.Offset
	}
	if offset < 0 || offset > int64(len(data)) {
		return err.Error()
	}
	line := 1 + bytes.Count(data[:offset], []byte("\n"))
	col := int(offset) - bytes.LastIndexByte(data[:offset], '\n')
	return fmt.Sprintf("line %d, column %d: %v", line, col, err)
}

// AddUser adds u to the users file at path with password hashed by
// [HashPassword], creating the file if it does not exist, and writes it
// atomically with mode 0600. u.PasswordHash is ignored. It is what
// `remit users add` calls; a running gateway sees the change when it
// reloads the file.
//
// Concurrent writers are not coordinated: two simultaneous AddUser calls on
// the same file may lose one update. Run the commands one at a time.
func AddUser(path string, u User, password string) error {
	users, err := LoadUsers(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		users = &Users{path: path, byID: map[string]*User{}}
	case err != nil:
		return err
	}
	for _, existing := range users.list {
		if strings.EqualFold(existing.ClientID, u.ClientID) {
			return fmt.Errorf("auth: add %q to %s: %w", u.ClientID, path, ErrUserExists)
		}
	}
	hash, err := HashPassword(password)
	if err != nil {
		return err
	}
	releaseHashMemory(hash)
	u.PasswordHash = hash
	u.Roles = slices.Clone(u.Roles)
	list := append(slices.Clone(users.list), &u)
	return writeUsers(path, list)
}

// SetPassword replaces the password of clientID in the users file at path
// and writes it atomically with mode 0600 (`remit users passwd`). A
// running gateway imports the change (within seconds, or at once on
// SIGHUP) and ends the user's sessions then, unless the user's password
// was set through the API since, which the file does not overwrite.
func SetPassword(path, clientID, password string) error {
	users, err := LoadUsers(path)
	if err != nil {
		return err
	}
	old, ok := users.Lookup(clientID)
	if !ok {
		return fmt.Errorf("auth: set password of %q in %s: %w", clientID, path, ErrUnknownUser)
	}
	hash, err := HashPassword(password)
	if err != nil {
		return err
	}
	releaseHashMemory(hash)
	list := slices.Clone(users.list)
	for i, usr := range list {
		if usr == old {
			changed := *usr
			changed.PasswordHash = hash
			list[i] = &changed
		}
	}
	return writeUsers(path, list)
}

// writeUsers validates list by round-tripping it through the parser, then
// replaces path atomically: temp file in the same directory, mode 0600,
// fsync, rename, fsync of the directory.
func writeUsers(path string, list []*User) error {
	file := usersFile{Users: &[]fileUser{}}
	for _, u := range list {
		fu := fileUser{ClientID: u.ClientID, PasswordHash: u.PasswordHash}
		for _, r := range u.Roles {
			fu.Roles = append(fu.Roles, string(r))
		}
		if u.Account != nil {
			fu.Account = &fileAccount{Bank: u.Account.Bank, AccountID: u.Account.ID}
		}
		*file.Users = append(*file.Users, fu)
	}
	data, err := json.MarshalIndent(file, "", "  ")
	if err != nil {
		return fmt.Errorf("auth: encode users file: %w", err)
	}
	data = append(data, '\n')
	if _, err := ParseUsers(path, data); err != nil {
		return err
	}
	return writeFileAtomic(path, data, 0o600)
}

func writeFileAtomic(path string, data []byte, mode fs.FileMode) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("auth: create directory for %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("auth: write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			// The write already failed; this only cleans up, and a close
			// or remove failure would hide the error that matters.
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(mode); err != nil {
		return fmt.Errorf("auth: write %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("auth: write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("auth: write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("auth: write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("auth: write %s: %w", path, err)
	}
	// Best effort: fsync the directory so the rename survives a crash. The
	// file itself is already complete and in place, so a failure here is
	// not the write failing (and some file systems refuse to sync a
	// directory at all).
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

// quoteShort quotes s for an error message, truncated so that a hostile
// file cannot make its own error message megabytes long.
func quoteShort(s string) string {
	const limit = 80
	if len(s) <= limit {
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprintf("%q...", s[:limit])
}
