package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"log/slog"
	"os"

	"github.com/remitpay/remit/internal/config"
	"github.com/remitpay/remit/internal/logging"
	"github.com/remitpay/remit/internal/pki"
	"github.com/remitpay/remit/internal/serve"
)

// serverRole is one server role of a deployment, `remit gateway` or
// `remit bank`: C is its config file's type, S its package's Config.
type serverRole[C, S any] struct {
	// configUsage is the usage of --config.
	configUsage string
	// load reads and validates the config file.
	load func(path string) (*C, error)
	// logFormat returns the file's log_format ("" if unset).
	logFormat func(*C) string
	// build turns the file into the server's Config, loading the TLS
	// material so that a bad certificate fails before anything listens.
	build func(*C, *slog.Logger) (S, error)
	// run serves until ctx ends, then shuts down gracefully.
	run func(context.Context, S) error
}

// flags is the command's flags function: a required --config, then load,
// log, build and run the server until SIGINT or SIGTERM.
func (r serverRole[C, S]) flags(fs *flag.FlagSet) runFunc {
	path := fs.String("config", "", r.configUsage)
	return func(ctx context.Context, e *env, args []string) error {
		switch {
		case len(args) > 0:
			return usagef("unexpected argument %q", args[0])
		case *path == "":
			return usagef("--config is required")
		}
		file, err := r.load(*path)
		if err != nil {
			return err
		}
		cfg, err := r.build(file, e.logger(r.logFormat(file)))
		if err != nil {
			return err
		}
		ctx, stop := serve.HandleSignals(ctx)
		defer stop()
		return r.run(ctx, cfg)
	}
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

// roleFiles loads a role's TLS material, its server config (asking
// clients for a certificate as clientAuth says) and the client config it
// presents to its peers, and creates its data_dir, so that a bad
// certificate or an unwritable directory fails before anything listens.
func roleFiles(t config.TLS, clientAuth tls.ClientAuthType, dataDir string) (server, client *tls.Config, err error) {
	if server, err = pki.ServerConfig(t.Cert, t.Key, t.CA, clientAuth); err != nil {
		return nil, nil, err
	}
	if client, err = pki.ClientConfig(t.CA, t.ClientCert, t.ClientKey); err != nil {
		return nil, nil, err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("create data_dir: %w", err)
	}
	return server, client, nil
}
