package auth_test

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/remitpay/remit/internal/auth"
	"github.com/remitpay/remit/internal/authz"
)

// usersJSON builds a users file with the given entries (raw JSON objects).
func usersJSON(entries ...string) string {
	return `{"users":[` + strings.Join(entries, ",") + `]}`
}

func entry(id, hash, roles, account string) string {
	s := fmt.Sprintf(`{"client_id":%q,"password_hash":%q,"roles":%s`, id, hash, roles)
	if account != "" {
		s += `,"account":` + account
	}
	return s + "}"
}

func TestLoadUsers(t *testing.T) {
	hash := mustHash(t, "pw")
	dir := t.TempDir()
	path := writeFile(t, dir, "users.json", usersJSON(
		entry("alice", hash, `["customer"]`, `{"bank":"bank-a","account_id":"alice"}`),
		entry("admin", hash, `["admin","auditor"]`, ""),
		entry("eve.audit_1", hash, `["auditor"]`, ""),
	))
	users, err := auth.LoadUsers(path)
	if err != nil {
		t.Fatal(err)
	}
	if users.Len() != 3 || users.Path() != path {
		t.Fatalf("Len = %d, Path = %q", users.Len(), users.Path())
	}
	alice, ok := users.Lookup("alice")
	if !ok {
		t.Fatal("alice not found")
	}
	if alice.Account == nil || *alice.Account != (authz.Account{Bank: "bank-a", ID: "alice"}) {
		t.Errorf("alice's account = %+v", alice.Account)
	}
	if !alice.HasRole(authz.RoleCustomer) || alice.HasRole(authz.RoleAdmin) {
		t.Errorf("alice's roles = %v", alice.Roles)
	}
	admin, _ := users.Lookup("admin")
	if !slices.Equal(admin.Roles, []authz.Role{authz.RoleAdmin, authz.RoleAuditor}) || admin.Account != nil {
		t.Errorf("admin = %+v", admin)
	}
	if _, ok := users.Lookup("Alice"); ok {
		t.Error("Lookup is case-insensitive")
	}
	var ids []string
	for _, u := range users.All() {
		ids = append(ids, u.ClientID)
	}
	if !slices.Equal(ids, []string{"alice", "admin", "eve.audit_1"}) {
		t.Errorf("All() = %v, want file order", ids)
	}
	p := alice.Principal("sess")
	if p.Kind != authz.KindClient || p.ClientID != "alice" || p.SessionID != "sess" || !p.Owns("bank-a", "alice") {
		t.Errorf("Principal = %+v", p)
	}
	if c := alice.Proto(); c.GetClientId() != "alice" || c.GetAccount().GetAccountId() != "alice" || len(c.GetRoles()) != 1 {
		t.Errorf("Proto = %v", c)
	}
}

func TestLoadUsersErrors(t *testing.T) {
	hash := mustHash(t, "pw")
	acct := `{"bank":"bank-a","account_id":"alice"}`
	alice := entry("alice", hash, `["customer"]`, acct)
	tests := []struct {
		name    string
		content string
		want    []string // substrings of the error, besides the file name
	}{
		{"not JSON", `{"users": [`, []string{"unexpected EOF"}},
		{"syntax error has a position", "{\n  \"users\": [\n    {,}\n  ]\n}", []string{"line 3, column"}},
		{"not an object", `[]`, []string{"cannot unmarshal"}},
		{"null", `null`, []string{`missing "users"`}},
		{"missing users", `{}`, []string{`missing "users"`}},
		{"unknown top-level key", `{"users":[],"admins":[]}`, []string{`unknown key "admins"`}},
		{"unknown entry key", usersJSON(strings.Replace(alice, `"roles"`, `"is_admin":true,"roles"`, 1)), []string{`unknown key "is_admin"`}},
		{"miscased key", usersJSON(strings.Replace(alice, `"roles"`, `"Roles"`, 1)), []string{`unknown key "Roles"`}},
		{"duplicate key", usersJSON(strings.Replace(alice, `"roles":["customer"]`, `"roles":["customer"],"roles":["admin"]`, 1)), []string{`duplicate key "roles"`}},
		{"unknown account key", usersJSON(entry("alice", hash, `["customer"]`, `{"bank":"bank-a","account_id":"alice","iban":"x"}`)), []string{`unknown key "iban"`}},
		{"trailing data", usersJSON(alice) + `{}`, []string{"after the top-level object"}},
		{"wrong type", `{"users":[{"client_id":7}]}`, []string{"cannot unmarshal number"}},
		{"null entry", `{"users":[null]}`, []string{"users[0]", "client_id"}},
		{"empty id", usersJSON(entry("", hash, `["admin"]`, "")), []string{"users[0]", "client_id"}},
		{"bad id", usersJSON(alice, entry("bob smith", hash, `["admin"]`, "")), []string{`users[1] ("bob smith")`, "client_id"}},
		{"id too long", usersJSON(entry(strings.Repeat("a", 65), hash, `["admin"]`, "")), []string{"users[0]", "client_id"}},
		{"bad hash", usersJSON(entry("alice", "$2a$10$abc", `["customer"]`, acct)), []string{`users[0] ("alice")`, "password_hash"}},
		{"plaintext password", usersJSON(entry("alice", "hunter2", `["customer"]`, acct)), []string{"password_hash"}},
		{"absurd hash cost", usersJSON(entry("alice", strings.Replace(hash, "m=64,", "m=4194304,", 1), `["customer"]`, acct)), []string{"password_hash", "memory"}},
		{"no roles", usersJSON(entry("alice", hash, `[]`, acct)), []string{"roles"}},
		{"missing roles", usersJSON(fmt.Sprintf(`{"client_id":"alice","password_hash":%q}`, hash)), []string{"roles"}},
		{"unknown role", usersJSON(entry("alice", hash, `["root"]`, acct)), []string{`unknown role "root"`}},
		{"bank role", usersJSON(entry("alice", hash, `["bank"]`, acct)), []string{`unknown role "bank"`}},
		{"gateway role", usersJSON(entry("alice", hash, `["gateway"]`, acct)), []string{`unknown role "gateway"`}},
		{"miscased role", usersJSON(entry("alice", hash, `["Admin"]`, "")), []string{`unknown role "Admin"`}},
		{"duplicate role", usersJSON(entry("alice", hash, `["admin","admin"]`, "")), []string{`duplicate role "admin"`}},
		{"customer without account", usersJSON(entry("alice", hash, `["customer"]`, "")), []string{`users[0] ("alice")`, "account"}},
		{"bad bank", usersJSON(entry("alice", hash, `["customer"]`, `{"bank":"Bank A","account_id":"alice"}`)), []string{"account.bank"}},
		{"bad account id", usersJSON(entry("alice", hash, `["customer"]`, `{"bank":"bank-a","account_id":""}`)), []string{"account.account_id"}},
		{"duplicate id", usersJSON(alice, entry("alice", hash, `["admin"]`, "")), []string{`users[1] ("alice")`, "duplicate", "users[0]"}},
		{"duplicate id, other case", usersJSON(alice, entry("ALICE", hash, `["admin"]`, "")), []string{`users[1] ("ALICE")`, "duplicate"}},
	}
	dir := t.TempDir()
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, dir, fmt.Sprintf("users-%d.json", i), tt.content)
			_, err := auth.LoadUsers(path)
			if err == nil {
				t.Fatal("LoadUsers succeeded")
			}
			if !errors.Is(err, auth.ErrInvalidUsersFile) {
				t.Errorf("error does not wrap ErrInvalidUsersFile: %v", err)
			}
			for _, want := range append([]string{path}, tt.want...) {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
			if strings.Contains(err.Error(), hash) {
				t.Errorf("error echoes a password hash: %v", err)
			}
		})
	}
}

func TestLoadUsersFileErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "nope.json")
	if _, err := auth.LoadUsers(missing); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing file: %v", err)
	}
	big := filepath.Join(dir, "big.json")
	if err := os.WriteFile(big, make([]byte, auth.MaxUsersFileSize+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := auth.LoadUsers(big); !errors.Is(err, auth.ErrInvalidUsersFile) {
		t.Errorf("oversized file: %v", err)
	}
}

func TestAddUserAndSetPassword(t *testing.T) {
	if testing.Short() {
		t.Skip("hashes with the default 64 MiB parameters")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "conf", "users.json")

	alice := auth.User{ClientID: "alice", Roles: []authz.Role{authz.RoleCustomer}, Account: &authz.Account{Bank: "bank-a", ID: "alice"}}
	if err := auth.AddUser(path, alice, "alice-pw"); err != nil {
		t.Fatal(err)
	}
	if err := auth.AddUser(path, auth.User{ClientID: "admin", Roles: []authz.Role{authz.RoleAdmin}}, "admin-pw"); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("users file mode %v, want 0600", fi.Mode().Perm())
	}
	data, _ := os.ReadFile(path)
	if strings.Contains(string(data), "alice-pw") {
		t.Fatal("users file contains a password")
	}

	tests := []struct {
		name string
		err  error
		want error
	}{
		{"duplicate", auth.AddUser(path, alice, "x"), auth.ErrUserExists},
		{"duplicate other case", auth.AddUser(path, auth.User{ClientID: "Admin", Roles: []authz.Role{authz.RoleAdmin}}, "x"), auth.ErrUserExists},
		{"invalid user", auth.AddUser(path, auth.User{ClientID: "bob", Roles: []authz.Role{authz.RoleCustomer}}, "x"), auth.ErrInvalidUsersFile},
		{"bank role", auth.AddUser(path, auth.User{ClientID: "bob", Roles: []authz.Role{authz.RoleBank}}, "x"), auth.ErrInvalidUsersFile},
		{"empty password", auth.AddUser(path, auth.User{ClientID: "bob", Roles: []authz.Role{authz.RoleAdmin}}, ""), auth.ErrEmptyPassword},
		{"passwd unknown", auth.SetPassword(path, "mallory", "x"), auth.ErrUnknownUser},
		{"passwd empty", auth.SetPassword(path, "alice", ""), auth.ErrEmptyPassword},
	}
	for _, tt := range tests {
		if !errors.Is(tt.err, tt.want) {
			t.Errorf("%s: err = %v, want %v", tt.name, tt.err, tt.want)
		}
	}

	if err := auth.SetPassword(path, "alice", "new-pw"); err != nil {
		t.Fatal(err)
	}
	users, err := auth.LoadUsers(path)
	if err != nil {
		t.Fatal(err)
	}
	if users.Len() != 2 {
		t.Fatalf("Len = %d, want 2", users.Len())
	}
	u, _ := users.Lookup("alice")
	if auth.VerifyPassword(u.PasswordHash, "alice-pw") || !auth.VerifyPassword(u.PasswordHash, "new-pw") {
		t.Error("SetPassword did not replace the password")
	}
	if u.Account == nil || u.Account.ID != "alice" {
		t.Errorf("SetPassword lost the account: %+v", u)
	}
	a, _ := users.Lookup("admin")
	if !auth.VerifyPassword(a.PasswordHash, "admin-pw") {
		t.Error("SetPassword changed another user")
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("leftover files: %v", entries)
	}
}

func TestAddUserKeepsInvalidFile(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "users.json", `{"users": [`)
	if err := auth.AddUser(path, auth.User{ClientID: "bob", Roles: []authz.Role{authz.RoleAdmin}}, "pw"); !errors.Is(err, auth.ErrInvalidUsersFile) {
		t.Fatalf("AddUser on a broken file: %v", err)
	}
	if data, _ := os.ReadFile(path); string(data) != `{"users": [` {
		t.Errorf("broken file was rewritten: %q", data)
	}
}

// A users file that others may write is refused: the gateway imports it
// within seconds, so write access to it would be admin access.
func TestLoadUsersRefusesAFileOthersMayWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users.json")
	if err := os.WriteFile(path, []byte(`{"users": []}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := auth.LoadUsers(path); err != nil {
		t.Fatalf("mode 0600: %v", err)
	}
	for _, mode := range []os.FileMode{0o620, 0o602, 0o666} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		_, err := auth.LoadUsers(path)
		if !errors.Is(err, auth.ErrInvalidUsersFile) || !strings.Contains(err.Error(), "chmod go-w") {
			t.Errorf("mode %04o: %v, want ErrInvalidUsersFile saying chmod go-w", mode, err)
		}
	}
	if err := os.Chmod(path, 0o644); err != nil { // readable by others: hashes only, allowed
		t.Fatal(err)
	}
	if _, err := auth.LoadUsers(path); err != nil {
		t.Errorf("mode 0644: %v", err)
	}
}
