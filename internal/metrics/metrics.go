// Package metrics gives every Remit process its Prometheus metrics and its
// admin listener: one [prometheus.Registry] per process (never the global
// default registry, so two processes in one test binary do not mix), an
// interceptor that counts and times every RPC by procedure and Connect code,
// and a plain-HTTP server for /metrics and /debug/pprof/.
//
// # Invariants
//
//   - The admin listener is separate from the API listener and serves
//     nothing but metrics and profiles: it has no TLS and no
//     authentication, so it belongs on loopback (the default everywhere it
//     is configured) or behind a firewall. [Serve] logs a warning when it is
//     given any other address.
//   - pprof handlers are registered on the admin mux explicitly. Importing
//     net/http/pprof also registers them on http.DefaultServeMux, which no
//     Remit server ever serves (serve.Config refuses a nil handler).
//   - Recording a metric never fails an RPC and never blocks on I/O: gauges
//     that need the database are computed when Prometheus scrapes, by the
//     collectors of the services, not on the payment path.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Namespace prefixes every Remit metric name.
const Namespace = "remit"

// LatencyBuckets are the histogram buckets, in seconds, of every Remit
// latency: from 0.5 ms (a cached read) to 10 s (the longest bank-call
// deadline), dense around the few milliseconds a payment should take.
var LatencyBuckets = []float64{0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// ScrapeTimeout bounds the database queries a collector runs when
// Prometheus scrapes, so a locked database delays a scrape, never hangs it.
const ScrapeTimeout = 2 * time.Second

// NewRegistry returns a registry for one process with the Go runtime
// collector (goroutines, heap, GC, scheduler) and the process collector
// (CPU, RSS, open files) already registered.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

// Handler returns the admin mux: /metrics (the registry, in the Prometheus
// text or OpenMetrics format) and the pprof handlers under /debug/pprof/.
// A collector that fails reports its error in the scrape log and the other
// metrics are still served.
func Handler(reg *prometheus.Registry, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		ErrorHandling: promhttp.ContinueOnError,
		// A scrape runs a few aggregate queries on the process's database;
		// more scrapes at once would only queue payments behind them.
		MaxRequestsInFlight: 2,
		Registry:            reg, // promhttp_metric_handler_errors_total
		Timeout:             2 * ScrapeTimeout,
	}))
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("POST /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	return mux
}

// Listen opens the admin listener on addr, before the process starts
// serving, so a taken port fails the start instead of being noticed later.
func Listen(ctx context.Context, addr string) (net.Listener, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: listen on %q: %w", addr, err)
	}
	return ln, nil
}

// Serve serves [Handler] over plain HTTP on ln until ctx ends, then shuts
// down (a CPU profile or trace in progress is cut after a few seconds). It
// closes ln. The admin listener is for operators on the same host: Serve
// warns when ln is not on a loopback address.
func Serve(ctx context.Context, ln net.Listener, reg *prometheus.Registry, log *slog.Logger) error {
	addr := ln.Addr().String()
	if tcp, ok := ln.Addr().(*net.TCPAddr); ok && !tcp.IP.IsLoopback() {
		log.Warn("metrics and pprof listener is not on loopback: it is plain HTTP without authentication; firewall it", "addr", addr)
	}
	srv := &http.Server{
		Handler:           Handler(reg, log),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		// pprof's profile and trace default to 30 s or less; allow them.
		WriteTimeout:   70 * time.Second,
		IdleTimeout:    120 * time.Second,
		MaxHeaderBytes: 16 << 10,
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		BaseContext:    func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	errCh := make(chan error, 1)
	go func() { errCh <- srv.Serve(ln) }()
	log.Info("metrics listening", "addr", addr, "metrics", "http://"+addr+"/metrics", "pprof", "http://"+addr+"/debug/pprof/")
	select {
	case err := <-errCh:
		return fmt.Errorf("metrics: %s: %w", addr, err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		// A long profile is still being written: cut it, the process is
		// stopping.
		_ = srv.Close()
	}
	if err := <-errCh; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("metrics: %s: %w", addr, err)
	}
	return nil
}
