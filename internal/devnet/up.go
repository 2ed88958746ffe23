package devnet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/grpchealth"

	"github.com/remitpay/remit/client"
	"github.com/remitpay/remit/internal/config"
	"github.com/remitpay/remit/internal/logging"
	"github.com/remitpay/remit/internal/pki"
	"github.com/remitpay/remit/internal/portlock"
	"github.com/remitpay/remit/internal/serve"
)

// ReadyLine ends the banner [Up] prints once every process answers; scripts
// and the e2e test wait for it.
const ReadyLine = "Ready. Press Ctrl-C to stop."

// StopGrace is how long children get to shut down after SIGTERM before
// they are killed: a little more than their own graceful shutdown timeout.
const StopGrace = serve.DefaultShutdownTimeout + 5*time.Second

// UpConfig configures [Up].
type UpConfig struct {
	// Dir is the network's directory. When it is absent or empty, Up first
	// runs [Init] on it with BasePort.
	Dir string
	// BasePort is the gateway's port if Up initialises Dir.
	BasePort int
	// Customers is how many extra customers Up opens if it initialises
	// Dir ([InitConfig].Customers).
	Customers int
	// Postgres and Replicas are [InitConfig]'s, if Up initialises Dir.
	Postgres string
	Replicas int
	// BasePortSet says BasePort was asked for explicitly: Up then notes on
	// Stderr when Dir was initialised with another one.
	BasePortSet bool
	// Timeout bounds the wait for each process to become ready.
	Timeout time.Duration
	// LogFormat is the log format ("text", "json") of Up and of every
	// child; "" lets each process choose (text on a terminal, else JSON).
	LogFormat string
	// Executable is the remit binary the children run; "" means the
	// running executable.
	Executable string
	// OnReady, if set, is called once every process is ready, with each
	// child's process id by name ("gateway", "bank-a", ...), so that a
	// caller such as `remit bench` can watch their resources.
	OnReady func(pids map[string]int)
	// Stdout receives the init report and the banner; Stderr every log
	// line, each prefixed with the name of the process that wrote it.
	Stdout, Stderr io.Writer
}

// member is one process of the network, as Up found it in its directory.
type member struct {
	name   string
	config string // its config file
	listen string // its listen address
	// metrics is its admin listener (Prometheus and pprof, plain HTTP), or
	// empty if its config has none.
	metrics string
	url     string // how to reach it
	// healthy returns nil once the process answers its health check as
	// serving.
	healthy func(context.Context) error
	// gateway is an SDK client of a gateway replica; nil for a bank.
	gateway *client.Client
	proc    *proc
}

// gateways and banks split members: the gateway replicas (gateway,
// gateway-2, ...) come first.
func gateways(members []*member) []*member {
	n := 0
	for n < len(members) && (members[n].name == pki.GatewayName || strings.HasPrefix(members[n].name, pki.GatewayName+"-")) {
		n++
	}
	return members[:n]
}

func banks(members []*member) []*member { return members[len(gateways(members)):] }

// Up runs the network in cfg.Dir until ctx ends or a signal (SIGINT,
// SIGTERM) asks it to stop, then stops the children gracefully and returns
// nil. If a child exits on its own, Up stops the others and returns an error
// naming it. Up returns only once every child has exited.
func Up(ctx context.Context, cfg UpConfig) error {
	// Children get SIGKILLed when the thread that started them exits
	// (Pdeathsig), so start them all from this goroutine, locked to its
	// thread until they are gone.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	ctx, stopSignals := serve.HandleSignals(ctx)
	defer stopSignals()

	abs, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return err
	}
	l := Layout{Dir: abs}
	state, err := l.state()
	if err != nil {
		return err
	}
	switch state {
	case dirEmpty:
		if _, err := InitWith(ctx, cfg.Stdout, l.Dir, InitConfig{BasePort: cfg.BasePort, Customers: cfg.Customers,
			Postgres: cfg.Postgres, Replicas: cfg.Replicas}); err != nil {
			return err
		}
		fmt.Fprintln(cfg.Stdout)
	case dirInitialised:
		// Run the network as it was initialised.
	case dirForeign:
		return fmt.Errorf("%s is not empty and holds no Remit network (no gateway.yaml): choose another --dir, or run `remit init --dir` on an empty one", l.Dir)
	}

	members, gw, caFile, err := loadMembers(l)
	if err != nil {
		return err
	}
	defer func() {
		for _, m := range gateways(members) {
			_ = m.gateway.Close() // only idle connections to close
		}
	}()
	if cfg.BasePortSet && portOf(members[0].listen) != cfg.BasePort {
		fmt.Fprintf(cfg.Stderr, "remit up: note: --base-port %d ignored: %s was initialised with the gateway on %s\n", cfg.BasePort, l.Dir, members[0].listen)
	}
	for _, m := range members {
		for _, addr := range []string{m.listen, m.metrics} {
			if addr == "" {
				continue
			}
			if err := CheckPortFree(ctx, addr); err != nil {
				return fmt.Errorf("%s cannot listen on %s (%w): is another `remit up` running? Stop it, or init another directory with --base-port", m.name, addr, err)
			}
		}
	}

	self := cfg.Executable
	if self == "" {
		if self, err = os.Executable(); err != nil {
			return fmt.Errorf("find this executable to start the children: %w", err)
		}
	}
	names := []string{"up"}
	for _, m := range members {
		names = append(names, m.name)
	}
	logs := newLogMux(cfg.Stderr, names)
	var globalArgs []string
	if cfg.LogFormat != "" {
		globalArgs = []string{"--log-format", cfg.LogFormat}
	}
	log := logging.New(logs.writer("up"), cfg.LogFormat, slog.LevelInfo)
	sup := newSupervisor(self, globalArgs, logs)

	err = startMembers(ctx, log, sup, members, cfg.Timeout)
	if err == nil {
		err = waitRegistered(ctx, log, l, members, gw, cfg.Timeout)
	}
	if err != nil {
		sup.stop(StopGrace)
		if ctx.Err() != nil {
			return nil // interrupted while starting: a normal stop
		}
		return err
	}
	printBanner(cfg.Stdout, l, members, caFile)
	if cfg.OnReady != nil {
		pids := make(map[string]int, len(members))
		for _, m := range members {
			pids[m.name] = m.proc.cmd.Process.Pid
		}
		cfg.OnReady(pids)
	}

	var died *proc
	select {
	case <-ctx.Done():
	case died = <-sup.exited:
	}
	// Ctrl-C in a terminal signals the whole process group: a child may
	// finish stopping before up notices its own signal. That is no crash.
	if ctx.Err() != nil {
		stopSignals() // a second Ctrl-C kills up, and with it the children
		log.Info("stopping the network (Ctrl-C again to kill it)")
		sup.stop(StopGrace)
		log.Info("stopped")
		return nil
	}
	log.Error("a process exited unexpectedly; stopping the others", "process", died.name, "err", died.describeExit())
	sup.stop(StopGrace)
	return fmt.Errorf("%s exited unexpectedly (%s); its log lines above say why", died.name, died.describeExit())
}

// loadMembers loads the gateway config and every banks/*.yaml, so that a
// broken file fails before anything starts. The gateway comes first. It
// also returns an SDK client of the gateway, trusting the gateway's CA, and
// that CA's file.
func loadMembers(l Layout) ([]*member, *client.Client, string, error) {
	g, err := config.LoadGateway(l.GatewayConfig())
	if err != nil {
		return nil, nil, "", err
	}
	clientTLS, err := pki.ClientConfig(g.TLS.CA, "", "")
	if err != nil {
		return nil, nil, "", err
	}
	// The banks require a client certificate; probe them as the gateway.
	probeTLS, err := pki.ClientConfig(g.TLS.CA, g.TLS.ClientCert, g.TLS.ClientKey)
	if err != nil {
		return nil, nil, "", err
	}
	files, err := filepath.Glob(filepath.Join(l.BanksDir(), "*.yaml"))
	if err != nil {
		return nil, nil, "", err
	}
	slices.Sort(files)
	if len(files) == 0 {
		return nil, nil, "", fmt.Errorf("%s has no bank configs (*.yaml): a network needs at least one bank", l.BanksDir())
	}
	banks := make([]*config.Bank, len(files))
	for i, f := range files {
		if banks[i], err = config.LoadBank(f); err != nil {
			return nil, nil, "", err
		}
	}

	gatewayURL := "https://" + dialAddr(g.Listen)
	gw, err := client.New(client.Config{
		GatewayURL: gatewayURL,
		TLSConfig:  clientTLS,
		// Up polls; each check is one request.
		Retry: &client.RetryPolicy{MaxAttempts: 1},
	})
	if err != nil {
		return nil, nil, "", err
	}
	members := []*member{{
		name: pki.GatewayName, config: l.GatewayConfig(), listen: g.Listen, url: gatewayURL, metrics: g.MetricsListen,
		healthy: gw.Health, gateway: gw,
	}}
	// Replicas of the gateway (gateway-2.yaml, ...), in order.
	for r := 2; r <= MaxReplicas; r++ {
		path := l.ReplicaConfig(r)
		if _, err := os.Stat(path); err != nil {
			break
		}
		rg, err := config.LoadGateway(path)
		if err != nil {
			return nil, nil, "", err
		}
		url := "https://" + dialAddr(rg.Listen)
		rc, err := client.New(client.Config{GatewayURL: url, TLSConfig: clientTLS, Retry: &client.RetryPolicy{MaxAttempts: 1}})
		if err != nil {
			return nil, nil, "", err
		}
		members = append(members, &member{
			name: ReplicaName(r), config: path, listen: rg.Listen, url: url, metrics: rg.MetricsListen,
			healthy: rc.Health, gateway: rc,
		})
	}
	probe := serve.NewHTTP2Client(probeTLS)
	for i, b := range banks {
		members = append(members, &member{
			name: b.Name, config: files[i], listen: b.Listen, url: b.URL, metrics: b.MetricsListen,
			healthy: healthCheck(grpchealth.NewClient(probe, "https://"+dialAddr(b.Listen))),
		})
	}
	return members, gw, g.TLS.CA, nil
}

// CheckPortFree reports whether addr can be listened on now, by listening
// and closing; the error is the listen's cause (e.g. address already in use).
func CheckPortFree(ctx context.Context, addr string) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		var opErr *net.OpError
		if errors.As(err, &opErr) && opErr.Err != nil {
			return opErr.Err
		}
		return err
	}
	return ln.Close()
}

// startMembers starts the gateway, waits until it is healthy, then its
// other replicas, then the banks (so their first registration finds the
// gateway up), waiting for each group.
func startMembers(ctx context.Context, log *slog.Logger, sup *supervisor, members []*member, timeout time.Duration) error {
	start := func(m *member) error {
		role := "bank"
		if slices.Contains(gateways(members), m) {
			role = "gateway"
		}
		p, err := sup.start(m.name, role, "--config", m.config)
		if err != nil {
			return err
		}
		m.proc = p
		log.Info("started", "process", m.name, "pid", p.cmd.Process.Pid, "config", m.config)
		return nil
	}
	// The first replica alone first: it migrates a new database, which
	// the others then find done.
	gws := gateways(members)
	for _, group := range [][]*member{gws[:1], gws[1:], banks(members)} {
		for _, m := range group {
			if err := start(m); err != nil {
				return err
			}
		}
		for _, m := range group {
			if err := waitHealthy(ctx, members, m, timeout); err != nil {
				return err
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

// portOf returns the port of a listen address, or 0.
func portOf(listen string) int {
	_, port, err := net.SplitHostPort(listen)
	if err != nil {
		return 0
	}
	p, _ := strconv.Atoi(port)
	return p
}

// ReserveBasePort reserves a random gateway port whose next ports are free
// too, for the banks and every process's metrics listener: a network of
// its own for a bench or a test. No other reservation, in this process or
// another, gets those ports until the block is released.
func ReserveBasePort(ctx context.Context) (*portlock.Block, error) {
	return portlock.Reserve(ctx, PortsUsed)
}
