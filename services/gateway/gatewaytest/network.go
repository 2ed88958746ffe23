// Package gatewaytest runs a whole Remit network in-process for tests: one
// gateway and three banks on 127.0.0.1 over real mutual TLS, each of which
// can be stopped and restarted on its data directory and address, with a
// [Proxy] in front of every bank so that a test can cut the gateway off from
// a bank that keeps running.
//
// The network has five users, all with [Password]: alice and dave (bank-a),
// bob (bank-b), carol (bank-c), each owning an account of the same name with
// [Opening] usd, and admin (role admin, no account).
//
// Tests that need a bank to be slow (a prepare that times out, a vote that
// arrives late) hold its ledger's write lock with [Bank.LockLedger]; the bank
// stays healthy and its calls queue on SQLite's busy timeout. [Gateway.LockDB]
// does the same to the coordinator log, which holds a decision back.
package gatewaytest

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/time/rate"

	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
	"github.com/remitpay/remit/gen/remit/gateway/v1/gatewayv1connect"
	"github.com/remitpay/remit/internal/auth"
	"github.com/remitpay/remit/internal/logging/logtest"
	"github.com/remitpay/remit/internal/pki"
	"github.com/remitpay/remit/internal/portlock"
	"github.com/remitpay/remit/internal/serve"
	"github.com/remitpay/remit/internal/store"
	"github.com/remitpay/remit/internal/store/storetest"
	"github.com/remitpay/remit/services/bank"
	"github.com/remitpay/remit/services/gateway"
)

// Fixed facts of every Network.
const (
	// Password is every user's password.
	Password = "integration-password"
	// Opening is every customer account's opening balance, in cents.
	Opening int64 = 100000
	// Currency is every account's currency.
	Currency = "usd"
	// AdminID is the client id of the admin user.
	AdminID = "admin"
)

// BankNames are the banks of every Network.
var BankNames = []string{"bank-a", "bank-b", "bank-c"}

// Customers maps each customer's client id (which is also its account id) to
// its bank.
var Customers = map[string]string{"alice": "bank-a", "dave": "bank-a", "bob": "bank-b", "carol": "bank-c"}

// Bounds of the waits in this package and in tests that use it.
const (
	// WaitTimeout bounds every wait for a condition.
	WaitTimeout = 20 * time.Second
	// PollInterval is the pause between two checks of a condition.
	PollInterval = 20 * time.Millisecond
)

// FastTiming is the coordinator timing tests run with unless they say
// otherwise: short enough that timeouts and re-drives happen within a test.
var FastTiming = gateway.Timing{
	PrepareCall: 500 * time.Millisecond,
	Decision:    2 * time.Second,
	ExpireGrace: time.Second,
	CommitCall:  500 * time.Millisecond,
	Phase2Wait:  500 * time.Millisecond,
	Redrive:     50 * time.Millisecond,
}

// Options adjusts a Network. Zero fields take the fast defaults.
type Options struct {
	// Timing is the gateway's coordinator timing (default FastTiming).
	Timing gateway.Timing
	// HealthInterval is the gateway's bank health-check period (default 100ms).
	HealthInterval time.Duration
	// ResolveInterval is each bank's resolver period (default 100ms).
	ResolveInterval time.Duration
	// RegisterInterval is each bank's registration heartbeat (default 200ms).
	RegisterInterval time.Duration
	// OnDisk keeps the data directories on the real disk (t.TempDir) instead
	// of tmpfs, so that fsync costs what it costs in production: benchmarks
	// set it.
	OnDisk bool
	// Metrics gives the gateway and every bank an admin listener (metrics
	// and pprof) on a port of its own, kept across restarts:
	// [Gateway.MetricsURL] and [Bank.MetricsURL].
	Metrics bool
	// CORSOrigins are the gateway's allowed browser origins (default none).
	CORSOrigins []string
	// StreamRecheck is how often the gateway re-verifies an open stream's
	// token (default 100ms); tests of the immediate end of a revoked
	// session's streams make it long.
	StreamRecheck time.Duration
	// RegisterRate and RegisterBurst are the gateway's per-source limit of
	// AuthService.Register; zero RegisterRate means no limit (every test
	// connects from loopback), a test of the limit sets them.
	RegisterRate  rate.Limit
	RegisterBurst int
}

// Network is a running gateway with its three banks.
type Network struct {
	// Dir holds the certificates, the users file and every data directory.
	Dir     string
	Gateway *Gateway
	Banks   map[string]*Bank
	// Log receives every process's logs; it is printed when the test fails.
	Log *logtest.Buffer

	http *http.Client
}

// Start builds and starts a network in a fresh directory, waits until the
// gateway lists every bank as serving, and stops everything (and removes the
// directory) when the test ends. Networks of parallel tests share nothing.
func Start(tb testing.TB, opts Options) *Network {
	tb.Helper()
	if opts.Timing == (gateway.Timing{}) {
		opts.Timing = FastTiming
	}
	opts.HealthInterval = orDefault(opts.HealthInterval, 100*time.Millisecond)
	opts.ResolveInterval = orDefault(opts.ResolveInterval, 100*time.Millisecond)
	opts.RegisterInterval = orDefault(opts.RegisterInterval, 200*time.Millisecond)
	opts.StreamRecheck = orDefault(opts.StreamRecheck, 100*time.Millisecond)
	if opts.RegisterRate == 0 {
		opts.RegisterRate = rate.Inf
	}

	dir := tb.TempDir()
	if !opts.OnDisk {
		dir = dataRoot(tb)
	}
	layout, err := pki.Generate(filepath.Join(dir, "certs"), pki.Options{Banks: BankNames})
	if err != nil {
		tb.Fatal(err)
	}
	usersFile := filepath.Join(dir, "users.json")
	if err := writeUsers(usersFile); err != nil {
		tb.Fatal(err)
	}
	logBuf := &logtest.Buffer{}
	logger := slog.New(slog.NewTextHandler(logBuf, &slog.HandlerOptions{Level: slog.LevelInfo}))

	ports := freePorts(tb, 1+2*len(BankNames))
	// metricsAddr is the admin listener of process i (0 the gateway, then
	// the banks), or empty without Options.Metrics.
	metricsAddr := func(int) string { return "" }
	if opts.Metrics {
		admin := freePorts(tb, 1+len(BankNames))
		metricsAddr = func(i int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(admin[i])) }
	}
	n := &Network{Dir: dir, Log: logBuf, Banks: map[string]*Bank{}}

	gcert, gkey := layout.Server(pki.GatewayName)
	serverTLS, err := pki.ServerConfig(gcert, gkey, layout.CA, tls.VerifyClientCertIfGiven)
	if err != nil {
		tb.Fatal(err)
	}
	gccert, gckey := layout.Client(pki.GatewayName)
	bankTLS, err := pki.ClientConfig(layout.CA, gccert, gckey)
	if err != nil {
		tb.Fatal(err)
	}
	gwAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
	n.Gateway = &Gateway{
		URL:  "https://" + gwAddr,
		addr: gwAddr,
		cfg: gateway.Config{
			ServerTLS:      serverTLS,
			BankTLS:        bankTLS,
			DataDir:        filepath.Join(dir, "gateway"),
			Database:       gatewayDatabase(tb, dir),
			UsersFile:      usersFile,
			MetricsAddr:    metricsAddr(0),
			Logger:         logger.With("process", "gateway"),
			Timing:         opts.Timing,
			HealthInterval: opts.HealthInterval,
			RateLimit:      1e9, // the tests are the only clients; never throttle them
			StreamRecheck:  opts.StreamRecheck,
			UsersPoll:      50 * time.Millisecond,
			RegisterRate:   opts.RegisterRate,
			RegisterBurst:  opts.RegisterBurst,
			CORSOrigins:    opts.CORSOrigins,
		},
	}

	for i, name := range BankNames {
		cert, key := layout.Server(name)
		bankServerTLS, err := pki.ServerConfig(cert, key, layout.CA, tls.RequireAndVerifyClientCert)
		if err != nil {
			tb.Fatal(err)
		}
		ccert, ckey := layout.Client(name)
		gatewayTLS, err := pki.ClientConfig(layout.CA, ccert, ckey)
		if err != nil {
			tb.Fatal(err)
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[1+2*i]))
		proxy, err := NewProxy(net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[2+2*i])), addr)
		if err != nil {
			tb.Fatal(err)
		}
		var seeds []bank.AccountSeed
		for id, b := range Customers {
			if b == name {
				seeds = append(seeds, bank.AccountSeed{ID: id, Owner: id, Currency: Currency, Opening: Opening})
			}
		}
		n.Banks[name] = &Bank{
			Name:  name,
			Proxy: proxy,
			addr:  addr,
			cfg: bank.Config{
				Name:             name,
				PublicURL:        "https://" + proxy.Addr(),
				GatewayURL:       n.Gateway.URL,
				ServerTLS:        bankServerTLS,
				GatewayTLS:       gatewayTLS,
				DataDir:          filepath.Join(dir, name),
				Database:         storetest.Target(tb, filepath.Join(dir, name), "ledger"),
				MetricsAddr:      metricsAddr(1 + i),
				Accounts:         seeds,
				Logger:           logger.With("process", name),
				ResolveInterval:  opts.ResolveInterval,
				RegisterInterval: opts.RegisterInterval,
			},
		}
	}

	clientTLS, err := pki.ClientConfig(layout.CA, "", "")
	if err != nil {
		tb.Fatal(err)
	}
	n.http = serve.NewHTTP2Client(clientTLS)

	tb.Cleanup(func() {
		n.http.CloseIdleConnections()
		// Every graceful stop waits about a second for HTTP/2 peers to hang
		// up after GOAWAY; stop the processes together.
		var wg sync.WaitGroup
		wg.Go(func() { n.Gateway.stop(tb.Errorf) })
		for _, name := range BankNames {
			wg.Go(func() { n.Banks[name].stop(tb.Errorf) })
		}
		wg.Wait()
		for _, name := range BankNames {
			n.Banks[name].Proxy.Close()
		}
		if tb.Failed() {
			tb.Logf("logs of the network (last lines):\n%s", logBuf.Tail(400))
		}
	})

	n.Gateway.Start(tb)
	for _, name := range BankNames {
		n.Banks[name].Start(tb)
	}
	n.WaitReady(tb)
	return n
}

// dataRoot returns a fresh directory for a network, removed when the test
// ends. It prefers tmpfs (/dev/shm): every SQLite commit fsyncs
// (synchronous=FULL), which on a disk makes a payment cost tens of
// milliseconds, while nothing these in-process tests check depends on the
// disk (a stopped process leaves its writes in the page cache either way).
func dataRoot(tb testing.TB) string {
	tb.Helper()
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if dir, err := os.MkdirTemp("/dev/shm", "remit-gatewaytest-"); err == nil { //nolint:usetesting // tb.TempDir cannot be placed on /dev/shm
			tb.Cleanup(func() {
				if err := os.RemoveAll(dir); err != nil {
					tb.Errorf("remove data directory: %v", err)
				}
			})
			return dir
		}
	}
	return tb.TempDir()
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// freePorts returns n ports free on 127.0.0.1 and reserved until the
// test ends: a network keeps its ports across restarts, so no other
// network, of this test binary or another, may take one while its process
// is stopped.
func freePorts(tb testing.TB, n int) []int {
	tb.Helper()
	b, err := portlock.Reserve(tb.Context(), n)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(b.Release)
	return b.Ports()
}

// cheapHash keeps logins fast: the tests are not about password cost.
var cheapHash = auth.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

func writeUsers(path string) error {
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
	var users []user
	add := func(id string, roles []string, acct *account) error {
		h, err := auth.HashPasswordParams(Password, cheapHash)
		if err != nil {
			return err
		}
		users = append(users, user{ClientID: id, PasswordHash: h, Roles: roles, Account: acct})
		return nil
	}
	for _, id := range []string{"alice", "bob", "carol", "dave"} {
		if err := add(id, []string{"customer"}, &account{Bank: Customers[id], AccountID: id}); err != nil {
			return err
		}
	}
	if err := add(AdminID, []string{"admin"}, nil); err != nil {
		return err
	}
	data, err := json.MarshalIndent(map[string]any{"users": users}, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o600)
}

// listen listens on addr, retrying for a while. stop waits until the last
// run closed its listener, so the port is normally free at once; the retry
// covers the rare moment another test's freePorts probe holds it.
func listen(addr string) (ln net.Listener, err error) {
	var lc net.ListenConfig
	Retry(context.Background(), 5*time.Second, func() bool {
		ln, err = lc.Listen(context.Background(), "tcp", addr)
		return err == nil
	})
	return ln, err
}

// process is one in-process server run: its cancel and the result of its
// Run.
type process struct {
	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

func (p *process) start(run func(ctx context.Context, ln net.Listener) error, addr string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done != nil {
		return errors.New("already running")
	}
	ln, err := listen(addr)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	p.cancel, p.done, p.err = cancel, done, nil
	go func() {
		err := run(ctx, ln)
		// Run may return before serving, leaving the listener open; if it
		// did serve, it closed the listener and this returns ErrClosed.
		_ = ln.Close()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(done)
	}()
	return nil
}

// stop cancels the run and waits for it; it reports a timeout or an error
// Run returned.
func (p *process) stop() error {
	p.mu.Lock()
	cancel, done := p.cancel, p.done
	p.mu.Unlock()
	if done == nil {
		return nil
	}
	cancel()
	select {
	case <-done:
	case <-time.After(WaitTimeout):
		return errors.New("did not stop in time")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cancel, p.done = nil, nil
	if errors.Is(p.err, context.Canceled) {
		return nil // stopped while still starting up
	}
	return p.err
}

// exited returns Run's error if the process stopped on its own.
func (p *process) exited() (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done == nil {
		return false, nil
	}
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// StopBanks stops every bank, together, and waits until they stopped.
func (n *Network) StopBanks(tb testing.TB) {
	tb.Helper()
	errs := make([]error, len(BankNames))
	var wg sync.WaitGroup
	for i, name := range BankNames {
		wg.Go(func() { errs[i] = n.Banks[name].proc.stop() })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		tb.Fatalf("stop banks: %v", err)
	}
}

// Gateway is the network's gateway process.
type Gateway struct {
	// URL is the gateway's https base URL; it stays the same across restarts.
	URL  string
	addr string
	cfg  gateway.Config
	proc process
}

// Start runs the gateway on its address and data directory.
func (g *Gateway) Start(tb testing.TB) {
	tb.Helper()
	if err := g.start(); err != nil {
		tb.Fatal(err)
	}
}

func (g *Gateway) start() error {
	cfg := g.cfg
	if err := g.proc.start(func(ctx context.Context, ln net.Listener) error {
		cfg.Listener = ln
		return gateway.Run(ctx, cfg)
	}, g.addr); err != nil {
		return fmt.Errorf("start gateway: %w", err)
	}
	return nil
}

// Stop shuts the gateway down gracefully and waits until Run returned.
func (g *Gateway) Stop(tb testing.TB) {
	tb.Helper()
	g.stop(tb.Fatalf)
}

func (g *Gateway) stop(fail func(string, ...any)) {
	if err := g.proc.stop(); err != nil {
		fail("stop gateway: %v", err)
	}
}

// Restart stops the gateway and starts it again on the same address and
// data directory. Unlike Stop and Start it may be called from any goroutine.
func (g *Gateway) Restart() error {
	if err := g.proc.stop(); err != nil {
		return fmt.Errorf("stop gateway: %w", err)
	}
	return g.start()
}

// SetTiming changes the coordinator timing of the next Start.
func (g *Gateway) SetTiming(timing gateway.Timing) { g.cfg.Timing = timing }

// Timing is the coordinator timing of the gateway.
func (g *Gateway) Timing() gateway.Timing { return g.cfg.Timing }

// LockDB takes the write lock of the coordinator log (gateway.db) and holds
// it until the returned function is called: every write of the gateway (a
// claim, a decision, an acknowledgement) waits meanwhile. Release within
// SQLite's busy timeout (10s) or the waiting writes fail.
func (g *Gateway) LockDB(tb testing.TB) (release func()) {
	tb.Helper()
	target := g.cfg.Database
	if target == "" {
		target = filepath.Join(g.cfg.DataDir, "gateway.db")
	}
	return lockDB(tb, target, "gateway")
}

// WipeLog deletes the coordinator log of the stopped gateway, as a lost
// disk would: the files of gateway.db, or on PostgreSQL its tables (the
// sessions and users stay, as sessions.db does). Its next start begins an
// empty log.
func (g *Gateway) WipeLog(tb testing.TB) {
	tb.Helper()
	if g.cfg.Database == "" {
		for _, suffix := range []string{"", "-wal", "-shm"} {
			if err := os.Remove(filepath.Join(g.cfg.DataDir, "gateway.db"+suffix)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				tb.Fatal(err)
			}
		}
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), WaitTimeout)
	defer cancel()
	db, err := store.Open(ctx, g.cfg.Database, "gateway")
	if err != nil {
		tb.Fatal(err)
	}
	_, err = db.ExecContext(ctx, `DROP TABLE transactions, participants, events, banks CASCADE;
		DELETE FROM schema_migrations WHERE component = 'gateway'`)
	if err := errors.Join(err, db.Close()); err != nil {
		tb.Fatal(err)
	}
}

// AddReplica starts a second gateway replica on the network's PostgreSQL
// schema, on an address and data directory of its own, and waits until it
// serves every bank (it learns them from the shared registry; the banks
// register with the first replica only). It stops with the test. Only a
// PostgreSQL test run has replicas: on SQLite it skips the test.
func (n *Network) AddReplica(tb testing.TB) *Gateway {
	tb.Helper()
	if n.Gateway.cfg.Database == "" {
		tb.Skip("gateway replicas share a PostgreSQL database; this run is on sqlite (REMIT_TEST_POSTGRES)")
	}
	port := freePorts(tb, 1)[0]
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	cfg := n.Gateway.cfg
	cfg.DataDir = filepath.Join(n.Dir, fmt.Sprintf("gateway-%d", port))
	cfg.AuditLog = ""
	cfg.MetricsAddr = ""
	cfg.Logger = cfg.Logger.With("replica", addr)
	g := &Gateway{URL: "https://" + addr, addr: addr, cfg: cfg}
	g.Start(tb)
	tb.Cleanup(func() { g.stop(tb.Errorf) })
	admin := n.Login(tb, AdminID).At(g.URL)
	WaitFor(tb, "every bank serving at the replica", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		res, err := admin.Admin.ListBanks(ctx, &gatewayv1.ListBanksRequest{})
		if err != nil {
			return err
		}
		serving := 0
		for _, b := range res.GetBanks() {
			if b.GetStatus() == gatewayv1.BankStatus_BANK_STATUS_SERVING {
				serving++
			}
		}
		if serving < len(BankNames) {
			return fmt.Errorf("%d of %d banks serving: %v", serving, len(BankNames), res.GetBanks())
		}
		return nil
	})
	return g
}

// gatewayDatabase is the gateway's Database on a PostgreSQL test run (one
// schema for its log and sessions), and "" (the SQLite files in its data
// directory) otherwise.
func gatewayDatabase(tb testing.TB, dir string) string {
	tb.Helper()
	if storetest.Backend() != "postgres" {
		return ""
	}
	return storetest.Target(tb, dir, "gateway")
}

// Bank is one bank process with the proxy the gateway reaches it through.
type Bank struct {
	Name string
	// Proxy is where the gateway reaches this bank.
	Proxy *Proxy
	addr  string
	cfg   bank.Config
	proc  process
}

// Start runs the bank on its address and data directory.
func (b *Bank) Start(tb testing.TB) {
	tb.Helper()
	if err := b.start(); err != nil {
		tb.Fatal(err)
	}
}

func (b *Bank) start() error {
	cfg := b.cfg
	if err := b.proc.start(func(ctx context.Context, ln net.Listener) error {
		cfg.Listener = ln
		return bank.Run(ctx, cfg)
	}, b.addr); err != nil {
		return fmt.Errorf("start %s: %w", b.Name, err)
	}
	return nil
}

// Restart stops the bank and starts it again on the same address and data
// directory. Unlike Stop and Start it may be called from any goroutine.
func (b *Bank) Restart() error {
	if err := b.proc.stop(); err != nil {
		return fmt.Errorf("stop %s: %w", b.Name, err)
	}
	return b.start()
}

// Stop shuts the bank down gracefully and waits until Run returned.
func (b *Bank) Stop(tb testing.TB) {
	tb.Helper()
	b.stop(tb.Fatalf)
}

func (b *Bank) stop(fail func(string, ...any)) {
	if err := b.proc.stop(); err != nil {
		fail("stop %s: %v", b.Name, err)
	}
}

// URL is the bank's public URL, the one it registers with the gateway.
func (b *Bank) URL() string { return b.cfg.PublicURL }

// MetricsURL is the bank's Prometheus endpoint (plain HTTP), or empty
// without Options.Metrics.
func (b *Bank) MetricsURL() string { return metricsURL(b.cfg.MetricsAddr) }

// MetricsURL is the gateway's Prometheus endpoint (plain HTTP), or empty
// without Options.Metrics.
func (g *Gateway) MetricsURL() string { return metricsURL(g.cfg.MetricsAddr) }

func metricsURL(addr string) string {
	if addr == "" {
		return ""
	}
	return "http://" + addr + "/metrics"
}

// LedgerPath is the bank's ledger database: the path of its SQLite file,
// or its postgres:// URL on a PostgreSQL test run.
func (b *Bank) LedgerPath() string { return bank.LedgerTarget(b.cfg.Database, b.cfg.DataDir) }

// Inspect opens a second handle on the bank's ledger, running or not, and
// passes it to fn. SQLite in WAL mode lets it read while the bank writes.
func (b *Bank) Inspect(tb testing.TB, fn func(*bank.Ledger)) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), WaitTimeout)
	defer cancel()
	l, err := bank.OpenLedger(ctx, b.LedgerPath())
	if err != nil {
		tb.Fatalf("open ledger of %s: %v", b.Name, err)
	}
	defer func() {
		if err := l.Close(); err != nil {
			tb.Errorf("close ledger of %s: %v", b.Name, err)
		}
	}()
	fn(l)
}

// LockLedger takes the write lock of the bank's ledger and holds it until
// the returned function is called: the bank keeps answering health checks,
// but every prepare, commit and balance read queues behind the lock. Release
// within SQLite's busy timeout (10s).
func (b *Bank) LockLedger(tb testing.TB) (release func()) {
	tb.Helper()
	return lockDB(tb, b.LedgerPath(), "ledger")
}

// TryLockLedger is LockLedger for goroutines other than the test's: it
// returns an error instead of failing the test, and the caller must release.
func (b *Bank) TryLockLedger() (release func(), err error) {
	return tryLockDB(b.LedgerPath(), "ledger")
}

func lockDB(tb testing.TB, path, component string) func() {
	tb.Helper()
	release, err := tryLockDB(path, component)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(release)
	return release
}

func tryLockDB(path, component string) (func(), error) {
	ctx, cancel := context.WithTimeout(context.Background(), WaitTimeout)
	defer cancel()
	db, err := store.Open(ctx, path, component)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", store.Redact(path), err)
	}
	// BEGIN IMMEDIATE takes the write lock (on PostgreSQL, the store's
	// writer lock). Not ctx: database/sql rolls a transaction back when its
	// context ends.
	tx, err := db.BeginTx(context.Background(), nil)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("lock %s: %w", store.Redact(path), err), db.Close())
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			tx.Rollback()
			// Nothing was written under the lock: a failed close loses
			// nothing, and a release has no one to report it to.
			_ = db.Close()
		})
	}, nil
}

// Client is a logged-in user of the network.
type Client struct {
	ID string
	// Account is the user's own account; nil for admin.
	Account  *gatewayv1.AccountRef
	Auth     gatewayv1connect.AuthServiceClient
	Payments gatewayv1connect.PaymentServiceClient
	Admin    gatewayv1connect.AdminServiceClient

	hc   *http.Client // sends the session's token
	opts []connect.ClientOption
}

// At returns the same session's clients of the gateway at url: another
// replica (see Network.AddReplica).
func (c *Client) At(url string) *Client {
	out := *c
	out.Auth = gatewayv1connect.NewAuthServiceClient(c.hc, url, c.opts...)
	out.Payments = gatewayv1connect.NewPaymentServiceClient(c.hc, url, c.opts...)
	out.Admin = gatewayv1connect.NewAdminServiceClient(c.hc, url, c.opts...)
	return &out
}

// Ref returns the account reference of a customer.
func Ref(clientID string) *gatewayv1.AccountRef {
	return &gatewayv1.AccountRef{Bank: Customers[clientID], AccountId: clientID}
}

type bearer struct {
	base  http.RoundTripper
	token string
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.base.RoundTrip(r)
}

// UsersFile is the path of the gateway's users file, which it imports
// again when it changes.
func (n *Network) UsersFile() string { return n.Gateway.cfg.UsersFile }

// Login logs clientID in (retrying while the gateway is not up) and returns
// its clients. Sessions are durable, so a Client keeps working across
// gateway restarts.
func (n *Network) Login(tb testing.TB, clientID string) *Client {
	tb.Helper()
	return n.LoginWith(tb, clientID)
}

// LoginWith is Login with client options for every client it builds, e.g.
// connect.WithGRPC() or connect.WithGRPCWeb() to speak another protocol.
func (n *Network) LoginWith(tb testing.TB, clientID string, opts ...connect.ClientOption) *Client {
	tb.Helper()
	return n.LoginPassword(tb, clientID, Password, opts...)
}

// LoginPassword is LoginWith with a password other than [Password].
func (n *Network) LoginPassword(tb testing.TB, clientID, password string, opts ...connect.ClientOption) *Client {
	tb.Helper()
	authc := gatewayv1connect.NewAuthServiceClient(n.http, n.Gateway.URL, opts...)
	var token string
	WaitFor(tb, "login of "+clientID, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		res, err := authc.Login(ctx, &gatewayv1.LoginRequest{ClientId: clientID, Password: password})
		if err != nil {
			return err
		}
		token = res.GetAccessToken()
		return nil
	})
	hc := &http.Client{Transport: bearer{base: n.http.Transport, token: token}}
	c := &Client{
		ID:       clientID,
		Auth:     gatewayv1connect.NewAuthServiceClient(hc, n.Gateway.URL, opts...),
		Payments: gatewayv1connect.NewPaymentServiceClient(hc, n.Gateway.URL, opts...),
		Admin:    gatewayv1connect.NewAdminServiceClient(hc, n.Gateway.URL, opts...),
		hc:       hc,
		opts:     opts,
	}
	if _, ok := Customers[clientID]; ok {
		c.Account = Ref(clientID)
	}
	return c
}

// CertHTTPClient returns an HTTP/2 client that trusts the network's CA and
// presents the client certificate of name ("gateway" or a bank name), as
// that process would.
func (n *Network) CertHTTPClient(tb testing.TB, name string) *http.Client {
	tb.Helper()
	layout := pki.NewLayout(filepath.Join(n.Dir, "certs"))
	cert, key := layout.Client(name)
	conf, err := pki.ClientConfig(layout.CA, cert, key)
	if err != nil {
		tb.Fatal(err)
	}
	return serve.NewHTTP2Client(conf)
}

// WaitReady waits until the gateway answers and lists every bank, at its
// proxy's URL, as serving.
func (n *Network) WaitReady(tb testing.TB) {
	tb.Helper()
	admin := n.Login(tb, AdminID)
	WaitFor(tb, "every bank serving", func() error {
		if exited, err := n.Gateway.proc.exited(); exited {
			return fmt.Errorf("gateway exited: %w", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		res, err := admin.Admin.ListBanks(ctx, &gatewayv1.ListBanksRequest{})
		if err != nil {
			return err
		}
		serving := map[string]bool{}
		for _, b := range res.GetBanks() {
			want := n.Banks[b.GetName()]
			if want != nil && b.GetUrl() == want.cfg.PublicURL && b.GetStatus() == gatewayv1.BankStatus_BANK_STATUS_SERVING {
				serving[b.GetName()] = true
			}
		}
		for _, name := range BankNames {
			if !serving[name] {
				return fmt.Errorf("%s not serving; banks: %v", name, res.GetBanks())
			}
		}
		return nil
	})
}

// WaitFor polls cond until it returns nil, failing the test with cond's last
// error after WaitTimeout.
func WaitFor(tb testing.TB, what string, cond func() error) {
	tb.Helper()
	WaitForWithin(tb, WaitTimeout, what, cond)
}

// WaitForWithin is WaitFor with its own bound.
func WaitForWithin(tb testing.TB, timeout time.Duration, what string, cond func() error) {
	tb.Helper()
	var err error
	// Not t.Context(): waits also run in cleanups, after it ended.
	if !Retry(context.Background(), timeout, func() bool { err = cond(); return err == nil }) {
		tb.Fatalf("waited %s for %s: %v", timeout, what, err)
	}
}

// Holds checks cond every PollInterval for d and fails the test at once
// when it returns an error: the way to say that something must not happen
// for a while (a re-drive, a release, a status flip), where nothing the
// test can observe announces the rounds in which it could have happened.
func Holds(tb testing.TB, d time.Duration, what string, cond func() error) {
	tb.Helper()
	var err error
	Retry(context.Background(), d, func() bool { err = cond(); return err != nil })
	if err != nil {
		tb.Fatalf("%s: %v", what, err)
	}
}

// Retry calls try until it returns true, every PollInterval, for at most
// timeout or until ctx ends, and reports whether try returned true. It is
// the one polling loop of the package: a client retrying a retryable
// answer, or a test waiting for a state of other processes that no event
// announces, goes through it.
func Retry(ctx context.Context, timeout time.Duration, try func() bool) bool {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(PollInterval)
	defer tick.Stop()
	for {
		if try() {
			return true
		}
		select {
		case <-ctx.Done():
			return try()
		case <-tick.C:
		}
	}
}
