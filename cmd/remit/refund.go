package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/remitpay/remit/client"
	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
)

// refundFlags are the flags of `remit payments refund`.
type refundFlags struct {
	amount      string
	reason      string
	description string
	refundID    string
}

func addRefundFlags(fs *flag.FlagSet) *refundFlags {
	r := &refundFlags{}
	fs.StringVar(&r.amount, "amount", "", "refund: the `AMOUNT` to send back, a decimal in the payment's currency (required)")
	fs.StringVar(&r.reason, "reason", "", "refund: why, a `REASON`: duplicate, fraudulent or requested_by_customer (default: none)")
	fs.StringVar(&r.description, "description", "", "refund: free `TEXT` shown to both sides (at most 200 characters)")
	fs.StringVar(&r.refundID, "refund-id", "", "refund: the refund's idempotency key, a `UUID` (default: a new one)")
	return r
}

// onlyFor refuses the refund flags for another payments subcommand.
func (r *refundFlags) onlyFor(fs *flag.FlagSet, sub string) error {
	if sub == "refund" {
		return nil
	}
	set := false
	fs.Visit(func(fl *flag.Flag) {
		set = set || fl.Name == "amount" || fl.Name == "reason" || fl.Name == "description" || fl.Name == "refund-id"
	})
	if set {
		return usagef("--amount, --reason, --description and --refund-id only apply to refund")
	}
	return nil
}

// request checks the flags into a normalized refund of transactionID with
// a refund id; the amount is converted once the payment's currency is
// known.
func (r *refundFlags) request(transactionID string) (client.RefundRequest, error) {
	if r.amount == "" {
		return client.RefundRequest{}, usagef("--amount is required, e.g. --amount 5.00")
	}
	reason, err := client.ParseRefundReason(r.reason)
	if err != nil {
		return client.RefundRequest{}, usagef("--reason: %s", invalidMessage(err))
	}
	// Amount 1 stands in for the amount until the currency is known.
	req, err := client.RefundRequest{RefundID: r.refundID, TransactionID: transactionID, Amount: 1,
		Reason: reason, Description: r.description}.Normalize()
	if err != nil {
		return client.RefundRequest{}, usagef("%s", invalidMessage(err))
	}
	req.Amount = 0
	return req, nil
}

// runRefund refunds amount of the payment req names, in its currency.
func runRefund(ctx context.Context, e *env, s *session, req client.RefundRequest, amount string) error {
	orig, err := s.client.Payment(ctx, req.TransactionID)
	if err != nil {
		return s.fail(e, err)
	}
	if req.Amount, err = client.ParseAmount(amount, orig.GetCurrency()); err != nil {
		return usagef("--amount: %s", invalidMessage(err))
	}
	res, err := s.client.Refund(ctx, req)
	if err != nil {
		return refundError(e, s, req, err)
	}
	if s.flags.json {
		return printProto(e.stdout, res)
	}
	r, p := res.GetRefund(), res.GetPayment()
	fmt.Fprintf(e.stdout, "SUCCEEDED: refunded %s (refund of %s).\n", paymentSummary(r), shown(r.GetRefundedTransactionId()))
	if p != nil {
		fmt.Fprintf(e.stdout, "Refunded so far: %s of %s.\n", shownAmount(p.GetAmountRefunded(), p.GetCurrency()),
			shownAmount(p.GetAmount(), p.GetCurrency()))
	}
	fmt.Fprintf(e.stdout, "Refund id: %s\n", shown(r.GetTransactionId()))
	return nil
}

// refundError reports a refund that did not succeed, with its refund id;
// when the outcome is unknown, it says how to retry it safely.
func refundError(e *env, s *session, req client.RefundRequest, err error) error {
	var ce *client.Error
	if !errors.As(err, &ce) {
		return s.fail(e, err)
	}
	explained := s.fail(e, err) // with --json: the error document on stdout
	if _, ok := errors.AsType[*usageError](explained); ok {
		return explained
	}
	w := e.stdout
	if s.flags.json {
		w = e.stderr // stdout holds the JSON alone
	}
	_, isFailure := client.FailureReasonOf(err)
	switch {
	case client.IsDeclined(err) && isFailure:
		fmt.Fprintf(w, "DECLINED: %s. No money moved.\n", humanReason(ce.Reason))
		if msg := ce.Message; msg != "" && msg != humanReason(ce.Reason) {
			fmt.Fprintf(w, "%s.\n", capitalize(shown(msg)))
		}
	case client.IsDeclined(err):
		// REFUND_EXCEEDS_PAYMENT, PAYMENT_NOT_REFUNDABLE: refused as asked.
		fmt.Fprintf(w, "REFUSED: %s: %s. No money moved.\n", humanReason(ce.Reason), shown(ce.Message))
	case ce.Reason == client.ReasonIdempotencyKeyReused:
		fmt.Fprintf(w, "FAILED: refund id %s was already used for a different refund or payment: leave --refund-id out to get a new one.\n", req.RefundID)
	case ce.Retryable:
		fmt.Fprintf(w, "FAILED: %s.\nThe refund may or may not have been made: run the same command again with --refund-id %s to find out; it is made at most once.\n",
			shown(explained), req.RefundID)
	default:
		fmt.Fprintf(w, "FAILED: %s.\n", shown(explained))
	}
	fmt.Fprintf(w, "Refund id: %s\n", req.RefundID)
	return &exitError{code: exitFailure}
}

// refundNote is what list and watch add to a payment about refunds:
// "refund of <id>" on a refund, "<amount> refunded" on a payment with
// refunds, else "".
func refundNote(p *gatewayv1.Payment) string {
	switch {
	case p.GetRefundedTransactionId() != "":
		return "refund of " + shown(p.GetRefundedTransactionId())
	case p.GetAmountRefunded() > 0:
		return shownAmount(p.GetAmountRefunded(), p.GetCurrency()) + " refunded"
	}
	return ""
}

// printRefunds adds a payment's refund lines to `payments get`.
func printRefunds(tw *tabwriter.Writer, p *gatewayv1.Payment) {
	if id := p.GetRefundedTransactionId(); id != "" {
		fmt.Fprintf(tw, "Refund of\t%s\n", shown(id))
		if r := client.RefundReasonWords(p.GetRefundReason()); r != "" {
			fmt.Fprintf(tw, "Reason\t%s\n", r)
		}
		return
	}
	if len(p.GetRefunds()) == 0 && p.GetAmountRefunded() == 0 {
		return
	}
	fmt.Fprintf(tw, "Refunded\t%s of %s\n", shownAmount(p.GetAmountRefunded(), p.GetCurrency()), shownAmount(p.GetAmount(), p.GetCurrency()))
	for i, r := range p.GetRefunds() {
		label := ""
		if i == 0 {
			label = "Refunds"
		}
		line := fmt.Sprintf("%s  %s  %s", shown(r.GetTransactionId()), shownAmount(r.GetAmount(), p.GetCurrency()),
			strings.TrimPrefix(r.GetStatus().String(), "PAYMENT_STATUS_"))
		if words := client.RefundReasonWords(r.GetReason()); words != "" {
			line += " (" + words + ")"
		}
		fmt.Fprintf(tw, "%s\t%s  %s\n", label, line, formatTime(r.GetCreateTime().AsTime()))
	}
}
