package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"time"

	"connectrpc.com/connect"

	"github.com/remitpay/remit/client"
	"github.com/remitpay/remit/internal/names"
)

var registerCmd = &command{
	name:    "register",
	summary: "sign up as a new customer with your bank account and its enrollment code, then log in",
	usage:   "remit register [--gateway URL] [--ca FILE] [--password-stdin] [--json] CLIENT_ID --account BANK/ID --code CODE",
	help: `
Register signs you up at the gateway as the new customer CLIENT_ID, linked
to your account BANK/ID at its bank. CODE is the one-time enrollment code
your bank gave you for that account (an operator prints it with
'remit bank enroll'); it proves the account is yours, is valid for a
limited time and works once. An account links to one customer only.

The password is asked for twice without echo, or read from the first line
of standard input with --password-stdin (for scripts). It must be at least
12 characters and not a common password; the CLI never stores it.

Once registered, register logs you in exactly as 'remit login CLIENT_ID'
does and saves the session in the state directory, so the other commands
work at once. The gateway and CA are chosen as for login.

A wrong, expired or used code and an account the bank does not know are
refused alike: ask your bank for a new code. If the gateway could not be
reached, or the registration went through but the login did not, run
'remit login CLIENT_ID' to find out whether you exist.

Exit status: 0 registered and logged in; 1 refused or failed; 2 usage
error (a password that is too short or too common included).`,
	examples: `
remit register erin --account bank-b/erin --code 7Q2M-K9XD-4HTA-WP3R
printf '%s\n' "$PASSWORD" | remit register --password-stdin erin --account bank-b/erin --code 7Q2M-K9XD-4HTA-WP3R
remit register --gateway https://gateway.example:8443 --ca ca.pem erin --account bank-b/erin --code 7Q2M-K9XD-4HTA-WP3R`,
	flags: func(fs *flag.FlagSet) runFunc {
		f := addClientFlags(fs)
		account := fs.String("account", "", "your account to link, as `BANK/ID` (required)")
		code := fs.String("code", "", "the one-time enrollment `CODE` your bank issued for the account (required)")
		passwordStdin := fs.Bool("password-stdin", false, "read the new password from the first line of standard input instead of prompting")
		return func(ctx context.Context, e *env, args []string) error {
			switch {
			case len(args) == 0:
				return usagef("missing CLIENT_ID, e.g. remit register erin --account bank-b/erin --code CODE")
			case len(args) > 1:
				return usagef("unexpected argument %q", args[1])
			case *account == "":
				return usagef("--account is required: your account as BANK/ID, e.g. bank-b/%s", args[0])
			case *code == "":
				return usagef("--code is required: the enrollment code your bank issued for the account")
			}
			if err := names.ClientID(args[0]); err != nil {
				return usagef("client id %v", err)
			}
			ref, err := client.ParseAccountRef(*account)
			if err != nil {
				return usagef("--account: %s", invalidMessage(err))
			}
			reg := client.Registration{ClientID: args[0], Account: ref, EnrollmentCode: *code}
			return runRegister(ctx, e, f, reg, *passwordStdin)
		}
	},
}

func runRegister(ctx context.Context, e *env, f *clientFlags, reg client.Registration, passwordStdin bool) error {
	ctx, stop := signalContext(ctx)
	defer stop()
	dir, c, cfg, err := loginClient(f)
	if err != nil {
		return err
	}
	defer c.Close()

	if reg.Password, err = readNewPassword(e, passwordStdin,
		fmt.Sprintf("New password for %s at %s: ", reg.ClientID, cfg.GatewayURL)); err != nil {
		return err
	}
	registered, err := c.Register(ctx, reg)
	if err != nil {
		return registerError(e, f, cfg.GatewayURL, reg, err)
	}
	p, err := saveLogin(ctx, e, f, c, cfg, dir, reg.ClientID, reg.Password)
	if err != nil {
		return fmt.Errorf("registered %s, but the login failed: %w; run `remit login %s`", reg.ClientID, err, reg.ClientID)
	}
	if f.json {
		return printJSON(e.stdout, struct {
			Client  json.RawMessage `json:"client"`
			Profile profileJSON     `json:"profile"`
		}{rawProto(registered), newProfileJSON(p)})
	}
	fmt.Fprintf(e.stdout, "Registered %s with the account %s.\n", reg.ClientID, reg.Account)
	printLoggedIn(ctx, e, dir, p)
	return nil
}

// Reasons of Register's refusals.
const (
	reasonEnrollmentCodeInvalid = "ENROLLMENT_CODE_INVALID"
	reasonClientIDTaken         = "CLIENT_ID_TAKEN"
	reasonAccountAlreadyLinked  = "ACCOUNT_ALREADY_LINKED"
)

// registerError explains a failed registration.
func registerError(e *env, f *clientFlags, gatewayURL string, reg client.Registration, err error) error {
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
	case ce.Reason == reasonEnrollmentCodeInvalid:
		return fmt.Errorf("the enrollment code is wrong, expired or already used, or %s is not an account of that bank; nothing was created: ask your bank for a new code", reg.Account)
	case ce.Reason == reasonClientIDTaken:
		return fmt.Errorf("the client id %s is taken; nothing was created: choose another client id", reg.ClientID)
	case ce.Reason == reasonAccountAlreadyLinked:
		return fmt.Errorf("%s is already linked to a customer; nothing was created: log in as that customer (`remit login CLIENT_ID`)", reg.Account)
	case ce.Code == connect.CodeInvalidArgument:
		// WEAK_PASSWORD and other refusals of the input by the gateway: a
		// refusal (exit 1), not a mistake in the command line.
		return fmt.Errorf("%s; nothing was created", shown(ce.Message))
	case ce.Code == connect.CodeResourceExhausted:
		wait := "a while"
		if ce.RetryAfter > 0 {
			wait = (ce.RetryAfter + time.Second - 1).Truncate(time.Second).String()
		}
		return fmt.Errorf("too many attempts from here: try again in %s", wait)
	}
	if ce.Retryable {
		msg := ce.Message
		if hint := transportHint(err, gatewayURL); hint != "" {
			msg = hint
		}
		return fmt.Errorf("%s\nThe registration may or may not have gone through: run `remit login %s` to find out; if the password is refused, run this command again",
			msg, reg.ClientID)
	}
	return fmt.Errorf("registration failed: %w", err)
}
