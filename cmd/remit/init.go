package main

import (
	"context"
	"flag"
	"fmt"
	"strings"

	"github.com/remitpay/remit/internal/devnet"
)

var initCmd = &command{
	name:    "init",
	summary: "write a complete local network (configs, users, certificates) to a directory",
	usage:   "remit init --dir DIR [--base-port P] [--customers N] [--postgres URL [--replicas N]]",
	help: `
Init writes everything a local Remit network needs into DIR:

  gateway.yaml          the gateway's config (127.0.0.1:P)
  banks/<bank>.yaml     bank-a, bank-b, bank-c (127.0.0.1:P+1 .. P+3)
  users.json            the users, with password hashes only
  credentials.json      the generated demo passwords (mode 0600)
  certs/                the dev CA (certs/ca.pem) and every certificate
  data/                 the databases, one directory per process

The demo users are the customers alice and dave (accounts at bank-a), bob
(bank-b) and carol (bank-c), each opening with 100000 (1,000.00 usd), plus
admin (role admin) and auditor (role auditor). Account ids equal the
customer names. Passwords are random; they are printed once and kept in
credentials.json.

--customers N opens N more customers for benches and demos, cust-0001 to
cust-N, each with an account of the same name and opening balance at
bank-a, bank-b, bank-c in turn; their passwords are in credentials.json only.

Init refuses to touch a directory that already holds a network. 'remit up'
runs init for you when its directory is empty.`,
	examples: `
remit init --dir .remit
remit up --dir .remit
# a second network next to the first:
remit init --dir /tmp/remit2 --base-port 9443
# 48 more customers, for 'remit bench --gateway':
remit init --dir /tmp/remit3 --customers 48`,
	flags: func(fs *flag.FlagSet) runFunc {
		dir := fs.String("dir", "", "create the network in `DIR` (required)")
		basePort := fs.Int("base-port", devnet.DefaultBasePort, "the gateway's `PORT`; the banks use the next three, then the metrics listeners the next four")
		customers := fs.Int("customers", 0, "open `N` extra funded customers (cust-0001...) spread over the banks")
		postgres, replicas := storageFlags(fs, "")
		return func(ctx context.Context, e *env, args []string) error {
			switch {
			case len(args) > 0:
				return usagef("unexpected argument %q", args[0])
			case *dir == "":
				return usagef("--dir is required")
			}
			if err := checkBasePort(*basePort); err != nil {
				return err
			}
			if err := checkCustomers(*customers); err != nil {
				return err
			}
			if err := checkStorage(*postgres, *replicas); err != nil {
				return err
			}
			l, err := devnet.InitWith(ctx, e.stdout, *dir, devnet.InitConfig{BasePort: *basePort, Customers: *customers,
				Postgres: *postgres, Replicas: *replicas})
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "\nStart it with:\n  %s\n", l.UpCommand())
			return nil
		}
	},
}

// checkBasePort checks the --base-port of init and up.
func checkBasePort(p int) error {
	if p < 1 || p > devnet.MaxBasePort {
		return usagef("--base-port %d: want a port between 1 and %d (the banks and the metrics listeners use the next %d)", p, devnet.MaxBasePort, devnet.PortsUsed-1)
	}
	return nil
}

// checkCustomers checks the --customers of init and up.
func checkCustomers(n int) error {
	if n < 0 || n > devnet.MaxCustomers {
		return usagef("--customers %d: want between 0 and %d", n, devnet.MaxCustomers)
	}
	return nil
}

// storageFlags declares --postgres and --replicas (init, up, bench).
func storageFlags(fs *flag.FlagSet, when string) (postgres *string, replicas *int) {
	if when != "" {
		when = " " + when
	}
	postgres = fs.String("postgres", "", "keep the gateway's and the banks' tables in this PostgreSQL database (a postgres:// `URL`), a schema each (PREFIX_gateway, PREFIX_bank_a, ...; PREFIX is the URL's search_path, or remit)"+when)
	replicas = fs.Int("replicas", 1, "run `N` gateway replicas on the --postgres database"+when)
	return postgres, replicas
}

// checkStorage checks --postgres and --replicas.
func checkStorage(postgres string, replicas int) error {
	switch {
	case postgres != "" && !strings.HasPrefix(postgres, "postgres://") && !strings.HasPrefix(postgres, "postgresql://"):
		return usagef("--postgres %q: want a postgres:// URL", postgres)
	case replicas < 1 || replicas > devnet.MaxReplicas:
		return usagef("--replicas %d: want between 1 and %d", replicas, devnet.MaxReplicas)
	case replicas > 1 && postgres == "":
		return usagef("--replicas %d: replicas share one PostgreSQL database; give it with --postgres", replicas)
	}
	return nil
}
