package main

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/remitpay/remit/client"
	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
)

var paymentsCmd = &command{
	name:    "payments",
	summary: "list, show, follow, acknowledge and refund payments",
	usage: `remit payments [list] [--limit N] [--account BANK/ID] [--json]
       remit payments get TRANSACTION_ID [--json]
       remit payments watch [--after EVENT_ID] [--json]
       remit payments ack TRANSACTION_ID [--json]
       remit payments refund TRANSACTION_ID --amount AMOUNT [--reason REASON] [--description TEXT] [--refund-id UUID] [--json]`,
	help: `
Payments reads the payments you sent or received (any account's, for
admins and auditors).

  list     the newest payments first, --limit of them (the default
           subcommand). Declined payments are listed too: no money moved.
  get      one payment, in full.
  watch    follows payment events as they happen until Ctrl-C: first the
           events after --after EVENT_ID (0, the default, replays every event
           kept), then live ones. Each line starts with its event id; pass
           the last one to --after to resume where you stopped. A broken
           connection is resumed automatically without losing or repeating
           an event.
  ack      confirms, as the payee, that you saw a payment's credit. Doing it
           twice is harmless.
  refund   sends AMOUNT of a payment you received back to its payer
           (admins may refund any payment), through the same two-phase
           commit as a payment. Partial refunds add up to at most the
           payment's amount. AMOUNT is a decimal in the payment's currency,
           as for 'remit pay'; --reason is duplicate, fraudulent or
           requested_by_customer. It prints the refund id: the refund is
           idempotent by it, so if the command fails without an answer,
           running it again with --refund-id set to that id refunds at most
           once. A refund you cannot fund is declined (insufficient funds).
           Refunds are not queued in the outbox.

A refund is itself a payment, listed to both sides: list and get show
"refund of <id>" on a refund and the refunded amount on the payment it
refunds.

With --json, list prints a ListPaymentsResponse, get and ack a Payment,
watch one WatchPaymentsResponse per line, and refund a
RefundPaymentResponse (protojson).

Exit status: 0 done; 1 failed, or a refund declined or refused; 2 usage
error.`,
	examples: `
remit payments
remit payments list --limit 5
remit payments get 0b6f4f4e-8f1c-4a57-9d2e-3c5a7e9b1d20
remit payments watch
remit payments watch --after 42 --json | jq -c .payment
remit payments ack 0b6f4f4e-8f1c-4a57-9d2e-3c5a7e9b1d20
remit payments refund 0b6f4f4e-8f1c-4a57-9d2e-3c5a7e9b1d20 --amount 5 --reason requested_by_customer
remit payments refund 0b6f4f4e-8f1c-4a57-9d2e-3c5a7e9b1d20 --amount 5 --refund-id 9d4c2b1a-7e6f-4a5b-8c9d-0e1f2a3b4c5d`,
	flags: func(fs *flag.FlagSet) runFunc {
		f := addClientFlags(fs)
		limit := fs.Int("limit", 20, "list: show at most `N` payments")
		account := fs.String("account", "", "list: only payments involving the account `BANK/ID` (staff; default: yours, or all for staff)")
		after := fs.Int64("after", 0, "watch: replay events after `EVENT_ID` first (0: every event kept)")
		rf := addRefundFlags(fs)
		return func(ctx context.Context, e *env, args []string) error {
			sub := "list"
			if len(args) > 0 {
				sub, args = args[0], args[1:]
			}
			set := map[string]bool{}
			fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
			var id string
			switch sub {
			case "list":
				if err := noArgs(args); err != nil {
					return err
				}
				if *limit < 1 {
					return usagef("--limit %d: want 1 or more", *limit)
				}
			case "get", "ack", "refund":
				switch {
				case len(args) == 0:
					return usagef("missing TRANSACTION_ID: remit payments %s TRANSACTION_ID", sub)
				case len(args) > 1:
					return usagef("unexpected argument %q", args[1])
				}
				id = args[0]
			case "watch":
				if err := noArgs(args); err != nil {
					return err
				}
				if *after < 0 {
					return usagef("--after %d: want 0 or more", *after)
				}
			default:
				return usagef("unknown subcommand %q: want list, get, watch, ack or refund", sub)
			}
			if err := rf.onlyFor(fs, sub); err != nil {
				return err
			}
			if (set["limit"] || set["account"]) && sub != "list" {
				return usagef("--limit and --account only apply to list")
			}
			if set["after"] && sub != "watch" {
				return usagef("--after only applies to watch")
			}
			var refund client.RefundRequest
			if sub == "refund" {
				var err error
				if refund, err = rf.request(id); err != nil {
					return err
				}
			}
			var filter client.PaymentFilter
			if *account != "" {
				a, err := client.ParseAccountRef(*account)
				if err != nil {
					return usagef("--account: %s", invalidMessage(err))
				}
				filter.Account = a
			}

			ctx, stop := signalContext(ctx)
			defer stop()
			s, err := openSession(f)
			if err != nil {
				return err
			}
			defer s.Close()
			switch sub {
			case "list":
				return listPayments(ctx, e, s, filter, *limit)
			case "get":
				p, err := s.client.Payment(ctx, id)
				if err != nil {
					return s.fail(e, err)
				}
				if f.json {
					return printProto(e.stdout, p)
				}
				printPayment(e, p)
				return nil
			case "refund":
				return runRefund(ctx, e, s, refund, rf.amount)
			case "ack":
				p, err := s.client.Acknowledge(ctx, id)
				if err != nil {
					return s.fail(e, err)
				}
				if f.json {
					return printProto(e.stdout, p)
				}
				fmt.Fprintf(e.stdout, "Acknowledged %s: %s, at %s.\n", shown(p.GetTransactionId()), paymentSummary(p),
					formatTime(p.GetAcknowledgeTime().AsTime()))
				return nil
			default:
				return watchPayments(ctx, e, s, *after)
			}
		}
	},
}

func listPayments(ctx context.Context, e *env, s *session, filter client.PaymentFilter, limit int) error {
	filter.PageSize = int32(max(1, min(limit, 100)))
	var list []*gatewayv1.Payment
	for p, err := range s.client.Payments(ctx, filter) {
		if err != nil {
			return s.fail(e, err)
		}
		list = append(list, p)
		if len(list) == limit {
			break
		}
	}
	if s.flags.json {
		return printProto(e.stdout, &gatewayv1.ListPaymentsResponse{Payments: list})
	}
	if len(list) == 0 {
		fmt.Fprintln(e.stdout, "No payments yet.")
		return nil
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CREATED\tTRANSACTION\tFROM\tTO\tAMOUNT\tSTATUS\tACKNOWLEDGED")
	for _, p := range list {
		ack := "no"
		if p.GetAcknowledgeTime() != nil {
			ack = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", formatTime(p.GetCreateTime().AsTime()), shown(p.GetTransactionId()),
			shown(client.AccountRefFromProto(p.GetPayer())), shown(client.AccountRefFromProto(p.GetPayee())),
			shownAmount(p.GetAmount(), p.GetCurrency()), statusWithRefunds(p), ack)
	}
	return tw.Flush()
}

// paymentStatus is "SUCCEEDED", "PROCESSING" or "FAILED (insufficient funds)".
func paymentStatus(p *gatewayv1.Payment) string {
	st := strings.TrimPrefix(p.GetStatus().String(), "PAYMENT_STATUS_")
	if p.GetStatus() == gatewayv1.PaymentStatus_PAYMENT_STATUS_FAILED {
		st += " (" + client.FailureWords(p.GetFailureReason()) + ")"
	}
	return st
}

// statusWithRefunds is paymentStatus with refundNote after it:
// "SUCCEEDED, 4.00 usd refunded" or "SUCCEEDED, refund of <id>".
func statusWithRefunds(p *gatewayv1.Payment) string {
	if note := refundNote(p); note != "" {
		return paymentStatus(p) + ", " + note
	}
	return paymentStatus(p)
}

func printPayment(e *env, p *gatewayv1.Payment) {
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "Transaction\t%s\n", shown(p.GetTransactionId()))
	fmt.Fprintf(tw, "Status\t%s\n", paymentStatus(p))
	fmt.Fprintf(tw, "From\t%s (%s)\n", shown(client.AccountRefFromProto(p.GetPayer())), shown(p.GetPayerClientId()))
	fmt.Fprintf(tw, "To\t%s\n", shown(client.AccountRefFromProto(p.GetPayee())))
	fmt.Fprintf(tw, "Amount\t%s\n", shownAmount(p.GetAmount(), p.GetCurrency()))
	if p.GetDescription() != "" {
		fmt.Fprintf(tw, "Description\t%s\n", shown(p.GetDescription()))
	}
	printRefunds(tw, p)
	fmt.Fprintf(tw, "Created\t%s\n", formatTime(p.GetCreateTime().AsTime()))
	if p.GetCompleteTime() != nil {
		fmt.Fprintf(tw, "Completed\t%s\n", formatTime(p.GetCompleteTime().AsTime()))
	}
	if p.GetAcknowledgeTime() != nil {
		fmt.Fprintf(tw, "Acknowledged\t%s\n", formatTime(p.GetAcknowledgeTime().AsTime()))
	} else {
		fmt.Fprintf(tw, "Acknowledged\tno\n")
	}
	tw.Flush()
}

// watchPayments prints events until Ctrl-C (exit 0) or a final error.
func watchPayments(ctx context.Context, e *env, s *session, after int64) error {
	who := s.profile.Account
	if who == "" {
		who = "every account"
	}
	fmt.Fprintf(e.stderr, "Watching the payments of %s (events after %d); Ctrl-C to stop.\n", shown(who), after)
	for ev, err := range s.client.Watch(ctx, after) {
		if err != nil {
			return s.fail(e, err)
		}
		if s.flags.json {
			if err := printProto(e.stdout, ev); err != nil {
				return err
			}
			continue
		}
		p := ev.GetPayment()
		line := fmt.Sprintf("#%d  %s  %-12s  %s  %s", ev.GetEventId(), formatTime(ev.GetEventTime().AsTime()),
			strings.TrimPrefix(ev.GetType().String(), "PAYMENT_EVENT_TYPE_"), p.GetTransactionId(), paymentSummary(p))
		if ev.GetType() == gatewayv1.PaymentEventType_PAYMENT_EVENT_TYPE_FAILED {
			line += " (" + client.FailureWords(p.GetFailureReason()) + ")"
		}
		if id := p.GetRefundedTransactionId(); id != "" {
			line += " (refund of " + shown(id) + ")"
		}
		if d := p.GetDescription(); d != "" {
			line += fmt.Sprintf("  %q", d)
		}
		if _, err := fmt.Fprintln(e.stdout, line); err != nil {
			return err // stdout closed (e.g. piped into head): stop
		}
	}
	return nil // Ctrl-C
}
