package outbox_test

import (
	"testing"

	"connectrpc.com/connect"

	"github.com/remitpay/remit/client"
	"github.com/remitpay/remit/client/outbox"
)

// A payment to a closed account is declined ACCOUNT_CLOSED: a final
// outcome, so it leaves the queue FAILED and the payments behind it go out.
func TestAccountClosedIsAFinalDecline(t *testing.T) {
	e := newEnv(t)
	o := e.open(t, outbox.Options{})
	ids := enqueue(t, o, 100)

	adminCfg := e.g.Config()
	adminCfg.Token = e.g.Token("admin")
	admin, err := client.New(adminCfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	carol := client.AccountRef{Bank: "bank-b", ID: "carol"}
	if _, err := admin.OpenAccount(t.Context(), client.OpenAccountRequest{Account: carol, Currency: "usd"}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CloseAccount(t.Context(), carol); err != nil {
		t.Fatal(err)
	}
	if _, err := o.Enqueue(t.Context(), client.PaymentRequest{Payee: carol, Amount: 100, Currency: "usd"}); err != nil {
		t.Fatal(err)
	}
	ids = append(ids, enqueue(t, o, 200)...)

	rep, err := o.Flush(t.Context(), e.c)
	if err != nil || rep.Remaining != 0 || len(rep.Outcomes) != 3 {
		t.Fatalf("Flush = %+v, %v; want three final outcomes", rep, err)
	}
	closed := rep.Outcomes[1]
	if closed.Status != outbox.StatusFailed || closed.Reason != "ACCOUNT_CLOSED" || closed.Code != connect.CodeFailedPrecondition.String() ||
		!client.IsDeclined(closed.Err()) {
		t.Errorf("payment to a closed account: %+v, want a FAILED ACCOUNT_CLOSED decline", closed)
	}
	h := historyByID(t, o)
	if h[ids[0]].Status != outbox.StatusSucceeded || h[ids[1]].Status != outbox.StatusSucceeded {
		t.Errorf("the payments around the decline: %+v, %+v; want both SUCCEEDED", h[ids[0]], h[ids[1]])
	}
}
