package outbox_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/remitpay/remit/client"
	"github.com/remitpay/remit/client/outbox"
)

// Example is `remit pay --to bank-b/bob --amount 12.50`: the payment is
// saved before it is sent, older queued payments go first, and the user
// learns whether it succeeded, was declined, or is safely queued.
func Example() { //nolint:testableexamples // needs a login and a running gateway: compiled, not run
	ctx := context.Background()
	dir, err := client.StateDir()
	if err != nil {
		panic(err)
	}
	prof, err := client.LoadProfile(dir) // written by `remit login`
	if err != nil {
		fmt.Println(err) // not logged in: run `remit login CLIENT_ID`
		return
	}
	c, err := client.New(prof.Config())
	if err != nil {
		panic(err)
	}
	defer c.Close()
	ob, err := outbox.Open(ctx, dir, outbox.Options{
		ClientID: prof.ClientID, GatewayURL: prof.GatewayURL,
		OnOutcome: func(out outbox.Outcome) { fmt.Println("sent queued payment", out.TransactionID, out.Status) },
	})
	if err != nil {
		panic(err)
	}
	defer func() {
		if err := ob.Close(); err != nil {
			fmt.Println("close the outbox:", err)
		}
	}()

	payee, err := client.ParseAccountRef("bank-b/bob")
	if err != nil {
		panic(err)
	}
	amount, err := client.ParseAmount("12.50", "usd")
	if err != nil {
		panic(err)
	}
	p, queued, err := ob.Pay(ctx, c, client.PaymentRequest{Payee: payee, Amount: amount, Currency: "usd"})
	var qe *outbox.QueuedError
	var ce *client.Error
	switch {
	case err == nil:
		fmt.Println("paid", client.FormatAmount(p.GetAmount(), p.GetCurrency()), "transaction", p.GetTransactionId())
	case queued && errors.As(err, &qe):
		fmt.Println("queued as", qe.TransactionID, "- run `remit outbox flush` later:", qe.Cause)
	case client.IsDeclined(err) && errors.As(err, &ce):
		fmt.Println("declined", ce.Reason, "transaction", ce.TransactionID)
	default:
		fmt.Println("failed:", err)
	}
}
