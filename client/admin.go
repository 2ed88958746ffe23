package client

import (
	"context"

	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
)

// Deposit credits amount to account at its bank (admins only). Like Pay it
// is idempotent by transaction id (generated when empty) and retried safely;
// errors are [*Error] values carrying the id.
func (c *Client) Deposit(ctx context.Context, transactionID string, account AccountRef, amount int64, currency string) (*gatewayv1.UpdateBalanceResponse, error) {
	return c.adjust(ctx, transactionID, account, gatewayv1.Direction_DIRECTION_CREDIT, amount, currency)
}

// Withdraw debits amount from account at its bank (admins only); it never
// takes the available balance below zero (a decline, see [IsDeclined]).
// Idempotent and retried like Deposit.
func (c *Client) Withdraw(ctx context.Context, transactionID string, account AccountRef, amount int64, currency string) (*gatewayv1.UpdateBalanceResponse, error) {
	return c.adjust(ctx, transactionID, account, gatewayv1.Direction_DIRECTION_DEBIT, amount, currency)
}

func (c *Client) adjust(ctx context.Context, txID string, account AccountRef, dir gatewayv1.Direction, amount int64, currency string) (*gatewayv1.UpdateBalanceResponse, error) {
	id, err := normalizeTxID(txID)
	if err != nil {
		return nil, err
	}
	if err := account.validate(); err != nil {
		return nil, err
	}
	if err := validateMoney(amount, currency); err != nil {
		return nil, err
	}
	msg := &gatewayv1.UpdateBalanceRequest{
		TransactionId: id, Account: account.Proto(), Direction: dir, Amount: amount, Currency: currency,
	}
	var res *gatewayv1.UpdateBalanceResponse
	err = c.call(ctx, "update_balance", id, func(ctx context.Context) error {
		var err error
		res, err = c.admin.UpdateBalance(ctx, msg)
		return err
	})
	return res, err
}

// Banks lists the registered banks and their last observed health (admins
// and auditors).
func (c *Client) Banks(ctx context.Context) ([]*gatewayv1.Bank, error) {
	var res *gatewayv1.ListBanksResponse
	err := c.call(ctx, "list_banks", "", func(ctx context.Context) error {
		var err error
		res, err = c.admin.ListBanks(ctx, &gatewayv1.ListBanksRequest{})
		return err
	})
	if err != nil {
		return nil, err
	}
	return res.GetBanks(), nil
}

// ClearLoginLockout forgets the failed logins and lockouts of clientID from
// every source, so that it can log in at once (admins only). It is
// idempotent and retried like the reads.
func (c *Client) ClearLoginLockout(ctx context.Context, clientID string) (*gatewayv1.ClearLoginLockoutResponse, error) {
	msg := &gatewayv1.ClearLoginLockoutRequest{ClientId: clientID}
	var res *gatewayv1.ClearLoginLockoutResponse
	err := c.call(ctx, "clear_login_lockout", "", func(ctx context.Context) error {
		var err error
		res, err = c.admin.ClearLoginLockout(ctx, msg)
		return err
	})
	return res, err
}
