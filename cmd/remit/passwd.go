package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"connectrpc.com/connect"

	"github.com/remitpay/remit/client"
	"github.com/remitpay/remit/internal/auth"
)

var passwdCmd = &command{
	name:    "passwd",
	summary: "change your own password at the gateway",
	usage:   "remit passwd [--password-stdin] [--json]",
	help: `
Passwd changes the password of the client you are logged in as, at the
gateway: it asks for the current password, then for the new one twice,
without echo. With --password-stdin it reads two lines from standard input
instead: the current password, then the new one (for scripts).

The new password must be at least 12 characters and not a common
password. A wrong current password counts as a failed login.

Every other session of yours ends at once (other terminals, the wallet,
open 'remit payments watch' streams); this one stays logged in. A client
in the users file keeps the new password: the gateway does not overwrite
it when it imports the file again.

Exit status: 0 changed; 1 failed (a wrong current password included);
2 usage error (a new password that is too short or too common).`,
	examples: `
remit passwd
printf '%s\n%s\n' "$OLD_PASSWORD" "$NEW_PASSWORD" | remit passwd --password-stdin`,
	flags: func(fs *flag.FlagSet) runFunc {
		f := addClientFlags(fs)
		passwordStdin := fs.Bool("password-stdin", false, "read the current password, then the new one, from the first two lines of standard input")
		return func(ctx context.Context, e *env, args []string) error {
			if err := noArgs(args); err != nil {
				return err
			}
			ctx, stop := signalContext(ctx)
			defer stop()
			s, err := openSession(f)
			if err != nil {
				return err
			}
			defer s.Close()
			var current, next string
			if *passwordStdin {
				lines, err := readStdinLines(e, 2)
				if err != nil {
					return err
				}
				current, next = lines[0], lines[1]
			} else {
				if current, err = promptPassword(e, fmt.Sprintf("Current password for %s: ", shown(s.profile.ClientID))); err != nil {
					return err
				}
				if next, err = promptNewPassword(e, "New password: "); err != nil {
					return err
				}
			}
			revoked, err := s.client.ChangePassword(ctx, current, next)
			if err != nil {
				return passwordError(e, s, err)
			}
			if f.json {
				return printJSON(e.stdout, struct {
					RevokedSessions int32 `json:"revokedSessions"`
				}{revoked})
			}
			fmt.Fprintf(e.stdout, "Changed the password of %s; %s of yours ended (this one stays logged in).\n",
				shown(s.profile.ClientID), plural(int(revoked), "other session"))
			return nil
		}
	},
}

// passwordError explains a failed password change: a wrong current
// password is not an expired session, although both are unauthenticated.
func passwordError(e *env, s *session, err error) error {
	var ce *client.Error
	if errors.As(err, &ce) && ce.Code == connect.CodeUnauthenticated && ce.Reason != client.ReasonUnauthenticated && ce.Reason != "" {
		if s.flags.json {
			_ = printJSON(e.stdout, struct {
				Error *errorJSON `json:"error"`
			}{newErrorJSON(err)})
		}
		return errors.New("the current password is wrong; nothing changed (this counts as a failed login)")
	}
	return s.fail(e, err)
}

// promptNewPassword asks for a new password twice without echo, and
// checks the length the gateway requires before anything is sent.
func promptNewPassword(e *env, prompt string) (string, error) {
	pw, err := promptPassword(e, prompt)
	if err != nil {
		return "", err
	}
	again, err := promptPassword(e, "Repeat it: ")
	if err != nil {
		return "", err
	}
	if pw != again {
		return "", errors.New("the two passwords differ; nothing changed: try again")
	}
	return pw, nil
}

// readNewPassword reads a new password: from the first line of standard
// input with --password-stdin, else from two prompts without echo.
func readNewPassword(e *env, fromStdin bool, prompt string) (string, error) {
	if !fromStdin {
		return promptNewPassword(e, prompt)
	}
	lines, err := readStdinLines(e, 1)
	if err != nil {
		return "", err
	}
	return lines[0], nil
}

// readStdinLines reads the first n lines of standard input, each a
// password: none may be empty. One reader reads them all, so that the
// buffering of the first line does not swallow the next.
func readStdinLines(e *env, n int) ([]string, error) {
	r := bufio.NewReader(io.LimitReader(e.stdin, int64(n*(auth.MaxPasswordLen+2))))
	lines := make([]string, 0, n)
	for i := range n {
		line, err := r.ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("read password from stdin: %w", err)
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			if n == 1 {
				return nil, errors.New("--password-stdin: standard input has no password on its first line")
			}
			return nil, fmt.Errorf("--password-stdin: standard input has no password on line %d of %d", i+1, n)
		}
		lines = append(lines, line)
	}
	return lines, nil
}
