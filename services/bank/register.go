package bank

import (
	"context"
	"log/slog"
	"time"
)

// Registration timing.
const (
	// DefaultRegisterInterval is the heartbeat: how often a registered bank
	// registers again, so a restarted gateway re-learns it within seconds.
	DefaultRegisterInterval = 10 * time.Second
	// MaxRegisterBackoff caps the wait between attempts while the gateway
	// is unreachable.
	MaxRegisterBackoff = 30 * time.Second
	// registerBackoffBase is the first wait after a failed attempt.
	registerBackoffBase = time.Second
)

// Registrar keeps the bank registered with the gateway: it calls
// Coordinator.Register at start and every Interval after a success, and with
// exponential backoff and jitter (1s doubling up to [MaxRegisterBackoff])
// while the gateway is unreachable. It logs "registered with gateway" on the
// first success, when the gateway's instance id changes (it restarted) and
// when the gateway is back after a loss, and warns once per loss.
type Registrar struct {
	Coordinator Coordinator
	// Name is the bank's name, as in its certificate.
	Name string
	// URL is the bank's public https URL.
	URL string
	// Interval defaults to DefaultRegisterInterval.
	Interval time.Duration
	// Logger is required: Run panics without one.
	Logger *slog.Logger
}

// Run registers until ctx ends.
func (r *Registrar) Run(ctx context.Context) {
	interval := orDefault(r.Interval, DefaultRegisterInterval)
	log := r.Logger
	if log == nil {
		panic("bank: Registrar.Logger is required")
	}
	var instance string
	registered, lost, failures := false, false, 0
	for {
		callCtx, cancel := context.WithTimeout(ctx, callTimeout)
		id, err := r.Coordinator.Register(callCtx, r.Name, r.URL)
		cancel()
		if ctx.Err() != nil {
			return
		}
		delay := interval
		if err != nil {
			failures++
			if !lost {
				lost = true
				log.Warn("gateway unreachable; retrying registration with backoff", "err", err)
			}
			delay = jitter(backoff(registerBackoffBase, failures, MaxRegisterBackoff))
		} else {
			if !registered || lost || id != instance {
				log.Info("registered with gateway", "url", r.URL,
					"gateway_instance_id", id, "gateway_restarted", registered && id != instance)
			}
			registered, lost, failures, instance = true, false, 0, id
		}
		if !sleep(ctx, delay) {
			return
		}
	}
}
