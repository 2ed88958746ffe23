package main

import (
	"crypto/tls"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/remitpay/remit/internal/config"
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
over TLS 1.3 until SIGINT or SIGTERM, then shuts down gracefully. SIGHUP
imports the users file again at once (it is also read every 2s).

Relative paths in the file are relative to the file's directory. Unknown
fields are errors. 'remit init' writes a working gateway.yaml; 'remit up'
runs this command for you.

gateway.yaml fields:
  listen        host:port to serve on, e.g. 127.0.0.1:8443
  metrics_listen
                optional host:port of the admin listener: Prometheus
                /metrics and pprof /debug/pprof/, plain HTTP without
                authentication, so keep it on loopback; absent for none
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
	flags: serverRole[config.Gateway, gateway.Config]{
		configUsage: "the gateway.yaml `FILE` (required)",
		load:        config.LoadGateway,
		logFormat:   func(c *config.Gateway) string { return c.LogFormat },
		build:       gatewayConfig,
		run:         gateway.Run,
	}.flags,
}

// gatewayConfig turns a loaded gateway.yaml into the gateway's Config,
// loading the TLS material so that a bad certificate fails before anything
// starts.
func gatewayConfig(c *config.Gateway, log *slog.Logger) (gateway.Config, error) {
	// Banks present a client certificate; people log in with a password.
	serverTLS, bankTLS, err := roleFiles(c.TLS, tls.VerifyClientCertIfGiven, c.DataDir)
	if err != nil {
		return gateway.Config{}, err
	}
	// SIGHUP imports the users file at once (it is also polled).
	reload := make(chan os.Signal, 1)
	signal.Notify(reload, syscall.SIGHUP)
	return gateway.Config{
		Reload:      reload,
		Addr:        c.Listen,
		MetricsAddr: c.MetricsListen,
		ServerTLS:   serverTLS,
		BankTLS:     bankTLS,
		DataDir:     c.DataDir,
		Database:    c.Database,
		UsersFile:   c.Users,
		AuditLog:    c.AuditLog,
		Logger:      log,
		TokenTTL:    time.Duration(c.TokenTTL),
		CORSOrigins: c.CORSOrigins,
		ReplicaURLs: c.ReplicaURLs,
	}, nil
}
