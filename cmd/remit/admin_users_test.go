package main

import (
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/remitpay/remit/client/clienttest"
)

func TestAdminUsersUsageErrors(t *testing.T) {
	clientEnv(t)
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"admin", "users"}, "missing subcommand: remit admin users create"},
		{[]string{"admin", "users", "delete", "x"}, `unknown subcommand "users delete"`},
		{[]string{"admin", "users", "create"}, "missing CLIENT_ID: remit admin users create CLIENT_ID"},
		{[]string{"admin", "users", "create", "carol"}, "a customer needs --account"},
		{[]string{"admin", "users", "create", "carol", "--role", "root"}, `--role "root"`},
		{[]string{"admin", "users", "create", "carol", "--account", "carol"}, `--account: account "carol"`},
		{[]string{"admin", "users", "create", "carol", "--amount", "1"}, "--amount does not apply to admin users create"},
		{[]string{"admin", "users", "disable", "a", "b"}, `unexpected argument "b"`},
		{[]string{"admin", "users", "enable", "bad id"}, `client id "bad id"`},
		{[]string{"admin", "users", "reset-password", "bob", "--role", "admin"}, "--role does not apply"},
		{[]string{"admin", "users", "list", "extra"}, `unexpected argument "extra"`},
		{[]string{"admin", "users", "list", "--page-size", "0"}, "--page-size 0"},
		{[]string{"admin", "users", "list", "--all", "--page-token", "2"}, "--all and --page-token exclude each other"},
		{[]string{"admin", "users", "sessions", "bob", "--session", "s"}, "--session does not apply"},
		{[]string{"admin", "users", "revoke"}, "missing CLIENT_ID"},
		{[]string{"admin", "banks", "--page-size", "3"}, "--page-size only apply to admin users and admin accounts"},
		{[]string{"admin", "deposit", "--role", "admin", "--account", "bank-a/alice", "--amount", "1"}, "--role only apply"},
	} {
		if code, out, errOut := remit(t, "", tt.args...); code != exitUsage || !strings.Contains(errOut, tt.want) {
			t.Errorf("remit %q = %d, stderr %q, stdout %q; want 2 and %q", tt.args, code, errOut, out, tt.want)
		}
	}
}

var sessionRE = regexp.MustCompile(`(?m)^(ses-[0-9a-f]+)\s`)

func TestAdminUsers(t *testing.T) {
	g := clienttest.New(t)
	clientEnv(t)

	// Staff only; auditors may read.
	loginAs(t, g, "alice")
	if code, _, errOut := remit(t, newPassword+"\n", "admin", "users", "create", "carol", "--account", "bank-a/carol", "--password-stdin"); code != exitFailure || !strings.Contains(errOut, "users create needs an admin") {
		t.Errorf("users create as a customer = %d, %q", code, errOut)
	}
	loginAs(t, g, "auditor")
	if code, out, errOut := remit(t, "", "admin", "users", "list"); code != exitOK || !strings.Contains(out, "alice") {
		t.Errorf("users list as an auditor = %d:\n%s%s", code, out, errOut)
	}
	if code, _, errOut := remit(t, "", "admin", "users", "disable", "bob"); code != exitFailure || !strings.Contains(errOut, "users disable needs an admin") {
		t.Errorf("users disable as an auditor = %d, %q", code, errOut)
	}

	loginAs(t, g, "admin")
	code, out, errOut := remit(t, newPassword+"\n", "admin", "users", "create", "carol", "--account", "bank-a/carol", "--password-stdin")
	if code != exitOK || !strings.Contains(out, "Created carol (account bank-a/carol, customer). It can log in now.") || strings.Contains(out, newPassword) {
		t.Fatalf("users create = %d:\n%s%s", code, out, errOut)
	}
	if g.Password("carol") != newPassword {
		t.Errorf("carol's password is %q, want the one from stdin", g.Password("carol"))
	}
	code, out, _ = remit(t, newPassword+"\n", "admin", "users", "create", "ops", "--role", "admin", "--role", "auditor", "--password-stdin", "--json")
	var created struct {
		ClientID string   `json:"clientId"`
		Roles    []string `json:"roles"`
		Source   string   `json:"source"`
	}
	if err := json.Unmarshal([]byte(out), &created); err != nil || code != exitOK || created.ClientID != "ops" ||
		!slices.Equal(created.Roles, []string{"ROLE_ADMIN", "ROLE_AUDITOR"}) || created.Source != "USER_SOURCE_ADMIN" {
		t.Errorf("users create --json = %d, %q (%v)", code, out, err)
	}
	if code, _, errOut := remit(t, newPassword+"\n", "admin", "users", "create", "Carol", "--role", "auditor", "--password-stdin"); code != exitFailure || !strings.Contains(errOut, "client id taken") {
		t.Errorf("users create of a taken id = %d, %q", code, errOut)
	}
	if code, _, errOut := remit(t, "short\n", "admin", "users", "create", "dan", "--role", "auditor", "--password-stdin"); code != exitUsage || !strings.Contains(errOut, "at least 12") {
		t.Errorf("users create with a short password = %d, %q", code, errOut)
	}

	// One page, then the next with its token, then everything.
	code, out, _ = remit(t, "", "admin", "users", "list", "--page-size", "2")
	if code != exitOK || !strings.Contains(out, "admin") || !strings.Contains(out, "alice") || strings.Contains(out, "bob") ||
		!strings.Contains(out, "More users: run again with --page-token 2, or with --all.") {
		t.Errorf("users list --page-size 2 = %d:\n%s", code, out)
	}
	code, out, _ = remit(t, "", "admin", "users", "list", "--page-size", "2", "--page-token", "2")
	if code != exitOK || !strings.Contains(out, "auditor") || !strings.Contains(out, "bob") || strings.Contains(out, "alice") {
		t.Errorf("users list --page-token 2 = %d:\n%s", code, out)
	}
	code, out, _ = remit(t, "", "admin", "users", "list", "--all", "--page-size", "2", "--json")
	var list struct {
		Users []struct {
			ClientID string `json:"clientId"`
			Disabled bool   `json:"disabled"`
		} `json:"users"`
		NextPageToken string `json:"nextPageToken"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil || code != exitOK || len(list.Users) != 6 || list.NextPageToken != "" {
		t.Errorf("users list --all --json = %d, %q (%v)", code, out, err)
	}

	// Sessions: list, revoke one, revoke the rest.
	g.Token("carol")
	g.Token("carol")
	g.Token("carol")
	code, out, _ = remit(t, "", "admin", "users", "sessions", "carol")
	ids := sessionRE.FindAllStringSubmatch(out, -1)
	if code != exitOK || len(ids) != 3 || !strings.Contains(out, "SESSION") {
		t.Fatalf("users sessions = %d:\n%s", code, out)
	}
	if code, out, _ := remit(t, "", "admin", "users", "revoke", "carol", "--session", ids[0][1]); code != exitOK || !strings.Contains(out, "Revoked 1 session of carol.") || g.SessionCount("carol") != 2 {
		t.Errorf("users revoke --session = %d, %q; %d left", code, out, g.SessionCount("carol"))
	}
	code, out, _ = remit(t, "", "admin", "users", "sessions", "carol", "--json")
	var sessions struct {
		Sessions []struct {
			SessionID string `json:"sessionId"`
		} `json:"sessions"`
	}
	if err := json.Unmarshal([]byte(out), &sessions); err != nil || code != exitOK || len(sessions.Sessions) != 2 {
		t.Errorf("users sessions --json = %d, %q (%v)", code, out, err)
	}
	if code, out, _ := remit(t, "", "admin", "users", "revoke", "carol", "--json"); code != exitOK || strings.TrimSpace(out) != `{"revokedSessions":2}` {
		t.Errorf("users revoke --json = %d, %q", code, out)
	}
	if code, out, _ := remit(t, "", "admin", "users", "sessions", "carol"); code != exitOK || !strings.Contains(out, "carol has no usable session.") {
		t.Errorf("users sessions with none = %d, %q", code, out)
	}

	// Disable ends the sessions and the logins; enable lets them back.
	g.Token("carol")
	if code, out, _ := remit(t, "", "admin", "users", "disable", "carol"); code != exitOK || !strings.Contains(out, "Disabled carol: it cannot log in, and 1 session ended.") {
		t.Errorf("users disable = %d, %q", code, out)
	}
	code, out, _ = remit(t, "", "admin", "users", "disable", "carol", "--json")
	if code != exitOK || !strings.Contains(out, `"disabled":true`) {
		t.Errorf("users disable --json = %d, %q", code, out)
	}
	if code, _, errOut := remit(t, "", "admin", "users", "disable", "admin"); code != exitFailure || !strings.Contains(errOut, "cannot disable itself") {
		t.Errorf("disabling oneself = %d, %q", code, errOut)
	}
	if code, out, _ := remit(t, "", "admin", "users", "enable", "carol"); code != exitOK || !strings.Contains(out, "Enabled carol: it can log in again.") {
		t.Errorf("users enable = %d, %q", code, out)
	}
	if code, out, _ := remit(t, "", "admin", "users", "enable", "carol", "--json"); code != exitOK || !strings.Contains(out, `"clientId":"carol"`) || strings.Contains(out, `"disabled":true`) {
		t.Errorf("users enable --json = %d, %q", code, out)
	}
	if code, _, errOut := remit(t, "", "admin", "users", "enable", "nobody"); code != exitFailure || !strings.Contains(errOut, "there is no user nobody") {
		t.Errorf("users enable nobody = %d, %q", code, errOut)
	}

	// Reset the password: every session ends.
	g.Token("carol")
	const reset = "a reset password, long enough"
	if code, out, _ := remit(t, reset+"\n", "admin", "users", "reset-password", "carol", "--password-stdin"); code != exitOK || !strings.Contains(out, "Reset the password of carol; 1 session ended.") {
		t.Errorf("users reset-password = %d, %q", code, out)
	}
	if g.Password("carol") != reset || g.SessionCount("carol") != 0 {
		t.Errorf("after reset-password: %q, %d sessions", g.Password("carol"), g.SessionCount("carol"))
	}
	if code, out, _ := remit(t, reset+"\n", "admin", "users", "reset-password", "carol", "--password-stdin", "--json"); code != exitOK || !strings.Contains(out, `"user":{"clientId":"carol"`) {
		t.Errorf("users reset-password --json = %d, %q", code, out)
	}
}
