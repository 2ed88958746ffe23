package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"log/slog"
	"time"

	"github.com/remitpay/remit/internal/config"
	"github.com/remitpay/remit/internal/names"
	"github.com/remitpay/remit/services/bank"
)

var bankCmd = &command{
	name:    "bank",
	summary: "run one bank server (one role of a deployment)",
	usage: `remit bank --config FILE
       remit bank enroll --config FILE --account ID [--ttl 24h] [--json]`,
	help: `
Bank runs one bank described by a banks/<name>.yaml: its ledger, the
two-phase commit participant the gateway drives, and the loop that keeps it
registered with the gateway. Only the gateway may call it: it requires a
client certificate from the dev CA (mutual TLS). It serves until SIGINT or
SIGTERM, then shuts down gracefully.

Accounts listed in the file are opened on every start if missing;
restarting never resets a balance, and a closed account stays closed.

Enroll prints a one-time enrollment code for an open account of the bank:
the account's holder types it into 'remit register' to link the account to
a new customer of the gateway. It is valid for --ttl (default 24h, at most
168h) and once; the bank stores only its hash, so it is shown only now.
Issuing a code makes the account's older unused codes invalid and clears
its failed attempts (after 5 wrong codes an account's codes stop working
until a new one is issued). It writes into the bank's ledger directly, and
works while the bank runs.

Relative paths in the file are relative to the file's directory. Unknown
fields are errors. 'remit init' writes working files; 'remit up' runs this
command for you.

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
remit --log-format json bank --config /etc/remit/banks/bank-a.yaml
remit bank enroll --config .remit/banks/bank-b.yaml --account erin --ttl 2h`,
	flags: bankFlags,
}

// bankFlags is `remit bank` (the server) and `remit bank enroll`.
func bankFlags(fs *flag.FlagSet) runFunc {
	server := serverRole[config.Bank, bank.Config]{
		configUsage: "the banks/<name>.yaml `FILE` (required)",
		load:        config.LoadBank,
		logFormat:   func(c *config.Bank) string { return c.LogFormat },
		build:       bankConfig,
		run:         bank.Run,
	}.flags(fs)
	account := fs.String("account", "", "enroll: the `ID` of the account to issue a code for (required)")
	ttl := fs.Duration("ttl", bank.DefaultEnrollmentTTL, "enroll: how long the code is valid, at most 168h")
	asJSON := fs.Bool("json", false, "enroll: print the code as JSON")
	return func(ctx context.Context, e *env, args []string) error {
		if len(args) == 0 || args[0] != "enroll" {
			set := false
			fs.Visit(func(fl *flag.Flag) { set = set || fl.Name == "account" || fl.Name == "ttl" || fl.Name == "json" })
			if set {
				return usagef("--account, --ttl and --json only apply to 'remit bank enroll'")
			}
			return server(ctx, e, args)
		}
		if err := noArgs(args[1:]); err != nil {
			return err
		}
		path := fs.Lookup("config").Value.String()
		switch {
		case path == "":
			return usagef("--config is required")
		case *account == "":
			return usagef("--account is required")
		case *ttl <= 0 || *ttl > bank.MaxEnrollmentTTL:
			return usagef("--ttl %s: want more than 0 and at most %s", *ttl, bank.MaxEnrollmentTTL)
		}
		if err := names.AccountID(*account); err != nil {
			return usagef("account id %v", err)
		}
		return enroll(ctx, e, path, *account, *ttl, *asJSON)
	}
}

// enroll is `remit bank enroll`: it issues the code in the bank's ledger and
// prints it. The bank's log line for it (stderr) never has the code.
func enroll(ctx context.Context, e *env, path, account string, ttl time.Duration, asJSON bool) error {
	file, err := config.LoadBank(path)
	if err != nil {
		return err
	}
	code, err := bank.Enroll(ctx, bank.LedgerTarget(file.Database, file.DataDir), account, ttl)
	if err != nil {
		return err
	}
	e.logger(file.LogFormat).Info("enrollment code issued", "bank", file.Name, "account_id", account,
		"expire_time", code.ExpireTime, "revoked_codes", code.Revoked)
	if asJSON {
		return printJSON(e.stdout, struct {
			Bank       string    `json:"bank"`
			AccountID  string    `json:"account_id"`
			Code       string    `json:"code"`
			ExpireTime time.Time `json:"expire_time"`
		}{file.Name, account, code.Code, code.ExpireTime})
	}
	_, err = fmt.Fprintf(e.stdout, "Enrollment code for account %s at %s:\n\n  %s\n\nValid until %s, once. Give it to the account's holder only; it is not shown again.\n",
		account, file.Name, code.Code, code.ExpireTime.Format(time.RFC3339))
	return err
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
		Name:            c.Name,
		Addr:            c.Listen,
		MetricsAddr:     c.MetricsListen,
		PublicURL:       c.URL,
		GatewayURL:      c.GatewayURL,
		MoreGatewayURLs: c.MoreGatewayURLs,
		ServerTLS:       serverTLS,
		GatewayTLS:      gatewayTLS,
		DataDir:         c.DataDir,
		Database:        c.Database,
		Accounts:        accounts,
		Logger:          log,
	}, nil
}
