// Package config reads and writes the YAML files that describe a Remit
// process: gateway.yaml for the gateway and banks/<name>.yaml for each bank.
// `remit init` writes them, `remit gateway --config` and `remit bank
// --config` read them.
//
// # Invariants
//
//   - Loading is strict: an unknown field, a second YAML document, or a value
//     of the wrong type is an error that names the file, so a typo never
//     silently falls back to a default (a misspelt tls.client_cert would
//     otherwise only show up as a failed handshake much later).
//   - Relative paths in a file are resolved against the directory of that
//     file, never the working directory, so `remit gateway --config
//     /srv/remit/gateway.yaml` behaves the same from anywhere. After a
//     successful load every path is absolute (or empty where optional).
//   - A loaded config has passed [Gateway.Validate] or [Bank.Validate]:
//     callers may rely on required fields being set.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/remitpay/remit/internal/logging"
	"github.com/remitpay/remit/internal/names"
)

// MaxFileSize bounds a config file. Real files are a few hundred bytes; the
// cap keeps a wrong --config (a log file, a binary) from being read whole.
const MaxFileSize = 1 << 20

// TLS names the PEM files a process uses. Cert and Key are the server
// certificate; ClientCert and ClientKey the client certificate the process
// presents when it calls the other side (gateway -> bank, bank -> gateway).
// CA is the only trust anchor, for both directions.
type TLS struct {
	CA         string `yaml:"ca"`
	Cert       string `yaml:"cert"`
	Key        string `yaml:"key"`
	ClientCert string `yaml:"client_cert"`
	ClientKey  string `yaml:"client_key"`
}

// Gateway is the content of gateway.yaml.
type Gateway struct {
	// Listen is the TCP address to serve on, e.g. 127.0.0.1:8443.
	Listen string `yaml:"listen"`
	// MetricsListen is the admin listener for Prometheus (/metrics) and
	// pprof (/debug/pprof/), e.g. 127.0.0.1:8447: plain HTTP without
	// authentication, so keep it on loopback. Empty (the default) for none.
	MetricsListen string `yaml:"metrics_listen,omitempty"`
	// TLS: the gateway's server certificate, and its client certificate for
	// calling banks.
	TLS TLS `yaml:"tls"`
	// DataDir holds the gateway's databases; created if missing.
	DataDir string `yaml:"data_dir"`
	// Database, when set, is where the gateway keeps its coordinator log,
	// sessions and users instead of the SQLite files in DataDir: a
	// postgres:// URL (PostgreSQL; search_path=NAME for a schema), which
	// several gateway replicas may share. DataDir still holds the audit log
	// and the certificates it generates.
	Database string `yaml:"database,omitempty"`
	// Users is the users file (password hashes only).
	Users string `yaml:"users"`
	// AuditLog is the append-only audit file; empty for DataDir/audit.jsonl.
	AuditLog string `yaml:"audit_log,omitempty"`
	// LogFormat is text, json or empty (auto); --log-format overrides it.
	LogFormat string `yaml:"log_format,omitempty"`
	// TokenTTL is the lifetime of access tokens, e.g. 1h; 0 for the default.
	TokenTTL Duration `yaml:"token_ttl,omitempty"`
	// CORSOrigins are the web origins, e.g. https://wallet.example.com,
	// whose pages may call the API from a browser (CORS). Empty (the
	// default): none, and the wallet the gateway serves itself, being
	// same-origin, needs none.
	CORSOrigins []string `yaml:"cors_origins,omitempty"`
	// ReplicaURLs are the https URLs of this gateway's other replicas (on
	// the same database): the browser wallet this gateway serves fails
	// over to them when it does not answer. Each of them must list this
	// gateway's origin in its cors_origins.
	ReplicaURLs []string `yaml:"replica_urls,omitempty"`
}

// Bank is the content of banks/<name>.yaml.
type Bank struct {
	// Name is the bank's name, as in AccountRef.bank and its certificates.
	Name string `yaml:"name"`
	// Listen is the TCP address to serve on, e.g. 127.0.0.1:8444.
	Listen string `yaml:"listen"`
	// MetricsListen is the admin listener for Prometheus (/metrics) and
	// pprof (/debug/pprof/), e.g. 127.0.0.1:8448: plain HTTP without
	// authentication, so keep it on loopback. Empty (the default) for none.
	MetricsListen string `yaml:"metrics_listen,omitempty"`
	// URL is the https URL the gateway uses to reach this bank; the bank
	// registers it with the gateway.
	URL string `yaml:"url"`
	// GatewayURL is the https URL of the gateway.
	GatewayURL string `yaml:"gateway_url"`
	// MoreGatewayURLs are the https URLs of the gateway's other replicas
	// when it runs several on one PostgreSQL database: the bank registers
	// with every one and asks any of them for outcomes.
	MoreGatewayURLs []string `yaml:"more_gateway_urls,omitempty"`
	// TLS: the bank's server certificate, and its client certificate for
	// calling the gateway.
	TLS TLS `yaml:"tls"`
	// DataDir holds the bank's ledger; created if missing.
	DataDir string `yaml:"data_dir"`
	// Database, when set, is where the bank keeps its ledger instead of
	// DataDir/ledger.db: a postgres:// URL (PostgreSQL; search_path=NAME for
	// a schema) or an SQLite file.
	Database string `yaml:"database,omitempty"`
	// LogFormat is text, json or empty (auto); --log-format overrides it.
	LogFormat string `yaml:"log_format,omitempty"`
	// Accounts are opened on the bank's first start (existing accounts are
	// left alone, so restarting never resets a balance).
	Accounts []Account `yaml:"accounts,omitempty"`
}

// Account is one account a bank opens on its first start.
type Account struct {
	// ID is the account id, as in AccountRef.account_id.
	ID string `yaml:"id"`
	// Owner is the client id of the account holder.
	Owner string `yaml:"owner"`
	// Currency is a lowercase ISO 4217 code, e.g. usd.
	Currency string `yaml:"currency"`
	// OpeningBalance is in the currency's smallest unit (cents for usd).
	OpeningBalance Amount `yaml:"opening_balance"`
}

// Amount is money in the currency's smallest unit. It only accepts YAML
// integers: the YAML library would otherwise silently truncate 10.50 to 10,
// and a fractional amount almost always means someone wrote dollars where
// cents were meant.
type Amount int64

// UnmarshalYAML accepts an integer and rejects anything else.
func (a *Amount) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
		return fmt.Errorf("line %d: amount %q is not a 64-bit integer: amounts are in the currency's smallest unit (cents for usd), e.g. 100000 for 1,000.00", n.Line, n.Value)
	}
	var v int64
	if err := n.Decode(&v); err != nil {
		return fmt.Errorf("line %d: amount %q: %w", n.Line, n.Value, err)
	}
	*a = Amount(v)
	return nil
}

// Duration is a time.Duration written as a Go duration string ("1h30m").
type Duration time.Duration

// UnmarshalYAML accepts a duration string such as "15m"; a bare number is
// rejected because its unit would be a guess.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: want a duration such as \"1h\" or \"15m\"", n.Line)
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: invalid duration %q: want a value such as \"1h\" or \"15m\"", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration as a string.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// IsZero lets omitempty drop a zero duration.
func (d Duration) IsZero() bool { return d == 0 }

// LoadGateway reads, resolves and validates a gateway config file.
func LoadGateway(path string) (*Gateway, error) {
	data, abs, err := readFile(path)
	if err != nil {
		return nil, err
	}
	return ParseGateway(abs, data)
}

// ParseGateway decodes a gateway config read from path (used in messages
// and to resolve relative paths; it should be absolute).
func ParseGateway(path string, data []byte) (*Gateway, error) {
	var g Gateway
	if err := decodeStrict(path, data, &g); err != nil {
		return nil, err
	}
	g.Resolve(filepath.Dir(path))
	if err := g.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &g, nil
}

// LoadBank reads, resolves and validates a bank config file.
func LoadBank(path string) (*Bank, error) {
	data, abs, err := readFile(path)
	if err != nil {
		return nil, err
	}
	return ParseBank(abs, data)
}

// ParseBank decodes a bank config read from path (used in messages and to
// resolve relative paths; it should be absolute).
func ParseBank(path string, data []byte) (*Bank, error) {
	var b Bank
	if err := decodeStrict(path, data, &b); err != nil {
		return nil, err
	}
	b.Resolve(filepath.Dir(path))
	if err := b.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &b, nil
}

func readFile(path string) (data []byte, abs string, err error) {
	abs, err = filepath.Abs(path)
	if err != nil {
		return nil, "", fmt.Errorf("config: %w", err)
	}
	f, err := os.Open(abs)
	if err != nil {
		return nil, "", fmt.Errorf("config: %w", err)
	}
	defer f.Close() //nolint:errcheck // opened read-only: Close cannot lose data
	data, err = io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, "", fmt.Errorf("config: read %s: %w", abs, err)
	}
	if len(data) > MaxFileSize {
		return nil, "", fmt.Errorf("config: %s is larger than %d bytes; is it really a Remit config file?", abs, MaxFileSize)
	}
	return data, abs, nil
}

// unknownFieldRE rewrites yaml's "field x not found in type config.Gateway",
// which names a Go type the user never sees.
var unknownFieldRE = regexp.MustCompile(`field (.+) not found in type \S+`)

// decodeStrict decodes exactly one YAML document into v, rejecting unknown
// fields.
func decodeStrict(path string, data []byte, v any) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%s: the file is empty", path)
		}
		if te, ok := errors.AsType[*yaml.TypeError](err); ok {
			msgs := make([]string, len(te.Errors))
			for i, m := range te.Errors {
				msgs[i] = unknownFieldRE.ReplaceAllString(m, `unknown field "$1"`)
			}
			return fmt.Errorf("%s: %s", path, strings.Join(msgs, "; "))
		}
		return fmt.Errorf("%s: %s", path, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%s: more than one YAML document; a config file holds exactly one", path)
	}
	return nil
}

// resolve makes p absolute relative to dir; empty stays empty.
func resolve(dir, p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}

// Resolve makes every relative path absolute relative to dir.
func (t *TLS) Resolve(dir string) {
	t.CA = resolve(dir, t.CA)
	t.Cert = resolve(dir, t.Cert)
	t.Key = resolve(dir, t.Key)
	t.ClientCert = resolve(dir, t.ClientCert)
	t.ClientKey = resolve(dir, t.ClientKey)
}

// Resolve makes every relative path absolute relative to dir, the
// directory of the config file.
func (g *Gateway) Resolve(dir string) {
	g.TLS.Resolve(dir)
	g.DataDir = resolve(dir, g.DataDir)
	g.Users = resolve(dir, g.Users)
	g.AuditLog = resolve(dir, g.AuditLog)
}

// Resolve makes every relative path absolute relative to dir, the
// directory of the config file.
func (b *Bank) Resolve(dir string) {
	b.TLS.Resolve(dir)
	b.DataDir = resolve(dir, b.DataDir)
	b.Database = resolveDatabase(dir, b.Database)
}

// resolveDatabase resolves a database setting that names a file; a
// postgres:// URL is left as it is.
func resolveDatabase(dir, database string) string {
	if isPostgres(database) {
		return database
	}
	return resolve(dir, database)
}

// isPostgres is store.IsPostgres (config imports no storage).
func isPostgres(database string) bool {
	return strings.HasPrefix(database, "postgres://") || strings.HasPrefix(database, "postgresql://")
}

// Validate reports the first problem that would stop a gateway from
// starting, naming the field as it is spelt in the file.
func (g *Gateway) Validate() error {
	if err := validListen(g.Listen); err != nil {
		return err
	}
	if err := validMetricsListen(g.MetricsListen, g.Listen); err != nil {
		return err
	}
	if err := g.TLS.validate(true); err != nil {
		return err
	}
	switch {
	case g.DataDir == "":
		return errors.New("data_dir is required")
	case g.Database != "" && !isPostgres(g.Database):
		return fmt.Errorf("database %q: want a postgres:// URL, or none for the SQLite files in data_dir", g.Database)
	case g.Users == "":
		return errors.New("users is required (the users file, e.g. users.json)")
	case g.TokenTTL < 0:
		return fmt.Errorf("token_ttl %s is negative", time.Duration(g.TokenTTL))
	}
	if _, err := logging.ParseFormat(g.LogFormat); err != nil {
		return fmt.Errorf("log_format %q: want text, json or empty for auto", g.LogFormat)
	}
	for _, o := range g.CORSOrigins {
		if err := validOrigin(o); err != nil {
			return err
		}
	}
	for i, u := range g.ReplicaURLs {
		if err := validHTTPS(fmt.Sprintf("replica_urls[%d]", i), u); err != nil {
			return err
		}
	}
	return nil
}

// validOrigin accepts a web origin as a browser sends it in the Origin
// header: scheme, host and optional port, nothing else. "*" is refused: a
// page anywhere could then drive a logged-in user's wallet.
func validOrigin(o string) error {
	u, err := url.Parse(o)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil ||
		u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" || o != u.Scheme+"://"+u.Host {
		return fmt.Errorf("cors_origins: %q is not an origin: want scheme://host[:port] such as https://wallet.example.com, no path and no *", o)
	}
	return nil
}

// Validate reports the first problem that would stop a bank from starting,
// naming the field as it is spelt in the file.
func (b *Bank) Validate() error {
	if err := names.Bank(b.Name); err != nil {
		return fmt.Errorf("name %w", err)
	}
	if err := validListen(b.Listen); err != nil {
		return err
	}
	if err := validMetricsListen(b.MetricsListen, b.Listen); err != nil {
		return err
	}
	if err := validHTTPS("url", b.URL); err != nil {
		return err
	}
	if err := validHTTPS("gateway_url", b.GatewayURL); err != nil {
		return err
	}
	for i, u := range b.MoreGatewayURLs {
		if err := validHTTPS(fmt.Sprintf("more_gateway_urls[%d]", i), u); err != nil {
			return err
		}
	}
	if err := b.TLS.validate(true); err != nil {
		return err
	}
	if b.DataDir == "" {
		return errors.New("data_dir is required")
	}
	if _, err := logging.ParseFormat(b.LogFormat); err != nil {
		return fmt.Errorf("log_format %q: want text, json or empty for auto", b.LogFormat)
	}
	seen := make(map[string]bool, len(b.Accounts))
	for i, a := range b.Accounts {
		idErr, currencyErr := names.AccountID(a.ID), names.Currency(a.Currency)
		switch {
		case idErr != nil:
			return fmt.Errorf("accounts[%d].id %w", i, idErr)
		case seen[a.ID]:
			return fmt.Errorf("accounts[%d].id %q appears twice", i, a.ID)
		case a.Owner == "":
			return fmt.Errorf("accounts[%d].owner is required (the client id of the holder)", i)
		case currencyErr != nil:
			return fmt.Errorf("accounts[%d].currency %w", i, currencyErr)
		case a.OpeningBalance < 0:
			return fmt.Errorf("accounts[%d].opening_balance %d is negative", i, a.OpeningBalance)
		}
		seen[a.ID] = true
	}
	return nil
}

func (t *TLS) validate(needClient bool) error {
	switch {
	case t.CA == "":
		return errors.New("tls.ca is required (the dev CA is certs/ca.pem; `remit certs` writes it)")
	case t.Cert == "" || t.Key == "":
		return errors.New("tls.cert and tls.key are required (the server certificate and its key)")
	case needClient && (t.ClientCert == "" || t.ClientKey == ""):
		return errors.New("tls.client_cert and tls.client_key are required (the client certificate for mutual TLS and its key)")
	}
	return nil
}

func validListen(addr string) error {
	if addr == "" {
		return errors.New("listen is required, e.g. 127.0.0.1:8443")
	}
	return validHostPort("listen", addr, "e.g. 127.0.0.1:8443")
}

// validHostPort checks that addr, the value of field, is host:port with a
// real port; example is shown when it is not host:port at all.
func validHostPort(field, addr, example string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%s %q: want host:port, %s", field, addr, example)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return fmt.Errorf("%s %q: want a port between 1 and 65535", field, addr)
	}
	return nil
}

// validMetricsListen checks the optional admin listener: host:port with a
// real port, and not the API's own address.
func validMetricsListen(addr, listen string) error {
	if addr == "" {
		return nil
	}
	if err := validHostPort("metrics_listen", addr,
		"e.g. 127.0.0.1:9090 (keep it on loopback: plain HTTP, no authentication)"); err != nil {
		return err
	}
	if addr == listen {
		return fmt.Errorf("metrics_listen %q is the listen address: the admin listener needs a port of its own", addr)
	}
	return nil
}

func validHTTPS(field, raw string) error {
	if raw == "" {
		return fmt.Errorf("%s is required, e.g. https://127.0.0.1:8443", field)
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%s %q: want an https URL such as https://127.0.0.1:8443 (Remit never speaks plaintext)", field, raw)
	}
	return nil
}

// Marshal encodes a config as YAML; Parse* reads it back unchanged.
func Marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return buf.Bytes(), nil
}
