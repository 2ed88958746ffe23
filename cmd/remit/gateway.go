package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/remitpay/remit/internal/config"
	"github.com/remitpay/remit/internal/logging"
	"github.com/remitpay/remit/internal/pki"
	"github.com/remitpay/remit/internal/serve"
	"github.com/remitpay/remit/services/gateway"
)

var gatewayCmd = &command{
	name:    "gateway",
	summary: "run the payment gateway (one role of a deployment)",
	usage:   "remit gateway --config FILE",
	help: `
Gateway runs the payment gateway described by a gateway.yaml: it
authenticates clients, authorizes every call and coordinates payments
between banks with a two-phase commit. It serves Connect, gRPC and gRPC-Web
over TLS 1.3 until SIGINT or SIGTERM, then shuts down gracefully.

Relative paths in the file are relative to the file's directory. Unknown
fields are errors. 'remit init' writes a working gateway.yaml; 'remit up'
runs this command for you.

gateway.yaml fields:
  listen        host:port to serve on, e.g. 127.0.0.1:8443
  tls           ca, cert, key (server certificate),
                client_cert, client_key (presented to banks)
  data_dir      databases (created if missing)
  users         the users file (password hashes; 'remit users')
  audit_log     audit file (default data_dir/audit.jsonl)
  log_format    text or json (--log-format wins)
  token_ttl     access token lifetime, e.g. 1h`,
	examples: `
remit gateway --config .remit/gateway.yaml
remit --log-format json gateway --config /etc/remit/gateway.yaml`,
	flags: func(fs *flag.FlagSet) runFunc {
		path := fs.String("config", "", "the gateway.yaml `FILE` (required)")
		return func(ctx context.Context, e *env, args []string) error {
			switch {
			case len(args) > 0:
				return usagef("unexpected argument %q", args[0])
			case *path == "":
				return usagef("--config is required")
			}
			cfg, err := config.LoadGateway(*path)
			if err != nil {
				return err
			}
			gcfg, err := gatewayConfig(cfg, e.logger(cfg.LogFormat))
			if err != nil {
				return err
			}
			ctx, stop := serve.HandleSignals(ctx)
			defer stop()
			return gateway.Run(ctx, gcfg)
		}
	},
}

// gatewayConfig turns a loaded gateway.yaml into the gateway's Config,
// loading the TLS material so that a bad certificate fails before anything
// starts.
func gatewayConfig(c *config.Gateway, log *slog.Logger) (gateway.Config, error) {
	serverTLS, err := pki.ServerConfig(c.TLS.Cert, c.TLS.Key, c.TLS.CA, tls.VerifyClientCertIfGiven)
	if err != nil {
		return gateway.Config{}, err
	}
	bankTLS, err := pki.ClientConfig(c.TLS.CA, c.TLS.ClientCert, c.TLS.ClientKey)
	if err != nil {
		return gateway.Config{}, err
	}
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return gateway.Config{}, fmt.Errorf("create data_dir: %w", err)
	}
	return gateway.Config{
		Addr:      c.Listen,
		ServerTLS: serverTLS,
		BankTLS:   bankTLS,
		DataDir:   c.DataDir,
		UsersFile: c.Users,
		AuditLog:  c.AuditLog,
		Logger:    log,
		TokenTTL:  time.Duration(c.TokenTTL),
	}, nil
}

// logger returns the process logger writing to stderr: --log-format if
// given, else the config file's log_format, else auto (text on a terminal).
func (e *env) logger(configFormat string) *slog.Logger {
	format := e.logFormat
	if format == "" {
		format = configFormat // validated when the config was loaded
	}
	return logging.New(e.stderr, format, slog.LevelInfo)
}
