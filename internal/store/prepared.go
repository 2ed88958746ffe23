package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
)

// Statements is a fixed set of SQL statements prepared once on a database
// and reused by every call, so that SQLite parses and plans each of them
// once instead of on every execution (see "Prepared statements" in
// docs/performance.md). It changes no SQL and no transaction boundary: a
// statement runs exactly as the same text passed to ExecContext would.
//
// The database/sql pool keeps one driver statement per connection and a
// transaction reuses it (Tx.StmtContext), and the SQLite driver
// (modernc.org/sqlite) keeps the compiled statement and resets it after each
// use. OpenSQLite's pool has one connection that lives as long as the pool,
// so each statement is compiled once per database.
//
// A statement is named by its index in the slice given to Prepare; callers
// keep their SQL in one indexed list next to the constants that name it,
// and run it with Exec, Query or QueryRow, in a transaction or not.
type Statements struct {
	db    *sql.DB
	stmts []*sql.Stmt
	// reads are the same statements prepared on the read-only pool (see
	// AddReader): Query and QueryRow outside a transaction run there.
	reads   []*sql.Stmt
	queries []string
}

// Prepare prepares every query of queries on db. It must run outside any
// transaction of db (the pool has one connection) and before the
// statements are used; Close releases them.
func Prepare(ctx context.Context, db *sql.DB, queries []string) (*Statements, error) {
	s := &Statements{db: db, stmts: make([]*sql.Stmt, 0, len(queries)), queries: queries}
	for i, q := range queries {
		if q == "" {
			return nil, errors.Join(fmt.Errorf("store: statement %d is empty", i), s.Close())
		}
		st, err := db.PrepareContext(ctx, q) //nolint:sqlclosecheck // kept for the database's life; Close closes it
		if err != nil {
			return nil, errors.Join(fmt.Errorf("store: prepare statement %d: %w", i, err), s.Close())
		}
		s.stmts = append(s.stmts, st)
	}
	return s, nil
}

// AddReader prepares the same queries on reader, a read-only pool of the
// same database (OpenSQLiteReader): from then on Query and QueryRow outside
// a transaction run there. Exec always runs on the database given to
// Prepare.
func (s *Statements) AddReader(ctx context.Context, reader *sql.DB) error {
	reads := make([]*sql.Stmt, 0, len(s.stmts))
	for i := range s.stmts {
		rs, err := reader.PrepareContext(ctx, s.queries[i]) //nolint:sqlclosecheck // kept for the database's life; Close closes it
		if err != nil {
			errs := []error{fmt.Errorf("store: prepare statement %d on the reader: %w", i, err)}
			for _, r := range reads {
				errs = append(errs, r.Close())
			}
			return errors.Join(errs...)
		}
		reads = append(reads, rs)
	}
	s.reads = reads
	return nil
}

// Exec runs statement i with args in tx, or on the database if tx is nil.
func (s *Statements) Exec(ctx context.Context, tx *sql.Tx, i int, args ...any) (sql.Result, error) {
	return s.in(ctx, tx, i, false).ExecContext(ctx, args...) //nolint:sqlclosecheck // see in
}

// Query runs query i with args in tx, or on the database (its reader, if
// it has one) if tx is nil.
func (s *Statements) Query(ctx context.Context, tx *sql.Tx, i int, args ...any) (*sql.Rows, error) {
	return s.in(ctx, tx, i, true).QueryContext(ctx, args...) //nolint:sqlclosecheck // see in
}

// QueryRow runs query i with args in tx, or on the database (its reader,
// if it has one) if tx is nil.
func (s *Statements) QueryRow(ctx context.Context, tx *sql.Tx, i int, args ...any) *sql.Row {
	return s.in(ctx, tx, i, true).QueryRowContext(ctx, args...) //nolint:sqlclosecheck // see in
}

// in is statement i bound to tx (database/sql closes that copy when tx
// ends, keeping the statement it was made from), or, if tx is nil,
// statement i itself, on the reader for a read when there is one.
func (s *Statements) in(ctx context.Context, tx *sql.Tx, i int, read bool) *sql.Stmt {
	if tx == nil {
		if read && s.reads != nil {
			return s.reads[i]
		}
		return s.stmts[i]
	}
	return tx.StmtContext(ctx, s.stmts[i])
}

// Close closes every statement. The databases stay open.
func (s *Statements) Close() error {
	var errs []error
	for _, st := range slices.Concat(s.stmts, s.reads) {
		errs = append(errs, st.Close())
	}
	// s.stmts stays: a closed *sql.Stmt answers "sql: statement is closed",
	// so a late caller (a goroutine still finishing at shutdown) gets an
	// error rather than a panic.
	return errors.Join(errs...)
}
