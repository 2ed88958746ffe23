package main

import (
	"context"
	"errors"
	"flag"
	"os"
	"time"

	"github.com/remitpay/remit/internal/chaos"
)

// errViolation is returned after a chaos run whose checker found a
// violation; the report is printed already.
var errViolation = errors.New("the checker found a violation (see the report)")

var chaosCmd = &command{
	name:    "chaos",
	summary: "break a network on purpose (kills, pauses, partitions, a full disk) and check that no money was lost",
	usage:   "remit chaos [--duration D] [--seed N] [--customers N] [--workers N] [--dir DIR] [--json]",
	help: `
Chaos runs a Jepsen-style bank test. It starts its own network (the
gateway and three banks, separate processes of this binary, each with its
own data directory) with a fault-injecting TCP proxy in front of the
gateway for the clients and in front of every bank for the gateway. It
logs N customers in and keeps W of them paying each other random amounts
(some larger than any balance, some within a bank, some replayed with a
finished id), an auditor reading balances and an admin depositing and
withdrawing, while a nemesis drawn from the seed kills and restarts the
gateway and the banks, pauses processes (once past the prepare deadline
and the banks' expiry), cuts a bank off past the expiry, adds latency,
resets connections, cuts the clients off (queueing payments in an
outbox meanwhile) and fills a bank's disk (a small tmpfs; skipped, and
said so, where mounting one is not allowed).

Every kind of fault runs at least once; faults continue until D is over.
Then it heals everything, sends again whatever clients were not told, with
the same transaction ids, flushes the outbox, waits for every transaction
to resolve, stops the network and checks its databases: money conserved
and nothing held; every succeeded payment applied once at both banks and
every failed one nowhere; nothing prepared or undecided and every bank
agreeing with the gateway; one outcome per transaction id, the one clients
were told; every outbox payment final.

It prints the figures and the checks, and exits 1 on a violation, naming
the seed (rerun with --seed) and the directory holding the network's
databases and logs. docs/reliability.md explains each fault.`,
	examples: `
remit chaos
remit chaos --duration 10m
remit chaos --seed 42 --json
# two gateway replicas on PostgreSQL: kill-gateway kills either, and the database restarts once
remit chaos --postgres 'postgres://postgres@127.0.0.1:5432/test?sslmode=disable' --replicas 2`,
	flags: func(fs *flag.FlagSet) runFunc {
		duration := fs.Duration("duration", 90*time.Second, "inject faults for `D` (the first round of every kind always completes)")
		seed := fs.Uint64("seed", 0, "the schedule's random `SEED` (default: a new one, printed)")
		customers := fs.Int("customers", 24, "open `N` customer accounts")
		workers := fs.Int("workers", 8, "keep `N` clients paying at once")
		dir := fs.String("dir", "", "put the network in `DIR` and keep it (default: a temporary directory, kept only on a violation)")
		asJSON := fs.Bool("json", false, "print the report as one JSON object")
		postgres, replicas := storageFlags(fs, "(schemas named after a random prefix unless the URL has search_path)")
		return func(ctx context.Context, e *env, args []string) error {
			if len(args) > 0 {
				return usagef("unexpected argument %q", args[0])
			}
			if err := checkStorage(*postgres, *replicas); err != nil {
				return err
			}
			if *duration <= 0 || *customers < 4 || *workers < 1 {
				return usagef("--duration must be positive, --customers at least 4 and --workers at least 1")
			}
			exe, err := os.Executable()
			if err != nil {
				return err
			}
			// Ctrl-C or SIGTERM cancels the run instead of killing the
			// harness, so that Run's cleanup (stopping the servers,
			// closing the proxies, unmounting the tmpfs, removing or
			// naming the directory) still happens.
			ctx, stop := signalContext(ctx)
			defer stop()
			rep, err := chaos.Run(ctx, chaos.Config{
				Executable: exe, Duration: *duration, Seed: *seed, Customers: *customers, Workers: *workers,
				Dir: *dir, Progress: e.stderr, Postgres: *postgres, Replicas: *replicas,
			})
			if err != nil {
				return err
			}
			if *asJSON {
				if err := rep.JSON(e.stdout); err != nil {
					return err
				}
			} else {
				rep.Print(e.stdout)
			}
			if !rep.OK {
				return errViolation
			}
			return nil
		}
	},
}
