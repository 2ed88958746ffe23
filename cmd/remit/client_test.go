package main

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/remitpay/remit/client"
	"github.com/remitpay/remit/client/clienttest"
)

// These tests run the client commands in-process against the SDK's fake
// gateway (client/clienttest); e2e/cli_test.go runs the real binary
// against a real `remit up`.

// clientEnv points the state directory at a fresh temporary directory and
// clears the overrides, so the tests see only what they set up.
func clientEnv(t *testing.T) string {
	t.Helper()
	home := t.TempDir()
	t.Setenv("REMIT_HOME", home)
	t.Setenv(envGateway, "")
	t.Setenv(envCA, "")
	t.Setenv(crashAfterSendEnv, "")
	return home
}

// loginAs logs clientID in to g with --password-stdin.
func loginAs(t *testing.T, g *clienttest.Gateway, clientID string) {
	t.Helper()
	code, out, errOut := remit(t, clientID+"-pw\n", "login", "--gateway", g.URL, "--ca", g.CAFile, "--password-stdin", clientID)
	if code != exitOK || !strings.Contains(out, "Logged in as "+clientID) {
		t.Fatalf("login %s = %d\n%s%s", clientID, code, out, errOut)
	}
}

var txIDRE = regexp.MustCompile(`Transaction id: ([0-9a-f-]{36})`)

func TestClientUsageErrors(t *testing.T) {
	clientEnv(t)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"login"}, "missing CLIENT_ID"},
		{[]string{"login", "a", "b"}, `unexpected argument "b"`},
		{[]string{"login", "bad id"}, `client id "bad id"`},
		{[]string{"login", "--gateway", "http://127.0.0.1:1", "--password-stdin", "alice"}, "must use https"},
		{[]string{"pay", "--amount", "1"}, "--to is required"},
		{[]string{"pay", "--to", "bank-b/bob"}, "--amount is required"},
		{[]string{"pay", "--to", "bob", "--amount", "1"}, `--to: account "bob" is not BANK/ACCOUNT`},
		{[]string{"pay", "--to", "bank-b/bob", "--amount", "12.505"}, `--amount: amount "12.505" has more than 2 decimals for usd`},
		{[]string{"pay", "--to", "bank-b/bob", "--amount", "1.5", "--currency", "jpy"}, "more than 0 decimals for jpy"},
		{[]string{"pay", "--to", "bank-b/bob", "--amount", "1e3"}, `amount "1e3" is not a decimal number`},
		{[]string{"pay", "--to", "bank-b/bob", "--amount", "-1"}, `amount "-1" is not a decimal number`},
		{[]string{"pay", "--to", "bank-b/bob", "--amount", "0"}, "amount must be positive"},
		{[]string{"pay", "--to", "bank-b/bob", "--amount", "1", "--currency", "USD"}, `currency "USD"`},
		{[]string{"pay", "--to", "bank-b/bob", "--amount", "1", "--transaction-id", "nope"}, `transaction id "nope" is not a UUID`},
		{[]string{"pay", "--to", "bank-b/bob", "--amount", "1", "extra"}, `unexpected argument "extra"`},
		{[]string{"balance", "--account", "x"}, `--account: account "x"`},
		{[]string{"payments", "bogus"}, `unknown subcommand "bogus"`},
		{[]string{"payments", "get"}, "missing TRANSACTION_ID"},
		{[]string{"payments", "ack", "a", "b"}, `unexpected argument "b"`},
		{[]string{"payments", "list", "--limit", "0"}, "--limit 0"},
		{[]string{"payments", "watch", "--limit", "3"}, "--limit and --account only apply to list"},
		{[]string{"payments", "list", "--after", "3"}, "--after only applies to watch"},
		{[]string{"payments", "watch", "--after", "-1"}, "--after -1"},
		{[]string{"admin"}, "missing subcommand"},
		{[]string{"admin", "refund"}, `unknown subcommand "refund"`},
		{[]string{"admin", "deposit", "--amount", "1"}, "--account is required"},
		{[]string{"admin", "withdraw", "--account", "bank-a/alice"}, "--amount is required"},
		{[]string{"admin", "deposit", "--account", "bank-a/alice", "--amount", "0.001"}, "more than 2 decimals"},
		{[]string{"admin", "banks", "--account", "bank-a/alice"}, "only apply to deposit and withdraw"},
		{[]string{"outbox", "send"}, `unknown subcommand "send"`},
		{[]string{"outbox", "--watch"}, "--watch only applies to flush"},
		{[]string{"outbox", "flush", "--history", "3"}, "--history only applies to the list"},
		{[]string{"whoami", "x"}, `unexpected argument "x"`},
	}
	for _, tt := range tests {
		code, out, errOut := remit(t, "", tt.args...)
		if code != exitUsage || !strings.Contains(errOut, tt.want) || !strings.Contains(errOut, "--help' for usage") {
			t.Errorf("remit %q = %d, stderr %q, stdout %q; want 2 and %q", tt.args, code, errOut, out, tt.want)
		}
	}
}

func TestClientNotLoggedIn(t *testing.T) {
	home := clientEnv(t)
	for _, args := range [][]string{
		{"balance"}, {"pay", "--to", "bank-b/bob", "--amount", "1"}, {"payments"}, {"outbox", "flush"}, {"whoami"}, {"admin", "banks"},
	} {
		code, _, errOut := remit(t, "", args...)
		if code != exitFailure || !strings.Contains(errOut, "not logged in: run `remit login CLIENT_ID`") {
			t.Errorf("remit %q = %d, %q; want 1 and how to log in", args, code, errOut)
		}
	}
	// Nothing was queued, and listing the outbox creates none.
	code, out, _ := remit(t, "", "outbox")
	if code != exitOK || !strings.Contains(out, "No payment is queued.") {
		t.Errorf("outbox = %d, %q", code, out)
	}
	if _, err := os.Stat(filepath.Join(home, outboxFile)); err == nil {
		t.Errorf("listing an empty outbox created %s", outboxFile)
	}
	if code, out, _ := remit(t, "", "logout"); code != exitOK || !strings.Contains(out, "Not logged in.") {
		t.Errorf("logout when logged out = %d, %q", code, out)
	}
}

func TestClientSession(t *testing.T) {
	g := clienttest.New(t)
	clientEnv(t)

	if code, _, errOut := remit(t, "wrong\n", "login", "--gateway", g.URL, "--ca", g.CAFile, "--password-stdin", "alice"); code != exitFailure || !strings.Contains(errOut, "wrong client id or password") {
		t.Errorf("login with a wrong password = %d, %q", code, errOut)
	}
	loginAs(t, g, "alice")
	code, out, _ := remit(t, "", "whoami")
	if code != exitOK || !strings.Contains(out, "alice (account bank-a/alice, customer)") || !strings.Contains(out, g.URL) {
		t.Errorf("whoami = %d:\n%s", code, out)
	}

	code, out, errOut := remit(t, "", "pay", "--to", "bank-b/bob", "--amount", "12.50", "--description", "lunch")
	m := txIDRE.FindStringSubmatch(out)
	if code != exitOK || !strings.Contains(out, "SUCCEEDED") || m == nil {
		t.Fatalf("pay = %d:\n%s%s", code, out, errOut)
	}
	paid := m[1]
	if got := g.Balance(clienttest.Alice); got != clienttest.InitialBalance-1250 {
		t.Errorf("alice has %d after paying 12.50, want %d", got, clienttest.InitialBalance-1250)
	}

	// The same transaction id again is the same payment.
	code, out, _ = remit(t, "", "pay", "--to", "bank-b/bob", "--amount", "12.50", "--description", "lunch", "--transaction-id", strings.ToUpper(paid))
	if code != exitOK || !strings.Contains(out, paid) || g.Balance(clienttest.Alice) != clienttest.InitialBalance-1250 {
		t.Errorf("pay again with the same id = %d, alice %d:\n%s", code, g.Balance(clienttest.Alice), out)
	}

	code, out, _ = remit(t, "", "pay", "--to", "bank-b/bob", "--amount", "1000")
	if code != exitFailure || !strings.Contains(out, "DECLINED: insufficient funds") || !txIDRE.MatchString(out) {
		t.Errorf("overdraft = %d:\n%s", code, out)
	}
	code, out, _ = remit(t, "", "pay", "--to", "bank-b/bob", "--amount", "1000", "--json")
	var res outcomeJSON
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != exitFailure || res.Status != "DECLINED" || res.Error == nil || res.Error.Reason != "INSUFFICIENT_FUNDS" {
		t.Errorf("overdraft --json = %d, %q (%v)", code, out, err)
	}

	code, out, _ = remit(t, "", "balance")
	if code != exitOK || !strings.Contains(out, "87.50 usd") {
		t.Errorf("balance = %d:\n%s", code, out)
	}
	code, out, _ = remit(t, "", "payments", "list", "--limit", "1", "--json")
	var list struct {
		Payments []struct {
			TransactionID string `json:"transactionId"`
		} `json:"payments"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil || code != exitOK || len(list.Payments) != 1 {
		t.Errorf("payments list --limit 1 --json = %d, %q (%v)", code, out, err)
	}
	code, out, _ = remit(t, "", "payments", "get", paid)
	if code != exitOK || !strings.Contains(out, "lunch") || !strings.Contains(out, "SUCCEEDED") {
		t.Errorf("payments get = %d:\n%s", code, out)
	}

	// The payee acknowledges; the payer may not.
	if code, _, errOut := remit(t, "", "payments", "ack", paid); code != exitFailure || !strings.Contains(errOut, "permission denied") {
		t.Errorf("ack by the payer = %d, %q", code, errOut)
	}
	loginAs(t, g, "bob")
	if code, out, _ := remit(t, "", "payments", "ack", paid); code != exitOK || !strings.Contains(out, "Acknowledged "+paid) {
		t.Errorf("ack by the payee = %d, %q", code, out)
	}

	// Staff.
	loginAs(t, g, "admin")
	code, out, errOut = remit(t, "", "admin", "deposit", "--account", "bank-a/alice", "--amount", "10")
	if code != exitOK || !strings.Contains(out, "Deposited 10.00 usd to bank-a/alice") || g.Balance(clienttest.Alice) != clienttest.InitialBalance-1250+1000 {
		t.Errorf("admin deposit = %d:\n%s%s", code, out, errOut)
	}
	if code, _, errOut := remit(t, "", "admin", "withdraw", "--account", "bank-a/alice", "--amount", "100000"); code != exitFailure || !strings.Contains(errOut, "declined: insufficient funds") {
		t.Errorf("admin overdraft = %d, %q", code, errOut)
	}

	// An expired session says how to log in again.
	g.RevokeTokens()
	if code, _, errOut := remit(t, "", "admin", "banks"); code != exitFailure || !strings.Contains(errOut, "your session expired: run `remit login admin`") {
		t.Errorf("banks with a revoked token = %d, %q", code, errOut)
	}
	if code, out, _ := remit(t, "", "logout"); code != exitOK || !strings.Contains(out, "Logged out admin") {
		t.Errorf("logout = %d, %q", code, out)
	}
	if code, _, _ := remit(t, "", "whoami"); code != exitFailure {
		t.Errorf("whoami after logout = %d, want 1", code)
	}
}

func TestClientSessionExpiredLocally(t *testing.T) {
	g := clienttest.New(t)
	home := clientEnv(t)
	loginAs(t, g, "alice")
	p, err := client.LoadProfile(home)
	if err != nil {
		t.Fatal(err)
	}
	p.ExpireTime = time.Now().Add(-time.Minute)
	if err := p.Save(home); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"whoami"}, {"balance"}, {"pay", "--to", "bank-b/bob", "--amount", "1"}} {
		code, _, errOut := remit(t, "", args...)
		if code != exitFailure || !strings.Contains(errOut, "your session expired: run `remit login alice`") {
			t.Errorf("remit %q with an expired session = %d, %q", args, code, errOut)
		}
	}
	if len(g.PayCalls()) != 0 {
		t.Errorf("a payment was sent with an expired session: %v", g.PayCalls())
	}
}

func TestClientOutboxWhileDown(t *testing.T) {
	g := clienttest.New(t)
	clientEnv(t)
	loginAs(t, g, "alice")
	g.SetDown(true)

	code, out, errOut := remit(t, "", "pay", "--to", "bank-b/bob", "--amount", "2.5")
	m := txIDRE.FindStringSubmatch(out)
	if code != exitQueued || !strings.Contains(out, "QUEUED") || !strings.Contains(out, "remit outbox flush") || m == nil {
		t.Fatalf("pay while down = %d:\n%s%s", code, out, errOut)
	}
	queued := m[1]
	code, out, _ = remit(t, "", "outbox")
	if code != exitOK || !strings.Contains(out, queued) || !strings.Contains(out, "2.50 usd") {
		t.Errorf("outbox = %d:\n%s", code, out)
	}
	if code, out, _ := remit(t, "", "outbox", "flush"); code != exitQueued || !strings.Contains(out, "1 payment still queued") {
		t.Errorf("flush while down = %d:\n%s", code, out)
	}

	g.SetDown(false)
	code, out, _ = remit(t, "", "outbox", "flush", "--json")
	var rep struct {
		Outcomes  []outcomeJSON `json:"outcomes"`
		Remaining int           `json:"remaining"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != exitOK || rep.Remaining != 0 ||
		len(rep.Outcomes) != 1 || rep.Outcomes[0].Status != "SUCCEEDED" || rep.Outcomes[0].TransactionID != queued {
		t.Errorf("flush --json = %d, %q (%v)", code, out, err)
	}
	if got := g.Balance(clienttest.Alice); got != clienttest.InitialBalance-250 {
		t.Errorf("alice has %d, want %d: the queued payment moved money %s", got, clienttest.InitialBalance-250, "not exactly once")
	}
	code, out, _ = remit(t, "", "outbox", "--json")
	var list struct {
		Queued  []queuedJSON  `json:"queued"`
		History []historyJSON `json:"history"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil || code != exitOK || len(list.Queued) != 0 ||
		len(list.History) != 1 || list.History[0].TransactionID != queued {
		t.Errorf("outbox --json after the flush = %d, %q (%v)", code, out, err)
	}
}

// TestCLIFailsOverBetweenReplicas: logged in with two gateway URLs (the
// first does not answer), the profile keeps both, and a later command
// without --gateway still reaches the replica that answers.
func TestCLIFailsOverBetweenReplicas(t *testing.T) {
	home := clientEnv(t)
	g := clienttest.New(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "https://" + ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	list := dead + "," + g.URL
	code, out, errOut := remit(t, "alice-pw\n", "login", "--gateway", list, "--ca", g.CAFile, "--password-stdin", "alice")
	if code != exitOK || !strings.Contains(out, "Logged in as alice") {
		t.Fatalf("login with %s = %d\n%s%s", list, code, out, errOut)
	}
	p, err := client.LoadProfile(home) // $REMIT_HOME
	if err != nil {
		t.Fatal(err)
	}
	if p.GatewayURL != dead || len(p.MoreGatewayURLs) != 1 || p.MoreGatewayURLs[0] != g.URL {
		t.Errorf("profile gateway %q and replicas %v, want %q and [%q]", p.GatewayURL, p.MoreGatewayURLs, dead, g.URL)
	}
	if code, out, errOut := remit(t, "", "balance"); code != exitOK {
		t.Errorf("balance after logging in to two replicas, the first dead = %d\n%s%s", code, out, errOut)
	}
}
