package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/remitpay/remit/internal/auth"
	"github.com/remitpay/remit/internal/authz"
	"github.com/remitpay/remit/internal/config"
	"github.com/remitpay/remit/internal/pki"
)

var initCmd = &command{
	name:    "init",
	summary: "write a complete local network (configs, users, certificates) to a directory",
	usage:   "remit init --dir DIR [--base-port P]",
	help: `
Init writes everything a local Remit network needs into DIR:

  gateway.yaml          the gateway's config (127.0.0.1:P)
  banks/<bank>.yaml     bank-a, bank-b, bank-c (127.0.0.1:P+1 .. P+3)
  users.json            the users, with password hashes only
  credentials.json      the generated demo passwords (mode 0600)
  certs/                the dev CA (certs/ca.pem) and every certificate
  data/                 the databases, one directory per process

The demo users are the customers alice and dave (accounts at bank-a), bob
(bank-b) and carol (bank-c), each opening with 100000 (1,000.00 usd), plus
admin (role admin) and auditor (role auditor). Account ids equal the
customer names. Passwords are random; they are printed once and kept in
credentials.json.

Init refuses to touch a directory that already holds a network. 'remit up'
runs init for you when its directory is empty.`,
	examples: `
remit init --dir .remit
remit up --dir .remit
# a second network next to the first:
remit init --dir /tmp/remit2 --base-port 9443`,
	flags: func(fs *flag.FlagSet) runFunc {
		dir := fs.String("dir", "", "create the network in `DIR` (required)")
		basePort := fs.Int("base-port", defaultBasePort, "the gateway's `PORT`; the banks use the next three")
		return func(ctx context.Context, e *env, args []string) error {
			switch {
			case len(args) > 0:
				return usagef("unexpected argument %q", args[0])
			case *dir == "":
				return usagef("--dir is required")
			}
			if err := checkBasePort(*basePort); err != nil {
				return err
			}
			n, err := initNetwork(ctx, e.stdout, *dir, *basePort)
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "\nStart it with:\n  remit up --dir %s\n", shellQuote(n.dir))
			return nil
		}
	},
}

func checkBasePort(p int) error {
	if p < 1 || p > 65535-len(demoBanks) {
		return usagef("--base-port %d: want a port between 1 and %d (the banks use the next %d)", p, 65535-len(demoBanks), len(demoBanks))
	}
	return nil
}

// errInitialised means init found an existing network.
var errInitialised = errors.New("already initialised")

// initNetwork writes a new network into dir and prints what it wrote,
// including the demo passwords. On failure it removes what it created, so
// it can simply be run again.
func initNetwork(ctx context.Context, w io.Writer, dir string, basePort int) (_ network, err error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return network{}, err
	}
	n := network{dir: abs}
	if _, err := os.Stat(n.gatewayConfig()); err == nil {
		return n, fmt.Errorf("%s is %w (%s exists): run `remit up --dir %s` to start it, or remove the directory to start over (that deletes its balances and payments)",
			n.dir, errInitialised, n.gatewayConfig(), shellQuote(n.dir))
	}
	for _, p := range n.outputs() {
		if _, err := os.Lstat(p); err == nil {
			return n, fmt.Errorf("%s already exists, so %s looks like a half-written network: remove it (or the whole directory) and run init again, or choose another --dir", p, n.dir)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return n, err
		}
	}
	if err := os.MkdirAll(n.dir, 0o700); err != nil {
		return n, err
	}
	defer func() {
		if err != nil {
			for _, p := range n.outputs() {
				os.RemoveAll(p)
			}
		}
	}()

	certs, err := pki.Generate(n.certsDir(), pki.Options{Banks: demoBanks})
	if err != nil {
		return n, err
	}
	gatewayAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(basePort))
	gatewayURL := "https://" + gatewayAddr

	creds := credentials{
		Note:    "Demo passwords written by `remit init`. Keep this file private; change a password with `remit users passwd`.",
		Gateway: gatewayURL,
		CA:      certs.CA,
		Users:   make([]credential, 0, len(demoUsers)),
	}
	for _, d := range demoUsers {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		c := credential{ClientID: d.clientID, Password: rand.Text(), Roles: []string{string(d.role)}}
		u := auth.User{ClientID: d.clientID, Roles: []authz.Role{d.role}}
		if d.bank != "" {
			c.Account = &accountRef{Bank: d.bank, AccountID: d.clientID}
			u.Account = &authz.Account{Bank: d.bank, ID: d.clientID}
		}
		if err := auth.AddUser(n.usersFile(), u, c.Password); err != nil {
			return n, err
		}
		creds.Users = append(creds.Users, c)
	}
	data, err := json.MarshalIndent(creds, "", "  ")
	if err != nil {
		return n, err
	}
	if err := writeNewFile(n.credentialsFile(), append(data, '\n'), 0o600); err != nil {
		return n, err
	}

	// Config paths are relative to the config file, so the directory can be
	// moved as a whole.
	rel := func(from, to string) string {
		r, err := filepath.Rel(from, to)
		if err != nil {
			return to
		}
		return r
	}
	tlsFor := func(from, name string) config.TLS {
		cert, key := certs.Server(name)
		ccert, ckey := certs.Client(name)
		return config.TLS{
			CA: rel(from, certs.CA), Cert: rel(from, cert), Key: rel(from, key),
			ClientCert: rel(from, ccert), ClientKey: rel(from, ckey),
		}
	}

	if err := os.MkdirAll(n.banksDir(), 0o700); err != nil {
		return n, err
	}
	for i, name := range demoBanks {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(basePort+1+i))
		b := config.Bank{
			Name:       name,
			Listen:     addr,
			URL:        "https://" + addr,
			GatewayURL: gatewayURL,
			TLS:        tlsFor(n.banksDir(), name),
			DataDir:    rel(n.banksDir(), filepath.Join(n.dataDir(), name)),
		}
		for _, d := range demoUsers {
			if d.bank == name {
				b.Accounts = append(b.Accounts, config.Account{ID: d.clientID, Owner: d.clientID, Currency: demoCurrency, OpeningBalance: demoOpening})
			}
		}
		if err := writeConfig(n.bankConfig(name), "bank", &b); err != nil {
			return n, err
		}
	}
	for _, name := range append([]string{pki.GatewayName}, demoBanks...) {
		if err := os.MkdirAll(filepath.Join(n.dataDir(), name), 0o700); err != nil {
			return n, err
		}
	}
	g := config.Gateway{
		Listen:   gatewayAddr,
		TLS:      tlsFor(n.dir, pki.GatewayName),
		DataDir:  rel(n.dir, filepath.Join(n.dataDir(), pki.GatewayName)),
		Users:    rel(n.dir, n.usersFile()),
		TokenTTL: config.Duration(defaultTokenTTL),
	}
	if err := writeConfig(n.gatewayConfig(), "gateway", &g); err != nil {
		return n, err
	}

	printInit(w, n, basePort, &creds)
	return n, nil
}

// defaultTokenTTL is the access token lifetime init writes.
const defaultTokenTTL = time.Hour

// writeConfig writes a config file for `remit <role>` with a short header,
// after checking it loads back: init never writes a file that
// `remit gateway` or `remit bank` would reject.
func writeConfig(path, role string, v any) error {
	body, err := config.Marshal(v)
	if err != nil {
		return err
	}
	header := fmt.Sprintf("# Config for `remit %s --config %s`, written by `remit init`.\n"+
		"# Relative paths are relative to this file's directory; `remit %s --help` lists the fields.\n",
		role, filepath.Base(path), role)
	data := append([]byte(header), body...)
	switch v.(type) {
	case *config.Gateway:
		_, err = config.ParseGateway(path, data)
	case *config.Bank:
		_, err = config.ParseBank(path, data)
	}
	if err != nil {
		return fmt.Errorf("internal error: init would write an invalid config: %w", err)
	}
	return writeNewFile(path, data, 0o644)
}

// writeNewFile creates path with data and mode, failing if it exists.
func writeNewFile(path string, data []byte, mode fs.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func printInit(w io.Writer, n network, basePort int, creds *credentials) {
	fmt.Fprintf(w, "Initialised a local Remit network in %s:\n", n.dir)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  gateway.yaml\tgateway on 127.0.0.1:%d\n", basePort)
	for i, b := range demoBanks {
		fmt.Fprintf(tw, "  banks/%s.yaml\t%s on 127.0.0.1:%d\n", b, b, basePort+1+i)
	}
	fmt.Fprint(tw, "  users.json\tusers (password hashes only)\n")
	fmt.Fprint(tw, "  credentials.json\tthe demo passwords below (mode 0600)\n")
	fmt.Fprint(tw, "  certs/\tdev CA (certs/ca.pem) and certificates; keys are private\n")
	fmt.Fprint(tw, "  data/\tdatabases\n")
	tw.Flush()

	fmt.Fprint(w, "\nDemo users (passwords are shown only now; they are also in credentials.json):\n")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprint(tw, "  CLIENT\tPASSWORD\tROLE\tACCOUNT\n")
	for _, c := range creds.Users {
		acct := "-"
		if c.Account != nil {
			acct = fmt.Sprintf("%s/%s (%s)", c.Account.Bank, c.Account.AccountID, formatAmount(demoOpening, demoCurrency))
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", c.ClientID, c.Password, c.Roles[0], acct)
	}
	tw.Flush()
}
