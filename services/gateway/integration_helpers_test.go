package gateway_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
	"github.com/remitpay/remit/internal/rpcerr"
	"github.com/remitpay/remit/services/bank"
	"github.com/remitpay/remit/services/gateway/gatewaytest"
)

// The integration tests run a real network (gatewaytest): a gateway and three
// banks over mutual TLS on 127.0.0.1, each stoppable and restartable. They
// check money through the API (CheckBalance) while the network runs and
// through the banks' own books (ledger and journal) after the banks stopped.

// callTimeout bounds one RPC made by a test.
const callTimeout = 10 * time.Second

func callCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), callTimeout)
	t.Cleanup(cancel)
	return ctx
}

func newID() string { return uuid.NewString() }

// retryable reports whether the same request may simply be sent again: the
// gateway recorded nothing (a bank known to be down, the gateway itself down)
// or the request is still in flight.
func retryable(err error) bool {
	switch connect.CodeOf(err) {
	case connect.CodeUnavailable, connect.CodeAborted, connect.CodeDeadlineExceeded:
		return true
	default:
		return false
	}
}

// pay sends MakePayment from c, retrying the same transaction id (as a
// client must) while the answer is retryable, and returns the final answer.
func pay(t *testing.T, c *gatewaytest.Client, id, payee string, amount int64) (*gatewayv1.Payment, error) {
	t.Helper()
	return payCtx(t.Context(), c, id, payee, amount)
}

func payCtx(ctx context.Context, c *gatewaytest.Client, id, payee string, amount int64) (*gatewayv1.Payment, error) {
	return makePayment(ctx, c, &gatewayv1.MakePaymentRequest{
		TransactionId: id, Payee: gatewaytest.Ref(payee), Amount: amount,
		Currency: gatewaytest.Currency, Description: "integration " + c.ID + " to " + payee,
	})
}

// makePayment sends req, retrying while the answer is retryable. A bank's
// health check that times out under load makes the gateway refuse new
// payments touching it for a moment (unavailable, nothing recorded).
func makePayment(ctx context.Context, c *gatewaytest.Client, req *gatewayv1.MakePaymentRequest) (*gatewayv1.Payment, error) {
	var res *gatewayv1.MakePaymentResponse
	var err error
	gatewaytest.Retry(ctx, gatewaytest.WaitTimeout, func() bool {
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		defer cancel()
		res, err = c.Payments.MakePayment(cctx, req)
		return !retryable(err) || ctx.Err() != nil
	})
	if err != nil {
		return nil, err
	}
	return res.GetPayment(), nil
}

// mustPay pays and fails the test unless the payment succeeded.
func mustPay(t *testing.T, c *gatewaytest.Client, payee string, amount int64) *gatewayv1.Payment {
	t.Helper()
	p, err := pay(t, c, newID(), payee, amount)
	if err != nil {
		t.Fatalf("%s pays %d to %s: %v", c.ID, amount, payee, err)
	}
	if p.GetStatus() != gatewayv1.PaymentStatus_PAYMENT_STATUS_SUCCEEDED {
		t.Fatalf("%s pays %d to %s: status %v, want SUCCEEDED", c.ID, amount, payee, p.GetStatus())
	}
	return p
}

// wantError fails the test unless err has code and ErrorInfo reason.
func wantError(t *testing.T, err error, code connect.Code, reason string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got success, want %v %s", code, reason)
	}
	if connect.CodeOf(err) != code || rpcerr.Reason(err) != reason {
		t.Fatalf("got %v (reason %q), want %v %s", err, rpcerr.Reason(err), code, reason)
	}
}

// getPayment reads a payment as the admin.
func getPayment(t *testing.T, admin *gatewaytest.Client, id string) *gatewayv1.Payment {
	t.Helper()
	var p *gatewayv1.Payment
	gatewaytest.WaitFor(t, "GetPayment "+id, func() error {
		res, err := admin.Payments.GetPayment(callCtx(t), &gatewayv1.GetPaymentRequest{TransactionId: id})
		if err != nil {
			return err
		}
		p = res.GetPayment()
		return nil
	})
	return p
}

func wantStatus(t *testing.T, p *gatewayv1.Payment, status gatewayv1.PaymentStatus, reasons ...gatewayv1.FailureReason) {
	t.Helper()
	if p.GetStatus() != status {
		t.Fatalf("payment %s: status %v, want %v", p.GetTransactionId(), p.GetStatus(), status)
	}
	if len(reasons) > 0 && !slices.Contains(reasons, p.GetFailureReason()) {
		t.Fatalf("payment %s: failure reason %v, want one of %v", p.GetTransactionId(), p.GetFailureReason(), reasons)
	}
}

// funds is an account's balance and available amount as its bank reports it
// through the gateway.
type funds struct{ Balance, Available int64 }

func checkBalance(ctx context.Context, admin *gatewaytest.Client, account string) (funds, error) {
	res, err := admin.Payments.CheckBalance(ctx, &gatewayv1.CheckBalanceRequest{Account: gatewaytest.Ref(account)})
	if err != nil {
		return funds{}, err
	}
	return funds{res.GetBalance(), res.GetAvailable()}, nil
}

// waitFunds waits until every account in want reports exactly that balance
// and available amount through CheckBalance.
func waitFunds(t *testing.T, admin *gatewaytest.Client, want map[string]funds) {
	t.Helper()
	gatewaytest.WaitFor(t, "balances", func() error {
		got := map[string]funds{}
		for acct := range want {
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
			f, err := checkBalance(ctx, admin, acct)
			cancel()
			if err != nil {
				return fmt.Errorf("CheckBalance %s: %w", acct, err)
			}
			got[acct] = f
		}
		if d := cmp.Diff(want, got); d != "" {
			return fmt.Errorf("balances (-want +got):\n%s", d)
		}
		return nil
	})
}

// settled is funds with nothing held.
func settled(balance int64) funds { return funds{balance, balance} }

// allSettled is every customer at the given balances, nothing held; customers
// not named keep the opening balance.
func allSettled(balances map[string]int64) map[string]funds {
	out := map[string]funds{}
	for id := range gatewaytest.Customers {
		b, ok := balances[id]
		if !ok {
			b = gatewaytest.Opening
		}
		out[id] = settled(b)
	}
	return out
}

// books is what the banks' own ledgers say: every account, and for the
// transactions asked about, their journal entries and 2PC state per bank.
type books struct {
	accounts map[string]bank.Account
	// journal[txID][bank] lists entries as "account direction amount",
	// followed by the kind unless it is a payment.
	journal map[string]map[string][]string
	// state[txID][bank] is the prepared-transaction state, absent if unknown.
	state map[string]map[string]bank.State
}

// readBooks reads every bank's ledger (the banks may be running or stopped).
func readBooks(t *testing.T, n *gatewaytest.Network, txIDs ...string) books {
	t.Helper()
	b := books{accounts: map[string]bank.Account{}, journal: map[string]map[string][]string{}, state: map[string]map[string]bank.State{}}
	for _, id := range txIDs {
		b.journal[id] = map[string][]string{}
		b.state[id] = map[string]bank.State{}
	}
	for _, name := range gatewaytest.BankNames {
		n.Banks[name].Inspect(t, func(l *bank.Ledger) {
			ctx := callCtx(t)
			accts, err := l.Accounts(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range accts {
				b.accounts[a.ID] = a
			}
			for _, id := range txIDs {
				entries, err := l.Entries(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				for _, e := range entries {
					line := fmt.Sprintf("%s %s %d", e.AccountID, e.Direction, e.Amount)
					if e.Kind != bank.KindPayment {
						line += " " + e.Kind
					}
					b.journal[id][name] = append(b.journal[id][name], line)
				}
				st, ok, err := l.State(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				if ok {
					b.state[id][name] = st
				}
			}
		})
	}
	return b
}

// stopBanks stops every bank, so that nothing changes their books any more.
func stopBanks(t *testing.T, n *gatewaytest.Network) {
	t.Helper()
	n.StopBanks(t)
}

// checkAccounts fails unless every customer account has the balance in
// balances (the opening balance if absent) with nothing held or reserved,
// and the sum of all balances is the sum of the opening balances plus delta.
func checkAccounts(t *testing.T, b books, balances map[string]int64) {
	t.Helper()
	for id := range gatewaytest.Customers {
		want, ok := balances[id]
		if !ok {
			want = gatewaytest.Opening
		}
		a, found := b.accounts[id]
		if !found {
			t.Errorf("account %s missing from the ledgers", id)
			continue
		}
		if a.Balance != want || a.Held != 0 || a.Incoming != 0 {
			t.Errorf("account %s in the ledger: balance %d held %d incoming %d, want balance %d, nothing held or incoming",
				id, a.Balance, a.Held, a.Incoming, want)
		}
	}
}

// checkJournal fails unless txID's journal entries at each bank are exactly
// want[bank] (none at banks not named).
func checkJournal(t *testing.T, b books, txID string, want map[string][]string) {
	t.Helper()
	got := b.journal[txID]
	for _, name := range gatewaytest.BankNames {
		if d := cmp.Diff(want[name], got[name]); d != "" {
			t.Errorf("journal of %s at %s (-want +got):\n%s", txID, name, d)
		}
	}
}

// paymentEntries is the journal a committed payment must leave.
func paymentEntries(payer, payee string, amount int64) map[string][]string {
	want := map[string][]string{}
	pb, qb := gatewaytest.Customers[payer], gatewaytest.Customers[payee]
	want[pb] = append(want[pb], fmt.Sprintf("%s debit %d", payer, amount))
	want[qb] = append(want[qb], fmt.Sprintf("%s credit %d", payee, amount))
	return want
}

// checkNotPrepared fails if txID is still prepared (holding funds) anywhere.
func checkNotPrepared(t *testing.T, b books, txID string) {
	t.Helper()
	for name, st := range b.state[txID] {
		if st == bank.StatePrepared {
			t.Errorf("%s: transaction %s is still prepared at %s", t.Name(), txID, name)
		}
	}
}

// waitState waits until txID is in state at bank name (read from its live
// ledger).
func waitState(t *testing.T, n *gatewaytest.Network, name, txID string, want ...bank.State) {
	t.Helper()
	gatewaytest.WaitFor(t, fmt.Sprintf("%s at %s in %v", txID, name, want), func() error {
		var st bank.State
		var ok bool
		var err error
		n.Banks[name].Inspect(t, func(l *bank.Ledger) {
			st, ok, err = l.State(t.Context(), txID)
		})
		if err != nil {
			return err
		}
		if !ok || !slices.Contains(want, st) {
			return fmt.Errorf("state %q (known: %v)", st, ok)
		}
		return nil
	})
}

// errorText is everything a client can read from an error: message and
// ErrorInfo.
func errorText(err error) string {
	var s strings.Builder
	s.WriteString(err.Error())
	if info := rpcerr.Info(err); info != nil {
		fmt.Fprintf(&s, " %s %v", info.GetReason(), info.GetMetadata())
	}
	if cerr, ok := errors.AsType[*connect.Error](err); ok {
		for _, d := range cerr.Details() {
			if v, err := d.Value(); err == nil {
				fmt.Fprintf(&s, " %v", v)
			}
		}
	}
	return s.String()
}
