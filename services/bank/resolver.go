package bank

import (
	"context"
	"log/slog"
	"time"

	"connectrpc.com/connect"
)

// Defaults of the background loops.
const (
	// DefaultResolveInterval is how often the resolver looks for expired
	// prepared transactions.
	DefaultResolveInterval = 5 * time.Second
	// DefaultRetention is how long decided transaction records are kept,
	// matching the gateway's idempotency window.
	DefaultRetention = 7 * 24 * time.Hour
	// PruneInterval is how often the resolver prunes decided records.
	PruneInterval = time.Hour
	// MaxResolveBackoff caps the resolver's wait between attempts while the
	// gateway cannot answer.
	MaxResolveBackoff = time.Minute
)

// Resolver finishes prepared transactions whose decision never arrived. Every
// Interval it lists those past their expire_time and asks the Coordinator how
// each ended, then applies that answer with [Ledger.Commit]. It never
// decides on its own: while the gateway cannot answer the funds stay held and
// the resolver retries with exponential backoff (from Interval up to
// [MaxResolveBackoff]). It also prunes decided records older than Retention
// once per [PruneInterval].
type Resolver struct {
	Ledger      *Ledger
	Coordinator Coordinator
	// Interval defaults to DefaultResolveInterval.
	Interval time.Duration
	// Retention defaults to DefaultRetention.
	Retention time.Duration
	// Logger is required: Run panics without one.
	Logger *slog.Logger
}

// Run resolves and prunes until ctx ends.
func (r *Resolver) Run(ctx context.Context) {
	interval := orDefault(r.Interval, DefaultResolveInterval)
	retention := orDefault(r.Retention, DefaultRetention)
	log := r.Logger
	if log == nil {
		panic("bank: Resolver.Logger is required")
	}
	var lastPrune time.Time
	failures := 0
	for {
		if t := time.Now(); lastPrune.IsZero() || t.Sub(lastPrune) >= PruneInterval {
			lastPrune = t
			if n, err := r.Ledger.Prune(ctx, t.Add(-retention)); err != nil {
				if ctx.Err() == nil {
					log.Error("prune decided transactions", "err", err)
				}
			} else if n > 0 {
				log.Info("pruned decided transactions", "count", n, "retention", retention)
			}
		}
		delay := interval
		if r.resolveOnce(ctx, log, time.Now()) {
			failures = 0
		} else {
			failures++
			delay = backoff(interval, failures, MaxResolveBackoff)
		}
		if !sleep(ctx, delay) {
			return
		}
	}
}

// resolveOnce tries every expired prepared transaction once and reports
// whether the gateway could be asked. Only an unreachable gateway makes the
// resolver back off: one transaction the gateway refuses to answer about
// (logged for an operator) must not delay the release of every other hold.
func (r *Resolver) resolveOnce(ctx context.Context, log *slog.Logger, now time.Time) bool {
	ids, err := r.Ledger.Expired(ctx, now)
	if err != nil {
		if ctx.Err() == nil {
			log.Error("list expired prepared transactions", "err", err)
		}
		return false
	}
	for _, id := range ids {
		callCtx, cancel := context.WithTimeout(ctx, callTimeout)
		commit, err := r.Coordinator.Outcome(callCtx, id)
		cancel()
		if ctx.Err() != nil {
			return false
		}
		if err != nil {
			if !answered(err) {
				log.Warn("gateway unreachable; expired prepared transactions keep their funds held",
					"transaction_id", id, "err", err)
				return false // back off; do not try the rest now
			}
			log.Error("gateway refused to tell the outcome of an expired prepared transaction; its funds stay held and an operator must look",
				"transaction_id", id, "err", err)
			continue
		}
		state, err := r.Ledger.Commit(ctx, id, commit)
		if err != nil {
			if ctx.Err() == nil {
				log.Error("cannot apply the gateway's outcome to an expired prepared transaction",
					"transaction_id", id, "commit", commit, "err", err)
			}
			continue
		}
		log.Info("resolved expired prepared transaction through the gateway", "transaction_id", id, "state", string(state))
	}
	return true
}

// answered reports whether err is the gateway's definite answer about one
// transaction (so the others may still be asked), rather than no answer.
func answered(err error) bool {
	switch connect.CodeOf(err) {
	case connect.CodeInvalidArgument, connect.CodeNotFound, connect.CodeFailedPrecondition, connect.CodePermissionDenied:
		return true
	default:
		return false
	}
}

// orDefault returns d, or def if d is not positive.
func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}
