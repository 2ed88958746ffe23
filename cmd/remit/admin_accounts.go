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

const adminAccountsUsage = `       remit admin accounts open --account BANK/ID [--currency usd] [--owner ID] [--request-id UUID] [--json]
       remit admin accounts close --account BANK/ID [--json]
       remit admin accounts list --bank BANK [--page-size N] [--page-token TOKEN] [--all] [--json]`

const adminAccountsHelp = `
  accounts open   opens BANK/ID at its bank with a zero balance, at once
                  (the bank must be registered). --owner is the holder's
                  client id (default: ID). It prints the opening's request
                  id: if the command fails without an answer, running it
                  again with --request-id set to that id opens the account
                  at most once.
  accounts close  closes BANK/ID; only an empty account (zero balance,
                  nothing held or incoming) can be closed. Payments and
                  deposits to or from it are then declined ACCOUNT_CLOSED;
                  its balance stays readable. Closing twice is harmless.
  accounts list   lists one bank's accounts with their balances, a page at
                  a time like users list (admins and auditors).`

const adminAccountsExamples = `
remit admin accounts open --account bank-b/erin --currency usd
remit admin accounts open --account bank-b/erin --request-id 3c1d5e7f-9a2b-4c6d-8e0f-1a2b3c4d5e6f
remit admin accounts close --account bank-b/erin
remit admin accounts list --bank bank-b --all`

// runAdminAccounts runs `remit admin accounts SUB ...`.
func runAdminAccounts(ctx context.Context, e *env, f *clientFlags, fs *flag.FlagSet, a *adminFlags, args []string) error {
	if len(args) == 0 {
		return usagef("missing subcommand: remit admin accounts open, close or list")
	}
	sub, args := args[0], args[1:]
	what := "admin accounts " + sub
	if err := noArgs(args); err != nil {
		return err
	}
	account, currency := fs.Lookup("account").Value.String(), fs.Lookup("currency").Value.String()
	var (
		ref client.AccountRef
		req client.OpenAccountRequest
		err error
	)
	switch sub {
	case "open", "close":
		allowed := []string{"account"}
		if sub == "open" {
			allowed = append(allowed, "currency", "owner", "request-id")
		}
		if err := onlyFlags(fs, what, allowed...); err != nil {
			return err
		}
		if account == "" {
			return usagef("--account is required: the account as BANK/ID, e.g. bank-b/erin")
		}
		if ref, err = client.ParseAccountRef(account); err != nil {
			return usagef("--account: %s", invalidMessage(err))
		}
		if sub == "open" {
			if err := checkCurrency(currency); err != nil {
				return err
			}
			if a.owner != "" {
				if err := names.ClientID(a.owner); err != nil {
					return usagef("--owner: client id %v", err)
				}
			}
			if req, err = (client.OpenAccountRequest{RequestID: a.requestID, Account: ref, Currency: currency, Owner: a.owner}).Normalize(); err != nil {
				return usagef("%s", invalidMessage(err))
			}
		}
	case "list":
		if err := onlyFlags(fs, what, "bank", "page-size", "page-token", "all"); err != nil {
			return err
		}
		if a.bank == "" {
			return usagef("--bank is required, e.g. --bank bank-b")
		}
		if err := names.Bank(a.bank); err != nil {
			return usagef("--bank: bank %v", err)
		}
		if err := a.pageFlags(); err != nil {
			return err
		}
	default:
		return usagef("unknown subcommand %q: want open, close or list", "accounts "+sub)
	}

	ctx, stop := signalContext(ctx)
	defer stop()
	s, err := openSession(f)
	if err != nil {
		return err
	}
	defer s.Close()
	switch sub {
	case "open":
		acct, err := s.client.OpenAccount(ctx, req)
		if err != nil {
			return accountError(e, s, sub, ref, req.RequestID, err)
		}
		if f.json {
			return printProto(e.stdout, acct)
		}
		fmt.Fprintf(e.stdout, "Opened %s (%s, owner %s) with a balance of %s.\n", shown(client.AccountRefFromProto(acct.GetAccount())),
			shown(acct.GetCurrency()), shown(acct.GetOwner()), shownAmount(acct.GetBalance(), acct.GetCurrency()))
		fmt.Fprintf(e.stdout, "Request id: %s\n", req.RequestID)
	case "close":
		acct, err := s.client.CloseAccount(ctx, ref)
		if err != nil {
			return accountError(e, s, sub, ref, "", err)
		}
		if f.json {
			return printProto(e.stdout, acct)
		}
		fmt.Fprintf(e.stdout, "Closed %s: payments and deposits to or from it are declined from now on.\n", ref)
	case "list":
		return listAccounts(ctx, e, s, a)
	}
	return nil
}

// Reasons of the account calls' refusals.
const (
	reasonAccountExists   = "ACCOUNT_EXISTS"
	reasonAccountNotEmpty = "ACCOUNT_NOT_EMPTY"
)

// accountError explains a failed accounts subcommand; when an opening's
// outcome is unknown, it says how to retry it safely.
func accountError(e *env, s *session, sub string, ref client.AccountRef, requestID string, err error) error {
	err2 := s.fail(e, err)
	var ce *client.Error
	switch {
	case connect.CodeOf(err) == connect.CodePermissionDenied:
		who := "an admin"
		if sub == "list" {
			who = "an admin or an auditor"
		}
		return fmt.Errorf("%w (accounts %s needs %s: `remit login admin`)", err2, sub, who)
	case !errors.As(err, &ce):
		return err2
	case ce.Reason == reasonAccountExists:
		return fmt.Errorf("%s is already open at its bank; nothing changed", ref)
	case ce.Reason == reasonAccountNotEmpty:
		return fmt.Errorf("%s is not empty (a balance, or money held or incoming); nothing changed: withdraw its balance first (`remit admin withdraw --account %s --amount ...`)", ref, ref)
	case ce.Reason == client.ReasonIdempotencyKeyReused:
		return fmt.Errorf("request id %s was already used to open another account: leave --request-id out to get a new one", requestID)
	case ce.Retryable && sub == "open":
		return fmt.Errorf("%w\nThe account may or may not have been opened: run the same command again with --request-id %s to find out; it is opened at most once",
			err2, requestID)
	}
	return err2
}

func listAccounts(ctx context.Context, e *env, s *session, a *adminFlags) error {
	var accounts []*gatewayv1.Account
	next := ""
	if a.all {
		for acct, err := range s.client.Accounts(ctx, a.bank, int32(a.pageSize)) { //nolint:gosec // G115: checked 1..1000
			if err != nil {
				return accountError(e, s, "list", client.AccountRef{}, "", err)
			}
			accounts = append(accounts, acct)
		}
	} else {
		res, err := s.client.AccountsPage(ctx, a.bank, int32(a.pageSize), a.pageToken) //nolint:gosec // G115: checked 1..1000
		if err != nil {
			return accountError(e, s, "list", client.AccountRef{}, "", err)
		}
		accounts, next = res.GetAccounts(), res.GetNextPageToken()
	}
	if s.flags.json {
		return printProto(e.stdout, &gatewayv1.ListAccountsResponse{Accounts: accounts, NextPageToken: next})
	}
	if len(accounts) == 0 {
		fmt.Fprintf(e.stdout, "%s has no accounts.\n", a.bank)
		return nil
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ACCOUNT\tOWNER\tSTATE\tBALANCE\tAVAILABLE\tOPENED\tCLOSED")
	for _, acct := range accounts {
		closed := "-"
		if acct.GetCloseTime() != nil {
			closed = formatTime(acct.GetCloseTime().AsTime())
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", shown(client.AccountRefFromProto(acct.GetAccount())), shown(acct.GetOwner()),
			strings.ToLower(strings.TrimPrefix(acct.GetState().String(), "ACCOUNT_STATE_")),
			shownAmount(acct.GetBalance(), acct.GetCurrency()), shownAmount(acct.GetAvailable(), acct.GetCurrency()),
			formatTime(acct.GetOpenTime().AsTime()), closed)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if next != "" {
		fmt.Fprintf(e.stdout, "More accounts: run again with --page-token %s, or with --all.\n", shown(next))
	}
	return nil
}
