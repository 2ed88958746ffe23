package devnet_test

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/remitpay/remit/internal/auth"
	"github.com/remitpay/remit/internal/authz"
	"github.com/remitpay/remit/internal/config"
	"github.com/remitpay/remit/internal/devnet"
)

// TestInitCustomers checks that --customers opens funded accounts spread
// round-robin over the banks, with customer users whose passwords are in
// credentials.json (and not printed), beside the demo users.
func TestInitCustomers(t *testing.T) {
	const n = 7
	var out bytes.Buffer
	l, err := devnet.InitWith(context.Background(), &out, filepath.Join(t.TempDir(), "net"), devnet.InitConfig{BasePort: 9443, Customers: n})
	if err != nil {
		t.Fatal(err)
	}
	creds, err := devnet.LoadCredentials(l.CredentialsFile())
	if err != nil {
		t.Fatal(err)
	}
	users, err := auth.LoadUsers(l.UsersFile())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := users.Len(), 6+n; got != want {
		t.Errorf("users.json has %d users, want %d", got, want)
	}
	accounts := map[string]map[string]config.Account{}
	for _, b := range devnet.Banks() {
		bc, err := config.LoadBank(l.BankConfig(b))
		if err != nil {
			t.Fatal(err)
		}
		accounts[b] = map[string]config.Account{}
		for _, a := range bc.Accounts {
			accounts[b][a.ID] = a
		}
	}
	found := map[string]bool{}
	for _, c := range creds.Users {
		if !strings.HasPrefix(c.ClientID, devnet.CustomerPrefix) {
			continue
		}
		found[c.ClientID] = true
		u, ok := users.Lookup(c.ClientID)
		if !ok || !auth.VerifyPassword(u.PasswordHash, c.Password) {
			t.Errorf("%s: credentials.json password does not match users.json", c.ClientID)
			continue
		}
		if len(u.Roles) != 1 || u.Roles[0] != authz.RoleCustomer || u.Account == nil || u.Account.ID != c.ClientID {
			t.Errorf("%s: users.json %+v", c.ClientID, u)
			continue
		}
		if c.Account == nil || c.Account.Bank != u.Account.Bank || c.Account.AccountID != c.ClientID {
			t.Errorf("%s: credentials.json account %+v", c.ClientID, c.Account)
		}
		if a, ok := accounts[u.Account.Bank][c.ClientID]; !ok || a.Owner != c.ClientID || a.OpeningBalance <= 0 || a.Currency != "usd" {
			t.Errorf("%s: account at %s = %+v (found %v)", c.ClientID, u.Account.Bank, a, ok)
		}
		if strings.Contains(out.String(), c.Password) {
			t.Errorf("init printed %s's password", c.ClientID)
		}
	}
	for i := 1; i <= n; i++ {
		id := fmt.Sprintf("cust-%04d", i)
		if !found[id] {
			t.Errorf("no customer %s", id)
			continue
		}
		wantBank := devnet.Banks()[(i-1)%len(devnet.Banks())]
		if _, ok := accounts[wantBank][id]; !ok {
			t.Errorf("%s: no account at %s (round-robin)", id, wantBank)
		}
	}
	if !strings.Contains(out.String(), "And 7 customers cust-0001..cust-0007") {
		t.Errorf("init output does not mention the customers:\n%s", out.String())
	}
}

func TestInitCustomersRange(t *testing.T) {
	for _, n := range []int{-1, devnet.MaxCustomers + 1} {
		_, err := devnet.InitWith(context.Background(), new(bytes.Buffer), filepath.Join(t.TempDir(), "net"), devnet.InitConfig{BasePort: 9443, Customers: n})
		if err == nil {
			t.Errorf("InitWith(%d customers) = nil error", n)
		}
	}
}
