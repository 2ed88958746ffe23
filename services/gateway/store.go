package gateway

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
	"github.com/remitpay/remit/internal/rpcerr"
	"github.com/remitpay/remit/internal/store"
)

//go:embed migrations/*.sql migrations/postgres/*.sql
var migrationFiles embed.FS

// Kind says whether a transaction is a two-phase payment or a single-phase
// adjustment (deposit or withdrawal).
type Kind string

// Transaction kinds.
const (
	KindPayment    Kind = "payment"
	KindAdjustment Kind = "adjustment"
)

// Status is a transaction's life-cycle state; only StatusProcessing changes.
type Status string

// Statuses.
const (
	StatusProcessing Status = "processing"
	StatusSucceeded  Status = "succeeded"
	StatusFailed     Status = "failed"
)

// Decision is the coordinator's durable phase-two verdict.
type Decision string

// Decisions; DecisionNone means phase one may still be running.
const (
	DecisionNone   Decision = ""
	DecisionCommit Decision = "commit"
	DecisionAbort  Decision = "abort"
)

// Account names an account at a bank.
type Account struct {
	Bank string
	ID   string
}

// String renders bank/account, the form the CLI and logs use.
func (a Account) String() string { return a.Bank + "/" + a.ID }

// Txn is one row of the coordinator log.
type Txn struct {
	Seq             int64
	ID              string
	Kind            Kind
	ClientID        string
	Fingerprint     string
	Payer, Payee    Account // for adjustments Payee is the account moved
	Direction       string  // adjustments: "credit" or "debit"
	Amount          int64
	Currency        string
	Description     string
	Status          Status
	FailureReason   gatewayv1.FailureReason // UNSPECIFIED unless Status is failed
	FailureBank     string                  // the bank the failure is about, if any
	FailureAccount  string                  // the account a bank refused, if it named one
	Decision        Decision
	PrepareDeadline time.Time
	CreateTime      time.Time
	CompleteTime    time.Time
	AckTime         time.Time
	ResultBalance   int64
	Participants    []string // banks, sorted
	// Excused are the participants that voted TRANSACTION_ID_CONFLICT:
	// they hold the id for another transaction, so they are never sent
	// this one's decision, nor told its outcome. Sorted; a subset of
	// Participants.
	Excused []string
	// RefundOf is, for a refund, the transaction id of the payment it
	// refunds ("" for every other transaction); RefundReason is why.
	RefundOf     string
	RefundReason gatewayv1.RefundReason
	// Refunds are, for a payment that is not a refund, its refunds of
	// every status, oldest first. Only the reads that show a payment to a
	// client fill it (Store.WithRefunds); the coordinator never needs it.
	Refunds []Refund
}

// Refund is one refund of a payment, as the payment lists it.
type Refund struct {
	ID         string
	Amount     int64
	Status     Status
	Reason     gatewayv1.RefundReason
	CreateTime time.Time
}

// Refunded is the sum of t's SUCCEEDED refunds (of those Refunds holds).
func (t *Txn) Refunded() int64 {
	var sum int64
	for _, r := range t.Refunds {
		if r.Status == StatusSucceeded {
			sum += r.Amount
		}
	}
	return sum
}

// Values of participants.acked.
const (
	participantPending = 0 // phase two not yet acknowledged
	participantAcked   = 1 // the bank acknowledged the decision
	participantExcused = 2 // voted TRANSACTION_ID_CONFLICT: never sent the decision
)

// Failure is why a transaction failed: its reason and, when a bank refused,
// the bank and the account it named.
type Failure struct {
	Reason    gatewayv1.FailureReason
	Bank      string
	AccountID string
}

// storedReason is how a FailureReason is stored in failure_reason: its short
// name, e.g. "INSUFFICIENT_FUNDS" ("" for UNSPECIFIED), the same string as
// the ErrorInfo reason. FailureReason values are never renamed (buf breaking
// guards the names), so the column stays readable by every version.
func storedReason(r gatewayv1.FailureReason) string { return rpcerr.EnumReason(r) }

// parseStoredReason is the inverse of storedReason. Rows written before the
// enum was carried end to end may hold "IDEMPOTENCY_KEY_REUSED" (a bank's
// conflict on an adjustment), which is TRANSACTION_ID_CONFLICT; any other
// unknown string reads as DECLINED_BY_BANK, still a failure.
func parseStoredReason(s string) gatewayv1.FailureReason {
	switch s {
	case "":
		return gatewayv1.FailureReason_FAILURE_REASON_UNSPECIFIED
	case "IDEMPOTENCY_KEY_REUSED":
		return gatewayv1.FailureReason_FAILURE_REASON_TRANSACTION_ID_CONFLICT
	}
	if r, ok := rpcerr.ParseEnumReason[gatewayv1.FailureReason](s); ok {
		return r
	}
	return gatewayv1.FailureReason_FAILURE_REASON_DECLINED_BY_BANK
}

// parseRefundReason reads refund_reason, stored as storedReason stores a
// FailureReason (the short name, "" for UNSPECIFIED); an unknown string reads
// as UNSPECIFIED, "no reason given".
func parseRefundReason(s string) gatewayv1.RefundReason {
	r, _ := rpcerr.ParseEnumReason[gatewayv1.RefundReason](s)
	return r
}

// Event is one entry of the per-account event log.
type Event struct {
	ID      int64
	Account Account
	Type    string // succeeded | failed | acknowledged
	TxID    string
	Time    time.Time
}

// BankRecord is one row of the bank registry.
type BankRecord struct {
	Name         string
	URL          string
	RegisterTime time.Time
	LastSeen     time.Time
}

// Store is the gateway's durable coordinator log, in embedded SQLite or in
// PostgreSQL (see store).
type Store struct {
	db    *sql.DB           // the writer: one connection
	rdb   *sql.DB           // reads outside a transaction (store.OpenSQLiteReader)
	stmts *store.Statements // statementSQL, prepared once
	// group commits the writes of concurrent calls together: one SQLite
	// transaction and one fsync for many claims, decisions and
	// acknowledgements, each call answered only after that fsync (see
	// store.Group).
	group *store.Group

	mu      sync.Mutex
	changed chan struct{} // closed and replaced whenever events are appended

	// announce asks the publisher UseBus started to tell the other
	// replicas of new events (nil without a bus); announced is closed when
	// it has stopped.
	announce  chan struct{}
	announced chan struct{}

	// reads counts Get and Events calls, so that tests can tell how many
	// reads the fan-out of an event costs.
	reads atomic.Int64
}

// OpenStore opens (creating and migrating) the coordinator log at target:
// an SQLite file, or a postgres:// URL (store.Open).
func OpenStore(ctx context.Context, target string) (*Store, error) {
	db, err := store.Open(ctx, target, "gateway")
	if err != nil {
		return nil, err
	}
	migrations, err := store.MigrationsFor(db, migrationFiles, "migrations")
	if err != nil {
		return nil, errors.Join(err, db.Close())
	}
	if err := store.Migrate(ctx, db, "gateway", migrations); err != nil {
		return nil, errors.Join(err, db.Close())
	}
	stmts, err := store.Prepare(ctx, db, statementSQL[:])
	if err != nil {
		return nil, errors.Join(err, db.Close())
	}
	rdb, err := store.OpenReader(ctx, target)
	if err != nil {
		return nil, errors.Join(err, stmts.Close(), db.Close())
	}
	if err := stmts.AddReader(ctx, rdb); err != nil {
		return nil, errors.Join(err, stmts.Close(), rdb.Close(), db.Close())
	}
	//nolint:contextcheck // the committer outlives any caller
	return &Store{db: db, rdb: rdb, stmts: stmts, group: store.NewGroup(db, store.GroupOptions{}), changed: make(chan struct{})}, nil
}

// The statements of the payment path (claim, phase one, the decision, phase
// two, the acknowledgements, the reads a payment's RPCs make), prepared once
// when the store opens so that SQLite does not parse them again on every
// call. Each constant names its SQL in statementSQL. The rest of the SQL
// (recovery, listing, the bank registry) runs rarely and stays inline.
const (
	sqlClaim = iota
	sqlInsertParticipant
	sqlGetTxn
	sqlGetParticipants
	sqlDecide
	sqlSetAcked
	sqlUnackedParticipants
	sqlInsertEvent
	sqlInsertEvents2
	sqlInsertParticipants2
	sqlSetAcked2
	sqlAcknowledge
	sqlFinishAdjustment
	sqlRefundable
	numStatements
)

var statementSQL = [numStatements]string{
	sqlClaim: `INSERT INTO transactions (transaction_id, kind, client_id, fingerprint,
		payer_bank, payer_account, payee_bank, payee_account, direction, amount, currency, description,
		status, failure_reason, failure_bank, failure_account, decision, decide_time, prepare_deadline,
		create_time, complete_time, refunded_transaction_id, refund_reason)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (transaction_id) DO NOTHING
		RETURNING rowid`,
	sqlInsertParticipant: `INSERT INTO participants (transaction_id, bank) VALUES (?, ?)`,
	sqlGetTxn:            `SELECT ` + txnColumns + ` FROM transactions WHERE transaction_id = ?`,
	sqlGetParticipants:   `SELECT bank, acked FROM participants WHERE transaction_id = ? ORDER BY bank`,
	sqlDecide: `UPDATE transactions SET decision = ?, decide_time = ?, status = ?,
		failure_reason = ?, failure_bank = ?, failure_account = ?, complete_time = ?
		WHERE transaction_id = ? AND decision IS NULL AND kind = 'payment'
		RETURNING rowid`,
	// acked moves from participantPending only: to participantAcked or
	// participantExcused.
	sqlSetAcked:            `UPDATE participants SET acked = ? WHERE transaction_id = ? AND bank = ? AND acked = ?`,
	sqlUnackedParticipants: `SELECT bank FROM participants WHERE transaction_id = ? AND acked = 0 ORDER BY bank`,
	sqlInsertEvent: `INSERT INTO events (bank, account_id, type, transaction_id, event_time)
		VALUES (?, ?, ?, ?, ?)`,
	// The two-row forms of the statements a cross-account payment runs
	// once per account or bank: one statement instead of two, in the same
	// order (a multi-row INSERT inserts its rows in the order given).
	sqlInsertEvents2: `INSERT INTO events (bank, account_id, type, transaction_id, event_time)
		VALUES (?, ?, ?, ?, ?), (?, ?, ?, ?, ?)`,
	sqlInsertParticipants2: `INSERT INTO participants (transaction_id, bank) VALUES (?, ?), (?, ?)`,
	sqlSetAcked2:           `UPDATE participants SET acked = ? WHERE transaction_id = ? AND bank IN (?, ?) AND acked = ?`,
	sqlAcknowledge: `UPDATE transactions SET acknowledge_time = ?
		WHERE transaction_id = ? AND status = 'succeeded' AND kind = 'payment' AND acknowledge_time IS NULL`,
	sqlFinishAdjustment: `UPDATE transactions SET status = ?, failure_reason = ?, failure_bank = ?,
		failure_account = ?, result_balance = ?, complete_time = ?
		WHERE transaction_id = ? AND kind = 'adjustment' AND status = 'processing'`,
	// What the refundable-amount check reads of the payment refunded: its
	// kind, status, own refunded_transaction_id and amount, and the sum of
	// its refunds that are processing or succeeded, but for the refund
	// being claimed (the second argument).
	sqlRefundable: `SELECT o.kind, o.status, o.refunded_transaction_id, o.amount,
		(SELECT COALESCE(SUM(r.amount), 0) FROM transactions r
			WHERE r.refunded_transaction_id != '' AND r.refunded_transaction_id = o.transaction_id
			AND r.status IN ('processing', 'succeeded') AND r.transaction_id != ?),
		(SELECT COUNT(*) FROM transactions r
			WHERE r.refunded_transaction_id != '' AND r.refunded_transaction_id = o.transaction_id
			AND r.transaction_id != ?)
		FROM transactions o WHERE o.transaction_id = ?`,
}

// EventsChanged returns a channel that is closed the next time an event is
// committed, by this process or, on a shared PostgreSQL database, another
// (see UseBus). Take it before reading events so none is missed.
func (s *Store) EventsChanged() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

// notify wakes the watchers of this process and tells the other processes
// of the database (UseBus) that events were committed.
func (s *Store) notify() {
	s.wake()
	if s.announce != nil {
		select {
		case s.announce <- struct{}{}:
		default: // a notice is due already: it covers these events too
		}
	}
}

func (s *Store) wake() {
	s.mu.Lock()
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

// Shared reports whether the log is shared with other gateway replicas
// (UseBus was given a bus).
func (s *Store) Shared() bool { return s.announce != nil }

// topicEvents is the change bus's topic of the event log: a notice means
// "events were committed; read from where you are".
const topicEvents = "events"

// UseBus makes the events this process commits wake the WatchPayments
// streams of the other gateway replicas on the same PostgreSQL database,
// and theirs this one's. Notices are coalesced: while one is being sent,
// the commits that follow share the next. Call it before bus.Run and before
// the store takes writes; a nil bus (SQLite) changes nothing.
func (s *Store) UseBus(bus *store.Bus, log *slog.Logger) {
	if bus == nil {
		return
	}
	s.announce = make(chan struct{}, 1)
	s.announced = make(chan struct{})
	bus.Subscribe(topicEvents, func(string) { s.wake() }, s.wake)
	go func() {
		defer close(s.announced)
		for range s.announce {
			if err := bus.Publish(context.Background(), topicEvents, ""); err != nil {
				// The streams of the other replicas catch up with these
				// events at the next notice that reaches them, or when
				// their listener reconnects.
				log.Warn("cannot tell the other gateway replicas of new payment events", "err", err)
			}
		}
	}()
}

// Close closes the prepared statements and the database.
func (s *Store) Close() error {
	s.group.Close()
	if s.announce != nil {
		close(s.announce)
		<-s.announced
	}
	return errors.Join(s.stmts.Close(), s.rdb.Close(), s.db.Close())
}

// CommitStats reports the store's group commit so far (transactions,
// writes per transaction, commit times).
func (s *Store) CommitStats() store.GroupStats { return s.group.Stats() }

func nanos(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixNano()
}

func fromNanos(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return time.Unix(0, n.Int64).UTC()
}

const txnColumns = `rowid, transaction_id, kind, client_id, fingerprint, payer_bank, payer_account,
	payee_bank, payee_account, direction, amount, currency, description, status, failure_reason,
	failure_bank, failure_account, decision, prepare_deadline, create_time, complete_time, acknowledge_time, result_balance,
	refunded_transaction_id, refund_reason`

type scanner interface{ Scan(dest ...any) error }

func scanTxn(r scanner) (*Txn, error) {
	var t Txn
	var decision sql.NullString
	var reason, refundReason string
	var deadline, create, complete, ack, bal sql.NullInt64
	err := r.Scan(&t.Seq, &t.ID, &t.Kind, &t.ClientID, &t.Fingerprint, &t.Payer.Bank, &t.Payer.ID,
		&t.Payee.Bank, &t.Payee.ID, &t.Direction, &t.Amount, &t.Currency, &t.Description, &t.Status,
		&reason, &t.FailureBank, &t.FailureAccount, &decision, &deadline, &create, &complete, &ack, &bal,
		&t.RefundOf, &refundReason)
	if err != nil {
		return nil, err
	}
	t.FailureReason = parseStoredReason(reason)
	t.RefundReason = parseRefundReason(refundReason)
	t.Decision = Decision(decision.String)
	t.PrepareDeadline = fromNanos(deadline)
	t.CreateTime = fromNanos(create)
	t.CompleteTime = fromNanos(complete)
	t.AckTime = fromNanos(ack)
	t.ResultBalance = bal.Int64
	return &t, nil
}

// errNotFound is returned by Get for an unknown transaction id.
var errNotFound = errors.New("transaction not found")

// getTxn reads one transaction with its participants, in tx (or, tx nil,
// outside any transaction).
func (s *Store) getTxn(ctx context.Context, tx *sql.Tx, id string) (*Txn, error) {
	t, err := scanTxn(s.stmts.QueryRow(ctx, tx, sqlGetTxn, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("read transaction: %w", err)
	}
	rows, err := s.stmts.Query(ctx, tx, sqlGetParticipants, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			b     string
			acked int
		)
		if err := rows.Scan(&b, &acked); err != nil {
			return nil, err
		}
		t.Participants = append(t.Participants, b)
		if acked == participantExcused {
			t.Excused = append(t.Excused, b)
		}
	}
	return t, rows.Err()
}

// Get reads one transaction with its participants.
func (s *Store) Get(ctx context.Context, id string) (*Txn, error) {
	s.reads.Add(1)
	return s.getTxn(ctx, nil, id)
}

// Claim inserts t if its id is unused and reports true. If the id exists it
// returns the stored row and false, and writes nothing: the caller compares
// fingerprints. A claim with Status failed is a final decline recorded
// together with its events in the same transaction.
//
// A refund (t.RefundOf set) is inserted only if the payment it refunds can
// take it (CheckRefund), checked in the same transaction as the insert, after
// every write before it: two refunds of one payment claimed at once are
// checked one after the other, each counting the other, so together they
// never exceed the payment. If the check fails Claim returns its error
// (ErrPaymentNotRefundable, ErrRefundExceedsPayment) and nothing is written.
func (s *Store) Claim(ctx context.Context, t *Txn) (*Txn, bool, error) {
	var existing *Txn
	var seq int64
	// Forced, unlike the acknowledgements: see "Why the claim stays
	// forced" in docs/protocol.md.
	err := s.group.Do(ctx, func(ctx context.Context, tx *sql.Tx) error {
		existing = nil
		err := s.stmts.QueryRow(ctx, tx, sqlClaim,
			t.ID, t.Kind, t.ClientID, t.Fingerprint, t.Payer.Bank, t.Payer.ID, t.Payee.Bank, t.Payee.ID,
			t.Direction, t.Amount, t.Currency, t.Description, t.Status, storedReason(t.FailureReason), t.FailureBank, t.FailureAccount,
			nullString(string(t.Decision)), decideTime(t), nanos(t.PrepareDeadline), nanos(t.CreateTime), nanos(t.CompleteTime),
			t.RefundOf, rpcerr.EnumReason(t.RefundReason)).Scan(&seq)
		if errors.Is(err, sql.ErrNoRows) {
			existing, err = s.getTxn(ctx, tx, t.ID)
			return err
		}
		if err != nil {
			return fmt.Errorf("claim transaction: %w", err)
		}
		if t.RefundOf != "" {
			// After the insert, so that an id already in the log is
			// answered as a replay whatever the payment's state now; a
			// refusal undoes the insert (the write's savepoint).
			if err := s.checkRefund(ctx, tx, t.RefundOf, t.ID, t.Amount); err != nil {
				return err
			}
		}
		if p := t.Participants; len(p) == 2 {
			if _, err := s.stmts.Exec(ctx, tx, sqlInsertParticipants2, t.ID, p[0], t.ID, p[1]); err != nil {
				return err
			}
		} else {
			for _, b := range p {
				if _, err := s.stmts.Exec(ctx, tx, sqlInsertParticipant, t.ID, b); err != nil {
					return err
				}
			}
		}
		if t.Kind == KindPayment && t.Status != StatusProcessing {
			return s.insertOutcomeEvents(ctx, tx, t, t.CreateTime)
		}
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	if existing != nil {
		return existing, false, nil
	}
	if t.Kind == KindPayment && t.Status != StatusProcessing {
		s.notify()
	}
	return asStored(t, seq), true, nil
}

// asStored is a copy of t, just inserted as row seq, as getTxn would read
// it back: times through their stored nanoseconds, in UTC.
func asStored(t *Txn, seq int64) *Txn {
	out := *t
	out.Seq = seq
	out.PrepareDeadline = stored(t.PrepareDeadline)
	out.CreateTime = stored(t.CreateTime)
	out.CompleteTime = stored(t.CompleteTime)
	out.AckTime = stored(t.AckTime)
	out.Participants = slices.Clone(t.Participants)
	out.Excused = slices.Clone(t.Excused)
	return &out
}

// CheckRefund reports whether payment id can take a refund of amount now:
// ErrPaymentNotRefundable unless it is a SUCCEEDED payment that is not
// itself a refund, ErrRefundExceedsPayment if its refunds that are
// processing or succeeded plus amount would exceed it. It is a read outside
// any transaction, so that a refund that cannot be taken is refused before
// anything else; what decides is the same check inside Claim.
func (s *Store) CheckRefund(ctx context.Context, id string, amount int64) error {
	return s.checkRefund(ctx, nil, id, "", amount)
}

// checkRefund is CheckRefund in tx (nil: outside any transaction), not
// counting the refund self (already inserted when Claim checks).
func (s *Store) checkRefund(ctx context.Context, tx *sql.Tx, id, self string, amount int64) error {
	var (
		kind            Kind
		status          Status
		refundOf        string
		paid, refunding int64
		refunds         int
	)
	err := s.stmts.QueryRow(ctx, tx, sqlRefundable, self, self, id).Scan(&kind, &status, &refundOf, &paid, &refunding, &refunds)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("%w: %s", ErrNotFound, id)
	case err != nil:
		return fmt.Errorf("read refunded payment: %w", err)
	case kind != KindPayment || refundOf != "":
		return fmt.Errorf("%w: it is a refund itself", ErrPaymentNotRefundable)
	case status != StatusSucceeded:
		return fmt.Errorf("%w: it is %s", ErrPaymentNotRefundable, status)
	case refunding+amount > paid:
		return fmt.Errorf("%w: %d of its %d is left to refund", ErrRefundExceedsPayment, paid-refunding, paid)
	case refunds >= MaxRefundsPerPayment:
		return fmt.Errorf("%w: it has %d", ErrTooManyRefunds, refunds)
	}
	return nil
}

// MaxRefundsPerPayment bounds the refunds of one payment, of every status:
// a payment carries all of them in its refunds field, so without a bound a
// payee could grow the payer's payment (with declined refunds, which cost
// nothing) past what clients accept in one message.
const MaxRefundsPerPayment = 100

// sqlRefundsOf lists refunds of the payments whose ids follow, as
// placeholders, and a closing parenthesis.
const sqlRefundsOf = `SELECT transaction_id, refunded_transaction_id, amount, status, refund_reason, create_time
	FROM transactions WHERE refunded_transaction_id != '' AND refunded_transaction_id IN (`

// WithRefunds fills the Refunds of every payment in txns that is not a
// refund (replacing what they held), with one query for all of them.
func (s *Store) WithRefunds(ctx context.Context, txns ...*Txn) error {
	var (
		args []any
		of   = map[string][]*Txn{}
	)
	for _, t := range txns {
		if t == nil || t.Kind != KindPayment || t.RefundOf != "" {
			continue
		}
		t.Refunds = nil
		if _, dup := of[t.ID]; !dup {
			args = append(args, t.ID)
		}
		if !slices.Contains(of[t.ID], t) {
			of[t.ID] = append(of[t.ID], t)
		}
	}
	if len(args) == 0 {
		return nil
	}
	s.reads.Add(1)
	marks := strings.TrimSuffix(strings.Repeat("?, ", len(args)), ", ")
	// Only placeholders are joined in; every value is a bound parameter.
	// The first term is the partial index's, so that SQLite uses it.
	rows, err := s.rdb.QueryContext(ctx, sqlRefundsOf+marks+`) ORDER BY rowid`, args...)
	if err != nil {
		return fmt.Errorf("read refunds: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			r        Refund
			original string
			reason   string
			create   sql.NullInt64
		)
		if err := rows.Scan(&r.ID, &original, &r.Amount, &r.Status, &reason, &create); err != nil {
			return fmt.Errorf("read refunds: %w", err)
		}
		r.Reason, r.CreateTime = parseRefundReason(reason), fromNanos(create)
		for _, t := range of[original] {
			t.Refunds = append(t.Refunds, r)
		}
	}
	return rows.Err()
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func decideTime(t *Txn) any {
	if t.Decision == DecisionNone {
		return nil
	}
	return nanos(t.CreateTime)
}

func (s *Store) insertOutcomeEvents(ctx context.Context, tx *sql.Tx, t *Txn, at time.Time) error {
	typ := "succeeded"
	if t.Status == StatusFailed {
		typ = "failed"
	}
	return s.insertEvents(ctx, tx, t, typ, at)
}

func (s *Store) insertEvents(ctx context.Context, tx *sql.Tx, t *Txn, typ string, at time.Time) error {
	if t.Payee != t.Payer {
		ns := at.UnixNano()
		if _, err := s.stmts.Exec(ctx, tx, sqlInsertEvents2, t.Payer.Bank, t.Payer.ID, typ, t.ID, ns,
			t.Payee.Bank, t.Payee.ID, typ, t.ID, ns); err != nil {
			return fmt.Errorf("record events: %w", err)
		}
		return nil
	}
	if _, err := s.stmts.Exec(ctx, tx, sqlInsertEvent, t.Payer.Bank, t.Payer.ID, typ, t.ID, at.UnixNano()); err != nil {
		return fmt.Errorf("record event: %w", err)
	}
	return nil
}

// Decide records the decision for a payment with compare-and-set: it is
// written only if no decision exists yet. It returns the decision that stands
// (the caller's, or the one that landed first) and the row as it is now.
// A COMMIT makes the payment SUCCEEDED, an ABORT makes it FAILED with f.
// If the decision that stands is ABORT, the participants in unrelated are
// marked acknowledged in the same transaction, so phase two never sends
// them the decision (they hold no record of this payment).
func (s *Store) Decide(ctx context.Context, id string, d Decision, f Failure, now time.Time, unrelated ...string) (*Txn, error) {
	return s.decide(ctx, id, nil, d, f, now, unrelated)
}

// DecideClaimed is Decide for the payment claimed as claimed (what Claim
// returned) by the caller, which has run its phase one since. When its
// COMMIT is the decision that lands, the row it answers is claimed with
// the decision applied, not read back: nothing else writes a claimed
// payment's row or its participants before its decision, except an
// excused participant, which only a conflict vote makes, and that forces
// ABORT. Every other outcome is read back as Decide does.
func (s *Store) DecideClaimed(ctx context.Context, claimed *Txn, d Decision, f Failure, now time.Time, unrelated ...string) (*Txn, error) {
	return s.decide(ctx, claimed.ID, claimed, d, f, now, unrelated)
}

func (s *Store) decide(ctx context.Context, id string, claimed *Txn, d Decision, f Failure, now time.Time, unrelated []string) (*Txn, error) {
	var out *Txn
	won := false
	err := s.group.Do(ctx, func(ctx context.Context, tx *sql.Tx) error {
		out, won = nil, false
		status, why := StatusSucceeded, Failure{}
		if d == DecisionAbort {
			status, why = StatusFailed, f
		}
		var seq int64
		err := s.stmts.QueryRow(ctx, tx, sqlDecide,
			d, now.UnixNano(), status, storedReason(why.Reason), why.Bank, why.AccountID, now.UnixNano(), id).Scan(&seq)
		switch {
		case err == nil:
			won = true
		case !errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("record decision: %w", err)
		}
		if won && d == DecisionCommit && claimed != nil {
			out = committed(claimed, seq, now)
		} else if out, err = s.getTxn(ctx, tx, id); err != nil {
			return err
		}
		if out.Decision == DecisionAbort {
			for _, b := range unrelated {
				if err := s.excuse(ctx, tx, id, b); err != nil {
					return err
				}
			}
			if len(unrelated) > 0 {
				if out, err = s.getTxn(ctx, tx, id); err != nil {
					return err
				}
			}
		}
		if won {
			return s.insertOutcomeEvents(ctx, tx, out, now)
		}
		return nil
	})
	if won && err == nil {
		s.notify()
	}
	return out, err
}

// committed is the row of the claimed payment c once its COMMIT, taken at
// now, is written: exactly what getTxn would read back (times through
// their stored nanoseconds, in UTC). A claimed payment has no failure,
// acknowledgement, excused participant or refund to clear.
func committed(c *Txn, seq int64, now time.Time) *Txn {
	t := asStored(c, seq)
	t.Decision = DecisionCommit
	t.Status = StatusSucceeded
	t.CompleteTime = stored(now)
	return t
}

// stored is t as the log stores and reads it back: nanoseconds since the
// epoch, in UTC (the zero time stays zero).
func stored(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return fromNanos(sql.NullInt64{Int64: t.UnixNano(), Valid: true})
}

// ExcuseParticipant records that bank voted TRANSACTION_ID_CONFLICT on the
// undecided payment id: it holds the id for another transaction, so phase
// two must never send it this payment's decision (an ABORT for the id would
// release that other transaction). A NO vote can only lead to ABORT, so the
// record is written as soon as the vote arrives, before the decision:
// recovery and the stale-abort pass, which do not know the votes, then skip
// the bank too.
func (s *Store) ExcuseParticipant(ctx context.Context, id, bank string) error {
	return s.group.Do(ctx, func(ctx context.Context, tx *sql.Tx) error { return s.excuse(ctx, tx, id, bank) })
}

func (s *Store) excuse(ctx context.Context, tx *sql.Tx, id, bank string) error {
	if _, err := s.stmts.Exec(ctx, tx, sqlSetAcked, participantExcused, id, bank, participantPending); err != nil {
		return fmt.Errorf("excuse participant: %w", err)
	}
	return nil
}

// AckParticipants records, in one transaction, that banks applied the
// decision for id. An empty list writes nothing. The write is not forced
// (see "Writes that are not forced" in docs/protocol.md): an
// acknowledgement lost with the machine leaves the participant pending,
// and the re-driver sends the decision again, which the bank answers as
// it did.
func (s *Store) AckParticipants(ctx context.Context, id string, banks []string) error {
	if len(banks) == 0 {
		return nil
	}
	return s.group.DoUnforced(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if len(banks) == 2 {
			if _, err := s.stmts.Exec(ctx, tx, sqlSetAcked2, participantAcked, id, banks[0], banks[1], participantPending); err != nil {
				return fmt.Errorf("record phase-two acknowledgements: %w", err)
			}
			return nil
		}
		for _, b := range banks {
			if _, err := s.stmts.Exec(ctx, tx, sqlSetAcked, participantAcked, id, b, participantPending); err != nil {
				return fmt.Errorf("record phase-two acknowledgement: %w", err)
			}
		}
		return nil
	})
}

// Undecided lists payments with no decision: after a restart these are the
// ones whose coordinator died in phase one.
func (s *Store) Undecided(ctx context.Context) ([]string, error) {
	return ids(s.rdb.QueryContext(ctx, `SELECT transaction_id FROM transactions WHERE status = 'processing' AND kind = 'payment' AND decision IS NULL ORDER BY rowid`))
}

// UnackedDecided lists decided payments that some participant has not yet
// acknowledged: phase two must be re-driven for them.
func (s *Store) UnackedDecided(ctx context.Context) ([]string, error) {
	return ids(s.rdb.QueryContext(ctx, `SELECT t.transaction_id FROM transactions t
		WHERE t.transaction_id IN (SELECT p.transaction_id FROM participants p WHERE p.acked = 0)
		AND t.decision IS NOT NULL ORDER BY t.rowid`))
}

// Backlog counts what the re-driver has left to do: decided payments some
// participant has not acknowledged (phase two), undecided payments, and
// adjustments whose bank has not answered; aggregate queries, for metrics.
func (s *Store) Backlog(ctx context.Context) (phaseTwo, undecided, adjustments int, err error) {
	err = s.rdb.QueryRowContext(ctx, `SELECT
		(SELECT COUNT(DISTINCT p.transaction_id) FROM participants p JOIN transactions t USING (transaction_id)
			WHERE p.acked = 0 AND t.decision IS NOT NULL),
		(SELECT COUNT(*) FROM transactions WHERE status = 'processing' AND kind = 'payment' AND decision IS NULL),
		(SELECT COUNT(*) FROM transactions WHERE kind = 'adjustment' AND status = 'processing')`).Scan(&phaseTwo, &undecided, &adjustments)
	if err != nil {
		err = fmt.Errorf("count backlog: %w", err)
	}
	return phaseTwo, undecided, adjustments, err
}

// PendingAdjustments lists adjustments whose bank call has not been answered.
func (s *Store) PendingAdjustments(ctx context.Context) ([]string, error) {
	return ids(s.rdb.QueryContext(ctx, `SELECT transaction_id FROM transactions WHERE kind = 'adjustment' AND status = 'processing' ORDER BY rowid`))
}

// bankItem is one bank call the re-driver owes: transaction ID at Bank.
type bankItem struct{ ID, Bank string }

// unackedWork lists, oldest payment first, every (decided payment,
// participant) pair whose phase two is not acknowledged: what UnackedDecided
// lists, by bank.
func (s *Store) unackedWork(ctx context.Context) ([]bankItem, error) {
	return bankItems(s.rdb.QueryContext(ctx, `SELECT p.transaction_id, p.bank FROM participants p JOIN transactions t USING (transaction_id)
		WHERE p.acked = 0 AND t.decision IS NOT NULL ORDER BY t.rowid, p.bank`))
}

// pendingAdjustmentWork lists what PendingAdjustments lists, with each
// adjustment's bank.
func (s *Store) pendingAdjustmentWork(ctx context.Context) ([]bankItem, error) {
	return bankItems(s.rdb.QueryContext(ctx, `SELECT transaction_id, payee_bank FROM transactions
		WHERE kind = 'adjustment' AND status = 'processing' ORDER BY rowid`))
}

func bankItems(rows *sql.Rows, err error) ([]bankItem, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []bankItem
	for rows.Next() {
		var it bankItem
		if err := rows.Scan(&it.ID, &it.Bank); err != nil {
			return nil, err
		}
		out = append(out, it)
	}
	return out, rows.Err()
}

// UnackedParticipants lists the banks that have not acknowledged phase two of id.
func (s *Store) UnackedParticipants(ctx context.Context, id string) ([]string, error) {
	return ids(s.stmts.Query(ctx, nil, sqlUnackedParticipants, id))
}

// ids reads the one-column result of a query.
func ids(rows *sql.Rows, err error) ([]string, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// FinishAdjustment records the bank's final answer to an adjustment (f is
// zero unless status is failed).
func (s *Store) FinishAdjustment(ctx context.Context, id string, status Status, f Failure, balance int64, now time.Time) (*Txn, error) {
	var out *Txn
	err := s.group.Do(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if _, err := s.stmts.Exec(ctx, tx, sqlFinishAdjustment,
			status, storedReason(f.Reason), f.Bank, f.AccountID, balance, now.UnixNano(), id); err != nil {
			return fmt.Errorf("record adjustment outcome: %w", err)
		}
		var err error
		out, err = s.getTxn(ctx, tx, id)
		return err
	})
	return out, err
}

// Acknowledge sets acknowledge_time on a succeeded payment the first time
// and records an event for both sides; repeats change nothing.
func (s *Store) Acknowledge(ctx context.Context, id string, now time.Time) (*Txn, error) {
	var out *Txn
	won := false
	err := s.group.Do(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := s.stmts.Exec(ctx, tx, sqlAcknowledge, now.UnixNano(), id)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		out, err = s.getTxn(ctx, tx, id)
		if err != nil {
			return err
		}
		if n == 1 {
			won = true
			return s.insertEvents(ctx, tx, out, "acknowledged", now)
		}
		return nil
	})
	if won && err == nil {
		s.notify()
	}
	return out, err
}

// ListFilter selects transactions for List.
type ListFilter struct {
	Account   *Account // payments involving this account; nil for all
	BeforeSeq int64    // only rows older than this sequence number; 0 for the newest
	Limit     int
}

// List returns payments newest first.
func (s *Store) List(ctx context.Context, f ListFilter) ([]*Txn, error) {
	var where []string
	var args []any
	where = append(where, "kind = 'payment'")
	if f.Account != nil {
		where = append(where, "((payer_bank = ? AND payer_account = ?) OR (payee_bank = ? AND payee_account = ?))")
		args = append(args, f.Account.Bank, f.Account.ID, f.Account.Bank, f.Account.ID)
	}
	if f.BeforeSeq > 0 {
		where = append(where, "rowid < ?")
		args = append(args, f.BeforeSeq)
	}
	args = append(args, f.Limit)
	// The WHERE clause joins only the constant conditions above; every
	// value is a bound parameter.
	rows, err := s.rdb.QueryContext(ctx, `SELECT `+txnColumns+` FROM transactions WHERE `+ //nolint:gosec // G202: constant fragments only, values are bound
		strings.Join(where, " AND ")+` ORDER BY rowid DESC LIMIT ?`, args...)
	if err != nil {
		return nil, fmt.Errorf("list payments: %w", err)
	}
	defer rows.Close()
	var out []*Txn
	for rows.Next() {
		t, err := scanTxn(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// Events returns up to limit events after afterID, oldest first, for one
// account or (account nil) for all.
func (s *Store) Events(ctx context.Context, account *Account, afterID int64, limit int) ([]Event, error) {
	s.reads.Add(1)
	q := `SELECT event_id, bank, account_id, type, transaction_id, event_time FROM events WHERE event_id > ?`
	args := []any{afterID}
	if account != nil {
		q += ` AND bank = ? AND account_id = ?`
		args = append(args, account.Bank, account.ID)
	}
	q += ` ORDER BY event_id LIMIT ?`
	args = append(args, limit)
	rows, err := s.rdb.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		var e Event
		var at int64
		if err := rows.Scan(&e.ID, &e.Account.Bank, &e.Account.ID, &e.Type, &e.TxID, &at); err != nil {
			return nil, err
		}
		e.Time = time.Unix(0, at).UTC()
		out = append(out, e)
	}
	return out, rows.Err()
}

// lastEventID returns the id of the newest event, 0 if there is none.
func (s *Store) lastEventID(ctx context.Context) (int64, error) {
	var id int64
	if err := s.rdb.QueryRowContext(ctx, `SELECT COALESCE(MAX(event_id), 0) FROM events`).Scan(&id); err != nil {
		return 0, fmt.Errorf("read events: %w", err)
	}
	return id, nil
}

// RegisterBank inserts or refreshes a bank's registry row.
func (s *Store) RegisterBank(ctx context.Context, name, url string, now time.Time) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO banks (name, url, register_time, last_seen_time) VALUES (?, ?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET url = excluded.url, register_time = excluded.register_time,
		last_seen_time = excluded.last_seen_time`, name, url, now.UnixNano(), now.UnixNano())
	if err != nil {
		return fmt.Errorf("register bank: %w", err)
	}
	return nil
}

// TouchBank records that the bank was seen serving at now.
func (s *Store) TouchBank(ctx context.Context, name string, now time.Time) error {
	_, err := s.db.ExecContext(ctx, `UPDATE banks SET last_seen_time = ? WHERE name = ? AND last_seen_time < ?`,
		now.UnixNano(), name, now.UnixNano())
	return err
}

// Banks lists the registry by name.
func (s *Store) Banks(ctx context.Context) ([]BankRecord, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT name, url, register_time, last_seen_time FROM banks ORDER BY name`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []BankRecord
	for rows.Next() {
		var b BankRecord
		var reg, seen int64
		if err := rows.Scan(&b.Name, &b.URL, &reg, &seen); err != nil {
			return nil, err
		}
		b.RegisterTime, b.LastSeen = time.Unix(0, reg).UTC(), time.Unix(0, seen).UTC()
		out = append(out, b)
	}
	return out, rows.Err()
}
