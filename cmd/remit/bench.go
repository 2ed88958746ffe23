package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"

	"github.com/remitpay/remit/internal/bench"
)

var benchCmd = &command{
	name:    "bench",
	summary: "measure payments per second and latency over the real TLS API, then check conservation",
	usage:   "remit bench [--customers N] [--duration D] [--concurrency 1,16,64,256] [--same-bank-ratio R] [--gateway URL --ca FILE --credentials FILE] [--json]",
	help: `
Bench starts its own network in a temporary directory (the gateway and the
banks as separate processes of this binary, as 'remit up' runs them, with N
extra customers), logs every customer in through the Go SDK over TLS, and
for each concurrency level:

  1. measures the health-check ceiling: the same clients calling the
     gateway's grpc.health.v1 Check as fast as they can, for min(D/3, 5s);
  2. sends 1-unit payments between random customers, cross-bank unless
     --same-bank-ratio says otherwise, each with a fresh transaction id and
     no retry, for D, keeping that many in flight.

It prints a table: payments/s, latency percentiles (HDR histogram), the
ceiling and the ratio of the two, declines by reason, errors by code
(rate-limited calls apart) and each process's peak RSS. Then it waits for
every payment to be final and checks conservation: the balances sum to what
they did before, nothing is held, no payment is PROCESSING. Last it
compares each process's goroutines and open fds (go_goroutines and
process_open_fds on its metrics_listen) with their count at idle before
the first level, allowing up to 15 s to settle: more than idle + 10% + 20
goroutines or + 10% + 10 fds is a leak. It exits 1 if either check fails; it
never fails on speed.

With --gateway it measures an existing network instead: --ca is its CA
certificate and --credentials a credentials.json (as 'remit init --customers
N' writes) whose customers pay each other and whose auditor or admin checks
conservation.`,
	examples: `
remit bench
go run ./cmd/remit bench --duration 10s --concurrency 1,16,64 --customers 48
remit bench --duration 3s --concurrency 1,8 --customers 6 --json
remit init --dir /tmp/net --customers 48 && remit up --dir /tmp/net
remit bench --gateway https://127.0.0.1:8443 --ca /tmp/net/certs/ca.pem --credentials /tmp/net/credentials.json
# on PostgreSQL, one gateway or two replicas
remit bench --postgres 'postgres://postgres@127.0.0.1:5432/test?sslmode=disable' --replicas 2`,
	flags: func(fs *flag.FlagSet) runFunc {
		customers := fs.Int("customers", bench.DefaultCustomers, "open `N` customers in the bench's own network")
		duration := fs.Duration("duration", bench.DefaultDuration, "send payments for `D` at each concurrency level")
		concurrency := fs.String("concurrency", bench.DefaultConcurrency, "the concurrency `LEVELS`, comma-separated: payments kept in flight")
		sameBank := fs.Float64("same-bank-ratio", 0, "the fraction `R` of payments within one bank; the rest cross banks")
		gateway := fs.String("gateway", "", "measure the existing network at `URL` instead of starting one")
		ca := fs.String("ca", "", "with --gateway: the CA certificate `FILE` of the gateway")
		creds := fs.String("credentials", "", "with --gateway: a credentials.json `FILE` with the customers and an auditor or admin")
		asJSON := fs.Bool("json", false, "print the report as one JSON object")
		postgres, replicas := storageFlags(fs, "for the bench's own network (schemas of its own, dropped afterwards); the customers are spread over the replicas")
		return func(ctx context.Context, e *env, args []string) error {
			if len(args) > 0 {
				return usagef("unexpected argument %q", args[0])
			}
			if err := checkStorage(*postgres, *replicas); err != nil {
				return err
			}
			levels, err := bench.ParseConcurrency(*concurrency)
			if err != nil {
				return usagef("%v", err)
			}
			cfg := bench.Config{
				Customers: *customers, Duration: *duration, Concurrency: levels, SameBankRatio: *sameBank,
				Gateway: *gateway, CA: *ca, Credentials: *creds, Postgres: *postgres, Replicas: *replicas,
				Progress: isTerminal(e.stderr), Stderr: e.stderr,
			}
			if err := cfg.Validate(); err != nil {
				return usagef("%v", err)
			}
			rep, err := bench.Run(ctx, cfg)
			if rep == nil || (err != nil && !errors.Is(err, bench.ErrNotConserved) && !errors.Is(err, bench.ErrResourcesGrew)) {
				return err
			}
			if *asJSON {
				enc := json.NewEncoder(e.stdout)
				enc.SetIndent("", "  ")
				if jerr := enc.Encode(rep); jerr != nil {
					return jerr
				}
			} else {
				rep.WriteTable(e.stdout)
			}
			return err
		}
	},
}
