package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"

	"connectrpc.com/connect"

	"github.com/remitpay/remit/client"
	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
	"github.com/remitpay/remit/internal/names"
)

// The `remit admin users` and `remit admin accounts` subcommands. They
// share the flag set of `remit admin` (--account and --currency are its
// own), so their flags are registered there by addAdminFlags.

const adminUsersUsage = `       remit admin users create CLIENT_ID [--role ROLE]... [--account BANK/ID] [--password-stdin] [--json]
       remit admin users disable|enable CLIENT_ID [--json]
       remit admin users reset-password CLIENT_ID [--password-stdin] [--json]
       remit admin users list [--page-size N] [--page-token TOKEN] [--all] [--json]
       remit admin users sessions CLIENT_ID [--json]
       remit admin users revoke CLIENT_ID [--session ID] [--json]`

const adminUsersHelp = `
  users create          creates CLIENT_ID at the gateway, at once, with the
                        given roles (default: customer; a customer needs
                        --account, the account it owns). The password is
                        asked for twice without echo, or read from the first
                        line of standard input with --password-stdin.
  users disable         stops CLIENT_ID from logging in and ends all its
                        sessions at once, open watch streams included.
  users enable          lets a disabled CLIENT_ID log in again.
  users reset-password  sets CLIENT_ID's password (prompt or
                        --password-stdin) and ends all its sessions.
  users list            lists the users by client id, one page of
                        --page-size; --page-token continues where a page
                        ended, --all follows every page (admins and
                        auditors).
  users sessions        lists CLIENT_ID's usable sessions, newest first
                        (admins and auditors).
  users revoke          ends all of CLIENT_ID's sessions, or one with
                        --session ID (from 'users sessions').

Passwords are at least 12 characters and not common ones. Users live in the
gateway's database: these changes need no restart, and are audited.`

const adminUsersExamples = `
remit admin users create erin --account bank-b/erin
printf '%s\n' "$PASSWORD" | remit admin users create ops --role admin --role auditor --password-stdin
remit admin users list --all
remit admin users disable erin
remit admin users revoke erin --session ses-3f9a1c`

// adminFlags are the flags of the users and accounts subcommands.
type adminFlags struct {
	roles         multiFlag
	passwordStdin bool
	pageSize      int
	pageToken     string
	all           bool
	session       string
	bank          string
	owner         string
	requestID     string
}

// addAdminFlags registers the flags of `remit admin users` and `remit
// admin accounts` on the flag set of `remit admin`.
func addAdminFlags(fs *flag.FlagSet) *adminFlags {
	a := &adminFlags{}
	fs.Var(&a.roles, "role", "users create: a `ROLE` of the user: customer, admin or auditor (repeatable; default customer)")
	fs.BoolVar(&a.passwordStdin, "password-stdin", false, "users create, reset-password: read the password from the first line of standard input instead of prompting")
	fs.IntVar(&a.pageSize, "page-size", 50, "users list, accounts list: at most `N` per page (the gateway caps it at 100)")
	fs.StringVar(&a.pageToken, "page-token", "", "users list, accounts list: continue after the page that printed this `TOKEN`")
	fs.BoolVar(&a.all, "all", false, "users list, accounts list: follow every page")
	fs.StringVar(&a.session, "session", "", "users revoke: end only the session `ID` (default: all)")
	fs.StringVar(&a.bank, "bank", "", "accounts list: the `BANK` whose accounts to list (required)")
	fs.StringVar(&a.owner, "owner", "", "accounts open: the holder's client `ID` (default: the account id)")
	fs.StringVar(&a.requestID, "request-id", "", "accounts open: the idempotency key, a `UUID` (default: a new one)")
	return a
}

// refuseAdminFlags returns a usage error if a flag of the users and
// accounts subcommands was given to another admin subcommand (sub).
func refuseAdminFlags(fs *flag.FlagSet, sub string) error {
	var bad []string
	fs.Visit(func(fl *flag.Flag) {
		switch fl.Name {
		case "role", "password-stdin", "page-size", "page-token", "all", "session", "bank", "owner", "request-id":
			bad = append(bad, "--"+fl.Name)
		}
	})
	if len(bad) > 0 {
		return usagef("%s only apply to admin users and admin accounts, not to %s", strings.Join(bad, ", "), sub)
	}
	return nil
}

// onlyFlags returns a usage error if a flag other than allowed (and the
// flags every client command takes) was set for the subcommand what.
func onlyFlags(fs *flag.FlagSet, what string, allowed ...string) error {
	var bad []string
	fs.Visit(func(fl *flag.Flag) {
		switch fl.Name {
		case "gateway", "ca", "json", "log-format":
		default:
			if !slices.Contains(allowed, fl.Name) {
				bad = append(bad, "--"+fl.Name)
			}
		}
	})
	if len(bad) > 0 {
		return usagef("%s does not apply to %s", strings.Join(bad, ", "), what)
	}
	return nil
}

// pageFlags checks --page-size, --page-token and --all.
func (a *adminFlags) pageFlags() error {
	switch {
	case a.pageSize < 1 || a.pageSize > 1000:
		return usagef("--page-size %d: want 1 to 1000", a.pageSize)
	case a.all && a.pageToken != "":
		return usagef("--all and --page-token exclude each other")
	}
	return nil
}

// oneClientID returns the one CLIENT_ID argument of a users subcommand.
func oneClientID(sub string, args []string) (string, error) {
	switch {
	case len(args) == 0:
		return "", usagef("missing CLIENT_ID: remit admin users %s CLIENT_ID", sub)
	case len(args) > 1:
		return "", usagef("unexpected argument %q", args[1])
	}
	if err := names.ClientID(args[0]); err != nil {
		return "", usagef("client id %v", err)
	}
	return args[0], nil
}

// runAdminUsers runs `remit admin users SUB ...`.
func runAdminUsers(ctx context.Context, e *env, f *clientFlags, fs *flag.FlagSet, a *adminFlags, args []string) error {
	if len(args) == 0 {
		return usagef("missing subcommand: remit admin users create, disable, enable, reset-password, list, sessions or revoke")
	}
	sub, args := args[0], args[1:]
	what := "admin users " + sub
	var clientID string
	var err error
	switch sub {
	case "create":
		err = onlyFlags(fs, what, "role", "account", "password-stdin")
	case "reset-password":
		err = onlyFlags(fs, what, "password-stdin")
	case "disable", "enable", "sessions":
		err = onlyFlags(fs, what)
	case "revoke":
		err = onlyFlags(fs, what, "session")
	case "list":
		if err = onlyFlags(fs, what, "page-size", "page-token", "all"); err == nil {
			if err = noArgs(args); err == nil {
				err = a.pageFlags()
			}
		}
	default:
		return usagef("unknown subcommand %q: want create, disable, enable, reset-password, list, sessions or revoke", "users "+sub)
	}
	if err != nil {
		return err
	}
	if sub != "list" {
		if clientID, err = oneClientID(sub, args); err != nil {
			return err
		}
	}
	var nu client.NewUser
	if sub == "create" {
		if nu, err = newAdminUser(clientID, a.roles, fs.Lookup("account").Value.String()); err != nil {
			return err
		}
	}
	if a.session != "" && len(a.session) > 64 {
		return usagef("--session %q: not a session id (see `remit admin users sessions`)", a.session)
	}

	ctx, stop := signalContext(ctx)
	defer stop()
	s, err := openSession(f)
	if err != nil {
		return err
	}
	defer s.Close()
	switch sub {
	case "create":
		if nu.Password, err = readNewPassword(e, a.passwordStdin, fmt.Sprintf("Password for the new user %s: ", clientID)); err != nil {
			return err
		}
		u, err := s.client.CreateUser(ctx, nu)
		if err != nil {
			return userError(e, s, sub, clientID, err)
		}
		if f.json {
			return printProto(e.stdout, u)
		}
		fmt.Fprintf(e.stdout, "Created %s. It can log in now.\n", describeUser(u))
	case "disable":
		res, err := s.client.DisableUser(ctx, clientID)
		if err != nil {
			return userError(e, s, sub, clientID, err)
		}
		if f.json {
			return printProto(e.stdout, res)
		}
		fmt.Fprintf(e.stdout, "Disabled %s: it cannot log in, and %s ended.\n", clientID, plural(int(res.GetRevokedSessions()), "session"))
	case "enable":
		u, err := s.client.EnableUser(ctx, clientID)
		if err != nil {
			return userError(e, s, sub, clientID, err)
		}
		if f.json {
			return printProto(e.stdout, u)
		}
		fmt.Fprintf(e.stdout, "Enabled %s: it can log in again.\n", clientID)
	case "reset-password":
		pw, err := readNewPassword(e, a.passwordStdin, fmt.Sprintf("New password for %s: ", clientID))
		if err != nil {
			return err
		}
		res, err := s.client.ResetPassword(ctx, clientID, pw)
		if err != nil {
			return userError(e, s, sub, clientID, err)
		}
		if f.json {
			return printProto(e.stdout, res)
		}
		fmt.Fprintf(e.stdout, "Reset the password of %s; %s ended.\n", clientID, plural(int(res.GetRevokedSessions()), "session"))
	case "list":
		return listUsers(ctx, e, s, a)
	case "sessions":
		return listSessions(ctx, e, s, clientID)
	case "revoke":
		n, err := s.client.RevokeSessions(ctx, clientID, a.session)
		if err != nil {
			return userError(e, s, sub, clientID, err)
		}
		if f.json {
			return printProto(e.stdout, &gatewayv1.RevokeSessionsResponse{RevokedSessions: n})
		}
		fmt.Fprintf(e.stdout, "Revoked %s of %s.\n", plural(int(n), "session"), clientID)
	}
	return nil
}

// newAdminUser builds the user `admin users create` creates, with the
// roles and account rules of `remit users add`.
func newAdminUser(clientID string, roles []string, account string) (client.NewUser, error) {
	u := client.NewUser{ClientID: clientID}
	parsed, err := parseRoles(roles)
	if err != nil {
		return u, err
	}
	for _, r := range parsed {
		u.Roles = append(u.Roles, r.Proto())
	}
	if account != "" {
		ref, err := client.ParseAccountRef(account)
		if err != nil {
			return u, usagef("--account: %s", invalidMessage(err))
		}
		u.Account = ref
	}
	if slices.Contains(u.Roles, gatewayv1.Role_ROLE_CUSTOMER) && u.Account.IsZero() {
		return u, usagef("a customer needs --account BANK/ID (the account it owns)")
	}
	return u, nil
}

// userError explains a failed users subcommand.
func userError(e *env, s *session, sub, clientID string, err error) error {
	err2 := s.fail(e, err)
	var ce *client.Error
	switch {
	case connect.CodeOf(err) == connect.CodePermissionDenied:
		who := "an admin"
		if sub == "list" || sub == "sessions" {
			who = "an admin or an auditor"
		}
		return fmt.Errorf("%w (users %s needs %s: `remit login admin`)", err2, sub, who)
	case !errors.As(err, &ce):
		return err2
	case ce.Code == connect.CodeNotFound:
		return fmt.Errorf("there is no user %s: see `remit admin users list`", clientID)
	case ce.Retryable && (sub == "create" || sub == "reset-password"):
		// Sent once: a lost answer leaves the outcome unknown.
		check := "`remit admin users list`"
		if sub == "reset-password" {
			check = "logging in with the new password"
		}
		return fmt.Errorf("%w\nThe %s may or may not have been applied: check with %s before running it again", err2, sub, check)
	}
	return err2
}

// describeUser is "erin (account bank-b/erin, customer)".
func describeUser(u *gatewayv1.User) string {
	var parts []string
	if u.GetAccount() != nil {
		parts = append(parts, "account "+shown(client.AccountRefFromProto(u.GetAccount())))
	}
	parts = append(parts, roleWords(u.GetRoles()))
	return shown(u.GetClientId()) + " (" + strings.Join(parts, ", ") + ")"
}

// roleWords is "admin, auditor".
func roleWords(roles []gatewayv1.Role) string {
	var words []string
	for _, r := range roles {
		words = append(words, strings.ToLower(strings.TrimPrefix(r.String(), "ROLE_")))
	}
	if len(words) == 0 {
		return "no role"
	}
	return strings.Join(words, ", ")
}

func listUsers(ctx context.Context, e *env, s *session, a *adminFlags) error {
	var users []*gatewayv1.User
	next := ""
	if a.all {
		for u, err := range s.client.Users(ctx, int32(a.pageSize)) { //nolint:gosec // G115: checked 1..1000
			if err != nil {
				return userError(e, s, "list", "", err)
			}
			users = append(users, u)
		}
	} else {
		res, err := s.client.UsersPage(ctx, int32(a.pageSize), a.pageToken) //nolint:gosec // G115: checked 1..1000
		if err != nil {
			return userError(e, s, "list", "", err)
		}
		users, next = res.GetUsers(), res.GetNextPageToken()
	}
	if s.flags.json {
		return printProto(e.stdout, &gatewayv1.ListUsersResponse{Users: users, NextPageToken: next})
	}
	if len(users) == 0 {
		fmt.Fprintln(e.stdout, "No users.")
		return nil
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CLIENT ID\tROLES\tACCOUNT\tSTATE\tSOURCE\tCREATED\tPASSWORD SET")
	for _, u := range users {
		acct, state := "-", "enabled"
		if u.GetAccount() != nil {
			acct = shown(client.AccountRefFromProto(u.GetAccount()))
		}
		if u.GetDisabled() {
			state = "disabled"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", shown(u.GetClientId()), roleWords(u.GetRoles()), acct, state,
			strings.ToLower(strings.TrimPrefix(u.GetSource().String(), "USER_SOURCE_")),
			formatTime(u.GetCreateTime().AsTime()), formatTime(u.GetPasswordChangeTime().AsTime()))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if next != "" {
		fmt.Fprintf(e.stdout, "More users: run again with --page-token %s, or with --all.\n", shown(next))
	}
	return nil
}

func listSessions(ctx context.Context, e *env, s *session, clientID string) error {
	sessions, err := s.client.Sessions(ctx, clientID)
	if err != nil {
		return userError(e, s, "sessions", clientID, err)
	}
	if s.flags.json {
		return printProto(e.stdout, &gatewayv1.ListSessionsResponse{Sessions: sessions})
	}
	if len(sessions) == 0 {
		fmt.Fprintf(e.stdout, "%s has no usable session.\n", clientID)
		return nil
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SESSION\tCREATED\tEXPIRES")
	for _, se := range sessions {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", shown(se.GetSessionId()), formatTime(se.GetCreateTime().AsTime()), formatTime(se.GetExpireTime().AsTime()))
	}
	return tw.Flush()
}
