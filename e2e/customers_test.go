package e2e_test

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
)

// enrollCode is a code as `remit bank enroll` prints it.
var enrollCode = regexp.MustCompile(`\b[A-Z0-9]{4}(?:-[A-Z0-9]{4}){3,}\b`)

var refundIDLine = regexp.MustCompile(`Refund id: ([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})`)

// refundID returns the refund id `remit payments refund` printed.
func refundID(t *testing.T, r cliResult) string {
	t.Helper()
	m := refundIDLine.FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("no refund id in the output:\n%s", r)
	}
	return m[1]
}

// TestCustomerLifecycle is issue 12 end to end, on a `remit up` network that
// is never restarted: an admin opens an account at bank-b, the bank issues
// an enrollment code for it, a new customer registers with the CLI and the
// code, receives money, refunds part of it, and both sides see the refund;
// then the admin disables the customer, whose session ends at once.
func TestCustomerLifecycle(t *testing.T) {
	skipIfShort(t)
	dir := filepath.Join(t.TempDir(), "net")
	port := freeBasePort(t)
	up := startUp(t, dir, port)
	pw := readPasswords(t, dir)
	gatewayPID := up.pids["gateway"]
	ca := filepath.Join(dir, "certs", "ca.pem")

	admin := newCLIUser(t, "admin")
	admin.login(dir, port, pw["admin"])
	r := admin.want(0, []string{"bank-b/erin"}, "admin", "accounts", "open", "--account", "bank-b/erin", "--currency", "usd")
	var list gatewayv1.ListAccountsResponse
	admin.jsonOut(0, &list, "admin", "accounts", "list", "--bank", "bank-b")
	found := false
	for _, a := range list.GetAccounts() {
		if a.GetAccount().GetAccountId() == "erin" {
			found = a.GetState() == gatewayv1.AccountState_ACCOUNT_STATE_OPEN && a.GetBalance() == 0
		}
	}
	if !found {
		t.Fatalf("admin accounts list --bank bank-b lists no open, empty erin:\n%s", r)
	}

	// The bank's operator issues the code (the bank is running).
	bankOp := newCLIUser(t, "bank-operator")
	r = bankOp.want(0, nil, "bank", "enroll", "--config", filepath.Join(dir, "banks", "bank-b.yaml"), "--account", "erin")
	code := enrollCode.FindString(r.stdout)
	if code == "" {
		t.Fatalf("remit bank enroll printed no code:\n%s", r)
	}

	// A wrong code is refused and creates nobody.
	erin := newCLIUser(t, "erin")
	const erinPassword = "a long passphrase for erin"
	base := []string{"register", "--gateway", gatewayURL(port), "--ca", ca, "--password-stdin", "--account", "bank-b/erin"}
	wrong := "ZZZZ-ZZZZ-ZZZZ-ZZZZ"
	if wrong == code {
		wrong = "YYYY-YYYY-YYYY-YYYY"
	}
	r = erin.runEnv(erinPassword+"\n", nil, append(base, "--code", wrong, "erin")...)
	erin.check(r, 1, []string{"the enrollment code is wrong, expired or already used", "nothing was created"}, "register")
	// A common password is refused before the code is spent.
	r = erin.runEnv("password1234\n", nil, append(base, "--code", code, "erin")...)
	erin.check(r, 1, []string{"too weak", "nothing was created"}, "register")
	r = erin.runEnv(erinPassword+"\n", nil, append(base, "--code", code, "erin")...)
	erin.check(r, 0, []string{"erin", "bank-b/erin"}, "register")
	erin.want(0, []string{"erin (account bank-b/erin, customer)"}, "whoami")
	// Three sign-ups from this address in a row were allowed: the fourth
	// is rate-limited, and says how long to wait.
	mallory := newCLIUser(t, "mallory")
	r = mallory.runEnv("another long passphrase\n", nil, append(base, "--code", code, "mallory")...)
	mallory.check(r, 1, []string{"too many attempts from here: try again in"}, "register")
	// Once it may try again: the code is spent, nobody else can use it.
	for deadline := time.Now().Add(40 * time.Second); strings.Contains(r.stderr, "too many attempts") && time.Now().Before(deadline); {
		time.Sleep(2 * time.Second)
		r = mallory.runEnv("another long passphrase\n", nil, append(base, "--code", code, "mallory")...)
	}
	mallory.check(r, 1, []string{"the enrollment code is wrong, expired or already used"}, "register")

	// Erin receives money from alice and refunds part of it.
	alice := newCLIUser(t, "alice")
	alice.login(dir, port, pw["alice"])
	r = alice.want(0, []string{"SUCCEEDED"}, "pay", "--to", "bank-b/erin", "--amount", "20.00", "--description", "welcome")
	paid := txID(t, r)
	if got := erin.balance(); got != 2000 {
		t.Fatalf("erin has %d cents after alice's payment, want 2000", got)
	}
	aliceBefore := alice.balance()
	r = erin.want(0, []string{"SUCCEEDED"}, "payments", "refund", paid, "--amount", "5.00", "--reason", "requested_by_customer")
	refund := refundID(t, r)
	if refund == paid {
		t.Fatalf("the refund has the payment's id %s", paid)
	}
	if got := erin.balance(); got != 1500 {
		t.Errorf("erin has %d cents after refunding 5.00 of 20.00, want 1500", got)
	}
	if got := alice.balance(); got != aliceBefore+500 {
		t.Errorf("alice has %d cents after the refund, want %d", got, aliceBefore+500)
	}
	var p gatewayv1.Payment
	alice.jsonOut(0, &p, "payments", "get", paid)
	if p.GetAmountRefunded() != 500 || len(p.GetRefunds()) != 1 || p.GetRefunds()[0].GetTransactionId() != refund {
		t.Errorf("alice's view of the payment after the refund = %v, want 500 refunded by %s", &p, refund)
	}
	alice.want(0, []string{refund}, "payments", "list")
	alice.jsonOut(0, &p, "payments", "get", refund)
	if p.GetRefundedTransactionId() != paid || p.GetStatus() != gatewayv1.PaymentStatus_PAYMENT_STATUS_SUCCEEDED {
		t.Errorf("the refund as alice sees it = %v, want a succeeded refund of %s", &p, paid)
	}
	// More than what is left is refused and moves nothing.
	erin.want(1, []string{"REFUSED: refund exceeds payment", "1500 of its 2000 is left", "No money moved"}, "payments", "refund", paid, "--amount", "15.01")
	if got := erin.balance(); got != 1500 {
		t.Errorf("erin has %d cents after a refused refund, want 1500", got)
	}

	// The admin disables erin: her session ends at once.
	admin.want(0, nil, "admin", "users", "disable", "erin")
	r = erin.run("balance")
	erin.check(r, 1, []string{"your session expired: run `remit login erin`"}, "balance")
	// And she cannot log in again.
	r = erin.runEnv(erinPassword+"\n", nil, "login", "--gateway", gatewayURL(port), "--ca", ca, "--password-stdin", "erin")
	erin.check(r, 1, nil, "login")

	if !alive(gatewayPID) || up.pids["gateway"] != gatewayPID {
		t.Errorf("the gateway (pid %d) did not run through the whole test", gatewayPID)
	}
}
