package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"

	"github.com/remitpay/remit/internal/pki"
	"github.com/remitpay/remit/internal/serve"
)

// Registry is the gateway's view of the banks: where each is, a client for it,
// and its health as last observed. Registrations are durable (Store); health
// is kept in memory by polling each bank's grpc.health.v1 service.
type Registry struct {
	store    *Store
	tls      *tls.Config
	log      *slog.Logger
	interval time.Duration

	mu      sync.Mutex
	banks   map[string]*bankEntry
	changed chan struct{} // signals Run that an entry needs a watcher
}

// Health-check tuning: each check may take healthTimeout (or the interval,
// if longer), and a bank is marked unreachable after unreachableAfter
// failed checks in a row (or at once if it has not answered since start).
const (
	healthTimeout    = 2 * time.Second
	unreachableAfter = 2
)

type bankEntry struct {
	url      string
	http     *http.Client
	failures int // consecutive failed health checks
	client   BankClient
	health   *grpchealth.Client
	status   BankState
	observed bool
	lastSeen time.Time
	stop     context.CancelFunc
	touched  time.Time // last time lastSeen was persisted
}

// NewRegistry loads the registered banks from st. bankTLS is the gateway's
// mutual-TLS client configuration; each bank gets its own HTTP/2 client
// pinned to that bank's certificate identity. interval is the health-check
// period. log is required.
func NewRegistry(ctx context.Context, st *Store, bankTLS *tls.Config, log *slog.Logger, interval time.Duration) (*Registry, error) {
	if log == nil {
		return nil, errors.New("gateway: NewRegistry needs a logger")
	}
	r := &Registry{store: st, tls: bankTLS, log: log, interval: interval,
		banks: map[string]*bankEntry{}, changed: make(chan struct{}, 1)}
	recs, err := st.Banks(ctx)
	if err != nil {
		return nil, err
	}
	for _, b := range recs {
		r.banks[b.Name] = r.newEntry(b.Name, b.URL, b.LastSeen)
	}
	return r, nil
}

func (r *Registry) newEntry(name, url string, lastSeen time.Time) *bankEntry {
	httpClient := serve.NewHTTP2Client(pki.RequirePeer(r.tls, pki.BankIdentity(name)))
	return &bankEntry{
		url:      url,
		http:     httpClient,
		client:   newConnectBank(httpClient, url),
		health:   grpchealth.NewClient(httpClient, url, connect.WithGRPC()),
		status:   BankServing, // optimistic until the first health check says otherwise
		lastSeen: lastSeen,
	}
}

// Lookup implements Banks.
func (r *Registry) Lookup(name string) (BankClient, BankState) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.banks[name]
	if e == nil {
		return nil, BankUnknown
	}
	return e.client, e.status
}

// Register records a bank's URL durably and (re)starts watching it.
func (r *Registry) Register(ctx context.Context, name, url string) error {
	now := time.Now()
	if err := r.store.RegisterBank(ctx, name, url, now); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.banks[name]
	if e != nil && e.url == url {
		// A heartbeat proves the bank can reach us, not that we can reach
		// it: health stays the health checks' business.
		e.lastSeen, e.touched = now, now
		return nil
	}
	if e != nil {
		if e.stop != nil {
			e.stop()
		}
		e.http.CloseIdleConnections()
	}
	r.log.Info("bank registered", "bank", name, "url", url)
	e = r.newEntry(name, url, now)
	e.observed, e.touched = true, now
	r.banks[name] = e
	select {
	case r.changed <- struct{}{}:
	default:
	}
	return nil
}

// Run health-checks every registered bank each interval until ctx ends,
// marking a bank unreachable when its check fails so that new payments
// touching it are refused before anything is recorded.
func (r *Registry) Run(ctx context.Context) {
	for {
		r.mu.Lock()
		for name, e := range r.banks {
			if e.stop == nil {
				wctx, cancel := context.WithCancel(ctx)
				e.stop = cancel
				go r.poll(wctx, name, e)
			}
		}
		r.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-r.changed:
		}
	}
}

func (r *Registry) poll(ctx context.Context, name string, e *bankEntry) {
	ticker := time.NewTicker(r.interval)
	defer ticker.Stop()
	for {
		cctx, cancel := context.WithTimeout(ctx, max(r.interval, healthTimeout))
		res, err := e.health.Check(cctx, &grpchealth.CheckRequest{})
		cancel()
		if ctx.Err() != nil {
			return
		}
		now := time.Now()
		serving := err == nil && res.Status == grpchealth.StatusServing
		r.mu.Lock()
		was := e.status
		persist := false
		if serving {
			e.status, e.lastSeen = BankServing, now
			persist = now.Sub(e.touched) >= 10*time.Second
			if persist {
				e.touched = now
			}
			e.failures = 0
		} else {
			// One lost check on a busy machine is not an outage: it takes
			// unreachableAfter failures in a row to refuse new payments.
			e.failures++
			if e.failures >= unreachableAfter || !e.observed {
				e.status = BankUnreachable
			}
		}
		first := !e.observed
		e.observed = true
		status := e.status
		r.mu.Unlock()
		switch {
		case serving && (was != BankServing || first):
			r.log.Info("bank serving", "bank", name)
		case !serving && status == BankUnreachable && (was != BankUnreachable || first):
			r.log.Warn("bank unreachable; new payments touching it are refused until it answers", "bank", name, "err", err)
		}
		if persist {
			if err := r.store.TouchBank(ctx, name, now); err != nil && ctx.Err() == nil {
				r.log.Error("record bank last seen", "bank", name, "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// Close closes the connections to every bank. A gateway that stops must
// not leave them open: a bank shutting down gracefully waits for its
// clients to hang up.
func (r *Registry) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.banks {
		e.http.CloseIdleConnections()
	}
}

// states returns each registered bank's health as the metrics name it:
// serving, unreachable, or unchecked (registered, no health check answered
// or failed yet). It reads memory only.
func (r *Registry) states() map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]string, len(r.banks))
	for name, e := range r.banks {
		switch {
		case !e.observed:
			out[name] = "unchecked"
		case e.status == BankUnreachable:
			out[name] = "unreachable"
		default:
			out[name] = "serving"
		}
	}
	return out
}

// BankInfo is one bank as ListBanks shows it.
type BankInfo struct {
	Name     string
	URL      string
	Status   BankState
	Observed bool
	LastSeen time.Time
}

// List returns every registered bank, by name.
func (r *Registry) List(ctx context.Context) ([]BankInfo, error) {
	recs, err := r.store.Banks(ctx)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]BankInfo, 0, len(recs))
	for _, b := range recs {
		info := BankInfo{Name: b.Name, URL: b.URL, LastSeen: b.LastSeen}
		if e := r.banks[b.Name]; e != nil {
			info.Status, info.Observed = e.status, e.observed
			if e.lastSeen.After(info.LastSeen) {
				info.LastSeen = e.lastSeen
			}
		}
		out = append(out, info)
	}
	return out, nil
}
