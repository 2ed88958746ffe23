package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/remitpay/remit/internal/config"
)

const gatewayYAML = `listen: 127.0.0.1:8443
metrics_listen: 127.0.0.1:9090
tls:
  ca: certs/ca.pem
  cert: certs/gateway.pem
  key: certs/gateway-key.pem
  client_cert: certs/gateway-client.pem
  client_key: /etc/remit/gateway-client-key.pem
data_dir: data/gateway
users: users.json
log_format: json
token_ttl: 30m
cors_origins: [https://wallet.example.com, "http://127.0.0.1:5173"]
`

const bankYAML = `name: bank-a
listen: 127.0.0.1:8444
url: https://127.0.0.1:8444
gateway_url: https://127.0.0.1:8443
tls:
  ca: ../certs/ca.pem
  cert: ../certs/bank-a.pem
  key: ../certs/bank-a-key.pem
  client_cert: ../certs/bank-a-client.pem
  client_key: ../certs/bank-a-client-key.pem
data_dir: ../data/bank-a
accounts:
  - id: alice
    owner: alice
    currency: usd
    opening_balance: 100000
  - id: dave
    owner: dave
    currency: usd
    opening_balance: 0
`

func TestParseGateway(t *testing.T) {
	got, err := config.ParseGateway("/srv/remit/gateway.yaml", []byte(gatewayYAML))
	if err != nil {
		t.Fatal(err)
	}
	want := &config.Gateway{
		Listen:        "127.0.0.1:8443",
		MetricsListen: "127.0.0.1:9090",
		TLS: config.TLS{
			CA:         "/srv/remit/certs/ca.pem",
			Cert:       "/srv/remit/certs/gateway.pem",
			Key:        "/srv/remit/certs/gateway-key.pem",
			ClientCert: "/srv/remit/certs/gateway-client.pem",
			ClientKey:  "/etc/remit/gateway-client-key.pem",
		},
		DataDir:     "/srv/remit/data/gateway",
		Users:       "/srv/remit/users.json",
		LogFormat:   "json",
		TokenTTL:    config.Duration(30 * time.Minute),
		CORSOrigins: []string{"https://wallet.example.com", "http://127.0.0.1:5173"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ParseGateway (-want +got):\n%s", diff)
	}
}

func TestParseBank(t *testing.T) {
	got, err := config.ParseBank("/srv/remit/banks/bank-a.yaml", []byte(bankYAML))
	if err != nil {
		t.Fatal(err)
	}
	want := &config.Bank{
		Name:       "bank-a",
		Listen:     "127.0.0.1:8444",
		URL:        "https://127.0.0.1:8444",
		GatewayURL: "https://127.0.0.1:8443",
		TLS: config.TLS{
			CA:         "/srv/remit/certs/ca.pem",
			Cert:       "/srv/remit/certs/bank-a.pem",
			Key:        "/srv/remit/certs/bank-a-key.pem",
			ClientCert: "/srv/remit/certs/bank-a-client.pem",
			ClientKey:  "/srv/remit/certs/bank-a-client-key.pem",
		},
		DataDir: "/srv/remit/data/bank-a",
		Accounts: []config.Account{
			{ID: "alice", Owner: "alice", Currency: "usd", OpeningBalance: 100000},
			{ID: "dave", Owner: "dave", Currency: "usd", OpeningBalance: 0},
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ParseBank (-want +got):\n%s", diff)
	}
}

// edit returns base with the line starting with prefix replaced by repl
// (or removed when repl is empty), or with repl appended when prefix is "".
func edit(t *testing.T, base, prefix, repl string) string {
	t.Helper()
	if prefix == "" {
		return base + repl + "\n"
	}
	lines := strings.Split(base, "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, prefix) {
			if repl == "" {
				return strings.Join(append(lines[:i:i], lines[i+1:]...), "\n")
			}
			lines[i] = repl
			return strings.Join(lines, "\n")
		}
	}
	t.Fatalf("no line starts with %q", prefix)
	return ""
}

func TestParseGatewayErrors(t *testing.T) {
	tests := []struct {
		name         string
		prefix, repl string
		raw          string // used instead of an edit when set
		want         string // substring of the error
	}{
		{name: "unknown top-level field", prefix: "", repl: "listen_addr: x", want: `unknown field "listen_addr"`},
		{name: "unknown nested field", prefix: "  cert:", repl: "  certificate: x.pem", want: `unknown field "certificate"`},
		{name: "wrong type", prefix: "listen:", repl: "listen: [1, 2]", want: "cannot unmarshal"},
		{name: "empty file", raw: " ", want: "the file is empty"},
		{name: "two documents", raw: gatewayYAML + "---\nlisten: x\n", want: "more than one YAML document"},
		{name: "syntax error", raw: "listen: [", want: "gateway.yaml"},
		{name: "missing listen", prefix: "listen:", want: "listen is required"},
		{name: "listen without port", prefix: "listen:", repl: "listen: 127.0.0.1", want: "want host:port"},
		{name: "listen port zero", prefix: "listen:", repl: "listen: 127.0.0.1:0", want: "port between 1 and 65535"},
		{name: "metrics_listen without port", prefix: "metrics_listen:", repl: "metrics_listen: 127.0.0.1", want: `metrics_listen "127.0.0.1": want host:port`},
		{name: "metrics_listen port zero", prefix: "metrics_listen:", repl: "metrics_listen: 127.0.0.1:0", want: `metrics_listen "127.0.0.1:0": want a port between 1 and 65535`},
		{name: "metrics_listen is listen", prefix: "metrics_listen:", repl: "metrics_listen: 127.0.0.1:8443", want: "needs a port of its own"},
		{name: "missing ca", prefix: "  ca:", want: "tls.ca is required"},
		{name: "missing key", prefix: "  key:", want: "tls.cert and tls.key are required"},
		{name: "missing client cert", prefix: "  client_cert:", want: "tls.client_cert and tls.client_key are required"},
		{name: "missing data_dir", prefix: "data_dir:", want: "data_dir is required"},
		{name: "database not postgres", prefix: "data_dir:", repl: "data_dir: data\ndatabase: gateway.db", want: `database "gateway.db": want a postgres:// URL`},
		{name: "missing users", prefix: "users:", want: "users is required"},
		{name: "bad log format", prefix: "log_format:", repl: "log_format: xml", want: `log_format "xml"`},
		{name: "bare number ttl", prefix: "token_ttl:", repl: "token_ttl: 3600", want: `invalid duration "3600"`},
		{name: "negative ttl", prefix: "token_ttl:", repl: "token_ttl: -1h", want: "token_ttl -1h0m0s is negative"},
		{name: "cors wildcard", prefix: "cors_origins:", repl: `cors_origins: ["*"]`, want: `cors_origins: "*" is not an origin`},
		{name: "cors with path", prefix: "cors_origins:", repl: "cors_origins: [https://a.example/wallet]", want: `"https://a.example/wallet" is not an origin`},
		{name: "cors trailing slash", prefix: "cors_origins:", repl: "cors_origins: [https://a.example/]", want: "is not an origin"},
		{name: "cors no scheme", prefix: "cors_origins:", repl: "cors_origins: [a.example]", want: "is not an origin"},
		{name: "cors other scheme", prefix: "cors_origins:", repl: "cors_origins: [ftp://a.example]", want: "is not an origin"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := tt.raw
			if data == "" {
				data = edit(t, gatewayYAML, tt.prefix, tt.repl)
			}
			_, err := config.ParseGateway("/srv/remit/gateway.yaml", []byte(data))
			if err == nil {
				t.Fatalf("ParseGateway succeeded; want an error containing %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
			if !strings.Contains(err.Error(), "/srv/remit/gateway.yaml") {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

func TestParseBankErrors(t *testing.T) {
	tests := []struct {
		name         string
		prefix, repl string
		want         string
	}{
		{name: "unknown field", prefix: "", repl: "balance: 3", want: `unknown field "balance"`},
		{name: "unknown account field", prefix: "    opening_balance: 0", repl: "    opening: 0", want: `unknown field "opening"`},
		{name: "bad name", prefix: "name:", repl: "name: Bank_A", want: `name "Bank_A"`},
		{name: "plaintext url", prefix: "url:", repl: "url: http://127.0.0.1:8444", want: "want an https URL"},
		{name: "missing gateway url", prefix: "gateway_url:", want: "gateway_url is required"},
		{name: "bank metrics_listen is listen", prefix: "", repl: "metrics_listen: 127.0.0.1:8444", want: "needs a port of its own"},
		{name: "metrics_listen bad port", prefix: "", repl: "metrics_listen: localhost:http", want: `metrics_listen "localhost:http": want a port`},
		{name: "missing client key", prefix: "  client_key:", want: "tls.client_cert and tls.client_key are required"},
		{name: "missing data_dir", prefix: "data_dir:", want: "data_dir is required"},
		{name: "bad account id", prefix: "  - id: dave", repl: "  - id: da ve", want: `accounts[1].id "da ve"`},
		{name: "duplicate account", prefix: "  - id: dave", repl: "  - id: alice", want: `accounts[1].id "alice" appears twice`},
		{name: "missing owner", prefix: "    owner: dave", want: "accounts[1].owner is required"},
		{name: "bad currency", prefix: "    currency: usd", repl: "    currency: USD", want: `accounts[0].currency "USD"`},
		{name: "negative opening", prefix: "    opening_balance: 0", repl: "    opening_balance: -5", want: "accounts[1].opening_balance -5 is negative"},
		{name: "fractional opening", prefix: "    opening_balance: 0", repl: "    opening_balance: 1.5", want: `amount "1.5" is not a 64-bit integer`},
		{name: "string opening", prefix: "    opening_balance: 0", repl: "    opening_balance: \"10\"", want: `amount "10" is not a 64-bit integer`},
		{name: "huge opening", prefix: "    opening_balance: 0", repl: "    opening_balance: 99999999999999999999", want: "is not a 64-bit integer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.ParseBank("/srv/remit/banks/bank-a.yaml", []byte(edit(t, bankYAML, tt.prefix, tt.repl)))
			if err == nil {
				t.Fatalf("ParseBank succeeded; want an error containing %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
			if !strings.Contains(err.Error(), "/srv/remit/banks/bank-a.yaml") {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

func TestLoadResolvesAgainstTheFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "banks"), 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "banks", "bank-a.yaml")
	if err := os.WriteFile(path, []byte(bankYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(t.TempDir()) // the working directory must not matter
	b, err := config.LoadBank(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "certs", "ca.pem"); b.TLS.CA != want {
		t.Errorf("TLS.CA = %q, want %q", b.TLS.CA, want)
	}
	if want := filepath.Join(dir, "data", "bank-a"); b.DataDir != want {
		t.Errorf("DataDir = %q, want %q", b.DataDir, want)
	}
	// A database file resolves like any path; a URL stays as it is.
	for database, want := range map[string]string{
		"ledger/a.db": filepath.Join(dir, "banks", "ledger", "a.db"),
		"postgres://remit@127.0.0.1:5432/remit?search_path=bank_a": "postgres://remit@127.0.0.1:5432/remit?search_path=bank_a",
	} {
		if err := os.WriteFile(path, []byte(bankYAML+"database: "+database+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		b, err := config.LoadBank(path)
		if err != nil {
			t.Fatal(err)
		}
		if b.Database != want {
			t.Errorf("database %q loaded as %q, want %q", database, b.Database, want)
		}
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := config.LoadGateway(filepath.Join(t.TempDir(), "nope.yaml"))
	if err == nil || !strings.Contains(err.Error(), "nope.yaml") {
		t.Fatalf("LoadGateway(missing) = %v; want an error naming the file", err)
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	g, err := config.ParseGateway("/srv/remit/gateway.yaml", []byte(gatewayYAML))
	if err != nil {
		t.Fatal(err)
	}
	data, err := config.Marshal(g)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), "token_ttl: 30m0s") {
		t.Errorf("marshalled token_ttl is not a duration string:\n%s", data)
	}
	got, err := config.ParseGateway("/elsewhere/gateway.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(g, got, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}

// TestDeployExamples keeps the example configs in deploy/ loadable.
func TestDeployExamples(t *testing.T) {
	if _, err := config.LoadGateway("../../deploy/gateway.yaml"); err != nil {
		t.Error(err)
	}
	banks, err := filepath.Glob("../../deploy/banks/*.yaml")
	if err != nil || len(banks) == 0 {
		t.Fatalf("no example bank configs in deploy/banks (%v)", err)
	}
	for _, b := range banks {
		if _, err := config.LoadBank(b); err != nil {
			t.Error(err)
		}
	}
}
