package e2e_test

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
	"github.com/remitpay/remit/internal/devnet"
	"github.com/remitpay/remit/internal/store/storetest"
)

// chromiumPath is Debian's chromium, which .ci/run installs.
const chromiumPath = "/usr/bin/chromium"

// requireBrowserEnv, when set (.ci/run sets it), turns the skip of the
// browser tests for a missing chromium into a failure.
const requireBrowserEnv = "REMIT_E2E_REQUIRE_BROWSER"

// browserWait bounds every wait for the page (a payment, the live feed).
const browserWait = 20 * time.Second

// browser is a headless Chromium with a fresh profile that trusts the
// gateway's certificate (its public key, by hash) and nothing else extra.
type browser struct {
	t     *testing.T
	ctx   context.Context //nolint:containedctx // chromedp's handle on the browser's first tab
	base  string          // the wallet's URL without the trailing slash
	shots string          // where screenshots go
	n     int             // screenshots taken
}

func newBrowser(t *testing.T, dir string, port int) *browser {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv(requireBrowserEnv) != "" {
			t.Fatalf("no %s (%s is set: CI must not skip the browser tests; .ci/run installs chromium): %v", chromiumPath, requireBrowserEnv, err)
		}
		t.Skipf("no %s (apt-get install chromium; .ci/run does; set %s=1 to fail instead of skipping): %v", chromiumPath, requireBrowserEnv, err)
	}
	shots := os.Getenv("REMIT_SCREENSHOTS")
	if shots == "" {
		var err error
		// Not t.TempDir: the screenshots are kept after the test, to look at.
		if shots, err = os.MkdirTemp("", "remit-wallet-shots-"); err != nil { //nolint:usetesting // kept on purpose
			t.Fatal(err)
		}
	} else if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("lang", "en-US"),
		chromedp.Flag("ignore-certificate-errors-spki-list", spkiHash(t, filepath.Join(dir, "certs", "gateway.pem"))),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1100, 1000),
		chromedp.Env("LANG=en_US.UTF-8", "TZ=UTC"),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("start chromium: %v", err)
	}
	return &browser{t: t, ctx: ctx, base: gatewayURL(port), shots: shots}
}

// spkiHash is base64(sha256(SubjectPublicKeyInfo)) of the first
// certificate in file, as --ignore-certificate-errors-spki-list wants.
func spkiHash(t *testing.T, file string) string {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatalf("%s: no PEM block", file)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(sum[:])
}

// tab is one page of the wallet in a browser context of its own (its own
// sessionStorage and IndexedDB), or in the browser's first context.
type tab struct {
	b    *browser
	name string
	ctx  context.Context //nolint:containedctx // chromedp's handle on the tab
}

func (b *browser) tab(name string, own bool) *tab {
	b.t.Helper()
	ctx := b.ctx
	if own {
		var cancel context.CancelFunc
		ctx, cancel = chromedp.NewContext(b.ctx, chromedp.WithNewBrowserContext())
		b.t.Cleanup(cancel)
		// The first Do makes the tab and ties it to the context it gets:
		// this one, not a shorter-lived one with a timeout.
		if err := chromedp.Do(ctx); err != nil {
			b.t.Fatalf("new browser context for %s: %v", name, err)
		}
	}
	return &tab{b: b, name: name, ctx: ctx}
}

func (p *tab) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	p.b.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, browserWait)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		p.shot("failed-" + what)
		p.b.t.Fatalf("%s: %s: %v\npage text:\n%s", p.name, what, err, p.text("body"))
	}
}

// text is the textContent of the first element matching css ("" if none).
func (p *tab) text(css string) string {
	ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(`document.querySelector(%q)?.textContent ?? ""`, css)))
	if err != nil {
		return "<" + err.Error() + ">"
	}
	return s
}

func (p *tab) eval(js string) string {
	p.b.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](js))
	if err != nil {
		p.b.t.Fatalf("%s: %s: %v", p.name, js, err)
	}
	return s
}

// waitText waits until css's text contains want.
func (p *tab) waitText(css, want string) string {
	p.b.t.Helper()
	deadline := time.Now().Add(browserWait)
	for {
		got := p.text(css)
		if strings.Contains(got, want) {
			return got
		}
		if time.Now().After(deadline) {
			p.shot("failed-wait")
			p.b.t.Fatalf("%s: %s never contained %q; it holds %q\npage text:\n%s", p.name, css, want, got, p.text("body"))
		}
		time.Sleep(pollEvery)
	}
}

// shot saves a PNG of the whole page and prints its path.
func (p *tab) shot(label string) {
	p.b.n++
	file := filepath.Join(p.b.shots, fmt.Sprintf("%s-%02d-%s-%s.png", p.b.t.Name(), p.b.n, p.name, label))
	file = strings.ReplaceAll(file, "/"+p.b.t.Name(), "/"+strings.ReplaceAll(p.b.t.Name(), "/", "_"))
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err == nil {
		err = os.WriteFile(file, png, 0o644)
	}
	if err != nil {
		p.b.t.Logf("screenshot %s: %v", file, err)
		return
	}
	p.b.t.Logf("screenshot: %s", file)
}

// login opens the wallet and logs id in.
func (p *tab) login(id, password, wantSection string) {
	p.b.t.Helper()
	p.do("log in as "+id,
		chromedp.Navigate(p.b.base+"/"),
		chromedp.WaitVisible(chromedp.CSS("#login-id")),
		chromedp.SendKeys(chromedp.CSS("#login-id"), id),
		chromedp.SendKeys(chromedp.CSS("#login-pw"), password),
		chromedp.Click(chromedp.CSS(`#login-form button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(wantSection)),
	)
}

// pay fills in the send form for payee ("bank/account") and submits it.
func (p *tab) pay(payee, amount, description string) {
	p.b.t.Helper()
	bank, account, _ := strings.Cut(payee, "/")
	steps := []chromedp.Action[chromedp.Void]{
		chromedp.SendKeys(chromedp.CSS("#payee-bank"), bank),
		chromedp.SendKeys(chromedp.CSS("#payee-account"), account),
		chromedp.SendKeys(chromedp.CSS("#amount"), amount),
	}
	if description != "" {
		// SetValue: SendKeys would type "<" as a key press.
		steps = append(steps, chromedp.SetValue(chromedp.CSS("#description"), description))
	}
	steps = append(steps, chromedp.Click(chromedp.CSS(`#send-form button[type="submit"]`)))
	p.do("pay "+amount+" to "+bank+"/"+account, steps...)
}

// wallet is a network with alice and bob logged in with the CLI and
// alice's wallet open in a browser tab, her balance shown.
type wallet struct {
	dir        string
	port       int
	up         *upProcess
	pw         map[string]string
	alice, bob *cliUser
	b          *browser
	a          *tab
}

// openWallet starts a wallet; tabName names alice's tab's screenshots.
func openWallet(t *testing.T, tabName string) *wallet {
	t.Helper()
	w := &wallet{dir: filepath.Join(t.TempDir(), "net"), port: freeBasePort(t)}
	w.up = startUp(t, w.dir, w.port)
	w.pw = readPasswords(t, w.dir)
	w.alice, w.bob = newCLIUser(t, "alice"), newCLIUser(t, "bob")
	w.alice.login(w.dir, w.port, w.pw["alice"])
	w.bob.login(w.dir, w.port, w.pw["bob"])
	w.b = newBrowser(t, w.dir, w.port)
	w.a = w.b.tab(tabName, false)
	w.a.login("alice", w.pw["alice"], "#wallet")
	w.a.waitText("#balance", "$1,000.00")
	return w
}

// cliBalances are alice's and bob's balances from the gateway, read with
// the CLI, independent of the page.
func cliBalances(alice, bob *cliUser) (int64, int64) { return alice.balance(), bob.balance() }

// TestWalletBrowser drives the wallet in headless Chromium against a real
// network: alice pays bob and sees her balance change; bob, in another
// browser context, sees it arrive live and acknowledges it, and alice's
// history shows that; a decline says why and moves nothing; a description
// of HTML and script stays text; staff see the banks, an account's
// balance, and (admin) make a deposit.
func TestWalletBrowser(t *testing.T) {
	skipIfShort(t)
	w := openWallet(t, "alice")
	pw, alice, bob, b, a := w.pw, w.alice, w.bob, w.b, w.a
	a.waitText("#available", "$1,000.00")

	bt := b.tab("bob", true)
	bt.login("bob", pw["bob"], "#feed")
	bt.waitText("#feed-state", "Live")
	bt.waitText("#balance", "$1,000.00")

	const script = `<img src=x onerror="window.pwned=1"><script>window.pwned=2</script><b>lunch</b> & "tea"`
	{ // pay, live feed, acknowledge
		t.Log("step: pay, live feed, acknowledge")
		a.pay("bank-b/bob", "12.50", script)
		msg := a.waitText("#send-msg", "Sent $12.50 to bank-b/bob")
		if !strings.Contains(msg, "succeeded") {
			t.Errorf("success message %q does not say succeeded", msg)
		}
		a.waitText("#balance", "$987.50")
		a.shot("sent")
		if ab, bb := cliBalances(alice, bob); ab != 100000-1250 || bb != 100000+1250 {
			t.Fatalf("balances after the payment: alice %d bob %d", ab, bb)
		}

		// Bob's page gets it from WatchPayments, with no reload.
		item := bt.waitText("#incoming li", "$12.50 from bank-a/alice")
		if !strings.Contains(item, script) {
			t.Errorf("bob's feed item %q does not show the description as text %q", item, script)
		}
		if got := bt.eval(`String(document.querySelectorAll("#incoming img, #incoming script, #incoming b").length) + "/" + String(window.pwned)`); got != "0/undefined" {
			t.Errorf("the description became HTML on bob's page: elements/pwned = %s", got)
		}
		bt.waitText("#balance", "$1,012.50")
		bt.shot("incoming")
		// With the keyboard: focus the button, press Enter.
		bt.do("acknowledge", chromedp.Focus(chromedp.CSS("#incoming li button")), chromedp.KeyEvent("\r"),
			chromedp.WaitVisible(chromedp.CSS(`#incoming li[data-ack="yes"]`)))
		bt.shot("acknowledged")

		a.do("refresh history", chromedp.Click(chromedp.CSS("#refresh-history")))
		h := a.waitText("#payments li", "acknowledged")
		if !strings.Contains(h, "Sent $12.50") || !strings.Contains(h, "To bank-b/bob") || !strings.Contains(h, script) {
			t.Errorf("alice's history item %q", h)
		}
		if got := a.eval(`String(document.querySelectorAll("#payments img, #payments script, #payments b").length) + "/" + String(window.pwned)`); got != "0/undefined" {
			t.Errorf("the description became HTML on alice's page: elements/pwned = %s", got)
		}
		a.shot("history")
	}

	{ // decline
		t.Log("step: decline")
		a.pay("bank-b/bob", "5000", "")
		msg := a.waitText("#send-msg", "INSUFFICIENT_FUNDS")
		for _, want := range []string{"Declined", "Nothing moved", "smaller amount"} {
			if !strings.Contains(msg, want) {
				t.Errorf("decline message %q lacks %q", msg, want)
			}
		}
		a.shot("declined")
		if ab, bb := cliBalances(alice, bob); ab != 100000-1250 || bb != 100000+1250 {
			t.Errorf("a decline moved money: alice %d bob %d", ab, bb)
		}
		if q := a.text("#queue"); q != "" {
			t.Errorf("a declined payment is still queued: %q", q)
		}
		a.pay("bank-b/nobody", "1", "")
		a.waitText("#send-msg", "ACCOUNT_NOT_FOUND")
	}

	{ // narrow screen
		t.Log("step: narrow screen")
		a.do("phone viewport", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile))
		if w := a.eval(`String(document.documentElement.scrollWidth)`); w != "390" {
			t.Errorf("on a 390px screen the page is %spx wide: it scrolls sideways", w)
		}
		a.shot("phone")
		a.do("reset viewport", chromedp.EmulateReset())
	}

	{ // staff
		t.Log("step: staff")
		s := b.tab("admin", true)
		s.login("admin", pw["admin"], "#staff")
		for _, bank := range []string{"bank-a", "bank-b", "bank-c"} {
			s.waitText(fmt.Sprintf(`#banks tr[data-bank=%q]`, bank), "serving")
		}
		if s.eval(`String(document.getElementById("wallet").hidden)`) != "true" {
			t.Error("the admin, who has no account, sees the wallet section")
		}
		s.do("look up bob", chromedp.SendKeys(chromedp.CSS("#lookup-bank"), "bank-b"),
			chromedp.SendKeys(chromedp.CSS("#lookup-account"), "bob"),
			chromedp.Click(chromedp.CSS(`#lookup-form button[type="submit"]`)))
		s.waitText("#lookup-msg", "bank-b/bob: balance $1,012.50")
		s.do("deposit to carol", chromedp.SendKeys(chromedp.CSS("#adjust-bank"), "bank-c"),
			chromedp.SendKeys(chromedp.CSS("#adjust-account"), "carol"),
			chromedp.SendKeys(chromedp.CSS("#adjust-amount"), "3.25"),
			chromedp.Click(chromedp.CSS(`#adjust-form button[type="submit"]`)))
		s.waitText("#adjust-msg", "Deposited $3.25: bank-c/carol now holds $1,003.25")
		s.shot("staff")

		// The auditor logs in with the keyboard only: type, Tab, type, Enter.
		au := b.tab("auditor", true)
		au.do("log in as auditor with the keyboard",
			chromedp.Navigate(b.base+"/"),
			chromedp.WaitVisible(chromedp.CSS("#login-id")),
			chromedp.Focus(chromedp.CSS("#login-id")),
			chromedp.KeyEvent("auditor\t"+pw["auditor"]+"\r"),
			chromedp.WaitVisible(chromedp.CSS("#staff")))
		au.waitText(`#banks tr[data-bank="bank-a"]`, "serving")
		if au.eval(`String(document.getElementById("adjust").hidden)`) != "true" {
			t.Error("the auditor sees the deposit form")
		}
	}

	{ // history pages
		t.Log("step: history pages")
		dave := newCLIUser(t, "dave")
		dave.login(w.dir, w.port, pw["dave"])
		for range 10 {
			dave.want(0, nil, "pay", "--to", "bank-a/alice", "--amount", "0.01")
		}
		a.do("refresh history", chromedp.Click(chromedp.CSS("#refresh-history")))
		a.waitText("#payments li", "Received $0.01")
		a.do("older payments", chromedp.WaitVisible(chromedp.CSS("#older")), chromedp.Click(chromedp.CSS("#older")))
		a.waitText("#payments li:last-child", "Sent $12.50")
		if n, _ := strconv.Atoi(a.eval(`String(document.querySelectorAll("#payments li").length)`)); n <= 10 {
			t.Errorf("after Older payments the history has %d items, want more than one page of 10", n)
		}
		a.shot("history-pages")
	}
}

// TestWalletOffline: with the gateway down a payment is queued under the
// id the page made; it survives a reload; and once the gateway answers
// it is sent with that same id and moves the money exactly once.
func TestWalletOffline(t *testing.T) {
	skipIfShort(t)
	w := openWallet(t, "alice")
	dir, port, up, alice, bob, a := w.dir, w.port, w.up, w.alice, w.bob, w.a

	stopUp(t, up)
	a.pay("bank-b/bob", "7.25", "sent while the gateway was down")
	a.waitText("#send-msg", "Queued")
	q := a.waitText("#queue li", "Queued $7.25 to bank-b/bob")
	tx := a.eval(`document.querySelector("#queue li").dataset.tx`)
	if !strings.Contains(q, tx) || len(tx) != 36 {
		t.Fatalf("queued item %q: transaction id %q", q, tx)
	}
	a.shot("queued")

	// The gateway comes back, but the browser's payment calls still fail
	// (Fetch interception), so that the reload finds the payment queued.
	var blocked atomic.Int32
	paused := chromedp.Events(a.ctx, fetch.RequestPaused)
	go func() {
		for ev, err := range paused {
			if err != nil {
				return
			}
			blocked.Add(1)
			_, _ = chromedp.Call(a.ctx, fetch.FailRequest, fetch.FailRequestParams{
				RequestID: ev.RequestID, ErrorReason: network.ErrorReasonConnectionRefused,
			}) // the tab may be gone at the end of the test
		}
	}()
	if _, err := chromedp.Call(a.ctx, fetch.Enable, fetch.EnableParams{
		Patterns: []*fetch.RequestPattern{{URLPattern: "*/remit.gateway.v1.PaymentService/MakePayment"}},
	}); err != nil {
		t.Fatal(err)
	}
	startUp(t, dir, port)
	a.do("reload", chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("#wallet")))
	a.waitText("#balance", "$1,000.00")
	a.waitText(fmt.Sprintf(`#queue li[data-tx=%q]`, tx), "Queued $7.25 to bank-b/bob")
	deadline := time.Now().Add(browserWait)
	for blocked.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(pollEvery)
	}
	if blocked.Load() == 0 {
		t.Fatal("the reloaded page never resent the queued payment")
	}
	if n := a.eval(`String(document.querySelectorAll("#queue li").length)`); n != "1" {
		t.Fatalf("after the reload %s queued items, want 1: %q", n, a.text("#queue"))
	}
	a.shot("queued-after-reload")

	if _, err := chromedp.Call(a.ctx, fetch.Disable, struct{}{}); err != nil {
		t.Fatal(err)
	}
	a.waitText("#send-msg", "Sent $7.25 to bank-b/bob")
	a.waitText("#balance", "$992.75")
	if got := a.text("#queue"); got != "" {
		t.Errorf("still queued after success: %q", got)
	}
	a.shot("sent")

	if ab, bb := cliBalances(alice, bob); ab != 100000-725 || bb != 100000+725 {
		t.Errorf("balances: alice %d bob %d, want %d %d", ab, bb, 100000-725, 100000+725)
	}
	var payments gatewayv1.ListPaymentsResponse
	bob.jsonOut(0, &payments, "payments", "list")
	if n := len(payments.GetPayments()); n != 1 || payments.GetPayments()[0].GetTransactionId() != tx {
		t.Errorf("bob received %d payments (%v), want 1 with id %s", n, payments.GetPayments(), tx)
	}
	// A reload now sends nothing again.
	a.do("reload again", chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("#wallet")))
	a.waitText("#balance", "$992.75")
	if got := a.text("#queue"); got != "" {
		t.Errorf("queued after a reload: %q", got)
	}

	// The browser offline (navigator.onLine false): queued; back online
	// (the "online" event): sent.
	offline := func(off bool) {
		t.Helper()
		if _, err := chromedp.Call(a.ctx, network.Enable, network.EnableParams{}); err != nil {
			t.Fatal(err)
		}
		if _, err := chromedp.Call(a.ctx, network.OverrideNetworkState, network.OverrideNetworkStateParams{
			Offline: off, DownloadThroughput: -1, UploadThroughput: -1,
		}); err != nil {
			t.Fatal(err)
		}
	}
	offline(true)
	a.pay("bank-b/bob", "0.75", "")
	a.waitText("#queue li", "Queued $0.75 to bank-b/bob")
	if got := a.eval(`String(navigator.onLine)`); got != "false" {
		t.Errorf("navigator.onLine = %s while offline", got)
	}
	a.shot("browser-offline")
	offline(false)
	a.waitText("#send-msg", "Sent $0.75 to bank-b/bob")
	a.waitText("#balance", "$992.00")
	if ab, bb := cliBalances(alice, bob); ab != 100000-800 || bb != 100000+800 {
		t.Errorf("balances after the offline payment: alice %d bob %d, want %d %d", ab, bb, 100000-800, 100000+800)
	}
}

// TestWalletFailsOverToAnotherReplica: two gateway replicas on PostgreSQL
// (`remit up --postgres URL --replicas 2`; skipped without
// REMIT_TEST_POSTGRES). Alice's wallet, served by the first replica, keeps
// paying when that replica stops answering (paused with SIGSTOP): the page
// sends the payment to the second replica, which its replicas.json lists,
// its Content-Security-Policy allows and whose CORS admits the first's
// origin.
func TestWalletFailsOverToAnotherReplica(t *testing.T) {
	skipIfShort(t)
	base := storetest.Postgres()
	if base == "" {
		t.Skip("needs PostgreSQL: set " + storetest.Env + " (CI does)")
	}
	target, drop, err := devnet.WithSchemaPrefix(base, fmt.Sprintf("e2e_%x", rand.Uint64()&0xffffffffff))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := drop(); err != nil {
			t.Error(err)
		}
	})

	dir := filepath.Join(t.TempDir(), "net")
	port := freePortsFor(t, devnet.PortsFor(2))
	up := startUpWith(t, dir, port, 5, "--postgres", target, "--replicas", "2")
	pw := readPasswords(t, dir)
	alice, bob := newCLIUser(t, "alice"), newCLIUser(t, "bob")
	alice.login(dir, port, pw["alice"])
	bob.login(dir, port, pw["bob"])

	b := newBrowser(t, dir, port)
	a := b.tab("alice-replicas", false)
	a.login("alice", pw["alice"], "#wallet")
	a.waitText("#balance", "$1,000.00")

	first := up.pids["gateway"]
	if err := syscall.Kill(first, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(first, syscall.SIGCONT) })
	a.pay("bank-b/bob", "2.50", "")
	if msg := a.waitText("#send-msg", "Sent $2.50 to bank-b/bob"); !strings.Contains(msg, "succeeded") {
		t.Errorf("with the first replica paused: %q, want a payment that succeeded", msg)
	}
	a.shot("paid through the second replica")
	if err := syscall.Kill(first, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if ab, bb := cliBalances(alice, bob); ab != 100000-250 || bb != 100000+250 {
		t.Fatalf("balances after the payment: alice %d bob %d, want it applied once", ab, bb)
	}
}
