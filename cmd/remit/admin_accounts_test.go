package main

import (
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"

	"connectrpc.com/connect"

	"github.com/remitpay/remit/client/clienttest"
	"github.com/remitpay/remit/gen/remit/gateway/v1/gatewayv1connect"
)

func TestAdminAccountsUsageErrors(t *testing.T) {
	clientEnv(t)
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"admin", "accounts"}, "missing subcommand: remit admin accounts open, close or list"},
		{[]string{"admin", "accounts", "delete"}, `unknown subcommand "accounts delete"`},
		{[]string{"admin", "accounts", "open"}, "--account is required"},
		{[]string{"admin", "accounts", "open", "--account", "erin"}, `--account: account "erin"`},
		{[]string{"admin", "accounts", "open", "--account", "bank-b/erin", "--currency", "USD"}, `--currency "USD"`},
		{[]string{"admin", "accounts", "open", "--account", "bank-b/erin", "--request-id", "nope"}, `request id "nope" is not a UUID`},
		{[]string{"admin", "accounts", "open", "--account", "bank-b/erin", "--owner", "bad id"}, "--owner"},
		{[]string{"admin", "accounts", "open", "--account", "bank-b/erin", "--amount", "1"}, "--amount does not apply"},
		{[]string{"admin", "accounts", "close", "--account", "bank-b/erin", "--owner", "erin"}, "--owner does not apply to admin accounts close"},
		{[]string{"admin", "accounts", "close", "x", "--account", "bank-b/erin"}, `unexpected argument "x"`},
		{[]string{"admin", "accounts", "list"}, "--bank is required"},
		{[]string{"admin", "accounts", "list", "--bank", "Bank A"}, "--bank"},
		{[]string{"admin", "accounts", "list", "--bank", "bank-b", "--account", "bank-b/bob"}, "--account does not apply"},
	} {
		if code, out, errOut := remit(t, "", tt.args...); code != exitUsage || !strings.Contains(errOut, tt.want) {
			t.Errorf("remit %q = %d, stderr %q, stdout %q; want 2 and %q", tt.args, code, errOut, out, tt.want)
		}
	}
}

var requestIDRE = regexp.MustCompile(`Request id: ([0-9a-f-]{36})`)

func TestAdminAccounts(t *testing.T) {
	g := clienttest.New(t)
	clientEnv(t)
	loginAs(t, g, "auditor")
	if code, _, errOut := remit(t, "", "admin", "accounts", "open", "--account", "bank-b/erin"); code != exitFailure || !strings.Contains(errOut, "accounts open needs an admin") {
		t.Errorf("accounts open as an auditor = %d, %q", code, errOut)
	}
	loginAs(t, g, "admin")

	// The first answer is lost: the retry, with the same request id, gets
	// the account opened.
	before := len(g.Calls())
	g.SetHooks(clienttest.Hooks{After: func(call int, _ string) error {
		if call == 1 {
			return connect.NewError(connect.CodeUnavailable, errors.New("connection reset"))
		}
		return nil
	}})
	code, out, errOut := remit(t, "", "admin", "accounts", "open", "--account", "bank-b/erin", "--owner", "erin")
	g.SetHooks(clienttest.Hooks{})
	m := requestIDRE.FindStringSubmatch(out)
	if code != exitOK || m == nil || !strings.Contains(out, "Opened bank-b/erin (usd, owner erin) with a balance of 0.00 usd.") {
		t.Fatalf("accounts open = %d:\n%s%s", code, out, errOut)
	}
	var sent []string
	for _, c := range g.Calls()[before:] {
		if c.Procedure == gatewayv1connect.AdminServiceOpenAccountProcedure {
			sent = append(sent, c.TransactionID)
		}
	}
	if len(sent) != 2 || sent[0] != m[1] || sent[1] != m[1] {
		t.Errorf("OpenAccount request ids sent %v, want %s twice", sent, m[1])
	}
	// Again with the printed request id: the same account, opened once.
	code, out, _ = remit(t, "", "admin", "accounts", "open", "--account", "bank-b/erin", "--owner", "erin", "--request-id", m[1], "--json")
	if code != exitOK || !strings.Contains(out, `"accountId":"erin"`) || !strings.Contains(out, `"state":"ACCOUNT_STATE_OPEN"`) {
		t.Errorf("accounts open --request-id --json = %d, %q", code, out)
	}
	if code, _, errOut := remit(t, "", "admin", "accounts", "open", "--account", "bank-b/erin"); code != exitFailure || !strings.Contains(errOut, "bank-b/erin is already open at its bank") {
		t.Errorf("opening an open account = %d, %q", code, errOut)
	}
	if code, _, errOut := remit(t, "", "admin", "accounts", "open", "--account", "bank-b/dan", "--request-id", m[1]); code != exitFailure || !strings.Contains(errOut, "was already used to open another account") {
		t.Errorf("reusing a request id = %d, %q", code, errOut)
	}

	code, out, _ = remit(t, "", "admin", "accounts", "list", "--bank", "bank-b")
	if code != exitOK || !strings.Contains(out, "bank-b/bob") || !strings.Contains(out, "bank-b/erin") || !strings.Contains(out, "100.00 usd") || strings.Contains(out, "alice") {
		t.Errorf("accounts list = %d:\n%s", code, out)
	}
	code, out, _ = remit(t, "", "admin", "accounts", "list", "--bank", "bank-b", "--page-size", "1", "--json")
	var page struct {
		Accounts []struct {
			Owner string `json:"owner"`
		} `json:"accounts"`
		NextPageToken string `json:"nextPageToken"`
	}
	if err := json.Unmarshal([]byte(out), &page); err != nil || code != exitOK || len(page.Accounts) != 1 || page.NextPageToken != "1" {
		t.Errorf("accounts list --page-size 1 --json = %d, %q (%v)", code, out, err)
	}
	if code, out, _ := remit(t, "", "admin", "accounts", "list", "--bank", "bank-b", "--page-size", "1", "--all"); code != exitOK || !strings.Contains(out, "bank-b/erin") || strings.Contains(out, "More accounts") {
		t.Errorf("accounts list --all = %d:\n%s", code, out)
	}

	// Only an empty account closes; a closed one declines payments.
	if code, _, errOut := remit(t, "", "admin", "accounts", "close", "--account", "bank-b/bob"); code != exitFailure || !strings.Contains(errOut, "bank-b/bob is not empty") {
		t.Errorf("closing bob's account = %d, %q", code, errOut)
	}
	if code, out, _ := remit(t, "", "admin", "accounts", "close", "--account", "bank-b/erin"); code != exitOK || !strings.Contains(out, "Closed bank-b/erin") {
		t.Errorf("accounts close = %d, %q", code, out)
	}
	if code, out, _ := remit(t, "", "admin", "accounts", "close", "--account", "bank-b/erin", "--json"); code != exitOK || !strings.Contains(out, `"state":"ACCOUNT_STATE_CLOSED"`) {
		t.Errorf("accounts close again --json = %d, %q", code, out)
	}
	if code, _, errOut := remit(t, "", "admin", "deposit", "--account", "bank-b/erin", "--amount", "1"); code != exitFailure || !strings.Contains(errOut, "declined: account closed: bank-b/erin is closed; nothing moved") {
		t.Errorf("deposit to a closed account = %d, %q", code, errOut)
	}
	loginAs(t, g, "alice")
	code, out, _ = remit(t, "", "pay", "--to", "bank-b/erin", "--amount", "1")
	if code != exitFailure || !strings.Contains(out, "DECLINED: account closed. No money moved.") || !txIDRE.MatchString(out) {
		t.Errorf("pay to a closed account = %d:\n%s", code, out)
	}
}
