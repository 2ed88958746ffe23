package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/remitpay/remit/internal/config"
	"github.com/remitpay/remit/internal/devnet"
	"github.com/remitpay/remit/internal/portlock"
)

// process is one server of the network: the gateway or a bank, run from
// the remit binary as a child with its own data directory, logging to a
// file that every restart appends to.
type process struct {
	name, config, logFile string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// cluster is the network under test: its layout, its processes and the
// fault proxies in front of the gateway (for clients) and of every bank
// (for the gateway).
type cluster struct {
	exe    string
	layout devnet.Layout
	// ports are the network's, held until close so that no other network
	// takes them while a process is down.
	ports *portlock.Block
	procs map[string]*process
	// clientProxy is what clients dial instead of the gateway; bankProxy
	// is what the gateway dials for each bank (the URL the bank
	// registers).
	clientProxy *Proxy
	// replicaProxies are the clients' proxies of the gateway replicas
	// after the first (replica mode).
	replicaProxies []*Proxy
	bankProxy      map[string]*Proxy
	// uplink is what each bank dials for the gateway (registration, and
	// its resolver's questions about expired transactions).
	uplink     map[string]*Proxy
	gatewayURL string
	// clientURLs is what clients are given: the first replica's proxy,
	// then the others', comma-separated (client.Config.GatewayURL).
	clientURLs string
	// replicas are the names of the gateway replicas: "gateway" alone, or
	// "gateway", "gateway-2", ...
	replicas []string
	// postgres is the database of replica mode ("" for SQLite).
	postgres string
	// diskDir is the bank whose data directory is a small tmpfs, and
	// diskNote why there is none.
	diskBank, diskNote string
}

// listenLine and urlLine are the lines of a bank config that name its own
// address and the URL it registers with the gateway.
var (
	listenLine = regexp.MustCompile(`(?m)^listen: (\S+)$`)
	urlLine    = regexp.MustCompile(`(?m)^url: https://(\S+)$`)
	// gatewayURLLine is the gateway's URL in a bank config.
	gatewayURLLine = regexp.MustCompile(`(?m)^gateway_url: https://(\S+)$`)
)

// newCluster initialises a network of that many customers in dir and
// puts a proxy in front of every server. Nothing runs yet.
func newCluster(ctx context.Context, exe, dir string, customers int, diskBank, postgres string, replicas int) (_ *cluster, err error) {
	replicas = max(replicas, 1)
	ports, err := portlock.Reserve(ctx, devnet.PortsFor(replicas))
	if err != nil {
		return nil, err
	}
	base := ports.Base
	l, err := devnet.InitWith(ctx, io.Discard, dir, devnet.InitConfig{BasePort: base, Customers: customers, Postgres: postgres, Replicas: replicas})
	if err != nil {
		ports.Release()
		return nil, err
	}
	c := &cluster{exe: exe, layout: l, ports: ports, procs: map[string]*process{}, bankProxy: map[string]*Proxy{}, uplink: map[string]*Proxy{}, postgres: postgres}
	defer func() {
		if err != nil {
			c.closeProxies()
			ports.Release()
		}
	}()
	gw := net.JoinHostPort("127.0.0.1", strconv.Itoa(base))
	if c.clientProxy, err = NewProxy(ctx, gw); err != nil {
		return nil, err
	}
	c.gatewayURL = "https://" + c.clientProxy.Addr()
	c.clientURLs = c.gatewayURL
	c.procs["gateway"] = &process{name: "gateway", config: l.GatewayConfig(), logFile: filepath.Join(dir, "gateway.log")}
	c.replicas = []string{"gateway"}
	for r := 2; r <= replicas; r++ {
		name := devnet.ReplicaName(r)
		gcfg, err := config.LoadGateway(l.ReplicaConfig(r))
		if err != nil {
			return nil, err
		}
		p, err := NewProxy(ctx, gcfg.Listen)
		if err != nil {
			return nil, err
		}
		c.replicaProxies = append(c.replicaProxies, p)
		c.clientURLs += ",https://" + p.Addr()
		c.procs[name] = &process{name: name, config: l.ReplicaConfig(r), logFile: filepath.Join(dir, name+".log")}
		c.replicas = append(c.replicas, name)
	}
	for _, b := range devnet.Banks() {
		path := l.BankConfig(b)
		raw, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		m := listenLine.FindSubmatch(raw)
		if m == nil || !urlLine.Match(raw) || !gatewayURLLine.Match(raw) {
			return nil, fmt.Errorf("%s: no listen, url or gateway_url line", path)
		}
		up, err := NewProxy(ctx, gw)
		if err != nil {
			return nil, err
		}
		c.uplink[b] = up
		raw = gatewayURLLine.ReplaceAll(raw, []byte("gateway_url: https://"+up.Addr()))
		p, err := NewProxy(ctx, string(m[1]))
		if err != nil {
			return nil, err
		}
		c.bankProxy[b] = p
		// The bank registers the proxy's address: the gateway reaches it
		// only through the proxy. Its certificate names 127.0.0.1, which
		// the proxy's address is too.
		raw = urlLine.ReplaceAll(raw, []byte("url: https://"+p.Addr()))
		if err := os.WriteFile(path, raw, 0o600); err != nil { //nolint:gosec // G703: the config init just wrote
			return nil, err
		}
		c.procs[b] = &process{name: b, config: path, logFile: filepath.Join(dir, b+".log")}
	}
	if diskBank != "" {
		c.diskNote = mountSmallDisk(filepath.Join(l.DataDir(), diskBank))
		if c.diskNote == "" {
			c.diskBank = diskBank
		}
	}
	return c, nil
}

// diskSize is the size of the tmpfs a bank's data directory lives on for
// the disk-full fault: room for its ledger, not for much more.
const diskSize = "48m"

func (c *cluster) closeProxies() {
	if c.clientProxy != nil {
		_ = c.clientProxy.Close()
	}
	for _, p := range c.replicaProxies {
		_ = p.Close()
	}
	for _, p := range c.bankProxy {
		_ = p.Close()
	}
	for _, p := range c.uplink {
		_ = p.Close()
	}
}

// start starts p; it is not yet ready when start returns. p is killed
// when ctx ends (a harness stopped with Ctrl-C leaves no server behind).
func (c *cluster) start(ctx context.Context, name string) error {
	p := c.procs[name]
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		return fmt.Errorf("%s is already running", name)
	}
	logs, err := os.OpenFile(p.logFile, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	role := "bank"
	if slices.Contains(c.replicas, name) {
		role = "gateway"
	}
	cmd := exec.CommandContext(ctx, c.exe, "--log-format", "json", role, "--config", p.config) //nolint:gosec // G204: our own binary and config
	cmd.Stdout, cmd.Stderr = logs, logs
	cmd.SysProcAttr = childSysProcAttr()
	if err := cmd.Start(); err != nil {
		return errors.Join(err, logs.Close())
	}
	p.cmd, p.done = cmd, make(chan struct{})
	go func() {
		err := cmd.Wait()
		_ = logs.Close()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(p.done)
	}()
	return nil
}

// running returns p's command and its done channel, or nil.
func (p *process) running() (*exec.Cmd, chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd, p.done
}

// signal sends sig to name, which must be running.
func (c *cluster) signal(name string, sig syscall.Signal) error {
	cmd, _ := c.procs[name].running()
	if cmd == nil {
		return fmt.Errorf("%s is not running", name)
	}
	return cmd.Process.Signal(sig)
}

// kill sends SIGKILL to name and waits until it is gone.
func (c *cluster) kill(name string) error {
	return c.stop(name, syscall.SIGKILL, 10*time.Second)
}

// stop sends sig (SIGCONT first, so a paused process can act on it) and
// waits up to grace, then kills.
func (c *cluster) stop(name string, sig syscall.Signal, grace time.Duration) error {
	p := c.procs[name]
	cmd, done := p.running()
	if cmd == nil {
		return nil
	}
	_ = cmd.Process.Signal(syscall.SIGCONT)
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(grace):
		_ = cmd.Process.Kill()
		<-done
	}
	p.mu.Lock()
	p.cmd, p.done = nil, nil
	p.mu.Unlock()
	return nil
}

// exited lists the processes that died on their own.
// clientProxies are the proxies clients dial: one per gateway replica.
func (c *cluster) clientProxies() []*Proxy {
	return append([]*Proxy{c.clientProxy}, c.replicaProxies...)
}

func (c *cluster) exited() []string {
	var out []string
	for name, p := range c.procs {
		_, done := p.running()
		if done == nil {
			continue
		}
		select {
		case <-done:
			out = append(out, fmt.Sprintf("%s (%v)", name, p.err))
		default:
		}
	}
	return out
}

// shutdown stops every process gracefully (SIGTERM). It may be called
// more than once.
func (c *cluster) shutdown() {
	var wg sync.WaitGroup
	for name := range c.procs {
		wg.Go(func() { _ = c.stop(name, syscall.SIGTERM, 15*time.Second) })
	}
	wg.Wait()
}

// close shuts down, closes the proxies and unmounts the small disk; keep
// copies the small disk's files beside it first, for a run whose network
// is kept to be looked at.
func (c *cluster) close(keep bool) error {
	c.shutdown()
	c.closeProxies()
	c.ports.Release()
	if c.diskBank == "" {
		return nil
	}
	dir := filepath.Join(c.layout.DataDir(), c.diskBank)
	var err error
	if keep {
		err = os.CopyFS(dir+".saved", os.DirFS(dir))
	}
	return errors.Join(err, unmount(dir))
}
