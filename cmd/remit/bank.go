package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"log/slog"
	"os"

	"github.com/remitpay/remit/internal/config"
	"github.com/remitpay/remit/internal/pki"
	"github.com/remitpay/remit/internal/serve"
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
	flags: func(fs *flag.FlagSet) runFunc {
		path := fs.String("config", "", "the banks/<name>.yaml `FILE` (required)")
		return func(ctx context.Context, e *env, args []string) error {
			switch {
			case len(args) > 0:
				return usagef("unexpected argument %q", args[0])
			case *path == "":
				return usagef("--config is required")
			}
			cfg, err := config.LoadBank(*path)
			if err != nil {
				return err
			}
			bcfg, err := bankConfig(cfg, e.logger(cfg.LogFormat))
			if err != nil {
				return err
			}
			ctx, stop := serve.HandleSignals(ctx)
			defer stop()
			return bank.Run(ctx, bcfg)
		}
	},
}

// bankConfig turns a loaded bank config into the bank's Config, loading the
// TLS material so that a bad certificate fails before anything starts.
func bankConfig(c *config.Bank, log *slog.Logger) (bank.Config, error) {
	serverTLS, err := pki.ServerConfig(c.TLS.Cert, c.TLS.Key, c.TLS.CA, tls.RequireAndVerifyClientCert)
	if err != nil {
		return bank.Config{}, err
	}
	gatewayTLS, err := pki.ClientConfig(c.TLS.CA, c.TLS.ClientCert, c.TLS.ClientKey)
	if err != nil {
		return bank.Config{}, err
	}
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return bank.Config{}, fmt.Errorf("create data_dir: %w", err)
	}
	accounts := make([]bank.AccountSeed, len(c.Accounts))
	for i, a := range c.Accounts {
		accounts[i] = bank.AccountSeed{ID: a.ID, Owner: a.Owner, Currency: a.Currency, Opening: int64(a.OpeningBalance)}
	}
	return bank.Config{
		Name:       c.Name,
		Addr:       c.Listen,
		PublicURL:  c.URL,
		GatewayURL: c.GatewayURL,
		ServerTLS:  serverTLS,
		GatewayTLS: gatewayTLS,
		DataDir:    c.DataDir,
		Accounts:   accounts,
		Logger:     log,
	}, nil
}
