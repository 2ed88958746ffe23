package e2e_test

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// grpcWebError is the body of a gRPC-Web answer that is only a trailer
// frame: grpc-status code, and, if domain is set, a google.rpc.Status
// holding an ErrorInfo of that domain and reason.
func grpcWebError(t *testing.T, code int32, msg, domain, reason string) []byte {
	t.Helper()
	trailer := fmt.Sprintf("grpc-status: %d\r\ngrpc-message: %s\r\n", code, msg)
	if domain != "" {
		info, err := anypb.New(&errdetails.ErrorInfo{Reason: reason, Domain: domain})
		if err != nil {
			t.Fatal(err)
		}
		st, err := proto.Marshal(&statuspb.Status{Code: code, Message: msg, Details: []*anypb.Any{info}})
		if err != nil {
			t.Fatal(err)
		}
		trailer += "grpc-status-details-bin: " + base64.RawStdEncoding.EncodeToString(st) + "\r\n"
	}
	frame := binary.BigEndian.AppendUint32([]byte{0x80}, uint32(len(trailer))) //nolint:gosec // a short trailer
	return append(frame, trailer...)
}

// TestWalletKeepsUnfinished: answers to MakePayment that are not a final
// answer from the gateway (a proxy's 404 or 403, Remit's own internal or
// unknown error) leave the payment queued under its id, as the Go outbox
// (client/outbox finalAnswer) does; once the gateway answers, it is paid
// exactly once.
func TestWalletKeepsUnfinished(t *testing.T) {
	skipIfShort(t)
	w := openWallet(t, "alice")
	alice, bob, a := w.alice, w.bob, w.a

	type answer struct {
		name   string
		status int64  // HTTP status
		body   []byte // for 200
	}
	answers := []answer{
		{"a proxy's 404 (unimplemented)", 404, nil},
		{"a proxy's 403 (permission_denied, no ErrorInfo)", 403, nil},
		{"remit internal", 200, grpcWebError(t, 13, "internal error", "remit.dev", "INTERNAL")},
		{"remit unknown", 200, grpcWebError(t, 2, "unknown", "remit.dev", "UNKNOWN")},
		{"aborted, not in progress", 200, grpcWebError(t, 10, "aborted", "remit.dev", "ABORTED")},
	}
	var next atomic.Int32
	paused := chromedp.Events(a.ctx, fetch.RequestPaused)
	go func() {
		for ev, err := range paused {
			if err != nil {
				return
			}
			i := int(next.Add(1)) - 1
			if i >= len(answers) {
				_, _ = chromedp.Call(a.ctx, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: ev.RequestID})
				continue
			}
			ans := answers[i]
			_, _ = chromedp.Call(a.ctx, fetch.FulfillRequest, fetch.FulfillRequestParams{
				RequestID:    ev.RequestID,
				ResponseCode: ans.status,
				ResponseHeaders: []*fetch.HeaderEntry{
					{Name: "Content-Type", Value: "application/grpc-web+proto"},
				},
				Body: ans.body,
			})
		}
	}()
	if _, err := chromedp.Call(a.ctx, fetch.Enable, fetch.EnableParams{
		Patterns: []*fetch.RequestPattern{{URLPattern: "*/remit.gateway.v1.PaymentService/MakePayment"}},
	}); err != nil {
		t.Fatal(err)
	}
	a.pay("bank-b/bob", "3.00", "not final yet")
	// Every answer above is seen, and the payment is still queued after each.
	deadline := time.Now().Add(2 * browserWait)
	for n := int(next.Load()); n <= len(answers); n = int(next.Load()) {
		if n == 0 {
			time.Sleep(pollEvery)
			continue
		}
		if q := a.text("#queue"); !strings.Contains(q, "Queued $3.00") {
			t.Fatalf("after %q the payment is no longer queued (send-msg %q, queue %q)",
				answers[n-1].name, a.text("#send-msg"), q)
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d answers were given", next.Load(), len(answers))
		}
		time.Sleep(pollEvery)
	}
	a.waitText("#send-msg", "Sent $3.00 to bank-b/bob")
	a.waitText("#balance", "$997.00")
	if ab, bb := cliBalances(alice, bob); ab != 100000-300 || bb != 100000+300 {
		t.Errorf("balances: alice %d bob %d, want %d %d", ab, bb, 100000-300, 100000+300)
	}
}

// TestWalletLogoutMidSend: alice's queue is being sent when she logs out
// and bob logs in on the same page. Her payments are neither sent as bob
// nor dropped: they wait for her next login and go out then, as hers.
func TestWalletLogoutMidSend(t *testing.T) {
	skipIfShort(t)
	w := openWallet(t, "page")
	pw, alice, bob, a := w.pw, w.alice, w.bob, w.a
	carol := newCLIUser(t, "carol")
	carol.login(w.dir, w.port, pw["carol"])

	// First every MakePayment fails before it is sent, so that both
	// payments are queued when the page next sends its queue. Then the
	// answer to the first MakePayment is held until release is closed (the
	// gateway has it, and pays it, as alice); the rest go through at once.
	release := make(chan struct{})
	var seen atomic.Int32
	paused := chromedp.Events(a.ctx, fetch.RequestPaused)
	go func() {
		for ev, err := range paused {
			if err != nil {
				return
			}
			if ev.ResponseStatusCode == 0 && ev.ResponseErrorReason == "" { // the request stage
				_, _ = chromedp.Call(a.ctx, fetch.FailRequest, fetch.FailRequestParams{
					RequestID: ev.RequestID, ErrorReason: network.ErrorReasonConnectionRefused,
				})
				continue
			}
			if seen.Add(1) == 1 {
				go func(id fetch.RequestID) {
					<-release
					_, _ = chromedp.Call(a.ctx, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: id})
				}(ev.RequestID)
				continue
			}
			_, _ = chromedp.Call(a.ctx, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: ev.RequestID})
		}
	}()
	const makePayment = "*/remit.gateway.v1.PaymentService/MakePayment"
	if _, err := chromedp.Call(a.ctx, fetch.Enable, fetch.EnableParams{
		Patterns: []*fetch.RequestPattern{{URLPattern: makePayment}},
	}); err != nil {
		t.Fatal(err)
	}
	a.pay("bank-c/carol", "1.00", "first")
	a.waitText("#queue", "Queued $1.00")
	a.pay("bank-c/carol", "2.00", "second")
	a.waitText("#queue", "Queued $2.00")
	if n := a.eval(`String(document.querySelectorAll("#queue li").length)`); n != "2" {
		t.Fatalf("%s queued, want 2: %q", n, a.text("#queue"))
	}
	if _, err := chromedp.Call(a.ctx, fetch.Enable, fetch.EnableParams{
		Patterns: []*fetch.RequestPattern{{URLPattern: makePayment, RequestStage: fetch.RequestStageResponse}},
	}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(browserWait); seen.Load() == 0; time.Sleep(pollEvery) {
		if time.Now().After(deadline) {
			t.Fatal("the queue was never sent again")
		}
	}

	// Log out and log bob in, without reloading the page.
	a.do("log out, log in as bob",
		chromedp.Click(chromedp.CSS("#logout")),
		chromedp.WaitVisible(chromedp.CSS("#login-id")),
		chromedp.SetValue(chromedp.CSS("#login-id"), "bob"),
		chromedp.SendKeys(chromedp.CSS("#login-pw"), pw["bob"]),
		chromedp.Click(chromedp.CSS(`#login-form button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS("#wallet")),
	)
	a.waitText("#balance", "$1,000.00")
	close(release)
	time.Sleep(3 * time.Second)
	t.Logf("after release: seen %d, queue %q, send-msg %q, bob %d", seen.Load(), a.text("#queue"), a.text("#send-msg"), bob.balance()) // the first answer arrives; a buggy loop sends the second now
	if bb := bob.balance(); bb != 100000 {
		t.Fatalf("bob's balance is %d after alice's queued payment was sent from his login, want 100000", bb)
	}
	if q := a.text("#queue"); q != "" {
		t.Errorf("bob sees alice's queued payments: %q", q)
	}

	// Alice again: the second payment is still hers and goes out once.
	a.do("log out bob", chromedp.Click(chromedp.CSS("#logout")), chromedp.WaitVisible(chromedp.CSS("#login-id")))
	a.login("alice", pw["alice"], "#wallet")
	a.waitText("#balance", "$997.00")
	if got := a.text("#queue"); got != "" {
		t.Errorf("still queued: %q", got)
	}
	if ab, bb, cb := alice.balance(), bob.balance(), carol.balance(); ab != 100000-300 || bb != 100000 || cb != 100000+300 {
		t.Errorf("balances alice %d bob %d carol %d, want %d %d %d", ab, bb, cb, 100000-300, 100000, 100000+300)
	}
}

// TestWalletDoubleSubmit: the send form submitted twice before the first
// submit has been saved (a double click, Enter pressed twice) pays once.
func TestWalletDoubleSubmit(t *testing.T) {
	skipIfShort(t)
	w := openWallet(t, "alice")
	alice, bob, a := w.alice, w.bob, w.a
	a.do("fill in", chromedp.SendKeys(chromedp.CSS("#payee-bank"), "bank-b"),
		chromedp.SendKeys(chromedp.CSS("#payee-account"), "bob"),
		chromedp.SendKeys(chromedp.CSS("#amount"), "4.00"))
	a.eval(`(() => { const b = document.querySelector('#send-form button[type="submit"]'); for (let i = 0; i < 2; i++) b.click(); return "" })()`)
	a.waitText("#send-msg", "Sent $4.00 to bank-b/bob")
	time.Sleep(2 * time.Second)
	if ab, bb := cliBalances(alice, bob); ab != 100000-400 || bb != 100000+400 {
		t.Errorf("balances after a double submit: alice %d bob %d, want %d %d", ab, bb, 100000-400, 100000+400)
	}
}

// TestWalletSendWhileSending: a payment submitted while the page is still
// waiting for the answer to another is sent once that answer is in, not
// left queued until something else (a reload, another payment) sends it.
func TestWalletSendWhileSending(t *testing.T) {
	skipIfShort(t)
	w := openWallet(t, "alice")
	alice, bob, a := w.alice, w.bob, w.a

	// The answer to the first MakePayment is held until release is closed.
	release := make(chan struct{})
	var seen atomic.Int32
	paused := chromedp.Events(a.ctx, fetch.RequestPaused)
	go func() {
		for ev, err := range paused {
			if err != nil {
				return
			}
			if seen.Add(1) == 1 {
				go func(id fetch.RequestID) {
					<-release
					_, _ = chromedp.Call(a.ctx, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: id})
				}(ev.RequestID)
				continue
			}
			_, _ = chromedp.Call(a.ctx, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: ev.RequestID})
		}
	}()
	if _, err := chromedp.Call(a.ctx, fetch.Enable, fetch.EnableParams{
		Patterns: []*fetch.RequestPattern{{URLPattern: "*/remit.gateway.v1.PaymentService/MakePayment", RequestStage: fetch.RequestStageResponse}},
	}); err != nil {
		t.Fatal(err)
	}
	a.pay("bank-b/bob", "1.00", "first")
	for deadline := time.Now().Add(browserWait); seen.Load() == 0; time.Sleep(pollEvery) {
		if time.Now().After(deadline) {
			t.Fatal("the first payment was never sent")
		}
	}
	a.pay("bank-b/bob", "2.00", "second")
	a.waitText("#queue", "Queued $2.00")
	close(release)
	a.waitText("#balance", "$997.00")
	// The balance may be refreshed (by the live feed) a moment before the
	// page has taken the second answer in: the list must empty, without a
	// reload or another payment, within the usual wait.
	for deadline := time.Now().Add(browserWait); ; time.Sleep(pollEvery) {
		got := a.text("#queue")
		if got == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still queued after %s: %q", browserWait, got)
		}
	}
	if ab, bb := cliBalances(alice, bob); ab != 100000-300 || bb != 100000+300 {
		t.Errorf("balances: alice %d bob %d, want %d %d", ab, bb, 100000-300, 100000+300)
	}
}

// TestWalletRefusesBadInput: a payment the gateway's rules refuse (a bad
// bank name or account id, a description with a tab, a text-direction
// override or mark, or too long) is refused on the page before it is queued,
// with a message, and nothing is sent: queued, it would get a validation
// error that is not a final answer and hold up the queue for ever. The
// CLI, which checks with protovalidate against the same rules as the
// gateway, refuses each of them too, so the page and the rules agree; and
// text of any script, emoji included, is accepted.
func TestWalletRefusesBadInput(t *testing.T) {
	skipIfShort(t)
	w := openWallet(t, "alice")
	alice, bob, a := w.alice, w.bob, w.a
	for _, c := range []struct{ payee, description string }{
		{"Bank_B/bob", ""},
		{"bank-b/bo b", ""},
		{"bank-b/bob", "rent\tmarch"},
		{"bank-b/bob", "rtl \u202eevil"},
		{"bank-b/bob", "mark \u200f"},
		{"bank-b/bob", strings.Repeat("x", 201)},
	} {
		d, err := json.Marshal(c.description)
		if err != nil {
			t.Fatal(err)
		}
		// The description is set from script: typing cannot enter a tab
		// into the field, pasting can. (An input drops line breaks itself.)
		// The message is cleared so that the wait below sees this case's.
		a.eval(`(document.getElementById("send-form").reset(), document.getElementById("send-msg").textContent = "", document.getElementById("description").value = ` + string(d) + `, "")`)
		a.pay(c.payee, "1.00", "")
		a.waitText("#send-msg", "Nothing was sent.")
		if n := a.eval(`String(document.querySelectorAll("#queue li").length)`); n != "0" {
			t.Errorf("%q %q: %s payments queued, want none", c.payee, c.description, n)
		}
		args := []string{"pay", "--to", c.payee, "--amount", "1.00"}
		if c.description != "" {
			args = append(args, "--description", c.description)
		}
		if r := alice.run(args...); r.code == 0 {
			t.Errorf("the CLI (protovalidate) accepts what the page refuses: %q %q", c.payee, c.description)
		}
		if ab, bb := cliBalances(alice, bob); ab != 100000 || bb != 100000 {
			t.Fatalf("after %q %q: alice %d bob %d, want both untouched", c.payee, c.description, ab, bb)
		}
	}
	if ab, bb := cliBalances(alice, bob); ab != 100000 || bb != 100000 {
		t.Fatalf("after refused payments: alice %d bob %d, want both untouched", ab, bb)
	}
	a.eval(`(document.getElementById("send-form").reset(), "")`)
	a.pay("bank-b/bob", "2.00", "Miete für März ☕ 👩‍👩‍👧 "+strings.Repeat("y", 150))
	a.waitText("#send-msg", "Sent $2.00 to bank-b/bob")
	if ab, bb := cliBalances(alice, bob); ab != 100000-200 || bb != 100000+200 {
		t.Errorf("after a payment with non-ASCII text: alice %d bob %d, want %d %d", ab, bb, 100000-200, 100000+200)
	}
}
