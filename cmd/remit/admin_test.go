package main

import (
	"strings"
	"testing"

	"github.com/remitpay/remit/client/clienttest"
)

func TestAdminUnlock(t *testing.T) {
	clientEnv(t)
	g := clienttest.New(t)
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"admin", "unlock"}, "missing CLIENT_ID"},
		{[]string{"admin", "unlock", "alice", "bob"}, `unexpected argument "bob"`},
		{[]string{"admin", "unlock", "al!ce"}, "client id"},
		{[]string{"admin", "unlock", "--amount", "1", "alice"}, "only apply to deposit and withdraw"},
	} {
		if code, _, errOut := remit(t, "", tt.args...); code != exitUsage || !strings.Contains(errOut, tt.want) {
			t.Errorf("remit %q = %d, %q; want a usage error with %q", tt.args, code, errOut, tt.want)
		}
	}

	// A customer may not.
	g.SetLockout("alice", 2)
	loginAs(t, g, "alice")
	if code, _, errOut := remit(t, "", "admin", "unlock", "alice"); code != exitFailure || !strings.Contains(errOut, "unlock needs an admin") {
		t.Errorf("unlock as a customer = %d, %q", code, errOut)
	}
	if g.Lockout("alice") != 2 {
		t.Error("a customer's unlock cleared the lockout")
	}

	loginAs(t, g, "admin")
	code, out, errOut := remit(t, "", "admin", "unlock", "alice")
	if code != exitOK || !strings.Contains(out, "Cleared the failed logins of alice from 2 source(s), 2 of them locked out. alice can log in again.") {
		t.Errorf("unlock = %d:\n%s%s", code, out, errOut)
	}
	if g.Lockout("alice") != 0 {
		t.Error("unlock did not clear the lockout")
	}
	code, out, errOut = remit(t, "", "admin", "unlock", "alice", "--json")
	if code != exitOK || !strings.Contains(out, `"clientId":"alice"`) {
		t.Errorf("unlock --json = %d:\n%s%s", code, out, errOut)
	}
	if code, out, _ := remit(t, "", "admin", "unlock", "alice"); code != exitOK || !strings.Contains(out, "alice had no failed logins to clear.") {
		t.Errorf("unlock with nothing to clear = %d, %q", code, out)
	}
}
