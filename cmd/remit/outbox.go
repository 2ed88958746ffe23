package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"text/tabwriter"
	"time"

	"connectrpc.com/connect"

	"github.com/remitpay/remit/client"
	"github.com/remitpay/remit/client/outbox"
)

// flushWatchEvery is how often `remit outbox flush --watch` looks for
// queued payments, and its first backoff step while the gateway is down
// (the outbox doubles it up to 30s).
const flushWatchEvery = 2 * time.Second

// outboxFile is the outbox's database in the state directory (see the
// package documentation of client/outbox).
const outboxFile = "outbox.db"

var outboxCmd = &command{
	name:    "outbox",
	summary: "list payments queued while offline, and send them",
	usage: `remit outbox [--history N] [--json]
       remit outbox flush [--watch] [--json]`,
	help: `
The outbox keeps every payment from 'remit pay' in your state directory
(outbox.db) from before it is first sent until the gateway gives it a
final outcome: SUCCEEDED, or DECLINED/FAILED (no money moved). Payments
the gateway could not be reached for stay queued; outcomes move to a local
history.

  (none)   lists the queued payments, oldest first, with their age, number
           of attempts and last error, and the --history N most recent
           outcomes (0: none; a negative N: all).
  flush    sends your queued payments, oldest first, stopping at the first
           one that cannot be finished so a later payment never overtakes
           an earlier one. With --watch it keeps running until Ctrl-C: it
           flushes as soon as the gateway is reachable, backing off (up to
           30s) while it is not, and sends payments queued meanwhile.

Exactly once: each payment is sent with the transaction id it was queued
with, every time. If an answer is lost (a timeout, a crash, kill -9), the
next flush sends the same id again and the gateway returns the outcome it
stored instead of moving money twice. Only one flush runs at a time (a lock
on outbox.lock); a second one says so and leaves the payments to it.

Payments are sent only by the client and to the gateway they were queued
under: after logging in as someone else they are listed but not sent.

Gateway URLs are compared normalized (https://Host:443/ is https://host),
but different hosts are different gateways: payments of yours queued for
another URL (https://localhost:8443 when you are logged in to
https://127.0.0.1:8443) are listed separately, and flush tells you the
exact 'remit outbox flush --gateway URL' that sends them.

Exit status of flush: 0 every queued payment succeeded (or none was
queued); 1 a payment was declined or failed and none is left queued, or
your session expired; 3 payments of yours are still queued, for this
gateway or another URL (the gateway is unreachable, answered that it
cannot decide now, or another flush is running): try again later, never
pay them again.`,
	examples: `
remit outbox
remit outbox --history 20
remit outbox flush
remit outbox flush --watch
remit outbox --json | jq '.queued | length'`,
	flags: func(fs *flag.FlagSet) runFunc {
		f := addClientFlags(fs)
		history := fs.Int("history", 5, "list: show the `N` most recent outcomes (0: none; negative: all)")
		watch := fs.Bool("watch", false, "flush: keep running and flush whenever the gateway is reachable, until Ctrl-C")
		return func(ctx context.Context, e *env, args []string) error {
			sub := "list"
			if len(args) > 0 {
				sub, args = args[0], args[1:]
			}
			if err := noArgs(args); err != nil {
				return err
			}
			set := map[string]bool{}
			fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
			switch {
			case sub != "list" && sub != "flush":
				return usagef("unknown subcommand %q: want flush, or nothing to list", sub)
			case sub == "list" && set["watch"]:
				return usagef("--watch only applies to flush: remit outbox flush --watch")
			case sub == "flush" && set["history"]:
				return usagef("--history only applies to the list: remit outbox --history N")
			}
			ctx, stop := signalContext(ctx)
			defer stop()
			if sub == "list" {
				return listOutbox(ctx, e, f, *history)
			}
			return flushOutbox(ctx, e, f, *watch)
		}
	},
}

// queuedJSON is a queued payment for --json.
type queuedJSON struct {
	TransactionID string `json:"transactionId"`
	ClientID      string `json:"clientId"`
	GatewayURL    string `json:"gatewayUrl"`
	Payee         string `json:"payee"`
	Amount        string `json:"amount"`
	Currency      string `json:"currency"`
	Description   string `json:"description,omitempty"`
	CreateTime    string `json:"createTime"`
	AgeSeconds    int64  `json:"ageSeconds"`
	Attempts      int    `json:"attempts"`
	LastError     string `json:"lastError,omitempty"`
	LastAttempt   string `json:"lastAttemptTime,omitempty"`
	// Mine is false for payments queued under another login, which a
	// flush by this one does not send.
	Mine bool `json:"mine"`
}

// historyJSON is a final outcome for --json.
type historyJSON struct {
	outcomeJSON

	Payee        string `json:"payee"`
	Amount       string `json:"amount"`
	Currency     string `json:"currency"`
	Attempts     int    `json:"attempts"`
	CompleteTime string `json:"completeTime"`
}

func listOutbox(ctx context.Context, e *env, f *clientFlags, history int) error {
	dir, err := stateDir()
	if err != nil {
		return err
	}
	// Listing needs no session: it reads local files only. The profile,
	// if any, tells which payments a flush would send.
	var clientID, gatewayURL string
	if p, err := client.LoadProfile(dir); err == nil {
		clientID = p.ClientID
		gatewayURL = override(f.gateway, envGateway, p.GatewayURL)
		if c, err := client.New(client.Config{GatewayURL: gatewayURL}); err == nil {
			gatewayURL = c.GatewayURL()
			c.Close()
		}
	}
	if _, err := os.Stat(filepath.Join(dir, outboxFile)); errors.Is(err, fs.ErrNotExist) {
		// Nothing was ever queued here; do not create an outbox to say so.
		if f.json {
			return printJSON(e.stdout, map[string][]any{"queued": {}, "history": {}})
		}
		fmt.Fprintln(e.stdout, "No payment is queued.")
		return nil
	}
	ob, err := outbox.Open(ctx, dir, outbox.Options{ClientID: clientID, GatewayURL: gatewayURL})
	if err != nil {
		return err
	}
	defer ob.Close() //nolint:errcheck // every write to the outbox is a committed transaction by now; Close only releases the handle
	items, err := ob.List(ctx)
	if err != nil {
		return err
	}
	var outs []outbox.Outcome
	if history != 0 {
		if outs, err = ob.History(ctx, max(history, 0)); err != nil {
			return err
		}
	}
	mine := func(it outbox.Item) bool { return it.ClientID == clientID && it.GatewayURL == gatewayURL }
	mineElsewhere := func(it outbox.Item) bool {
		return clientID != "" && it.ClientID == clientID && it.GatewayURL != gatewayURL
	}

	if f.json {
		v := struct {
			Queued  []queuedJSON  `json:"queued"`
			History []historyJSON `json:"history"`
		}{Queued: []queuedJSON{}, History: []historyJSON{}}
		for _, it := range items {
			q := queuedJSON{
				TransactionID: it.TransactionID, ClientID: it.ClientID, GatewayURL: it.GatewayURL,
				Payee: it.Payee.String(), Amount: strconv.FormatInt(it.Amount, 10), Currency: it.Currency,
				Description: it.Description, CreateTime: it.Created.UTC().Format(time.RFC3339Nano),
				AgeSeconds: int64(it.Age.Seconds()), Attempts: it.Attempts, LastError: it.LastError, Mine: mine(it),
			}
			if !it.LastAttempt.IsZero() {
				q.LastAttempt = it.LastAttempt.UTC().Format(time.RFC3339Nano)
			}
			v.Queued = append(v.Queued, q)
		}
		for _, out := range outs {
			v.History = append(v.History, historyJSON{
				outcomeJSON: newOutcomeJSON(out), Payee: out.Payee.String(),
				Amount: strconv.FormatInt(out.Amount, 10), Currency: out.Currency, Attempts: out.Attempts,
				CompleteTime: out.Completed.UTC().Format(time.RFC3339Nano),
			})
		}
		return printJSON(e.stdout, v)
	}

	var own, elsewhere, others []outbox.Item
	for _, it := range items {
		switch {
		case mine(it):
			own = append(own, it)
		case mineElsewhere(it):
			elsewhere = append(elsewhere, it)
		default:
			others = append(others, it)
		}
	}
	switch {
	case len(items) == 0:
		fmt.Fprintln(e.stdout, "No payment is queued.")
	case len(own) > 0:
		fmt.Fprintf(e.stdout, "Queued, oldest first (%d); `remit outbox flush` sends them:\n", len(own))
		printItems(e, own, false)
	}
	if len(elsewhere) > 0 {
		if len(own) > 0 {
			fmt.Fprintln(e.stdout)
		}
		fmt.Fprintf(e.stdout, "Yours, queued for another gateway URL than %s (%d); `remit outbox flush --gateway URL` sends them:\n",
			gatewayURL, len(elsewhere))
		printItems(e, elsewhere, true)
	}
	if len(others) > 0 {
		if len(own)+len(elsewhere) > 0 {
			fmt.Fprintln(e.stdout)
		}
		fmt.Fprintf(e.stdout, "Queued under other logins (%d); they are sent after `remit login` as their client, to their gateway:\n", len(others))
		printItems(e, others, true)
	}
	if len(outs) > 0 {
		fmt.Fprintf(e.stdout, "\nRecent outcomes, newest first:\n")
		tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "COMPLETED\tTRANSACTION\tTO\tAMOUNT\tSTATUS\tATTEMPTS")
		for _, out := range outs {
			st := newOutcomeJSON(out).Status
			if err := out.Err(); err != nil {
				if ce, ok := errors.AsType[*client.Error](err); ok {
					st += " (" + failureLabel(ce) + ")"
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\n", formatTime(out.Completed), out.TransactionID, out.Payee,
				shownAmount(out.Amount, out.Currency), st, out.Attempts)
		}
		tw.Flush()
	}
	return nil
}

func printItems(e *env, items []outbox.Item, withOwner bool) {
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	header := "TRANSACTION\tTO\tAMOUNT\tAGE\tATTEMPTS\tLAST ERROR"
	if withOwner {
		header = "CLIENT\tGATEWAY\t" + header
	}
	fmt.Fprintln(tw, header)
	for _, it := range items {
		if withOwner {
			fmt.Fprintf(tw, "%s\t%s\t", it.ClientID, it.GatewayURL)
		}
		lastErr := it.LastError
		if lastErr == "" {
			lastErr = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", it.TransactionID, it.Payee,
			shownAmount(it.Amount, it.Currency), formatAge(it.Age), it.Attempts, lastErr)
	}
	tw.Flush()
}

func flushOutbox(ctx context.Context, e *env, f *clientFlags, watch bool) error {
	s, err := openSession(f)
	if err != nil {
		return err
	}
	defer s.Close()
	ob, err := outbox.Open(ctx, s.dir, outbox.Options{
		ClientID: s.profile.ClientID, GatewayURL: s.gatewayURL(),
		OnOutcome: func(out outbox.Outcome) {
			if f.json {
				if watch {
					_ = printJSON(e.stdout, newOutcomeJSON(out))
				}
				return
			}
			fmt.Fprintf(e.stdout, "Sent %s\n", describeOutcome(out))
		},
	})
	if err != nil {
		return err
	}
	defer ob.Close() //nolint:errcheck // every write to the outbox is a committed transaction by now; Close only releases the handle
	if watch {
		return flushWatch(ctx, e, s, ob)
	}

	rep, err := ob.Flush(ctx, outboxGateway(s.client))
	elsewhere := 0
	for _, n := range rep.Elsewhere {
		elsewhere += n
	}
	failed, conflicts := 0, 0
	for _, out := range rep.Outcomes {
		switch {
		case out.Status == outbox.StatusSucceeded:
		case out.Reason == reasonTransactionIDConflict:
			conflicts++
		default:
			failed++
		}
	}
	var qe *outbox.QueuedError
	var ce *client.Error
	expired := errors.As(err, &qe) && errors.As(qe.Cause, &ce) && ce.Code == connect.CodeUnauthenticated
	if f.json {
		v := struct {
			Outcomes  []outcomeJSON `json:"outcomes"`
			Remaining int           `json:"remaining"`
			// Elsewhere: this client's payments queued for other gateway
			// URLs, which this flush did not send.
			Elsewhere []elsewhereJSON `json:"elsewhere"`
			Error     *errorJSON      `json:"error,omitempty"`
		}{Outcomes: []outcomeJSON{}, Remaining: rep.Remaining, Elsewhere: newElsewhereJSON(rep.Elsewhere)}
		for _, out := range rep.Outcomes {
			v.Outcomes = append(v.Outcomes, newOutcomeJSON(out))
		}
		if err != nil {
			if qe != nil {
				v.Error = queuedErrorJSON(qe)
			} else {
				v.Error = newErrorJSON(err)
			}
		}
		_ = printJSON(e.stdout, v)
	}

	switch {
	case errors.Is(err, outbox.ErrBusy):
		return &exitError{code: exitQueued, err: errors.New("another `remit outbox flush` (or `remit pay`) is sending the queued payments right now; they stay queued and it sends them: check with `remit outbox`")}
	case expired:
		return &exitError{code: exitFailure, err: fmt.Errorf("%s still queued: %w, then `remit outbox flush`",
			plural(rep.Remaining, "payment"), sessionExpired(s.profile.ClientID))}
	case err != nil && qe == nil:
		return err // a local failure (the database)
	}
	if !f.json {
		switch {
		case len(rep.Outcomes) == 0 && rep.Remaining == 0 && elsewhere == 0:
			fmt.Fprintln(e.stdout, "Nothing to send: no payment of yours is queued.")
		case rep.Remaining == 0 && elsewhere == 0:
			fmt.Fprintln(e.stdout, "The outbox is empty: every queued payment has its final outcome.")
		case rep.Remaining == 0 && len(rep.Outcomes) > 0:
			fmt.Fprintf(e.stdout, "Every payment queued for %s has its final outcome.\n", s.gatewayURL())
		case rep.Remaining > 0:
			fmt.Fprintf(e.stdout, "%s still queued: %s.\n", plural(rep.Remaining, "payment"), queuedWhy(s, qe))
			fmt.Fprintln(e.stdout, "Run `remit outbox flush` again later, or keep `remit outbox flush --watch` running. They keep their transaction ids: nothing is paid twice.")
		}
		printElsewhere(e.stdout, s, rep.Elsewhere)
	}
	var declined error
	if failed > 0 {
		declined = fmt.Errorf("%s declined or failed (no money moved for them): see above", plural(failed, "payment"))
	}
	if conflicts > 0 {
		// Not a decline: a bank holds the id for a different transaction,
		// so the records disagree and whether money moved is for an
		// operator to find out. Paying again with a new id could pay twice.
		declined = errors.Join(declined, fmt.Errorf("%s failed with a transaction id conflict (a bank holds the id for a different transaction): do not pay again until an operator has reconciled the id: see above",
			plural(conflicts, "payment")))
	}
	switch {
	case rep.Remaining > 0 || elsewhere > 0:
		// Exit 1 would invite a script to pay again what is still queued.
		return &exitError{code: exitQueued, err: declined}
	case declined != nil:
		return &exitError{code: exitFailure, err: declined}
	}
	return nil
}

// printElsewhere tells the user about their payments queued for other
// gateway URLs, which a flush to this one does not send, and the exact
// command that does.
func printElsewhere(w io.Writer, s *session, elsewhere map[string]int) {
	for _, u := range slices.Sorted(maps.Keys(elsewhere)) {
		n, them := elsewhere[u], "them"
		if n == 1 {
			them = "it"
		}
		fmt.Fprintf(w, "%s of yours queued for the gateway at %s, not %s; this flush does not send %s: run `remit outbox flush --gateway %s` (with --ca FILE if it has another CA).\n",
			plural(n, "payment"), u, s.gatewayURL(), them, u)
	}
}

// elsewhereJSON is one gateway URL with payments of this client queued
// for it, for --json.
type elsewhereJSON struct {
	GatewayURL string `json:"gatewayUrl"`
	Count      int    `json:"count"`
}

func newElsewhereJSON(m map[string]int) []elsewhereJSON {
	v := []elsewhereJSON{}
	for _, u := range slices.Sorted(maps.Keys(m)) {
		v = append(v, elsewhereJSON{GatewayURL: u, Count: m[u]})
	}
	return v
}

// flushWatch runs FlushWatch until Ctrl-C, telling the user when the
// gateway goes away and comes back, and stopping if the session expires
// (after trying a newer login saved by another terminal).
func flushWatch(ctx context.Context, e *env, s *session, ob *outbox.Outbox) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	status := e.stdout
	if s.flags.json {
		status = e.stderr
	}
	fmt.Fprintf(e.stderr, "Flushing the outbox of %s to %s whenever it is reachable; Ctrl-C to stop.\n", s.profile.ClientID, s.gatewayURL())
	if m, err := ob.Elsewhere(ctx); err == nil {
		printElsewhere(e.stderr, s, m)
	}
	var (
		last    string
		expired bool
	)
	notify := func(rep outbox.FlushReport, err error) {
		var ce *client.Error
		var qe *outbox.QueuedError
		cause := err
		if errors.As(err, &qe) {
			cause = qe.Cause
		}
		if errors.As(cause, &ce) && ce.Code == connect.CodeUnauthenticated {
			// Another terminal may have logged in again since.
			if p, perr := client.LoadProfile(s.dir); perr == nil && p.Token != s.client.Token() &&
				p.ClientID == s.profile.ClientID && !p.Expired(time.Now()) {
				s.client.SetToken(p.Token)
				return
			}
			expired = true
			cancel()
			return
		}
		var msg string
		switch {
		case err == nil && rep.Remaining == 0:
			msg = "The outbox is empty: every queued payment has its final outcome. Waiting for new ones."
		case err == nil:
			msg = plural(rep.Remaining, "payment") + " queued."
		case qe != nil:
			msg = fmt.Sprintf("%s still queued: %s; retrying with backoff.", plural(rep.Remaining, "payment"), queuedWhy(s, qe))
		default:
			hint := transportHint(err, s.gatewayURL())
			if hint == "" {
				hint = err.Error()
			}
			msg = fmt.Sprintf("%s queued; %s; retrying with backoff.", plural(rep.Remaining, "payment"), hint)
		}
		if msg != last || len(rep.Outcomes) > 0 {
			fmt.Fprintln(status, shown(msg))
			last = msg
		}
	}
	err := ob.FlushWatch(ctx, outboxGateway(s.client), flushWatchEvery, notify)
	if expired {
		return sessionExpired(s.profile.ClientID)
	}
	return err
}
