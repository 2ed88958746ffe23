package bank

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
	"github.com/remitpay/remit/gen/remit/gateway/v1/gatewayv1connect"
)

// callTimeout bounds every call the bank makes to the gateway.
const callTimeout = 5 * time.Second

// Coordinator is the gateway as a bank sees it: the registry it announces
// itself to, and the authority on how a transaction ended. The production
// implementation is [NewCoordinator]; tests use fakes.
type Coordinator interface {
	// Register records (or refreshes) the bank's name and URL at the gateway
	// and returns the gateway's instance id, which changes when it restarts.
	Register(ctx context.Context, name, url string) (instanceID string, err error)
	// Outcome returns the gateway's decision for txID: commit is true for
	// COMMITTED and false for ABORTED. An undecided transaction is decided
	// ABORT by the gateway before it answers. An error means no answer.
	Outcome(ctx context.Context, txID string) (commit bool, err error)
}

// NewCoordinator returns a Coordinator that calls the gateway's
// CoordinatorService through client (built on a mutual-TLS HTTP/2 client
// presenting the bank's client certificate).
func NewCoordinator(client gatewayv1connect.CoordinatorServiceClient) Coordinator {
	return &gatewayCoordinator{c: client}
}

type gatewayCoordinator struct {
	c gatewayv1connect.CoordinatorServiceClient
}

func (g *gatewayCoordinator) Register(ctx context.Context, name, url string) (string, error) {
	res, err := g.c.RegisterBank(ctx, &gatewayv1.RegisterBankRequest{Name: name, Url: url})
	if err != nil {
		return "", err
	}
	return res.GetGatewayInstanceId(), nil
}

func (g *gatewayCoordinator) Outcome(ctx context.Context, txID string) (bool, error) {
	res, err := g.c.GetTransactionOutcome(ctx, &gatewayv1.GetTransactionOutcomeRequest{TransactionId: txID})
	if err != nil {
		return false, err
	}
	switch o := res.GetOutcome(); o {
	case gatewayv1.TransactionOutcome_TRANSACTION_OUTCOME_COMMITTED:
		return true, nil
	case gatewayv1.TransactionOutcome_TRANSACTION_OUTCOME_ABORTED:
		return false, nil
	default:
		// Never guess: an unknown answer leaves the funds held.
		return false, fmt.Errorf("gateway answered outcome %v for %s", o, txID)
	}
}

// Failover is a Coordinator over the replicas of one gateway (they share
// one log, so any of them answers an outcome the same): a call goes to the
// replica that answered last, and on an error to the next, until one
// answers or each has failed once. Register is not failed over: the bank
// registers with every replica (a Registrar each).
type Failover struct {
	replicas []Coordinator
	mu       sync.Mutex
	current  int
}

// NewFailover returns a Failover over replicas, tried from the first.
func NewFailover(replicas ...Coordinator) *Failover { return &Failover{replicas: replicas} }

// Register registers with the current replica only.
func (f *Failover) Register(ctx context.Context, name, url string) (string, error) {
	f.mu.Lock()
	c := f.replicas[f.current]
	f.mu.Unlock()
	return c.Register(ctx, name, url)
}

// Outcome asks the replicas in turn, starting with the last that answered.
func (f *Failover) Outcome(ctx context.Context, txID string) (bool, error) {
	f.mu.Lock()
	start := f.current
	f.mu.Unlock()
	var errs []error
	for i := range f.replicas {
		at := (start + i) % len(f.replicas)
		commit, err := f.replicas[at].Outcome(ctx, txID)
		if err == nil {
			f.mu.Lock()
			f.current = at
			f.mu.Unlock()
			return commit, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return false, errors.Join(errs...)
}

// backoff returns base doubled for every failure after the first, capped at
// limit.
func backoff(base time.Duration, failures int, limit time.Duration) time.Duration {
	d := base
	for i := 1; i < failures && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

// jitter spreads d uniformly over [d/2, d], so banks that lost the gateway
// together do not hammer it together when it returns.
func jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2+1) //nolint:gosec // G404: retry jitter, not a secret
}

// sleep waits for d or until ctx ends, and reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
