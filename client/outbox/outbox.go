package outbox

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/remitpay/remit/client"
	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
	"github.com/remitpay/remit/internal/store"
)

//go:embed migrations/*.sql
var migrations embed.FS

// File names inside the state directory.
const (
	dbFile         = "outbox.db"
	lockFile       = "outbox.lock"
	schemaLockFile = "outbox-schema.lock"
)

// recordTimeout bounds the bookkeeping written after a send. It runs on a
// context detached from the caller's, so that an answer that arrived just as
// the user pressed Ctrl-C is still recorded.
const recordTimeout = 10 * time.Second

// Errors of the outbox.
var (
	// ErrBusy: another flusher (this or another process) holds the outbox
	// lock. Nothing was sent; try again later, or open with Options.Wait.
	ErrBusy = errors.New("outbox: another flush is running")
	// ErrNotQueued: no payment with that transaction id is queued for this
	// client and gateway.
	ErrNotQueued = errors.New("outbox: no such queued payment")
	// ErrTransactionIDReused: the transaction id is already queued, or
	// already has a final outcome in history, for a different payment (other
	// payee, amount, currency, description, client or gateway). Nothing was
	// queued or sent; a new payment needs a new id.
	ErrTransactionIDReused = errors.New("outbox: this transaction id was already used for a different payment")
)

// Gateway is what the outbox needs from a gateway client; *client.Client
// implements it. Pay must retry only with the same transaction id and
// return the gateway's answers as errors wrapping the *connect.Error
// received (as *client.Error does): the outbox treats an error as a final
// outcome only if it carries the gateway's ErrorInfo (domain remit.dev).
type Gateway interface {
	Pay(ctx context.Context, req client.PaymentRequest) (*gatewayv1.Payment, error)
	// Payment returns the payment with this transaction id, for a queued
	// payment that can no longer be sent as it was queued (see
	// [Outbox.Flush]).
	Payment(ctx context.Context, transactionID string) (*gatewayv1.Payment, error)
	Health(ctx context.Context) error
}

// Options configures [Open].
type Options struct {
	// ClientID and GatewayURL scope the handle: payments are queued under
	// them, and Flush, Send and Pay send only payments queued under the same
	// pair, so another login never sends them from the wrong account or to
	// the wrong gateway. Use the logged-in profile's values. GatewayURL is
	// normalized (client.NormalizeGatewayURL), so spellings of one URL
	// that differ only in case, a default port or a trailing slash share
	// the queue.
	ClientID   string
	GatewayURL string
	// Wait makes Flush and Send wait for another flusher to finish instead
	// of returning ErrBusy. Pay and FlushWatch always wait.
	Wait bool
	// OnOutcome, if set, is called after each final outcome is durably
	// recorded, by every method that sends, so a CLI can tell the user
	// about older queued payments that went out with a new one.
	OnOutcome func(Outcome)
}

// Outbox is a handle on the outbox in one state directory. Several handles,
// in one process or many, may share a directory. It is safe for concurrent
// use.
type Outbox struct {
	dir  string
	db   *sql.DB
	opts Options
}

// Open opens (creating if needed) the outbox in dir; an empty dir means
// client.StateDir().
func Open(ctx context.Context, dir string, opts Options) (*Outbox, error) {
	if dir == "" {
		d, err := client.StateDir()
		if err != nil {
			return nil, err
		}
		dir = d
	}
	opts.GatewayURL = normalizeURL(opts.GatewayURL)
	path := filepath.Join(dir, dbFile)
	// OpenSQLite creates dir 0700 and the database 0600 (store.Private).
	db, err := store.OpenSQLite(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	o := &Outbox{dir: dir, db: db, opts: opts}
	if err := o.migrate(ctx); err != nil {
		_ = db.Close() // the migration's error is the one to report
		return nil, err
	}
	return o, nil
}

// migrate applies the schema under its own lock: store.Migrate checks and
// applies each version in separate steps, so two first-time opens must not
// interleave.
func (o *Outbox) migrate(ctx context.Context) error {
	unlock, err := lock(ctx, filepath.Join(o.dir, schemaLockFile), true)
	if err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	defer unlock()
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return err
	}
	if err := store.Migrate(ctx, o.db, "outbox", sub); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	if err := o.normalizeStoredURLs(ctx); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	return nil
}

// normalizeURL is client.NormalizeGatewayURL, or u itself if it is not a
// URL (the empty scope of a handle that only lists).
func normalizeURL(u string) string {
	if n, err := client.NormalizeGatewayURL(u); err == nil {
		return n
	}
	return u
}

// normalizeStoredURLs rewrites gateway URLs stored by older versions,
// which kept them as typed, into their normalized form, so that a payment
// queued under https://Localhost:8443/ is sent by a handle scoped to
// https://localhost:8443. It runs under the schema lock and changes
// nothing once done.
func (o *Outbox) normalizeStoredURLs(ctx context.Context) error {
	urls, err := o.storedURLs(ctx)
	if err != nil {
		return err
	}
	for _, u := range urls {
		n := normalizeURL(u)
		if n == u {
			continue
		}
		err := store.InTx(ctx, o.db, func(tx *sql.Tx) error {
			for _, q := range []string{
				`UPDATE queued SET gateway = ? WHERE gateway = ?`,
				`UPDATE history SET gateway = ? WHERE gateway = ?`,
			} {
				if _, err := tx.ExecContext(ctx, q, n, u); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// storedURLs returns every gateway URL in the queue and in history. The
// rows are closed when it returns, before any update runs.
func (o *Outbox) storedURLs(ctx context.Context) ([]string, error) {
	rows, err := o.db.QueryContext(ctx, `SELECT gateway FROM queued UNION SELECT gateway FROM history`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var urls []string
	for rows.Next() {
		var u string
		if err := rows.Scan(&u); err != nil {
			return nil, err
		}
		urls = append(urls, u)
	}
	return urls, rows.Err()
}

// Close closes the database.
func (o *Outbox) Close() error { return o.db.Close() }

// Dir returns the state directory.
func (o *Outbox) Dir() string { return o.dir }

// lock takes the exclusive lock on path, polling while another holder has
// it if wait is set (flock itself cannot be interrupted by ctx).
func lock(ctx context.Context, path string, wait bool) (func(), error) {
	delay := 5 * time.Millisecond
	for {
		unlock, err := tryLock(path)
		if !errors.Is(err, ErrBusy) || !wait {
			return unlock, err
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
		delay = min(2*delay, 200*time.Millisecond)
	}
}

func (o *Outbox) lockFlush(ctx context.Context, wait bool) (func(), error) {
	return lock(ctx, filepath.Join(o.dir, lockFile), wait)
}

// Item is one queued payment.
type Item struct {
	// TransactionID is the payment's idempotency key, sent on every try.
	TransactionID string
	// ClientID and GatewayURL are the scope it was queued under.
	ClientID   string
	GatewayURL string
	// Payee, Amount (minor units), Currency and Description are the
	// payment as queued.
	Payee       client.AccountRef
	Amount      int64
	Currency    string
	Description string
	// Created is when it was queued; Age is how long ago that was.
	Created time.Time
	Age     time.Duration
	// Attempts counts sends started, including any a crash interrupted.
	Attempts int
	// LastError is why the last send did not finish it ("" if never tried).
	LastError string
	// LastAttempt is when it was last sent (zero if never).
	LastAttempt time.Time

	seq int64
}

// Request returns the payment request to send, identical on every try.
func (it Item) Request() client.PaymentRequest {
	return client.PaymentRequest{
		TransactionID: it.TransactionID, Payee: it.Payee, Amount: it.Amount,
		Currency: it.Currency, Description: it.Description,
	}
}

// Status is the final status of a payment in history.
type Status string

// Final statuses.
const (
	StatusSucceeded Status = "SUCCEEDED"
	StatusFailed    Status = "FAILED"
)

// Outcome is the final outcome of a queued payment, as kept in history.
type Outcome struct {
	// TransactionID identifies the payment.
	TransactionID string
	// ClientID and GatewayURL are the scope it was queued under.
	ClientID   string
	GatewayURL string
	// Status is SUCCEEDED or FAILED.
	Status Status
	// Code, Reason and Message describe a failure: the Connect code (as
	// "failed_precondition"), the ErrorInfo reason and the gateway's
	// message. Empty on success.
	Code    string
	Reason  string
	Message string
	// Payment is the payment as the gateway returned it (nil on failure).
	Payment *gatewayv1.Payment
	// Payee, Amount, Currency and Description are the payment as queued.
	Payee       client.AccountRef
	Amount      int64
	Currency    string
	Description string
	// Created is when it was queued, Completed when the outcome was
	// recorded.
	Created   time.Time
	Completed time.Time
	// Attempts is how many sends it took.
	Attempts int

	err error // the error as received, when recorded in this process
}

// Err returns nil for a success and the failure as a *client.Error
// otherwise, so callers handle history and live results alike.
func (out Outcome) Err() error {
	if out.Status == StatusSucceeded {
		return nil
	}
	if out.err != nil {
		return out.err
	}
	var code connect.Code
	if err := code.UnmarshalText([]byte(out.Code)); err != nil {
		code = connect.CodeUnknown
	}
	return &client.Error{Code: code, Reason: out.Reason, Message: out.Message,
		TransactionID: out.TransactionID, Attempts: out.Attempts}
}

// QueuedError says that a payment is safely in the outbox but has not
// reached a final outcome yet, and why (Cause): the gateway could not be
// reached, answered with a retryable outcome, needs a new login, or an
// older queued payment is still waiting. A later flush sends it with the
// same transaction id.
type QueuedError struct {
	// TransactionID is the queued payment's id.
	TransactionID string
	// Cause is why it is still queued.
	Cause error
}

// Error says that the payment is queued and why.
func (e *QueuedError) Error() string {
	return fmt.Sprintf("payment %s is queued in the outbox and will be sent later with the same transaction id: %v",
		e.TransactionID, e.Cause)
}

// Unwrap returns the cause.
func (e *QueuedError) Unwrap() error { return e.Cause }

// FlushReport is what a flush did.
type FlushReport struct {
	// Outcomes are the final outcomes reached, oldest payment first.
	Outcomes []Outcome
	// Remaining is how many payments of this client and gateway are still
	// queued.
	Remaining int
	// Elsewhere counts this client's payments queued under other gateway
	// URLs, by URL. This handle does not send them: one opened with that
	// GatewayURL does.
	Elsewhere map[string]int
}

// Enqueue durably queues a payment without sending it and returns its
// transaction id (generated if the request has none). Queuing the same id
// with the same parameters again is a no-op, whether the payment is still
// queued or already has its final outcome in history (see [Outbox.Outcome];
// it is not sent again). The same id with other parameters is
// ErrTransactionIDReused, and nothing is queued.
func (o *Outbox) Enqueue(ctx context.Context, req client.PaymentRequest) (string, error) {
	it, done, err := o.enqueue(ctx, req)
	if err != nil {
		return "", err
	}
	if done != nil {
		return done.TransactionID, nil
	}
	return it.TransactionID, nil
}

// enqueue queues req, or returns the queued item with its id, or (done)
// the final outcome already recorded for its id. The lookups and the
// insert are one transaction, and history rows are written in the same
// transaction that deletes the queued row, so an id is never both queued
// anew and in history.
func (o *Outbox) enqueue(ctx context.Context, req client.PaymentRequest) (Item, *Outcome, error) {
	req, err := req.Normalize()
	if err != nil {
		return Item{}, nil, err
	}
	var (
		it   Item
		done *Outcome
	)
	err = store.InTx(ctx, o.db, func(tx *sql.Tx) error {
		existing, err := getItem(ctx, tx, req.TransactionID)
		switch {
		case err == nil:
			if existing.Request() != req || existing.ClientID != o.opts.ClientID || existing.GatewayURL != o.opts.GatewayURL {
				return fmt.Errorf("%w: %s is queued for %s", ErrTransactionIDReused, req.TransactionID,
					describe(existing.Payee, existing.Amount, existing.Currency))
			}
			it = existing
			return nil
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		prev, err := getOutcome(ctx, tx, req.TransactionID)
		switch {
		case err == nil && prev.Status == StatusFailed && prev.Reason == "" && prev.request() == req &&
			prev.ClientID == o.opts.ClientID && prev.GatewayURL == o.opts.GatewayURL:
			// A failure without the gateway's ErrorInfo, recorded by an
			// older version: no gateway gave it, so it is no outcome. The
			// payment is queued again; its send records the real one.
		case err == nil:
			if prev.request() != req || prev.ClientID != o.opts.ClientID || prev.GatewayURL != o.opts.GatewayURL {
				return fmt.Errorf("%w: %s already %s for %s", ErrTransactionIDReused, req.TransactionID,
					strings.ToLower(string(prev.Status)), describe(prev.Payee, prev.Amount, prev.Currency))
			}
			done = &prev
			return nil
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		now := time.Now().UnixNano()
		res, err := tx.ExecContext(ctx, `INSERT INTO queued
			(transaction_id, client_id, gateway, payee_bank, payee_account, amount, currency, description, created)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			req.TransactionID, o.opts.ClientID, o.opts.GatewayURL, req.Payee.Bank, req.Payee.ID,
			req.Amount, req.Currency, req.Description, now)
		if err != nil {
			return err
		}
		seq, err := res.LastInsertId()
		if err != nil {
			return err
		}
		it = Item{TransactionID: req.TransactionID, ClientID: o.opts.ClientID, GatewayURL: o.opts.GatewayURL,
			Payee: req.Payee, Amount: req.Amount, Currency: req.Currency, Description: req.Description,
			Created: time.Unix(0, now), seq: seq}
		return nil
	})
	if err != nil {
		if errors.Is(err, ErrTransactionIDReused) {
			return Item{}, nil, err
		}
		return Item{}, nil, fmt.Errorf("outbox: enqueue: %w", err)
	}
	return it, done, nil
}

// describe is "12.50 usd to bank-b/bob".
func describe(payee client.AccountRef, amount int64, currency string) string {
	return client.FormatAmount(amount, currency) + " to " + payee.String()
}

const itemColumns = `seq, transaction_id, client_id, gateway, payee_bank, payee_account, amount, currency,
	description, created, attempts, last_error, last_attempt`

type rowScanner interface{ Scan(dest ...any) error }

func scanItem(r rowScanner) (Item, error) {
	var it Item
	var created, last int64
	err := r.Scan(&it.seq, &it.TransactionID, &it.ClientID, &it.GatewayURL, &it.Payee.Bank, &it.Payee.ID,
		&it.Amount, &it.Currency, &it.Description, &created, &it.Attempts, &it.LastError, &last)
	it.Created = time.Unix(0, created)
	if last != 0 {
		it.LastAttempt = time.Unix(0, last)
	}
	return it, err
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func getItem(ctx context.Context, q querier, txID string) (Item, error) {
	return scanItem(q.QueryRowContext(ctx, `SELECT `+itemColumns+` FROM queued WHERE transaction_id = ?`, txID))
}

// List returns every queued payment, oldest first, including those queued
// under another client id or gateway (which this handle will not send).
func (o *Outbox) List(ctx context.Context) ([]Item, error) {
	rows, err := o.db.QueryContext(ctx, `SELECT `+itemColumns+` FROM queued ORDER BY seq`)
	if err != nil {
		return nil, fmt.Errorf("outbox: list: %w", err)
	}
	defer rows.Close()
	now := time.Now()
	var items []Item
	for rows.Next() {
		it, err := scanItem(rows)
		if err != nil {
			return nil, fmt.Errorf("outbox: list: %w", err)
		}
		it.Age = now.Sub(it.Created)
		items = append(items, it)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("outbox: list: %w", err)
	}
	return items, nil
}

// History returns up to limit final outcomes, most recent first; limit <= 0
// means all.
func (o *Outbox) History(ctx context.Context, limit int) ([]Outcome, error) {
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	rows, err := o.db.QueryContext(ctx, `SELECT transaction_id, client_id, gateway, status, code, reason, message,
		payment, payee_bank, payee_account, amount, currency, description, created, completed, attempts
		FROM history ORDER BY completed DESC, rowid DESC LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("outbox: history: %w", err)
	}
	defer rows.Close()
	var outs []Outcome
	for rows.Next() {
		out, err := scanOutcome(rows)
		if err != nil {
			return nil, fmt.Errorf("outbox: history: %w", err)
		}
		outs = append(outs, out)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("outbox: history: %w", err)
	}
	return outs, nil
}

func scanOutcome(r rowScanner) (Outcome, error) {
	var out Outcome
	var payment string
	var created, completed int64
	err := r.Scan(&out.TransactionID, &out.ClientID, &out.GatewayURL, &out.Status, &out.Code, &out.Reason,
		&out.Message, &payment, &out.Payee.Bank, &out.Payee.ID, &out.Amount, &out.Currency, &out.Description,
		&created, &completed, &out.Attempts)
	if err != nil {
		return out, err
	}
	out.Created, out.Completed = time.Unix(0, created), time.Unix(0, completed)
	if payment != "" {
		out.Payment = &gatewayv1.Payment{}
		if err := protojson.Unmarshal([]byte(payment), out.Payment); err != nil {
			return out, fmt.Errorf("payment of %s: %w", out.TransactionID, err)
		}
	}
	return out, nil
}

// request is the payment request the outcome is for.
func (out Outcome) request() client.PaymentRequest {
	return client.PaymentRequest{
		TransactionID: out.TransactionID, Payee: out.Payee, Amount: out.Amount,
		Currency: out.Currency, Description: out.Description,
	}
}

// Outcome returns the final outcome recorded in history for a transaction
// id (any case), or an error wrapping sql.ErrNoRows if there is none.
func (o *Outbox) Outcome(ctx context.Context, txID string) (Outcome, error) {
	out, err := o.outcome(ctx, strings.ToLower(txID))
	if err != nil {
		return out, fmt.Errorf("outbox: outcome of %s: %w", txID, err)
	}
	return out, nil
}

// outcome looks up the recorded outcome of txID.
func (o *Outbox) outcome(ctx context.Context, txID string) (Outcome, error) {
	return getOutcome(ctx, o.db, txID)
}

func getOutcome(ctx context.Context, q querier, txID string) (Outcome, error) {
	return scanOutcome(q.QueryRowContext(ctx, `SELECT transaction_id, client_id, gateway, status, code, reason,
		message, payment, payee_bank, payee_account, amount, currency, description, created, completed, attempts
		FROM history WHERE transaction_id = ?`, txID))
}

// Elsewhere counts this client's payments queued under other gateway URLs,
// by URL (nil if there are none). A handle never sends them; one opened
// with that GatewayURL does.
func (o *Outbox) Elsewhere(ctx context.Context) (map[string]int, error) {
	rows, err := o.db.QueryContext(ctx, `SELECT gateway, count(*) FROM queued
		WHERE client_id = ? AND gateway <> ? GROUP BY gateway ORDER BY gateway`, o.opts.ClientID, o.opts.GatewayURL)
	if err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	defer rows.Close()
	var m map[string]int
	for rows.Next() {
		var u string
		var n int
		if err := rows.Scan(&u, &n); err != nil {
			return nil, fmt.Errorf("outbox: %w", err)
		}
		if m == nil {
			m = map[string]int{}
		}
		m[u] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	return m, nil
}
