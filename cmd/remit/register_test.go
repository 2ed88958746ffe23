package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/remitpay/remit/client"
	"github.com/remitpay/remit/client/clienttest"
)

const newPassword = "correct horse battery"

var erinAccount = client.AccountRef{Bank: "bank-b", ID: "erin"}

// openAccount opens ref at g through the SDK, as an admin.
func openAccount(t *testing.T, g *clienttest.Gateway, ref client.AccountRef) {
	t.Helper()
	cfg := g.Config()
	cfg.Token = g.Token("admin")
	c, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.OpenAccount(t.Context(), client.OpenAccountRequest{Account: ref, Currency: "usd"}); err != nil {
		t.Fatal(err)
	}
}

func TestRegisterUsageErrors(t *testing.T) {
	clientEnv(t)
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"register"}, "missing CLIENT_ID"},
		{[]string{"register", "erin", "x", "--account", "bank-b/erin", "--code", "c"}, `unexpected argument "x"`},
		{[]string{"register", "erin", "--code", "c"}, "--account is required"},
		{[]string{"register", "erin", "--account", "bank-b/erin"}, "--code is required"},
		{[]string{"register", "bad id", "--account", "bank-b/erin", "--code", "c"}, `client id "bad id"`},
		{[]string{"register", "erin", "--account", "erin", "--code", "c"}, `--account: account "erin" is not BANK/ACCOUNT`},
	} {
		if code, out, errOut := remit(t, "", tt.args...); code != exitUsage || !strings.Contains(errOut, tt.want) {
			t.Errorf("remit %q = %d, stderr %q, stdout %q; want 2 and %q", tt.args, code, errOut, out, tt.want)
		}
	}
}

func TestRegisterLogsInAndSavesTheSession(t *testing.T) {
	g := clienttest.New(t)
	home := clientEnv(t)
	openAccount(t, g, erinAccount)
	g.SetEnrollmentCode(erinAccount, "7Q2M-K9XD-4HTA")
	register := func(stdin, code string, extra ...string) (int, string, string) {
		args := append([]string{"register", "--gateway", g.URL, "--ca", g.CAFile, "--password-stdin",
			"erin", "--account", "bank-b/erin", "--code", code}, extra...)
		return remit(t, stdin, args...)
	}

	if code, out, errOut := register(newPassword+"\n", "WRONG"); code != exitFailure || !strings.Contains(errOut, "enrollment code is wrong, expired or already used") {
		t.Errorf("register with a wrong code = %d:\n%s%s", code, out, errOut)
	}
	if code, out, errOut := register("short\n", "7Q2M-K9XD-4HTA"); code != exitUsage || !strings.Contains(errOut, "at least 12") {
		t.Errorf("register with a short password = %d:\n%s%s", code, out, errOut)
	}
	if code, _, errOut := register("password1234\n", "7Q2M-K9XD-4HTA"); code != exitFailure || !strings.Contains(errOut, "common password") {
		t.Errorf("register with a common password = %d, %q", code, errOut)
	}
	if _, err := client.LoadProfile(home); err == nil {
		t.Fatal("a failed registration saved a profile")
	}

	code, out, errOut := register(newPassword+"\n", "7Q2M-K9XD-4HTA")
	if code != exitOK || !strings.Contains(out, "Registered erin with the account bank-b/erin.") ||
		!strings.Contains(out, "Logged in as erin (account bank-b/erin, customer)") || !strings.Contains(out, "Session saved in ") {
		t.Fatalf("register = %d:\n%s%s", code, out, errOut)
	}
	if strings.Contains(out+errOut, newPassword) {
		t.Errorf("register printed the password:\n%s%s", out, errOut)
	}
	p, err := client.LoadProfile(home)
	if err != nil || p.ClientID != "erin" || p.Account != "bank-b/erin" || p.Token == "" || strings.Contains(p.Token, newPassword) {
		t.Fatalf("profile after register = %+v, %v", p, err)
	}
	// The saved session works for the other commands.
	if code, out, errOut := remit(t, "", "balance"); code != exitOK || !strings.Contains(out, "bank-b/erin") || !strings.Contains(out, "0.00 usd") {
		t.Errorf("balance after register = %d:\n%s%s", code, out, errOut)
	}

	// Again: the client id is taken; --json reports the gateway's reason.
	code, out, _ = register(newPassword+"\n", "7Q2M-K9XD-4HTA", "--json")
	var res struct {
		Error *errorJSON `json:"error"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != exitFailure || res.Error == nil || res.Error.Reason != "CLIENT_ID_TAKEN" {
		t.Errorf("register again --json = %d, %q (%v)", code, out, err)
	}
}

func TestRegisterJSON(t *testing.T) {
	g := clienttest.New(t)
	clientEnv(t)
	openAccount(t, g, erinAccount)
	g.SetEnrollmentCode(erinAccount, "code-1")
	code, out, errOut := remit(t, newPassword+"\n", "register", "--gateway", g.URL, "--ca", g.CAFile, "--password-stdin",
		"erin", "--account", "bank-b/erin", "--code", "code-1", "--json")
	var res struct {
		Client struct {
			ClientID string   `json:"clientId"`
			Roles    []string `json:"roles"`
		} `json:"client"`
		Profile profileJSON `json:"profile"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != exitOK || res.Client.ClientID != "erin" ||
		res.Profile.ClientID != "erin" || res.Profile.Account != "bank-b/erin" {
		t.Errorf("register --json = %d, %q (%v)\n%s", code, out, err, errOut)
	}
	if strings.Contains(out, "token") {
		t.Errorf("register --json printed the token: %s", out)
	}
}
