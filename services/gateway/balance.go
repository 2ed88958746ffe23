package gateway

import (
	"context"
	"errors"

	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
)

// Balance reads an account's balance at its bank, within Timing.BalanceCall.
// Its errors are sentinels of the error table: the bank is not registered,
// the bank says the account does not exist, or the bank did not answer in
// time (or the caller's ctx ended first, which is returned as such).
func (c *Coordinator) Balance(ctx context.Context, a Account) (Balance, error) {
	client, st := c.banks.Lookup(a.Bank)
	if st == BankUnknown || client == nil {
		return Balance{}, ErrBalanceBankNotFound
	}
	cctx, cancel := context.WithTimeout(ctx, c.timing.BalanceCall)
	defer cancel()
	bal, err := client.GetBalance(cctx, a.ID)
	var ref *RefusalError
	switch {
	case err == nil:
		return bal, nil
	case errors.As(err, &ref):
		// A read has one refusal: no such account. A bank refusing for a
		// reason of its own is answered the same way; its reason stays in
		// the log.
		if ref.Reason != gatewayv1.FailureReason_FAILURE_REASON_ACCOUNT_NOT_FOUND {
			c.log.Warn("balance read refused by bank for another reason than a missing account; answered as not found",
				"bank", a.Bank, "account_id", a.ID, "reason", ref.BankReason)
		}
		return Balance{}, ErrBalanceAccountNotFound
	case ctx.Err() != nil:
		return Balance{}, ctx.Err()
	default:
		c.log.Warn("balance read not answered by bank", "bank", a.Bank, "account_id", a.ID, "err", err)
		return Balance{}, ErrBalanceUnavailable
	}
}
