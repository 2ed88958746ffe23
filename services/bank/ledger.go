package bank

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/remitpay/remit/internal/store"
)

//go:embed migrations/*.sql migrations/postgres/*.sql
var migrationFiles embed.FS

// Sentinel errors of the ledger. They are wrapped with %w and detail; the RPC
// layer maps each to a Connect code and ErrorInfo reason (errors.go). The
// refusals among them are also the Reason of a NO [Vote].
var (
	// ErrAccountNotFound: no such account at this bank.
	ErrAccountNotFound = errors.New("account not found")
	// ErrCurrencyMismatch: the account holds another currency.
	ErrCurrencyMismatch = errors.New("currency mismatch")
	// ErrInsufficientFunds: the available balance (balance - held) is
	// below the debit.
	ErrInsufficientFunds = errors.New("insufficient funds")
	// ErrBalanceOverflow: the credit would take the balance past 2^63-1.
	ErrBalanceOverflow = errors.New("balance would overflow")
	// ErrAlreadyAborted: the transaction was aborted here (or an ABORT for it
	// arrived before its prepare); it can be neither prepared nor committed.
	ErrAlreadyAborted = errors.New("transaction already aborted")
	// ErrIdempotencyKeyReused: the transaction id was already used here with
	// other legs or parameters, or by the other kind of movement.
	ErrIdempotencyKeyReused = errors.New("transaction id already used with different parameters")
	// ErrCannotCommit: COMMIT of a transaction that is unknown or aborted
	// here. It means the gateway and the bank disagree; never retried away.
	ErrCannotCommit = errors.New("cannot commit a transaction that is not prepared")
	// ErrAlreadyCommitted: ABORT of a committed transaction; a commit is
	// never undone.
	ErrAlreadyCommitted = errors.New("cannot abort: transaction already committed")
	// ErrInvalidArgument: a malformed request the RPC validation should
	// have caught, or two legs moving the same account the same way.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrAccountClosed: the account is closed; it refuses every prepare leg
	// and every movement, and stays readable.
	ErrAccountClosed = errors.New("account closed")
	// ErrAccountExists: OpenAccount of an account id that exists, open or
	// closed (a closed account id is never reused).
	ErrAccountExists = errors.New("account already exists")
	// ErrAccountNotEmpty: CloseAccount of an account with a balance, or
	// with funds held or incoming for prepared transactions.
	ErrAccountNotEmpty = errors.New("account not empty: only an account with a zero balance and nothing held or incoming can be closed")
	// ErrEnrollmentCodeInvalid: the enrollment code is wrong, expired,
	// revoked or consumed by another client, or the account is unknown,
	// closed or locked after too many wrong codes. Every case reads the
	// same to the caller, on purpose (see [EnrollmentError]).
	ErrEnrollmentCodeInvalid = errors.New("the enrollment code is not valid for this account: it may be mistyped, expired or already used; ask the bank for a new code")
	// ErrBadPageToken: a ListAccounts page token this bank did not issue.
	ErrBadPageToken = errors.New("page_token is not one this bank issued; pass next_page_token unchanged, or omit it for the first page")
)

// Direction says which way money moves on an account.
type Direction string

// Directions, as stored in the ledger.
const (
	Credit Direction = "credit" // money in
	Debit  Direction = "debit"  // money out
)

// Leg is one account's part in a transaction: a payment has one or two legs
// at a bank, an adjustment exactly one.
type Leg struct {
	AccountID string
	Direction Direction
	Amount    int64  // smallest currency unit, > 0
	Currency  string // lowercase ISO 4217
}

// Vote is the answer to [Ledger.Prepare].
type Vote struct {
	// Yes means the transaction is durably prepared and its debits held.
	Yes bool
	// Reason says why the vote is NO: one of ErrAccountNotFound,
	// ErrAccountClosed, ErrCurrencyMismatch, ErrInsufficientFunds,
	// ErrBalanceOverflow, ErrAlreadyAborted or ErrIdempotencyKeyReused. Nil
	// for YES.
	Reason error
	// AccountID is the account the refusal is about, when there is one.
	AccountID string
}

// State is where a transaction stands at this bank.
type State string

// States of a prepared transaction.
const (
	StatePrepared  State = "prepared"
	StateCommitted State = "committed"
	StateAborted   State = "aborted"
)

// Account is an account's state.
type Account struct {
	ID       string
	Owner    string
	Currency string
	// Balance is the booked balance.
	Balance int64
	// Held is the sum of debits of prepared transactions, not yet decided.
	Held int64
	// Incoming is the sum of credits of prepared transactions, not yet
	// decided; it is reserved so that committing them cannot overflow.
	Incoming int64
	// Closed accounts refuse every prepare leg and movement
	// ([ErrAccountClosed]); their balance, held and incoming are zero.
	Closed bool
	// OpenTime is when the account was created; CloseTime when it was
	// closed (zero while open).
	OpenTime, CloseTime time.Time
}

// Available is what can be spent now: Balance - Held, never negative.
func (a Account) Available() int64 { return a.Balance - a.Held }

// Adjustment is the result of [Ledger.UpdateBalance]: the account right
// after the movement (for a repeat, right after the original movement).
type Adjustment struct {
	Balance   int64
	Currency  string
	ApplyTime time.Time
}

// Entry kinds of the journal.
const (
	KindOpening    = "opening"
	KindPayment    = "payment"
	KindAdjustment = "adjustment"
)

// Entry is one journal line: one applied movement of one account.
type Entry struct {
	ID            int64
	TransactionID string
	AccountID     string
	Direction     Direction
	Amount        int64
	Balance       int64  // the account's balance right after the movement
	Kind          string // KindOpening, KindPayment or KindAdjustment
	Time          time.Time
}

// AccountSeed describes an account to create at start if it does not exist.
type AccountSeed struct {
	ID       string
	Owner    string
	Currency string
	Opening  int64 // opening balance, journaled as kind "opening"
}

// Ledger is a bank's durable book: accounts, the journal, the two-phase
// commit participant log and the adjustments. It is safe for concurrent use;
// every method that changes state commits one durable transaction before it
// returns. Its SQL runs on SQLite and PostgreSQL alike (see store).
type Ledger struct {
	db    *sql.DB           // the writer: one connection
	rdb   *sql.DB           // reads outside a transaction (store.OpenSQLiteReader)
	stmts *store.Statements // statementSQL, prepared once
	// group commits the writes of concurrent calls together: one SQLite
	// transaction and one fsync for all of them, each call answered only
	// after that fsync (see store.Group).
	group *store.Group
}

// OpenLedger opens (creating and migrating if needed) the ledger at
// target: an SQLite file, or a PostgreSQL database by its postgres:// URL
// (store.Open). The times it records come from time.Now; tests that check
// them run in a testing/synctest bubble.
func OpenLedger(ctx context.Context, target string) (*Ledger, error) {
	db, err := store.Open(ctx, target, "ledger")
	if err != nil {
		return nil, fmt.Errorf("bank: open ledger: %w", err)
	}
	sub, err := store.MigrationsFor(db, migrationFiles, "migrations")
	if err != nil {
		return nil, errors.Join(err, db.Close())
	}
	if err := store.Migrate(ctx, db, "ledger", sub); err != nil {
		return nil, errors.Join(fmt.Errorf("bank: migrate ledger: %w", err), db.Close())
	}
	stmts, err := store.Prepare(ctx, db, statementSQL[:])
	if err != nil {
		return nil, errors.Join(fmt.Errorf("bank: open ledger: %w", err), db.Close())
	}
	rdb, err := store.OpenReader(ctx, target)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("bank: open ledger: %w", err), stmts.Close(), db.Close())
	}
	if err := stmts.AddReader(ctx, rdb); err != nil {
		return nil, errors.Join(fmt.Errorf("bank: open ledger: %w", err), stmts.Close(), rdb.Close(), db.Close())
	}
	return &Ledger{db: db, rdb: rdb, stmts: stmts, group: store.NewGroup(db, store.GroupOptions{})}, nil //nolint:contextcheck // the committer outlives any caller
}

// The statements of a payment (prepare, commit, abort: the record, its
// legs, the holds, the journal) and of a balance read, prepared once when
// the ledger opens so that SQLite does not parse them again on every call.
// Each constant names its SQL in statementSQL. The rest of the SQL
// (adjustments, listings, pruning) runs rarely and stays inline.
const (
	sqlIDUsed = iota
	sqlGetAccount
	sqlInsertTxn
	sqlInsertTombstone
	sqlInsertLeg
	sqlHoldDebit
	sqlReserveCredit
	sqlApplyDebit
	sqlApplyCredit
	sqlReleaseDebit
	sqlReleaseCredit
	sqlSetState
	sqlJournal
	sqlPrepareLookup
	sqlCommitLookup
	numStatements
)

var statementSQL = [numStatements]string{
	sqlIDUsed:     `SELECT 1 FROM journal WHERE transaction_id = ?1 AND (?2 = '' OR kind = ?2) LIMIT 1`,
	sqlGetAccount: `SELECT ` + accountCols + ` FROM accounts WHERE account_id = ?`,
	sqlInsertTxn: `INSERT INTO prepared_transactions
		(transaction_id, state, fingerprint, refusal_reason, refusal_account, expire_time, create_time, decide_time)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
	sqlInsertTombstone: `INSERT INTO prepared_transactions
		(transaction_id, state, fingerprint, expire_time, create_time, decide_time) VALUES (?, 'aborted', '', ?, ?, ?)`,
	sqlInsertLeg: `INSERT INTO prepared_legs (transaction_id, leg_index, account_id, direction, amount, currency)
		VALUES (?, ?, ?, ?, ?, ?)`,
	sqlHoldDebit:     `UPDATE accounts SET held = held + ? WHERE account_id = ?`,
	sqlReserveCredit: `UPDATE accounts SET incoming = incoming + ? WHERE account_id = ?`,
	sqlApplyDebit:    `UPDATE accounts SET balance = balance - ?1, held = held - ?1 WHERE account_id = ?2 RETURNING balance`,
	sqlApplyCredit:   `UPDATE accounts SET balance = balance + ?1, incoming = incoming - ?1 WHERE account_id = ?2 RETURNING balance`,
	sqlReleaseDebit:  `UPDATE accounts SET held = held - ? WHERE account_id = ?`,
	sqlReleaseCredit: `UPDATE accounts SET incoming = incoming - ? WHERE account_id = ?`,
	sqlSetState:      `UPDATE prepared_transactions SET state = ?, decide_time = ? WHERE transaction_id = ?`,
	sqlJournal: `INSERT INTO journal (transaction_id, account_id, direction, amount, balance, kind, entry_time)
		VALUES (?, ?, ?, ?, ?, ?, ?)`,
	// What a prepare reads before it votes, in one statement: the
	// transaction's record if it has one (NULLs if not), and whether the
	// journal has entries for its id (sqlIDUsed with no kind).
	sqlPrepareLookup: `SELECT p.state, p.fingerprint, p.refusal_reason, p.refusal_account,
		EXISTS (SELECT 1 FROM journal WHERE transaction_id = ?1)
		FROM (SELECT 1) AS one LEFT JOIN prepared_transactions p ON p.transaction_id = ?1`,
	// What a commit or abort reads, in one statement: the record and its
	// legs in order; a tombstone has no legs, so its leg columns are NULL.
	sqlCommitLookup: `SELECT p.state, p.fingerprint, p.refusal_reason, p.refusal_account,
		l.account_id, l.direction, l.amount, l.currency
		FROM prepared_transactions p LEFT JOIN prepared_legs l ON l.transaction_id = p.transaction_id
		WHERE p.transaction_id = ? ORDER BY l.leg_index`,
}

// Close closes the prepared statements and the database.
func (l *Ledger) Close() error {
	l.group.Close()
	return errors.Join(l.stmts.Close(), l.rdb.Close(), l.db.Close())
}

// CommitStats reports the ledger's group commit so far (transactions,
// writes per transaction, commit times).
func (l *Ledger) CommitStats() store.GroupStats { return l.group.Stats() }

func (l *Ledger) nowNanos() int64 { return nanos(time.Now()) }

// nanos is t in Unix nanoseconds, clamped to what an int64 holds (1970 to
// 2262), so an absurd expire_time cannot wrap around.
func nanos(t time.Time) int64 {
	switch {
	case t.Before(time.Unix(0, 0)):
		return 0
	case t.After(time.Unix(0, math.MaxInt64)):
		return math.MaxInt64
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time { return time.Unix(0, n).UTC() }

// EnsureAccount creates the account with its opening balance (journaled as
// kind "opening", transaction id "opening:<id>") if it does not exist, and
// does nothing if it does, so restarts keep balances. It reports whether it
// created the account. An existing account with another currency is an
// error: the configuration no longer matches the books.
func (l *Ledger) EnsureAccount(ctx context.Context, seed AccountSeed) (created bool, err error) {
	if seed.ID == "" || seed.Currency == "" || seed.Opening < 0 {
		return false, fmt.Errorf("%w: account seed %+v", ErrInvalidArgument, seed)
	}
	now := l.nowNanos()
	err = l.group.Do(ctx, func(ctx context.Context, tx *sql.Tx) error {
		var currency string
		err := tx.QueryRowContext(ctx, `SELECT currency FROM accounts WHERE account_id = ?`, seed.ID).Scan(&currency)
		switch {
		case err == nil:
			if currency != seed.Currency {
				return fmt.Errorf("bank: account %s exists in %s, not %s", seed.ID, currency, seed.Currency)
			}
			return nil
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO accounts (account_id, owner, currency, balance, create_time) VALUES (?, ?, ?, ?, ?)`,
			seed.ID, seed.Owner, seed.Currency, seed.Opening, now); err != nil {
			return err
		}
		created = true
		return l.journal(ctx, tx, "opening:"+seed.ID, seed.ID, Credit, seed.Opening, seed.Opening, KindOpening, now)
	})
	if err != nil {
		return false, fmt.Errorf("bank: ensure account %s: %w", seed.ID, err)
	}
	return created, nil
}

// Balance returns one account.
func (l *Ledger) Balance(ctx context.Context, accountID string) (Account, error) {
	a, err := l.getAccount(ctx, nil, accountID)
	if errors.Is(err, sql.ErrNoRows) {
		return Account{}, fmt.Errorf("%w: %s", ErrAccountNotFound, accountID)
	}
	return a, err
}

// Accounts returns every account, ordered by id.
func (l *Ledger) Accounts(ctx context.Context) ([]Account, error) {
	rows, err := l.rdb.QueryContext(ctx, `SELECT `+accountCols+` FROM accounts ORDER BY account_id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Account
	for rows.Next() {
		a, err := scanAccount(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// Entries returns the journal entries of a transaction, in the order they
// were written.
func (l *Ledger) Entries(ctx context.Context, txID string) ([]Entry, error) {
	rows, err := l.rdb.QueryContext(ctx, `SELECT entry_id, transaction_id, account_id, direction, amount, balance, kind, entry_time
		FROM journal WHERE transaction_id = ? ORDER BY entry_id`, txID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Entry
	for rows.Next() {
		var e Entry
		var t int64
		if err := rows.Scan(&e.ID, &e.TransactionID, &e.AccountID, &e.Direction, &e.Amount, &e.Balance, &e.Kind, &t); err != nil {
			return nil, err
		}
		e.Time = fromNanos(t)
		out = append(out, e)
	}
	return out, rows.Err()
}

// Prepare is phase one. In one durable transaction it returns the recorded
// vote if txID is known here (same legs: the same vote; other legs: NO
// ErrIdempotencyKeyReused; aborted tombstone: NO ErrAlreadyAborted), or else
// checks every leg, records the transaction with its legs and expiry, holds
// the debits, reserves the credits and votes YES. A refusal is recorded as
// an aborted transaction carrying the reason, so a repeat votes the same NO.
//
// Vote.Reason carries refusals; the error is only for failures (the vote was
// not taken, nothing was recorded) and for malformed legs
// (ErrInvalidArgument).
func (l *Ledger) Prepare(ctx context.Context, txID string, legs []Leg, expire time.Time) (Vote, error) {
	if err := checkLegs(txID, legs); err != nil {
		return Vote{}, err
	}
	if expire.IsZero() {
		return Vote{}, fmt.Errorf("%w: no expire time", ErrInvalidArgument)
	}
	fp := fingerprint(legs)
	now := l.nowNanos()
	var vote Vote
	err := l.group.Do(ctx, func(ctx context.Context, tx *sql.Tx) error {
		rec, found, used, err := l.prepareLookup(ctx, tx, txID)
		switch {
		case err != nil:
			return err
		case found:
			vote = rec.repeatVote(fp)
			return nil
		case used:
			// An adjustment, or a payment whose record was pruned after it was
			// applied: never hold funds for it again.
			vote = Vote{Reason: ErrIdempotencyKeyReused}
			return nil
		}
		accounts := map[string]Account{}
		for _, lg := range legs {
			if _, ok := accounts[lg.AccountID]; ok {
				continue
			}
			a, err := l.getAccount(ctx, tx, lg.AccountID)
			if errors.Is(err, sql.ErrNoRows) {
				continue
			} else if err != nil {
				return err
			}
			accounts[lg.AccountID] = a
		}
		vote = evaluate(legs, accounts)

		state, decided := StatePrepared, sql.NullInt64{}
		if !vote.Yes {
			state, decided = StateAborted, sql.NullInt64{Int64: now, Valid: true}
		}
		if _, err := l.stmts.Exec(ctx, tx, sqlInsertTxn,
			txID, state, fp, storedRefusal(vote.Reason), vote.AccountID, nanos(expire), now, decided); err != nil {
			return err
		}
		for i, lg := range legs {
			if _, err := l.stmts.Exec(ctx, tx, sqlInsertLeg, txID, i, lg.AccountID, lg.Direction, lg.Amount, lg.Currency); err != nil {
				return err
			}
		}
		if !vote.Yes {
			return nil
		}
		for _, lg := range legs {
			q := sqlHoldDebit
			if lg.Direction == Credit {
				q = sqlReserveCredit
			}
			if _, err := l.stmts.Exec(ctx, tx, q, lg.Amount, lg.AccountID); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return Vote{}, fmt.Errorf("bank: prepare %s: %w", txID, err)
	}
	return vote, nil
}

// evaluate checks the legs against the accounts they name: existence, the
// account being open and currency first (in leg order), then funds and overflow with the amounts of
// legs on the same account summed.
func evaluate(legs []Leg, accounts map[string]Account) Vote {
	for _, lg := range legs {
		a, ok := accounts[lg.AccountID]
		if !ok {
			return Vote{Reason: ErrAccountNotFound, AccountID: lg.AccountID}
		}
		if a.Closed {
			return Vote{Reason: ErrAccountClosed, AccountID: lg.AccountID}
		}
		if a.Currency != lg.Currency {
			return Vote{Reason: ErrCurrencyMismatch, AccountID: lg.AccountID}
		}
	}
	debits, credits := map[string]int64{}, map[string]int64{}
	for _, lg := range legs {
		a := accounts[lg.AccountID]
		switch lg.Direction {
		case Debit:
			sum, ok := add(debits[lg.AccountID], lg.Amount)
			debits[lg.AccountID] = sum
			if _, heldOK := add(a.Held, sum); !ok || !heldOK || sum > a.Available() {
				return Vote{Reason: ErrInsufficientFunds, AccountID: lg.AccountID}
			}
		case Credit:
			sum, ok := add(credits[lg.AccountID], lg.Amount)
			credits[lg.AccountID] = sum
			if !ok || !fits(a, sum) {
				return Vote{Reason: ErrBalanceOverflow, AccountID: lg.AccountID}
			}
		}
	}
	return Vote{Yes: true}
}

// fits reports whether crediting amount keeps balance + incoming within
// int64, so every credit already promised can still be applied.
func fits(a Account, amount int64) bool {
	reserved, ok := add(a.Balance, a.Incoming)
	if !ok {
		return false
	}
	_, ok = add(reserved, amount)
	return ok
}

// add returns a+b for non-negative a and b, and false on overflow.
func add(a, b int64) (int64, bool) {
	if b > math.MaxInt64-a {
		return 0, false
	}
	return a + b, true
}

// Commit is phase two: commit=true applies the legs of a prepared
// transaction (debits leave balance and held, credits enter balance and leave
// incoming), journals each and marks it committed; commit=false releases the
// holds and marks it aborted. Both run in one durable transaction and are
// idempotent. ABORT of an unknown id succeeds and records an aborted
// tombstone (presumed abort). COMMIT of an unknown or aborted id fails with
// ErrCannotCommit; ABORT of a committed one with ErrAlreadyCommitted.
func (l *Ledger) Commit(ctx context.Context, txID string, commit bool) (State, error) {
	if txID == "" {
		return "", fmt.Errorf("%w: empty transaction id", ErrInvalidArgument)
	}
	now := l.nowNanos()
	var state State
	// A COMMIT is not forced (see "Writes that are not forced" in
	// docs/protocol.md): the YES vote before it was, and the gateway keeps
	// its decision, so a commit record lost with the machine leaves the
	// transaction prepared, and the resolver or the re-driver applies the
	// decision again. A process crash loses nothing: the write is in the
	// OS when this returns. An ABORT stays forced: for an id the bank never
	// prepared it writes a tombstone, which must survive for a late prepare
	// of the id to be refused.
	do := l.group.Do
	if commit {
		do = l.group.DoUnforced
	}
	err := do(ctx, func(ctx context.Context, tx *sql.Tx) error {
		rec, legs, err := l.commitLookup(ctx, tx, txID)
		if errors.Is(err, sql.ErrNoRows) {
			applied, err := l.idUsed(ctx, tx, txID, KindPayment)
			switch {
			case err != nil:
				return err
			case applied && commit:
				state = StateCommitted // committed, record pruned since
				return nil
			case applied:
				return fmt.Errorf("%w (its record was pruned, its journal entries remain)", ErrAlreadyCommitted)
			case commit:
				return fmt.Errorf("%w: it was never prepared here", ErrCannotCommit)
			}
			state = StateAborted
			_, err = l.stmts.Exec(ctx, tx, sqlInsertTombstone, txID, now, now, now)
			return err
		} else if err != nil {
			return err
		}
		switch {
		case rec.state == StateCommitted && commit, rec.state == StateAborted && !commit:
			state = rec.state
			return nil
		case rec.state == StateCommitted:
			return ErrAlreadyCommitted
		case rec.state == StateAborted:
			return fmt.Errorf("%w: it was aborted here", ErrCannotCommit)
		}
		for _, lg := range legs {
			if commit {
				err = l.applyLeg(ctx, tx, txID, lg, now)
			} else {
				err = l.releaseLeg(ctx, tx, lg)
			}
			if err != nil {
				return err
			}
		}
		state = StateAborted
		if commit {
			state = StateCommitted
		}
		_, err = l.stmts.Exec(ctx, tx, sqlSetState, state, now, txID)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("bank: %s %s: %w", decisionName(commit), txID, err)
	}
	return state, nil
}

func decisionName(commit bool) string {
	if commit {
		return "commit"
	}
	return "abort"
}

// applyLeg applies one prepared leg and journals it. The CHECK constraints
// of accounts and the reservations made at prepare guarantee it succeeds.
func (l *Ledger) applyLeg(ctx context.Context, tx *sql.Tx, txID string, lg Leg, now int64) error {
	q := sqlApplyDebit
	if lg.Direction == Credit {
		q = sqlApplyCredit
	}
	var balance int64
	if err := l.stmts.QueryRow(ctx, tx, q, lg.Amount, lg.AccountID).Scan(&balance); err != nil {
		return fmt.Errorf("apply %s of %d to %s: %w", lg.Direction, lg.Amount, lg.AccountID, err)
	}
	return l.journal(ctx, tx, txID, lg.AccountID, lg.Direction, lg.Amount, balance, KindPayment, now)
}

// releaseLeg undoes one leg's reservation.
func (l *Ledger) releaseLeg(ctx context.Context, tx *sql.Tx, lg Leg) error {
	q := sqlReleaseDebit
	if lg.Direction == Credit {
		q = sqlReleaseCredit
	}
	_, err := l.stmts.Exec(ctx, tx, q, lg.Amount, lg.AccountID)
	if err != nil {
		return fmt.Errorf("release %s of %d on %s: %w", lg.Direction, lg.Amount, lg.AccountID, err)
	}
	return nil
}

// UpdateBalance credits or debits one account in a single phase, journaled
// as kind "adjustment", idempotent by txID: a repeat with the same leg
// returns the stored result; another leg, or an id used by a payment, fails
// with ErrIdempotencyKeyReused. A closed account refuses both directions
// (ErrAccountClosed). A debit never takes the available balance
// below zero (ErrInsufficientFunds); a credit never lets balance plus
// reserved credits overflow (ErrBalanceOverflow). A refusal is recorded and
// final: a repeat of the id gets the same refusal, so a caller told "refused"
// is never contradicted by a retry of the same id that was still in flight.
func (l *Ledger) UpdateBalance(ctx context.Context, txID string, leg Leg) (Adjustment, error) {
	if err := checkLegs(txID, []Leg{leg}); err != nil {
		return Adjustment{}, err
	}
	now := l.nowNanos()
	var res Adjustment
	// refused is a refusal recorded in this transaction: it commits (so a
	// repeat gets the same answer) and is then returned.
	var refused error
	err := l.group.Do(ctx, func(ctx context.Context, tx *sql.Tx) error {
		var prev Leg
		var applied int64
		err := tx.QueryRowContext(ctx, `SELECT account_id, direction, amount, currency, balance, apply_time
			FROM adjustments WHERE transaction_id = ?`, txID).
			Scan(&prev.AccountID, &prev.Direction, &prev.Amount, &prev.Currency, &res.Balance, &applied)
		switch {
		case err == nil:
			if prev != leg {
				return fmt.Errorf("%w: %s was a %s of %d %s on %s", ErrIdempotencyKeyReused, txID, prev.Direction, prev.Amount, prev.Currency, prev.AccountID)
			}
			res.Currency, res.ApplyTime = prev.Currency, fromNanos(applied)
			return nil
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		var reason string
		err = tx.QueryRowContext(ctx, `SELECT account_id, direction, amount, currency, reason
			FROM refused_adjustments WHERE transaction_id = ?`, txID).
			Scan(&prev.AccountID, &prev.Direction, &prev.Amount, &prev.Currency, &reason)
		switch {
		case err == nil:
			if prev != leg {
				return fmt.Errorf("%w: %s was a %s of %d %s on %s", ErrIdempotencyKeyReused, txID, prev.Direction, prev.Amount, prev.Currency, prev.AccountID)
			}
			refused = fmt.Errorf("%w (refused earlier; the refusal is final for this transaction id)", refusalFromStored(reason))
			return nil
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		var seen int
		err = tx.QueryRowContext(ctx, `SELECT 1 FROM prepared_transactions WHERE transaction_id = ?`, txID).Scan(&seen)
		switch {
		case err == nil:
			return fmt.Errorf("%w: %s is a payment here", ErrIdempotencyKeyReused, txID)
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		if used, err := l.idUsed(ctx, tx, txID, ""); err != nil {
			return err
		} else if used {
			return fmt.Errorf("%w: %s is in the journal already", ErrIdempotencyKeyReused, txID)
		}

		// refuse records err (a refusal sentinel, wrapped) under its stored code.
		refuse := func(err error) error {
			if _, ierr := tx.ExecContext(ctx, `INSERT INTO refused_adjustments (transaction_id, account_id, direction,
				amount, currency, reason, refuse_time) VALUES (?, ?, ?, ?, ?, ?, ?)`,
				txID, leg.AccountID, leg.Direction, leg.Amount, leg.Currency, storedRefusal(err), now); ierr != nil {
				return ierr
			}
			refused = err
			return nil
		}
		a, err := l.getAccount(ctx, tx, leg.AccountID)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return refuse(fmt.Errorf("%w: %s", ErrAccountNotFound, leg.AccountID))
		case err != nil:
			return err
		case a.Closed:
			return refuse(fmt.Errorf("%w: %s", ErrAccountClosed, leg.AccountID))
		case a.Currency != leg.Currency:
			return refuse(fmt.Errorf("%w: account %s holds %s, not %s", ErrCurrencyMismatch, leg.AccountID, a.Currency, leg.Currency))
		}
		balance := a.Balance
		switch leg.Direction {
		case Debit:
			if leg.Amount > a.Available() {
				return refuse(fmt.Errorf("%w: account %s has %d available, debit is %d", ErrInsufficientFunds, leg.AccountID, a.Available(), leg.Amount))
			}
			balance -= leg.Amount
		case Credit:
			if !fits(a, leg.Amount) {
				return refuse(fmt.Errorf("%w: crediting %d to account %s", ErrBalanceOverflow, leg.Amount, leg.AccountID))
			}
			balance += leg.Amount
		}
		if _, err := tx.ExecContext(ctx, `UPDATE accounts SET balance = ? WHERE account_id = ?`, balance, leg.AccountID); err != nil {
			return err
		}
		if err := l.journal(ctx, tx, txID, leg.AccountID, leg.Direction, leg.Amount, balance, KindAdjustment, now); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO adjustments (transaction_id, account_id, direction, amount, currency, balance, apply_time)
			VALUES (?, ?, ?, ?, ?, ?, ?)`, txID, leg.AccountID, leg.Direction, leg.Amount, leg.Currency, balance, now); err != nil {
			return err
		}
		res = Adjustment{Balance: balance, Currency: a.Currency, ApplyTime: fromNanos(now)}
		return nil
	})
	if err == nil {
		err = refused
	}
	if err != nil {
		return Adjustment{}, fmt.Errorf("bank: update balance %s: %w", txID, err)
	}
	return res, nil
}

// Expired returns the ids of prepared transactions whose expire_time is at or
// before now, oldest expiry first. They wait for a decision the resolver must
// ask the gateway for.
func (l *Ledger) Expired(ctx context.Context, now time.Time) ([]string, error) {
	rows, err := l.rdb.QueryContext(ctx, `SELECT transaction_id FROM prepared_transactions
		WHERE state = 'prepared' AND expire_time <= ? ORDER BY expire_time, transaction_id`, nanos(now))
	if err != nil {
		return nil, fmt.Errorf("bank: list expired: %w", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// LedgerStats are the counts the bank's metrics export.
type LedgerStats struct {
	Prepared int              // prepared transactions awaiting phase two
	Expired  int              // of those, the ones past their expire_time
	Accounts int              // accounts
	Held     map[string]int64 // funds held by prepared debits, by currency
}

// Stats counts prepared transactions (and those expired at now) and
// accounts, and sums held funds by currency, with aggregate queries: a
// scrape reads no rows one by one.
func (l *Ledger) Stats(ctx context.Context, now time.Time) (LedgerStats, error) {
	st := LedgerStats{Held: map[string]int64{}}
	if err := l.rdb.QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(SUM(CASE WHEN expire_time <= ? THEN 1 ELSE 0 END), 0)
		FROM prepared_transactions WHERE state = 'prepared'`, nanos(now)).Scan(&st.Prepared, &st.Expired); err != nil {
		return LedgerStats{}, fmt.Errorf("bank: count prepared: %w", err)
	}
	rows, err := l.rdb.QueryContext(ctx, `SELECT currency, COUNT(*), CAST(SUM(held) AS BIGINT) FROM accounts GROUP BY currency`)
	if err != nil {
		return LedgerStats{}, fmt.Errorf("bank: count accounts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			currency string
			n        int
			held     int64
		)
		if err := rows.Scan(&currency, &n, &held); err != nil {
			return LedgerStats{}, err
		}
		st.Accounts += n
		st.Held[currency] = held
	}
	return st, rows.Err()
}

// Prune deletes committed and aborted transaction records (with their legs)
// decided before before, and returns how many it deleted. Prepared records,
// the journal and the adjustments are never pruned.
func (l *Ledger) Prune(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := l.group.Do(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM prepared_transactions WHERE state <> 'prepared' AND decide_time < ?`, nanos(before))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("bank: prune: %w", err)
	}
	return n, nil
}

// State returns where txID stands here; ok is false if it is unknown (never
// prepared, or pruned).
func (l *Ledger) State(ctx context.Context, txID string) (state State, ok bool, err error) {
	err = l.rdb.QueryRowContext(ctx, `SELECT state FROM prepared_transactions WHERE transaction_id = ?`, txID).Scan(&state)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	return state, true, nil
}

// checkLegs rejects what request validation should have caught, and two
// legs that move the same account the same way (the journal records one
// movement per transaction, account and direction).
func checkLegs(txID string, legs []Leg) error {
	if txID == "" {
		return fmt.Errorf("%w: empty transaction id", ErrInvalidArgument)
	}
	if len(legs) == 0 {
		return fmt.Errorf("%w: no legs", ErrInvalidArgument)
	}
	for i, lg := range legs {
		switch {
		case lg.AccountID == "":
			return fmt.Errorf("%w: leg %d has no account", ErrInvalidArgument, i)
		case lg.Direction != Credit && lg.Direction != Debit:
			return fmt.Errorf("%w: leg %d has direction %q", ErrInvalidArgument, i, lg.Direction)
		case lg.Amount <= 0:
			return fmt.Errorf("%w: leg %d has amount %d", ErrInvalidArgument, i, lg.Amount)
		case lg.Currency == "":
			return fmt.Errorf("%w: leg %d has no currency", ErrInvalidArgument, i)
		}
		for _, prev := range legs[:i] {
			if prev.AccountID == lg.AccountID && prev.Direction == lg.Direction {
				return fmt.Errorf("%w: two %s legs on account %s", ErrInvalidArgument, lg.Direction, lg.AccountID)
			}
		}
	}
	return nil
}

// fingerprint identifies a set of legs independently of their order.
func fingerprint(legs []Leg) string {
	lines := make([]string, len(legs))
	for i, lg := range legs {
		lines[i] = strings.Join([]string{lg.AccountID, string(lg.Direction), strconv.FormatInt(lg.Amount, 10), lg.Currency}, "\x00")
	}
	slices.Sort(lines)
	sum := sha256.Sum256([]byte(strings.Join(lines, "\n")))
	return hex.EncodeToString(sum[:])
}

const accountCols = `account_id, owner, currency, balance, held, incoming, state, create_time, close_time`

// scanAccount reads a row of accountCols.
func scanAccount(row interface{ Scan(dest ...any) error }) (Account, error) {
	var (
		a      Account
		state  string
		opened int64
		closed sql.NullInt64
	)
	if err := row.Scan(&a.ID, &a.Owner, &a.Currency, &a.Balance, &a.Held, &a.Incoming, &state, &opened, &closed); err != nil {
		return Account{}, err
	}
	a.Closed, a.OpenTime = state == accountClosed, fromNanos(opened)
	if closed.Valid {
		a.CloseTime = fromNanos(closed.Int64)
	}
	return a, nil
}

// getAccount reads one account in tx, or outside any transaction if tx is
// nil. Inside a transaction always pass it: the pool has one connection.
func (l *Ledger) getAccount(ctx context.Context, tx *sql.Tx, id string) (Account, error) {
	return scanAccount(l.stmts.QueryRow(ctx, tx, sqlGetAccount, id))
}

// txnRecord is a row of prepared_transactions.
type txnRecord struct {
	state          State
	fingerprint    string
	refusalReason  string
	refusalAccount string
}

// prepareLookup reads, in one statement, what Prepare needs before it
// votes: the record of id if there is one (found), and whether the journal
// has entries for id (used).
func (l *Ledger) prepareLookup(ctx context.Context, tx *sql.Tx, id string) (r txnRecord, found, used bool, err error) {
	var state, fp, reason, account sql.NullString
	err = l.stmts.QueryRow(ctx, tx, sqlPrepareLookup, id).Scan(&state, &fp, &reason, &account, &used)
	if err != nil {
		return txnRecord{}, false, false, err
	}
	if !state.Valid {
		return txnRecord{}, false, used, nil
	}
	return txnRecord{state: State(state.String), fingerprint: fp.String, refusalReason: reason.String, refusalAccount: account.String}, true, used, nil
}

// commitLookup reads, in one statement, the record of id and its legs in
// order; sql.ErrNoRows if there is no record.
func (l *Ledger) commitLookup(ctx context.Context, tx *sql.Tx, id string) (txnRecord, []Leg, error) {
	rows, err := l.stmts.Query(ctx, tx, sqlCommitLookup, id)
	if err != nil {
		return txnRecord{}, nil, err
	}
	defer rows.Close()
	var r txnRecord
	var legs []Leg
	found := false
	for rows.Next() {
		var acct, dir, cur sql.NullString
		var amount sql.NullInt64
		if err := rows.Scan(&r.state, &r.fingerprint, &r.refusalReason, &r.refusalAccount, &acct, &dir, &amount, &cur); err != nil {
			return txnRecord{}, nil, err
		}
		found = true
		if acct.Valid {
			legs = append(legs, Leg{AccountID: acct.String, Direction: Direction(dir.String), Amount: amount.Int64, Currency: cur.String})
		}
	}
	if err := rows.Err(); err != nil {
		return txnRecord{}, nil, err
	}
	if !found {
		return txnRecord{}, nil, sql.ErrNoRows
	}
	return r, legs, nil
}

// repeatVote is the vote for a prepare of a transaction already recorded.
func (r txnRecord) repeatVote(fp string) Vote {
	switch {
	case r.fingerprint == "": // tombstone: ABORT arrived first
		return Vote{Reason: ErrAlreadyAborted}
	case r.fingerprint != fp:
		return Vote{Reason: ErrIdempotencyKeyReused}
	case r.state == StateAborted && r.refusalReason != "":
		return Vote{Reason: refusalFromStored(r.refusalReason), AccountID: r.refusalAccount}
	case r.state == StateAborted:
		return Vote{Reason: ErrAlreadyAborted}
	default: // prepared or committed
		return Vote{Yes: true}
	}
}

// idUsed reports whether the journal has entries for id (of kind, if not
// empty).
func (l *Ledger) idUsed(ctx context.Context, tx *sql.Tx, id, kind string) (bool, error) {
	var seen int
	err := l.stmts.QueryRow(ctx, tx, sqlIDUsed, id, kind).Scan(&seen)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

func (l *Ledger) journal(ctx context.Context, tx *sql.Tx, txID, account string, dir Direction, amount, balance int64, kind string, now int64) error {
	_, err := l.stmts.Exec(ctx, tx, sqlJournal, txID, account, dir, amount, balance, kind, now)
	if err != nil {
		return fmt.Errorf("journal %s %s: %w", txID, account, err)
	}
	return nil
}
