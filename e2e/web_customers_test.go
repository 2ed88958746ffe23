package e2e_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestWalletCustomer drives issue 12's wallet flows in headless Chromium
// against a real network: a new customer signs up with her bank's
// enrollment code and lands in her wallet, receives a payment, refunds part
// of it from her history, changes her password (her other session, the
// CLI's, ends); an admin opens and closes an account and disables her, and
// her open wallet is logged out.
func TestWalletCustomer(t *testing.T) {
	skipIfShort(t)
	w := openWallet(t, "alice")
	b := w.b

	admin := newCLIUser(t, "admin")
	admin.login(w.dir, w.port, w.pw["admin"])
	admin.want(0, nil, "admin", "accounts", "open", "--account", "bank-b/erin", "--currency", "usd")
	r := newCLIUser(t, "bank-operator").want(0, nil, "bank", "enroll", "--config", filepath.Join(w.dir, "banks", "bank-b.yaml"), "--account", "erin")
	code := enrollCode.FindString(r.stdout)
	if code == "" {
		t.Fatalf("remit bank enroll printed no code:\n%s", r)
	}

	const erinPassword = "erin's long passphrase"
	e := b.tab("erin", true)
	t.Log("step: sign up")
	e.do("sign up",
		chromedp.Navigate(b.base+"/"),
		chromedp.WaitVisible(chromedp.CSS("#reg-id")),
		chromedp.SendKeys(chromedp.CSS("#reg-id"), "erin"),
		chromedp.SendKeys(chromedp.CSS("#reg-pw"), erinPassword),
		chromedp.SendKeys(chromedp.CSS("#reg-bank"), "bank-b"),
		chromedp.SendKeys(chromedp.CSS("#reg-account"), "erin"),
		chromedp.SendKeys(chromedp.CSS("#reg-code"), strings.ToLower(code)), // case does not matter
		chromedp.Click(chromedp.CSS(`#register-form button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS("#wallet")),
	)
	e.waitText("#who", "erin · bank-b/erin")
	e.waitText("#balance", "$0.00")

	t.Log("step: receive and refund")
	r = w.alice.want(0, []string{"SUCCEEDED"}, "pay", "--to", "bank-b/erin", "--amount", "30.00", "--description", "deposit")
	paid := txID(t, r)
	e.waitText("#balance", "$30.00")
	e.do("refresh the history", chromedp.Click(chromedp.CSS("#refresh-history")))
	e.waitText(`#payments li[data-tx="`+paid+`"]`, "Received $30.00")
	// The history re-renders when events arrive, so the button is clicked
	// from the page's own script, found afresh, rather than by a node id
	// that may be gone by the time of the click.
	e.eval(`(document.querySelector('#payments li[data-tx="` + paid + `"] button.refund').click(), "clicked")`)
	if got := e.eval(`document.querySelector("#refund-tx").value`); got != paid {
		t.Fatalf("the Refund button filled in transaction %q, want %s", got, paid)
	}
	if got := e.eval(`document.querySelector("#refund-amount").value`); got != "30.00" {
		t.Errorf("the Refund button filled in amount %q, want what is left, 30.00", got)
	}
	e.do("refund 12.50 of it",
		chromedp.SetValue(chromedp.CSS("#refund-amount"), "12.50"),
		chromedp.Click(chromedp.CSS(`#refund-form button[type="submit"]`)),
	)
	e.waitText("#refund-msg", "Refunded $12.50 to bank-a/alice")
	e.waitText("#balance", "$17.50")
	e.waitText(`#payments li[data-tx="`+paid+`"]`, "$12.50 refunded")
	// The rest, and one cent more, is refused.
	e.do("refund too much",
		chromedp.SetValue(chromedp.CSS("#refund-tx"), paid),
		chromedp.SetValue(chromedp.CSS("#refund-amount"), "17.51"),
		chromedp.Click(chromedp.CSS(`#refund-form button[type="submit"]`)),
	)
	e.waitText("#refund-msg", "REFUND_EXCEEDS_PAYMENT")
	e.waitText("#balance", "$17.50")
	// Alice sees the refund in her wallet.
	w.a.do("refresh alice's history", chromedp.Click(chromedp.CSS("#refresh-history")))
	w.a.waitText("#payments", "Refund received $12.50")

	t.Log("step: change the password")
	erinCLI := newCLIUser(t, "erin")
	erinCLI.login(w.dir, w.port, erinPassword)
	const newPassword = "erin's even longer passphrase"
	e.do("change the password",
		chromedp.SendKeys(chromedp.CSS("#pw-current"), erinPassword),
		chromedp.SendKeys(chromedp.CSS("#pw-new"), newPassword),
		chromedp.Click(chromedp.CSS(`#password-form button[type="submit"]`)),
	)
	e.waitText("#password-msg", "Password changed. 1 other session(s) ended")
	if r := erinCLI.run("balance"); r.code == 0 {
		t.Errorf("erin's CLI session still works after her password changed: %s", r)
	}
	e.waitText("#balance", "$17.50") // the wallet's own session stays
	erinCLI.login(w.dir, w.port, newPassword)

	t.Log("step: admin manages accounts and users")
	ad := b.tab("admin", true)
	ad.login("admin", w.pw["admin"], "#manage")
	ad.do("open an account",
		chromedp.SendKeys(chromedp.CSS("#acct-bank"), "bank-c"),
		chromedp.SendKeys(chromedp.CSS("#acct-id"), "frank"),
		chromedp.Click(chromedp.CSS(`#account-form button[type="submit"]`)),
	)
	ad.waitText("#account-msg", "Opened bank-c/frank in usd, balance $0.00")
	ad.do("close it",
		chromedp.SetValue(chromedp.CSS("#acct-action"), "close"),
		chromedp.Click(chromedp.CSS(`#account-form button[type="submit"]`)),
	)
	ad.waitText("#account-msg", "Closed bank-c/frank")
	w.alice.want(1, []string{"DECLINED: account closed", "No money moved"}, "pay", "--to", "bank-c/frank", "--amount", "1.00")

	ad.do("disable erin",
		chromedp.SendKeys(chromedp.CSS("#user-id"), "erin"),
		chromedp.Click(chromedp.CSS(`#user-form button[type="submit"]`)),
	)
	ad.waitText("#user-msg", "Disabled erin: 2 session(s) ended")
	// Erin's wallet follows her payments live: the stream ends at once,
	// and the wallet logs her out.
	e.waitText("#login-msg", "Your session has ended")
	if r := erinCLI.run("balance"); r.code == 0 {
		t.Errorf("erin's CLI session still works after she was disabled: %s", r)
	}
}
