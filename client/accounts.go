package client

import (
	"context"
	"iter"

	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
	"github.com/remitpay/remit/internal/names"
)

// OpenAccountRequest is an account for [Client.OpenAccount] to open.
type OpenAccountRequest struct {
	// RequestID is the opening's idempotency key, a UUID. Leave it empty to
	// have one generated; reuse it to retry the same opening safely.
	RequestID string
	// Account is the bank and the new account's id.
	Account AccountRef
	// Currency is the lowercase ISO 4217 code the account holds.
	Currency string
	// Owner is the holder's client id; empty means the account id.
	Owner string
}

// Normalize returns r with a generated request id if it had none and a
// lowercase one otherwise, or an ErrInvalidRequest error for a request the
// gateway would reject. A caller that prints or stores the id before
// sending normalizes first.
func (r OpenAccountRequest) Normalize() (OpenAccountRequest, error) {
	id, err := normalizeTxID(r.RequestID)
	if err != nil {
		return r, invalid("request id %q is not a UUID like 0b8e5a9c-8f1d-4c7e-9a4e-2d1f0c3b5a6e", r.RequestID)
	}
	r.RequestID = id
	if err := r.Account.validate(); err != nil {
		return r, err
	}
	if err := validateCurrency(r.Currency); err != nil {
		return r, err
	}
	if r.Owner != "" {
		if err := names.ClientID(r.Owner); err != nil {
			return r, invalid("owner %v", err)
		}
	}
	return r, nil
}

// OpenAccount opens an account with a zero balance at its bank (admins
// only) and returns it. It is idempotent by request id: retried like a
// payment, always with the same id, and a retry returns the account the
// first try opened. Errors are [*Error] values whose TransactionID is the
// request id. An account id already open at the bank is already_exists
// ACCOUNT_EXISTS; the same request id with other parameters is
// IDEMPOTENCY_KEY_REUSED.
func (c *Client) OpenAccount(ctx context.Context, req OpenAccountRequest) (*gatewayv1.Account, error) {
	req, err := req.Normalize()
	if err != nil {
		return nil, err
	}
	msg := &gatewayv1.OpenAccountRequest{
		RequestId: req.RequestID, Account: req.Account.Proto(), Currency: req.Currency, Owner: req.Owner,
	}
	var res *gatewayv1.OpenAccountResponse
	err = c.call(ctx, "open_account", req.RequestID, func(ctx context.Context) error {
		var err error
		res, err = c.admin.OpenAccount(ctx, msg)
		return err
	})
	if err != nil {
		return nil, err
	}
	return res.GetAccount(), nil
}

// CloseAccount closes an account whose balance is zero with nothing held
// or incoming (admins only; otherwise failed_precondition
// ACCOUNT_NOT_EMPTY) and returns it. Payments to and from it are then
// declined ACCOUNT_CLOSED. Closing a closed account succeeds, so it is
// retried.
func (c *Client) CloseAccount(ctx context.Context, account AccountRef) (*gatewayv1.Account, error) {
	if err := account.validate(); err != nil {
		return nil, err
	}
	var res *gatewayv1.CloseAccountResponse
	err := c.call(ctx, "close_account", "", func(ctx context.Context) error {
		var err error
		res, err = c.admin.CloseAccount(ctx, &gatewayv1.CloseAccountRequest{Account: account.Proto()})
		return err
	})
	if err != nil {
		return nil, err
	}
	return res.GetAccount(), nil
}

// AccountsPage returns one page of bank's accounts by account id, with
// their balances (admins and auditors): at most pageSize (0: the gateway's
// default of 50, capped at 100), after pageToken (empty: the first page).
func (c *Client) AccountsPage(ctx context.Context, bank string, pageSize int32, pageToken string) (*gatewayv1.ListAccountsResponse, error) {
	if err := names.Bank(bank); err != nil {
		return nil, invalid("bank %v", err)
	}
	msg := &gatewayv1.ListAccountsRequest{Bank: bank, PageSize: pageSize, PageToken: pageToken}
	var res *gatewayv1.ListAccountsResponse
	err := c.call(ctx, "list_accounts", "", func(ctx context.Context) error {
		var err error
		res, err = c.admin.ListAccounts(ctx, msg)
		return err
	})
	return res, err
}

// Accounts iterates over every account of bank by account id, fetching
// pages of pageSize lazily. An error ends the iteration as its last
// element.
func (c *Client) Accounts(ctx context.Context, bank string, pageSize int32) iter.Seq2[*gatewayv1.Account, error] {
	return pages(func(token string) ([]*gatewayv1.Account, string, error) {
		res, err := c.AccountsPage(ctx, bank, pageSize, token)
		return res.GetAccounts(), res.GetNextPageToken(), err
	})
}
