package main

import (
	"crypto/tls"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/remitpay/remit/client"
	"github.com/remitpay/remit/client/clienttest"
	"github.com/remitpay/remit/internal/pki"
	"github.com/remitpay/remit/internal/rpcerr"
)

// notAGateway starts an HTTPS server that answers 404 to everything, like
// a web server at a mistyped --gateway, and returns its URL and CA file.
func notAGateway(t *testing.T) (url, caFile string) {
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
	return srv.URL, l.CA
}

type outboxListJSON struct {
	Queued  []queuedJSON  `json:"queued"`
	History []historyJSON `json:"history"`
}

func outboxList(t *testing.T) outboxListJSON {
	t.Helper()
	code, out, errOut := remit(t, "", "outbox", "--history", "-1", "--json")
	var list outboxListJSON
	if err := json.Unmarshal([]byte(out), &list); err != nil || code != exitOK {
		t.Fatalf("outbox --json = %d, %q %q (%v)", code, out, errOut, err)
	}
	return list
}

// A server that is not a gateway answering 404 never takes a payment out
// of the outbox: pay says it is queued (exit 3), and a flush to the real
// gateway points at the exact --gateway that sends it.
func TestClientPayToNonGatewayStaysQueued(t *testing.T) {
	g := clienttest.New(t)
	clientEnv(t)
	loginAs(t, g, "alice")
	url, ca := notAGateway(t)

	code, out, errOut := remit(t, "", "pay", "--gateway", url, "--ca", ca, "--to", "bank-b/bob", "--amount", "1")
	m := txIDRE.FindStringSubmatch(out)
	if code != exitQueued || !strings.Contains(out, "QUEUED") || !strings.Contains(out, "did not answer as a Remit gateway") ||
		strings.Contains(out, "FAILED") || m == nil {
		t.Fatalf("pay to a 404 server = %d; want 3 and QUEUED:\n%s%s", code, out, errOut)
	}
	list := outboxList(t)
	if len(list.Queued) != 1 || list.Queued[0].TransactionID != m[1] || !strings.Contains(list.Queued[0].LastError, "404") ||
		list.Queued[0].GatewayURL != url || len(list.History) != 0 {
		t.Fatalf("outbox after pay to a 404 server = %+v; want it queued with its 404", list)
	}

	// A flush to the logged-in gateway does not send it, and says so.
	code, out, errOut = remit(t, "", "outbox", "flush")
	if code != exitQueued || strings.Contains(out, "Nothing to send") ||
		!strings.Contains(out, "1 payment of yours queued for the gateway at "+url) ||
		!strings.Contains(out, "`remit outbox flush --gateway "+url+"`") {
		t.Errorf("flush with a payment queued for another URL = %d; want 3 and the --gateway to use:\n%s%s", code, out, errOut)
	}
	code, out, _ = remit(t, "", "outbox", "flush", "--json")
	var rep struct {
		Remaining int             `json:"remaining"`
		Elsewhere []elsewhereJSON `json:"elsewhere"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != exitQueued || rep.Remaining != 0 ||
		len(rep.Elsewhere) != 1 || rep.Elsewhere[0] != (elsewhereJSON{GatewayURL: url, Count: 1}) {
		t.Errorf("flush --json = %d, %q (%v)", code, out, err)
	}
	if code, out, _ := remit(t, "", "outbox"); code != exitOK || !strings.Contains(out, "Yours, queued for another gateway URL") || !strings.Contains(out, m[1]) {
		t.Errorf("outbox = %d:\n%s", code, out)
	}
	if len(g.PayCalls()) != 0 {
		t.Errorf("the real gateway saw %v", g.PayCalls())
	}
}

// Spellings of the gateway URL that differ in case, a default port or a
// trailing slash share a queue; a different host is reported with the
// exact command that sends its payments.
func TestClientGatewayURLSpellings(t *testing.T) {
	g := clienttest.New(t)
	clientEnv(t)
	loginAs(t, g, "alice")
	port := g.URL[strings.LastIndex(g.URL, ":"):]
	shouting := "HTTPS://127.0.0.1" + port + "/"
	localhost := "https://localhost" + port

	g.SetDown(true)
	for _, u := range []string{shouting, localhost + "/"} {
		if code, out, errOut := remit(t, "", "pay", "--gateway", u, "--to", "bank-b/bob", "--amount", "1"); code != exitQueued {
			t.Fatalf("pay --gateway %s while down = %d:\n%s%s", u, code, out, errOut)
		}
	}
	g.SetDown(false)
	code, out, errOut := remit(t, "", "outbox", "flush")
	if code != exitQueued || !strings.Contains(out, "SUCCEEDED 1.00 usd") || strings.Contains(out, "The outbox is empty") ||
		!strings.Contains(out, "`remit outbox flush --gateway "+localhost+"`") {
		t.Fatalf("flush = %d; want the %s payment sent, exit 3 and how to send the %s one:\n%s%s", code, shouting, localhost, out, errOut)
	}
	code, out, errOut = remit(t, "", "outbox", "flush", "--gateway", localhost+"/")
	if code != exitOK || !strings.Contains(out, "SUCCEEDED 1.00 usd") {
		t.Errorf("flush --gateway %s = %d:\n%s%s", localhost, code, out, errOut)
	}
	if code, out, _ := remit(t, "", "outbox", "flush"); code != exitOK || !strings.Contains(out, "Nothing to send") {
		t.Errorf("flush when all is sent = %d:\n%s", code, out)
	}
	if got := g.Balance(clienttest.Bob); got != clienttest.InitialBalance+200 {
		t.Errorf("bob has %d, want %d", got, clienttest.InitialBalance+200)
	}
}

// A transaction id that already paid someone is refused locally for a
// different payment (exit 2, the gateway is not contacted), and the
// history of the real payment stays.
func TestClientTransactionIDReuse(t *testing.T) {
	g := clienttest.New(t)
	clientEnv(t)
	loginAs(t, g, "alice")
	id := client.NewTransactionID()
	if code, out, errOut := remit(t, "", "pay", "--to", "bank-b/bob", "--amount", "12.50", "--transaction-id", id); code != exitOK {
		t.Fatalf("pay = %d:\n%s%s", code, out, errOut)
	}
	code, out, errOut := remit(t, "", "pay", "--to", "bank-a/alice", "--amount", "3", "--transaction-id", id)
	if code != exitUsage || !strings.Contains(errOut, "--transaction-id "+id+" was already used for a different payment") ||
		!strings.Contains(errOut, "succeeded for 12.50 usd to bank-b/bob") || !strings.Contains(errOut, "leave --transaction-id out") {
		t.Errorf("pay with a used id = %d:\n%s%s", code, out, errOut)
	}
	code, out, _ = remit(t, "", "pay", "--to", "bank-a/alice", "--amount", "3", "--transaction-id", id, "--json")
	var res struct {
		Error *errorJSON `json:"error"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != exitUsage || res.Error == nil ||
		res.Error.Code != "invalid_argument" || res.Error.Reason != client.ReasonIdempotencyKeyReused {
		t.Errorf("pay --json with a used id = %d, %q (%v)", code, out, err)
	}
	if got := g.PayCalls(); len(got) != 1 {
		t.Errorf("gateway saw %v, want the first payment only", got)
	}
	list := outboxList(t)
	if len(list.History) != 1 || list.History[0].TransactionID != id || list.History[0].Status != "SUCCEEDED" || list.History[0].Amount != "1250" {
		t.Errorf("history = %+v, want the succeeded 12.50 payment", list.History)
	}
}

// `outbox flush` exits 3, not 1, while anything remains queued, even if
// another payment was declined: exit 1 would invite paying again.
func TestClientFlushDeclineAndQueuedExits3(t *testing.T) {
	g := clienttest.New(t)
	ids := queueWhileDown(t, g, "1000", "1") // a decline, then one that stays queued
	g.SetHooks(clienttest.Hooks{Before: func(_ int, txID string) error {
		if txID == ids[1] {
			return rpcerr.New(connect.CodeUnavailable, "BANK_UNAVAILABLE", "a bank involved is unavailable", nil)
		}
		return nil
	}})
	code, out, errOut := remit(t, "", "outbox", "flush")
	if code != exitQueued || !strings.Contains(out, ids[0]+": DECLINED") || !strings.Contains(out, "1 payment still queued") ||
		!strings.Contains(errOut, "1 payment declined") {
		t.Errorf("flush with a decline and a queued payment = %d; want 3:\n%s%s", code, out, errOut)
	}
}

// A flushed payment that failed with a transaction id conflict is not
// summed up with the declines as "no money moved": a bank holds its id for
// another transaction, and an operator must reconcile it.
func TestClientFlushConflictIsNotADecline(t *testing.T) {
	g := clienttest.New(t)
	ids := queueWhileDown(t, g, "1000", "1") // a decline, then a conflict
	g.SetHooks(clienttest.Hooks{Before: func(_ int, txID string) error {
		if txID == ids[1] {
			return rpcerr.New(connect.CodeFailedPrecondition, "TRANSACTION_ID_CONFLICT",
				"a bank already knows this transaction id for a different transaction", nil)
		}
		return nil
	}})
	code, out, errOut := remit(t, "", "outbox", "flush")
	if code != exitFailure || !strings.Contains(errOut, "1 payment declined or failed (no money moved for them)") ||
		!strings.Contains(errOut, "1 payment failed with a transaction id conflict") ||
		!strings.Contains(errOut, "until an operator has reconciled the id") {
		t.Errorf("flush with a decline and a conflict = %d; want 1, the conflict worded apart:\n%s%s", code, out, errOut)
	}
}

// A gateway from before the typed FailureReason still starts its decline
// messages with "declined: "; the CLI says "declined" once.
func TestClientOldGatewayDeclineSaysDeclinedOnce(t *testing.T) {
	g := clienttest.New(t)
	clientEnv(t)
	loginAs(t, g, "alice")
	g.SetHooks(clienttest.Hooks{Before: func(_ int, txID string) error {
		return rpcerr.New(connect.CodeFailedPrecondition, "INSUFFICIENT_FUNDS",
			"declined: the payer's available balance is too low", map[string]string{"transaction_id": txID})
	}})
	code, out, errOut := remit(t, "", "pay", "--to", "bank-b/bob", "--amount", "1")
	if code != exitFailure || strings.Count(strings.ToLower(out+errOut), "declined") != 1 ||
		!strings.Contains(out, "DECLINED: insufficient funds. No money moved.\nThe payer's available balance is too low.\n") {
		t.Errorf("pay against an older gateway = %d; want \"declined\" said once:\n%s%s", code, out, errOut)
	}
}

// queueWhileDown logs alice in to g and queues a payment to bob of each
// amount while g is down, then brings g back up; it returns their ids.
func queueWhileDown(t *testing.T, g *clienttest.Gateway, amounts ...string) []string {
	t.Helper()
	clientEnv(t)
	loginAs(t, g, "alice")
	g.SetDown(true)
	var ids []string
	for _, amount := range amounts {
		code, out, _ := remit(t, "", "pay", "--to", "bank-b/bob", "--amount", amount)
		m := txIDRE.FindStringSubmatch(out)
		if code != exitQueued || m == nil {
			t.Fatalf("pay %s while down = %d:\n%s", amount, code, out)
		}
		ids = append(ids, m[1])
	}
	g.SetDown(false)
	return ids
}

func TestHumanReasonWithoutReason(t *testing.T) {
	if got := humanReason(""); got != "" {
		t.Errorf(`humanReason("") = %q, want ""`, got)
	}
	if got := humanReason("INSUFFICIENT_FUNDS"); got != "insufficient funds" {
		t.Errorf("humanReason = %q", got)
	}
	if got := failureLabel(&client.Error{Code: connect.CodeUnimplemented, Message: "404 Not Found"}); got != "unimplemented" {
		t.Errorf("failureLabel of a reasonless error = %q, want the code", got)
	}
}

func TestClientMessages(t *testing.T) {
	g := clienttest.New(t)
	clientEnv(t)
	loginAs(t, g, "alice")

	// Currencies are reported against --currency.
	for _, args := range [][]string{
		{"pay", "--to", "bank-b/bob", "--amount", "1", "--currency", "USD"},
		{"admin", "deposit", "--account", "bank-a/alice", "--amount", "1", "--currency", "USD"},
	} {
		code, _, errOut := remit(t, "", args...)
		if code != exitUsage || !strings.Contains(errOut, `--currency "USD": currencies are lowercase ISO 4217 codes like usd`) ||
			strings.Contains(errOut, "--amount") {
			t.Errorf("remit %q = %d, %q", args, code, errOut)
		}
	}

	// A missing CA file says which and what to pass.
	code, _, errOut := remit(t, "alice-pw\n", "login", "--gateway", g.URL, "--ca", "/nonexistent/ca.pem", "--password-stdin", "alice")
	if code != exitUsage || !strings.Contains(errOut, "the CA file /nonexistent/ca.pem was not found: pass --ca") ||
		!strings.Contains(errOut, "REMIT_CA") || strings.Contains(errOut, "remit certs") {
		t.Errorf("login --ca /nonexistent = %d, %q", code, errOut)
	}
	t.Setenv(envCA, "/nonexistent/ca.pem")
	if code, _, errOut := remit(t, "", "balance"); code != exitFailure || !strings.Contains(errOut, "the CA file /nonexistent/ca.pem was not found") {
		t.Errorf("balance with REMIT_CA=/nonexistent = %d, %q", code, errOut)
	}
	t.Setenv(envCA, "")

	// Admin: a reused id and a declined withdrawal say what they mean.
	loginAs(t, g, "admin")
	id := client.NewTransactionID()
	if code, out, errOut := remit(t, "", "admin", "deposit", "--account", "bank-a/alice", "--amount", "1", "--transaction-id", id); code != exitOK {
		t.Fatalf("deposit = %d:\n%s%s", code, out, errOut)
	}
	code, _, errOut = remit(t, "", "admin", "withdraw", "--account", "bank-a/alice", "--amount", "1", "--transaction-id", id)
	if code != exitFailure || !strings.Contains(errOut, "transaction id "+id+" was already used for a different") ||
		strings.Contains(errOut, "IDEMPOTENCY_KEY_REUSED") {
		t.Errorf("withdraw with the deposit's id = %d, %q", code, errOut)
	}
	code, _, errOut = remit(t, "", "admin", "withdraw", "--account", "bank-a/alice", "--amount", "100000")
	if code != exitFailure || !strings.Contains(errOut, "declined: insufficient funds: the available balance of bank-a/alice is too low for this withdrawal") ||
		strings.Contains(errOut, "payer") || strings.Contains(errOut, "pay a smaller amount") {
		t.Errorf("withdraw too much = %d, %q", code, errOut)
	}
}

func TestLoginLockoutSaysItOnce(t *testing.T) {
	err := loginError(&env{}, &clientFlags{}, "https://127.0.0.1:8443", &client.Error{
		Code: connect.CodeResourceExhausted, Reason: loginLockedReason,
		Message: "too many failed logins; wait 59s before trying again", RetryAfter: 58200 * time.Millisecond,
	})
	if got, want := err.Error(), "too many failed logins: try again in 59s"; got != want {
		t.Errorf("lockout = %q, want %q", got, want)
	}
}

// With --json, every failure prints {"error": {...}} on stdout, whatever
// the command and wherever it failed, with the usual exit status.
func TestClientJSONErrors(t *testing.T) {
	clientEnv(t)
	tests := []struct {
		args []string
		code int
		want string // the error's code
	}{
		{[]string{"pay", "--amount", "1", "--json"}, exitUsage, "invalid_argument"},
		{[]string{"pay", "--json", "--to", "bank-b/bob", "--amount", "1", "--currency", "USD"}, exitUsage, "invalid_argument"},
		{[]string{"pay", "--bogus", "--json"}, exitUsage, "invalid_argument"},
		{[]string{"pay", "--to", "bank-b/bob", "--amount", "1", "--json"}, exitFailure, "unauthenticated"},
		{[]string{"whoami", "--json"}, exitFailure, "unauthenticated"},
		{[]string{"outbox", "flush", "--json"}, exitFailure, "unauthenticated"},
		{[]string{"payments", "get", "--json"}, exitUsage, "invalid_argument"},
		{[]string{"nope", "--json"}, exitUsage, "invalid_argument"},
	}
	for _, tt := range tests {
		code, out, errOut := remit(t, "", tt.args...)
		var res struct {
			Error *errorJSON `json:"error"`
		}
		if err := json.Unmarshal([]byte(out), &res); err != nil || code != tt.code || res.Error == nil ||
			res.Error.Code != tt.want || res.Error.Message == "" || errOut == "" {
			t.Errorf("remit %q = %d, stdout %q, stderr %q (%v); want %d and an error %s on stdout", tt.args, code, out, errOut, err, tt.code, tt.want)
		}
	}

	// A command that printed its JSON does not print a second document.
	g := clienttest.New(t)
	loginAs(t, g, "alice")
	code, out, _ := remit(t, "", "pay", "--to", "bank-b/bob", "--amount", "1000", "--json")
	if code != exitFailure || strings.Count(out, "\n") != 1 || !strings.Contains(out, `"DECLINED"`) {
		t.Errorf("declined pay --json = %d, %q; want one JSON document", code, out)
	}
	code, out, _ = remit(t, "", "payments", "get", client.NewTransactionID(), "--json")
	if code != exitFailure || strings.Count(out, "\n") != 1 || !strings.Contains(out, `"error"`) {
		t.Errorf("payments get --json of an unknown id = %d, %q", code, out)
	}
}
