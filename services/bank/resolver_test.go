package bank_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"connectrpc.com/connect"

	"github.com/remitpay/remit/internal/logging/logtest"
	"github.com/remitpay/remit/internal/store/storetest"
	"github.com/remitpay/remit/services/bank"
)

// fakeGateway is a Coordinator whose answers the test sets.
type fakeGateway struct {
	mu        sync.Mutex
	outcomes  map[string]bool // txID -> commit
	down      bool
	instance  string
	asked     []string // Outcome calls, in order
	registers int
}

var _ bank.Coordinator = (*fakeGateway)(nil)

var errGatewayDown = connect.NewError(connect.CodeUnavailable, errors.New("connection refused"))

func (g *fakeGateway) Outcome(_ context.Context, txID string) (bool, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.asked = append(g.asked, txID)
	if g.down {
		return false, errGatewayDown
	}
	commit, ok := g.outcomes[txID]
	if !ok {
		return false, connect.NewError(connect.CodePermissionDenied, errors.New("not a participant"))
	}
	return commit, nil
}

func (g *fakeGateway) Register(context.Context, string, string) (string, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.registers++
	if g.down {
		return "", errGatewayDown
	}
	return g.instance, nil
}

func (g *fakeGateway) set(f func(g *fakeGateway)) {
	g.mu.Lock()
	defer g.mu.Unlock()
	f(g)
}

func (g *fakeGateway) askedCount() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.asked)
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func wantState(t *testing.T, l *bank.Ledger, id string, want bank.State) {
	t.Helper()
	got, _, err := l.State(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("state of %s = %q, want %q", id, got, want)
	}
}

// TestResolver runs the resolver in a synctest bubble: time only moves when
// every goroutine waits, so expiry and backoff are exact and instant.
func TestResolver(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		// The ledger is opened inside the bubble so its clock (time.Now) is
		// the bubble's.
		l := openLedger(t, storetest.Target(t, t.TempDir(), "ledger"))
		ctx := t.Context()
		start := time.Now()
		commitMe, abortMe, notYet := newID(), newID(), newID()
		for _, p := range []struct {
			id     string
			expire time.Duration
		}{{commitMe, 10 * time.Second}, {abortMe, 10 * time.Second}, {notYet, time.Hour}} {
			v, err := l.Prepare(ctx, p.id, []bank.Leg{debit("alice", 10), credit("bob", 10)}, start.Add(p.expire))
			if err != nil || !v.Yes {
				t.Fatalf("prepare: %+v, %v", v, err)
			}
		}
		gw := &fakeGateway{outcomes: map[string]bool{commitMe: true, abortMe: false, notYet: true}}

		runCtx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			(&bank.Resolver{Ledger: l, Coordinator: gw, Interval: time.Second, Retention: 24 * time.Hour, Logger: discardLogger()}).Run(runCtx)
		}()

		// Before expiry nothing is asked and nothing moves.
		time.Sleep(9 * time.Second)
		synctest.Wait()
		if n := gw.askedCount(); n != 0 {
			t.Fatalf("asked the gateway %d times before any expiry", n)
		}
		wantBalances(t, l, "alice", balances{100, 30, 0})

		time.Sleep(2 * time.Second)
		synctest.Wait()
		wantState(t, l, commitMe, bank.StateCommitted)
		wantState(t, l, abortMe, bank.StateAborted)
		wantState(t, l, notYet, bank.StatePrepared)
		wantBalances(t, l, "alice", balances{90, 10, 0})
		wantBalances(t, l, "bob", balances{60, 0, 10})

		stop()
		<-done
	})
}

func TestResolverPrunes(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		l := openLedger(t, storetest.Target(t, t.TempDir(), "ledger"))
		ctx := t.Context()
		decided, prepared := newID(), newID()
		for _, id := range []string{decided, prepared} {
			if v, err := l.Prepare(ctx, id, []bank.Leg{debit("alice", 10)}, time.Now().Add(1000*time.Hour)); err != nil || !v.Yes {
				t.Fatalf("prepare: %+v, %v", v, err)
			}
		}
		mustCommit(t, l, decided, true, bank.StateCommitted)
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			(&bank.Resolver{Ledger: l, Coordinator: &fakeGateway{}, Interval: 10 * time.Minute, Retention: 24 * time.Hour, Logger: discardLogger()}).Run(runCtx)
		}()
		// Pruning runs once an hour, for records decided more than Retention ago.
		time.Sleep(24*time.Hour - time.Minute)
		synctest.Wait()
		wantState(t, l, decided, bank.StateCommitted)
		time.Sleep(bank.PruneInterval + 11*time.Minute)
		synctest.Wait()
		if _, ok, _ := l.State(ctx, decided); ok {
			t.Error("decided record kept after the retention period")
		}
		// Prepared records are never pruned.
		wantState(t, l, prepared, bank.StatePrepared)
		stop()
		<-done
	})
}

func TestResolverWaitsForTheGateway(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		l := openLedger(t, storetest.Target(t, t.TempDir(), "ledger"))
		ctx := t.Context()
		ids := []string{newID(), newID()}
		for _, id := range ids {
			if v, err := l.Prepare(ctx, id, []bank.Leg{debit("alice", 10)}, time.Now()); err != nil || !v.Yes {
				t.Fatalf("prepare: %+v, %v", v, err)
			}
		}
		gw := &fakeGateway{down: true, outcomes: map[string]bool{ids[0]: true, ids[1]: false}}
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			(&bank.Resolver{Ledger: l, Coordinator: gw, Interval: time.Second, Logger: discardLogger()}).Run(runCtx)
		}()

		// A YES is never aborted on the bank's own: however long the gateway
		// is away, the funds stay held.
		time.Sleep(10 * time.Minute)
		synctest.Wait()
		wantState(t, l, ids[0], bank.StatePrepared)
		wantState(t, l, ids[1], bank.StatePrepared)
		wantBalances(t, l, "alice", balances{100, 20, 0})
		// With backoff capped at a minute, ten minutes cost about 15
		// attempts, not 600; an unreachable gateway is asked about the first
		// transaction only.
		if n := gw.askedCount(); n < 10 || n > 20 {
			t.Errorf("asked %d times in 10 minutes of outage, want 10..20", n)
		}

		gw.set(func(g *fakeGateway) { g.down = false })
		time.Sleep(maxBackoffPlusInterval)
		synctest.Wait()
		wantState(t, l, ids[0], bank.StateCommitted)
		wantState(t, l, ids[1], bank.StateAborted)
		wantBalances(t, l, "alice", balances{90, 0, 0})
		stop()
		<-done
	})
}

// maxBackoffPlusInterval is the longest the resolver can take to notice the
// gateway is back.
const maxBackoffPlusInterval = bank.MaxResolveBackoff + time.Second

// TestResolverStuckTransactionDoesNotDelayOthers: a transaction the gateway
// refuses to answer about stays held (an operator must look), but the
// resolver does not back off for it, so a hold that expires later is still
// released at the next interval, not a minute later.
func TestResolverStuckTransactionDoesNotDelayOthers(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		l := openLedger(t, storetest.Target(t, t.TempDir(), "ledger"))
		ctx := t.Context()
		stuck, later := newID(), newID()
		if v, err := l.Prepare(ctx, stuck, []bank.Leg{debit("alice", 10)}, time.Now()); err != nil || !v.Yes {
			t.Fatalf("prepare: %+v, %v", v, err)
		}
		if v, err := l.Prepare(ctx, later, []bank.Leg{debit("alice", 10)}, time.Now().Add(5*time.Minute)); err != nil || !v.Yes {
			t.Fatalf("prepare: %+v, %v", v, err)
		}
		// The gateway knows "later" but refuses to answer about "stuck".
		gw := &fakeGateway{outcomes: map[string]bool{later: false}}
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			(&bank.Resolver{Ledger: l, Coordinator: gw, Interval: time.Second, Logger: discardLogger()}).Run(runCtx)
		}()
		time.Sleep(5*time.Minute + 2*time.Second)
		synctest.Wait()
		wantState(t, l, stuck, bank.StatePrepared)
		wantState(t, l, later, bank.StateAborted)
		stop()
		<-done
	})
}

// TestResolverLogsLedgerErrors: a resolver that cannot read its ledger says
// so at ERROR on every attempt, instead of quietly leaving funds held.
func TestResolverLogsLedgerErrors(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		l := openLedger(t, storetest.Target(t, t.TempDir(), "ledger"))
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		logs := &logtest.Buffer{}
		runCtx, stop := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() {
			defer close(done)
			(&bank.Resolver{Ledger: l, Coordinator: &fakeGateway{}, Interval: time.Second,
				Logger: logs.JSONLogger()}).Run(runCtx)
		}()
		synctest.Wait()
		for _, msg := range []string{"prune decided transactions", "list expired prepared transactions"} {
			if n := len(logs.WithMsg(t, msg)); n != 1 {
				t.Errorf("logged %q %d times on the first pass, want once", msg, n)
			}
		}
		if n := strings.Count(logs.String(), `"level":"ERROR"`); n != 2 {
			t.Errorf("%d ERROR lines, want 2:\n%s", n, logs)
		}
		// It keeps trying, with backoff, and keeps saying so.
		time.Sleep(3 * time.Second)
		synctest.Wait()
		if n := len(logs.WithMsg(t, "list expired prepared transactions")); n < 2 {
			t.Errorf("logged the ledger error %d times in 3s, want it on every attempt", n)
		}
		stop()
		<-done
	})
}

// TestLoggerRequired: a nil logger is a programming error, caught at once.
func TestLoggerRequired(t *testing.T) {
	t.Parallel()
	for name, f := range map[string]func(){
		"NewHTTPHandler": func() { bank.NewHTTPHandler(nil, nil) },
		"Resolver":       func() { (&bank.Resolver{}).Run(t.Context()) },
		"Registrar":      func() { (&bank.Registrar{}).Run(t.Context()) },
	} {
		func() {
			defer func() {
				if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "ogger") {
					t.Errorf("%s without a logger: recovered %v, want a panic naming the logger", name, r)
				}
			}()
			f()
		}()
	}
}

// TestFailoverAsksTheNextReplica: an outcome is asked of the replica that
// answered last, and of the next when that one fails; every replica down
// is an error (the funds stay held), never a guess.
func TestFailoverAsksTheNextReplica(t *testing.T) {
	one := &fakeGateway{outcomes: map[string]bool{"t1": true, "t2": false}}
	two := &fakeGateway{outcomes: map[string]bool{"t1": true, "t2": false}}
	f := bank.NewFailover(one, two)
	ctx := t.Context()
	if commit, err := f.Outcome(ctx, "t1"); err != nil || !commit {
		t.Fatalf("t1 = %v, %v", commit, err)
	}
	one.set(func(g *fakeGateway) { g.down = true })
	if commit, err := f.Outcome(ctx, "t2"); err != nil || commit {
		t.Fatalf("t2 with replica one down = %v, %v; want ABORT from replica two", commit, err)
	}
	one.set(func(g *fakeGateway) { g.down = false; g.asked = nil })
	if _, err := f.Outcome(ctx, "t1"); err != nil {
		t.Fatal(err)
	}
	if len(one.asked) != 0 {
		t.Errorf("replica one was asked %v after replica two took over; want the one that answered last asked first", one.asked)
	}
	one.set(func(g *fakeGateway) { g.down = true })
	two.set(func(g *fakeGateway) { g.down = true })
	if _, err := f.Outcome(ctx, "t1"); err == nil {
		t.Error("an outcome with every replica down was answered")
	}
}
