package outbox_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/remitpay/remit/client"
	"github.com/remitpay/remit/client/clienttest"
	"github.com/remitpay/remit/client/outbox"
	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
	"github.com/remitpay/remit/internal/rpcerr"
)

const initial = clienttest.InitialBalance

var bob = clienttest.Bob

// env is a fake gateway, a client of it logged in as alice (no retries),
// and a state directory.
type env struct {
	g   *clienttest.Gateway
	c   *client.Client
	dir string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	g := clienttest.New(t)
	cfg := g.Config()
	cfg.Token = g.Token("alice")
	cfg.Retry = &client.RetryPolicy{MaxAttempts: 1}
	c, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &env{g: g, c: c, dir: t.TempDir()}
}

// open opens a handle on the env's outbox scoped to alice at the gateway.
func (e *env) open(t *testing.T, opts outbox.Options) *outbox.Outbox {
	t.Helper()
	if opts.ClientID == "" {
		opts.ClientID, opts.GatewayURL = "alice", e.g.URL
	}
	o, err := outbox.Open(t.Context(), e.dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := o.Close(); err != nil { // Close is idempotent: a test may close first
			t.Error(err)
		}
	})
	return o
}

func payment(amount int64) client.PaymentRequest {
	return client.PaymentRequest{Payee: bob, Amount: amount, Currency: "usd", Description: "offline"}
}

func enqueue(t *testing.T, o *outbox.Outbox, amounts ...int64) []string {
	t.Helper()
	var ids []string
	for _, a := range amounts {
		id, err := o.Enqueue(t.Context(), payment(a))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

func queuedIDs(t *testing.T, o *outbox.Outbox) []string {
	t.Helper()
	items, err := o.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, it := range items {
		ids = append(ids, it.TransactionID)
	}
	return ids
}

func historyByID(t *testing.T, o *outbox.Outbox) map[string]outbox.Outcome {
	t.Helper()
	outs, err := o.History(t.Context(), 0)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]outbox.Outcome{}
	for _, out := range outs {
		m[out.TransactionID] = out
	}
	return m
}

func TestEnqueueSurvivesReopen(t *testing.T) {
	e := newEnv(t)
	o, err := outbox.Open(t.Context(), e.dir, outbox.Options{ClientID: "alice", GatewayURL: e.g.URL})
	if err != nil {
		t.Fatal(err)
	}
	ids := enqueue(t, o, 100, 200)
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}

	o = e.open(t, outbox.Options{})
	items, err := o.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 2 || items[0].TransactionID != ids[0] || items[1].TransactionID != ids[1] {
		t.Fatalf("after reopen List() = %+v, want %v in order", items, ids)
	}
	it := items[1]
	if it.Payee != bob || it.Amount != 200 || it.Currency != "usd" || it.Description != "offline" ||
		it.Attempts != 0 || it.LastError != "" || !it.LastAttempt.IsZero() || it.Created.IsZero() || it.Age < 0 {
		t.Errorf("item = %+v", it)
	}
	if len(e.g.Calls()) != 0 {
		t.Error("Enqueue sent something")
	}
}

func TestEnqueueIsIdempotentByTransactionID(t *testing.T) {
	e := newEnv(t)
	o := e.open(t, outbox.Options{})
	req := payment(100)
	req.TransactionID = client.NewTransactionID()
	for range 2 {
		if id, err := o.Enqueue(t.Context(), req); err != nil || id != req.TransactionID {
			t.Fatalf("Enqueue = %q, %v", id, err)
		}
	}
	if n := len(queuedIDs(t, o)); n != 1 {
		t.Errorf("%d queued, want 1", n)
	}
	req.Amount = 101
	if _, err := o.Enqueue(t.Context(), req); !errors.Is(err, outbox.ErrTransactionIDReused) {
		t.Errorf("Enqueue(same id, other amount) = %v, want ErrTransactionIDReused", err)
	}
	if _, err := o.Enqueue(t.Context(), payment(0)); !errors.Is(err, client.ErrInvalidRequest) {
		t.Errorf("Enqueue(invalid) = %v, want ErrInvalidRequest", err)
	}
}

func TestFlushKeepsOrderAndStopsAtFirstRetryableFailure(t *testing.T) {
	e := newEnv(t)
	o := e.open(t, outbox.Options{})
	ids := enqueue(t, o, 1, 2, 3)

	e.g.SetDown(true)
	rep, err := o.Flush(t.Context(), e.c)
	var qe *outbox.QueuedError
	if !errors.As(err, &qe) || qe.TransactionID != ids[0] || !client.IsRetryable(err) {
		t.Fatalf("Flush while down = %v, want a QueuedError for the oldest payment", err)
	}
	if rep.Remaining != 3 || len(rep.Outcomes) != 0 {
		t.Errorf("report %+v, want 3 remaining and no outcomes", rep)
	}
	items, _ := o.List(t.Context())
	if items[0].Attempts != 1 || items[0].LastError == "" || items[0].LastAttempt.IsZero() || items[1].Attempts != 0 || items[2].Attempts != 0 {
		t.Errorf("after a failed flush: %+v; want only the oldest tried, with its error", items)
	}

	e.g.SetDown(false)
	rep, err = o.Flush(t.Context(), e.c)
	if err != nil || rep.Remaining != 0 || len(rep.Outcomes) != 3 {
		t.Fatalf("Flush = %+v, %v", rep, err)
	}
	for i, out := range rep.Outcomes {
		if out.TransactionID != ids[i] || out.Status != outbox.StatusSucceeded || out.Payment.GetAmount() != int64(i+1) {
			t.Errorf("outcome %d = %+v, want %s succeeded", i, out, ids[i])
		}
	}
	if got := e.g.PayCalls(); !slices.Equal(got, ids) {
		t.Errorf("gateway saw %v, want %v (the oldest payment's failed try got no answer)", got, ids)
	}
	if n := len(queuedIDs(t, o)); n != 0 {
		t.Errorf("%d still queued", n)
	}
}

func TestRetryableAnswerKeepsPaymentQueued(t *testing.T) {
	e := newEnv(t)
	o := e.open(t, outbox.Options{})
	ids := enqueue(t, o, 50, 60)
	e.g.SetHooks(clienttest.Hooks{Before: func(call int, txID string) error {
		if txID == ids[0] && call == 1 {
			return rpcerr.New(connect.CodeUnavailable, "BANK_UNAVAILABLE", "a bank involved is unavailable", nil)
		}
		return nil
	}})
	rep, err := o.Flush(t.Context(), e.c)
	if !client.IsRetryable(err) || rep.Remaining != 2 {
		t.Fatalf("Flush = %+v, %v; want both still queued after a retryable answer", rep, err)
	}
	items, _ := o.List(t.Context())
	if !strings.Contains(items[0].LastError, "BANK_UNAVAILABLE") || items[0].Attempts != 1 {
		t.Errorf("item %+v, want attempts 1 and the BANK_UNAVAILABLE error", items[0])
	}
	if h := historyByID(t, o); len(h) != 0 {
		t.Errorf("history %v, want empty", h)
	}
	if got := e.g.PayCalls(); !slices.Equal(got, ids[:1]) {
		t.Errorf("gateway saw %v; the younger payment must not overtake the older", got)
	}
	if _, err := o.Flush(t.Context(), e.c); err != nil {
		t.Fatal(err)
	}
	if got := e.g.Balance(bob); got != initial+110 {
		t.Errorf("payee balance %d, want %d", got, initial+110)
	}
}

func TestGatewayInternalErrorKeepsPaymentQueued(t *testing.T) {
	e := newEnv(t)
	o := e.open(t, outbox.Options{})
	ids := enqueue(t, o, 5)
	e.g.SetHooks(clienttest.Hooks{After: func(call int, _ string) error {
		if call == 1 {
			return rpcerr.Internal(errors.New("disk I/O error")) // after the payment was applied
		}
		return nil
	}})
	_, err := o.Flush(t.Context(), e.c)
	if connect.CodeOf(err) != connect.CodeInternal || client.IsRetryable(err) {
		t.Fatalf("Flush = %v, want the (final for one call) internal error", err)
	}
	if got := queuedIDs(t, o); !slices.Equal(got, ids) {
		t.Fatalf("queued %v, want %v: an internal error says nothing certain about the payment", got, ids)
	}
	rep, err := o.Flush(t.Context(), e.c)
	if err != nil || len(rep.Outcomes) != 1 || rep.Outcomes[0].Status != outbox.StatusSucceeded {
		t.Fatalf("second Flush = %+v, %v; want the stored success", rep, err)
	}
	if got := e.g.Balance(bob); got != initial+5 {
		t.Errorf("payee balance %d, want %d", got, initial+5)
	}
}

func TestUnauthenticatedKeepsPaymentQueued(t *testing.T) {
	e := newEnv(t)
	o := e.open(t, outbox.Options{})
	ids := enqueue(t, o, 5)
	e.g.RevokeTokens()
	_, err := o.Flush(t.Context(), e.c)
	if connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Fatalf("Flush = %v, want unauthenticated", err)
	}
	if got := queuedIDs(t, o); !slices.Equal(got, ids) {
		t.Errorf("queued %v, want %v: a rejected token says nothing about the payment", got, ids)
	}
	e.c.SetToken(e.g.Token("alice")) // logged in again
	if _, err := o.Flush(t.Context(), e.c); err != nil {
		t.Fatal(err)
	}
}

func TestFinalOutcomesMoveToHistoryAtomically(t *testing.T) {
	e := newEnv(t)
	var o *outbox.Outbox
	checked := 0
	o = e.open(t, outbox.Options{OnOutcome: func(out outbox.Outcome) {
		// Called after the commit: the payment is in exactly one place.
		checked++
		if slices.Contains(queuedIDs(t, o), out.TransactionID) {
			t.Errorf("%s is in history and still queued", out.TransactionID)
		}
		if _, ok := historyByID(t, o)[out.TransactionID]; !ok {
			t.Errorf("%s left the queue without a history entry", out.TransactionID)
		}
	}})
	ids := enqueue(t, o, initial+1, 70) // a decline, then a success
	rep, err := o.Flush(t.Context(), e.c)
	if err != nil || len(rep.Outcomes) != 2 || checked != 2 {
		t.Fatalf("Flush = %+v, %v (OnOutcome called %d times)", rep, err, checked)
	}
	h := historyByID(t, o)
	declined := h[ids[0]]
	if declined.Status != outbox.StatusFailed || declined.Code != "failed_precondition" || declined.Reason != "INSUFFICIENT_FUNDS" ||
		declined.Payment != nil || declined.Amount != initial+1 || declined.Attempts != 1 || !client.IsDeclined(declined.Err()) {
		t.Errorf("declined outcome %+v", declined)
	}
	var ce *client.Error
	if !errors.As(declined.Err(), &ce) || ce.TransactionID != ids[0] {
		t.Errorf("declined Err() = %v, want a *client.Error for %s", declined.Err(), ids[0])
	}
	ok := h[ids[1]]
	if ok.Status != outbox.StatusSucceeded || ok.Payment.GetTransactionId() != ids[1] ||
		ok.Payment.GetStatus() != gatewayv1.PaymentStatus_PAYMENT_STATUS_SUCCEEDED || ok.Err() != nil || ok.Completed.Before(ok.Created) {
		t.Errorf("succeeded outcome %+v", ok)
	}
	// History is most recent first and honours the limit.
	last, err := o.History(t.Context(), 1)
	if err != nil || len(last) != 1 || last[0].TransactionID != ids[1] {
		t.Errorf("History(1) = %v, %v; want the success", last, err)
	}
}

func TestSendOneQueuedPayment(t *testing.T) {
	e := newEnv(t)
	o := e.open(t, outbox.Options{})
	ids := enqueue(t, o, 1, 2)
	p, err := o.Send(t.Context(), e.c, ids[1])
	if err != nil || p.GetTransactionId() != ids[1] {
		t.Fatalf("Send = %v, %v", p, err)
	}
	if got := queuedIDs(t, o); !slices.Equal(got, ids[:1]) {
		t.Errorf("queued %v, want %v", got, ids[:1])
	}
	if _, err := o.Send(t.Context(), e.c, ids[1]); !errors.Is(err, outbox.ErrNotQueued) {
		t.Errorf("Send(sent) = %v, want ErrNotQueued", err)
	}
}

func TestConcurrentFlushersNeverSendTwice(t *testing.T) {
	e := newEnv(t)
	a := e.open(t, outbox.Options{})
	b := e.open(t, outbox.Options{}) // a second handle, as a second process has
	ids := enqueue(t, a, 1, 2, 3)

	// While a is sending, b is refused.
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	e.g.SetHooks(clienttest.Hooks{Before: func(int, string) error {
		once.Do(func() { close(entered); <-release })
		return nil
	}})
	done := make(chan error)
	go func() {
		_, err := a.Flush(context.Background(), e.c)
		done <- err
	}()
	<-entered
	if _, err := b.Flush(t.Context(), e.c); !errors.Is(err, outbox.ErrBusy) {
		t.Errorf("second Flush = %v, want ErrBusy", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	// Flushers that wait for each other, racing over a new batch.
	more := enqueue(t, a, 4, 5, 6, 7, 8)
	var wg sync.WaitGroup
	for _, o := range []*outbox.Outbox{e.open(t, outbox.Options{Wait: true}), e.open(t, outbox.Options{Wait: true}), a} {
		wg.Go(func() {
			if _, err := o.Flush(t.Context(), e.c); err != nil && !errors.Is(err, outbox.ErrBusy) {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if got, want := e.g.PayCalls(), slices.Concat(ids, more); !slices.Equal(got, want) {
		t.Errorf("gateway saw %v, want each of %v exactly once, in order", got, want)
	}
	if got := e.g.Balance(bob); got != initial+36 {
		t.Errorf("payee balance %d, want %d", got, initial+36)
	}
}

// crashingGateway sends the payment and then "dies" before the outbox can
// record the answer, as kill -9 after the request left would.
type crashingGateway struct{ outbox.Gateway }

type crash struct{}

func (g crashingGateway) Pay(ctx context.Context, req client.PaymentRequest) (*gatewayv1.Payment, error) {
	if _, err := g.Gateway.Pay(ctx, req); err != nil {
		return nil, err
	}
	panic(crash{})
}

func TestCrashBetweenSendAndRecordIsExactlyOnce(t *testing.T) {
	e := newEnv(t)
	o := e.open(t, outbox.Options{})
	ids := enqueue(t, o, 400)
	func() {
		defer func() {
			if r := recover(); r != (crash{}) {
				t.Fatalf("recovered %v, want the simulated crash", r)
			}
		}()
		_, _ = o.Flush(t.Context(), crashingGateway{e.c})
	}()
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	if got := e.g.Balance(bob); got != initial+400 {
		t.Fatalf("payee balance %d, want %d after the first send", got, initial+400)
	}

	// The next process finds it still queued and sends it again.
	o = e.open(t, outbox.Options{})
	if got := queuedIDs(t, o); !slices.Equal(got, ids) {
		t.Fatalf("queued after the crash %v, want %v", got, ids)
	}
	rep, err := o.Flush(t.Context(), e.c)
	if err != nil || len(rep.Outcomes) != 1 || rep.Outcomes[0].Status != outbox.StatusSucceeded || rep.Outcomes[0].Attempts != 2 {
		t.Fatalf("Flush after the crash = %+v, %v; want the stored success after 2 attempts", rep, err)
	}
	if got := e.g.PayCalls(); !slices.Equal(got, []string{ids[0], ids[0]}) {
		t.Errorf("gateway saw %v, want %s twice", got, ids[0])
	}
	if got := e.g.Balance(bob); got != initial+400 {
		t.Errorf("payee balance %d, want %d: the resend must not move money again", got, initial+400)
	}
	if got := e.g.Balance(clienttest.Alice); got != initial-400 {
		t.Errorf("payer balance %d, want %d", got, initial-400)
	}
}

func TestPayFlushesOlderPaymentsFirst(t *testing.T) {
	e := newEnv(t)
	var older []outbox.Outcome
	o := e.open(t, outbox.Options{OnOutcome: func(out outbox.Outcome) { older = append(older, out) }})

	// Offline: the payment is queued, and the caller learns its id.
	e.g.SetDown(true)
	p, queued, err := o.Pay(t.Context(), e.c, payment(11))
	var qe *outbox.QueuedError
	if p != nil || !queued || !errors.As(err, &qe) || qe.TransactionID == "" {
		t.Fatalf("Pay while down = %v, %v, %v; want queued with an id", p, queued, err)
	}
	first := qe.TransactionID
	if got := queuedIDs(t, o); !slices.Equal(got, []string{first}) {
		t.Fatalf("queued %v, want [%s]", got, first)
	}

	// Still offline: the next one waits behind it.
	_, queued, err = o.Pay(t.Context(), e.c, payment(12))
	if !queued || !errors.As(err, &qe) || qe.TransactionID == first {
		t.Fatalf("second Pay while down = %v, %v", queued, err)
	}
	second := qe.TransactionID

	// Back online: a new payment sends the older ones first.
	e.g.SetDown(false)
	p, queued, err = o.Pay(t.Context(), e.c, payment(13))
	if err != nil || queued || p.GetAmount() != 13 {
		t.Fatalf("Pay online = %v, %v, %v", p, queued, err)
	}
	if got := e.g.PayCalls(); !slices.Equal(got, []string{first, second, p.GetTransactionId()}) {
		t.Errorf("gateway saw %v, want %s, %s, then the new one", got, first, second)
	}
	if len(older) != 3 || older[0].TransactionID != first || older[1].TransactionID != second {
		t.Errorf("OnOutcome saw %v, want the two older payments first", older)
	}

	// A decline is final and not queued.
	_, queued, err = o.Pay(t.Context(), e.c, payment(initial*2))
	if queued || !client.IsDeclined(err) {
		t.Errorf("Pay(too much) = %v, %v; want a final decline", queued, err)
	}
	if n := len(queuedIDs(t, o)); n != 0 {
		t.Errorf("%d queued, want 0", n)
	}
	// An invalid request is refused before anything is saved.
	if _, queued, err := o.Pay(t.Context(), e.c, payment(-1)); queued || !errors.Is(err, client.ErrInvalidRequest) {
		t.Errorf("Pay(invalid) = %v, %v", queued, err)
	}
	// So is a description the gateway refuses (a pasted tab): queued, it
	// would never be sent, and every later payment would wait behind it.
	tab := payment(1)
	tab.Description = "rent\tmarch"
	if _, queued, err := o.Pay(t.Context(), e.c, tab); queued || !errors.Is(err, client.ErrInvalidRequest) {
		t.Errorf("Pay(description with a tab) = %v, %v; want ErrInvalidRequest, nothing queued", queued, err)
	}
	if n := len(queuedIDs(t, o)); n != 0 {
		t.Errorf("%d queued, want 0", n)
	}
}

func TestOtherClientsPaymentsAreNotSent(t *testing.T) {
	e := newEnv(t)
	asBob := e.open(t, outbox.Options{ClientID: "bob", GatewayURL: e.g.URL})
	bobs := enqueue(t, asBob, 1)
	asAlice := e.open(t, outbox.Options{})
	rep, err := asAlice.Flush(t.Context(), e.c)
	if err != nil || len(rep.Outcomes) != 0 || rep.Remaining != 0 {
		t.Fatalf("alice's Flush = %+v, %v; want nothing sent", rep, err)
	}
	if _, err := asAlice.Send(t.Context(), e.c, bobs[0]); !errors.Is(err, outbox.ErrNotQueued) {
		t.Errorf("alice Send(bob's) = %v, want ErrNotQueued", err)
	}
	if got := queuedIDs(t, asAlice); !slices.Equal(got, bobs) {
		t.Errorf("List() = %v, want bob's payment listed", got)
	}
	if len(e.g.PayCalls()) != 0 {
		t.Error("bob's payment was sent with alice's token")
	}
}

// fakeGateway is an in-memory Gateway for FlushWatch's timing: unreachable
// until up is set.
type fakeGateway struct {
	mu       sync.Mutex
	up       bool
	checks   []time.Time
	payments []string
}

func (f *fakeGateway) Health(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.checks = append(f.checks, time.Now())
	if len(f.checks) == 4 {
		f.up = true // back after the fourth check
	}
	if !f.up {
		return &client.Error{Code: connect.CodeUnavailable, Retryable: true, Message: "connection refused"}
	}
	return nil
}

func (f *fakeGateway) Pay(_ context.Context, req client.PaymentRequest) (*gatewayv1.Payment, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.payments = append(f.payments, req.TransactionID)
	return &gatewayv1.Payment{TransactionId: req.TransactionID, Amount: req.Amount,
		Status: gatewayv1.PaymentStatus_PAYMENT_STATUS_SUCCEEDED}, nil
}

func (f *fakeGateway) Payment(_ context.Context, id string) (*gatewayv1.Payment, error) {
	return nil, &client.Error{Code: connect.CodeNotFound, Message: "no such payment " + id}
}
