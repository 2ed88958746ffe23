package chaos

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/remitpay/remit/client"
	"github.com/remitpay/remit/internal/devnet"
	"github.com/remitpay/remit/internal/store"
)

// Check is one of the checker's verdicts.
type Check struct {
	Name string `json:"name"`
	OK   bool   `json:"ok"`
	// Violations name the offending transaction ids or accounts, at most
	// maxViolations of them.
	Violations []string `json:"violations,omitempty"`
	// Logs are the servers' log lines that name the offending transaction
	// ids, "process: line", a few per id.
	Logs []string `json:"logs,omitempty"`
}

const maxViolations = 20

func (c *Check) failf(format string, args ...any) {
	c.OK = false
	if len(c.Violations) < maxViolations {
		c.Violations = append(c.Violations, fmt.Sprintf(format, args...))
	}
}

// gatewayTxn is a row of the gateway's coordinator log.
type gatewayTxn struct {
	kind, status, direction string
	payer, payee            client.AccountRef
	amount                  int64
}

// journalEntry is a movement in a bank's journal.
type journalEntry struct {
	account, direction, kind string
	amount                   int64
}

// books is the final state of the network, read from its databases once
// every process has stopped.
type books struct {
	txns map[string]gatewayTxn
	// journal is per bank, per transaction id.
	journal map[string]map[string][]journalEntry
	// accounts is per bank: balance, held, incoming.
	accounts map[string]map[string][3]int64
	// opening is each account's opening balance, per bank.
	opening map[string]map[string]int64
	// prepared is per bank: transaction id -> state.
	prepared map[string]map[string]string
}

func readBooks(ctx context.Context, l devnet.Layout) (*books, error) {
	b := &books{
		txns: map[string]gatewayTxn{}, journal: map[string]map[string][]journalEntry{},
		accounts: map[string]map[string][3]int64{}, opening: map[string]map[string]int64{},
		prepared: map[string]map[string]string{},
	}
	gw, err := openGateway(ctx, l)
	if err != nil {
		return nil, err
	}
	defer func() { _ = gw.Close() }() // read-only
	err = query(ctx, gw, `SELECT transaction_id, kind, status, direction, payer_bank, payer_account, payee_bank, payee_account, amount FROM transactions`, func(r *sql.Rows) error {
		var id string
		var t gatewayTxn
		err := r.Scan(&id, &t.kind, &t.status, &t.direction, &t.payer.Bank, &t.payer.ID, &t.payee.Bank, &t.payee.ID, &t.amount)
		b.txns[strings.ToLower(id)] = t
		return err
	})
	if err != nil {
		return nil, err
	}
	for _, bank := range devnet.Banks() {
		if err := b.readBank(ctx, l, bank); err != nil {
			return nil, fmt.Errorf("%s: %w", bank, err)
		}
	}
	return b, nil
}

func (b *books) readBank(ctx context.Context, l devnet.Layout, bank string) error {
	db, err := openLedger(ctx, l, bank)
	if err != nil {
		return err
	}
	defer func() { _ = db.Close() }() // read-only
	b.journal[bank], b.accounts[bank], b.opening[bank], b.prepared[bank] =
		map[string][]journalEntry{}, map[string][3]int64{}, map[string]int64{}, map[string]string{}
	err = query(ctx, db, `SELECT account_id, balance, held, incoming FROM accounts`, func(r *sql.Rows) error {
		var id string
		var v [3]int64
		err := r.Scan(&id, &v[0], &v[1], &v[2])
		b.accounts[bank][id] = v
		return err
	})
	if err != nil {
		return err
	}
	err = query(ctx, db, `SELECT transaction_id, account_id, direction, kind, amount, balance FROM journal ORDER BY entry_id`, func(r *sql.Rows) error {
		var id string
		var e journalEntry
		var balance int64
		if err := r.Scan(&id, &e.account, &e.direction, &e.kind, &e.amount, &balance); err != nil {
			return err
		}
		if e.kind == "opening" {
			b.opening[bank][e.account] = balance
			return nil
		}
		id = strings.ToLower(id)
		b.journal[bank][id] = append(b.journal[bank][id], e)
		return nil
	})
	if err != nil {
		return err
	}
	return query(ctx, db, `SELECT transaction_id, state FROM prepared_transactions`, func(r *sql.Rows) error {
		var id, state string
		err := r.Scan(&id, &state)
		b.prepared[bank][strings.ToLower(id)] = state
		return err
	})
}

// openGateway opens a reader on the gateway's coordinator log, SQLite or
// PostgreSQL (WAL readers do not disturb SQLite's writer).
func openGateway(ctx context.Context, l devnet.Layout) (*sql.DB, error) {
	target, err := l.GatewayDatabase()
	if err != nil {
		return nil, err
	}
	return store.OpenReader(ctx, target)
}

// openLedger opens a reader on bank's ledger.
func openLedger(ctx context.Context, l devnet.Layout, bank string) (*sql.DB, error) {
	target, err := l.LedgerDatabase(bank)
	if err != nil {
		return nil, err
	}
	return store.OpenReader(ctx, target)
}

func query(ctx context.Context, db *sql.DB, q string, each func(*sql.Rows) error) error {
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := each(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// settled reports whether nothing is in flight: no undecided payment at
// the gateway and no prepared transaction at any bank. It reads the live
// databases (WAL readers do not disturb the writers).
func settled(ctx context.Context, l devnet.Layout) (bool, string, error) {
	gw, err := openGateway(ctx, l)
	if err != nil {
		return false, "", err
	}
	defer func() { _ = gw.Close() }() // read-only
	var processing, unacked int
	if err := gw.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM transactions WHERE status = 'processing'), (SELECT count(*) FROM participants WHERE acked = 0)`).Scan(&processing, &unacked); err != nil {
		return false, "", err
	}
	prepared := 0
	for _, bank := range devnet.Banks() {
		n, err := preparedAt(ctx, l, bank)
		if err != nil {
			return false, "", err
		}
		prepared += n
	}
	state := fmt.Sprintf("%d processing and %d unacknowledged at the gateway, %d prepared at the banks", processing, unacked, prepared)
	return processing == 0 && unacked == 0 && prepared == 0, state, nil
}

// preparedAt counts the transactions bank holds prepared, from its live
// ledger.
func preparedAt(ctx context.Context, l devnet.Layout, bank string) (int, error) {
	db, err := openLedger(ctx, l, bank)
	if err != nil {
		return 0, err
	}
	defer func() { _ = db.Close() }() // read-only
	var n int
	err = db.QueryRowContext(ctx, `SELECT count(*) FROM prepared_transactions WHERE state = 'prepared'`).Scan(&n)
	return n, err
}

// waitSettled polls settled until it holds or timeout passes.
func waitSettled(ctx context.Context, l devnet.Layout, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		ok, state, err := settled(ctx, l)
		if err == nil && ok {
			return state, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			if err != nil {
				return state, err
			}
			return state, fmt.Errorf("not settled after %v: %s", timeout, state)
		}
		sleep(ctx, time.Second)
	}
}

// check runs every check of the issue against the books and the history.
// initial is the sum of the opening balances.
func check(b *books, h *history, anomalies []string) []Check {
	var out []Check
	add := func(c Check) { out = append(out, c) }

	// 1. Conservation: the sum of balances is the opening total plus the
	// net of applied adjustments; nothing held; each balance equals its
	// journal; no balance negative.
	c := Check{Name: "money conserved, nothing held, balances equal journals", OK: true}
	var opening, total, adjust int64
	for bank, accts := range b.accounts {
		sums := map[string]int64{}
		for _, es := range b.journal[bank] {
			for _, e := range es {
				d := e.amount
				if e.direction == "debit" {
					d = -d
				}
				sums[e.account] += d
				if e.kind == "adjustment" {
					adjust += d
				}
			}
		}
		for acct, v := range accts {
			opening += b.opening[bank][acct]
			total += v[0]
			if v[0] < 0 || v[1] != 0 || v[2] != 0 {
				c.failf("%s/%s: balance %d, held %d, incoming %d", bank, acct, v[0], v[1], v[2])
			}
			if want := b.opening[bank][acct] + sums[acct]; v[0] != want {
				c.failf("%s/%s: balance %d, its journal says %d", bank, acct, v[0], want)
			}
		}
	}
	var gwAdjust int64
	for _, t := range b.txns {
		if t.kind == "adjustment" && t.status == "succeeded" {
			if t.direction == "debit" {
				gwAdjust -= t.amount
			} else {
				gwAdjust += t.amount
			}
		}
	}
	if total != opening+adjust || adjust != gwAdjust {
		c.failf("balances sum to %d; opening %d plus adjustments %d (the gateway's: %d) is %d", total, opening, adjust, gwAdjust, opening+adjust)
	}
	add(c)

	// 2. Every payment and adjustment is applied exactly as its final
	// status says: a SUCCEEDED payment once at the payer's and once at
	// the payee's bank, a SUCCEEDED adjustment once at its account, each
	// for its amount; a FAILED one nowhere; and no bank applied a
	// transaction id the gateway has no record of (its prepared record may
	// be pruned; its journal entries never are).
	c = Check{Name: "succeeded payments applied once at both banks, failed ones nowhere", OK: true}
	for id, t := range b.txns {
		other := 0
		for _, es := range b.journal {
			other += len(es[id])
		}
		switch {
		case t.kind == "payment" && t.status == "succeeded":
			debits := entries(b, t.payer.Bank, id, t.payer.ID, "debit", "payment", t.amount)
			credits := entries(b, t.payee.Bank, id, t.payee.ID, "credit", "payment", t.amount)
			if debits != 1 || credits != 1 || other != 2 {
				c.failf("%s SUCCEEDED: %d debits of %d at %s, %d credits of %d at %s, %d entries in all",
					id, debits, t.amount, t.payer.Bank, credits, t.amount, t.payee.Bank, other)
			}
		case t.kind == "adjustment" && t.status == "succeeded":
			if n := entries(b, t.payee.Bank, id, t.payee.ID, t.direction, "adjustment", t.amount); n != 1 || other != 1 {
				c.failf("%s adjustment SUCCEEDED: %d %ss of %d at %s/%s, %d entries in all",
					id, n, t.direction, t.amount, t.payee.Bank, t.payee.ID, other)
			}
		case t.status == "failed":
			if other != 0 {
				c.failf("%s FAILED but has %d journal entries", id, other)
			}
		}
	}
	for bank, byID := range b.journal {
		for id, es := range byID {
			if _, known := b.txns[id]; !known && len(es) > 0 {
				c.failf("%s has %d journal entries at %s, but the gateway has no record of it", id, len(es), bank)
			}
		}
	}
	add(c)

	// 3. Nothing is prepared and undecided; every bank agrees with the
	// gateway.
	c = Check{Name: "nothing prepared or undecided; banks agree with the gateway", OK: true}
	for id, t := range b.txns {
		if t.status == "processing" {
			c.failf("%s is still processing at the gateway", id)
		}
	}
	for bank, ps := range b.prepared {
		for id, state := range ps {
			t, known := b.txns[id]
			switch {
			case state == "prepared":
				c.failf("%s is still prepared at %s", id, bank)
			case state == "committed" && (!known || t.status != "succeeded"):
				c.failf("%s committed at %s, but the gateway says %q", id, bank, t.status)
			case state == "aborted" && known && t.status == "succeeded":
				c.failf("%s aborted at %s, but the gateway says succeeded", id, bank)
			}
		}
	}
	add(c)

	// 4. One outcome per transaction id, however often it was sent, and
	// it is the gateway's.
	c = Check{Name: "one outcome per transaction id, the one clients were told", OK: true}
	h.mu.Lock()
	ids := make([]string, 0, len(h.ops))
	for id := range h.ops {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		o := h.ops[id]
		if o.kind == "outbox" {
			continue
		}
		final := o.final()
		for _, told := range o.told {
			if told != Unknown && told != final {
				c.failf("%s was told %v", id, o.told)
				break
			}
		}
		t, ok := b.txns[id]
		switch {
		case final == Succeeded && (!ok || t.status != "succeeded"):
			c.failf("%s: a client was told SUCCEEDED, the gateway's log says %q", id, t.status)
		case final == Failed && ok && t.status != "failed":
			c.failf("%s: a client was told FAILED, the gateway's log says %q", id, t.status)
		}
	}
	add(c)

	// 5. Every outbox payment reached a final outcome, applied at most
	// once (check 2 covers the once).
	c = Check{Name: "every outbox payment final, the gateway's outcome", OK: true}
	for _, id := range ids {
		o := h.ops[id]
		if o.kind != "outbox" {
			continue
		}
		final := o.final()
		t, ok := b.txns[id]
		switch {
		case final == Unknown:
			c.failf("%s is not final in the outbox: %v", id, o.told)
		case final == Succeeded && (!ok || t.status != "succeeded"):
			c.failf("%s SUCCEEDED in the outbox, %q at the gateway", id, t.status)
		case final == Failed && ok && t.status == "succeeded":
			c.failf("%s FAILED in the outbox, succeeded at the gateway", id)
		}
	}
	h.mu.Unlock()
	add(c)

	c = Check{Name: "no impossible balance read while running", OK: len(anomalies) == 0}
	for _, a := range anomalies {
		c.failf("%s", a)
	}
	add(c)
	return out
}

// entries counts id's journal entries at bank for account, direction and
// kind of the given amount.
func entries(b *books, bank, id, account, direction, kind string, amount int64) int {
	n := 0
	for _, e := range b.journal[bank][id] {
		if e.account == account && e.direction == direction && e.kind == kind && e.amount == amount {
			n++
		}
	}
	return n
}
