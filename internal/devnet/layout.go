package devnet

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/remitpay/remit/internal/authz"
	"github.com/remitpay/remit/internal/config"
)

// The demo network [Init] writes.
const (
	// DefaultDir is where `remit up` keeps its network when --dir is not
	// given (git-ignored).
	DefaultDir = ".remit"
	// DefaultBasePort is the gateway's port; the banks take the next ones,
	// then the admin (metrics and pprof) listeners of the gateway and of
	// each bank, in the same order.
	DefaultBasePort = 8443
	// MaxBasePort is the highest gateway port that leaves a port for every
	// bank and every admin listener below 65536.
	MaxBasePort = 65535 - PortsUsed + 1
	// PortsUsed is how many consecutive ports from the base port a network
	// takes: the gateway's and each bank's, and an admin listener for each.
	// Each gateway replica after the first takes two more (PortsFor).
	PortsUsed = 2 * (1 + len(demoBanks))
	// MaxReplicas is the most gateway replicas [InitWith] writes.
	MaxReplicas = 4

	// demoCurrency and demoOpening are every demo account's currency and
	// opening balance (1,000.00 usd in cents).
	demoCurrency = "usd"
	demoOpening  = 100000
)

// demoBanks are the banks of the demo network, on base port +1, +2, +3;
// their admin listeners are on +5, +6, +7 (the gateway's on +4).
var demoBanks = [...]string{"bank-a", "bank-b", "bank-c"}

// Banks returns the names of the demo network's banks, in port order.
func Banks() []string { return slices.Clone(demoBanks[:]) }

// demoUser is a user [Init] creates. Customers own an account named after
// them at bank; staff have no account.
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

// Layout is the layout of a directory written by [Init]. Every path is
// derived here so that Init and [Up] cannot disagree.
type Layout struct {
	// Dir is the network's directory; Init and Up make it absolute.
	Dir string
}

// PortsFor is how many consecutive ports a network of n gateway replicas
// takes: PortsUsed, then an API port and an admin port for each replica
// after the first.
func PortsFor(replicas int) int { return PortsUsed + 2*(max(replicas, 1)-1) }

// ReplicaName is the name of gateway replica i (1 for the first, which is
// "gateway"; then "gateway-2", ...).
func ReplicaName(i int) string {
	if i <= 1 {
		return "gateway"
	}
	return fmt.Sprintf("gateway-%d", i)
}

// ReplicaConfig is the config file of gateway replica i (1 for the
// first: GatewayConfig).
func (l Layout) ReplicaConfig(i int) string {
	if i <= 1 {
		return l.GatewayConfig()
	}
	return filepath.Join(l.Dir, ReplicaName(i)+".yaml")
}

// GatewayConfig is the gateway's config file. Its presence marks a complete
// network.
func (l Layout) GatewayConfig() string { return filepath.Join(l.Dir, "gateway.yaml") }

// BanksDir holds one config file per bank.
func (l Layout) BanksDir() string { return filepath.Join(l.Dir, "banks") }

// BankConfig is the config file of the bank called name.
func (l Layout) BankConfig(name string) string { return filepath.Join(l.BanksDir(), name+".yaml") }

// UsersFile is the gateway's users file (password hashes only).
func (l Layout) UsersFile() string { return filepath.Join(l.Dir, "users.json") }

// CredentialsFile holds the demo passwords in clear (mode 0600).
func (l Layout) CredentialsFile() string { return filepath.Join(l.Dir, "credentials.json") }

// CertsDir holds the dev CA and every certificate.
func (l Layout) CertsDir() string { return filepath.Join(l.Dir, "certs") }

// DataDir holds the databases, one directory per process.
func (l Layout) DataDir() string { return filepath.Join(l.Dir, "data") }

// UpCommand is the command that starts the network, quoted for a POSIX
// shell so that it pastes as printed.
func (l Layout) UpCommand() string { return "remit up --dir " + shellQuote(l.Dir) }

// outputs are the entries Init creates, gateway.yaml last: it marks a
// complete network.
func (l Layout) outputs() []string {
	out := []string{l.CertsDir(), l.UsersFile(), l.CredentialsFile(), l.BanksDir(), l.DataDir(), l.GatewayConfig()}
	for i := 2; i <= MaxReplicas; i++ {
		out = append(out, l.ReplicaConfig(i))
	}
	return out
}

// dirState is what Up finds at its directory.
type dirState int

const (
	dirEmpty       dirState = iota // absent or empty: init it
	dirInitialised                 // has gateway.yaml: run it
	dirForeign                     // something else: refuse
)

func (l Layout) state() (dirState, error) {
	entries, err := os.ReadDir(l.Dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return dirEmpty, nil
	case err != nil:
		return 0, err
	case len(entries) == 0:
		return dirEmpty, nil
	}
	if _, err := os.Stat(l.GatewayConfig()); err == nil {
		return dirInitialised, nil
	}
	return dirForeign, nil
}

// Credentials is the content of credentials.json: the demo passwords in
// clear, for people and tests to log in with. It is written once, mode 0600.
type Credentials struct {
	Note    string       `json:"note"`
	Gateway string       `json:"gateway"`
	CA      string       `json:"ca"`
	Users   []Credential `json:"users"`
}

// Credential is one demo user's login.
type Credential struct {
	ClientID string      `json:"client_id"`
	Password string      `json:"password"`
	Roles    []string    `json:"roles"`
	Account  *AccountRef `json:"account,omitempty"`
}

// AccountRef names an account, spelt as in users.json.
type AccountRef struct {
	Bank      string `json:"bank"`
	AccountID string `json:"account_id"`
}

// LoadCredentials reads credentials.json; a missing file is not an error
// (nil, nil): people may delete it once they changed the passwords.
func LoadCredentials(path string) (*Credentials, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil //nolint:nilnil // documented: no file means no credentials, and every method is safe on nil
	}
	if err != nil {
		return nil, err
	}
	var c Credentials
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &c, nil
}

// Find returns the first user holding role, if any. It is safe on nil.
func (c *Credentials) Find(role authz.Role) *Credential {
	if c == nil {
		return nil
	}
	for i := range c.Users {
		if slices.Contains(c.Users[i].Roles, string(role)) {
			return &c.Users[i]
		}
	}
	return nil
}

// shellQuote quotes s for a POSIX shell unless it is made only of
// characters that need no quoting, so printed commands paste as they are.
func shellQuote(s string) string {
	safe := s != "" && strings.IndexFunc(s, func(r rune) bool {
		return (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') && (r < '0' || r > '9') && !strings.ContainsRune("/._-+:,=@%", r)
	}) < 0
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// GatewayDatabase is where the network's gateway keeps its coordinator
// log: its config's database URL, or the SQLite file in its data
// directory.
func (l Layout) GatewayDatabase() (string, error) {
	g, err := config.LoadGateway(l.GatewayConfig())
	if err != nil {
		return "", err
	}
	if g.Database != "" {
		return g.Database, nil
	}
	return filepath.Join(g.DataDir, "gateway.db"), nil
}

// LedgerDatabase is where bank keeps its ledger: its config's database,
// or ledger.db in its data directory.
func (l Layout) LedgerDatabase(bank string) (string, error) {
	b, err := config.LoadBank(l.BankConfig(bank))
	if err != nil {
		return "", err
	}
	if b.Database != "" {
		return b.Database, nil
	}
	return filepath.Join(b.DataDir, "ledger.db"), nil
}
