package bank

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/remitpay/remit/gen/remit/gateway/v1/gatewayv1connect"
	"github.com/remitpay/remit/internal/metrics"
	"github.com/remitpay/remit/internal/names"
	"github.com/remitpay/remit/internal/pki"
	"github.com/remitpay/remit/internal/serve"
	"github.com/remitpay/remit/internal/store"
)

// Config describes one bank process for [Run].
type Config struct {
	// Name is the bank's name, e.g. "bank-a"; it must match the name in its
	// certificates.
	Name string
	// Addr is the listen address, e.g. 127.0.0.1:8444 (ignored if Listener
	// is set).
	Addr string
	// Listener is an optional plain TCP listener, for tests; Run adds TLS
	// and closes it.
	Listener net.Listener
	// MetricsAddr is the admin listener for /metrics and /debug/pprof/,
	// plain HTTP, e.g. 127.0.0.1:9444; empty for none. Keep it on loopback
	// or firewalled: it has no authentication.
	MetricsAddr string
	// MetricsListener, when set, is used instead of listening on
	// MetricsAddr (tests); Run closes it.
	MetricsListener net.Listener
	// PublicURL is how the gateway reaches this bank: https://host:port.
	PublicURL string
	// GatewayURL is the gateway's https base URL.
	GatewayURL string
	// MoreGatewayURLs are the https base URLs of the gateway's other
	// replicas, if it runs several on one database: the bank registers
	// with each and asks any of them for outcomes.
	MoreGatewayURLs []string
	// ServerTLS is the server side; it must require and verify client
	// certificates (mutual TLS), because only the gateway may call a bank.
	ServerTLS *tls.Config
	// GatewayTLS is the client side for calling the gateway; it presents
	// the bank's client certificate.
	GatewayTLS *tls.Config
	// DataDir holds the ledger, DataDir/ledger.db, unless Database names
	// another.
	DataDir string
	// Database is where the ledger lives instead of DataDir/ledger.db: a
	// postgres:// URL (a PostgreSQL database, and schema with
	// search_path=NAME), or an SQLite file. Empty for the default.
	Database string
	// Accounts are created at start if absent; existing ones are kept as
	// they are, so restarts keep balances and closed accounts stay closed.
	Accounts []AccountSeed
	// Logger receives the bank's events and one line per RPC. It is
	// required: Run returns an error without one.
	Logger *slog.Logger
	// ResolveInterval defaults to DefaultResolveInterval.
	ResolveInterval time.Duration
	// RegisterInterval defaults to DefaultRegisterInterval.
	RegisterInterval time.Duration
	// Retention defaults to DefaultRetention.
	Retention time.Duration
}

func (c Config) validate() error {
	var errs []error
	if err := names.Bank(c.Name); err != nil {
		errs = append(errs, fmt.Errorf("bank name %w", err))
	}
	if c.Listener == nil && c.Addr == "" {
		errs = append(errs, errors.New("no listen address"))
	}
	if !strings.HasPrefix(c.PublicURL, "https://") {
		errs = append(errs, fmt.Errorf("public URL %q must start with https://", c.PublicURL))
	}
	for _, u := range append([]string{c.GatewayURL}, c.MoreGatewayURLs...) {
		if !strings.HasPrefix(u, "https://") {
			errs = append(errs, fmt.Errorf("gateway URL %q must start with https://", u))
		}
	}
	if c.ServerTLS == nil || c.ServerTLS.ClientAuth != tls.RequireAndVerifyClientCert {
		errs = append(errs, errors.New("server TLS must require and verify client certificates (mutual TLS)"))
	}
	if c.GatewayTLS == nil {
		errs = append(errs, errors.New("no TLS configuration for calling the gateway"))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("no data directory"))
	}
	if c.Logger == nil {
		errs = append(errs, errors.New("no logger"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("bank: invalid config: %w", err)
	}
	return nil
}

// LedgerTarget is where a bank's ledger lives: database if set (a
// postgres:// URL or a file), else the SQLite file ledger.db in dataDir.
func LedgerTarget(database, dataDir string) string {
	if database != "" {
		return database
	}
	return filepath.Join(dataDir, "ledger.db")
}

// Run is a bank process: it opens the ledger, creates the configured
// accounts, serves BankService (with health and reflection) over mutual TLS,
// keeps the bank registered with the gateway and resolves expired prepared
// transactions, until ctx ends. It returns after a graceful shutdown, or
// with the error that stopped it.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.validate(); err != nil {
		for _, ln := range []net.Listener{cfg.Listener, cfg.MetricsListener} {
			if ln != nil {
				err = errors.Join(err, ln.Close())
			}
		}
		return err
	}
	log := cfg.Logger.With("bank", cfg.Name)

	ln, metricsLn := cfg.Listener, cfg.MetricsListener
	// closeLn closes the listeners handed in by the caller (or opened here)
	// when Run fails before serving on them; the failure that stopped Run is
	// the error reported.
	closeLn := func() {
		for _, l := range []net.Listener{ln, metricsLn} {
			if l != nil {
				if err := l.Close(); err != nil {
					log.Warn("close listener", "err", err)
				}
			}
		}
	}
	if metricsLn == nil && cfg.MetricsAddr != "" {
		var err error
		if metricsLn, err = metrics.Listen(ctx, cfg.MetricsAddr); err != nil {
			closeLn()
			return fmt.Errorf("bank: %w", err)
		}
	}
	ledger, err := OpenLedger(ctx, LedgerTarget(cfg.Database, cfg.DataDir))
	if err != nil {
		closeLn()
		return err
	}
	defer func() {
		if err := ledger.Close(); err != nil {
			log.Error("close ledger", "err", err)
		}
	}()
	for _, a := range cfg.Accounts {
		created, err := ledger.EnsureAccount(ctx, a)
		if err != nil {
			closeLn()
			return err
		}
		if created {
			log.Info("account opened", "account_id", a.ID, "currency", a.Currency, "amount", a.Opening)
		} else if acct, err := ledger.Balance(ctx, a.ID); err == nil && acct.Closed {
			// A closed account stays closed: the file only opens missing ones.
			log.Warn("account in the configuration is closed; it stays closed", "account_id", a.ID)
		}
	}

	if ln == nil {
		var lc net.ListenConfig
		if ln, err = lc.Listen(ctx, "tcp", cfg.Addr); err != nil {
			closeLn()
			return fmt.Errorf("bank: listen on %s: %w", cfg.Addr, err)
		}
	}
	reg := metrics.NewRegistry()
	reg.MustRegister(newLedgerCollector(ledger), metrics.NewCommitCollector(map[string]func() store.GroupStats{"ledger": ledger.CommitStats}))
	rpc := metrics.NewRPCInterceptor(reg)

	// Pinned to the gateway's identity: a host name match alone would accept
	// any Remit server certificate for 127.0.0.1.
	httpClient := serve.NewHTTP2Client(pki.RequirePeer(cfg.GatewayTLS, pki.GatewayIdentity()))
	defer httpClient.CloseIdleConnections()
	urls := append([]string{cfg.GatewayURL}, cfg.MoreGatewayURLs...)
	replicas := make([]Coordinator, len(urls))
	for i, u := range urls {
		replicas[i] = NewCoordinator(gatewayv1connect.NewCoordinatorServiceClient(httpClient, u))
	}

	loopCtx, stopLoops := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		(&Resolver{
			Ledger: ledger, Coordinator: NewFailover(replicas...), Interval: cfg.ResolveInterval,
			Retention: cfg.Retention, Logger: log,
		}).Run(loopCtx)
	})
	// Registered with every replica: each keeps its own list of banks to
	// call and watch.
	for i, c := range replicas {
		rlog := log
		if len(replicas) > 1 {
			rlog = log.With("gateway_url", urls[i])
		}
		wg.Go(func() {
			(&Registrar{
				Coordinator: c, Name: cfg.Name, URL: cfg.PublicURL,
				Interval: cfg.RegisterInterval, Logger: rlog,
			}).Run(loopCtx)
		})
	}

	if metricsLn != nil {
		wg.Go(func() {
			if err := metrics.Serve(loopCtx, metricsLn, reg, log); err != nil {
				log.Error("metrics listener stopped; the bank keeps serving", "err", err)
			}
		})
	}

	err = serve.Serve(ctx, ln, serve.Config{TLS: cfg.ServerTLS, Handler: newHTTPHandler(ledger, log, rpc, newBatchMetrics(reg)), Logger: log})
	stopLoops()
	wg.Wait()
	return err
}
