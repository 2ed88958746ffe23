package gateway

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/remitpay/remit/internal/store/storetest"

	"connectrpc.com/connect"
	"github.com/google/uuid"

	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
	"github.com/remitpay/remit/gen/remit/gateway/v1/gatewayv1connect"
	"github.com/remitpay/remit/internal/authz"
	"github.com/remitpay/remit/internal/rpcerr"
)

// The WatchPayments tests run the real PaymentService handler over TLS and
// HTTP/2 on a real store. Authentication is not what they test: a header
// names the caller, whose principal the test interceptor puts in the
// context as the authz interceptor would.

const testClientHeader = "Test-Client"

func customer(id, bank string) *authz.Principal {
	return &authz.Principal{Kind: authz.KindClient, ClientID: id, Roles: []authz.Role{authz.RoleCustomer},
		Account: &authz.Account{Bank: bank, ID: id}}
}

var watchPrincipals = map[string]*authz.Principal{
	"alice": customer("alice", "bank-a"),
	"bob":   customer("bob", "bank-b"),
	"carol": customer("carol", "bank-c"),
	"dave":  customer("dave", "bank-a"),
	"admin": {Kind: authz.KindClient, ClientID: "admin", Roles: []authz.Role{authz.RoleAdmin}},
}

type testPrincipals struct{}

func (testPrincipals) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc { return next }
func (testPrincipals) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}
func (testPrincipals) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		if p, ok := watchPrincipals[conn.RequestHeader().Get(testClientHeader)]; ok {
			ctx = authz.WithPrincipal(ctx, p)
		}
		return next(ctx, conn)
	}
}

type watchEnv struct {
	store *Store
	api   *paymentAPI
	srv   *httptest.Server
}

// newWatchEnv serves PaymentService with a hub whose per-stream buffer is
// buffer events (0: the default).
func newWatchEnv(t *testing.T, buffer int) *watchEnv {
	t.Helper()
	st, err := OpenStore(t.Context(), storetest.Target(t, t.TempDir(), "gateway"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Error(err)
		}
	})
	stop := make(chan struct{})
	api := &paymentAPI{store: st, stopping: stop, watchBuffer: buffer}
	mux := http.NewServeMux()
	mux.Handle(gatewayv1connect.NewPaymentServiceHandler(api, connect.WithInterceptors(testPrincipals{})))
	srv := httptest.NewUnstartedServer(mux)
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(func() {
		// Streams end, then the server, then the hub, then the store.
		close(stop)
		srv.Close()
		h := api.watchHub()
		h.mu.Lock()
		started := h.started
		h.mu.Unlock()
		if started {
			<-h.exited
		}
	})
	return &watchEnv{store: st, api: api, srv: srv}
}

type namedClient struct {
	base   http.RoundTripper
	client string
}

func (n namedClient) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set(testClientHeader, n.client)
	return n.base.RoundTrip(r)
}

type testStream struct {
	events chan *gatewayv1.WatchPaymentsResponse
	done   chan error
	cancel context.CancelFunc
	hold   chan struct{} // closed when the client starts reading
}

// open starts a WatchPayments stream of client. With transport nil it uses
// the server's client; a held stream reads nothing until release.
func (e *watchEnv) open(t *testing.T, client string, req *gatewayv1.WatchPaymentsRequest, transport http.RoundTripper, held bool) *testStream {
	t.Helper()
	if transport == nil {
		transport = e.srv.Client().Transport
	}
	pc := gatewayv1connect.NewPaymentServiceClient(&http.Client{Transport: namedClient{transport, client}}, e.srv.URL)
	ctx, cancel := context.WithCancel(t.Context())
	s := &testStream{events: make(chan *gatewayv1.WatchPaymentsResponse, 1000), done: make(chan error, 1), cancel: cancel, hold: make(chan struct{})}
	if !held {
		close(s.hold)
	}
	go func() {
		stream, err := pc.WatchPayments(ctx, req)
		if err != nil {
			s.done <- err
			return
		}
		<-s.hold
		for stream.Receive() {
			s.events <- stream.Msg()
		}
		s.done <- stream.Err()
		_ = stream.Close() // ended; its error is sent above
	}()
	t.Cleanup(cancel)
	return s
}

// next returns the stream's next event, failing if none comes in time.
func (s *testStream) next(t *testing.T) *gatewayv1.WatchPaymentsResponse {
	t.Helper()
	select {
	case e := <-s.events:
		return e
	case err := <-s.done:
		t.Fatalf("stream ended: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("no event within 5s")
	}
	return nil
}

// quiet fails if the stream gets an event or ends within d.
func (s *testStream) quiet(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case e := <-s.events:
		t.Fatalf("unexpected event %v", e)
	case err := <-s.done:
		t.Fatalf("stream ended: %v", err)
	case <-time.After(d):
	}
}

// waitStreams waits until n streams are registered with the hub.
func (e *watchEnv) waitStreams(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		h := e.api.watchHub()
		h.mu.Lock()
		got := len(h.subs)
		h.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d streams registered with the hub after 5s, want %d", got, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

var banksOf = map[string]string{"alice": "bank-a", "dave": "bank-a", "bob": "bank-b", "carol": "bank-c"}

// event records a declined payment from payer to payee, which appends one
// event for each of their accounts, and returns its id.
func (e *watchEnv) event(t *testing.T, payer, payee, description string) string {
	t.Helper()
	id := uuid.NewString()
	now := time.Now()
	if _, ok, err := e.store.Claim(t.Context(), &Txn{ID: id, Kind: KindPayment, ClientID: payer, Fingerprint: "x",
		Payer: Account{banksOf[payer], payer}, Payee: Account{banksOf[payee], payee}, Amount: 1, Currency: "usd",
		Description: description, Status: StatusFailed, Decision: DecisionAbort,
		FailureReason: gatewayv1.FailureReason_FAILURE_REASON_INSUFFICIENT_FUNDS, CreateTime: now, CompleteTime: now}); err != nil || !ok {
		t.Fatal(ok, err)
	}
	return id
}

func wantEvent(t *testing.T, got *gatewayv1.WatchPaymentsResponse, txID, account string) {
	t.Helper()
	if got.GetPayment().GetTransactionId() != txID || got.GetAccount().GetAccountId() != account {
		t.Fatalf("event of %s on %s, want %s on %s", got.GetPayment().GetTransactionId(), got.GetAccount().GetAccountId(), txID, account)
	}
}

// A principal holds at most DefaultMaxWatchStreams streams: one more is
// refused with resource_exhausted TOO_MANY_STREAMS naming the limit, another
// principal still opens one, and closing a stream frees its slot.
func TestWatchStreamsPerPrincipalAreCapped(t *testing.T) {
	e := newWatchEnv(t, 0)
	var alice []*testStream
	for range DefaultMaxWatchStreams {
		alice = append(alice, e.open(t, "alice", &gatewayv1.WatchPaymentsRequest{}, nil, false))
	}
	id := e.event(t, "alice", "bob", "")
	for _, s := range alice { // every one of them is open
		wantEvent(t, s.next(t), id, "alice")
	}

	ninth := e.open(t, "alice", &gatewayv1.WatchPaymentsRequest{}, nil, false)
	select {
	case err := <-ninth.done:
		if connect.CodeOf(err) != connect.CodeResourceExhausted || rpcerr.Reason(err) != "TOO_MANY_STREAMS" {
			t.Fatalf("stream %d of one principal: %v (reason %q), want resource_exhausted TOO_MANY_STREAMS",
				DefaultMaxWatchStreams+1, err, rpcerr.Reason(err))
		}
		if cerr, ok := errors.AsType[*connect.Error](err); !ok || !strings.Contains(cerr.Message(), "at most 8") {
			t.Errorf("refusal %v does not name the limit (at most 8)", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("stream %d of one principal was not refused", DefaultMaxWatchStreams+1)
	}

	bob := e.open(t, "bob", &gatewayv1.WatchPaymentsRequest{AfterEventId: 2}, nil, false)
	id = e.event(t, "bob", "carol", "")
	wantEvent(t, bob.next(t), id, "bob")

	alice[0].cancel()
	deadline := time.Now().Add(5 * time.Second)
	for {
		again := e.open(t, "alice", &gatewayv1.WatchPaymentsRequest{AfterEventId: 2}, nil, false)
		select {
		case err := <-again.done:
			if rpcerr.Reason(err) != "TOO_MANY_STREAMS" {
				t.Fatalf("alice after closing a stream: %v", err)
			}
			if time.Now().After(deadline) {
				t.Fatal("closing a stream did not free its slot within 5s")
			}
			continue
		case <-time.After(200 * time.Millisecond):
		}
		id = e.event(t, "dave", "alice", "")
		wantEvent(t, again.next(t), id, "alice")
		return
	}
}

// An event reaches the streams whose principal may see it, on the account
// each watches, and no other.
func TestWatchDeliversOnlyWhereVisible(t *testing.T) {
	e := newWatchEnv(t, 0)
	alice := e.open(t, "alice", &gatewayv1.WatchPaymentsRequest{}, nil, false)
	bob := e.open(t, "bob", &gatewayv1.WatchPaymentsRequest{}, nil, false)
	carol := e.open(t, "carol", &gatewayv1.WatchPaymentsRequest{}, nil, false)
	admin := e.open(t, "admin", &gatewayv1.WatchPaymentsRequest{}, nil, false)
	adminCarol := e.open(t, "admin", &gatewayv1.WatchPaymentsRequest{Account: &gatewayv1.AccountRef{Bank: "bank-c", AccountId: "carol"}}, nil, false)
	e.waitStreams(t, 5)

	ab := e.event(t, "alice", "bob", "")
	wantEvent(t, alice.next(t), ab, "alice")
	wantEvent(t, bob.next(t), ab, "bob")
	wantEvent(t, admin.next(t), ab, "alice")
	wantEvent(t, admin.next(t), ab, "bob")

	cd := e.event(t, "carol", "dave", "")
	wantEvent(t, carol.next(t), cd, "carol") // not alice -> bob's
	wantEvent(t, adminCarol.next(t), cd, "carol")
	wantEvent(t, admin.next(t), cd, "carol")
	wantEvent(t, admin.next(t), cd, "dave")
	alice.quiet(t, 100*time.Millisecond)
	bob.quiet(t, 0)
	carol.quiet(t, 0)
	adminCarol.quiet(t, 0)
}

// N streams and M events cost O(M) reads of the log, not one per stream
// per event: the hub reads each event and its payment once.
func TestWatchFanOutReadsEachEventOnce(t *testing.T) {
	e := newWatchEnv(t, 0)
	var streams []*testStream
	perEvent := map[*testStream]int{}
	for _, who := range []string{"alice", "bob", "admin"} {
		for range DefaultMaxWatchStreams {
			s := e.open(t, who, &gatewayv1.WatchPaymentsRequest{}, nil, false)
			streams = append(streams, s)
			perEvent[s] = 1
			if who == "admin" {
				perEvent[s] = 2 // the payer's and the payee's event
			}
		}
	}
	warm := e.event(t, "alice", "bob", "")
	for _, s := range streams { // every stream is open and caught up
		for range perEvent[s] {
			if got := s.next(t); got.GetPayment().GetTransactionId() != warm {
				t.Fatalf("warm-up event %v", got)
			}
		}
	}

	const m = 10
	before := e.store.reads.Load()
	var ids []string
	for range m {
		ids = append(ids, e.event(t, "alice", "bob", ""))
	}
	for _, s := range streams {
		for i := range m * perEvent[s] {
			if got := s.next(t); got.GetPayment().GetTransactionId() != ids[i/perEvent[s]] {
				t.Fatalf("event %d: %v, want payment %s", i, got, ids[i/perEvent[s]])
			}
		}
	}
	reads := e.store.reads.Load() - before
	// Per event at most one read of the log, one of the payment and one of
	// its refunds (fewer when the hub reads several events at once); a
	// stream that read for itself would cost len(streams) per event.
	if limit := int64(3*m + 3); reads > limit {
		t.Errorf("%d streams and %d events cost %d store reads, want at most %d", len(streams), m, reads, limit)
	}
	if n := e.api.watchHub().resyncs.Load(); n != 0 {
		t.Errorf("%d streams fell behind with nothing slow", n)
	}
}

// A stream whose client does not read falls behind without holding up the
// hub or the other streams, and once its client reads again it still gets
// every event, in order, exactly once (it re-reads the log from its cursor).
func TestWatchSlowStreamResyncs(t *testing.T) {
	e := newWatchEnv(t, 4)
	// A client with a small HTTP/2 window: once it holds a few events
	// unread, the server's Send blocks, as for a client that stopped reading.
	small := e.srv.Client().Transport.(*http.Transport).Clone()
	small.HTTP2 = &http.HTTP2Config{MaxReceiveBufferPerStream: 1024}
	slow := e.open(t, "bob", &gatewayv1.WatchPaymentsRequest{}, small, true)
	fast := e.open(t, "bob", &gatewayv1.WatchPaymentsRequest{}, nil, false)
	e.waitStreams(t, 2) // registered with the hub before the events, so the hub, not a catch-up, feeds them

	const m = 40
	desc := strings.Repeat("x", 1500) // each event larger than the slow window
	var ids []string
	for range m {
		ids = append(ids, e.event(t, "alice", "bob", desc))
	}
	for i := range m {
		wantEvent(t, fast.next(t), ids[i], "bob")
	}
	if n := e.api.watchHub().resyncs.Load(); n == 0 {
		t.Fatal("the stream that does not read never fell behind: the test does not test a slow stream")
	}

	close(slow.hold)
	for i := range m {
		wantEvent(t, slow.next(t), ids[i], "bob")
	}
	slow.quiet(t, 200*time.Millisecond)
}
