package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/remitpay/remit/internal/auth"
	"github.com/remitpay/remit/internal/authz"
	"github.com/remitpay/remit/internal/config"
	"github.com/remitpay/remit/internal/devnet"
)

// remit runs the CLI in-process and returns its exit status and output.
func remit(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	e := &env{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errOut}
	code = runEnv(context.Background(), e, args)
	return code, out.String(), errOut.String()
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}} {
		code, out, _ := remit(t, "", args...)
		if code != exitOK || !strings.Contains(out, "Commands:") {
			t.Errorf("remit %v = %d, %q; want 0 and the command list", args, code, out)
		}
	}
	for _, c := range commands() {
		t.Run(c.name, func(t *testing.T) {
			for _, args := range [][]string{{c.name, "--help"}, {"help", c.name}} {
				code, out, errOut := remit(t, "", args...)
				if code != exitOK {
					t.Fatalf("remit %v = %d (stderr %q); want 0", args, code, errOut)
				}
				for _, want := range []string{"Usage: remit " + c.name, "Flags:", "--log-format", "Examples:\n  remit "} {
					if !strings.Contains(out, want) {
						t.Errorf("remit %v output lacks %q:\n%s", args, want, out)
					}
				}
			}
			if !strings.Contains(c.usage, "remit "+c.name) || c.summary == "" {
				t.Errorf("command %s: usage %q or summary %q incomplete", c.name, c.usage, c.summary)
			}
		})
	}
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{nil, "Usage: remit"},
		{[]string{"bogus"}, `unknown command "bogus"`},
		{[]string{"--log-format", "xml", "version"}, `--log-format "xml"`},
		{[]string{"--nope"}, "flag provided but not defined: -nope"},
		{[]string{"certs"}, "--dir is required"},
		{[]string{"certs", "--dir", "x", "extra"}, `unexpected argument "extra"`},
		{[]string{"init"}, "--dir is required"},
		{[]string{"init", "--dir", "x", "--base-port", "65535"}, "--base-port 65535"},
		{[]string{"init", "--dir", "x", "--base-port", "abc"}, `invalid value "abc" for flag -base-port`},
		{[]string{"up", "--base-port", "0"}, "--base-port 0"},
		{[]string{"gateway"}, "--config is required"},
		{[]string{"bank", "--config"}, "flag needs an argument: -config"},
		{[]string{"users"}, "missing subcommand"},
		{[]string{"users", "remove", "--file", "u.json", "x"}, `unknown subcommand "remove"`},
		{[]string{"users", "add", "alice"}, "--file is required"},
		{[]string{"users", "add", "--file", "u.json"}, "missing CLIENT_ID"},
		{[]string{"users", "add", "--file", "u.json", "bad id"}, `client id "bad id"`},
		{[]string{"users", "add", "--file", "u.json", "erin"}, "a customer needs --account"},
		{[]string{"users", "add", "--file", "u.json", "erin", "--account", "bank-a"}, `--account "bank-a"`},
		{[]string{"users", "add", "--file", "u.json", "erin", "--role", "root"}, `--role "root"`},
		{[]string{"users", "passwd", "--file", "u.json", "erin", "--role", "admin"}, "only apply to add"},
		{[]string{"version", "now"}, `unexpected argument "now"`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			t.Chdir(t.TempDir())
			code, out, errOut := remit(t, "", tt.args...)
			if code != exitUsage {
				t.Errorf("exit status %d, want %d (stdout %q, stderr %q)", code, exitUsage, out, errOut)
			}
			if !strings.Contains(errOut, tt.want) {
				t.Errorf("stderr %q lacks %q", errOut, tt.want)
			}
		})
	}
}

func TestFailureExitsOne(t *testing.T) {
	code, _, errOut := remit(t, "", "gateway", "--config", filepath.Join(t.TempDir(), "missing.yaml"))
	if code != exitFailure || !strings.Contains(errOut, "missing.yaml") {
		t.Errorf("gateway with a missing config = %d, %q; want 1 and the file name", code, errOut)
	}
}

func TestParseInterspersed(t *testing.T) {
	e := &env{}
	fs, _ := e.newFlagSet(usersCmd)
	pos, err := parseInterspersed(fs, []string{"add", "--file", "f", "alice", "--role", "admin", "--", "--not-a-flag"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"add", "alice", "--not-a-flag"}; !slices.Equal(pos, want) {
		t.Errorf("positional = %q, want %q", pos, want)
	}
	if got := fs.Lookup("role").Value.String(); got != "admin" {
		t.Errorf("--role = %q, want admin", got)
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := remit(t, "", "version")
	if code != exitOK || !strings.HasPrefix(out, "remit ") {
		t.Errorf("version = %d, %q", code, out)
	}
	code, out, _ = remit(t, "", "version", "--json")
	var v versionInfo
	if code != exitOK || json.Unmarshal([]byte(out), &v) != nil || v.Version == "" || v.Go == "" {
		t.Errorf("version --json = %d, %q", code, out)
	}
}

func TestCerts(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	code, out, errOut := remit(t, "", "certs", "--dir", dir, "--bank", "bank-x", "--host", "remit.test")
	if code != exitOK {
		t.Fatalf("certs = %d, %s", code, errOut)
	}
	for _, f := range []string{"ca.pem", "gateway.pem", "gateway-client-key.pem", "bank-x.pem", "bank-x-client.pem"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("certs did not write %s: %v\n%s", f, err, out)
		}
	}
	code, out, _ = remit(t, "", "certs", "--dir", dir, "--bank", "bank-x", "--host", "remit.test")
	if code != exitOK || !strings.Contains(out, "up to date") {
		t.Errorf("second certs run = %d, %q; want up to date", code, out)
	}
}

// TestInit checks the command; internal/devnet's tests check the layout
// it writes in detail.
func TestInit(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "net")
	code, out, errOut := remit(t, "", "init", "--dir", dir, "--base-port", "9443")
	if code != exitOK {
		t.Fatalf("init = %d, %s", code, errOut)
	}
	n := devnet.Layout{Dir: dir}
	if want := "\nStart it with:\n  remit up --dir " + dir + "\n"; !strings.HasSuffix(out, want) {
		t.Errorf("init output does not end with %q:\n%s", want, out)
	}

	// The files init writes are what `remit gateway` and `remit bank` run.
	g, err := config.LoadGateway(n.GatewayConfig())
	if err != nil {
		t.Fatal(err)
	}
	if g.Listen != "127.0.0.1:9443" {
		t.Errorf("gateway listens on %s, want 127.0.0.1:9443", g.Listen)
	}
	if _, err := gatewayConfig(g, nil); err != nil {
		t.Errorf("gateway config does not load its TLS material: %v", err)
	}
	// Every storage setting reaches the process: a replica that ignored
	// database would run alone on SQLite files of its own.
	const db = "postgres://remit@127.0.0.1:5432/remit?search_path=x_gateway"
	g.Database = db
	if gc, err := gatewayConfig(g, nil); err != nil || gc.Database != db {
		t.Errorf("gateway config: database %q (%v), want %q", gc.Database, err, db)
	}
	for _, name := range devnet.Banks() {
		b, err := config.LoadBank(n.BankConfig(name))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := bankConfig(b, nil); err != nil {
			t.Errorf("%s config does not load its TLS material: %v", name, err)
		}
		b.Database, b.MoreGatewayURLs = db, []string{"https://127.0.0.1:9451"}
		if bc, err := bankConfig(b, nil); err != nil || bc.Database != db || !slices.Equal(bc.MoreGatewayURLs, b.MoreGatewayURLs) {
			t.Errorf("%s config: database %q, more gateway URLs %v (%v); want %q, %v", name, bc.Database, bc.MoreGatewayURLs, err, db, b.MoreGatewayURLs)
		}
		if fi, err := os.Stat(b.DataDir); err != nil || !fi.IsDir() {
			t.Errorf("%s data dir: %v", name, err)
		}
	}

	creds, err := devnet.LoadCredentials(n.CredentialsFile())
	if err != nil {
		t.Fatal(err)
	}
	users, err := auth.LoadUsers(n.UsersFile())
	if err != nil {
		t.Fatal(err)
	}
	if len(creds.Users) != 6 || users.Len() != len(creds.Users) {
		t.Errorf("%d credentials and %d users, want 6 of each", len(creds.Users), users.Len())
	}
	for _, c := range creds.Users {
		if strings.Contains(out, c.Password) {
			t.Errorf("init printed %s's password: captured output would keep it", c.ClientID)
		}
		if u, ok := users.Lookup(c.ClientID); !ok || !auth.VerifyPassword(u.PasswordHash, c.Password) {
			t.Errorf("%s: credentials.json password does not match users.json", c.ClientID)
		}
	}

	// A second init refuses and says what to do.
	code, _, errOut = remit(t, "", "init", "--dir", dir)
	if code != exitFailure || !strings.Contains(errOut, "already initialised") || !strings.Contains(errOut, "remit up --dir") {
		t.Errorf("second init = %d, %q; want 1 and advice", code, errOut)
	}
}

func TestInitRefusesHalfWrittenDir(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "users.json"), []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := remit(t, "", "init", "--dir", dir)
	if code != exitFailure || !strings.Contains(errOut, "users.json already exists") {
		t.Errorf("init over users.json = %d, %q", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, "certs")); err == nil {
		t.Error("init wrote certs/ although it refused")
	}
}

func TestUsers(t *testing.T) {
	file := filepath.Join(t.TempDir(), "users.json")
	code, out, errOut := remit(t, "s3cret-erin\n", "users", "add", "--file", file, "erin", "--account", "bank-b/erin", "--password-stdin")
	if code != exitOK {
		t.Fatalf("users add = %d, %s", code, errOut)
	}
	if strings.Contains(out, "s3cret-erin") {
		t.Errorf("users add echoed a password read from stdin: %q", out)
	}
	code, out, errOut = remit(t, "", "users", "add", "--file", file, "--role", "admin", "--role", "auditor", "ops")
	if code != exitOK {
		t.Fatalf("users add ops = %d, %s", code, errOut)
	}
	_, generated, _ := strings.Cut(out, "password: ")
	generated, _, _ = strings.Cut(generated, "\n")
	if generated == "" {
		t.Fatalf("users add without --password-stdin printed no password: %q", out)
	}

	users, err := auth.LoadUsers(file)
	if err != nil {
		t.Fatal(err)
	}
	erin, _ := users.Lookup("erin")
	if erin == nil || !auth.VerifyPassword(erin.PasswordHash, "s3cret-erin") || !erin.HasRole(authz.RoleCustomer) || erin.Account.Bank != "bank-b" {
		t.Errorf("erin = %+v", erin)
	}
	ops, _ := users.Lookup("ops")
	if ops == nil || !auth.VerifyPassword(ops.PasswordHash, generated) || !ops.HasRole(authz.RoleAdmin) || !ops.HasRole(authz.RoleAuditor) {
		t.Errorf("ops = %+v", ops)
	}
	if fi, _ := os.Stat(file); fi.Mode().Perm() != 0o600 {
		t.Errorf("users file mode %v, want 0600", fi.Mode().Perm())
	}

	code, _, errOut = remit(t, "", "users", "add", "--file", file, "erin", "--account", "bank-b/erin")
	if code != exitFailure || !strings.Contains(errOut, "already exists") {
		t.Errorf("adding erin twice = %d, %q", code, errOut)
	}
	code, _, errOut = remit(t, "new-pass\r\nignored\n", "users", "passwd", "--file", file, "erin", "--password-stdin")
	if code != exitOK {
		t.Fatalf("users passwd = %d, %s", code, errOut)
	}
	users, _ = auth.LoadUsers(file)
	if erin, _ = users.Lookup("erin"); !auth.VerifyPassword(erin.PasswordHash, "new-pass") {
		t.Error("users passwd did not set the password from the first line of stdin")
	}
	code, _, errOut = remit(t, "", "users", "passwd", "--file", file, "zoe")
	if code != exitFailure || !strings.Contains(errOut, "no such user") {
		t.Errorf("passwd of unknown user = %d, %q", code, errOut)
	}
	code, _, errOut = remit(t, "\n", "users", "passwd", "--file", file, "erin", "--password-stdin")
	if code != exitFailure || !strings.Contains(errOut, "no password") {
		t.Errorf("passwd with empty stdin = %d, %q", code, errOut)
	}
}

func TestUpRefusesForeignDir(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := remit(t, "", "up", "--dir", dir)
	if code != exitFailure || !strings.Contains(errOut, "holds no Remit network") {
		t.Errorf("up on a foreign dir = %d, %q", code, errOut)
	}
}

func TestUpPortInUse(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "net")
	// Take a free port for bank-b and init the network around it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close() //nolint:errcheck // holds the port for the test; its close error says nothing about `up`
	base := ln.Addr().(*net.TCPAddr).Port - 2
	if base < 1 {
		t.Skip("kernel picked a port too low to be bank-b's")
	}
	if code, _, errOut := remit(t, "", "init", "--dir", dir, "--base-port", strconv.Itoa(base)); code != exitOK {
		t.Fatalf("init = %d, %s", code, errOut)
	}
	code, _, errOut := remit(t, "", "up", "--dir", dir)
	if code != exitFailure || !strings.Contains(errOut, "cannot listen on") || !strings.Contains(errOut, "another `remit up`") {
		t.Errorf("up with bank-b's port taken = %d, %q", code, errOut)
	}
}
