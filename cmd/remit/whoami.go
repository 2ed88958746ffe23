package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/remitpay/remit/client"
)

var whoamiCmd = &command{
	name:    "whoami",
	summary: "show who is logged in, at which gateway, and until when",
	usage:   "remit whoami [--json]",
	help: `
Whoami prints the saved login: the client id, its account and roles, the
gateway and CA the other commands use, and when the session expires. It
reads the profile only and does not contact the gateway.

It exits 1 when nobody is logged in or the session has expired.`,
	examples: `
remit whoami
remit whoami --json | jq -r .clientId`,
	flags: func(fs *flag.FlagSet) runFunc {
		var asJSON bool
		addJSONFlag(fs, &asJSON)
		return func(_ context.Context, e *env, args []string) error {
			if err := noArgs(args); err != nil {
				return err
			}
			dir, err := stateDir()
			if err != nil {
				return err
			}
			p, err := client.LoadProfile(dir)
			if err != nil {
				return err
			}
			if asJSON {
				if err := printJSON(e.stdout, newProfileJSON(p)); err != nil {
					return err
				}
			} else {
				fmt.Fprintf(e.stdout, "%s\n", describeClient(p))
				fmt.Fprintf(e.stdout, "  gateway  %s\n", p.GatewayURL)
				if p.CAFile != "" {
					fmt.Fprintf(e.stdout, "  CA       %s\n", p.CAFile)
				}
				until := time.Until(p.ExpireTime).Round(time.Minute)
				if p.Expired(time.Now()) {
					fmt.Fprintf(e.stdout, "  session  expired at %s\n", formatTime(p.ExpireTime))
				} else {
					fmt.Fprintf(e.stdout, "  session  valid until %s (%s left)\n", formatTime(p.ExpireTime), until)
				}
			}
			if p.Expired(time.Now()) {
				return &exitError{code: exitFailure, err: sessionExpired(p.ClientID)}
			}
			return nil
		}
	},
}
