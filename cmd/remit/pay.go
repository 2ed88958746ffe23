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
	"strings"

	"connectrpc.com/connect"

	"github.com/remitpay/remit/client"
	"github.com/remitpay/remit/client/outbox"
	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
	"github.com/remitpay/remit/internal/names"
	"github.com/remitpay/remit/internal/printable"
)

var payCmd = &command{
	name:    "pay",
	summary: "pay from your account to another, through the offline outbox",
	usage:   "remit pay --to BANK/ACCOUNT --amount AMOUNT [--currency usd] [--description TEXT] [--transaction-id UUID] [--json]",
	help: `
Pay sends AMOUNT from your own account to BANK/ACCOUNT and prints the
outcome and the payment's transaction id.

AMOUNT is a decimal as you would write it (12.50, 12, 0.5); it is converted
exactly into the currency's smallest unit, and more decimals than the
currency has (12.505 usd) is an error, never a rounding.

The payment is first written to the outbox in your state directory, with
its transaction id, and only then sent; older payments still queued there
are sent first, so payments go out in the order you made them. If the
gateway cannot be reached (or answers that it cannot decide now), the
payment stays queued: pay says so plainly, with its transaction id, and
exits 3. Send it later with 'remit outbox flush' (or keep
'remit outbox flush --watch' running): it goes out with the same
transaction id, so it is paid exactly once however often it is sent.
Never pay again after exit status 3.

Only the gateway's own answers are final: an answer without its error
details (a proxy's error page, or a server that is not a gateway answering
404 at a mistyped --gateway) leaves the payment queued (exit 3), with a
hint to check --gateway.

--transaction-id makes the command itself safe to repeat: running it again
with the same id and parameters returns the first outcome (from the
outbox's history, without sending again) instead of paying twice. An id
already used for a different payment is refused before anything is sent
(exit 2). Leave it out to have a fresh id generated.

Exit status: 0 the payment succeeded; 1 it was declined (no money moved; the
message says what to do) or failed; 2 usage error (nothing was saved or
sent); 3 queued in the outbox, not sent yet.`,
	examples: `
remit pay --to bank-b/bob --amount 12.50
remit pay --to bank-c/carol --amount 5 --description "coffee"
remit pay --to bank-b/bob --amount 12.50 --transaction-id 0b6f4f4e-8f1c-4a57-9d2e-3c5a7e9b1d20
remit pay --to bank-b/bob --amount 1 --json | jq -r .status`,
	flags: func(fs *flag.FlagSet) runFunc {
		f := addClientFlags(fs)
		to := fs.String("to", "", "the payee's account as `BANK/ACCOUNT`, e.g. bank-b/bob (required)")
		amount := fs.String("amount", "", "the `AMOUNT` as a decimal, e.g. 12.50 (required)")
		currency := fs.String("currency", "usd", "the lowercase ISO 4217 `CODE` of the currency")
		description := fs.String("description", "", "free `TEXT` shown to both sides (at most 200 characters)")
		txID := fs.String("transaction-id", "", "the payment's idempotency key, a `UUID` (default: a new one)")
		return func(ctx context.Context, e *env, args []string) error {
			if err := noArgs(args); err != nil {
				return err
			}
			req, err := paymentRequest(*to, *amount, *currency, *description, *txID)
			if err != nil {
				return err
			}
			return runPay(ctx, e, f, req)
		}
	},
}

// paymentRequest validates the flags of pay into a normalized request with
// a transaction id, or returns a usage error.
func paymentRequest(to, amount, currency, description, txID string) (client.PaymentRequest, error) {
	switch {
	case to == "":
		return client.PaymentRequest{}, usagef("--to is required: the payee as BANK/ACCOUNT, e.g. bank-b/bob")
	case amount == "":
		return client.PaymentRequest{}, usagef("--amount is required, e.g. --amount 12.50")
	}
	payee, err := client.ParseAccountRef(to)
	if err != nil {
		return client.PaymentRequest{}, usagef("--to: %s", invalidMessage(err))
	}
	if err := checkCurrency(currency); err != nil {
		return client.PaymentRequest{}, err
	}
	minor, err := client.ParseAmount(amount, currency)
	if err != nil {
		return client.PaymentRequest{}, usagef("--amount: %s", invalidMessage(err))
	}
	req, err := client.PaymentRequest{
		TransactionID: txID, Payee: payee, Amount: minor, Currency: currency, Description: description,
	}.Normalize()
	if err != nil {
		return client.PaymentRequest{}, usagef("%s", invalidMessage(err))
	}
	return req, nil
}

// checkCurrency returns a usage error about --currency unless currency is
// a lowercase ISO 4217 code.
func checkCurrency(currency string) error {
	if names.Currency(currency) == nil {
		return nil
	}
	msg := fmt.Sprintf("--currency %q: currencies are lowercase ISO 4217 codes like usd", currency)
	if lower := strings.ToLower(currency); names.Currency(lower) == nil {
		msg += fmt.Sprintf("; did you mean --currency %s?", lower)
	}
	return usagef("%s", msg)
}

// invalidMessage is an ErrInvalidRequest error's message without its
// prefix.
func invalidMessage(err error) string {
	return strings.TrimPrefix(err.Error(), client.ErrInvalidRequest.Error()+": ")
}

func runPay(ctx context.Context, e *env, f *clientFlags, req client.PaymentRequest) error {
	ctx, stop := signalContext(ctx)
	defer stop()
	s, err := openSession(f)
	if err != nil {
		return err
	}
	defer s.Close()
	ob, err := outbox.Open(ctx, s.dir, outbox.Options{
		ClientID: s.profile.ClientID, GatewayURL: s.gatewayURL(),
		OnOutcome: func(out outbox.Outcome) {
			// Older queued payments that went out first.
			if out.TransactionID != req.TransactionID {
				printOlderOutcome(e, f.json, out)
			}
		},
	})
	if err != nil {
		return err
	}
	defer ob.Close() //nolint:errcheck // every write to the outbox is a committed transaction by now; Close only releases the handle

	p, queued, err := ob.Pay(ctx, outboxGateway(s.client), req)
	var qe *outbox.QueuedError
	switch {
	case err == nil:
		if f.json {
			return printJSON(e.stdout, outcomeJSON{Status: "SUCCEEDED", TransactionID: p.GetTransactionId(), Payment: rawProto(p)})
		}
		fmt.Fprintf(e.stdout, "SUCCEEDED: paid %s.\n", paymentSummary(p))
		fmt.Fprintf(e.stdout, "Transaction id: %s\n", shown(p.GetTransactionId()))
		return nil
	case queued && errors.As(err, &qe):
		if f.json {
			_ = printJSON(e.stdout, outcomeJSON{Status: "QUEUED", TransactionID: qe.TransactionID, Error: queuedErrorJSON(qe)})
			printQueued(e.stderr, s, req, qe) // stdout holds the JSON alone
		} else {
			printQueued(e.stdout, s, req, qe)
		}
		return &exitError{code: exitQueued}
	case errors.Is(err, outbox.ErrTransactionIDReused):
		// Refused locally: the gateway was not contacted.
		used := strings.TrimPrefix(strings.TrimPrefix(err.Error(), outbox.ErrTransactionIDReused.Error()+": "), req.TransactionID+" ")
		return &usageError{reason: client.ReasonIdempotencyKeyReused, msg: fmt.Sprintf(
			"--transaction-id %s was already used for a different payment (it %s); nothing was sent: leave --transaction-id out to get a new one",
			req.TransactionID, used)}
	}
	var ce *client.Error
	if !errors.As(err, &ce) {
		return s.fail(e, err) // invalid request (exit 2) or a local failure
	}
	status := "FAILED"
	if client.IsDeclined(err) {
		status = "DECLINED"
	}
	w := e.stdout
	if f.json {
		_ = printJSON(e.stdout, outcomeJSON{Status: status, TransactionID: req.TransactionID, Payment: rawProto(p), Error: newErrorJSON(err)})
		w = e.stderr // stdout holds the JSON alone
	}
	switch {
	case status == "DECLINED":
		reason := humanReason(ce.Reason)
		if reason != "" {
			fmt.Fprintf(w, "DECLINED: %s. No money moved.\n", reason)
		} else {
			fmt.Fprintln(w, "DECLINED. No money moved.")
		}
		if msg := ce.Message; msg != "" && msg != reason {
			fmt.Fprintf(w, "%s.\n", capitalize(shown(msg)))
		}
	case ce.Reason == client.ReasonIdempotencyKeyReused:
		fmt.Fprintf(w, "FAILED: %s.\n", idReused(req.TransactionID, "payment"))
	default:
		fmt.Fprintf(w, "FAILED: %s.\n", shown(s.explain(err)))
	}
	fmt.Fprintf(w, "Transaction id: %s\n", req.TransactionID)
	return &exitError{code: exitFailure}
}

// printQueued tells the user plainly that the payment is saved, not sent,
// why, and how to send it.
func printQueued(w io.Writer, s *session, req client.PaymentRequest, qe *outbox.QueuedError) {
	what := fmt.Sprintf("%s to %s", shownAmount(req.Amount, req.Currency), req.Payee)
	fmt.Fprintf(w, "QUEUED: %s is saved in the outbox but not sent yet: %s.\n", what, shown(queuedWhy(s, qe)))
	fmt.Fprintf(w, "Transaction id: %s\n", qe.TransactionID)
	var ce *client.Error
	if errors.As(qe.Cause, &ce) && ce.Code == connect.CodeUnauthenticated {
		fmt.Fprintf(w, "Run `remit login %s`, then `remit outbox flush` to send it.", s.profile.ClientID)
	} else {
		fmt.Fprint(w, "Send it with `remit outbox flush` once the gateway is reachable (or keep `remit outbox flush --watch` running).")
	}
	fmt.Fprintln(w, " It is sent with the same transaction id, so it is paid exactly once: do not pay again.")
}

// queuedWhy says in a few words why a payment is still queued.
func queuedWhy(s *session, qe *outbox.QueuedError) string {
	cause := qe.Cause
	var why string
	var ce *client.Error
	switch {
	case !errors.As(cause, &ce):
		why = cause.Error()
	case ce.Code == connect.CodeUnauthenticated:
		why = "your session expired"
	case ce.Code == connect.CodeCanceled:
		why = "interrupted before the gateway answered"
	case ce.Reason == "":
		why = notFromGateway(s.gatewayURL(), ce)
	default:
		why = fmt.Sprintf("the gateway answered that it cannot decide now (%s)", ce.Error())
	}
	// Outbox.Pay's cause when an older queued payment is stuck first.
	if strings.Contains(cause.Error(), "waiting behind older queued payment") {
		why = "it waits behind an older queued payment, and " + why
	}
	return why
}

// notFromGateway says why an answer without Remit's ErrorInfo left a
// payment queued: nothing reached a gateway, or something that is not one
// answered.
func notFromGateway(gatewayURL string, ce *client.Error) string {
	var cve *tls.CertificateVerificationError
	var uae x509.UnknownAuthorityError
	switch {
	case errors.As(ce, &cve) || errors.As(ce, &uae) || strings.Contains(ce.Message, "x509:"):
		return fmt.Sprintf("the gateway at %s presented a certificate your CA does not trust (%s): pass --ca FILE or set $%s to the network's ca.pem",
			gatewayURL, ce.Message, envCA)
	case ce.Code == connect.CodeUnavailable || ce.Code == connect.CodeDeadlineExceeded || ce.Code == connect.CodeUnknown:
		return fmt.Sprintf("the gateway at %s could not be reached (%s)", gatewayURL, ce.Message)
	}
	return fmt.Sprintf("the server at %s did not answer as a Remit gateway (%s: %s), so no gateway has seen the payment: check --gateway or $%s",
		gatewayURL, ce.Code, ce.Message, envGateway)
}

// outcomeJSON is --json's report of a payment sent through the outbox.
type outcomeJSON struct {
	// Status is SUCCEEDED, DECLINED (no money moved), FAILED (another final
	// error) or QUEUED (still in the outbox, to be flushed).
	Status        string          `json:"status"`
	TransactionID string          `json:"transactionId"`
	Payment       json.RawMessage `json:"payment,omitempty"`
	Error         *errorJSON      `json:"error,omitempty"`
}

// queuedErrorJSON is why a payment is still queued, for --json: the code
// of the underlying error, and the whole story as the message.
func queuedErrorJSON(qe *outbox.QueuedError) *errorJSON {
	j := newErrorJSON(qe.Cause)
	j.Message, j.TransactionID = qe.Cause.Error(), qe.TransactionID
	return j
}

// newOutcomeJSON reports a final outcome from the outbox.
func newOutcomeJSON(out outbox.Outcome) outcomeJSON {
	j := outcomeJSON{Status: string(out.Status), TransactionID: out.TransactionID, Payment: rawProto(out.Payment)}
	if err := out.Err(); err != nil {
		j.Error = newErrorJSON(err)
		if client.IsDeclined(err) {
			j.Status = "DECLINED"
		}
	}
	return j
}

// printOlderOutcome reports an outcome reached while sending older queued
// payments (to stderr with --json, so stdout stays one JSON document).
func printOlderOutcome(e *env, asJSON bool, out outbox.Outcome) {
	w := e.stdout
	if asJSON {
		w = e.stderr
	}
	fmt.Fprintf(w, "Sent older queued payment %s\n", describeOutcome(out))
}

// describeOutcome is "<id>: SUCCEEDED 12.50 usd to bank-b/bob (2 attempts)"
// or "<id>: DECLINED 12.50 usd to bank-b/bob: insufficient funds: ...".
func describeOutcome(out outbox.Outcome) string {
	s := fmt.Sprintf("%s: %s %s to %s", out.TransactionID, newOutcomeJSON(out).Status,
		shownAmount(out.Amount, out.Currency), out.Payee)
	if err := out.Err(); err != nil {
		if ce, ok := errors.AsType[*client.Error](err); ok {
			s += ": " + failureLabel(ce)
			if msg := ce.Message; msg != "" {
				s += ": " + shown(msg)
			}
		}
	}
	return s + fmt.Sprintf(" (%s)", plural(out.Attempts, "attempt"))
}

// paymentSummary is "12.50 usd from bank-a/alice to bank-b/bob".
func paymentSummary(p *gatewayv1.Payment) string {
	return fmt.Sprintf("%s from %s to %s", shownAmount(p.GetAmount(), p.GetCurrency()),
		shown(client.AccountRefFromProto(p.GetPayer())), shown(client.AccountRefFromProto(p.GetPayee())))
}

// shown is v as text safe to print: every string a command prints that
// came from a server or another user (a description, a client id, an
// account, a bank's name or URL, an error message) goes through it, so
// that none can clear the screen, colour it, fake a line or reorder what
// is read (printable.String). runEnv also wraps stdout in
// printable.Writer, a backstop for escape bytes in anything else.
func shown(v any) string { return printable.String(fmt.Sprint(v)) }

// shownAmount is client.FormatAmount through shown: the currency comes
// from the gateway.
func shownAmount(minor int64, currency string) string {
	return shown(client.FormatAmount(minor, currency))
}

// capitalize upper-cases the first letter of an ASCII sentence.
func capitalize(s string) string {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}
