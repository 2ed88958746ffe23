package bench

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"

	"github.com/remitpay/remit/client"
	"github.com/remitpay/remit/internal/devnet"
	"github.com/remitpay/remit/internal/pki"
)

// settleTimeout bounds the wait for every payment to be final after the
// last level.
const settleTimeout = time.Minute

// staffRate paces the conservation check's calls under the gateway's
// per-principal rate limit.
const staffRate = 40

// customer is one logged-in customer.
type customer struct {
	c        *client.Client
	account  client.AccountRef
	currency string
}

// Run runs the bench cfg describes and returns its report. The error wraps
// [ErrNotConserved] when the conservation check failed and
// [ErrResourcesGrew] when the resource check did; the report is complete
// then. Any other error means the bench could not run.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Stderr == nil {
		cfg.Stderr = io.Discard
	}
	var (
		n   *network
		err error
	)
	if cfg.Gateway != "" {
		n, err = existing(&cfg)
	} else {
		fmt.Fprintf(cfg.Stderr, "remit bench: starting a network with %d customers...\n", cfg.Customers)
		n, err = startOwn(ctx, &cfg)
	}
	if err != nil {
		return nil, err
	}
	rep, err := run(ctx, &cfg, n)
	if serr := n.stop(); serr != nil && err == nil {
		err = fmt.Errorf("stop the network (its log is %s): %w", n.logFile, serr)
	}
	if n.own {
		if err != nil && !errors.Is(err, ErrNotConserved) && !errors.Is(err, ErrResourcesGrew) {
			fmt.Fprintf(cfg.Stderr, "remit bench: kept the network in %s for a look at up.log\n", n.dir)
		} else if rerr := os.RemoveAll(n.dir); rerr != nil && err == nil {
			err = rerr
		}
	}
	return rep, err
}

func run(ctx context.Context, cfg *Config, n *network) (*Report, error) {
	tlsConf, err := pki.ClientConfig(n.ca, "", "")
	if err != nil {
		return nil, err
	}
	creds := n.customers()
	if len(creds) < 2 {
		return nil, fmt.Errorf("the network has %d customers with an account; a bench needs at least 2: create them with remit init --customers N, or pass a --credentials file that lists at least 2 customers with accounts", len(creds))
	}
	staffCred, err := n.staff()
	if err != nil {
		return nil, err
	}
	staff, err := login(ctx, n.gateway, tlsConf, *staffCred, nil)
	if err != nil {
		return nil, err
	}
	defer staff.Close()
	aud := &auditor{c: staff, limit: rate.NewLimiter(staffRate, staffRate)}
	for _, a := range n.accounts() {
		aud.accounts = append(aud.accounts, client.AccountRef{Bank: a.Bank, ID: a.AccountID})
	}

	fmt.Fprintf(cfg.Stderr, "remit bench: logging in %d customers at %s...\n", len(creds), n.gateway)
	custs, err := loginAll(ctx, n.gateway, tlsConf, creds)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, c := range custs {
			_ = c.c.Close() // Close only drops idle connections
		}
	}()
	before, currencies, err := aud.read(ctx)
	if err != nil {
		return nil, err
	}
	for i := range custs {
		custs[i].currency = currencies[custs[i].account]
	}

	rep := &Report{
		Gateway: n.gateway, Own: n.own, Customers: len(custs),
		Duration: cfg.Duration.String(), Ceiling: cfg.ceiling().String(),
		SameBankRatio: cfg.SameBankRatio, CPUs: runtime.NumCPU(),
	}
	pids := map[string]int{"bench": os.Getpid()}
	maps.Copy(pids, n.pids)
	picker := newPicker(custs)
	// The peak so far covers starting the network and the logins (argon2id
	// hashes); each level's is its own.
	rep.PeakRSS = peaks(pids)
	hc := newMetricsClient()
	defer hc.CloseIdleConnections()
	var idle map[string]Usage
	if len(n.metrics) > 0 {
		idle = sampleUsage(ctx, hc, n.metrics, cfg.Stderr)
	}
	for _, c := range cfg.Concurrency {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		resetPeaks(pids)
		if cfg.Progress {
			fmt.Fprintf(cfg.Stderr, "\r\033[Kconcurrency %d: measuring the health-check ceiling for %s...", c, cfg.ceiling())
		}
		perSec, cerrs := ceiling(ctx, custs, c, cfg.ceiling())
		l := payments(ctx, cfg, custs, picker, c)
		l.setCeiling(perSec, cerrs)
		l.PeakRSS = peaks(pids)
		maxPeaks(rep.PeakRSS, l.PeakRSS)
		rep.Levels = append(rep.Levels, l)
		fmt.Fprintf(cfg.Stderr, "remit bench: concurrency %d: %.0f payments/s, p99 %.1f ms, %d errors; ceiling %.0f calls/s\n",
			c, l.PaymentsPerSec, l.Latency.P99, l.Errors, l.CeilingPerSec)
	}

	fmt.Fprintln(cfg.Stderr, "remit bench: waiting for every payment to be final, then checking conservation...")
	listed, processing, after, err := aud.settle(ctx, settleTimeout)
	if err != nil {
		return rep, err
	}
	rep.Conservation = check(before, after, listed, processing)
	var errs []error
	if !rep.Conservation.OK {
		errs = append(errs, fmt.Errorf("%w: %s", ErrNotConserved, rep.Conservation.Summary()))
	}
	if len(idle) > 0 {
		fmt.Fprintln(cfg.Stderr, "remit bench: checking goroutines and open fds against idle...")
		if rep.Resources, err = settleUsage(ctx, hc, n.metrics, idle, cfg.Stderr); err != nil {
			return rep, err
		}
		if !rep.Resources.OK {
			errs = append(errs, fmt.Errorf("%w: %s", ErrResourcesGrew, rep.Resources.Summary()))
		}
	}
	return rep, errors.Join(errs...)
}

// login returns a client logged in as cred. It re-logs in by itself if the
// token expires; retry, if not nil, replaces the SDK's default policy.
func login(ctx context.Context, gateway string, tlsConf *tls.Config, cred devnet.Credential, retry *client.RetryPolicy) (*client.Client, error) {
	c, err := client.New(client.Config{
		GatewayURL:  gateway,
		TLSConfig:   tlsConf,
		Credentials: &client.Credentials{ClientID: cred.ClientID, Password: cred.Password},
		Retry:       retry,
	})
	if err != nil {
		return nil, err
	}
	if _, err := c.Login(ctx, cred.ClientID, cred.Password); err != nil {
		return nil, errors.Join(fmt.Errorf("log in as %s: %w", cred.ClientID, err), c.Close())
	}
	return c, nil
}

// loginAll logs every customer in, a few at a time (a login costs the
// gateway an argon2id hash). Payments are sent once, never retried: the
// bench counts every failure rather than hiding it in a retry.
func loginAll(ctx context.Context, gateway string, tlsConf *tls.Config, creds []devnet.Credential) ([]customer, error) {
	out := make([]customer, len(creds))
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	replicas := strings.Split(gateway, ",")
	for i, cred := range creds {
		// Customer i mainly uses replica i mod n, the others after it.
		k := i % len(replicas)
		mine := strings.Join(append(slices.Clone(replicas[k:]), replicas[:k]...), ",")
		g.Go(func() error {
			c, err := login(ctx, mine, tlsConf, cred, &client.RetryPolicy{MaxAttempts: 1})
			if err != nil {
				return err
			}
			out[i] = customer{c: c, account: client.AccountRef{Bank: cred.Account.Bank, ID: cred.Account.AccountID}}
			return nil
		})
	}
	err := g.Wait()
	if err != nil {
		for _, c := range out {
			if c.c != nil {
				_ = c.c.Close() // as in run
			}
		}
	}
	return out, err
}

// ceiling runs concurrency workers calling the gateway's health check
// through the customers' clients for d, and returns the successful calls
// per second and the failed ones.
func ceiling(ctx context.Context, custs []customer, concurrency int, d time.Duration) (perSec float64, errs int64) {
	var ok, failed atomic.Int64
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for w := range concurrency {
		c := custs[w%len(custs)].c
		wg.Go(func() {
			for ctx.Err() == nil && time.Now().Before(deadline) {
				if err := c.Health(ctx); err != nil {
					failed.Add(1)
				} else {
					ok.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return float64(ok.Load()) / time.Since(start).Seconds(), failed.Load()
}

// payments runs concurrency workers, each sending one payment at a time
// between random customers, for cfg.Duration. A payment in flight at the
// end is waited for, so the level's time covers every call it counts.
func payments(ctx context.Context, cfg *Config, custs []customer, p *picker, concurrency int) Level {
	rec := newRecorder()
	start := time.Now()
	deadline := start.Add(cfg.Duration)
	var wg sync.WaitGroup
	for w := range concurrency {
		rng := rand.New(rand.NewPCG(uint64(w), uint64(start.UnixNano()))) //nolint:gosec // G404: picks payers, not secrets; G115: UnixNano is positive
		wg.Go(func() {
			for ctx.Err() == nil && time.Now().Before(deadline) {
				payer, payee := p.pick(rng, rng.Float64() < cfg.SameBankRatio)
				t0 := time.Now()
				_, err := custs[payer].c.Pay(ctx, client.PaymentRequest{
					Payee: custs[payee].account, Amount: 1, Currency: custs[payer].currency,
				})
				rec.record(time.Since(t0), classify(err))
			}
		})
	}
	stopProgress := func() {}
	if cfg.Progress {
		stopProgress = progress(cfg.Stderr, rec, concurrency)
	}
	wg.Wait()
	stopProgress()
	return rec.level(concurrency, time.Since(start))
}

// classify turns a payment's error into its outcome.
func classify(err error) outcome {
	if err == nil {
		return outcome{}
	}
	var e *client.Error
	if !errors.As(err, &e) {
		return outcome{code: connect.CodeOf(err).String()}
	}
	if client.IsDeclined(err) {
		return outcome{reason: e.Reason}
	}
	return outcome{code: e.Code.String(), rateLimited: e.Code == connect.CodeResourceExhausted}
}

// progress writes a progress line to w every second until the returned
// func is called, which clears it.
func progress(w io.Writer, rec *recorder, concurrency int) func() {
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		last := time.Now()
		for {
			select {
			case <-done:
				fmt.Fprint(w, "\r\033[K")
				return
			case now := <-t.C:
				ok, p99, errs := rec.progress()
				fmt.Fprintf(w, "\r\033[Kconcurrency %d: %.0f payments/s, p99 %.1f ms, %d errors",
					concurrency, float64(ok)/now.Sub(last).Seconds(), float64(p99.Microseconds())/1000, errs)
				last = now
			}
		}
	}()
	return func() { close(done); <-stopped }
}
