// Package serve runs Remit's Connect servers: one net/http server per
// process, TLS 1.3 only, HTTP/2 (and HTTP/1.1 for Connect and gRPC-Web
// clients that cannot do HTTP/2), answering the Connect, gRPC and gRPC-Web
// protocols. It centralizes the timeouts, limits, interceptor chain and
// graceful shutdown so that every Remit binary behaves the same way.
//
// There is deliberately no plaintext listener anywhere: payment traffic and
// bearer credentials must never cross the network unencrypted, so [Serve]
// and [Run] refuse to start without a TLS 1.3 configuration.
package serve

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Defaults applied by [Serve] and [Run] to zero-valued [Config] fields.
const (
	// DefaultReadHeaderTimeout bounds how long a client may take to send
	// request headers, which defeats slowloris-style connection exhaustion
	// without affecting long-running streams (headers come first).
	DefaultReadHeaderTimeout = 5 * time.Second
	// DefaultIdleTimeout closes keep-alive connections that carry no
	// requests, so idle clients do not pin server resources forever.
	DefaultIdleTimeout = 120 * time.Second
	// DefaultShutdownTimeout is how long in-flight RPCs get to finish after
	// shutdown starts before connections are closed forcibly.
	DefaultShutdownTimeout = 10 * time.Second
	// DefaultMaxHeaderBytes caps request header size; Remit requests carry
	// a bearer token and a few metadata headers, far below 64 KiB.
	DefaultMaxHeaderBytes = 64 << 10
	// DefaultMaxConcurrentStreams caps concurrent HTTP/2 streams (RPCs) per
	// connection so that one client cannot monopolize the server.
	DefaultMaxConcurrentStreams = 250
	// DefaultMaxBodyBytes caps the total request body per HTTP request (for
	// a stream: per stream). It is a coarse backstop above the per-message
	// limit set by [HandlerOptions] (connect.WithReadMaxBytes), which is
	// the real per-RPC bound.
	DefaultMaxBodyBytes = 2 << 20
)

// Config describes one Remit server. Zero values are replaced by the
// Default* constants so that callers only set what they need and cannot
// accidentally run without limits.
//
// There are intentionally no whole-request read or write timeouts by
// default, and no WriteTimeout field at all: net/http applies them to the
// whole request or response, which would cut off long-lived streaming RPCs
// (for example health Watch or reflection). Per-RPC limits come instead
// from Connect's read max bytes ([HandlerOptions], [Mount]), from the
// request body cap (MaxBodyBytes), from the body deadline of unary RPCs
// (UnaryBodyTimeout), and from RPC deadlines propagated by clients
// (Connect-Timeout-Ms / grpc-timeout), which Connect turns into context
// deadlines.
//
// Per source address (an IPv4 address or an IPv6 /64, as
// authz.SourceOf), [Serve] caps concurrent connections, concurrent
// anonymous streams and the rate of anonymous health and reflection calls
// ([SourceLimits]); loopback sources have limits of their own (Loopback),
// loose by default for development networks and `remit bench`. Each
// refusal is logged as a Warn line with the source and the limit, at most
// one line per kind of limit a second.
type Config struct {
	// Addr is the TCP address to listen on, e.g. ":8443". Used by Run only.
	Addr string
	// TLS is the server's TLS configuration. Required, with MinVersion
	// tls.VersionTLS13 and a certificate (Certificates, GetCertificate or
	// GetConfigForClient). It is cloned, never modified.
	TLS *tls.Config
	// Handler serves requests, usually an *http.ServeMux of Connect
	// handlers. Required: a nil handler would fall back to
	// http.DefaultServeMux, which may expose debug endpoints.
	Handler http.Handler
	// Logger receives server lifecycle and net/http error logs. Required.
	Logger *slog.Logger

	// ReadHeaderTimeout defaults to DefaultReadHeaderTimeout.
	ReadHeaderTimeout time.Duration
	// ReadTimeout defaults to 0 (none) so streaming RPCs are not cut; see
	// the Config documentation.
	ReadTimeout time.Duration
	// IdleTimeout defaults to DefaultIdleTimeout.
	IdleTimeout time.Duration
	// ShutdownTimeout defaults to DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
	// MaxHeaderBytes defaults to DefaultMaxHeaderBytes.
	MaxHeaderBytes int
	// MaxConcurrentStreams defaults to DefaultMaxConcurrentStreams.
	MaxConcurrentStreams uint32
	// MaxBodyBytes caps each request body (http.MaxBytesHandler); defaults
	// to DefaultMaxBodyBytes. Raise it for client-streaming RPCs that
	// legitimately send more in total.
	MaxBodyBytes int64

	// UnaryBodyTimeout bounds how long the request body of a unary RPC may
	// take to arrive after its headers; defaults to
	// DefaultUnaryBodyTimeout, negative disables it. Streaming RPCs
	// (recognised from the procedure's descriptor) are not affected.
	UnaryBodyTimeout time.Duration
	// Sources are the per-source limits for remote addresses; zero fields
	// default to DefaultMaxConnsPerSource, DefaultMaxAnonymousStreams,
	// DefaultAnonymousRate and DefaultAnonymousBurst.
	Sources SourceLimits
	// Loopback are the per-source limits for loopback addresses, where a
	// development network and `remit bench` open many connections; zero
	// fields default to DefaultMaxConnsPerLoopback,
	// DefaultMaxAnonymousStreams and no anonymous rate limit.
	Loopback SourceLimits
}

// withDefaults returns a copy of c with zero values replaced by defaults.
func (c Config) withDefaults() Config {
	if c.ReadHeaderTimeout <= 0 {
		c.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if c.ReadTimeout < 0 {
		c.ReadTimeout = 0
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.MaxHeaderBytes <= 0 {
		c.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if c.MaxConcurrentStreams == 0 {
		c.MaxConcurrentStreams = DefaultMaxConcurrentStreams
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	switch {
	case c.UnaryBodyTimeout == 0:
		c.UnaryBodyTimeout = DefaultUnaryBodyTimeout
	case c.UnaryBodyTimeout < 0:
		c.UnaryBodyTimeout = 0
	}
	c.Sources = c.Sources.withDefaults(defaultSourceLimits)
	c.Loopback = c.Loopback.withDefaults(defaultLoopbackLimits)
	return c
}

// Errors returned when a Config is unsafe to serve.
var (
	// ErrNoTLS means Config.TLS is nil; Remit never serves plaintext.
	ErrNoTLS = errors.New("serve: TLS config is required (no plaintext listeners)")
	// ErrTLSVersion means Config.TLS allows versions below TLS 1.3.
	ErrTLSVersion = errors.New("serve: TLS MinVersion must be TLS 1.3")
	// ErrNoCertificate means Config.TLS has no way to present a certificate.
	ErrNoCertificate = errors.New("serve: TLS config has no certificate")
	// ErrNoHandler means Config.Handler is nil.
	ErrNoHandler = errors.New("serve: handler is required")
	// ErrNoLogger means Config.Logger is nil.
	ErrNoLogger = errors.New("serve: logger is required")
)

// validate rejects configurations that would serve insecurely.
func (c Config) validate() error {
	switch {
	case c.TLS == nil:
		return ErrNoTLS
	case c.TLS.MinVersion < tls.VersionTLS13:
		return ErrTLSVersion
	case len(c.TLS.Certificates) == 0 && c.TLS.GetCertificate == nil && c.TLS.GetConfigForClient == nil:
		return ErrNoCertificate
	case c.Handler == nil:
		return ErrNoHandler
	case c.Logger == nil:
		return ErrNoLogger
	}
	return nil
}

// Run listens on cfg.Addr and serves like [Serve] until ctx is done. It is
// the entry point of every Remit server binary. The configuration is
// validated before the port is opened, so an unsafe configuration never
// listens at all.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.validate(); err != nil {
		return err
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("serve: listen on %q: %w", cfg.Addr, err)
	}
	return Serve(ctx, ln, cfg)
}

// Serve serves cfg.Handler over TLS 1.3 with HTTP/2 on ln (a plain TCP
// listener; Serve adds TLS) until ctx is done, then shuts down gracefully:
// it stops accepting, sends HTTP/2 GOAWAY, waits up to cfg.ShutdownTimeout
// for in-flight RPCs, and then closes remaining connections. It exists
// separately from [Run] so tests and callers can supply their own listener
// (for example on 127.0.0.1:0).
//
// Serve returns nil after a graceful shutdown, the shutdown error if
// in-flight RPCs outlived ShutdownTimeout, or the serving error if the
// server failed. It closes ln in all cases.
func Serve(ctx context.Context, ln net.Listener, cfg Config) error {
	if err := cfg.validate(); err != nil {
		_ = ln.Close()
		return err
	}
	cfg = cfg.withDefaults()
	logger := cfg.Logger

	tlsConf := cfg.TLS.Clone()
	// h2 first: Go's TLS server picks ALPN by server preference.
	tlsConf.NextProtos = []string{"h2", "http/1.1"}

	// Per-source limits: connections at the listener, the unary body
	// deadline and the anonymous limits in front of every handler.
	lim := newLimits(cfg)
	ln = &listener{Listener: ln, limits: lim}

	srv := &http.Server{
		Handler:           lim.handler(http.MaxBytesHandler(cfg.Handler, cfg.MaxBodyBytes)),
		TLSConfig:         tlsConf,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      0, // see Config: would cut streaming RPCs
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		// Requests inherit ctx's values but not its cancellation: shutdown
		// must let in-flight payments finish, not abort them.
		BaseContext: func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	// HTTP/2 for gRPC and multiplexing; HTTP/1.1 for Connect and gRPC-Web
	// clients that cannot do HTTP/2. The HTTP/2 idle timeout is the
	// server's IdleTimeout.
	srv.Protocols = new(http.Protocols)
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetHTTP2(true)
	srv.HTTP2 = &http.HTTP2Config{MaxConcurrentStreams: int(cfg.MaxConcurrentStreams)}

	addr := ln.Addr().String()
	errCh := make(chan error, 1)
	go func() {
		// Certificates come from TLSConfig, hence no file names.
		errCh <- srv.ServeTLS(ln, "", "")
	}()
	logger.LogAttrs(ctx, slog.LevelInfo, "listening", slog.String("addr", addr))

	select {
	case err := <-errCh:
		// The server stopped on its own: that is always a failure.
		return fmt.Errorf("serve: %s: %w", addr, err)
	case <-ctx.Done():
	}

	logger.LogAttrs(ctx, slog.LevelInfo, "shutting down", slog.String("addr", addr), slog.Duration("timeout", cfg.ShutdownTimeout))
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		// Forced: the Shutdown error is what went wrong, and ServeTLS
		// returns ErrServerClosed after Close; neither adds to it.
		_ = srv.Close()
		<-errCh //nolint:errcheck // ErrServerClosed, see above
		logger.LogAttrs(ctx, slog.LevelError, "forced shutdown", slog.String("addr", addr), slog.String("error", err.Error()))
		return fmt.Errorf("serve: graceful shutdown of %s: %w", addr, err)
	}
	if err := <-errCh; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %s: %w", addr, err)
	}
	logger.LogAttrs(ctx, slog.LevelInfo, "stopped", slog.String("addr", addr))
	return nil
}
