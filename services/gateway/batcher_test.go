package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/timestamppb"

	bankv1 "github.com/remitpay/remit/gen/remit/bank/v1"
	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
	"github.com/remitpay/remit/internal/pki"
	"github.com/remitpay/remit/internal/rpcerr"
	"github.com/remitpay/remit/internal/serve"
	"github.com/remitpay/remit/services/bank"
)

// gate stands in front of a real bank handler: it counts the calls per
// procedure, can hold them until the test lets them through (so that the
// batcher's senders are all busy and the next batch forms), and can answer
// the batch procedures 404, as the mux of a bank that predates them does.
type gate struct {
	next    http.Handler
	old     bool        // a bank without the batch RPCs
	entered chan string // the procedure of each call that arrives while shut

	mu    sync.Mutex
	hold  chan struct{} // nil: let calls through
	calls map[string]int
}

func (g *gate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	proc := path.Base(r.URL.Path)
	g.mu.Lock()
	g.calls[proc]++
	hold := g.hold
	g.mu.Unlock()
	if g.old && (proc == "PrepareTransactions" || proc == "CommitTransactions") {
		http.NotFound(w, r)
		return
	}
	if hold != nil {
		g.entered <- proc
		select {
		case <-hold:
		case <-r.Context().Done():
		}
	}
	g.next.ServeHTTP(w, r)
}

// shut holds the calls that arrive from now on until the returned function
// is called.
func (g *gate) shut() (open func()) {
	hold := make(chan struct{})
	g.mu.Lock()
	g.hold = hold
	g.mu.Unlock()
	return sync.OnceFunc(func() {
		g.mu.Lock()
		if g.hold == hold {
			g.hold = nil
		}
		g.mu.Unlock()
		close(hold)
	})
}

func (g *gate) open() {
	g.mu.Lock()
	g.hold = nil
	g.mu.Unlock()
}

func (g *gate) count(proc string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.calls[proc]
}

func (g *gate) waitEntered(t *testing.T, n int) {
	t.Helper()
	for range n {
		select {
		case <-g.entered:
		case <-time.After(20 * time.Second):
			t.Fatal("calls did not reach the bank")
		}
	}
}

type testBank struct {
	gate   *gate
	ledger *bank.Ledger
	client *connectBank // batched, as the gateway uses it
	unary  *connectBank // unary RPCs only: what each item must equal
}

// startTestBank serves a real bank (ledger on disk, mutual TLS, HTTP/2)
// behind a gate, with alice (100 usd) and bob (50 usd).
func startTestBank(tb testing.TB, old bool) *testBank {
	tb.Helper()
	return startTestBankIn(tb, old, tb.TempDir())
}

func startTestBankIn(tb testing.TB, old bool, dir string) *testBank {
	tb.Helper()
	layout, err := pki.Generate(filepath.Join(dir, "pki"), pki.Options{Banks: []string{"bank-a"}})
	if err != nil {
		tb.Fatal(err)
	}
	l, err := bank.OpenLedger(tb.Context(), filepath.Join(dir, "ledger.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := l.Close(); err != nil {
			tb.Error(err)
		}
	})
	for _, s := range []bank.AccountSeed{{ID: "alice", Owner: "alice", Currency: "usd", Opening: 100}, {ID: "bob", Owner: "bob", Currency: "usd", Opening: 50}} {
		if _, err := l.EnsureAccount(tb.Context(), s); err != nil {
			tb.Fatal(err)
		}
	}
	g := &gate{next: bank.NewHTTPHandler(l, slog.New(slog.DiscardHandler)), old: old, entered: make(chan string, 1024), calls: map[string]int{}}
	cert, key := layout.Server("bank-a")
	srvTLS, err := pki.ServerConfig(cert, key, layout.CA, tls.RequireAndVerifyClientCert)
	if err != nil {
		tb.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(g)
	srv.EnableHTTP2 = true
	srv.TLS = srvTLS
	srv.StartTLS()
	tb.Cleanup(srv.Close)
	gcert, gkey := layout.Client(pki.GatewayName)
	clientTLS, err := pki.ClientConfig(layout.CA, gcert, gkey)
	if err != nil {
		tb.Fatal(err)
	}
	httpClient := serve.NewHTTP2Client(pki.RequirePeer(clientTLS, pki.BankIdentity("bank-a")))
	tb.Cleanup(httpClient.CloseIdleConnections)
	b := &testBank{gate: g, ledger: l, client: newConnectBank(httpClient, srv.URL), unary: newConnectBank(httpClient, srv.URL)}
	b.unary.prepares.unaryUntil.Store(math.MaxInt64)
	b.unary.commits.unaryUntil.Store(math.MaxInt64)
	tb.Cleanup(func() { b.waitIdle(tb) })
	return b
}

// waitQueue waits until n calls are queued in bt.
func waitQueue[Req, Res any](t *testing.T, bt *batcher[Req, Res], n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		bt.mu.Lock()
		got := len(bt.queue)
		bt.mu.Unlock()
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d calls queued, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitIdle checks that the batchers leave no sender behind once every call
// is answered.
func (b *testBank) waitIdle(tb testing.TB) {
	tb.Helper()
	b.gate.open()
	deadline := time.Now().Add(20 * time.Second)
	for {
		b.client.prepares.mu.Lock()
		busy := b.client.prepares.senders + len(b.client.prepares.queue)
		b.client.prepares.mu.Unlock()
		b.client.commits.mu.Lock()
		busy += b.client.commits.senders + len(b.client.commits.queue)
		b.client.commits.mu.Unlock()
		if busy == 0 {
			return
		}
		if time.Now().After(deadline) {
			tb.Errorf("batchers still busy: %d senders and queued calls", busy)
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// occupy starts maxInFlight prepares (or commits) that the shut gate
// holds, so that every sender is busy and the next calls queue up into one
// batch. Each starts once the one before is at the bank, so each goes alone
// (unary) on a sender of its own. It returns a wait for their answers.
func (b *testBank) occupy(t *testing.T, commits bool) (wait func()) {
	t.Helper()
	var wg sync.WaitGroup
	for range maxInFlight {
		wg.Go(func() {
			var err error
			if commits {
				err = b.client.Commit(t.Context(), uuid.NewString(), false)
			} else {
				_, err = b.client.Prepare(t.Context(), uuid.NewString(), []Leg{{AccountID: "bob", Amount: 1, Currency: "usd"}}, time.Now().Add(time.Minute))
			}
			if err != nil {
				t.Errorf("filler: %v", err)
			}
		})
		b.gate.waitEntered(t, 1)
	}
	return wg.Wait
}

type prepareCase struct {
	id   string
	legs []Leg
	vote Vote
	code connect.Code // of the error; 0 for a vote
}

type outcome struct {
	vote Vote
	err  error
}

// sameError reports how got differs from the unary call's error want: code,
// ErrorInfo reason, message, refusal.
func sameError(got, want error) string {
	type shape struct {
		Code            connect.Code
		Reason, Message string
		Refusal         *RefusalError
	}
	of := func(err error) shape {
		if err == nil {
			return shape{}
		}
		s := shape{Code: connect.CodeOf(err), Reason: rpcerr.Reason(err)}
		if cerr, ok := errors.AsType[*connect.Error](err); ok {
			s.Message = cerr.Message()
		}
		if ref, ok := errors.AsType[*RefusalError](err); ok {
			s.Refusal = ref
		}
		return s
	}
	return cmp.Diff(of(want), of(got))
}

func prepareCases() []prepareCase {
	expire := []Leg{{AccountID: "alice", Debit: true, Amount: 10, Currency: "usd"}, {AccountID: "bob", Amount: 10, Currency: "usd"}}
	return []prepareCase{
		{id: uuid.NewString(), legs: expire, vote: Vote{Yes: true}},
		{id: uuid.NewString(), legs: []Leg{{AccountID: "alice", Debit: true, Amount: 1000, Currency: "usd"}},
			vote: Vote{Reason: gatewayv1.FailureReason_FAILURE_REASON_INSUFFICIENT_FUNDS, AccountID: "alice"}},
		{id: "not-a-uuid", legs: []Leg{{AccountID: "alice", Debit: true, Amount: 1, Currency: "usd"}}, code: connect.CodeInvalidArgument},
		{id: uuid.NewString(), legs: []Leg{{AccountID: "alice", Debit: true, Amount: 1, Currency: "usd"}, {AccountID: "alice", Debit: true, Amount: 2, Currency: "usd"}},
			code: connect.CodeInvalidArgument},
	}
}

// batchPrepares sends cases as one batch (the senders being busy) and
// returns each caller's answer.
func batchPrepares(t *testing.T, b *testBank, cases []prepareCase) []outcome {
	t.Helper()
	open := b.gate.shut()
	fillers := b.occupy(t, false)
	got := make([]outcome, len(cases))
	var wg sync.WaitGroup
	for i, c := range cases {
		wg.Go(func() {
			got[i].vote, got[i].err = b.client.Prepare(t.Context(), c.id, c.legs, time.Now().Add(time.Minute))
		})
	}
	waitQueue(t, b.client.prepares, len(cases))
	open()
	wg.Wait()
	fillers()
	return got
}

func checkPrepares(t *testing.T, b *testBank, cases []prepareCase, got []outcome) {
	t.Helper()
	for i, c := range cases {
		if c.code != 0 {
			if connect.CodeOf(got[i].err) != c.code {
				t.Errorf("item %d: err = %v, want code %v", i, got[i].err, c.code)
			}
		} else if got[i].err != nil || got[i].vote != c.vote {
			t.Errorf("item %d: %+v, %v; want %+v", i, got[i].vote, got[i].err, c.vote)
		}
		// Prepares repeat with the same answer: the unary call must give
		// exactly what the batch item gave.
		vote, err := b.unary.Prepare(t.Context(), c.id, c.legs, time.Now().Add(time.Minute))
		if vote != got[i].vote {
			t.Errorf("item %d: batch vote %+v, unary %+v", i, got[i].vote, vote)
		}
		if diff := sameError(got[i].err, err); diff != "" {
			t.Errorf("item %d: error (-unary +batch):\n%s", i, diff)
		}
	}
}

type commitCase struct {
	id      string
	commit  bool
	refusal string // BankReason of the *RefusalError; "" for success
}

func batchCommits(t *testing.T, b *testBank, cases []commitCase) []error {
	t.Helper()
	open := b.gate.shut()
	fillers := b.occupy(t, true)
	got := make([]error, len(cases))
	var wg sync.WaitGroup
	for i, c := range cases {
		wg.Go(func() { got[i] = b.client.Commit(t.Context(), c.id, c.commit) })
	}
	waitQueue(t, b.client.commits, len(cases))
	open()
	wg.Wait()
	fillers()
	return got
}

func checkCommits(t *testing.T, b *testBank, cases []commitCase, got []error) {
	t.Helper()
	for i, c := range cases {
		ref, _ := errors.AsType[*RefusalError](got[i])
		switch {
		case c.refusal == "" && got[i] != nil:
			t.Errorf("commit %d: %v", i, got[i])
		case c.refusal != "" && (ref == nil || ref.BankReason != c.refusal):
			t.Errorf("commit %d: %v, want refusal %s", i, got[i], c.refusal)
		}
		if diff := sameError(got[i], b.unary.Commit(t.Context(), c.id, c.commit)); diff != "" {
			t.Errorf("commit %d: error (-unary +batch):\n%s", i, diff)
		}
	}
}

// One batch mixing a YES, a NO (insufficient funds), an invalid request
// and a request the ledger rejects gives each caller its own answer, the one
// its unary call gives; so does a batch of commits with a refusal in it.
func TestBatchedPrepareAndCommit(t *testing.T) {
	t.Parallel()
	b := startTestBank(t, false)
	cases := prepareCases()
	checkPrepares(t, b, cases, batchPrepares(t, b, cases))
	if n := b.gate.count("PrepareTransactions"); n != 1 {
		t.Errorf("%d PrepareTransactions calls, want the %d items in 1", n, len(cases))
	}
	commits := []commitCase{
		{id: cases[0].id, commit: true},
		{id: uuid.NewString(), commit: true, refusal: "CANNOT_COMMIT"},
		{id: cases[1].id},
	}
	checkCommits(t, b, commits, batchCommits(t, b, commits))
	if n := b.gate.count("CommitTransactions"); n != 1 {
		t.Errorf("%d CommitTransactions calls, want 1", n)
	}
	a, err := b.ledger.Balance(t.Context(), "alice")
	if err != nil || a.Balance != 90 || a.Held != 0 {
		t.Errorf("alice = %+v, %v; want 90, nothing held", a, err)
	}
}

// A bank without the batch RPCs answers the batch unimplemented; its items
// then go as unary calls, with the same answers, and later calls go unary
// at once.
func TestBatchedFallbackToUnary(t *testing.T) {
	t.Parallel()
	b := startTestBank(t, true)
	cases := prepareCases()
	checkPrepares(t, b, cases, batchPrepares(t, b, cases))
	if n := b.gate.count("PrepareTransactions"); n != 1 {
		t.Errorf("%d PrepareTransactions attempts, want 1", n)
	}
	// Fillers, the fallback's unary calls and checkPrepares' own.
	if n, want := b.gate.count("PrepareTransaction"), maxInFlight+2*len(cases); n != want {
		t.Errorf("%d PrepareTransaction calls, want %d", n, want)
	}
	commits := []commitCase{
		{id: cases[0].id, commit: true},
		{id: uuid.NewString(), commit: true, refusal: "CANNOT_COMMIT"},
	}
	checkCommits(t, b, commits, batchCommits(t, b, commits))
	// Each batcher learned it on its own, and now skips the batch RPC.
	for _, until := range []int64{b.client.prepares.unaryUntil.Load(), b.client.commits.unaryUntil.Load()} {
		if !time.Now().Before(time.Unix(0, until)) {
			t.Error("a batcher still tries the batch RPC")
		}
	}
	if n := b.gate.count("CommitTransactions"); n != 1 {
		t.Errorf("%d CommitTransactions attempts, want 1", n)
	}
	a, err := b.ledger.Balance(t.Context(), "alice")
	if err != nil || a.Balance != 90 || a.Held != 0 {
		t.Errorf("alice = %+v, %v; want 90, nothing held", a, err)
	}
}

// A caller whose ctx ends stops waiting and gets ctx.Err(), whether its item
// is still queued (it is then never sent) or in flight (the bank may still
// apply it, as a unary call that timed out); the others get their answers.
func TestBatchedCallerGivesUp(t *testing.T) {
	t.Parallel()
	b := startTestBank(t, false)
	expire := time.Now().Add(time.Minute)
	leg := []Leg{{AccountID: "alice", Debit: true, Amount: 1, Currency: "usd"}}
	prepare := func(ctx context.Context, id string) chan outcome {
		ch := make(chan outcome, 1)
		go func() {
			v, err := b.client.Prepare(ctx, id, leg, expire)
			ch <- outcome{v, err}
		}()
		return ch
	}
	wantCanceled := func(ch chan outcome) {
		t.Helper()
		if o := <-ch; !errors.Is(o.err, context.Canceled) {
			t.Errorf("a caller that gave up got %+v, %v; want context.Canceled", o.vote, o.err)
		}
	}
	wantYes := func(ch chan outcome) {
		t.Helper()
		if o := <-ch; o.err != nil || !o.vote.Yes {
			t.Errorf("got %+v, %v; want YES", o.vote, o.err)
		}
	}

	// Queued.
	open := b.gate.shut()
	fillers := b.occupy(t, false)
	ctx, cancel := context.WithCancel(t.Context())
	quitter, stayer := uuid.NewString(), uuid.NewString()
	q := prepare(ctx, quitter)
	waitQueue(t, b.client.prepares, 1)
	s := prepare(t.Context(), stayer)
	waitQueue(t, b.client.prepares, 2)
	cancel()
	wantCanceled(q)
	open()
	wantYes(s)
	fillers()
	if _, ok, err := b.ledger.State(t.Context(), quitter); ok || err != nil {
		t.Errorf("the item of a caller that gave up while queued was sent (%v)", err)
	}

	// In flight, in a batch of two.
	first := b.gate.shut()
	fillers = b.occupy(t, false)
	ctx, cancel = context.WithCancel(t.Context())
	quitter, stayer = uuid.NewString(), uuid.NewString()
	q = prepare(ctx, quitter)
	waitQueue(t, b.client.prepares, 1)
	s = prepare(t.Context(), stayer)
	waitQueue(t, b.client.prepares, 2)
	second := b.gate.shut()
	first() // the fillers end; the batch of two reaches the gate
	b.gate.waitEntered(t, 1)
	cancel()
	wantCanceled(q)
	second()
	wantYes(s)
	fillers()
	if n := b.gate.count("PrepareTransactions"); n != 1 {
		t.Errorf("%d PrepareTransactions calls, want 1", n)
	}
	// The bank got the item and prepared it: the coordinator's timeout
	// path (abort, or the bank's resolver) releases it.
	if st, ok, err := b.ledger.State(t.Context(), quitter); !ok || err != nil || st != bank.StatePrepared {
		t.Errorf("in-flight item of a caller that gave up: %q, %v, %v; want prepared", st, ok, err)
	}
}

// BenchmarkBankClient is 16 callers preparing and aborting through one
// connectBank, batched and unary-only, against a real bank over mutual TLS
// whose ledger is on tmpfs (when there is one), so that the per-call cost
// batching saves is not hidden behind fsync latency.
func BenchmarkBankClient(b *testing.B) {
	dir := b.TempDir()
	if shm, err := os.MkdirTemp("/dev/shm", "remit-bench-"); err == nil { //nolint:usetesting // b.TempDir cannot be placed on /dev/shm
		dir = shm
		b.Cleanup(func() { _ = os.RemoveAll(shm) })
	}
	for _, mode := range []string{"unary", "batched"} {
		b.Run(mode, func(b *testing.B) {
			bank := startTestBankIn(b, false, filepath.Join(dir, mode))
			if mode == "unary" {
				bank.client = bank.unary
			}
			legs := []Leg{{AccountID: "bob", Amount: 1, Currency: "usd"}}
			b.SetParallelism(8)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				ctx := context.Background()
				for pb.Next() {
					id := uuid.NewString()
					if _, err := bank.client.Prepare(ctx, id, legs, time.Now().Add(time.Minute)); err != nil {
						b.Error(err)
						return
					}
					if err := bank.client.Commit(ctx, id, false); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(bank.gate.count("PrepareTransaction")+bank.gate.count("PrepareTransactions"))/float64(b.N), "prepare-calls/op")
		})
	}
}

// BenchmarkBankClientIdle is one caller at a time (an idle gateway): the
// unary RPCs, which a batch of one uses, against the batch RPCs with one
// item, which it could use instead.
func BenchmarkBankClientIdle(b *testing.B) {
	dir := b.TempDir()
	if shm, err := os.MkdirTemp("/dev/shm", "remit-bench-"); err == nil { //nolint:usetesting // b.TempDir cannot be placed on /dev/shm
		dir = shm
		b.Cleanup(func() { _ = os.RemoveAll(shm) })
	}
	for _, mode := range []string{"unary", "batch-of-one"} {
		b.Run(mode, func(b *testing.B) {
			c := startTestBankIn(b, false, filepath.Join(dir, mode)).client.c
			ctx := context.Background()
			leg := []*bankv1.Leg{{AccountId: "bob", Direction: bankv1.Direction_DIRECTION_CREDIT, Amount: 1, Currency: "usd"}}
			b.ReportAllocs()
			for b.Loop() {
				prep := &bankv1.PrepareTransactionRequest{TransactionId: uuid.NewString(), Legs: leg, ExpireTime: timestamppb.New(time.Now().Add(time.Minute))}
				abort := &bankv1.CommitTransactionRequest{TransactionId: prep.GetTransactionId(), Decision: bankv1.Decision_DECISION_ABORT}
				var err error
				if mode == "unary" {
					if _, err = c.PrepareTransaction(ctx, prep); err == nil {
						_, err = c.CommitTransaction(ctx, abort)
					}
				} else {
					if _, err = c.PrepareTransactions(ctx, &bankv1.PrepareTransactionsRequest{Items: []*bankv1.PrepareTransactionRequest{prep}}); err == nil {
						_, err = c.CommitTransactions(ctx, &bankv1.CommitTransactionsRequest{Items: []*bankv1.CommitTransactionRequest{abort}})
					}
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
