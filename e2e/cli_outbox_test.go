package e2e_test

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
)

// crashAfterSendEnv is cmd/remit's test hook: the CLI kills itself with
// SIGKILL right after the gateway answered a payment sent from the outbox,
// before the outbox recorded the answer.
const crashAfterSendEnv = "REMIT_TEST_CRASH_AFTER_SEND"

// outboxList is `remit outbox --json`.
type outboxList struct {
	Queued []struct {
		TransactionID string
		Payee         string
		Amount        string
		Attempts      int
		LastError     string
		Mine          bool
	}
	History []struct {
		Status        string
		TransactionID string
	}
}

// stopUp stops a running `remit up` with SIGTERM and waits until its
// processes are gone and its ports are free.
func stopUp(t *testing.T, up *upProcess) {
	t.Helper()
	if err := up.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := up.waitExit(); code != 0 {
		t.Fatalf("remit up exited %d after SIGTERM, want 0", code)
	}
	waitGone(t, up.pids, up.port)
}

// offlineSetup starts a network, logs alice and bob in, and stops the
// network again: alice's profile now points at a gateway that is down.
func offlineSetup(t *testing.T) (dir string, port int, alice, bob *cliUser) {
	t.Helper()
	dir = filepath.Join(t.TempDir(), "net")
	port = freeBasePort(t)
	up := startUp(t, dir, port)
	pw := readPasswords(t, dir)
	alice, bob = newCLIUser(t, "alice"), newCLIUser(t, "bob")
	alice.login(dir, port, pw["alice"])
	bob.login(dir, port, pw["bob"])
	stopUp(t, up)
	return dir, port, alice, bob
}

// payOffline pays while the gateway is down: queued, said plainly, exit 3.
func payOffline(t *testing.T, alice *cliUser, amount string) string {
	t.Helper()
	r := alice.want(3, []string{"QUEUED", "saved in the outbox but not sent yet", "could not be reached", "remit outbox flush"},
		"pay", "--to", "bank-b/bob", "--amount", amount)
	return txID(t, r)
}

// TestCLIOutbox: payments made while the gateway is down are queued, listed,
// and sent in order by `remit outbox flush` once it is back, moving money
// exactly once.
func TestCLIOutbox(t *testing.T) {
	skipIfShort(t)
	dir, port, alice, bob := offlineSetup(t)

	first := payOffline(t, alice, "10")
	second := payOffline(t, alice, "0.25") // behind the first
	r := alice.want(0, []string{first, second, "10.00 usd", "0.25 usd", "connection refused"}, "outbox")
	if strings.Index(r.stdout, first) > strings.Index(r.stdout, second) {
		t.Errorf("remit outbox does not list the oldest first:\n%s", r.stdout)
	}
	var list outboxList
	alice.jsonOut(0, &list, "outbox")
	if len(list.Queued) != 2 || list.Queued[0].TransactionID != first || list.Queued[0].Amount != "1000" ||
		list.Queued[0].Attempts < 1 || list.Queued[0].LastError == "" || !list.Queued[0].Mine {
		t.Fatalf("remit outbox --json = %+v, want %s then %s", list, first, second)
	}
	// Flushing while the gateway is still down keeps them queued: exit 3.
	alice.want(3, []string{"2 payments still queued"}, "outbox", "flush")

	startUp(t, dir, port)
	r = alice.want(0, []string{first + ": SUCCEEDED 10.00 usd to bank-b/bob", second + ": SUCCEEDED 0.25 usd to bank-b/bob"},
		"outbox", "flush")
	if strings.Index(r.stdout, first) > strings.Index(r.stdout, second) {
		t.Errorf("remit outbox flush sent the newer payment first:\n%s", r.stdout)
	}
	if a, b := alice.balance(), bob.balance(); a != 100000-1025 || b != 100000+1025 {
		t.Errorf("after the flush: alice %d bob %d, want %d %d", a, b, 100000-1025, 100000+1025)
	}

	// Nothing is left to send, and flushing again changes nothing.
	alice.want(0, []string{"Nothing to send"}, "outbox", "flush")
	alice.jsonOut(0, &list, "outbox")
	if len(list.Queued) != 0 || len(list.History) < 2 || list.History[0].TransactionID != second || list.History[0].Status != "SUCCEEDED" {
		t.Errorf("remit outbox --json after the flush = %+v", list)
	}
	if a, b := alice.balance(), bob.balance(); a != 100000-1025 || b != 100000+1025 {
		t.Errorf("after a second flush: alice %d bob %d, want %d %d", a, b, 100000-1025, 100000+1025)
	}
	var payments gatewayv1.ListPaymentsResponse
	bob.jsonOut(0, &payments, "payments", "list")
	if n := len(payments.GetPayments()); n != 2 {
		t.Errorf("bob received %d payments, want 2: %v", n, &payments)
	}
}

// TestCLIOutboxCrash kills the CLI with SIGKILL in the middle of a flush,
// after the gateway answered and before the outbox recorded the answer;
// the payment stays queued, and the next flush gets the gateway's stored
// outcome: the money moved exactly once.
func TestCLIOutboxCrash(t *testing.T) {
	skipIfShort(t)
	dir, port, alice, bob := offlineSetup(t)
	id := payOffline(t, alice, "7")

	startUp(t, dir, port)
	r := alice.runEnv("", []string{crashAfterSendEnv + "=1"}, "outbox", "flush")
	if r.code != -int(syscall.SIGKILL) {
		t.Fatalf("remit outbox flush with the crash hook: want killed by SIGKILL\n%s", r)
	}
	// The gateway applied the payment, the outbox does not know yet.
	if a, b := alice.balance(), bob.balance(); a != 100000-700 || b != 100000+700 {
		t.Fatalf("after the crash: alice %d bob %d, want %d %d", a, b, 100000-700, 100000+700)
	}
	var list outboxList
	alice.jsonOut(0, &list, "outbox")
	if len(list.Queued) != 1 || list.Queued[0].TransactionID != id || list.Queued[0].Attempts < 2 {
		t.Fatalf("after the crash, remit outbox --json = %+v, want %s still queued after 2+ attempts", list, id)
	}

	// The next flush resends the same transaction id and gets the stored
	// outcome.
	alice.want(0, []string{id + ": SUCCEEDED 7.00 usd to bank-b/bob"}, "outbox", "flush")
	if a, b := alice.balance(), bob.balance(); a != 100000-700 || b != 100000+700 {
		t.Errorf("after the second flush: alice %d bob %d, want %d %d (exactly once)", a, b, 100000-700, 100000+700)
	}
	alice.jsonOut(0, &list, "outbox")
	if len(list.Queued) != 0 || len(list.History) != 1 || list.History[0].TransactionID != id || list.History[0].Status != "SUCCEEDED" {
		t.Errorf("remit outbox --json after the second flush = %+v", list)
	}
	var payments gatewayv1.ListPaymentsResponse
	alice.jsonOut(0, &payments, "payments", "list")
	if n := len(payments.GetPayments()); n != 1 || payments.GetPayments()[0].GetTransactionId() != id {
		t.Errorf("alice's payments = %v, want the one payment %s", &payments, id)
	}
}
