package gateway_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"connectrpc.com/connect"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
	"github.com/remitpay/remit/internal/audit"
	"github.com/remitpay/remit/internal/rpcerr"
	"github.com/remitpay/remit/services/gateway/gatewaytest"
)

// An account's life at run time, through AdminService against the real
// network: opened at bank-b, funded, paid, refused closing while it holds
// money, emptied, closed, then declined ACCOUNT_CLOSED, and listed closed.
// Nothing is restarted.
func TestIntegrationAccountLifecycle(t *testing.T) {
	t.Parallel()
	n := gatewaytest.Start(t, gatewaytest.Options{})
	alice, admin := n.Login(t, "alice"), n.Login(t, gatewaytest.AdminID)
	erin := &gatewayv1.AccountRef{Bank: "bank-b", AccountId: "erin"}

	// retry sends a call again while its answer is retryable, as a client must.
	retry := func(call func() error) error {
		var err error
		gatewaytest.Retry(t.Context(), gatewaytest.WaitTimeout, func() bool {
			err = call()
			return !retryable(err)
		})
		return err
	}
	open := func(c *gatewaytest.Client, req *gatewayv1.OpenAccountRequest) (*gatewayv1.Account, error) {
		var res *gatewayv1.OpenAccountResponse
		err := retry(func() (err error) {
			res, err = c.Admin.OpenAccount(callCtx(t), req)
			return err
		})
		return res.GetAccount(), err
	}
	closeAcct := func(c *gatewaytest.Client, ref *gatewayv1.AccountRef) (*gatewayv1.Account, error) {
		var res *gatewayv1.CloseAccountResponse
		err := retry(func() (err error) {
			res, err = c.Admin.CloseAccount(callCtx(t), &gatewayv1.CloseAccountRequest{Account: ref})
			return err
		})
		return res.GetAccount(), err
	}
	adjust := func(dir gatewayv1.Direction, amount int64) error {
		return retry(func() error {
			_, err := admin.Admin.UpdateBalance(callCtx(t), &gatewayv1.UpdateBalanceRequest{
				TransactionId: newID(), Account: erin, Direction: dir, Amount: amount, Currency: gatewaytest.Currency,
			})
			return err
		})
	}
	payErin := func(amount int64) (*gatewayv1.Payment, error) {
		return makePayment(t.Context(), alice, &gatewayv1.MakePaymentRequest{
			TransactionId: newID(), Payee: erin, Amount: amount, Currency: gatewaytest.Currency,
		})
	}

	// Open, with the owner defaulting to the account id; a retry is the same.
	req := &gatewayv1.OpenAccountRequest{RequestId: newID(), Account: erin, Currency: gatewaytest.Currency}
	opened, err := open(admin, req)
	if err != nil {
		t.Fatal(err)
	}
	want := &gatewayv1.Account{Account: erin, Owner: "erin", Currency: gatewaytest.Currency, State: gatewayv1.AccountState_ACCOUNT_STATE_OPEN}
	if d := cmp.Diff(want, opened, protocmp.Transform(), protocmp.IgnoreFields(&gatewayv1.Account{}, "open_time")); d != "" || opened.GetOpenTime() == nil {
		t.Errorf("opened (-want +got):\n%s", d)
	}
	again, err := open(admin, req)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(opened, again, protocmp.Transform()); d != "" {
		t.Errorf("retried opening (-first +retry):\n%s", d)
	}
	for _, tt := range []struct {
		name   string
		c      *gatewaytest.Client
		req    *gatewayv1.OpenAccountRequest
		code   connect.Code
		reason string
	}{
		{"request id reused", admin, &gatewayv1.OpenAccountRequest{RequestId: req.GetRequestId(), Account: erin, Currency: "eur"},
			connect.CodeInvalidArgument, "IDEMPOTENCY_KEY_REUSED"},
		{"account exists", admin, &gatewayv1.OpenAccountRequest{RequestId: newID(), Account: gatewaytest.Ref("bob"), Currency: gatewaytest.Currency},
			connect.CodeAlreadyExists, "ACCOUNT_EXISTS"},
		{"bank not registered", admin, &gatewayv1.OpenAccountRequest{RequestId: newID(), Account: &gatewayv1.AccountRef{Bank: "bank-z", AccountId: "erin"}, Currency: gatewaytest.Currency},
			connect.CodeFailedPrecondition, "BANK_NOT_FOUND"},
		{"customer opens", alice, &gatewayv1.OpenAccountRequest{RequestId: newID(), Account: &gatewayv1.AccountRef{Bank: "bank-b", AccountId: "frank"}, Currency: gatewaytest.Currency},
			connect.CodePermissionDenied, "PERMISSION_DENIED"},
	} {
		_, err := open(tt.c, tt.req)
		if err == nil || connect.CodeOf(err) != tt.code {
			t.Errorf("%s: %v, want %v %s", tt.name, err, tt.code, tt.reason)
			continue
		}
		wantError(t, err, tt.code, tt.reason)
	}

	// Money in: a deposit and a payment.
	if err := adjust(gatewayv1.Direction_DIRECTION_CREDIT, 500); err != nil {
		t.Fatal(err)
	}
	p, err := payErin(300)
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, p, gatewayv1.PaymentStatus_PAYMENT_STATUS_SUCCEEDED)
	waitFunds(t, admin, map[string]funds{"alice": settled(gatewaytest.Opening - 300)})

	// Not closed while it holds money.
	_, err = closeAcct(admin, erin)
	wantError(t, err, connect.CodeFailedPrecondition, "ACCOUNT_NOT_EMPTY")
	_, err = closeAcct(admin, &gatewayv1.AccountRef{Bank: "bank-b", AccountId: "nobody"})
	wantError(t, err, connect.CodeNotFound, "ACCOUNT_NOT_FOUND")
	_, err = closeAcct(alice, erin)
	wantError(t, err, connect.CodePermissionDenied, "PERMISSION_DENIED")

	// Emptied, then closed; closing again succeeds.
	if err := adjust(gatewayv1.Direction_DIRECTION_DEBIT, 800); err != nil {
		t.Fatal(err)
	}
	closed, err := closeAcct(admin, erin)
	if err != nil {
		t.Fatal(err)
	}
	if closed.GetState() != gatewayv1.AccountState_ACCOUNT_STATE_CLOSED || closed.GetCloseTime() == nil || closed.GetBalance() != 0 {
		t.Errorf("closed = %v", closed)
	}
	if _, err := closeAcct(admin, erin); err != nil {
		t.Errorf("closing again: %v", err)
	}

	// Payments and deposits to it are declined ACCOUNT_CLOSED, nothing moves.
	_, err = payErin(100)
	wantError(t, err, connect.CodeFailedPrecondition, "ACCOUNT_CLOSED")
	err = adjust(gatewayv1.Direction_DIRECTION_CREDIT, 100)
	wantError(t, err, connect.CodeFailedPrecondition, "ACCOUNT_CLOSED")
	waitFunds(t, admin, map[string]funds{"alice": settled(gatewaytest.Opening - 300)})
	res, err := admin.Payments.CheckBalance(callCtx(t), &gatewayv1.CheckBalanceRequest{Account: erin})
	if err != nil || res.GetBalance() != 0 {
		t.Errorf("CheckBalance of the closed account = %v, %v; want it readable with 0", res, err)
	}

	// Listed closed, beside bob, one per page.
	var listed []*gatewayv1.Account
	token := ""
	for {
		var page *gatewayv1.ListAccountsResponse
		err := retry(func() (err error) {
			page, err = admin.Admin.ListAccounts(callCtx(t), &gatewayv1.ListAccountsRequest{Bank: "bank-b", PageSize: 1, PageToken: token})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		listed = append(listed, page.GetAccounts()...)
		if token = page.GetNextPageToken(); token == "" {
			break
		}
	}
	if len(listed) != 2 || listed[0].GetAccount().GetAccountId() != "bob" || listed[1].GetAccount().GetAccountId() != "erin" {
		t.Fatalf("bank-b lists %v, want bob and erin", listed)
	}
	if d := cmp.Diff(closed, listed[1], protocmp.Transform()); d != "" {
		t.Errorf("listed erin (-closed +listed):\n%s", d)
	}
	if b := listed[0]; b.GetState() != gatewayv1.AccountState_ACCOUNT_STATE_OPEN || b.GetBalance() != gatewaytest.Opening || b.GetAvailable() != b.GetBalance() {
		t.Errorf("listed bob = %v", b)
	}
	_, err = admin.Admin.ListAccounts(callCtx(t), &gatewayv1.ListAccountsRequest{Bank: "bank-z"})
	wantError(t, err, connect.CodeFailedPrecondition, "BANK_NOT_FOUND")
	_, err = admin.Admin.ListAccounts(callCtx(t), &gatewayv1.ListAccountsRequest{Bank: "bank-b", PageToken: "bogus"})
	wantError(t, err, connect.CodeInvalidArgument, "INVALID_PAGE_TOKEN")

	// A bank that does not answer: unavailable, to be retried.
	n.Banks["bank-b"].Stop(t)
	gatewaytest.WaitFor(t, "ListAccounts at a stopped bank answered BANK_UNAVAILABLE", func() error {
		_, err := admin.Admin.ListAccounts(callCtx(t), &gatewayv1.ListAccountsRequest{Bank: "bank-b"})
		if connect.CodeOf(err) != connect.CodeUnavailable || rpcerr.Reason(err) != "BANK_UNAVAILABLE" {
			return fmt.Errorf("got %w (reason %q)", err, rpcerr.Reason(err))
		}
		return nil
	})

	// The opening and the closes are audited.
	events := auditEvents(t, n)
	if events[audit.EventAccountOpened] != 2 || events[audit.EventAccountClosed] != 2 {
		t.Errorf("audit events %v, want 2 openings (the first and its retry) and 2 closes", events)
	}
}

// auditEvents counts the gateway's audit lines by event.
func auditEvents(t *testing.T, n *gatewaytest.Network) map[string]int {
	t.Helper()
	f, err := os.Open(filepath.Join(n.Dir, "gateway", "audit.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close() //nolint:errcheck // read only
	out := map[string]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("audit line is not JSON: %s", sc.Text())
		}
		ev, _ := line[audit.KeyEvent].(string)
		out[ev]++
		if ev == audit.EventAccountOpened && (line["principal"] != gatewaytest.AdminID || line["account_id"] != "erin" || line["owner"] != "erin") {
			t.Errorf("audit line %s", sc.Text())
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
