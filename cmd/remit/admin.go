package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"

	"connectrpc.com/connect"

	"github.com/remitpay/remit/client"
	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
	"github.com/remitpay/remit/internal/names"
)

var adminCmd = &command{
	name:    "admin",
	summary: "deposit, withdraw, banks, unlock, users and accounts (admins; reads also for auditors)",
	usage: `remit admin deposit --account BANK/ID --amount AMOUNT [--currency usd] [--transaction-id UUID] [--json]
       remit admin withdraw --account BANK/ID --amount AMOUNT [--currency usd] [--transaction-id UUID] [--json]
       remit admin banks [--json]
       remit admin unlock CLIENT_ID [--json]
` + adminUsersUsage + "\n" + adminAccountsUsage,
	help: `
Admin runs the operator calls of the gateway. Log in as an admin first
('remit login admin').

  deposit   credits AMOUNT to the account at its bank.
  withdraw  debits AMOUNT from the account; it never takes the available
            balance below zero (that is a decline: exit 1, nothing moved).
  banks     lists the registered banks and their last observed health
            (admins and auditors).
  unlock    clears the failed logins and lockouts of CLIENT_ID from every
            source, so that it can log in at once. A source locked out for
            failing across many client ids stays locked. Audited.

AMOUNT is a decimal converted exactly, as for 'remit pay'. A deposit or
withdrawal is idempotent by its transaction id: the command prints the id,
and if it fails without an answer (the gateway unreachable), running it
again with --transaction-id set to that id applies it at most once.
Adjustments are not queued in the outbox.
` + adminUsersHelp + "\n" + adminAccountsHelp + `

Exit status: 0 done; 1 declined or failed; 2 usage error.`,
	examples: `
remit admin deposit --account bank-a/alice --amount 100
remit admin withdraw --account bank-b/bob --amount 20.25 --transaction-id 5d1f3a8e-2c4b-4f6a-9e7d-1b2c3d4e5f60
remit admin banks
remit admin unlock alice` + adminUsersExamples + adminAccountsExamples,
	flags: func(fs *flag.FlagSet) runFunc {
		f := addClientFlags(fs)
		account := fs.String("account", "", "deposit, withdraw, accounts open, close: the account as `BANK/ID` (required); users create: the account the user owns")
		amount := fs.String("amount", "", "deposit, withdraw: the `AMOUNT` as a decimal, e.g. 100.00 (required)")
		currency := fs.String("currency", "usd", "deposit, withdraw, accounts open: the lowercase ISO 4217 `CODE` of the currency")
		txID := fs.String("transaction-id", "", "deposit, withdraw: the idempotency key, a `UUID` (default: a new one)")
		more := addAdminFlags(fs) // users and accounts (admin_users.go, admin_accounts.go)
		return func(ctx context.Context, e *env, args []string) error {
			if len(args) == 0 {
				return usagef("missing subcommand: deposit, withdraw, banks, unlock, users or accounts")
			}
			sub, args := args[0], args[1:]
			switch sub {
			case "users":
				return runAdminUsers(ctx, e, f, fs, more, args)
			case "accounts":
				return runAdminAccounts(ctx, e, f, fs, more, args)
			}
			if err := refuseAdminFlags(fs, sub); err != nil {
				return err
			}
			var unlockID string
			if sub == "unlock" {
				switch len(args) {
				case 0:
					return usagef("missing CLIENT_ID: remit admin unlock CLIENT_ID")
				default:
					unlockID, args = args[0], args[1:]
					if err := names.ClientID(unlockID); err != nil {
						return usagef("client id %v", err)
					}
				}
			}
			if err := noArgs(args); err != nil {
				return err
			}
			var (
				ref    client.AccountRef
				minor  int64
				adjust bool
			)
			switch sub {
			case "banks", "unlock":
				set := false
				fs.Visit(func(fl *flag.Flag) {
					set = set || fl.Name == "account" || fl.Name == "amount" || fl.Name == "transaction-id"
				})
				if set {
					return usagef("--account, --amount and --transaction-id only apply to deposit and withdraw")
				}
			case "deposit", "withdraw":
				adjust = true
				switch {
				case *account == "":
					return usagef("--account is required: the account as BANK/ID, e.g. bank-a/alice")
				case *amount == "":
					return usagef("--amount is required, e.g. --amount 100")
				}
				var err error
				if ref, err = client.ParseAccountRef(*account); err != nil {
					return usagef("--account: %s", invalidMessage(err))
				}
				if err := checkCurrency(*currency); err != nil {
					return err
				}
				if minor, err = client.ParseAmount(*amount, *currency); err != nil {
					return usagef("--amount: %s", invalidMessage(err))
				}
				if *txID == "" {
					*txID = client.NewTransactionID()
				}
			default:
				return usagef("unknown subcommand %q: want deposit, withdraw, banks, unlock, users or accounts", sub)
			}

			ctx, stop := signalContext(ctx)
			defer stop()
			s, err := openSession(f)
			if err != nil {
				return err
			}
			defer s.Close()
			switch {
			case sub == "unlock":
				return unlock(ctx, e, s, unlockID)
			case !adjust:
				return listBanks(ctx, e, s)
			}
			call, verb, prep := s.client.Deposit, "Deposited", "to"
			if sub == "withdraw" {
				call, verb, prep = s.client.Withdraw, "Withdrew", "from"
			}
			res, err := call(ctx, *txID, ref, minor, *currency)
			if err != nil {
				return adjustError(e, s, sub, *txID, ref, err)
			}
			if f.json {
				return printProto(e.stdout, res)
			}
			fmt.Fprintf(e.stdout, "%s %s %s %s; its balance is now %s.\n", verb, shownAmount(minor, *currency), prep,
				shown(client.AccountRefFromProto(res.GetAccount())), shownAmount(res.GetBalance(), res.GetCurrency()))
			fmt.Fprintf(e.stdout, "Transaction id: %s\n", shown(res.GetTransactionId()))
			return nil
		}
	},
}

// adjustDecline says what a decline reason means for a deposit or
// withdrawal of account, naming it (gateways before adjustment-specific
// messages described payments: "the payer's balance"). Other reasons keep
// the gateway's message.
func adjustDecline(sub string, account client.AccountRef, reason string) string {
	switch reason {
	case "INSUFFICIENT_FUNDS":
		if sub == "withdraw" {
			return fmt.Sprintf("the available balance of %s is too low for this withdrawal; nothing moved: withdraw less", account)
		}
	case "ACCOUNT_NOT_FOUND":
		return fmt.Sprintf("%s does not exist at its bank; nothing moved: check the bank and account id", account)
	case "ACCOUNT_CLOSED":
		return fmt.Sprintf("%s is closed; nothing moved", account)
	case "CURRENCY_MISMATCH":
		return fmt.Sprintf("%s holds another currency; nothing moved: pass --currency with the account's currency", account)
	}
	return ""
}

// adjustError explains a failed deposit or withdrawal; when its outcome is
// unknown, it says how to retry it safely.
func adjustError(e *env, s *session, sub, txID string, account client.AccountRef, err error) error {
	err2 := s.fail(e, err)
	var ce *client.Error
	switch {
	case connect.CodeOf(err) == connect.CodePermissionDenied:
		return fmt.Errorf("%w (%s needs an admin: `remit login admin`)", err2, sub)
	case client.IsDeclined(err) && errors.As(err, &ce):
		if msg := adjustDecline(sub, account, ce.Reason); msg != "" {
			return fmt.Errorf("declined: %s: %s (transaction id %s)", humanReason(ce.Reason), msg, txID)
		}
	case errors.As(err, &ce) && ce.Reason == client.ReasonIdempotencyKeyReused:
		return errors.New(idReused(txID, "deposit, withdrawal or payment"))
	}
	if client.IsRetryable(err) {
		return fmt.Errorf("%w\nThe %s may or may not have been applied: run the same command again with --transaction-id %s to find out; it is applied at most once",
			err2, sub, txID)
	}
	if _, ok := errors.AsType[*usageError](err2); ok {
		return err2
	}
	return fmt.Errorf("%w (transaction id %s)", err2, txID)
}

func listBanks(ctx context.Context, e *env, s *session) error {
	banks, err := s.client.Banks(ctx)
	if err != nil {
		err2 := s.fail(e, err)
		if connect.CodeOf(err) == connect.CodePermissionDenied {
			return fmt.Errorf("%w (banks needs an admin or an auditor: `remit login admin`)", err2)
		}
		return err2
	}
	if s.flags.json {
		return printProto(e.stdout, &gatewayv1.ListBanksResponse{Banks: banks})
	}
	if len(banks) == 0 {
		fmt.Fprintln(e.stdout, "No bank is registered yet.")
		return nil
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "BANK\tURL\tSTATUS\tLAST SEEN")
	for _, b := range banks {
		seen := "-"
		if b.GetLastSeenTime() != nil {
			seen = formatTime(b.GetLastSeenTime().AsTime())
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", shown(b.GetName()), shown(b.GetUrl()),
			strings.TrimPrefix(b.GetStatus().String(), "BANK_STATUS_"), seen)
	}
	return tw.Flush()
}

func unlock(ctx context.Context, e *env, s *session, clientID string) error {
	res, err := s.client.ClearLoginLockout(ctx, clientID)
	if err != nil {
		err2 := s.fail(e, err)
		if connect.CodeOf(err) == connect.CodePermissionDenied {
			return fmt.Errorf("%w (unlock needs an admin: `remit login admin`)", err2)
		}
		return err2
	}
	if s.flags.json {
		return printProto(e.stdout, res)
	}
	id := clientID // checked against the id syntax: safe to print
	if res.GetClearedSources() == 0 && !res.GetAccountLocked() {
		fmt.Fprintf(e.stdout, "%s had no failed logins to clear.\n", id)
		return nil
	}
	fmt.Fprintf(e.stdout, "Cleared the failed logins of %s from %d source(s), %d of them locked out", id,
		res.GetClearedSources(), res.GetLockedSources())
	if res.GetAccountLocked() {
		fmt.Fprint(e.stdout, ", and its limit across all sources")
	}
	fmt.Fprintf(e.stdout, ". %s can log in again.\n", id)
	return nil
}
