package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/remitpay/remit/client"
	"github.com/remitpay/remit/client/outbox"
	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
	"github.com/remitpay/remit/internal/printable"
	"github.com/remitpay/remit/internal/rpcerr"
)

// This file holds what every client command (login, pay, balance, ...)
// shares: the --gateway, --ca and --json flags, the saved login profile,
// and turning SDK errors into messages that say what to do next.

// Environment variables of the client commands. They override the saved
// login profile; flags override them.
const (
	envGateway = "REMIT_GATEWAY"
	envCA      = "REMIT_CA"
)

// Defaults of `remit login` when neither a flag, the environment nor an
// earlier login names the gateway: what `remit up` runs in ./.remit.
const (
	defaultGatewayURL = "https://127.0.0.1:8443"
	defaultCAFile     = ".remit/certs/ca.pem"
)

// exitQueued is the status of a command that left a payment safely queued
// in the outbox without a final outcome yet (`remit pay` while the gateway
// is unreachable, `remit outbox flush` that could not send everything).
// It is neither success (no money moved yet) nor failure (the payment
// will go out, exactly once, with a later flush): scripts must not pay
// again on it.
const exitQueued = 3

// exitError ends a command with a given exit status. The command has
// already printed its outcome; err, if not nil, is printed by fail as
// well.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// clientFlags are the flags every command that talks to a gateway takes.
type clientFlags struct {
	gateway string
	ca      string
	json    bool
}

func addClientFlags(fs *flag.FlagSet) *clientFlags {
	f := addGatewayFlags(fs)
	addJSONFlag(fs, &f.json)
	return f
}

// addGatewayFlags registers --gateway and --ca only, for commands without
// a --json output.
func addGatewayFlags(fs *flag.FlagSet) *clientFlags {
	f := &clientFlags{}
	fs.StringVar(&f.gateway, "gateway", "", "the gateway's `URL` (default: $"+envGateway+", else the one you logged in to)")
	fs.StringVar(&f.ca, "ca", "", "the CA certificate `FILE` that signed the gateway's certificate (default: $"+envCA+", else the login's)")
	return f
}

func addJSONFlag(fs *flag.FlagSet, v *bool) {
	fs.BoolVar(v, "json", false, "print JSON for scripts (protojson for API objects) instead of text")
}

// signalContext returns ctx cancelled by Ctrl-C or SIGTERM, so a command
// can stop cleanly: a payment being sent stays queued, a watch ends.
func signalContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
}

// stateDir is where the login profile and the outbox live.
func stateDir() (string, error) {
	dir, err := client.StateDir()
	if err != nil {
		return "", fmt.Errorf("%w; e.g. export REMIT_HOME=~/.remit", err)
	}
	return dir, nil
}

// session is a logged-in client: the saved profile and a Client built from
// it, with the flag and environment overrides applied.
type session struct {
	dir     string
	profile *client.Profile
	client  *client.Client
	flags   *clientFlags
}

// openSession loads the profile saved by `remit login` and connects (lazily)
// to its gateway.
func openSession(f *clientFlags) (*session, error) {
	dir, err := stateDir()
	if err != nil {
		return nil, err
	}
	p, err := client.LoadProfile(dir)
	if err != nil {
		return nil, err // ErrNoProfile says to run remit login
	}
	if p.Expired(time.Now()) {
		return nil, sessionExpired(p.ClientID)
	}
	cfg := p.Config()
	if gw := override(f.gateway, envGateway, ""); gw != "" {
		// The flag or environment names the gateway, and its replicas
		// (a comma-separated list), instead of the profile's.
		cfg.GatewayURL, cfg.MoreGatewayURLs = gw, nil
	}
	cfg.CAFile = override(f.ca, envCA, cfg.CAFile)
	c, err := newClient(f, cfg)
	if err != nil {
		return nil, err
	}
	return &session{dir: dir, profile: p, client: c, flags: f}, nil
}

// newClient is client.New with errors in terms of the flags.
func newClient(f *clientFlags, cfg client.Config) (*client.Client, error) {
	c, err := client.New(cfg)
	if err != nil {
		msg := strings.TrimPrefix(err.Error(), "client: ")
		if errors.Is(err, client.ErrCAFileNotFound) {
			msg = fmt.Sprintf("the CA file %s was not found: pass --ca with the gateway's CA certificate (e.g. %s, which `remit up` writes) or set $%s",
				cfg.CAFile, defaultCAFile, envCA)
			if f.ca != "" {
				return nil, usagef("%s", msg)
			}
			return nil, errors.New(msg)
		}
		if f.gateway != "" || f.ca != "" {
			return nil, usagef("%s", msg)
		}
		return nil, fmt.Errorf("%s; check --gateway / $%s and --ca / $%s", msg, envGateway, envCA)
	}
	return c, nil
}

// override returns flag if set, else the environment variable env if set,
// else def.
func override(flag, env, def string) string {
	if flag != "" {
		return flag
	}
	if v := os.Getenv(env); v != "" {
		return v
	}
	return def
}

func (s *session) Close() { s.client.Close() }

// gatewayURL is the gateway the session talks to, normalized; the outbox
// scopes queued payments by it.
func (s *session) gatewayURL() string { return s.client.GatewayURL() }

// errSessionExpired is wrapped by sessionExpired's errors.
var errSessionExpired = errors.New("your session expired")

func sessionExpired(clientID string) error {
	if clientID == "" {
		clientID = "CLIENT_ID"
	}
	return fmt.Errorf("%w: run `remit login %s`", errSessionExpired, clientID)
}

// idReused says that a transaction id was already used for a different
// request (what: "payment"), and what to do.
func idReused(txID, what string) string {
	return fmt.Sprintf("transaction id %s was already used for a different %s: leave --transaction-id out to get a new one", txID, what)
}

// explain turns an error of the SDK into one that says what happened and
// what to do next. Invalid requests become usage errors (exit 2).
func (s *session) explain(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, client.ErrInvalidRequest) {
		return usagef("%s", invalidRequestText(err))
	}
	var ce *client.Error
	if !errors.As(err, &ce) {
		return err
	}
	switch {
	case ce.Code == connect.CodeUnauthenticated:
		return sessionExpired(s.profile.ClientID)
	case ce.Code == connect.CodePermissionDenied:
		msg := "permission denied"
		if m := strings.TrimPrefix(ce.Message, "permission denied"); m != "" {
			msg += ": " + strings.TrimLeft(m, ": ")
		}
		return fmt.Errorf("%s; you are logged in as %s: log in as a client allowed to do this", msg, describeClient(s.profile))
	case client.IsDeclined(err):
		// The gateway's message says what to do; the CLI says what happened.
		if r, ok := client.FailureReasonOf(ce); ok {
			return fmt.Errorf("declined: %s: %s", client.FailureWords(r), ce.Message)
		}
		if ce.Reason != "" {
			// A refused request, not a failed payment: acknowledging a
			// payment that did not succeed (PAYMENT_NOT_SUCCEEDED)
			// declines nothing, so the CLI does not say "declined".
			return fmt.Errorf("%s: %s", humanReason(ce.Reason), ce.Message)
		}
		return fmt.Errorf("declined: %s", ce.Message)
	case ce.Code == connect.CodeFailedPrecondition && ce.Reason == reasonTransactionIDConflict:
		// Not a decline: paying again with a new id could pay twice. The
		// gateway's message says so; callers add the transaction id.
		return errors.New(ce.Message)
	case ce.Reason == client.ReasonIdempotencyKeyReused:
		return errors.New(idReused(ce.TransactionID, "payment"))
	case ce.Code == connect.CodeNotFound:
		return fmt.Errorf("%s", ce.Message)
	case ce.Code == connect.CodeAlreadyExists && ce.Reason != "":
		// CLIENT_ID_TAKEN, ACCOUNT_ALREADY_LINKED, ACCOUNT_EXISTS: nothing changed.
		return fmt.Errorf("%s: %s", humanReason(ce.Reason), ce.Message)
	case ce.Code == connect.CodeInvalidArgument && ce.Reason != client.ReasonIdempotencyKeyReused:
		// The gateway refused the request as given: a usage error.
		return usagef("%s", ce.Message)
	}
	if hint := transportHint(err, s.gatewayURL()); hint != "" {
		return errors.New(hint)
	}
	if ce.Code == connect.CodeCanceled {
		return errors.New("interrupted")
	}
	return fmt.Errorf("%s", ce.Error())
}

// transportHint explains an error that never reached the gateway (or
// found it unavailable), or returns "" for any other error.
func transportHint(err error, gatewayURL string) string {
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Reason != "" && ce.Reason != client.ReasonNotServing {
		return ""
	}
	var cve *tls.CertificateVerificationError
	var uae x509.UnknownAuthorityError
	if errors.As(err, &cve) || errors.As(err, &uae) || strings.Contains(ce.Message, "x509:") {
		return fmt.Sprintf("the gateway at %s presented a certificate your CA does not trust (%s): pass --ca FILE or set %s to the network's ca.pem (remit up writes .remit/certs/ca.pem)",
			gatewayURL, ce.Message, envCA)
	}
	if ce.Code != connect.CodeUnavailable && ce.Code != connect.CodeDeadlineExceeded && ce.Code != connect.CodeUnknown {
		return ""
	}
	return fmt.Sprintf("cannot reach the gateway at %s (%s): is it running (`remit up`)? Check --gateway or $%s",
		gatewayURL, ce.Message, envGateway)
}

// humanReason turns an ErrorInfo reason such as PAYMENT_NOT_SUCCEEDED into
// "payment not succeeded", or returns "" when there is no reason (an error
// that did not come from the gateway says nothing about a decline). Reasons
// are sent without an enum prefix (rpcerr.EnumReason), so there is none to
// strip.
func humanReason(reason string) string {
	return strings.ToLower(strings.ReplaceAll(reason, "_", " "))
}

// failureLabel is the short reason of a failure: the ErrorInfo reason in
// words, else the code ("unimplemented").
func failureLabel(ce *client.Error) string {
	if r := humanReason(ce.Reason); r != "" {
		return r
	}
	return ce.Code.String()
}

// reasonTransactionIDConflict is the ErrorInfo reason of a payment a bank
// refused because it holds the id for a different transaction.
var reasonTransactionIDConflict = rpcerr.EnumReason(gatewayv1.FailureReason_FAILURE_REASON_TRANSACTION_ID_CONFLICT)

// printProto writes m as one line of protojson.
func printProto(w io.Writer, m proto.Message) error {
	b, err := protojson.Marshal(m)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", printable.JSON(b))
	return err
}

// printJSON writes v as one line of JSON.
func printJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", printable.JSON(b))
	return err
}

// rawProto is m as protojson for embedding in a JSON envelope (nil for a
// nil message).
func rawProto(m proto.Message) json.RawMessage {
	if m == nil || !m.ProtoReflect().IsValid() {
		return nil
	}
	b, err := protojson.Marshal(m)
	if err != nil {
		return nil
	}
	return b
}

// errorJSON is how --json reports an error of the gateway.
type errorJSON struct {
	Code          string `json:"code"`
	Reason        string `json:"reason,omitempty"`
	Message       string `json:"message"`
	TransactionID string `json:"transactionId,omitempty"`
}

func newErrorJSON(err error) *errorJSON {
	if ce, ok := errors.AsType[*client.Error](err); ok {
		return &errorJSON{Code: ce.Code.String(), Reason: ce.Reason, Message: ce.Message, TransactionID: ce.TransactionID}
	}
	j := &errorJSON{Code: connect.CodeUnknown.String(), Message: err.Error()}
	var ue *usageError
	switch {
	case errors.As(err, &ue):
		j.Code, j.Reason = connect.CodeInvalidArgument.String(), ue.reason
	case errors.Is(err, client.ErrInvalidRequest):
		j.Code = connect.CodeInvalidArgument.String()
	case errors.Is(err, client.ErrNoProfile), errors.Is(err, errSessionExpired):
		j.Code = connect.CodeUnauthenticated.String()
	case errors.Is(err, outbox.ErrBusy):
		j.Code = connect.CodeUnavailable.String()
	}
	return j
}

// fail reports a failed call: with --json it also writes {"error": ...}
// to stdout so scripts reading stdout see it; the returned error is the
// explained one, which run prints to stderr.
func (s *session) fail(e *env, err error) error {
	if s.flags.json {
		_ = printJSON(e.stdout, struct {
			Error *errorJSON `json:"error"`
		}{newErrorJSON(err)})
	}
	return s.explain(err)
}

// formatTime renders t in local time to the second, or "-" when unset.
func formatTime(t time.Time) string {
	if t.IsZero() || t.Unix() == 0 {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05") //nolint:gosmopolitan // for the person at the terminal, in their own time zone
}

// formatAge renders a duration for people: 3s, 5m, 2h10m, 3d.
func formatAge(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	default:
		return fmt.Sprintf("%dd", int(d.Hours()/24))
	}
}

// plural returns "1 payment" or "2 payments".
func plural(n int, word string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// noArgs rejects positional arguments.
func noArgs(args []string) error {
	if len(args) > 0 {
		return usagef("unexpected argument %q", args[0])
	}
	return nil
}

// invalidRequestText is what follows "invalid request: " in an error of the
// SDK's own request check, however the SDK wrapped it (a bare error, or a
// *client.Error whose text starts with the Connect code).
func invalidRequestText(err error) string {
	msg := err.Error()
	if _, rest, ok := strings.Cut(msg, client.ErrInvalidRequest.Error()+": "); ok {
		return rest
	}
	return msg
}
