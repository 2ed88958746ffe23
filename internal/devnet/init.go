package devnet

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/remitpay/remit/internal/auth"
	"github.com/remitpay/remit/internal/authz"
	"github.com/remitpay/remit/internal/config"
	"github.com/remitpay/remit/internal/pki"
	"github.com/remitpay/remit/internal/store"
)

// ErrInitialised is wrapped by the error of [Init] when the directory
// already holds a network.
var ErrInitialised = errors.New("already initialised")

// defaultTokenTTL is the access token lifetime Init writes.
const defaultTokenTTL = time.Hour

// Init writes a new network into dir, with the gateway on basePort, the
// banks on the next ports and the admin listeners (Prometheus metrics and
// pprof, plain HTTP on 127.0.0.1) of all of them after those, and prints to w what it wrote, including the demo
// passwords. It refuses a directory that already holds a network
// ([ErrInitialised]) or part of one. On failure it removes what it created,
// so it can simply be run again.
func Init(ctx context.Context, w io.Writer, dir string, basePort int) (Layout, error) {
	return InitWith(ctx, w, dir, InitConfig{BasePort: basePort})
}

// InitConfig configures [InitWith].
type InitConfig struct {
	// BasePort is the gateway's port; the banks take the next ones.
	BasePort int
	// Customers is how many customers to open beside the demo users, for
	// benches and demos: cust-0001, cust-0002, ..., each with a funded
	// account at the banks in turn (round-robin), so that load spread over
	// them never trips the per-customer rate limit. Their passwords are in
	// credentials.json like the others'.
	Customers int
	// Postgres, when set, is a postgres:// URL: the gateway and every bank
	// keep their tables in that database instead of SQLite files, each in
	// a schema of its own (PREFIX_gateway, PREFIX_bank_a, ...; PREFIX is
	// the URL's search_path, or remit). Init creates the schemas and
	// refuses ones that hold tables already.
	Postgres string
	// Replicas is how many gateway replicas to run on that database (0 or
	// 1: one gateway; at most MaxReplicas). Replicas need Postgres.
	Replicas int
}

// InitWith is [Init] with the options of cfg.
func InitWith(ctx context.Context, w io.Writer, dir string, cfg InitConfig) (_ Layout, err error) {
	basePort := cfg.BasePort
	if cfg.Customers < 0 || cfg.Customers > MaxCustomers {
		return Layout{}, fmt.Errorf("%d customers: want between 0 and %d", cfg.Customers, MaxCustomers)
	}
	replicas := max(cfg.Replicas, 1)
	if replicas > MaxReplicas {
		return Layout{}, fmt.Errorf("%d gateway replicas: want between 1 and %d", replicas, MaxReplicas)
	}
	if replicas > 1 && cfg.Postgres == "" {
		return Layout{}, errors.New("gateway replicas share one PostgreSQL database: give it with --postgres")
	}
	users := append(slices.Clone(demoUsers), extraCustomers(cfg.Customers)...)
	abs, err := filepath.Abs(dir)
	if err != nil {
		return Layout{}, err
	}
	l := Layout{Dir: abs}
	if _, err := os.Stat(l.GatewayConfig()); err == nil {
		return l, fmt.Errorf("%s is %w (%s exists): run `%s` to start it, or remove the directory to start over (that deletes its balances and payments)",
			l.Dir, ErrInitialised, l.GatewayConfig(), l.UpCommand())
	}
	for _, p := range l.outputs() {
		if _, err := os.Lstat(p); err == nil {
			return l, fmt.Errorf("%s already exists, so %s looks like a half-written network: remove it (or the whole directory) and run init again, or choose another --dir", p, l.Dir)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return l, err
		}
	}
	if err := os.MkdirAll(l.Dir, 0o700); err != nil {
		return l, err
	}
	defer func() {
		if err != nil {
			// Init already failed; removing what it wrote is cleanup, and
			// a failure here would hide the error that matters.
			for _, p := range l.outputs() {
				_ = os.RemoveAll(p)
			}
		}
	}()

	schemas, err := createSchemas(ctx, cfg.Postgres)
	if err != nil {
		return l, err
	}
	certs, err := pki.Generate(l.CertsDir(), pki.Options{Banks: Banks()})
	if err != nil {
		return l, err
	}
	gatewayAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(basePort))
	// metricsAddr is the admin listener of process i (0 the gateway, then
	// the banks in order), after every API port.
	metricsAddr := func(i int) string {
		return net.JoinHostPort("127.0.0.1", strconv.Itoa(basePort+1+len(demoBanks)+i))
	}
	// Replica r (2, 3, ...) listens after all of those, its admin
	// listener next to it.
	replicaAddr := func(r, admin int) string {
		return net.JoinHostPort("127.0.0.1", strconv.Itoa(basePort+PortsUsed+2*(r-2)+admin))
	}
	gatewayURL := "https://" + gatewayAddr
	var moreGatewayURLs []string
	for r := 2; r <= replicas; r++ {
		moreGatewayURLs = append(moreGatewayURLs, "https://"+replicaAddr(r, 0))
	}

	creds := Credentials{
		Note:    "Demo passwords written by `remit init`. Keep this file private; change a password with `remit users passwd`.",
		Gateway: gatewayURL,
		CA:      certs.CA,
		Users:   make([]Credential, 0, len(users)),
	}
	for _, d := range users {
		if err := ctx.Err(); err != nil {
			return l, err
		}
		c := Credential{ClientID: d.clientID, Password: rand.Text(), Roles: []string{string(d.role)}}
		u := auth.User{ClientID: d.clientID, Roles: []authz.Role{d.role}}
		if d.bank != "" {
			c.Account = &AccountRef{Bank: d.bank, AccountID: d.clientID}
			u.Account = &authz.Account{Bank: d.bank, ID: d.clientID}
		}
		if err := auth.AddUser(l.UsersFile(), u, c.Password); err != nil {
			return l, err
		}
		creds.Users = append(creds.Users, c)
	}
	data, err := json.MarshalIndent(creds, "", "  ")
	if err != nil {
		return l, err
	}
	if err := writeNewFile(l.CredentialsFile(), append(data, '\n'), 0o600); err != nil {
		return l, err
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

	if err := os.MkdirAll(l.BanksDir(), 0o700); err != nil {
		return l, err
	}
	for i, name := range demoBanks {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(basePort+1+i))
		b := config.Bank{
			Name:            name,
			Listen:          addr,
			MetricsListen:   metricsAddr(1 + i),
			URL:             "https://" + addr,
			GatewayURL:      gatewayURL,
			MoreGatewayURLs: moreGatewayURLs,
			TLS:             tlsFor(l.BanksDir(), name),
			DataDir:         rel(l.BanksDir(), filepath.Join(l.DataDir(), name)),
			Database:        schemas[name],
		}
		for _, d := range users {
			if d.bank == name {
				b.Accounts = append(b.Accounts, config.Account{ID: d.clientID, Owner: d.clientID, Currency: demoCurrency, OpeningBalance: demoOpening})
			}
		}
		if err := writeConfig(l.BankConfig(name), "bank", &b); err != nil {
			return l, err
		}
	}
	for _, name := range append([]string{pki.GatewayName}, demoBanks[:]...) {
		if err := os.MkdirAll(filepath.Join(l.DataDir(), name), 0o700); err != nil {
			return l, err
		}
	}
	for r := 1; r <= replicas; r++ {
		// Each replica has a data directory of its own (its audit log);
		// they share the database.
		dataDir := filepath.Join(l.DataDir(), ReplicaName(r))
		if err := os.MkdirAll(dataDir, 0o700); err != nil {
			return l, err
		}
		g := config.Gateway{
			Listen:        gatewayAddr,
			MetricsListen: metricsAddr(0),
			TLS:           tlsFor(l.Dir, pki.GatewayName),
			DataDir:       rel(l.Dir, dataDir),
			Database:      schemas[pki.GatewayName],
			Users:         rel(l.Dir, l.UsersFile()),
			TokenTTL:      config.Duration(defaultTokenTTL),
		}
		if r > 1 {
			g.Listen, g.MetricsListen = replicaAddr(r, 0), replicaAddr(r, 1)
		}
		// The wallet each replica serves fails over to the others, which
		// let its pages call them (CORS).
		for o, u := range append([]string{gatewayURL}, moreGatewayURLs...) {
			if o+1 != r {
				g.ReplicaURLs = append(g.ReplicaURLs, u)
				g.CORSOrigins = append(g.CORSOrigins, u)
			}
		}
		if err := writeConfig(l.ReplicaConfig(r), "gateway", &g); err != nil {
			return l, err
		}
	}

	printInit(w, l, basePort, &creds, cfg.Customers)
	return l, nil
}

// createSchemas creates, in the PostgreSQL database at base, the schema of
// the gateway and of each bank, and returns their URLs by process name
// (nil for no database: SQLite). A schema that exists and holds tables is
// another network's: Init refuses it rather than mix two networks' money.
func createSchemas(ctx context.Context, base string) (map[string]string, error) {
	if base == "" {
		return nil, nil //nolint:nilnil // no database: SQLite files
	}
	if !store.IsPostgres(base) {
		return nil, fmt.Errorf("--postgres %q: want a postgres:// URL", base)
	}
	u, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("--postgres: %w", err)
	}
	q := u.Query()
	prefix := q.Get("search_path")
	if prefix == "" {
		prefix = "remit"
	}
	if !validSchemaPrefix(prefix) {
		return nil, fmt.Errorf("--postgres: search_path %q: want a schema prefix of lowercase letters, digits and _", prefix)
	}
	q.Del("search_path")
	u.RawQuery = q.Encode()
	db, err := store.Open(ctx, u.String(), "init")
	if err != nil {
		return nil, err
	}
	defer func() { _ = db.Close() }() // nothing written through it is left uncommitted
	out := map[string]string{}
	for _, name := range append([]string{pki.GatewayName}, demoBanks[:]...) {
		schema := schemaName(prefix, name)
		var tables int
		if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = ?`, schema).Scan(&tables); err != nil {
			return nil, fmt.Errorf("--postgres: %w", err)
		}
		if tables > 0 {
			return nil, fmt.Errorf("--postgres: schema %s already holds %d tables of another network: drop it (DROP SCHEMA %s CASCADE deletes its balances and payments) or give another prefix with search_path=", schema, tables, schema)
		}
		if _, err := db.ExecContext(ctx, `CREATE SCHEMA IF NOT EXISTS `+schema); err != nil {
			return nil, fmt.Errorf("--postgres: %w", err)
		}
		sq := u.Query()
		sq.Set("search_path", schema)
		su := *u
		su.RawQuery = sq.Encode()
		out[name] = su.String()
	}
	return out, nil
}

// schemaName is the schema of process name under prefix.
func schemaName(prefix, name string) string { return prefix + "_" + strings.ReplaceAll(name, "-", "_") }

// WithSchemaPrefix is base, a postgres:// URL, with its search_path set to
// prefix unless it has one already (then prefix is ignored); drop removes
// the schemas InitWith makes under the prefix in use (a bench's or a test's
// network, done with). The prefix must be what validSchemaPrefix allows.
func WithSchemaPrefix(base, prefix string) (target string, drop func() error, err error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", nil, fmt.Errorf("--postgres: %w", err)
	}
	q := u.Query()
	if p := q.Get("search_path"); p != "" {
		prefix = p
	}
	if !validSchemaPrefix(prefix) {
		return "", nil, fmt.Errorf("--postgres: schema prefix %q: want lowercase letters, digits and _", prefix)
	}
	q.Set("search_path", prefix)
	u.RawQuery = q.Encode()
	q.Del("search_path")
	admin := *u
	admin.RawQuery = q.Encode()
	drop = func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		db, err := store.Open(ctx, admin.String(), "init")
		if err != nil {
			return err
		}
		var errs []error
		for _, name := range append([]string{pki.GatewayName}, demoBanks[:]...) {
			_, err := db.ExecContext(ctx, `DROP SCHEMA IF EXISTS `+schemaName(prefix, name)+` CASCADE`)
			errs = append(errs, err)
		}
		return errors.Join(append(errs, db.Close())...)
	}
	return u.String(), drop, nil
}

// validSchemaPrefix allows what needs no quoting in SQL.
func validSchemaPrefix(p string) bool {
	if p == "" || len(p) > 40 || p[0] < 'a' || p[0] > 'z' {
		return false
	}
	for _, c := range p {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}

// MaxCustomers is the most extra customers [InitWith] opens.
const MaxCustomers = 9999

// extraCustomers returns n customers named cust-0001..., spread over the
// banks in turn.
func extraCustomers(n int) []demoUser {
	out := make([]demoUser, n)
	for i := range out {
		out[i] = demoUser{
			clientID: fmt.Sprintf("%s%04d", CustomerPrefix, i+1),
			role:     authz.RoleCustomer,
			bank:     demoBanks[i%len(demoBanks)],
		}
	}
	return out
}

// CustomerPrefix starts the client id (and account id) of every customer
// [InitConfig].Customers opens.
const CustomerPrefix = "cust-"

// writeConfig writes a config file for `remit <role>` with a short header,
// after checking it loads back: Init never writes a file that
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
		return errors.Join(err, f.Close())
	}
	if err := f.Sync(); err != nil {
		return errors.Join(err, f.Close())
	}
	return f.Close()
}

func printInit(w io.Writer, l Layout, basePort int, creds *Credentials, extra int) {
	fmt.Fprintf(w, "Initialised a local Remit network in %s:\n", l.Dir)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	admin := basePort + 1 + len(demoBanks)
	fmt.Fprintf(tw, "  gateway.yaml\tgateway on 127.0.0.1:%d, metrics on 127.0.0.1:%d\n", basePort, admin)
	for i, b := range demoBanks {
		fmt.Fprintf(tw, "  banks/%s.yaml\t%s on 127.0.0.1:%d, metrics on 127.0.0.1:%d\n", b, b, basePort+1+i, admin+1+i)
	}
	fmt.Fprint(tw, "  users.json\tusers (password hashes only)\n")
	fmt.Fprint(tw, "  credentials.json\tthe demo passwords (mode 0600; never printed)\n")
	fmt.Fprint(tw, "  certs/\tdev CA (certs/ca.pem) and certificates; keys are private\n")
	fmt.Fprint(tw, "  data/\tdatabases\n")
	tw.Flush()

	fmt.Fprint(w, "\nDemo users (their passwords are in credentials.json):\n")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprint(tw, "  CLIENT\tROLE\tACCOUNT\n")
	for _, c := range creds.Users[:len(creds.Users)-extra] {
		acct := "-"
		if c.Account != nil {
			acct = fmt.Sprintf("%s/%s (%s)", c.Account.Bank, c.Account.AccountID, formatAmount(demoOpening, demoCurrency))
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", c.ClientID, c.Roles[0], acct)
	}
	tw.Flush()
	if extra > 0 {
		fmt.Fprintf(w, "\nAnd %d customers %s..%s, with accounts at the banks in turn (%s each); their passwords are in credentials.json too.\n",
			extra, creds.Users[len(creds.Users)-extra].ClientID, creds.Users[len(creds.Users)-1].ClientID, formatAmount(demoOpening, demoCurrency))
	}
}

// formatAmount renders an amount in a currency's smallest unit for people,
// assuming two decimals, with thousands separators: 100000, "usd" ->
// "1,000.00 usd".
func formatAmount(minor int64, currency string) string {
	sign := ""
	u := uint64(minor) //nolint:gosec // G115: two's complement on purpose; negative amounts are negated below
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
