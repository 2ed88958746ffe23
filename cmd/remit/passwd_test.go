package main

import (
	"strings"
	"testing"

	"github.com/remitpay/remit/client/clienttest"
)

func TestPasswd(t *testing.T) {
	g := clienttest.New(t)
	clientEnv(t)
	if code, _, errOut := remit(t, "", "passwd", "x"); code != exitUsage || !strings.Contains(errOut, `unexpected argument "x"`) {
		t.Errorf("passwd x = %d, %q", code, errOut)
	}
	loginAs(t, g, "alice")
	g.Token("alice") // alice is also logged in elsewhere

	for _, tt := range []struct {
		stdin string
		code  int
		want  string
	}{
		{"alice-pw\n", exitFailure, "no password on line 2 of 2"},
		{"alice-pw\nshort\n", exitUsage, "at least 12"},
		{"wrong\n" + newPassword + "\n", exitFailure, "the current password is wrong"},
	} {
		code, out, errOut := remit(t, tt.stdin, "passwd", "--password-stdin")
		if code != tt.code || !strings.Contains(errOut, tt.want) || strings.Contains(errOut, "session expired") {
			t.Errorf("passwd with %q = %d:\n%s%s; want %d and %q", tt.stdin, code, out, errOut, tt.code, tt.want)
		}
	}
	if g.Password("alice") != "alice-pw" || g.SessionCount("alice") != 2 {
		t.Fatal("a refused password change changed something")
	}

	code, out, errOut := remit(t, "alice-pw\n"+newPassword+"\n", "passwd", "--password-stdin")
	if code != exitOK || !strings.Contains(out, "Changed the password of alice; 1 other session of yours ended (this one stays logged in).") {
		t.Fatalf("passwd = %d:\n%s%s", code, out, errOut)
	}
	if strings.Contains(out+errOut, newPassword) || strings.Contains(out+errOut, "alice-pw") {
		t.Errorf("passwd printed a password:\n%s%s", out, errOut)
	}
	if g.Password("alice") != newPassword || g.SessionCount("alice") != 1 {
		t.Errorf("after passwd: password %q, %d sessions; want the new one and this session only", g.Password("alice"), g.SessionCount("alice"))
	}
	if code, _, errOut := remit(t, "", "balance"); code != exitOK {
		t.Errorf("balance after passwd = %d, %q: this session must stay", code, errOut)
	}
	code, out, _ = remit(t, newPassword+"\n"+"another long password\n", "passwd", "--password-stdin", "--json")
	if code != exitOK || strings.TrimSpace(out) != `{"revokedSessions":0}` {
		t.Errorf("passwd --json = %d, %q", code, out)
	}
	// The old password no longer logs in; the new one does.
	if code, _, _ := remit(t, "alice-pw\n", "login", "--password-stdin", "alice"); code != exitFailure {
		t.Errorf("login with the old password = %d, want 1", code)
	}
	if code, _, errOut := remit(t, "another long password\n", "login", "--password-stdin", "alice"); code != exitOK {
		t.Errorf("login with the new password = %d, %q", code, errOut)
	}
}
