package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/remitpay/remit/internal/auth"
	"github.com/remitpay/remit/internal/authz"
	"github.com/remitpay/remit/internal/names"
)

var usersCmd = &command{
	name:    "users",
	summary: "add users to a users file, or change their passwords",
	usage: `remit users add --file FILE CLIENT_ID [--role ROLE]... [--account BANK/ID] [--password-stdin]
       remit users passwd --file FILE CLIENT_ID [--password-stdin]`,
	help: `
Users edits the gateway's users file (JSON, password hashes only; argon2id).
The file is replaced atomically and kept at mode 0600.

  add      adds CLIENT_ID with the given roles (default: customer). A
           customer needs --account, the account it owns (BANK/ACCOUNT_ID).
  passwd   sets a new password for CLIENT_ID.

The password is read from the first line of standard input with
--password-stdin; otherwise a random one is generated and printed once.
Roles are customer, admin and auditor. The file is the preload of the
gateway's users: a running gateway imports a change within a few seconds
(or on SIGHUP), and a password change ends that user's sessions, unless the
password was since changed through the API, which the file never
overwrites. To manage users of a running network, prefer 'remit admin
users' (see 'remit admin --help').`,
	examples: `
remit users add --file .remit/users.json erin --account bank-b/erin
printf '%s\n' "$NEW_PASSWORD" | remit users passwd --file .remit/users.json alice --password-stdin
remit users add --file .remit/users.json ops --role admin --role auditor`,
	flags: func(fs *flag.FlagSet) runFunc {
		var (
			file          string
			roles         multiFlag
			account       string
			passwordStdin bool
		)
		fs.StringVar(&file, "file", "", "the users `FILE`, e.g. .remit/users.json (required)")
		fs.Var(&roles, "role", "add: a `ROLE` of the user: customer, admin or auditor (repeatable; default customer)")
		fs.StringVar(&account, "account", "", "add: the account the user owns, as `BANK/ID` (required for customers)")
		fs.BoolVar(&passwordStdin, "password-stdin", false, "read the password from the first line of standard input instead of generating one")
		return func(_ context.Context, e *env, args []string) error {
			if len(args) == 0 {
				return usagef("missing subcommand: add or passwd")
			}
			sub, args := args[0], args[1:]
			if sub != "add" && sub != "passwd" {
				return usagef("unknown subcommand %q: want add or passwd", sub)
			}
			switch {
			case file == "":
				return usagef("--file is required")
			case len(args) == 0:
				return usagef("missing CLIENT_ID")
			case len(args) > 1:
				return usagef("unexpected argument %q", args[1])
			}
			if err := names.ClientID(args[0]); err != nil {
				return usagef("client id %v", err)
			}
			switch {
			case sub == "passwd" && (len(roles) > 0 || account != ""):
				return usagef("--role and --account only apply to add")
			}
			clientID := args[0]

			var u auth.User
			if sub == "add" {
				var err error
				if u, err = newUser(clientID, roles, account); err != nil {
					return err
				}
			}
			password, generated, err := readPassword(e, passwordStdin)
			if err != nil {
				return err
			}
			if sub == "add" {
				err = auth.AddUser(file, u, password)
			} else {
				err = auth.SetPassword(file, clientID, password)
			}
			if err != nil {
				return err
			}
			if sub == "add" {
				fmt.Fprintf(e.stdout, "added %s to %s\n", clientID, file)
			} else {
				fmt.Fprintf(e.stdout, "changed the password of %s in %s\n", clientID, file)
			}
			if generated {
				fmt.Fprintf(e.stdout, "password: %s\n(shown only now)\n", password)
			}
			fmt.Fprintln(e.stdout, "A running gateway imports the change within a few seconds (or on SIGHUP); a password change ends that user's sessions.")
			return nil
		}
	},
}

// parseRoles parses the --role flags of `users add` and `admin users
// create`: customer when there are none, each role once.
func parseRoles(roles []string) ([]authz.Role, error) {
	if len(roles) == 0 {
		roles = []string{string(authz.RoleCustomer)}
	}
	var out []authz.Role
	for _, s := range roles {
		r, ok := authz.ParseClientRole(s)
		if !ok {
			return nil, usagef("--role %q: want customer, admin or auditor", s)
		}
		if !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out, nil
}

// newUser builds the user `users add` adds.
func newUser(clientID string, roles []string, account string) (auth.User, error) {
	u := auth.User{ClientID: clientID}
	var err error
	if u.Roles, err = parseRoles(roles); err != nil {
		return u, err
	}
	if account != "" {
		bank, id, ok := strings.Cut(account, "/")
		if !ok || bank == "" || id == "" {
			return u, usagef("--account %q: want BANK/ACCOUNT_ID, e.g. bank-a/%s", account, clientID)
		}
		u.Account = &authz.Account{Bank: bank, ID: id}
	}
	if u.HasRole(authz.RoleCustomer) && u.Account == nil {
		return u, usagef("a customer needs --account BANK/ACCOUNT_ID (the account it pays from)")
	}
	return u, nil
}

// readPassword reads the first line of stdin, or generates a password.
func readPassword(e *env, fromStdin bool) (password string, generated bool, err error) {
	if !fromStdin {
		return rand.Text(), true, nil
	}
	line, err := bufio.NewReader(io.LimitReader(e.stdin, auth.MaxPasswordLen+2)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", false, fmt.Errorf("read password from stdin: %w", err)
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", false, errors.New("--password-stdin: standard input has no password on its first line")
	}
	return line, false, nil
}
