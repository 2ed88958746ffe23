package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"connectrpc.com/connect"

	"github.com/remitpay/remit/client"
	"github.com/remitpay/remit/client/outbox"
	"github.com/remitpay/remit/internal/names"
)

var loginCmd = &command{
	name:    "login",
	summary: "log in to a gateway and remember the session for the other commands",
	usage:   "remit login [--gateway URL] [--ca FILE] [--password-stdin] [--json] CLIENT_ID",
	help: `
Login exchanges CLIENT_ID's password for a session token and saves a
profile (the gateway URL, the CA file and the token, never the password) in
the state directory, with mode 0600: $REMIT_HOME if set, else
$XDG_STATE_HOME/remit, else ~/.local/state/remit. Every other client
command (pay, balance, payments, outbox, admin) uses it.

The password is asked for without echo on the terminal, or read from the
first line of standard input with --password-stdin (for scripts).

The gateway is --gateway, else $REMIT_GATEWAY, else the one of the last
login, else ` + defaultGatewayURL + ` (what 'remit up' runs). The CA is
--ca, else $REMIT_CA, else the last login's, else ./` + defaultCAFile + ` if it
exists (written by 'remit up'), else the system's roots.

Sessions expire (after an hour by default); the CLI never stores your
password, so log in again when a command says your session expired.`,
	examples: `
remit login alice
remit login --gateway https://127.0.0.1:8443 --ca .remit/certs/ca.pem alice
jq -r '.users[] | select(.client_id=="alice").password' .remit/credentials.json | remit login --password-stdin alice
REMIT_HOME=/tmp/bob remit login bob`,
	flags: func(fs *flag.FlagSet) runFunc {
		f := addClientFlags(fs)
		passwordStdin := fs.Bool("password-stdin", false, "read the password from the first line of standard input instead of prompting")
		return func(ctx context.Context, e *env, args []string) error {
			switch {
			case len(args) == 0:
				return usagef("missing CLIENT_ID, e.g. remit login alice")
			case len(args) > 1:
				return usagef("unexpected argument %q", args[1])
			}
			if err := names.ClientID(args[0]); err != nil {
				return usagef("client id %v", err)
			}
			return runLogin(ctx, e, f, args[0], *passwordStdin)
		}
	},
}

func runLogin(ctx context.Context, e *env, f *clientFlags, clientID string, passwordStdin bool) error {
	ctx, stop := signalContext(ctx)
	defer stop()
	dir, c, cfg, err := loginClient(f)
	if err != nil {
		return err
	}
	defer c.Close()

	var password string
	if passwordStdin {
		password, _, err = readPassword(e, true)
	} else {
		password, err = promptPassword(e, fmt.Sprintf("Password for %s at %s: ", clientID, cfg.GatewayURL))
	}
	if err != nil {
		return err
	}
	p, err := saveLogin(ctx, e, f, c, cfg, dir, clientID, password)
	if err != nil {
		return err
	}
	if f.json {
		return printJSON(e.stdout, newProfileJSON(p))
	}
	printLoggedIn(ctx, e, dir, p)
	return nil
}

// loginClient opens a client for logging in (login, register): the state
// directory, the client, and its config with the gateway URL normalized
// (the outbox scopes payments by it). The caller closes the client.
func loginClient(f *clientFlags) (dir string, c *client.Client, cfg client.Config, err error) {
	if dir, err = stateDir(); err != nil {
		return "", nil, cfg, err
	}
	cfg = loginConfig(f, dir)
	if c, err = newClient(f, cfg); err != nil {
		return "", nil, cfg, err
	}
	cfg.GatewayURL, cfg.MoreGatewayURLs = c.GatewayURL(), c.MoreGatewayURLs()
	return dir, c, cfg, nil
}

// saveLogin logs clientID in on c and saves the profile in dir, as `remit
// login` does (register logs in the same way after signing up).
func saveLogin(ctx context.Context, e *env, f *clientFlags, c *client.Client, cfg client.Config, dir, clientID, password string) (*client.Profile, error) {
	s, err := c.Login(ctx, clientID, password)
	if err != nil {
		return nil, loginError(e, f, cfg.GatewayURL, err)
	}
	p := client.NewProfile(cfg, s)
	if err := p.Save(dir); err != nil {
		return nil, err
	}
	return p, nil
}

// printLoggedIn tells who is logged in where, and about payments queued
// for them.
func printLoggedIn(ctx context.Context, e *env, dir string, p *client.Profile) {
	fmt.Fprintf(e.stdout, "Logged in as %s at %s until %s.\n", describeClient(p), p.GatewayURL, formatTime(p.ExpireTime))
	fmt.Fprintf(e.stdout, "Session saved in %s.\n", filepath.Join(dir, client.ProfileFile))
	n, elsewhere := queuedFor(ctx, dir, p.ClientID, p.GatewayURL)
	if n > 0 {
		fmt.Fprintf(e.stdout, "%s queued in the outbox: send with `remit outbox flush`.\n", plural(n, "payment is"))
	}
	for _, u := range slices.Sorted(maps.Keys(elsewhere)) {
		fmt.Fprintf(e.stdout, "%s queued for the gateway at %s: send with `remit outbox flush --gateway %s`.\n",
			plural(elsewhere[u], "payment is"), u, u)
	}
}

// loginConfig picks the gateway and CA: flags, then the environment, then
// the last login, then what `remit up` runs in ./.remit.
func loginConfig(f *clientFlags, dir string) client.Config {
	var prevURL, prevCA string
	if p, err := client.LoadProfile(dir); err == nil {
		// The gateway and its replicas, as the list --gateway takes.
		prevURL, prevCA = strings.Join(append([]string{p.GatewayURL}, p.MoreGatewayURLs...), ","), p.CAFile
	}
	cfg := client.Config{GatewayURL: override(f.gateway, envGateway, prevURL), CAFile: override(f.ca, envCA, prevCA)}
	if cfg.GatewayURL == "" {
		cfg.GatewayURL = defaultGatewayURL
	}
	if cfg.CAFile == "" {
		if _, err := os.Stat(defaultCAFile); err == nil {
			cfg.CAFile = defaultCAFile
		}
	}
	return cfg
}

// loginLockedReason is the ErrorInfo reason of the gateway's login
// lockout after too many failed logins.
const loginLockedReason = "LOGIN_LOCKED"

// loginError explains a failed login.
func loginError(e *env, f *clientFlags, gatewayURL string, err error) error {
	if f.json {
		_ = printJSON(e.stdout, struct {
			Error *errorJSON `json:"error"`
		}{newErrorJSON(err)})
	}
	var ce *client.Error
	switch {
	case errors.Is(err, client.ErrInvalidRequest):
		return usagef("%s", invalidRequestText(err))
	case !errors.As(err, &ce):
		return err
	case ce.Code == connect.CodeUnauthenticated:
		return errors.New("wrong client id or password; try again (the password is in credentials.json for `remit up`'s demo users)")
	case ce.Code == connect.CodeResourceExhausted:
		wait := "a while"
		if ce.RetryAfter > 0 {
			// Rounded up: trying at the rounded-down second would be early.
			wait = (ce.RetryAfter + time.Second - 1).Truncate(time.Second).String()
		}
		if ce.Reason == loginLockedReason {
			return fmt.Errorf("too many failed logins: try again in %s", wait)
		}
		return fmt.Errorf("the gateway is limiting requests: try again in %s", wait)
	}
	if hint := transportHint(err, gatewayURL); hint != "" {
		return errors.New(hint)
	}
	return fmt.Errorf("login failed: %w", err)
}

// promptPassword asks for a password on the terminal without echo: on
// standard input if it is a terminal, else on /dev/tty.
func promptPassword(e *env, prompt string) (string, error) {
	tty, ok := e.stdin.(*os.File)
	promptTo := e.stderr
	if !ok || !isTerminalFile(tty) {
		f, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
		if err != nil || !isTerminalFile(f) {
			if f != nil {
				_ = f.Close() // not a terminal: unused, nothing written
			}
			return "", usagef("no terminal to ask for the password: pipe it in with --password-stdin")
		}
		defer f.Close() //nolint:errcheck // a terminal: the prompt is written unbuffered, nothing to lose on close
		tty, promptTo = f, f
	}
	fmt.Fprint(promptTo, prompt)
	pw, err := readNoEcho(tty)
	fmt.Fprintln(promptTo)
	if err != nil {
		return "", fmt.Errorf("read password: %w", err)
	}
	pw = strings.TrimRight(pw, "\r\n")
	if pw == "" {
		return "", errors.New("empty password")
	}
	return pw, nil
}

// queuedFor counts the payments queued for clientID at gatewayURL, and
// those of clientID queued for other gateway URLs (by URL), without
// creating an outbox where there is none; nothing on any error.
func queuedFor(ctx context.Context, dir, clientID, gatewayURL string) (n int, elsewhere map[string]int) {
	if _, err := os.Stat(filepath.Join(dir, outboxFile)); err != nil {
		return 0, nil
	}
	ob, err := outbox.Open(ctx, dir, outbox.Options{ClientID: clientID, GatewayURL: gatewayURL})
	if err != nil {
		return 0, nil
	}
	defer ob.Close() //nolint:errcheck // every write to the outbox is a committed transaction by now; Close only releases the handle
	items, err := ob.List(ctx)
	if err != nil {
		return 0, nil
	}
	if u, err := client.NormalizeGatewayURL(gatewayURL); err == nil {
		gatewayURL = u
	}
	for _, it := range items {
		switch {
		case it.ClientID != clientID:
		case it.GatewayURL == gatewayURL:
			n++
		default:
			if elsewhere == nil {
				elsewhere = map[string]int{}
			}
			elsewhere[it.GatewayURL]++
		}
	}
	return n, elsewhere
}

// profileJSON is a profile without its token, for --json.
type profileJSON struct {
	ClientID   string   `json:"clientId"`
	Account    string   `json:"account,omitempty"`
	Roles      []string `json:"roles,omitempty"`
	GatewayURL string   `json:"gatewayUrl"`
	CAFile     string   `json:"caFile,omitempty"`
	ExpireTime string   `json:"expireTime"`
	Expired    bool     `json:"expired"`
}

func newProfileJSON(p *client.Profile) profileJSON {
	return profileJSON{
		ClientID: p.ClientID, Account: p.Account, Roles: p.Roles, GatewayURL: p.GatewayURL, CAFile: p.CAFile,
		ExpireTime: p.ExpireTime.UTC().Format(time.RFC3339), Expired: p.Expired(time.Now()),
	}
}

// describeClient is "alice (account bank-a/alice, customer)".
func describeClient(p *client.Profile) string {
	var parts []string
	if p.Account != "" {
		parts = append(parts, "account "+p.Account)
	}
	for _, r := range p.Roles {
		parts = append(parts, strings.ToLower(strings.TrimPrefix(r, "ROLE_")))
	}
	if len(parts) == 0 {
		return p.ClientID
	}
	return p.ClientID + " (" + strings.Join(parts, ", ") + ")"
}
