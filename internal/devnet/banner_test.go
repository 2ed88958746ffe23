package devnet

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestBanner(t *testing.T) {
	l := Layout{Dir: filepath.Join(t.TempDir(), "my net")}
	if err := os.MkdirAll(l.Dir, 0o700); err != nil {
		t.Fatal(err)
	}
	members := []*member{
		{name: "gateway", url: "https://127.0.0.1:9443", metrics: "127.0.0.1:9446"},
		{name: "bank-a", url: "https://127.0.0.1:9444", metrics: "127.0.0.1:9447"},
		{name: "bank-b", url: "https://127.0.0.1:9445"},
	}
	for i, m := range members {
		m.proc = &proc{cmd: &exec.Cmd{Process: &os.Process{Pid: 100 + i}}}
	}
	caFile := filepath.Join(l.CertsDir(), "ca.pem")
	want := func() string {
		return `Remit is up: the gateway and 2 banks, TLS 1.3 only.

  gateway  https://127.0.0.1:9443    pid 100, metrics http://127.0.0.1:9446/metrics
  bank-a   https://127.0.0.1:9444    pid 101, metrics http://127.0.0.1:9447/metrics
  bank-b   https://127.0.0.1:9445    pid 102

  CA certificate  ` + caFile + `
  Credentials     ` + l.CredentialsFile() + ` (demo passwords, never printed)
  Data            ` + l.DataDir() + `
  Wallet          https://127.0.0.1:9443/ (in a browser: trust the CA certificate, or accept the warning once)

Try it:

  # Connect JSON with curl: log in as alice (her password is in credentials.json), then use the accessToken
  curl --cacert '` + caFile + `' -H 'Content-Type: application/json' -d '{"clientId":"alice","password":"ALICE-PASSWORD"}' https://127.0.0.1:9443/remit.gateway.v1.AuthService/Login

  # gRPC with grpcurl (reflection is on)
  grpcurl -cacert '` + caFile + `' 127.0.0.1:9443 list

  # the remit CLI (go build -o bin/remit ./cmd/remit): log in as alice, pay bob, check the balance
  remit login --gateway https://127.0.0.1:9443 --ca '` + caFile + `' alice
  remit pay --to bank-b/bob --amount 12.50 && remit balance

  # Prometheus metrics and pprof (plain HTTP, loopback only; every process has its own)
  curl -s http://127.0.0.1:9446/metrics | grep ^remit_
  go tool pprof http://127.0.0.1:9446/debug/pprof/profile?seconds=10

  # more in README.md, docs/cli.md, docs/api.md and docs/operations.md

Ready. Press Ctrl-C to stop.
`
	}

	// The examples show a placeholder, never a password, with or without
	// credentials.json.
	var out bytes.Buffer
	printBanner(&out, l, members, caFile)
	if diff := cmp.Diff(want(), out.String()); diff != "" {
		t.Errorf("banner without credentials (-want +got):\n%s", diff)
	}

	data, err := json.Marshal(Credentials{Users: []Credential{
		{ClientID: "admin", Password: "admin-secret"},
		{ClientID: "alice", Password: "alice-secret"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(l.CredentialsFile(), data, 0o600); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	printBanner(&out, l, members, caFile)
	if diff := cmp.Diff(want(), out.String()); diff != "" {
		t.Errorf("banner (-want +got):\n%s", diff)
	}
	if strings.Contains(out.String(), "secret") {
		t.Errorf("the banner prints a password:\n%s", out.String())
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"/tmp/x/ca.pem":   "/tmp/x/ca.pem",
		"/tmp/my dir/ca":  "'/tmp/my dir/ca'",
		"it's":            `'it'\''s'`,
		"":                "''",
		"127.0.0.1:8443":  "127.0.0.1:8443",
		"$HOME/.remit/ca": "'$HOME/.remit/ca'",
	} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
	if got, want := (Layout{Dir: "/tmp/my net"}).UpCommand(), "remit up --dir '/tmp/my net'"; got != want {
		t.Errorf("UpCommand = %s, want %s", got, want)
	}
}

func TestFormatAmount(t *testing.T) {
	for in, want := range map[int64]string{
		0: "0.00 usd", 5: "0.05 usd", 100000: "1,000.00 usd", 98750: "987.50 usd",
		-123456789: "-1,234,567.89 usd",
	} {
		if got := formatAmount(in, "usd"); got != want {
			t.Errorf("formatAmount(%d) = %q, want %q", in, got, want)
		}
	}
}

func TestDialAddr(t *testing.T) {
	for in, want := range map[string]string{
		":8443":           "127.0.0.1:8443",
		"0.0.0.0:8443":    "127.0.0.1:8443",
		"[::]:8443":       "127.0.0.1:8443",
		"127.0.0.1:8443":  "127.0.0.1:8443",
		"remit.test:8443": "remit.test:8443",
		"[::1]:8443":      "[::1]:8443",
		"not an address":  "not an address",
	} {
		if got := dialAddr(in); got != want {
			t.Errorf("dialAddr(%q) = %q, want %q", in, got, want)
		}
	}
	if portOf("127.0.0.1:9443") != 9443 || portOf("nonsense") != 0 {
		t.Errorf("portOf: %d, %d", portOf("127.0.0.1:9443"), portOf("nonsense"))
	}
}
