package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/remitpay/remit/internal/store"
)

// CommitCollector exports the group commit of a process's databases
// (store.Group), labelled by database: the histograms
// remit_store_commit_writes, the writes each SQLite transaction carried,
// and remit_store_commit_duration_seconds, how long each COMMIT (the WAL
// write and its fsync) took, and the gauge remit_store_commit_waiting, the
// writes waiting for their commit now. The figures are read from the Groups when
// Prometheus scrapes, so committing keeps no extra bookkeeping.
type CommitCollector struct {
	dbs                     map[string]func() store.GroupStats
	writes, commit, waiting *prometheus.Desc
}

// NewCommitCollector exports the Groups behind dbs, keyed by the database
// label (for example "ledger").
func NewCommitCollector(dbs map[string]func() store.GroupStats) *CommitCollector {
	name := func(n string) string { return prometheus.BuildFQName(Namespace, "store", n) }
	return &CommitCollector{
		dbs: dbs,
		writes: prometheus.NewDesc(name("commit_writes"),
			"Writes (claims, votes, decisions, ...) carried by each SQLite transaction of group commit.", []string{"database"}, nil),
		commit: prometheus.NewDesc(name("commit_duration_seconds"),
			"Time of each SQLite COMMIT of group commit: the WAL write and its fsync.", []string{"database"}, nil),
		waiting: prometheus.NewDesc(name("commit_waiting"),
			"Writes waiting for their group commit: queued, or in the transaction being run or committed.", []string{"database"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *CommitCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.writes
	ch <- c.commit
	ch <- c.waiting
}

// Collect implements prometheus.Collector.
func (c *CommitCollector) Collect(ch chan<- prometheus.Metric) {
	for db, stats := range c.dbs {
		st := stats()
		ch <- prometheus.MustNewConstHistogram(c.writes, st.Transactions, float64(st.Writes), st.Batches, db)
		ch <- prometheus.MustNewConstHistogram(c.commit, st.Transactions, st.CommitSeconds, st.Commits, db)
		ch <- prometheus.MustNewConstMetric(c.waiting, prometheus.GaugeValue, float64(st.Waiting), db)
	}
}
