package bank

import (
	"context"
	"math"
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
	// Expired with the end of time lists every prepared transaction.
	for _, g := range []struct {
		desc *prometheus.Desc
		at   time.Time
	}{{c.prepared, time.Unix(0, math.MaxInt64)}, {c.expired, time.Now()}} {
		ids, err := c.ledger.Expired(ctx, g.at)
		if err != nil {
			ch <- prometheus.NewInvalidMetric(g.desc, err)
			continue
		}
		ch <- prometheus.MustNewConstMetric(g.desc, prometheus.GaugeValue, float64(len(ids)))
	}
	accounts, err := c.ledger.Accounts(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.accounts, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.accounts, prometheus.GaugeValue, float64(len(accounts)))
	held := map[string]int64{}
	for _, a := range accounts {
		held[a.Currency] += a.Held
	}
	for currency, v := range held {
		ch <- prometheus.MustNewConstMetric(c.held, prometheus.GaugeValue, float64(v), currency)
	}
}
