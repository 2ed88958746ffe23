package gateway

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/remitpay/remit/internal/metrics"
)

// Phases of the two-phase commit timed by remit_gateway_2pc_phase_duration_seconds.
const (
	phasePrepare  = "prepare"   // every PrepareTransaction call, until the last vote (or the deadline)
	phaseDecision = "decision"  // the durable write of the decision
	phaseTwo      = "phase_two" // one round of CommitTransaction calls and the acknowledgement write
)

// coordMetrics are the coordinator's own metrics; a nil *coordMetrics
// records nothing (tests build coordinators without one).
type coordMetrics struct {
	phase    *prometheus.HistogramVec
	payments *prometheus.CounterVec
}

func newCoordMetrics(reg prometheus.Registerer) *coordMetrics {
	m := &coordMetrics{
		phase: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: metrics.Namespace, Subsystem: "gateway", Name: "2pc_phase_duration_seconds",
			Help:    "Duration of each two-phase-commit phase: prepare (all votes), decision (its durable write), phase_two (one round of commit/abort calls and the acknowledgement write).",
			Buckets: metrics.LatencyBuckets,
		}, []string{"phase"}),
		payments: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Subsystem: "gateway", Name: "payments_total",
			Help: "New payments (not replays) run to an outcome by this process: committed, aborted (after phase one) or declined (before phase one).",
		}, []string{"outcome"}),
	}
	for _, p := range []string{phasePrepare, phaseDecision, phaseTwo} {
		m.phase.WithLabelValues(p)
	}
	for _, o := range []string{"committed", "aborted", "declined"} {
		m.payments.WithLabelValues(o)
	}
	reg.MustRegister(m.phase, m.payments)
	return m
}

func (m *coordMetrics) observePhase(phase string, start time.Time) {
	if m != nil {
		m.phase.WithLabelValues(phase).Observe(time.Since(start).Seconds())
	}
}

func (m *coordMetrics) payment(outcome string) {
	if m != nil {
		m.payments.WithLabelValues(outcome).Inc()
	}
}

// stateCollector computes the gateway's state gauges when Prometheus
// scrapes, from the coordinator log and the registry's memory, so the
// payment path keeps no extra bookkeeping.
type stateCollector struct {
	store    *Store
	registry *Registry

	inDoubt, backlog, banks, registered *prometheus.Desc
}

func newStateCollector(st *Store, r *Registry) *stateCollector {
	name := func(n string) string { return prometheus.BuildFQName(metrics.Namespace, "gateway", n) }
	return &stateCollector{
		store: st, registry: r,
		inDoubt: prometheus.NewDesc(name("in_doubt_transactions"),
			"Decided payments that some participant has not acknowledged yet (phase two is re-driven until it does).", nil, nil),
		backlog: prometheus.NewDesc(name("redrive_backlog"),
			"What the re-driver's next pass works on: phase_two (decided, unacknowledged), undecided (claimed payments without a decision: in phase one, or stale and to be aborted), adjustment (deposits and withdrawals whose bank call is unanswered).", []string{"queue"}, nil),
		banks: prometheus.NewDesc(name("bank_state"),
			"1 for the state each registered bank is in, 0 for the others: serving, unreachable (failing health checks; new payments touching it are refused), unchecked (registered, not health-checked yet).", []string{"bank", "state"}, nil),
		registered: prometheus.NewDesc(name("registered_banks"), "Banks in the registry.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.inDoubt
	ch <- c.backlog
	ch <- c.banks
	ch <- c.registered
}

// Collect implements prometheus.Collector.
func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), metrics.ScrapeTimeout)
	defer cancel()
	phaseTwo, undecided, adjustments, err := c.store.Backlog(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.backlog, err)
		ch <- prometheus.NewInvalidMetric(c.inDoubt, err)
	} else {
		ch <- prometheus.MustNewConstMetric(c.backlog, prometheus.GaugeValue, float64(phaseTwo), "phase_two")
		ch <- prometheus.MustNewConstMetric(c.backlog, prometheus.GaugeValue, float64(undecided), "undecided")
		ch <- prometheus.MustNewConstMetric(c.backlog, prometheus.GaugeValue, float64(adjustments), "adjustment")
		ch <- prometheus.MustNewConstMetric(c.inDoubt, prometheus.GaugeValue, float64(phaseTwo))
	}
	states := c.registry.states()
	ch <- prometheus.MustNewConstMetric(c.registered, prometheus.GaugeValue, float64(len(states)))
	for bank, state := range states {
		for _, s := range []string{"serving", "unreachable", "unchecked"} {
			v := 0.0
			if s == state {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(c.banks, prometheus.GaugeValue, v, bank, s)
		}
	}
}
