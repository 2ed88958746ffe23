package outbox_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/remitpay/remit/client"
	"github.com/remitpay/remit/client/outbox"
	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
	"github.com/remitpay/remit/gen/remit/gateway/v1/gatewayv1connect"
	"github.com/remitpay/remit/internal/store"
)

// oldDescription is accepted by versions before the printable text rule
// and refused by this client.
const oldDescription = "rent\tmarch"

// queueAsOlderVersion puts a payment into the outbox's queue the way an
// older version did, bypassing today's checks, last sent at lastSent (zero:
// never).
func queueAsOlderVersion(t *testing.T, e *env, id string, lastSent time.Time) {
	t.Helper()
	db, err := store.OpenSQLite(t.Context(), filepath.Join(e.dir, "outbox.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	var last int64
	if !lastSent.IsZero() {
		last = lastSent.UnixNano()
	}
	if _, err := db.ExecContext(t.Context(), `INSERT INTO queued (transaction_id, client_id, gateway, payee_bank, payee_account,
		amount, currency, description, created, attempts, last_attempt) VALUES (?, 'alice', ?, ?, ?, 700, 'usd', ?, ?, 1, ?)`,
		id, e.g.URL, bob.Bank, bob.ID, oldDescription, time.Now().UnixNano(), last); err != nil {
		t.Fatal(err)
	}
}

// payAsOlderGateway sends the payment straight to the gateway, without the
// client's checks, as an older CLI did before it queued the same id.
func payAsOlderGateway(t *testing.T, e *env, id string) {
	t.Helper()
	ca, err := os.ReadFile(e.g.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13}}}
	token := e.g.Token("alice")
	auth := connect.UnaryInterceptorFunc(func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			req.Header().Set("Authorization", "Bearer "+token)
			return next(ctx, req)
		}
	})
	pc := gatewayv1connect.NewPaymentServiceClient(hc, e.g.URL, connect.WithInterceptors(auth))
	req := &gatewayv1.MakePaymentRequest{TransactionId: id, Payee: bob.Proto(), Amount: 700, Currency: "usd", Description: oldDescription}
	if _, err := pc.MakePayment(context.Background(), req); err != nil {
		t.Fatal(err)
	}
}

// TestQueuedBeforeTheTextRule: a payment an older version queued with a
// description this client refuses (a tab) does not wedge the outbox. If
// the gateway has it, its outcome is recorded; if the gateway never got
// it, it ends FAILED (INVALID_REQUEST) and nothing moves; while its last
// send is recent it stays queued. Later payments go out either way.
func TestQueuedBeforeTheTextRule(t *testing.T) {
	t.Run("the gateway has it", func(t *testing.T) {
		e := newEnv(t)
		o := e.open(t, outbox.Options{})
		id := client.NewTransactionID()
		payAsOlderGateway(t, e, id)
		queueAsOlderVersion(t, e, id, time.Now().Add(-time.Hour))
		rep, err := o.Flush(t.Context(), e.c)
		if err != nil || len(rep.Outcomes) != 1 || rep.Outcomes[0].Status != outbox.StatusSucceeded {
			t.Fatalf("Flush = %+v, %v; want the stored SUCCEEDED outcome", rep, err)
		}
		if got := e.g.Balance(bob); got != initial+700 {
			t.Errorf("bob has %d, want %d: paid once", got, initial+700)
		}
		if len(e.g.PayCalls()) != 1 {
			t.Errorf("the gateway saw %d payments, want the older version's one", len(e.g.PayCalls()))
		}
	})
	t.Run("the gateway never got it", func(t *testing.T) {
		e := newEnv(t)
		o := e.open(t, outbox.Options{})
		id := client.NewTransactionID()
		queueAsOlderVersion(t, e, id, time.Time{})
		rep, err := o.Flush(t.Context(), e.c)
		if err != nil || len(rep.Outcomes) != 1 || rep.Outcomes[0].Status != outbox.StatusFailed || rep.Outcomes[0].Reason != "INVALID_REQUEST" {
			t.Fatalf("Flush = %+v, %v; want FAILED INVALID_REQUEST", rep, err)
		}
		if got := e.g.Balance(bob); got != initial || len(e.g.PayCalls()) != 0 {
			t.Errorf("bob has %d, %d payments sent; want nothing moved", got, len(e.g.PayCalls()))
		}
		// The queue is free again.
		if p, queued, err := o.Pay(t.Context(), e.c, payment(100)); err != nil || queued || p.GetStatus() != gatewayv1.PaymentStatus_PAYMENT_STATUS_SUCCEEDED {
			t.Errorf("a new payment after it: %v queued=%v %v", p, queued, err)
		}
	})
	t.Run("sent a moment ago", func(t *testing.T) {
		e := newEnv(t)
		o := e.open(t, outbox.Options{})
		id := client.NewTransactionID()
		queueAsOlderVersion(t, e, id, time.Now())
		if _, err := o.Flush(t.Context(), e.c); err == nil {
			t.Error("Flush finished a payment whose last send may still arrive")
		}
		if got := queuedIDs(t, o); len(got) != 1 || got[0] != id {
			t.Errorf("queued = %v, want %s kept", got, id)
		}
	})
}
