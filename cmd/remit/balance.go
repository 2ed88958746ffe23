package main

import (
	"context"
	"flag"
	"fmt"

	"connectrpc.com/connect"

	"github.com/remitpay/remit/client"
)

var balanceCmd = &command{
	name:    "balance",
	summary: "show your account's balance (or any account's, for staff)",
	usage:   "remit balance [--account BANK/ID] [--json]",
	help: `
Balance asks the account's bank, through the gateway, for its balance and
its available amount (the balance minus amounts held by payments still
being decided). Without --account it shows your own account; admins and
auditors may name any account.`,
	examples: `
remit balance
remit balance --account bank-b/bob
remit balance --json | jq -r .balance`,
	flags: func(fs *flag.FlagSet) runFunc {
		f := addClientFlags(fs)
		account := fs.String("account", "", "the account as `BANK/ID` (default: your own)")
		return func(ctx context.Context, e *env, args []string) error {
			if err := noArgs(args); err != nil {
				return err
			}
			var ref *client.AccountRef
			if *account != "" {
				a, err := client.ParseAccountRef(*account)
				if err != nil {
					return usagef("--account: %s", invalidMessage(err))
				}
				ref = &a
			}
			ctx, stop := signalContext(ctx)
			defer stop()
			s, err := openSession(f)
			if err != nil {
				return err
			}
			defer s.Close()
			res, err := s.client.Balance(ctx, ref)
			if err != nil {
				if ref == nil && s.profile.Account == "" && connect.CodeOf(err) == connect.CodeInvalidArgument {
					return usagef("%s has no account of its own: name one with --account BANK/ID", s.profile.ClientID)
				}
				return s.fail(e, err)
			}
			if f.json {
				return printProto(e.stdout, res)
			}
			fmt.Fprintf(e.stdout, "Account    %s\n", shown(client.AccountRefFromProto(res.GetAccount())))
			fmt.Fprintf(e.stdout, "Balance    %s\n", shownAmount(res.GetBalance(), res.GetCurrency()))
			fmt.Fprintf(e.stdout, "Available  %s\n", shownAmount(res.GetAvailable(), res.GetCurrency()))
			return nil
		}
	},
}
