package devnet_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/remitpay/remit/internal/auth"
	"github.com/remitpay/remit/internal/authz"
	"github.com/remitpay/remit/internal/config"
	"github.com/remitpay/remit/internal/devnet"
	"github.com/remitpay/remit/internal/pki"
)

// initNet runs Init in a fresh directory with the gateway on port 9443.
func initNet(t *testing.T) (devnet.Layout, string) {
	t.Helper()
	var out bytes.Buffer
	l, err := devnet.Init(context.Background(), &out, filepath.Join(t.TempDir(), "net"), 9443)
	if err != nil {
		t.Fatal(err)
	}
	return l, out.String()
}

// TestInitLayout checks every file Init writes: the configs the gateway and
// the banks load, their TLS material, the users and the demo passwords.
func TestInitLayout(t *testing.T) {
	l, out := initNet(t)
	dir := l.Dir

	g, err := config.LoadGateway(l.GatewayConfig())
	if err != nil {
		t.Fatal(err)
	}
	if g.Listen != "127.0.0.1:9443" || g.Users != l.UsersFile() || g.TLS.CA != filepath.Join(dir, "certs", "ca.pem") {
		t.Errorf("gateway config = %+v", g)
	}
	if g.MetricsListen != "127.0.0.1:9447" {
		t.Errorf("gateway metrics_listen = %q, want 127.0.0.1:9447 (loopback, after the banks)", g.MetricsListen)
	}
	if g.DataDir != filepath.Join(dir, "data", "gateway") {
		t.Errorf("gateway data_dir = %s", g.DataDir)
	}
	loadsTLS(t, "gateway", g.TLS)
	wantAccounts := map[string][]string{"bank-a": {"alice", "dave"}, "bank-b": {"bob"}, "bank-c": {"carol"}}
	if want := []string{"bank-a", "bank-b", "bank-c"}; !slices.Equal(devnet.Banks(), want) {
		t.Errorf("Banks() = %v, want %v", devnet.Banks(), want)
	}
	for i, name := range devnet.Banks() {
		b, err := config.LoadBank(l.BankConfig(name))
		if err != nil {
			t.Fatal(err)
		}
		if want := "127.0.0.1:" + []string{"9444", "9445", "9446"}[i]; b.Name != name || b.Listen != want || b.URL != "https://"+want || b.GatewayURL != "https://127.0.0.1:9443" {
			t.Errorf("%s: name %s listen %s url %s gateway %s", name, b.Name, b.Listen, b.URL, b.GatewayURL)
		}
		if want := "127.0.0.1:" + []string{"9448", "9449", "9450"}[i]; b.MetricsListen != want {
			t.Errorf("%s: metrics_listen %q, want %s", name, b.MetricsListen, want)
		}
		var ids []string
		for _, a := range b.Accounts {
			ids = append(ids, a.ID)
			if a.Owner != a.ID || a.Currency != "usd" || a.OpeningBalance != 100000 {
				t.Errorf("%s: account %+v", name, a)
			}
		}
		if !slices.Equal(ids, wantAccounts[name]) {
			t.Errorf("%s accounts = %v, want %v", name, ids, wantAccounts[name])
		}
		loadsTLS(t, name, b.TLS)
		if b.DataDir != filepath.Join(dir, "data", name) {
			t.Errorf("%s data_dir = %s", name, b.DataDir)
		}
		if fi, err := os.Stat(b.DataDir); err != nil || !fi.IsDir() {
			t.Errorf("%s data dir: %v", name, err)
		}
	}

	creds, err := devnet.LoadCredentials(l.CredentialsFile())
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(l.CredentialsFile()); fi.Mode().Perm() != 0o600 {
		t.Errorf("credentials.json mode %v, want 0600", fi.Mode().Perm())
	}
	if creds.Gateway != "https://127.0.0.1:9443" || creds.CA != g.TLS.CA {
		t.Errorf("credentials.json gateway %q ca %q", creds.Gateway, creds.CA)
	}
	users, err := auth.LoadUsers(l.UsersFile())
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(l.UsersFile())
	type summary struct {
		ID, Role, Account string
	}
	var got []summary
	for _, c := range creds.Users {
		if strings.Contains(string(raw), c.Password) {
			t.Errorf("users.json contains %s's password in clear", c.ClientID)
		}
		if strings.Contains(out, c.Password) {
			t.Errorf("init printed %s's password: captured output would keep it", c.ClientID)
		}
		u, ok := users.Lookup(c.ClientID)
		if !ok || !auth.VerifyPassword(u.PasswordHash, c.Password) {
			t.Errorf("%s: credentials.json password does not match users.json", c.ClientID)
			continue
		}
		s := summary{ID: c.ClientID, Role: string(u.Roles[0])}
		if u.Account != nil {
			s.Account = u.Account.Bank + "/" + u.Account.ID
			if c.Account == nil || c.Account.Bank != u.Account.Bank || c.Account.AccountID != u.Account.ID {
				t.Errorf("%s: credentials.json account %+v, users.json %+v", c.ClientID, c.Account, u.Account)
			}
		}
		got = append(got, s)
	}
	want := []summary{
		{"alice", "customer", "bank-a/alice"}, {"bob", "customer", "bank-b/bob"},
		{"carol", "customer", "bank-c/carol"}, {"dave", "customer", "bank-a/dave"},
		{"admin", "admin", ""}, {"auditor", "auditor", ""},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("users (-want +got):\n%s", diff)
	}
	if users.Len() != len(want) {
		t.Errorf("users.json has %d users, want %d", users.Len(), len(want))
	}
	if admin := creds.Find(authz.RoleAdmin); admin == nil || admin.ClientID != "admin" {
		t.Errorf("Find(admin) = %+v", admin)
	}
}

// loadsTLS fails t unless tc names a server and a client certificate that
// load and chain to the CA.
func loadsTLS(t *testing.T, name string, tc config.TLS) {
	t.Helper()
	if _, err := pki.ServerConfig(tc.Cert, tc.Key, tc.CA, tls.VerifyClientCertIfGiven); err != nil {
		t.Errorf("%s: server TLS: %v", name, err)
	}
	if _, err := pki.ClientConfig(tc.CA, tc.ClientCert, tc.ClientKey); err != nil {
		t.Errorf("%s: client TLS: %v", name, err)
	}
}

// TestInitOutput pins what Init prints: where everything is, and who the
// demo users are, without their passwords.
func TestInitOutput(t *testing.T) {
	l, out := initNet(t)
	creds, err := devnet.LoadCredentials(l.CredentialsFile())
	if err != nil {
		t.Fatal(err)
	}
	//nolint:dupword // "admin admin": the client and its role, in columns
	want := "Initialised a local Remit network in " + l.Dir + `:
  gateway.yaml       gateway on 127.0.0.1:9443, metrics on 127.0.0.1:9447
  banks/bank-a.yaml  bank-a on 127.0.0.1:9444, metrics on 127.0.0.1:9448
  banks/bank-b.yaml  bank-b on 127.0.0.1:9445, metrics on 127.0.0.1:9449
  banks/bank-c.yaml  bank-c on 127.0.0.1:9446, metrics on 127.0.0.1:9450
  users.json         users (password hashes only)
  credentials.json   the demo passwords (mode 0600; never printed)
  certs/             dev CA (certs/ca.pem) and certificates; keys are private
  data/              databases

Demo users (their passwords are in credentials.json):
  CLIENT   ROLE      ACCOUNT
  alice    customer  bank-a/alice (1,000.00 usd)
  bob      customer  bank-b/bob (1,000.00 usd)
  carol    customer  bank-c/carol (1,000.00 usd)
  dave     customer  bank-a/dave (1,000.00 usd)
  admin    admin     -
  auditor  auditor   -
`
	if diff := cmp.Diff(want, out); diff != "" {
		t.Errorf("init output (-want +got):\n%s", diff)
	}
	for _, c := range creds.Users {
		if strings.Contains(out, c.Password) {
			t.Errorf("init printed %s's password", c.ClientID)
		}
	}
}

// TestInitMovable checks that configs name their files relative to
// themselves, so a network directory can be moved as a whole.
func TestInitMovable(t *testing.T) {
	l, _ := initNet(t)
	for _, f := range []string{l.GatewayConfig(), l.BankConfig("bank-a")} {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(raw), l.Dir) {
			t.Errorf("%s names an absolute path under %s:\n%s", f, l.Dir, raw)
		}
	}
	moved := devnet.Layout{Dir: filepath.Join(t.TempDir(), "moved")}
	if err := os.Rename(l.Dir, moved.Dir); err != nil {
		t.Fatal(err)
	}
	g, err := config.LoadGateway(moved.GatewayConfig())
	if err != nil {
		t.Fatal(err)
	}
	loadsTLS(t, "moved gateway", g.TLS)
	if g.Users != moved.UsersFile() {
		t.Errorf("moved gateway users = %s, want %s", g.Users, moved.UsersFile())
	}
}

func TestInitRefusesInitialised(t *testing.T) {
	l, _ := initNet(t)
	before, _ := os.ReadFile(l.CredentialsFile())
	_, err := devnet.Init(context.Background(), new(bytes.Buffer), l.Dir, 9443)
	if !errors.Is(err, devnet.ErrInitialised) || !strings.Contains(err.Error(), l.UpCommand()) {
		t.Errorf("second Init = %v; want ErrInitialised and %q", err, l.UpCommand())
	}
	if after, _ := os.ReadFile(l.CredentialsFile()); !bytes.Equal(before, after) {
		t.Error("second Init rewrote credentials.json")
	}
}

func TestInitRefusesHalfWrittenDir(t *testing.T) {
	for _, name := range []string{"users.json", "certs", "data"} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, name), []byte("{}"), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := devnet.Init(context.Background(), new(bytes.Buffer), dir, 9443)
			if err == nil || !strings.Contains(err.Error(), name+" already exists") {
				t.Errorf("Init over %s = %v", name, err)
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) != 1 {
				t.Errorf("Init wrote into %s although it refused: %v", dir, entries)
			}
		})
	}
}

// TestInitCleansUp checks that a failed Init leaves nothing behind, so that
// it can simply be run again.
func TestInitCleansUp(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "net")
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // fails after the certificates, before the users
	var out bytes.Buffer
	if _, err := devnet.Init(ctx, &out, dir, 9443); !errors.Is(err, context.Canceled) {
		t.Fatalf("Init with a canceled ctx = %v, want context.Canceled", err)
	}
	if entries, err := os.ReadDir(dir); err != nil || len(entries) != 0 {
		t.Errorf("failed Init left %v (%v)", entries, err)
	}
	if out.Len() != 0 {
		t.Errorf("failed Init printed %q", out.String())
	}
	if _, err := devnet.Init(context.Background(), &out, dir, 9443); err != nil {
		t.Errorf("Init after a failed one: %v", err)
	}
}

func TestLoadCredentials(t *testing.T) {
	c, err := devnet.LoadCredentials(filepath.Join(t.TempDir(), "missing.json"))
	if c != nil || err != nil {
		t.Errorf("missing file = %v, %v; want nil, nil", c, err)
	}
	if c.Find(authz.RoleAdmin) != nil {
		t.Error("Find on nil credentials found someone")
	}
	bad := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(bad, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := devnet.LoadCredentials(bad); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("broken file = %v; want an error naming it", err)
	}
}
