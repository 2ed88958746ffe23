package bank

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/remitpay/remit/internal/metrics"
)

// ledgerCollector computes the bank's state gauges from the ledger when
// Prometheus scrapes, so preparing and committing keep no extra
// bookkeeping.
type ledgerCollector struct {
	ledger *Ledger

	prepared, expired, held, accounts *prometheus.Desc
}

func newLedgerCollector(l *Ledger) *ledgerCollector {
	name := func(n string) string { return prometheus.BuildFQName(metrics.Namespace, "bank", n) }
	return &ledgerCollector{
		ledger: l,
		prepared: prepareDesc(name("prepared_transactions"),
			"Transactions prepared here (YES voted, funds held) and not yet decided."),
		expired: prepareDesc(name("expired_prepared_transactions"),
			"Prepared transactions past their expire_time: the resolver asks the gateway for their outcome."),
		held: prometheus.NewDesc(name("held_amount"),
			"Sum of the debits held by prepared transactions, in the currency's smallest unit, by currency.", []string{"currency"}, nil),
		accounts: prepareDesc(name("accounts"), "Accounts in the ledger."),
	}
}

func prepareDesc(name, help string) *prometheus.Desc { return prometheus.NewDesc(name, help, nil, nil) }

// Describe implements prometheus.Collector.
func (c *ledgerCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.prepared
	ch <- c.expired
	ch <- c.held
	ch <- c.accounts
}

// Collect implements prometheus.Collector.
func (c *ledgerCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), metrics.ScrapeTimeout)
	defer cancel()
	st, err := c.ledger.Stats(ctx, time.Now())
	if err != nil {
		for _, d := range []*prometheus.Desc{c.prepared, c.expired, c.accounts, c.held} {
			ch <- prometheus.NewInvalidMetric(d, err)
		}
		return
	}
	ch <- prometheus.MustNewConstMetric(c.prepared, prometheus.GaugeValue, float64(st.Prepared))
	ch <- prometheus.MustNewConstMetric(c.expired, prometheus.GaugeValue, float64(st.Expired))
	ch <- prometheus.MustNewConstMetric(c.accounts, prometheus.GaugeValue, float64(st.Accounts))
	for currency, v := range st.Held {
		ch <- prometheus.MustNewConstMetric(c.held, prometheus.GaugeValue, float64(v), currency)
	}
}

// batchMetrics records the size of each PrepareTransactions and
// CommitTransactions call, to show how much the gateway's batching
// amortizes per-call cost.
type batchMetrics struct {
	size *prometheus.HistogramVec
}

func newBatchMetrics(reg prometheus.Registerer) *batchMetrics {
	m := &batchMetrics{size: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: metrics.Namespace, Subsystem: "bank", Name: "batch_items",
		Help:    "Items per batched call (PrepareTransactions, CommitTransactions), by phase.",
		Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256},
	}, []string{"phase"})}
	reg.MustRegister(m.size)
	return m
}

// observe records one batch of n items; a nil *batchMetrics records nothing.
func (m *batchMetrics) observe(phase string, n int) {
	if m != nil {
		m.size.WithLabelValues(phase).Observe(float64(n))
	}
}
