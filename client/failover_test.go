package client_test

import (
	"net"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/remitpay/remit/client"
)

// TestFailoverToAnotherReplica: the first gateway URL does not answer
// (nothing listens; then a replica that accepts and never speaks); the
// payment goes to the next replica with the same transaction id, once,
// and later calls stay there.
func TestFailoverToAnotherReplica(t *testing.T) {
	g := newGateway(t)
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "https://" + closed.Addr().String()
	if err := closed.Close(); err != nil {
		t.Fatal(err)
	}
	hung, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held []net.Conn
	accepted := make(chan struct{})
	go func() { // accepts, never answers
		defer close(accepted)
		for {
			conn, err := hung.Accept()
			if err != nil {
				return
			}
			held = append(held, conn)
		}
	}()
	t.Cleanup(func() {
		_ = hung.Close()
		<-accepted
		for _, c := range held {
			_ = c.Close()
		}
	})
	for name, first := range map[string]string{"refused": dead, "hung": "https://" + hung.Addr().String()} {
		t.Run(name, func(t *testing.T) {
			cfg := g.Config()
			answering := cfg.GatewayURL
			cfg.GatewayURL, cfg.MoreGatewayURLs = first, []string{answering}
			cfg.Token = g.Token(alice.ID)
			cfg.Timeout = 500 * time.Millisecond
			rec := &recorder{}
			cfg.Retry = &client.RetryPolicy{MaxAttempts: 3, Sleep: rec.sleep}
			c, err := client.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			before := count(g, "MakePayment")
			req := payment(7)
			req.TransactionID = uuid.NewString()
			p, err := c.Pay(t.Context(), req)
			if err != nil {
				t.Fatalf("pay with the first replica %s: %v", name, err)
			}
			if p.GetTransactionId() != req.TransactionID {
				t.Errorf("paid as %s, sent %s", p.GetTransactionId(), req.TransactionID)
			}
			if n := count(g, "MakePayment") - before; n != 1 {
				t.Errorf("the replica that answered got %d MakePayment calls, want 1", n)
			}
			if c.GatewayURL() != first {
				t.Errorf("GatewayURL() = %q, want the first URL %q: the client is known by it", c.GatewayURL(), first)
			}
			if _, err := c.Balance(t.Context(), nil); err != nil {
				t.Fatalf("a call after the failover: %v", err)
			}
			if len(rec.get()) != 1 {
				t.Errorf("slept %v: want one retry, then calls stay on the replica that answered", rec.get())
			}
		})
	}
}

// TestGatewayURLList: a comma-separated GatewayURL is the replicas of one
// gateway, the first naming the client.
func TestGatewayURLList(t *testing.T) {
	c, err := client.New(client.Config{GatewayURL: "https://A.example:443/, https://b.example:8443"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := c.GatewayURL(); got != "https://a.example" {
		t.Errorf("GatewayURL() = %q, want the first replica, normalized", got)
	}
	if _, err := client.New(client.Config{GatewayURL: "https://a.example,http://b.example"}); err == nil {
		t.Error("a replica over plain http was accepted")
	}
}
