package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"golang.org/x/time/rate"

	"github.com/remitpay/remit/gen/remit/gateway/v1/gatewayv1connect"
	"github.com/remitpay/remit/internal/audit"
	"github.com/remitpay/remit/internal/auth"
	"github.com/remitpay/remit/internal/authz"
	"github.com/remitpay/remit/internal/metrics"
	"github.com/remitpay/remit/internal/serve"
	"github.com/remitpay/remit/internal/store"
	"github.com/remitpay/remit/web"
)

// Config is everything a gateway process needs. Paths are absolute or
// relative to the working directory; cmd/remit resolves them against the
// config file.
type Config struct {
	// Addr is the listen address, e.g. 127.0.0.1:8443 (ignored if Listener is set).
	Addr string
	// Listener, when set, is used instead of listening on Addr (tests).
	Listener net.Listener
	// MetricsAddr is the admin listener for /metrics and /debug/pprof/,
	// plain HTTP, e.g. 127.0.0.1:9443; empty for none. Keep it on loopback
	// or firewalled: it has no authentication.
	MetricsAddr string
	// MetricsListener, when set, is used instead of listening on
	// MetricsAddr (tests); Run closes it.
	MetricsListener net.Listener
	// ServerTLS is the server side: TLS 1.3, the gateway's server certificate,
	// and client certificates verified if given (banks present one).
	ServerTLS *tls.Config
	// BankTLS is the client side for calling banks: it presents the gateway's
	// client certificate and trusts the Remit CA.
	BankTLS *tls.Config
	// DataDir holds gateway.db (the coordinator log) and sessions.db,
	// unless Database names a PostgreSQL database for both, and the audit
	// log by default.
	DataDir string
	// ReplicaURLs are the https URLs of the gateway's other replicas, which
	// the wallet it serves fails over to (web.HandlerFor).
	ReplicaURLs []string
	// Database is a postgres:// URL (a PostgreSQL database, and schema with
	// search_path=NAME) that holds the coordinator log, the sessions and
	// the users instead of the SQLite files in DataDir. Empty for those
	// files.
	Database string
	// UsersFile is the JSON credentials file (password hashes only): the
	// preload of the users, which live in DataDir/sessions.db. It is
	// imported at start (a file that fails to parse stops the start) and
	// again whenever its content changes or Reload delivers, without a
	// restart (auth.Authenticator.Import says what an import changes).
	// Empty: no preload.
	UsersFile string
	// UsersPoll is how often the users file's content is read to see
	// whether it changed (default auth.DefaultUsersPoll, negative: only
	// on Reload).
	UsersPoll time.Duration
	// Reload, when set, imports the users file at once on every value
	// received: cmd/remit delivers SIGHUP here.
	Reload <-chan os.Signal
	// RegisterRate and RegisterBurst limit AuthService.Register per source
	// address (authz.SourceOf), loopback included: RegisterRate sign-ups
	// per second sustained, RegisterBurst at once. Zero means
	// DefaultRegisterRate and DefaultRegisterBurst; rate.Inf disables the
	// limit. Failed enrollment codes also count in the login throttle of
	// the source.
	RegisterRate  rate.Limit
	RegisterBurst int
	// AuditLog is the append-only JSON-lines audit file; default DataDir/audit.jsonl.
	AuditLog string
	// Logger receives one line per RPC and the coordinator's events. It is
	// required: Run returns an error without one.
	Logger *slog.Logger
	// Timing overrides DefaultTiming when non-zero.
	Timing Timing
	// HealthInterval is how often each bank's health is checked (default 2s).
	HealthInterval time.Duration
	// TokenTTL is the lifetime of access tokens (default 1h).
	TokenTTL time.Duration
	// RateLimit is the per-principal request rate (default authz's).
	RateLimit float64
	// MaxWatchStreams caps the WatchPayments streams one client id holds
	// open at once (default DefaultMaxWatchStreams).
	MaxWatchStreams int
	// StreamRecheck is how often an open WatchPayments stream's token is
	// verified again (default authz.DefaultStreamRecheck): a revoked or
	// expired session ends its streams too.
	StreamRecheck time.Duration
	// CORSOrigins are the other web origins whose pages may call the API
	// (withCORS); none by default. The wallet at "/" is same-origin.
	CORSOrigins []string
}

// target is where the store kept in the SQLite file name of DataDir
// lives: Database if set, else that file.
func (c *Config) target(name string) string {
	if c.Database != "" {
		return c.Database
	}
	return filepath.Join(c.DataDir, name)
}

// Run starts the gateway and serves until ctx ends, then shuts down
// gracefully. Recovery of undecided payments happens before the listener
// accepts its first request.
func Run(ctx context.Context, cfg Config) error {
	if cfg.Logger == nil {
		return errors.New("gateway: Config.Logger is required")
	}
	if cfg.ServerTLS == nil || cfg.BankTLS == nil {
		return errors.New("gateway: ServerTLS and BankTLS are required: there is no plaintext listener")
	}
	if cfg.Database != "" && !store.IsPostgres(cfg.Database) {
		// Its log and its sessions share Database: one SQLite file cannot
		// hold both (their migrations would collide).
		return fmt.Errorf("gateway: Database %q: want a postgres:// URL, or none for the SQLite files in DataDir", store.Redact(cfg.Database))
	}
	if cfg.Timing == (Timing{}) {
		cfg.Timing = DefaultTiming
	}
	if cfg.HealthInterval == 0 {
		cfg.HealthInterval = 2 * time.Second
	}
	if cfg.AuditLog == "" {
		cfg.AuditLog = filepath.Join(cfg.DataDir, "audit.jsonl")
	}
	log := cfg.Logger
	// Serve owns the listeners once it starts; close them ourselves if we
	// fail before that, so the caller's ports are not left bound.
	serving := false
	defer func() {
		if serving {
			return
		}
		// The failure that stopped Run is the error reported.
		for _, ln := range []net.Listener{cfg.Listener, cfg.MetricsListener} {
			if ln != nil {
				if err := ln.Close(); err != nil {
					log.Warn("close listener", "err", err)
				}
			}
		}
	}()
	if cfg.MetricsListener == nil && cfg.MetricsAddr != "" {
		ln, err := metrics.Listen(ctx, cfg.MetricsAddr)
		if err != nil {
			return fmt.Errorf("gateway: %w", err)
		}
		cfg.MetricsListener = ln
	}
	reg := metrics.NewRegistry()

	st, err := OpenStore(ctx, cfg.target("gateway.db"))
	if err != nil {
		return err
	}
	defer func() {
		if err := st.Close(); err != nil {
			log.Error("close store", "err", err)
		}
	}()
	var users *auth.Users
	if cfg.UsersFile != "" {
		if users, err = auth.LoadUsers(cfg.UsersFile); err != nil {
			return err
		}
	}
	sessions, err := auth.OpenSessions(ctx, cfg.target("sessions.db"), auth.SessionConfig{TTL: cfg.TokenTTL})
	if err != nil {
		return err
	}
	defer func() {
		if err := sessions.Close(); err != nil {
			log.Error("close sessions", "err", err)
		}
	}()
	auditLog, err := audit.Open(cfg.AuditLog, log)
	if err != nil {
		return err
	}
	defer func() {
		if err := auditLog.Close(); err != nil {
			log.Error("close audit log", "err", err)
		}
	}()
	// Replicas on one PostgreSQL database tell each other what they hold
	// in memory and another changed: revoked sessions, users, new events.
	bus, err := store.OpenBus(ctx, cfg.Database, log)
	if err != nil {
		return err
	}
	defer func() {
		if err := bus.Close(); err != nil {
			log.Error("close change bus", "err", err)
		}
	}()
	sessions.UseBus(bus)
	st.UseBus(bus, log) //nolint:contextcheck // its publisher outlives any request
	authn, err := auth.NewAuthenticator(ctx, users, sessions, auth.Config{Audit: auditLog, Log: log})
	if err != nil {
		return err
	}
	busCtx, stopBus := context.WithCancel(ctx)
	var busDone sync.WaitGroup
	busDone.Go(func() { bus.Run(busCtx) })
	defer func() {
		stopBus()
		busDone.Wait()
	}()
	if bus != nil {
		select {
		case <-bus.Ready():
		case <-time.After(10 * time.Second):
			log.Warn("change notices: not listening yet; serving anyway (caches resync once it listens)")
		case <-ctx.Done():
		}
	}

	registry, err := NewRegistry(ctx, st, cfg.BankTLS, log, cfg.HealthInterval)
	if err != nil {
		return err
	}
	defer registry.Close()
	coord := NewCoordinator(st, registry, log, cfg.Timing)
	coord.audit = auditLog
	coord.metrics = newCoordMetrics(reg)
	reg.MustRegister(newStateCollector(st, registry), metrics.NewCommitCollector(map[string]func() store.GroupStats{"payments": st.CommitStats}))
	if err := coord.Recover(ctx); err != nil {
		return err
	}

	payments := &paymentAPI{store: st, coord: coord, stopping: ctx.Done(), maxStreams: cfg.MaxWatchStreams}
	admin := &adminAPI{coord: coord, registry: registry, authn: authn}
	coordinator := &coordinatorAPI{coord: coord, registry: registry, instance: uuid.NewString()}
	registerRate, registerBurst := cfg.RegisterRate, cfg.RegisterBurst
	if registerRate == 0 {
		registerRate = DefaultRegisterRate
	}
	if registerBurst <= 0 {
		registerBurst = DefaultRegisterBurst
	}
	ah := &authAPI{authn: authn, banks: registry.AccountBank, register: authz.NewKeyedLimiter(registerRate, registerBurst),
		bankCall: cfg.Timing.BalanceCall, log: log}
	if ah.bankCall <= 0 {
		ah.bankCall = DefaultTiming.BalanceCall
	}
	interceptor := authz.NewInterceptor(authz.Config{
		Verifier:      authn,
		Audit:         auditLog,
		Rate:          rate.Limit(cfg.RateLimit),
		StreamRecheck: cfg.StreamRecheck,
	})
	opts := serve.HandlerOptions(log, metrics.NewRPCInterceptor(reg), interceptor)
	mux := http.NewServeMux()
	mux.Handle(gatewayv1connect.NewAuthServiceHandler(ah, opts...))
	mux.Handle(gatewayv1connect.NewPaymentServiceHandler(payments, opts...))
	mux.Handle(gatewayv1connect.NewAdminServiceHandler(admin, opts...))
	mux.Handle(gatewayv1connect.NewCoordinatorServiceHandler(coordinator, opts...))
	serve.Mount(mux, []string{
		gatewayv1connect.AuthServiceName, gatewayv1connect.PaymentServiceName,
		gatewayv1connect.AdminServiceName, gatewayv1connect.CoordinatorServiceName,
	}, connect.WithInterceptors())
	// The browser wallet at "/": the API's patterns above are longer, so
	// they win; any other path is the wallet's 404.
	mux.Handle("/", web.HandlerFor(cfg.ReplicaURLs))

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// A payment's run lasts at most its decision deadline plus one round of
	// phase-two calls.
	stopWait := coord.timing.Decision + coord.timing.CommitCall + time.Second
	var redriver sync.WaitGroup
	redriver.Go(func() { coord.Run(ctx) })
	// Before the store, the sessions and the audit log close (deferred
	// above, so run after this): stop the re-driver, then let payments
	// still in phase one or two finish their writes.
	defer func() {
		cancel()
		redriver.Wait()
		if !coord.Stop(stopWait) {
			log.Warn("payments still running at shutdown; recovery finishes them on the next start", "waited", stopWait)
		}
	}()
	go registry.Run(ctx)
	if cfg.UsersFile != "" {
		var usersWatch sync.WaitGroup
		usersWatch.Go(func() { authn.WatchUsersFile(ctx, cfg.UsersFile, cfg.UsersPoll, cfg.Reload) })
		// Before the sessions close (deferred above).
		defer func() {
			cancel()
			usersWatch.Wait()
		}()
	}
	var adminListener sync.WaitGroup
	defer func() {
		cancel()
		adminListener.Wait()
	}()
	if cfg.MetricsListener != nil {
		adminListener.Go(func() {
			if err := metrics.Serve(ctx, cfg.MetricsListener, reg, log); err != nil {
				log.Error("metrics listener stopped; the gateway keeps serving payments", "err", err)
			}
		})
	}

	scfg := serve.Config{Addr: cfg.Addr, TLS: cfg.ServerTLS, Handler: authz.TLSStateMiddleware(withCORS(mux, cfg.CORSOrigins)), Logger: log}
	serving = true
	if cfg.Listener != nil {
		err = serve.Serve(ctx, cfg.Listener, scfg)
	} else {
		err = serve.Run(ctx, scfg)
	}
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	return nil
}
