package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/remitpay/remit/internal/pki"
)

var certsCmd = &command{
	name:    "certs",
	summary: "write the dev CA and the gateway's and banks' certificates",
	usage:   "remit certs --dir DIR [--bank NAME]... [--host HOST]... [--force]",
	help: `
Certs writes a private development CA and, signed by it, a server and a
client certificate for the gateway and for each bank (mutual TLS between
them). Server certificates are valid for localhost, 127.0.0.1, ::1, the
principal's own name and every --host.

Running it again is safe: the CA is reused and only missing or unusable
certificates are issued, so running processes keep working. --force starts
over with a new CA, which invalidates every certificate the old one issued.

Keys are written with mode 0600; never commit them. 'remit init' runs this
for you; use certs to add a bank or a host name to an existing network.`,
	examples: `
remit certs --dir certs --bank bank-a --bank bank-b --bank bank-c
# add a host name (e.g. a container name) to every server certificate:
remit certs --dir .remit/certs --bank bank-a --bank bank-b --bank bank-c --host remit.internal`,
	flags: func(fs *flag.FlagSet) runFunc {
		var (
			dir          string
			banks, hosts multiFlag
			force        bool
		)
		fs.StringVar(&dir, "dir", "", "write the certificates to `DIR` (required)")
		fs.Var(&banks, "bank", "bank `NAME` to issue certificates for (repeatable)")
		fs.Var(&hosts, "host", "extra DNS name or IP `HOST` for the server certificates (repeatable)")
		fs.BoolVar(&force, "force", false, "replace the CA and every certificate")
		return func(_ context.Context, e *env, args []string) error {
			switch {
			case len(args) > 0:
				return usagef("unexpected argument %q", args[0])
			case dir == "":
				return usagef("--dir is required")
			}
			l, err := pki.Generate(dir, pki.Options{Banks: banks, Hosts: hosts, Force: force})
			if err != nil {
				return err
			}
			if len(l.Written) == 0 {
				fmt.Fprintf(e.stdout, "certificates in %s are up to date\n", l.Dir)
			} else {
				fmt.Fprintf(e.stdout, "wrote %d files to %s:\n", len(l.Written), l.Dir)
				for _, p := range l.Written {
					fmt.Fprintf(e.stdout, "  %s\n", p)
				}
			}
			fmt.Fprintf(e.stdout, "CA: %s (trust it explicitly, e.g. curl --cacert %s)\n", l.CA, l.CA)
			return nil
		}
	},
}
