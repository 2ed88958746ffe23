package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/remitpay/remit/internal/authz"
)

// The local network `remit init` describes and `remit up` runs.
const (
	// defaultDir is where `remit up` keeps its network when --dir is not
	// given (git-ignored).
	defaultDir = ".remit"
	// defaultBasePort is the gateway's port; the banks take the next ones.
	defaultBasePort = 8443
	// demoCurrency and demoOpening are every demo account's currency and
	// opening balance (1,000.00 usd in cents).
	demoCurrency = "usd"
	demoOpening  = 100000
)

// demoBanks are the banks of the demo network, on base port +1, +2, +3.
var demoBanks = []string{"bank-a", "bank-b", "bank-c"}

// demoUser is a user `remit init` creates. Customers own an account named
// after them at bank; staff have no account.
type demoUser struct {
	clientID string
	role     authz.Role
	bank     string
}

var demoUsers = []demoUser{
	{clientID: "alice", role: authz.RoleCustomer, bank: "bank-a"},
	{clientID: "bob", role: authz.RoleCustomer, bank: "bank-b"},
	{clientID: "carol", role: authz.RoleCustomer, bank: "bank-c"},
	{clientID: "dave", role: authz.RoleCustomer, bank: "bank-a"},
	{clientID: "admin", role: authz.RoleAdmin},
	{clientID: "auditor", role: authz.RoleAuditor},
}

// network is the layout of a directory written by `remit init`. Every path
// is derived here so that init and up cannot disagree.
type network struct{ dir string }

func (n network) gatewayConfig() string         { return filepath.Join(n.dir, "gateway.yaml") }
func (n network) banksDir() string              { return filepath.Join(n.dir, "banks") }
func (n network) bankConfig(name string) string { return filepath.Join(n.banksDir(), name+".yaml") }
func (n network) usersFile() string             { return filepath.Join(n.dir, "users.json") }
func (n network) credentialsFile() string       { return filepath.Join(n.dir, "credentials.json") }
func (n network) certsDir() string              { return filepath.Join(n.dir, "certs") }
func (n network) dataDir() string               { return filepath.Join(n.dir, "data") }

// outputs are the entries init creates, gateway.yaml last: it marks a
// complete network.
func (n network) outputs() []string {
	return []string{n.certsDir(), n.usersFile(), n.credentialsFile(), n.banksDir(), n.dataDir(), n.gatewayConfig()}
}

// dirState is what `remit up` finds at --dir.
type dirState int

const (
	dirEmpty       dirState = iota // absent or empty: init it
	dirInitialised                 // has gateway.yaml: run it
	dirForeign                     // something else: refuse
)

func (n network) state() (dirState, error) {
	entries, err := os.ReadDir(n.dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return dirEmpty, nil
	case err != nil:
		return 0, err
	case len(entries) == 0:
		return dirEmpty, nil
	}
	if _, err := os.Stat(n.gatewayConfig()); err == nil {
		return dirInitialised, nil
	}
	return dirForeign, nil
}

// credentials is the content of credentials.json: the demo passwords in
// clear, for people and tests to log in with. It is written once, mode 0600.
type credentials struct {
	Note    string       `json:"note"`
	Gateway string       `json:"gateway"`
	CA      string       `json:"ca"`
	Users   []credential `json:"users"`
}

type credential struct {
	ClientID string      `json:"client_id"`
	Password string      `json:"password"`
	Roles    []string    `json:"roles"`
	Account  *accountRef `json:"account,omitempty"`
}

// accountRef names an account, spelt as in users.json.
type accountRef struct {
	Bank      string `json:"bank"`
	AccountID string `json:"account_id"`
}

// loadCredentials reads credentials.json; a missing file is not an error
// (nil, nil): people may delete it once they changed the passwords.
func loadCredentials(path string) (*credentials, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var c credentials
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &c, nil
}

// find returns the first user holding role, if any.
func (c *credentials) find(role authz.Role) *credential {
	if c == nil {
		return nil
	}
	for i := range c.Users {
		for _, r := range c.Users[i].Roles {
			if r == string(role) {
				return &c.Users[i]
			}
		}
	}
	return nil
}

// dialAddr turns a listen address into one to connect to: an unspecified
// host (":8443", "0.0.0.0:8443", "[::]:8443") becomes 127.0.0.1.
func dialAddr(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// shellQuote quotes s for a POSIX shell unless it is made only of
// characters that need no quoting, so printed commands paste as they are.
func shellQuote(s string) string {
	safe := s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-+:,=@%", r))
	}) < 0
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// portOf returns the port of a listen address, or 0.
func portOf(listen string) int {
	_, port, err := net.SplitHostPort(listen)
	if err != nil {
		return 0
	}
	p, _ := strconv.Atoi(port)
	return p
}

// formatAmount renders an amount in a currency's smallest unit for people,
// assuming two decimals: 100000, "usd" -> "1,000.00 usd".
func formatAmount(minor int64, currency string) string {
	sign := ""
	u := uint64(minor)
	if minor < 0 {
		sign, u = "-", uint64(-minor)
	}
	whole := strconv.FormatUint(u/100, 10)
	var b strings.Builder
	for i, c := range whole {
		if i > 0 && (len(whole)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return fmt.Sprintf("%s%s.%02d %s", sign, b.String(), u%100, currency)
}
