package main

import (
	"crypto/tls"
	"log/slog"

	"github.com/remitpay/remit/internal/config"
	"github.com/remitpay/remit/services/bank"
)

var bankCmd = &command{
	name:    "bank",
	summary: "run one bank server (one role of a deployment)",
	usage:   "remit bank --config FILE",
	help: `
Bank runs one bank described by a banks/<name>.yaml: its ledger, the
two-phase commit participant the gateway drives, and the loop that keeps it
registered with the gateway. Only the gateway may call it: it requires a
client certificate from the dev CA (mutual TLS). It serves until SIGINT or
SIGTERM, then shuts down gracefully.

Accounts listed in the file are opened on first start; restarting never
resets a balance. Relative paths in the file are relative to the file's
directory. Unknown fields are errors. 'remit init' writes working files;
'remit up' runs this command for you.

banks/<name>.yaml fields:
  name          the bank's name, as in its certificates (e.g. bank-a)
  listen        host:port to serve on, e.g. 127.0.0.1:8444
  metrics_listen
                optional host:port of the admin listener: Prometheus
                /metrics and pprof /debug/pprof/, plain HTTP without
                authentication, so keep it on loopback; absent for none
  url           https URL the gateway reaches this bank at
  gateway_url   https URL of the gateway
  tls           ca, cert, key (server certificate),
                client_cert, client_key (presented to the gateway)
  data_dir      the ledger (created if missing)
  log_format    text or json (--log-format wins)
  accounts      list of {id, owner, currency, opening_balance}; amounts
                are in the currency's smallest unit (100000 = 1,000.00 usd)`,
	examples: `
remit bank --config .remit/banks/bank-a.yaml
remit --log-format json bank --config /etc/remit/banks/bank-a.yaml`,
	flags: serverRole[config.Bank, bank.Config]{
		configUsage: "the banks/<name>.yaml `FILE` (required)",
		load:        config.LoadBank,
		logFormat:   func(c *config.Bank) string { return c.LogFormat },
		build:       bankConfig,
		run:         bank.Run,
	}.flags,
}

// bankConfig turns a loaded bank config into the bank's Config, loading the
// TLS material so that a bad certificate fails before anything starts.
func bankConfig(c *config.Bank, log *slog.Logger) (bank.Config, error) {
	// Only the gateway may call a bank: its client certificate is required.
	serverTLS, gatewayTLS, err := roleFiles(c.TLS, tls.RequireAndVerifyClientCert, c.DataDir)
	if err != nil {
		return bank.Config{}, err
	}
	accounts := make([]bank.AccountSeed, len(c.Accounts))
	for i, a := range c.Accounts {
		accounts[i] = bank.AccountSeed{ID: a.ID, Owner: a.Owner, Currency: a.Currency, Opening: int64(a.OpeningBalance)}
	}
	return bank.Config{
		Name:        c.Name,
		Addr:        c.Listen,
		MetricsAddr: c.MetricsListen,
		PublicURL:   c.URL,
		GatewayURL:  c.GatewayURL,
		ServerTLS:   serverTLS,
		GatewayTLS:  gatewayTLS,
		DataDir:     c.DataDir,
		Accounts:    accounts,
		Logger:      log,
	}, nil
}
