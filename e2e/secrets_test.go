package e2e_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io/fs"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"github.com/google/uuid"

	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
	"github.com/remitpay/remit/gen/remit/gateway/v1/gatewayv1connect"
	"github.com/remitpay/remit/internal/config"
	"github.com/remitpay/remit/internal/serve"
)

// secretLog is one log a secret must never reach.
type secretLog struct {
	name string
	data []byte
}

// secrets maps a description of each secret the test used to its value.
type secrets map[string]string

func (s secrets) add(what, value string) {
	if value == "" {
		panic("empty secret: " + what)
	}
	s[what] = value
}

// Credentials in any form: a bearer header with anything token-like after
// it, and the shape of every Remit access token. They catch credentials the
// test does not know about too.
var (
	bearerRE = regexp.MustCompile(`(?i)bearer\s+\S{20,}`)
	tokenRE  = regexp.MustCompile(`rmt_[A-Za-z0-9_-]{20,}`)
)

// TestSecretsNeverLogged runs the real binary through a session that uses
// every kind of secret (every demo user's password, a wrong password, every
// access token, revoked and forged tokens, the CLI reading a password from
// standard input) and then scans every byte `remit up` and its children
// printed, the audit log and every other log file for them. It also checks
// that the files holding secrets at rest are private and that the users
// file holds hashes only.
func TestSecretsNeverLogged(t *testing.T) {
	skipIfShort(t)
	dir := filepath.Join(t.TempDir(), "net")
	port := freeBasePort(t)
	used := secrets{}
	var cliOutput []secretLog

	// Init on its own: it shows the generated passwords once, on purpose.
	// Everything `remit up` prints afterwards is what must be clean.
	newCLIUser(t, "init").want(0, []string{"Initialised"}, "init", "--dir", dir, "--base-port", strconv.Itoa(port))
	up := startUp(t, dir, port)
	passwords := readPasswords(t, dir)
	for _, id := range []string{"alice", "bob", "carol", "dave", "admin", "auditor"} {
		if passwords[id] == "" {
			t.Fatalf("credentials.json has no password for %s", id)
		}
	}
	for id, pw := range passwords {
		used.add("the password of "+id, pw)
	}

	c := newJSONClient(t, dir, port)
	sessions := map[string]*session{}
	for id, pw := range passwords {
		sessions[id] = login(t, c, id, pw)
		used.add("the access token of "+id, sessions[id].token)
	}

	// Payments over Connect JSON, gRPC and gRPC-Web, and a decline.
	sessions["alice"].pay(t, uuid.NewString(), "bank-b", "bob", 150)
	hc := serve.NewHTTP2Client(clientTLS(t, dir))
	t.Cleanup(hc.CloseIdleConnections)
	for _, p := range []struct {
		payer, payee string
		opt          connect.ClientOption
	}{
		{"bob", "carol", connect.WithGRPC()},
		{"dave", "alice", connect.WithGRPCWeb()},
	} {
		pc := gatewayv1connect.NewPaymentServiceClient(hc, gatewayURL(port), p.opt, connect.WithInterceptors(bearer(sessions[p.payer].token)))
		_, err := pc.MakePayment(t.Context(), &gatewayv1.MakePaymentRequest{
			TransactionId: uuid.NewString(), Payee: &gatewayv1.AccountRef{Bank: bankOf(p.payee), AccountId: p.payee},
			Amount: 75, Currency: "usd", Description: "secrets e2e",
		})
		if err != nil {
			t.Fatalf("payment %s -> %s: %v", p.payer, p.payee, err)
		}
	}
	if status, body := c.post(sessions["carol"].token, "/remit.gateway.v1.PaymentService/MakePayment",
		payBody(uuid.NewString(), "bank-a", "dave", 1_000_000_000)); status == http.StatusOK {
		t.Fatalf("an overdraft was accepted: %s", body)
	}

	// A deposit, reads by the auditor, a failed login.
	var deposit gatewayv1.UpdateBalanceResponse
	ok(t, c, sessions["admin"].token, "/remit.gateway.v1.AdminService/UpdateBalance",
		fmt.Sprintf(`{"transactionId":%q,"account":{"bank":"bank-a","accountId":"alice"},"direction":"DIRECTION_CREDIT","amount":"500","currency":"usd"}`, uuid.NewString()),
		&deposit)
	var list gatewayv1.ListPaymentsResponse
	ok(t, c, sessions["auditor"].token, "/remit.gateway.v1.PaymentService/ListPayments", `{}`, &list)
	wrong := "wrong-" + rand.Text()
	used.add("a wrong password", wrong)
	if status, body := c.post("", "/remit.gateway.v1.AuthService/Login",
		fmt.Sprintf(`{"clientId":"alice","password":%q}`, wrong)); status != http.StatusUnauthorized {
		t.Fatalf("login with a wrong password: HTTP %d: %s", status, body)
	}

	// A logout, then the revoked token and a forged one.
	var out gatewayv1.LogoutResponse
	ok(t, c, sessions["dave"].token, "/remit.gateway.v1.AuthService/Logout", `{}`, &out)
	forged := make([]byte, 32)
	rand.Read(forged)
	used.add("a forged token", "rmt_"+base64.RawURLEncoding.EncodeToString(forged))
	for _, token := range []string{sessions["dave"].token, used["a forged token"]} {
		if status, body := c.post(token, "/remit.gateway.v1.PaymentService/CheckBalance", `{}`); status != http.StatusUnauthorized {
			t.Fatalf("CheckBalance with a dead token: HTTP %d: %s", status, body)
		}
	}

	// The CLI: a scripted login reading the password from standard input,
	// a payment and a logout.
	carol := newCLIUser(t, "carol")
	loginArgs := []string{"login", "--gateway", gatewayURL(port), "--ca", filepath.Join(dir, "certs", "ca.pem"), "--password-stdin", "carol"}
	r := carol.runEnv(passwords["carol"]+"\n", nil, loginArgs...)
	carol.check(r, 0, []string{"Logged in as carol"}, loginArgs...)
	cliOutput = append(cliOutput, secretLog{"remit login", []byte(r.stdout + r.stderr)})
	profile := filepath.Join(carol.home, "profile.json")
	checkMode(t, profile, 0o600)
	var saved struct {
		Token string `json:"token"`
	}
	if data, err := os.ReadFile(profile); err != nil || json.Unmarshal(data, &saved) != nil || saved.Token == "" {
		t.Fatalf("the CLI saved no token in %s: %v", profile, err)
	}
	used.add("the access token of carol's CLI session", saved.Token)
	for _, args := range [][]string{{"pay", "--to", "bank-a/alice", "--amount", "1.25"}, {"balance"}, {"logout"}} {
		r := carol.want(0, nil, args...)
		cliOutput = append(cliOutput, secretLog{"remit " + strings.Join(args, " "), []byte(r.stdout + r.stderr)})
	}

	// A password typed into the client id field, the classic: demo
	// passwords (rand.Text) are valid client ids, so validation lets it
	// through to the login that fails.
	typo := rand.Text()
	if status, body := c.post("", "/remit.gateway.v1.AuthService/Login",
		fmt.Sprintf(`{"clientId":%q,"password":"x"}`, typo)); status != http.StatusUnauthorized {
		t.Fatalf("login as an unknown client id: HTTP %d: %s", status, body)
	}

	// Stop the network, so that every line is flushed.
	stopUp(t, up)
	logs := collectLogs(t, dir, up)
	logs = append(logs, cliOutput...)
	keys := privateKeyLines(t, filepath.Join(dir, "certs"))

	t.Run("logs", func(t *testing.T) {
		all := secrets{}
		for k, v := range used {
			all.add(k, v)
		}
		for k, v := range keys {
			all.add(k, v)
		}
		for _, f := range scanLogs(logs, all) {
			t.Error(f)
		}
	})
	t.Run("a password typed as the client id", func(t *testing.T) {
		for _, f := range scanLogs(logs, secrets{"a password typed into the client id field of a login": typo}) {
			t.Error(f)
		}
	})
	t.Run("files at rest", func(t *testing.T) {
		checkMode(t, filepath.Join(dir, "credentials.json"), 0o600)
		if len(keys) == 0 {
			t.Fatal("no private keys under certs/")
		}
		err := filepath.WalkDir(filepath.Join(dir, "certs"), func(path string, _ fs.DirEntry, err error) error {
			if err == nil && strings.HasSuffix(path, "-key.pem") {
				checkMode(t, path, 0o600)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		checkUsersFile(t, filepath.Join(dir, "users.json"), len(passwords), used)
		// Nothing but credentials.json and the CLI profile may hold a
		// password or a token: the databases store token hashes only.
		err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || path == filepath.Join(dir, "credentials.json") {
				return err
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for _, f := range scanLogs([]secretLog{{path, data}}, used) {
				t.Error(f)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}

// bankOf is the bank of a demo customer.
func bankOf(customer string) string {
	return map[string]string{"alice": "bank-a", "dave": "bank-a", "bob": "bank-b", "carol": "bank-c"}[customer]
}

// collectLogs returns everything up printed and every log file under dir:
// the gateway's audit log (where its config says) and any *.log or *.jsonl.
// Nothing is masked: not even the init summary or the banner prints a
// password (they point at credentials.json).
func collectLogs(t *testing.T, dir string, up *upProcess) []secretLog {
	t.Helper()
	logs := []secretLog{
		{"the stdout of remit up", []byte(up.output())},
		{"the stderr of remit up (every child's log)", []byte(up.logs())},
	}
	if !strings.Contains(up.logs(), "/remit.gateway.v1.AuthService/Login") {
		t.Fatalf("the gateway logged no Login RPC: the scan would see nothing\n%s", up.logs())
	}

	g, err := config.LoadGateway(filepath.Join(dir, "gateway.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	audit := g.AuditLog
	if audit == "" {
		audit = filepath.Join(g.DataDir, "audit.jsonl")
	}
	data, err := os.ReadFile(audit)
	if err != nil {
		t.Fatalf("audit log: %v", err)
	}
	for _, event := range []string{"login_succeeded", "login_failed"} {
		if !bytes.Contains(data, []byte(event)) {
			t.Errorf("the audit log %s has no %s event", audit, event)
		}
	}
	logs = append(logs, secretLog{"the audit log " + audit, data})

	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || path == audit {
			return err
		}
		if ext := filepath.Ext(path); ext == ".log" || ext == ".jsonl" {
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			logs = append(logs, secretLog{path, data})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return logs
}

// privateKeyLines returns the base64 body lines of every private key under
// dir: a key that reaches a log shows up as at least one of them.
func privateKeyLines(t *testing.T, dir string) secrets {
	t.Helper()
	keys := secrets{}
	err := filepath.WalkDir(dir, func(path string, _ fs.DirEntry, err error) error {
		if err != nil || !strings.HasSuffix(path, "-key.pem") {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		n := 0
		for line := range strings.SplitSeq(string(data), "\n") {
			line = strings.TrimSpace(line)
			if strings.HasPrefix(line, "-----") || len(line) < 16 {
				continue
			}
			n++
			keys.add(fmt.Sprintf("line %d of the private key %s", n, filepath.Base(path)), line)
		}
		if n == 0 {
			t.Errorf("%s has no key body", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// scanLogs returns a finding for every secret, bearer header and token in
// logs. A finding names the secret and shows the line with it masked.
func scanLogs(logs []secretLog, s secrets) []string {
	var findings []string
	whats := slices.Sorted(maps.Keys(s))
	for _, l := range logs {
		for i, line := range strings.Split(string(l.data), "\n") {
			for _, what := range whats {
				if strings.Contains(line, s[what]) {
					findings = append(findings, fmt.Sprintf("%s, line %d, holds %s:\n  %s",
						l.name, i+1, what, mask(strings.ReplaceAll(line, s[what], "<"+what+">"))))
				}
			}
			for _, re := range []*regexp.Regexp{bearerRE, tokenRE} {
				if m := re.FindString(line); m != "" {
					findings = append(findings, fmt.Sprintf("%s, line %d, holds a credential (%s...):\n  %s",
						l.name, i+1, m[:min(len(m), 12)], mask(line)))
				}
			}
		}
	}
	return findings
}

// mask shortens a log line for a failure message.
func mask(line string) string {
	if len(line) > 400 {
		return line[:400] + "..."
	}
	return line
}

func checkMode(t *testing.T, path string, want fs.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Error(err)
		return
	}
	if got := fi.Mode().Perm(); got != want {
		t.Errorf("%s has mode %v, want %v", path, got, want)
	}
}

// checkUsersFile requires argon2id hashes and no secret in users.json.
func checkUsersFile(t *testing.T, path string, users int, used secrets) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range scanLogs([]secretLog{{path, data}}, used) {
		t.Error(f)
	}
	var file struct {
		Users []struct {
			ClientID     string `json:"client_id"`
			PasswordHash string `json:"password_hash"`
		} `json:"users"`
	}
	if err := json.Unmarshal(data, &file); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(file.Users) != users {
		t.Errorf("%s has %d users, want the %d of credentials.json", path, len(file.Users), users)
	}
	for _, u := range file.Users {
		if !strings.HasPrefix(u.PasswordHash, "$argon2id$") {
			t.Errorf("user %s in %s has password_hash %q, want an argon2id hash", u.ClientID, path, u.PasswordHash)
		}
	}
}
