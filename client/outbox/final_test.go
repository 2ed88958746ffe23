package outbox_test

import (
	"crypto/tls"
	"database/sql"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/genproto/googleapis/rpc/errdetails"

	"github.com/remitpay/remit/client"
	"github.com/remitpay/remit/client/clienttest"
	"github.com/remitpay/remit/client/outbox"
	"github.com/remitpay/remit/internal/pki"
	"github.com/remitpay/remit/internal/rpcerr"
)

// notAGateway starts an HTTPS server (HTTP/2, TLS 1.3) that answers 404 to
// everything, like a web server at a mistyped --gateway, and returns a
// client of it.
func notAGateway(t *testing.T) *client.Client {
	t.Helper()
	l, err := pki.Generate(t.TempDir(), pki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cert, key := l.Server("gateway")
	serverTLS, err := pki.ServerConfig(cert, key, "", tls.NoClientCert)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.NotFoundHandler())
	srv.EnableHTTP2 = true
	srv.TLS = serverTLS
	srv.StartTLS()
	t.Cleanup(srv.Close)
	c, err := client.New(client.Config{GatewayURL: srv.URL, CAFile: l.CA, Token: "tok",
		Retry: &client.RetryPolicy{MaxAttempts: 1}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// A server that is not a gateway answering 404 is no outcome: no gateway
// saw the payment, so it stays queued with the answer as its last error.
func TestNonGatewayAnswerKeepsPaymentQueued(t *testing.T) {
	e := newEnv(t)
	c := notAGateway(t)
	o := e.open(t, outbox.Options{ClientID: "alice", GatewayURL: c.GatewayURL()})

	p, queued, err := o.Pay(t.Context(), c, payment(100))
	var qe *outbox.QueuedError
	if p != nil || !queued || !errors.As(err, &qe) || connect.CodeOf(err) != connect.CodeUnimplemented {
		t.Fatalf("Pay to a 404 server = %v, %v, %v; want queued with the unimplemented answer", p, queued, err)
	}
	items, err := o.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 1 || items[0].TransactionID != qe.TransactionID || !strings.Contains(items[0].LastError, "404") {
		t.Errorf("queued %+v, want the payment with its 404 as last error", items)
	}
	if h := historyByID(t, o); len(h) != 0 {
		t.Errorf("history %v, want empty: no gateway gave an outcome", h)
	}
}

// foreignInfo is a connect error with an ErrorInfo of another domain, as a
// proxy in front of the gateway might send.
func foreignInfo(code connect.Code, reason string) error {
	cerr := connect.NewError(code, errors.New("from the proxy"))
	d, err := connect.NewErrorDetail(&errdetails.ErrorInfo{Reason: reason, Domain: "proxy.example"})
	if err != nil {
		panic(err)
	}
	cerr.AddDetail(d)
	return cerr
}

// Only the gateway's own final answers (ErrorInfo of domain remit.dev, a
// code no resend changes) take a payment out of the queue.
func TestOnlyFinalGatewayAnswersLeaveTheQueue(t *testing.T) {
	tests := []struct {
		name  string
		err   error
		final bool
	}{
		{"no ErrorInfo failed_precondition", connect.NewError(connect.CodeFailedPrecondition, errors.New("no")), false},
		{"no ErrorInfo permission_denied (a proxy's 403)", connect.NewError(connect.CodePermissionDenied, errors.New("forbidden")), false},
		{"no ErrorInfo invalid_argument", connect.NewError(connect.CodeInvalidArgument, errors.New("bad")), false},
		{"no ErrorInfo not_found", connect.NewError(connect.CodeNotFound, errors.New("nope")), false},
		{"foreign ErrorInfo failed_precondition", foreignInfo(connect.CodeFailedPrecondition, "INSUFFICIENT_FUNDS"), false},
		{"remit unimplemented", rpcerr.New(connect.CodeUnimplemented, "UNIMPLEMENTED", "not here", nil), false},
		{"remit aborted other than in progress", rpcerr.New(connect.CodeAborted, "CONFLICT", "try later", nil), false},
		{"remit decline", rpcerr.New(connect.CodeFailedPrecondition, "ACCOUNT_NOT_FOUND", "declined: no such account", nil), true},
		{"remit id reused", rpcerr.New(connect.CodeInvalidArgument, client.ReasonIdempotencyKeyReused, "reused", nil), true},
		{"remit permission denied", rpcerr.New(connect.CodePermissionDenied, "PERMISSION_DENIED", "no account", nil), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			o := e.open(t, outbox.Options{})
			ids := enqueue(t, o, 7)
			e.g.SetHooks(clienttest.Hooks{Before: func(call int, _ string) error {
				if call == 1 {
					return tt.err
				}
				return nil
			}})
			rep, err := o.Flush(t.Context(), e.c)
			h := historyByID(t, o)
			if tt.final {
				if err != nil || len(rep.Outcomes) != 1 || rep.Outcomes[0].Status != outbox.StatusFailed || rep.Remaining != 0 {
					t.Fatalf("Flush = %+v, %v; want a final FAILED outcome", rep, err)
				}
				if h[ids[0]].Code != connect.CodeOf(tt.err).String() || h[ids[0]].Reason == "" {
					t.Errorf("history %+v, want the gateway's code and reason", h[ids[0]])
				}
				return
			}
			var qe *outbox.QueuedError
			if !errors.As(err, &qe) || rep.Remaining != 1 || len(rep.Outcomes) != 0 || len(h) != 0 {
				t.Fatalf("Flush = %+v, %v, history %v; want the payment still queued", rep, err, h)
			}
			items, _ := o.List(t.Context())
			if len(items) != 1 || items[0].LastError == "" {
				t.Errorf("queued %+v, want the answer as last error", items)
			}
			// The next send reaches the gateway: the real outcome.
			rep, err = o.Flush(t.Context(), e.c)
			if err != nil || len(rep.Outcomes) != 1 || rep.Outcomes[0].Status != outbox.StatusSucceeded {
				t.Errorf("second Flush = %+v, %v; want the success", rep, err)
			}
		})
	}
}

// A transaction id with a recorded outcome is never sent again, and never
// reused for another payment: the history of the real payment stays.
func TestTransactionIDInHistoryIsNotReused(t *testing.T) {
	e := newEnv(t)
	o := e.open(t, outbox.Options{})
	req := payment(100)
	req.TransactionID = client.NewTransactionID()
	p, queued, err := o.Pay(t.Context(), e.c, req)
	if err != nil || queued || p.GetAmount() != 100 {
		t.Fatalf("Pay = %v, %v, %v", p, queued, err)
	}

	other := req
	other.Amount = 300
	for _, r := range []client.PaymentRequest{other, {TransactionID: strings.ToUpper(req.TransactionID), Payee: clienttest.Alice, Amount: 100, Currency: "usd"}} {
		if _, queued, err := o.Pay(t.Context(), e.c, r); queued || !errors.Is(err, outbox.ErrTransactionIDReused) ||
			!strings.Contains(err.Error(), "succeeded for 1.00 usd to bank-b/bob") {
			t.Errorf("Pay(used id, other payment) = %v, %v; want ErrTransactionIDReused naming the first payment", queued, err)
		}
		if _, err := o.Enqueue(t.Context(), r); !errors.Is(err, outbox.ErrTransactionIDReused) {
			t.Errorf("Enqueue(used id, other payment) = %v; want ErrTransactionIDReused", err)
		}
	}
	// The same payment again returns the recorded outcome without sending.
	p, queued, err = o.Pay(t.Context(), e.c, req)
	if err != nil || queued || p.GetTransactionId() != req.TransactionID || p.GetAmount() != 100 {
		t.Errorf("Pay(same payment) = %v, %v, %v; want the recorded success", p, queued, err)
	}
	if id, err := o.Enqueue(t.Context(), req); err != nil || id != req.TransactionID {
		t.Errorf("Enqueue(same payment) = %q, %v", id, err)
	}
	if got := e.g.PayCalls(); len(got) != 1 {
		t.Errorf("gateway saw %v, want the one first send only", got)
	}
	if n := len(queuedIDs(t, o)); n != 0 {
		t.Errorf("%d queued, want 0", n)
	}
	out, err := o.Outcome(t.Context(), req.TransactionID)
	if err != nil || out.Status != outbox.StatusSucceeded || out.Amount != 100 || out.Payment.GetAmount() != 100 {
		t.Errorf("Outcome = %+v, %v; want the first payment's success", out, err)
	}

	// A decline is replayed from history too.
	big := payment(initial * 2)
	big.TransactionID = client.NewTransactionID()
	if _, _, err := o.Pay(t.Context(), e.c, big); !client.IsDeclined(err) {
		t.Fatalf("Pay(too much) = %v", err)
	}
	if _, queued, err := o.Pay(t.Context(), e.c, big); queued || !client.IsDeclined(err) {
		t.Errorf("Pay(declined id again) = %v, %v; want the recorded decline", queued, err)
	}
	if got := e.g.PayCalls(); len(got) != 2 {
		t.Errorf("gateway saw %v, want 2 sends", got)
	}
}

// openDB opens the outbox database directly, as an older version left it.
func openDB(t *testing.T, dir string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "outbox.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Error(err)
		}
	})
	return db
}

// An outbox written by an older version may hold a queued payment whose id
// is already in history; its outcome must not replace a recorded success.
func TestSucceededHistoryIsNeverReplaced(t *testing.T) {
	e := newEnv(t)
	o := e.open(t, outbox.Options{})
	req := payment(100)
	req.TransactionID = client.NewTransactionID()
	if _, _, err := o.Pay(t.Context(), e.c, req); err != nil {
		t.Fatal(err)
	}
	if _, err := openDB(t, e.dir).ExecContext(t.Context(), `INSERT INTO queued
		(transaction_id, client_id, gateway, payee_bank, payee_account, amount, currency, description, created)
		VALUES (?, 'alice', ?, 'bank-b', 'bob', 300, 'usd', '', 1)`, req.TransactionID, e.g.URL); err != nil {
		t.Fatal(err)
	}
	rep, err := o.Flush(t.Context(), e.c)
	if err != nil || len(rep.Outcomes) != 1 || rep.Outcomes[0].Reason != client.ReasonIdempotencyKeyReused || rep.Remaining != 0 {
		t.Fatalf("Flush = %+v, %v; want the reused id refused by the gateway", rep, err)
	}
	out := historyByID(t, o)[req.TransactionID]
	if out.Status != outbox.StatusSucceeded || out.Amount != 100 || out.Payment.GetAmount() != 100 {
		t.Errorf("history %+v, want the succeeded payment of 100 kept", out)
	}
}

// A failure recorded by an older version without the gateway's ErrorInfo
// (a 404 from a server that is not a gateway) is no outcome: paying the
// same payment again with its id sends it.
func TestReasonlessFailureInHistoryIsSentAgain(t *testing.T) {
	e := newEnv(t)
	o := e.open(t, outbox.Options{})
	req := payment(100)
	req.TransactionID = client.NewTransactionID()
	if _, err := openDB(t, e.dir).ExecContext(t.Context(), `INSERT INTO history
		(transaction_id, client_id, gateway, status, code, reason, message, payment, payee_bank, payee_account,
		 amount, currency, description, created, completed, attempts)
		VALUES (?, 'alice', ?, 'FAILED', 'unimplemented', '', '404 Not Found', '', 'bank-b', 'bob', 100, 'usd', 'offline', 1, 2, 1)`,
		req.TransactionID, e.g.URL); err != nil {
		t.Fatal(err)
	}
	p, queued, err := o.Pay(t.Context(), e.c, req)
	if err != nil || queued || p.GetAmount() != 100 {
		t.Fatalf("Pay = %v, %v, %v; want it sent and succeeded", p, queued, err)
	}
	if out := historyByID(t, o)[req.TransactionID]; out.Status != outbox.StatusSucceeded {
		t.Errorf("history %+v, want the success recorded", out)
	}
	if got := e.g.Balance(bob); got != initial+100 {
		t.Errorf("payee balance %d, want %d", got, initial+100)
	}
}

// Spellings of one gateway URL share a queue, also for rows stored as
// typed by older versions; this client's payments queued under another URL
// are reported, not sent.
func TestGatewayURLsAreNormalized(t *testing.T) {
	e := newEnv(t)
	shouting := strings.Replace(e.g.URL, "https://", "HTTPS://", 1) + "/"
	typed := enqueue(t, e.open(t, outbox.Options{ClientID: "alice", GatewayURL: shouting}), 1)
	if _, err := openDB(t, e.dir).ExecContext(t.Context(), `INSERT INTO queued
		(transaction_id, client_id, gateway, payee_bank, payee_account, amount, currency, description, created)
		VALUES (?, 'alice', ?, 'bank-b', 'bob', 2, 'usd', '', 2)`, client.NewTransactionID(), e.g.URL+"/"); err != nil {
		t.Fatal(err)
	}
	port := e.g.URL[strings.LastIndex(e.g.URL, ":"):]
	moved := "https://localhost" + port
	enqueue(t, e.open(t, outbox.Options{ClientID: "alice", GatewayURL: moved + "/"}), 4)

	o := e.open(t, outbox.Options{})
	rep, err := o.Flush(t.Context(), e.c)
	if err != nil || len(rep.Outcomes) != 2 || rep.Outcomes[0].TransactionID != typed[0] || rep.Remaining != 0 {
		t.Fatalf("Flush = %+v, %v; want both spellings of %s sent", rep, err, e.g.URL)
	}
	if want := map[string]int{moved: 1}; len(rep.Elsewhere) != 1 || rep.Elsewhere[moved] != 1 {
		t.Errorf("Elsewhere = %v, want %v", rep.Elsewhere, want)
	}
	items, _ := o.List(t.Context())
	if len(items) != 1 || items[0].GatewayURL != moved {
		t.Errorf("queued %+v, want the one for %s", items, moved)
	}
	if got := e.g.Balance(bob); got != initial+3 {
		t.Errorf("payee balance %d, want %d", got, initial+3)
	}
}

// The outbox holds payments and their outcomes: only the user may read it.
func TestFilesArePrivate(t *testing.T) {
	e := newEnv(t)
	o := e.open(t, outbox.Options{})
	enqueue(t, o, 1)
	if _, err := o.Flush(t.Context(), e.c); err != nil {
		t.Fatal(err)
	}
	check := func() {
		t.Helper()
		for _, name := range []string{"outbox.db", "outbox.db-wal", "outbox.db-shm", "outbox.lock", "outbox-schema.lock"} {
			fi, err := os.Stat(filepath.Join(e.dir, name))
			if err != nil {
				t.Error(err)
				continue
			}
			if perm := fi.Mode().Perm(); perm&0o077 != 0 {
				t.Errorf("%s has mode %v, want 0600", name, perm)
			}
		}
	}
	check()

	// A database an older version created readable by all is fixed on open.
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(e.dir, "outbox.db"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.open(t, outbox.Options{})
	check()
}
