package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/remitpay/remit/client"
)

var logoutCmd = &command{
	name:    "logout",
	summary: "end the session at the gateway and forget it",
	usage:   "remit logout [--gateway URL] [--ca FILE]",
	help: `
Logout revokes the saved session's token at the gateway and deletes the
profile. Logging out twice is harmless.

If the gateway cannot be reached, the profile is deleted anyway (the token
is no longer stored on this machine) and logout exits 1: the token stays
valid at the gateway until it expires.

Payments queued in the outbox stay there; they are sent after you log in
again as the same client to the same gateway.`,
	examples: `
remit logout`,
	flags: func(fs *flag.FlagSet) runFunc {
		f := addGatewayFlags(fs)
		return func(ctx context.Context, e *env, args []string) error {
			if err := noArgs(args); err != nil {
				return err
			}
			ctx, stop := signalContext(ctx)
			defer stop()
			dir, err := stateDir()
			if err != nil {
				return err
			}
			p, err := client.LoadProfile(dir)
			if errors.Is(err, client.ErrNoProfile) {
				fmt.Fprintln(e.stdout, "Not logged in.")
				return nil
			}
			if err != nil {
				return err
			}
			var revokeErr error
			if !p.Expired(time.Now()) {
				cfg := p.Config()
				cfg.GatewayURL, cfg.CAFile = override(f.gateway, envGateway, cfg.GatewayURL), override(f.ca, envCA, cfg.CAFile)
				c, err := newClient(f, cfg)
				if err != nil {
					return err
				}
				revokeErr = c.Logout(ctx)
				c.Close()
			}
			if err := client.RemoveProfile(dir); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "Logged out %s.\n", p.ClientID)
			if n, _ := queuedFor(ctx, dir, p.ClientID, p.GatewayURL); n > 0 {
				fmt.Fprintf(e.stdout, "%s still queued in the outbox; they are sent after `remit login %s`.\n",
					plural(n, "payment"), p.ClientID)
			}
			if revokeErr != nil {
				msg := revokeErr.Error()
				if hint := transportHint(revokeErr, p.GatewayURL); hint != "" {
					msg = hint
				}
				return fmt.Errorf("the session was forgotten here but not revoked at the gateway, so its token stays valid until %s: %s",
					formatTime(p.ExpireTime), msg)
			}
			return nil
		}
	},
}
