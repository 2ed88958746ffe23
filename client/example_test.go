package client_test

import (
	"context"
	"fmt"

	"github.com/remitpay/remit/client"
)

// ExampleClient_Login is `remit login alice`: log in once and remember the
// gateway, CA and token for later commands.
func ExampleClient_Login() { //nolint:testableexamples // needs a running gateway: compiled, not run
	ctx := context.Background()
	cfg := client.Config{GatewayURL: "https://127.0.0.1:8443", CAFile: "certs/ca.pem"}
	c, err := client.New(cfg)
	if err != nil {
		panic(err)
	}
	defer c.Close()
	s, err := c.Login(ctx, "alice", "password from a prompt")
	if err != nil {
		fmt.Println("login failed:", err)
		return
	}
	dir, err := client.StateDir()
	if err != nil {
		panic(err)
	}
	if err := client.NewProfile(cfg, s).Save(dir); err != nil {
		panic(err)
	}
	fmt.Println("logged in as", s.Client.GetClientId(), "until", s.ExpireTime)
}

// ExampleClient_Payments lists every payment, fetching pages as needed.
func ExampleClient_Payments() { //nolint:testableexamples // needs a running gateway: compiled, not run
	ctx := context.Background()
	c, err := client.New(client.Config{GatewayURL: "https://127.0.0.1:8443", CAFile: "certs/ca.pem", Token: "..."})
	if err != nil {
		panic(err)
	}
	defer c.Close()
	for p, err := range c.Payments(ctx, client.PaymentFilter{}) {
		if err != nil {
			fmt.Println(err)
			break
		}
		fmt.Println(p.GetTransactionId(), p.GetStatus(), client.FormatAmount(p.GetAmount(), p.GetCurrency()))
	}
}
