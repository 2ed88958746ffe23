package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/remitpay/remit/internal/authz"
	"github.com/remitpay/remit/internal/config"
	"github.com/remitpay/remit/internal/devnet"
	"github.com/remitpay/remit/internal/logging"
	"github.com/remitpay/remit/internal/portlock"
)

// network is the network under test.
type network struct {
	gateway, ca string
	creds       *devnet.Credentials
	// pids are the network's processes when the bench started them, and
	// metrics their admin listeners (host:port, plain HTTP).
	pids    map[string]int
	metrics map[string]string
	// own says the bench started the network; dir and logFile are then its
	// temporary directory and the file the processes log to.
	own           bool
	dir, logFile  string
	customerNames func(devnet.Credential) bool
	stop          func() error
}

// startTimeout bounds the wait for each process of the bench's network.
const startTimeout = 2 * time.Minute

// startOwn starts a new network with cfg.Customers customers in a temporary
// directory, every process a child running the remit binary, and returns
// once it is ready. stop stops it and removes the directory unless keep.
func startOwn(ctx context.Context, cfg *Config) (_ *network, err error) {
	dir, err := os.MkdirTemp("", "remit-bench-")
	if err != nil {
		return nil, err
	}
	n := &network{own: true, dir: dir, logFile: filepath.Join(dir, "up.log")}
	logs, err := os.Create(n.logFile)
	if err != nil {
		return nil, errors.Join(err, os.RemoveAll(dir))
	}
	postgres, dropSchemas, err := benchSchemas(cfg.Postgres) //nolint:contextcheck // the drop runs after ctx may have ended
	if err != nil {
		return nil, errors.Join(err, logs.Close(), os.RemoveAll(dir))
	}
	ports, err := portlock.Reserve(ctx, devnet.PortsFor(cfg.Replicas))
	if err != nil {
		return nil, errors.Join(fmt.Errorf("%w: free some, or run the bench against a network you started (--gateway, --ca, --credentials)", err), logs.Close(), os.RemoveAll(dir))
	}
	upCtx, cancel := context.WithCancel(ctx)
	ready := make(chan map[string]int, 1)
	done := make(chan error, 1)
	netDir := filepath.Join(dir, "net")
	go func() {
		done <- devnet.Up(upCtx, devnet.UpConfig{
			Dir:        netDir,
			BasePort:   ports.Base,
			Customers:  cfg.Customers,
			Postgres:   postgres,
			Replicas:   cfg.Replicas,
			Timeout:    startTimeout,
			LogFormat:  logging.FormatJSON,
			Executable: cfg.Executable,
			Stdout:     logs,
			Stderr:     logs,
			OnReady:    func(pids map[string]int) { ready <- pids },
		})
	}()
	n.stop = func() error {
		cancel()
		err := <-done
		ports.Release()
		return errors.Join(err, logs.Close(), dropSchemas())
	}
	select {
	case n.pids = <-ready:
	case err := <-done:
		cancel()
		ports.Release()
		_ = logs.Close()  // the start failed already; that error is the one to report
		_ = dropSchemas() // likewise
		if err == nil {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("start the network (its log is %s): %w", n.logFile, err)
	}
	l := devnet.Layout{Dir: netDir}
	if n.creds, err = devnet.LoadCredentials(l.CredentialsFile()); err == nil && n.creds == nil {
		err = errors.New("the network has no credentials.json")
	}
	if err != nil {
		return nil, errors.Join(err, n.stop())
	}
	if n.metrics, err = metricsAddrs(netDir); err != nil {
		return nil, errors.Join(err, n.stop())
	}
	n.gateway, n.ca = n.creds.Gateway, n.creds.CA
	for r := 2; r <= cfg.Replicas; r++ {
		g, err := config.LoadGateway(l.ReplicaConfig(r))
		if err != nil {
			return nil, errors.Join(err, n.stop())
		}
		n.gateway += ",https://" + g.Listen
	}
	// Only the customers opened for the bench, not the demo users.
	n.customerNames = func(c devnet.Credential) bool { return strings.HasPrefix(c.ClientID, devnet.CustomerPrefix) }
	return n, nil
}

// benchSchemas gives the bench's own network on PostgreSQL schemas of its
// own under base (a random prefix), and drop removes them; both are no-ops
// without base.
func benchSchemas(base string) (target string, drop func() error, err error) {
	if base == "" {
		return "", func() error { return nil }, nil
	}
	return devnet.WithSchemaPrefix(base, fmt.Sprintf("bench_%x", rand.Uint64()&0xffffffffff)) //nolint:gosec // a name, not a secret
}

// existing is the network named by cfg.Gateway.
func existing(cfg *Config) (*network, error) {
	creds, err := devnet.LoadCredentials(cfg.Credentials)
	if err == nil && creds == nil {
		err = fmt.Errorf("%s does not exist", cfg.Credentials)
	}
	if err != nil {
		return nil, fmt.Errorf("--credentials: %w", err)
	}
	return &network{
		gateway: cfg.Gateway, ca: cfg.CA, creds: creds,
		customerNames: func(devnet.Credential) bool { return true },
		stop:          func() error { return nil },
	}, nil
}

// customers returns the customers that take part.
func (n *network) customers() []devnet.Credential {
	var out []devnet.Credential
	for _, c := range n.creds.Users {
		if c.Account != nil && hasRole(c, authz.RoleCustomer) && n.customerNames(c) {
			out = append(out, c)
		}
	}
	return out
}

// accounts returns every account in the credentials: the conservation
// check sums them all.
func (n *network) accounts() []devnet.AccountRef {
	var out []devnet.AccountRef
	for _, c := range n.creds.Users {
		if c.Account != nil {
			out = append(out, *c.Account)
		}
	}
	return out
}

// staff returns the auditor, or failing that an admin, who reads balances
// and lists payments for the conservation check.
func (n *network) staff() (*devnet.Credential, error) {
	if c := n.creds.Find(authz.RoleAuditor); c != nil {
		return c, nil
	}
	if c := n.creds.Find(authz.RoleAdmin); c != nil {
		return c, nil
	}
	return nil, errors.New("the credentials name no auditor or admin, so the bench cannot check conservation: add a user with the auditor (or admin) role to the credentials file")
}

func hasRole(c devnet.Credential, r authz.Role) bool { return slices.Contains(c.Roles, string(r)) }
