package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"
	"github.com/mattn/go-isatty"

	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
	"github.com/remitpay/remit/gen/remit/gateway/v1/gatewayv1connect"
	"github.com/remitpay/remit/internal/authz"
	"github.com/remitpay/remit/internal/config"
	"github.com/remitpay/remit/internal/logging"
	"github.com/remitpay/remit/internal/pki"
	"github.com/remitpay/remit/internal/serve"
)

// readyLine ends the banner `remit up` prints once every process answers;
// scripts and the e2e test wait for it.
const readyLine = "Ready. Press Ctrl-C to stop."

// stopGrace is how long children get to shut down after SIGTERM before
// they are killed: a little more than their own graceful shutdown timeout.
const stopGrace = serve.DefaultShutdownTimeout + 5*time.Second

var upCmd = &command{
	name:    "up",
	summary: "run a whole local network: the gateway and three banks, over TLS",
	usage:   "remit up [--dir DIR] [--base-port P] [--timeout D]",
	help: `
Up runs a local Remit network: the gateway and the banks described in DIR,
each as a child process ('remit gateway --config DIR/gateway.yaml', 'remit
bank --config DIR/banks/<bank>.yaml'). When DIR is absent or empty it first
runs 'remit init --dir DIR --base-port P', which prints the demo passwords.

It prefixes every line the children log with their name, waits until each
answers its health check over TLS and every bank is registered with the
gateway, then prints the endpoints and examples to try, and the line
"` + readyLine + `"

Ctrl-C or SIGTERM stops the children gracefully (SIGTERM, then SIGKILL
after ` + stopGrace.String() + `). If a child exits on its own, up reports it, stops the
others and exits with status 1. The children die with up even on kill -9
(Linux). Running up again on the same DIR resumes with the same balances
and payments; remove DIR to start from scratch.`,
	examples: `
remit up
go run ./cmd/remit up
remit up --dir /tmp/remit2 --base-port 9443
remit --log-format json up --dir .remit`,
	flags: func(fs *flag.FlagSet) runFunc {
		dir := fs.String("dir", defaultDir, "keep the network in `DIR`")
		basePort := fs.Int("base-port", defaultBasePort, "the gateway's `PORT` when up initialises DIR; the banks use the next three")
		timeout := fs.Duration("timeout", 60*time.Second, "how long to wait for each process to become ready")
		return func(ctx context.Context, e *env, args []string) error {
			if len(args) > 0 {
				return usagef("unexpected argument %q", args[0])
			}
			if err := checkBasePort(*basePort); err != nil {
				return err
			}
			portSet := false
			fs.Visit(func(f *flag.Flag) { portSet = portSet || f.Name == "base-port" })
			return runUp(ctx, e, *dir, *basePort, portSet, *timeout)
		}
	},
}

// member is one process of the network, as up found it in DIR.
type member struct {
	name   string
	config string // its config file
	listen string // its listen address
	url    string // how to reach it
	health *grpchealth.Client
	proc   *proc
}

func runUp(ctx context.Context, e *env, dir string, basePort int, portSet bool, timeout time.Duration) error {
	// Children get SIGKILLed when the thread that started them exits
	// (Pdeathsig), so start them all from this goroutine, locked to its
	// thread until they are gone.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	ctx, stopSignals := serve.HandleSignals(ctx)
	defer stopSignals()

	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	n := network{dir: abs}
	state, err := n.state()
	if err != nil {
		return err
	}
	switch state {
	case dirEmpty:
		if _, err := initNetwork(ctx, e.stdout, n.dir, basePort); err != nil {
			return err
		}
		fmt.Fprintln(e.stdout)
	case dirForeign:
		return fmt.Errorf("%s is not empty and holds no Remit network (no gateway.yaml): choose another --dir, or run `remit init --dir` on an empty one", n.dir)
	}

	members, caFile, err := loadMembers(n)
	if err != nil {
		return err
	}
	if portSet && portOf(members[0].listen) != basePort {
		fmt.Fprintf(e.stderr, "remit up: note: --base-port %d ignored: %s was initialised with the gateway on %s\n", basePort, n.dir, members[0].listen)
	}
	for _, m := range members {
		if err := checkPortFree(m.listen); err != nil {
			return fmt.Errorf("%s cannot listen on %s (%v): is another `remit up` running? Stop it, or init another directory with --base-port", m.name, m.listen, err)
		}
	}

	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find this executable to start the children: %w", err)
	}
	names := []string{"up"}
	for _, m := range members {
		names = append(names, m.name)
	}
	logs := newLogMux(e.stderr, names)
	childFormat := e.logFormat
	if childFormat == "" && isTerminal(e.stderr) {
		childFormat = logging.FormatText
	}
	var globalArgs []string
	if childFormat != "" {
		globalArgs = []string{"--log-format", childFormat}
	}
	log := logging.New(logs.writer("up"), childFormat, slog.LevelInfo)
	sup := newSupervisor(self, globalArgs, logs)

	err = startMembers(ctx, log, sup, members, timeout)
	if err == nil {
		err = waitRegistered(ctx, log, n, members, caFile, timeout)
	}
	if err != nil {
		sup.stop(stopGrace)
		if ctx.Err() != nil {
			return nil // interrupted while starting: a normal stop
		}
		return err
	}
	printBanner(e.stdout, n, members, caFile)

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
		sup.stop(stopGrace)
		log.Info("stopped")
		return nil
	}
	log.Error("a process exited unexpectedly; stopping the others", "process", died.name, "err", died.describeExit())
	sup.stop(stopGrace)
	return fmt.Errorf("%s exited unexpectedly (%s); its log lines above say why", died.name, died.describeExit())
}

// loadMembers loads DIR's gateway config and every banks/*.yaml, so that a
// broken file fails before anything starts. The gateway comes first.
func loadMembers(n network) ([]*member, string, error) {
	g, err := config.LoadGateway(n.gatewayConfig())
	if err != nil {
		return nil, "", err
	}
	gatewayAddr := dialAddr(g.Listen)
	clientTLS, err := pki.ClientConfig(g.TLS.CA, "", "")
	if err != nil {
		return nil, "", err
	}
	// The banks require a client certificate; probe them as the gateway.
	probeTLS, err := pki.ClientConfig(g.TLS.CA, g.TLS.ClientCert, g.TLS.ClientKey)
	if err != nil {
		return nil, "", err
	}
	gatewayURL := "https://" + gatewayAddr
	members := []*member{{
		name: pki.GatewayName, config: n.gatewayConfig(), listen: g.Listen, url: gatewayURL,
		health: grpchealth.NewClient(serve.NewHTTP2Client(clientTLS), gatewayURL),
	}}
	files, err := filepath.Glob(filepath.Join(n.banksDir(), "*.yaml"))
	if err != nil {
		return nil, "", err
	}
	slices.Sort(files)
	if len(files) == 0 {
		return nil, "", fmt.Errorf("%s has no bank configs (*.yaml): a network needs at least one bank", n.banksDir())
	}
	probe := serve.NewHTTP2Client(probeTLS)
	for _, f := range files {
		b, err := config.LoadBank(f)
		if err != nil {
			return nil, "", err
		}
		members = append(members, &member{
			name: b.Name, config: f, listen: b.Listen, url: b.URL,
			health: grpchealth.NewClient(probe, "https://"+dialAddr(b.Listen)),
		})
	}
	return members, g.TLS.CA, nil
}

func checkPortFree(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		var opErr *net.OpError
		if errors.As(err, &opErr) && opErr.Err != nil {
			return opErr.Err
		}
		return err
	}
	return ln.Close()
}

// startMembers starts the gateway, waits until it is healthy, then starts
// the banks (so their first registration finds the gateway up) and waits
// for them.
func startMembers(ctx context.Context, log *slog.Logger, sup *supervisor, members []*member, timeout time.Duration) error {
	start := func(m *member) error {
		role := "bank"
		if m.name == pki.GatewayName {
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
	if err := start(members[0]); err != nil {
		return err
	}
	if err := waitHealthy(ctx, members, members[0], timeout); err != nil {
		return err
	}
	for _, m := range members[1:] {
		if err := start(m); err != nil {
			return err
		}
	}
	for _, m := range members[1:] {
		if err := waitHealthy(ctx, members, m, timeout); err != nil {
			return err
		}
	}
	return nil
}

// pollInterval is how often up re-checks a process that is not ready yet.
const pollInterval = 100 * time.Millisecond

// poll calls check every pollInterval until it returns nil, a process of
// the network exits, ctx ends or timeout passes. what names the awaited
// state of m in errors.
func poll(ctx context.Context, members []*member, m *member, timeout time.Duration, what string, check func(context.Context) error) error {
	deadline := time.Now().Add(timeout)
	for {
		for _, o := range members {
			if o.proc == nil || !o.proc.exitedNow() {
				continue
			}
			if o == m {
				return fmt.Errorf("%s exited before it was %s (%s); its log lines above say why", m.name, what, m.proc.describeExit())
			}
			return fmt.Errorf("%s exited while up waited for %s to be %s (%s); its log lines above say why", o.name, m.name, what, o.proc.describeExit())
		}
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := check(cctx)
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s is not %s after %s: %v", m.name, what, timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-m.proc.done:
		case <-time.After(pollInterval):
		}
	}
}

func waitHealthy(ctx context.Context, members []*member, m *member, timeout time.Duration) error {
	return poll(ctx, members, m, timeout, "healthy", func(ctx context.Context) error {
		res, err := m.health.Check(ctx, &grpchealth.CheckRequest{})
		if err != nil {
			return err
		}
		if res.Status != grpchealth.StatusServing {
			return fmt.Errorf("health status %s", res.Status)
		}
		return nil
	})
}

// waitRegistered waits until the gateway lists every bank as serving, so
// that the first payment after the banner cannot fail with BANK_NOT_FOUND.
// Only an admin may list banks: it logs in with the admin password from
// credentials.json, and skips the wait (with a note) when it cannot.
func waitRegistered(ctx context.Context, log *slog.Logger, n network, members []*member, caFile string, timeout time.Duration) error {
	creds, err := loadCredentials(n.credentialsFile())
	admin := creds.find(authz.RoleAdmin)
	if err != nil || admin == nil {
		log.Warn("cannot confirm the banks registered with the gateway (no admin password in credentials.json); payments fail with BANK_NOT_FOUND until they do", "err", err)
		return nil
	}
	tlsConf, err := pki.ClientConfig(caFile, "", "")
	if err != nil {
		return err
	}
	httpClient := serve.NewHTTP2Client(tlsConf)
	defer httpClient.CloseIdleConnections()
	gw := members[0]
	var token string
	withToken := connect.WithInterceptors(bearerToken(&token))
	authClient := gatewayv1connect.NewAuthServiceClient(httpClient, gw.url, withToken)
	adminClient := gatewayv1connect.NewAdminServiceClient(httpClient, gw.url, withToken)

	err = poll(ctx, members, gw, timeout, "accepting the admin login", func(ctx context.Context) error {
		res, err := authClient.Login(ctx, &gatewayv1.LoginRequest{ClientId: admin.ClientID, Password: admin.Password})
		if err != nil {
			return err
		}
		token = res.GetAccessToken()
		return nil
	})
	if connect.CodeOf(err) == connect.CodeUnauthenticated {
		log.Warn("cannot confirm the banks registered with the gateway (the admin password in credentials.json was changed); payments fail with BANK_NOT_FOUND until they do")
		return nil
	}
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		authClient.Logout(cctx, &gatewayv1.LogoutRequest{})
	}()

	want := make([]string, 0, len(members)-1)
	for _, m := range members[1:] {
		want = append(want, m.name)
	}
	return poll(ctx, members, gw, timeout, "reporting every bank registered and serving", func(ctx context.Context) error {
		res, err := adminClient.ListBanks(ctx, &gatewayv1.ListBanksRequest{})
		if err != nil {
			return err
		}
		var missing []string
		for _, name := range want {
			if !slices.ContainsFunc(res.GetBanks(), func(b *gatewayv1.Bank) bool {
				return b.GetName() == name && b.GetStatus() == gatewayv1.BankStatus_BANK_STATUS_SERVING
			}) {
				missing = append(missing, name)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("waiting for %s", strings.Join(missing, ", "))
		}
		return nil
	})
}

// printBanner tells people what is running and how to talk to it. Every
// example really works against this network.
func printBanner(w io.Writer, n network, members []*member, caFile string) {
	gw := members[0]
	gwAddr := strings.TrimPrefix(gw.url, "https://")
	ca := shellQuote(caFile)
	password := "PASSWORD"
	if creds, _ := loadCredentials(n.credentialsFile()); creds != nil {
		for _, u := range creds.Users {
			if u.ClientID == "alice" {
				password = u.Password
			}
		}
	}

	fmt.Fprintf(w, "Remit is up: the gateway and %d banks, TLS 1.3 only.\n\n", len(members)-1)
	width := 0
	for _, m := range members {
		width = max(width, len(m.name))
	}
	for _, m := range members {
		fmt.Fprintf(w, "  %-*s  %-24s  pid %d\n", width, m.name, m.url, m.proc.cmd.Process.Pid)
	}
	fmt.Fprintf(w, "\n  CA certificate  %s\n", caFile)
	fmt.Fprintf(w, "  Credentials     %s (demo passwords)\n", n.credentialsFile())
	fmt.Fprintf(w, "  Data            %s\n", n.dataDir())
	fmt.Fprintf(w, `
Try it:

  # Connect JSON with curl: log in as alice, then use the accessToken
  curl --cacert %[1]s -H 'Content-Type: application/json' -d '{"clientId":"alice","password":"%[2]s"}' %[3]s/remit.gateway.v1.AuthService/Login

  # gRPC with grpcurl (reflection is on)
  grpcurl -cacert %[1]s %[4]s list

  # the remit CLI (go build -o bin/remit ./cmd/remit): log in as alice, pay bob, check the balance
  remit login --gateway %[3]s --ca %[1]s alice
  remit pay --to bank-b/bob --amount 12.50 && remit balance

  # more in README.md, docs/cli.md and docs/api.md

%[5]s
`, ca, password, gw.url, gwAddr, readyLine)
}

// bearerToken is a client interceptor that sends *token as a bearer
// credential when it is set.
func bearerToken(token *string) connect.UnaryInterceptorFunc {
	return func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			if *token != "" {
				req.Header().Set("Authorization", "Bearer "+*token)
			}
			return next(ctx, req)
		}
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(interface{ Fd() uintptr })
	return ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
}
