package bank

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/remitpay/remit/internal/names"
)

// Account states, as stored in accounts.state.
const (
	accountOpen   = "open"
	accountClosed = "closed"
)

// OpenRequest is an account to open with [Ledger.OpenAccount].
type OpenRequest struct {
	// RequestID makes the opening idempotent (a UUID, lowercase).
	RequestID string
	// AccountID is the new account's id.
	AccountID string
	// Owner is the holder's client id.
	Owner string
	// Currency is the lowercase ISO 4217 code the account holds.
	Currency string
}

// OpenAccount opens an account with a zero balance (journaled as an
// opening of 0, transaction id "opening:<id>", as [Ledger.EnsureAccount]
// does), idempotent by RequestID: a repeat with the same parameters returns
// the account as it is now (closed, if it was closed since); the same
// RequestID with other parameters fails with [ErrIdempotencyKeyReused]. An
// account id that exists, open or closed, fails with [ErrAccountExists]: a
// closed account's id is never given to another holder.
func (l *Ledger) OpenAccount(ctx context.Context, req OpenRequest) (Account, error) {
	if req.RequestID == "" || req.AccountID == "" || req.Owner == "" || req.Currency == "" {
		return Account{}, fmt.Errorf("%w: account opening %+v", ErrInvalidArgument, req)
	}
	now := l.nowNanos()
	var a Account
	err := l.group.Do(ctx, func(ctx context.Context, tx *sql.Tx) error {
		var prev OpenRequest
		err := tx.QueryRowContext(ctx, `SELECT request_id, account_id, owner, currency FROM account_openings WHERE request_id = ?`,
			req.RequestID).Scan(&prev.RequestID, &prev.AccountID, &prev.Owner, &prev.Currency)
		switch {
		case err == nil:
			if prev != req {
				return fmt.Errorf("%w: request id %s opened account %s (owner %s, %s)",
					ErrIdempotencyKeyReused, req.RequestID, prev.AccountID, prev.Owner, prev.Currency)
			}
			a, err = l.getAccount(ctx, tx, req.AccountID)
			return err
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		switch _, err := l.getAccount(ctx, tx, req.AccountID); {
		case err == nil:
			return fmt.Errorf("%w: %s", ErrAccountExists, req.AccountID)
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO accounts (account_id, owner, currency, balance, create_time) VALUES (?, ?, ?, 0, ?)`,
			req.AccountID, req.Owner, req.Currency, now); err != nil {
			return err
		}
		if err := l.journal(ctx, tx, "opening:"+req.AccountID, req.AccountID, Credit, 0, 0, KindOpening, now); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO account_openings (request_id, account_id, owner, currency, open_time) VALUES (?, ?, ?, ?, ?)`,
			req.RequestID, req.AccountID, req.Owner, req.Currency, now); err != nil {
			return err
		}
		a, err = l.getAccount(ctx, tx, req.AccountID)
		return err
	})
	if err != nil {
		return Account{}, fmt.Errorf("bank: open account %s: %w", req.AccountID, err)
	}
	return a, nil
}

// CloseAccount closes an account whose balance, held and incoming funds are
// all zero, else fails with [ErrAccountNotEmpty]; closing a closed account
// returns it as it is. An unknown account is [ErrAccountNotFound].
//
// The check and the close are one transaction of the ledger's one writer,
// as every prepare is: no prepare can have voted YES on the account and
// still be undecided when it closes (its hold or incoming credit would not
// be zero), and none votes YES after (a closed account votes NO). So a
// closed account never moves again, and the accounts table's CHECK keeps
// it at zero.
func (l *Ledger) CloseAccount(ctx context.Context, accountID string) (Account, error) {
	if accountID == "" {
		return Account{}, fmt.Errorf("%w: empty account id", ErrInvalidArgument)
	}
	now := l.nowNanos()
	var a Account
	err := l.group.Do(ctx, func(ctx context.Context, tx *sql.Tx) error {
		var err error
		a, err = l.getAccount(ctx, tx, accountID)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("%w: %s", ErrAccountNotFound, accountID)
		case err != nil:
			return err
		case a.Closed:
			return nil
		case a.Balance != 0 || a.Held != 0 || a.Incoming != 0:
			return fmt.Errorf("%w: account %s has balance %d, held %d, incoming %d",
				ErrAccountNotEmpty, accountID, a.Balance, a.Held, a.Incoming)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE accounts SET state = 'closed', close_time = ? WHERE account_id = ?`, now, accountID); err != nil {
			return err
		}
		a, err = l.getAccount(ctx, tx, accountID)
		return err
	})
	if err != nil {
		return Account{}, fmt.Errorf("bank: close account %s: %w", accountID, err)
	}
	return a, nil
}

// Page sizes of [Ledger.ListAccounts].
const (
	DefaultPageSize = 50
	MaxPageSize     = 100
)

// pageTokenPrefix versions the page token, which is base64url of this
// prefix and the last account id of the previous page.
const pageTokenPrefix = "acct1:"

// ListAccounts returns up to pageSize accounts (0 means DefaultPageSize;
// more than MaxPageSize means MaxPageSize) by account id, after the one
// pageToken names ("" for the first page), and the token of the next page
// ("" after the last). A token this bank did not issue is [ErrBadPageToken].
func (l *Ledger) ListAccounts(ctx context.Context, pageSize int, pageToken string) ([]Account, string, error) {
	switch {
	case pageSize <= 0:
		pageSize = DefaultPageSize
	case pageSize > MaxPageSize:
		pageSize = MaxPageSize
	}
	after := ""
	if pageToken != "" {
		var err error
		if after, err = decodePageToken(pageToken); err != nil {
			return nil, "", err
		}
	}
	rows, err := l.rdb.QueryContext(ctx, `SELECT `+accountCols+` FROM accounts WHERE account_id > ? ORDER BY account_id LIMIT ?`,
		after, pageSize+1)
	if err != nil {
		return nil, "", fmt.Errorf("bank: list accounts: %w", err)
	}
	defer rows.Close()
	var out []Account
	for rows.Next() {
		a, err := scanAccount(rows)
		if err != nil {
			return nil, "", fmt.Errorf("bank: list accounts: %w", err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("bank: list accounts: %w", err)
	}
	next := ""
	if len(out) > pageSize {
		out = out[:pageSize]
		next = base64.RawURLEncoding.EncodeToString([]byte(pageTokenPrefix + out[len(out)-1].ID))
	}
	return out, next, nil
}

func decodePageToken(token string) (string, error) {
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return "", ErrBadPageToken
	}
	id, ok := strings.CutPrefix(string(raw), pageTokenPrefix)
	if !ok || names.AccountID(id) != nil {
		return "", ErrBadPageToken
	}
	return id, nil
}
