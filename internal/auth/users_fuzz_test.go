package auth_test

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/remitpay/remit/internal/auth"
	"github.com/remitpay/remit/internal/authz"
	"github.com/remitpay/remit/internal/names"
)

// FuzzLoadUsers feeds arbitrary bytes to the users file parser (LoadUsers
// reads the file and calls ParseUsers). It must never panic, must reject
// with ErrInvalidUsersFile naming the file, and whatever it accepts must
// satisfy the file's invariants and survive a round trip. The seed corpus
// is in testdata/fuzz/FuzzLoadUsers.
func FuzzLoadUsers(f *testing.F) {
	hash, err := auth.HashPasswordParams("pw", cheap)
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(usersJSON(entry("alice", hash, `["customer"]`, `{"bank":"bank-a","account_id":"alice"}`))))
	f.Add([]byte(usersJSON(entry("admin", hash, `["admin","auditor"]`, ""))))
	f.Add([]byte(`{"users":[]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		const name = "fuzz-users.json"
		users, err := auth.ParseUsers(name, data)
		if err != nil {
			if !errors.Is(err, auth.ErrInvalidUsersFile) || !strings.Contains(err.Error(), name) {
				t.Fatalf("error does not wrap ErrInvalidUsersFile or name the file: %v", err)
			}
			return
		}
		type account struct {
			Bank      string `json:"bank"`
			AccountID string `json:"account_id"`
		}
		type user struct {
			ClientID     string   `json:"client_id"`
			PasswordHash string   `json:"password_hash"`
			Roles        []string `json:"roles"`
			Account      *account `json:"account,omitempty"`
		}
		var out struct {
			Users []user `json:"users"`
		}
		out.Users = []user{}
		seen := map[string]bool{}
		for _, u := range users.All() {
			if err := names.ClientID(u.ClientID); err != nil {
				t.Errorf("accepted client id %q: %v", u.ClientID, err)
			}
			if got, ok := users.Lookup(u.ClientID); !ok || got != u {
				t.Errorf("Lookup(%q) does not find the entry", u.ClientID)
			}
			if seen[strings.ToLower(u.ClientID)] {
				t.Errorf("accepted duplicate id %q", u.ClientID)
			}
			seen[strings.ToLower(u.ClientID)] = true
			if len(u.Roles) == 0 {
				t.Errorf("%s: accepted no roles", u.ClientID)
			}
			for _, r := range u.Roles {
				if !slices.Contains(authz.ClientRoles, r) {
					t.Errorf("%s: accepted role %q", u.ClientID, r)
				}
			}
			if u.HasRole(authz.RoleCustomer) && u.Account == nil {
				t.Errorf("%s: customer without account", u.ClientID)
			}
			ou := user{ClientID: u.ClientID, PasswordHash: u.PasswordHash}
			for _, r := range u.Roles {
				ou.Roles = append(ou.Roles, string(r))
			}
			if u.Account != nil {
				ou.Account = &account{Bank: u.Account.Bank, AccountID: u.Account.ID}
			}
			out.Users = append(out.Users, ou)
		}
		again, err := json.Marshal(out)
		if err != nil {
			t.Fatal(err)
		}
		users2, err := auth.ParseUsers(name, again)
		if err != nil {
			t.Fatalf("re-encoded file rejected: %v\n%s", err, again)
		}
		if users2.Len() != users.Len() {
			t.Fatalf("round trip changed the number of users: %d -> %d", users.Len(), users2.Len())
		}
	})
}
