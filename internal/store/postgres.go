package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// Dialect is the SQL engine behind a *sql.DB that this package opened.
type Dialect int

// The dialects Remit's stores run on.
const (
	SQLite Dialect = iota
	Postgres
)

func (d Dialect) String() string {
	if d == Postgres {
		return "postgres"
	}
	return "sqlite"
}

// IsPostgres reports whether target, a service's database setting, names a
// PostgreSQL database (a postgres:// or postgresql:// URL) rather than an
// SQLite file.
func IsPostgres(target string) bool {
	return strings.HasPrefix(target, "postgres://") || strings.HasPrefix(target, "postgresql://")
}

// DialectOf is the dialect of db, which Open, OpenReader, OpenSQLite or
// OpenSQLiteReader opened.
func DialectOf(db *sql.DB) Dialect {
	if _, ok := db.Driver().(*pgDriver); ok {
		return Postgres
	}
	return SQLite
}

// Open opens the database a service keeps its tables in: the SQLite file
// at target (OpenSQLite), or, when target is a postgres:// URL, a pool of
// one connection to that PostgreSQL database, which is then the only
// writer in the process as the SQLite connection is (Group relies on it).
// The URL may name a schema with search_path=NAME; it must exist.
// component names the store (ledger, gateway, sessions): on PostgreSQL
// every transaction of the pool holds the writer lock of component in its
// schema (see writerLock).
func Open(ctx context.Context, target, component string) (*sql.DB, error) {
	if !IsPostgres(target) {
		return OpenSQLite(ctx, target)
	}
	return openPostgres(ctx, target, 1, component)
}

// OpenReader opens a pool of ReaderConns read-only connections to the same
// database as Open(target): OpenSQLiteReader for a file, and for
// PostgreSQL connections whose transactions default to READ ONLY.
func OpenReader(ctx context.Context, target string) (*sql.DB, error) {
	if !IsPostgres(target) {
		return OpenSQLiteReader(ctx, target)
	}
	return openPostgres(ctx, target, ReaderConns, "")
}

// Redact is target with any password in a postgres:// URL replaced, for
// logs and errors.
func Redact(target string) string {
	if !IsPostgres(target) {
		return target
	}
	cfg, err := pgx.ParseConfig(target)
	if err != nil || cfg.Password == "" {
		return target
	}
	return strings.Replace(target, ":"+cfg.Password+"@", ":xxxxx@", 1)
}

// WriterIdleTimeout is how long a PostgreSQL writer may sit inside a
// transaction without sending a statement before the server ends its
// session (idle_in_transaction_session_timeout).
const WriterIdleTimeout = "1min"

// openPostgres opens a pool of conns connections to dsn: a writer's, whose
// transactions take component's writer lock, or with component "" a
// reader's, whose transactions are read-only.
func openPostgres(ctx context.Context, dsn string, conns int, component string) (*sql.DB, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("store: postgres database %s: %w", Redact(dsn), err)
	}
	if component == "" {
		cfg.RuntimeParams["default_transaction_read_only"] = "on"
	} else {
		// A writer that stops in the middle of a transaction (a paused
		// or partitioned process, a stalled machine) must not keep its
		// store's writer lock, and with it every other replica's writes,
		// for longer than this: the server ends such a session, rolling
		// its transaction back (nobody was told it committed), and
		// notices a dead peer's socket within about half a minute. The timeout is
		// a minute: the tests that hold a writer lock on purpose hold it for
		// less.
		cfg.RuntimeParams["idle_in_transaction_session_timeout"] = WriterIdleTimeout
		cfg.RuntimeParams["tcp_keepalives_idle"] = "10"
		cfg.RuntimeParams["tcp_keepalives_interval"] = "5"
		cfg.RuntimeParams["tcp_keepalives_count"] = "3"
	}
	// Durability: a COMMIT returns once its WAL is flushed (the server's
	// default, stated here so that a server configured otherwise does not
	// weaken a YES vote or a decision). Group.DoUnforced lowers it for
	// one transaction at a time.
	cfg.RuntimeParams["synchronous_commit"] = "on"
	db := sql.OpenDB(&pgConnector{inner: stdlib.GetConnector(*cfg), lock: component})
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	db.SetConnMaxLifetime(0)
	if err := db.PingContext(ctx); err != nil {
		return nil, errors.Join(fmt.Errorf("store: open %s: %w", Redact(dsn), err), db.Close())
	}
	return db, nil
}

// writerLock is the PostgreSQL equivalent of SQLite's write lock (BEGIN
// IMMEDIATE): a transaction-scoped advisory lock per store (component) and
// schema, which every transaction of a writer pool (Open) takes right
// after BEGIN, so that the write transactions on one store's tables run one
// at a time whichever process runs them (a bank and `remit bank enroll`,
// two gateway replicas), and every store's reasoning about one writer
// holds on PostgreSQL unchanged. Stores sharing a schema (the gateway's log
// and its sessions) have their own locks: their tables are disjoint. Reads
// outside a transaction take no lock; READ COMMITTED shows each statement
// what was committed before it. A statement outside a transaction on the
// writer (an upsert of the bank registry) is atomic by itself.
const writerLock = `SELECT pg_advisory_xact_lock(727, hashtext(current_schema() || '/' || $1))`

// unforced lets the COMMIT of tx (Group.DoUnforced on PostgreSQL) return
// before its WAL is flushed: the WAL writer flushes it within
// wal_writer_delay, and the next forced commit with it. The setting ends
// with the transaction.
func unforced(ctx context.Context, tx *sql.Tx) error {
	_, err := tx.ExecContext(ctx, "SET LOCAL synchronous_commit = off")
	return err
}

// The PostgreSQL driver is pgx's database/sql driver behind a thin layer
// that rewrites SQLite's parameter markers (? and ?NNN) to PostgreSQL's
// ($1, $NNN), so that every store keeps one text per statement. Which SQL
// is portable, and how each store keeps to it, is in docs/scaling.md.
type pgConnector struct {
	inner driver.Connector
	lock  string // the component whose writer lock each transaction takes; "" for none (a reader)
}

func (c *pgConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.inner.Connect(ctx)
	if err != nil {
		return nil, err
	}
	inner, ok := conn.(*stdlib.Conn)
	if !ok {
		return nil, errors.Join(fmt.Errorf("store: pgx gave a %T, not a *stdlib.Conn", conn), conn.Close())
	}
	return &pgConn{inner: inner, lock: c.lock}, nil
}

func (c *pgConnector) Driver() driver.Driver { return &pgDriver{} }

type pgDriver struct{}

func (*pgDriver) Open(string) (driver.Conn, error) {
	return nil, errors.New("store: open PostgreSQL databases with store.Open")
}

type pgConn struct {
	inner *stdlib.Conn
	lock  string
}

var (
	_ driver.ConnBeginTx        = (*pgConn)(nil)
	_ driver.ConnPrepareContext = (*pgConn)(nil)
	_ driver.ExecerContext      = (*pgConn)(nil)
	_ driver.QueryerContext     = (*pgConn)(nil)
	_ driver.Pinger             = (*pgConn)(nil)
	_ driver.SessionResetter    = (*pgConn)(nil)
	_ driver.NamedValueChecker  = (*pgConn)(nil)
)

func (c *pgConn) Prepare(query string) (driver.Stmt, error) {
	return c.inner.Prepare(Rebind(query))
}

func (c *pgConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	return c.inner.PrepareContext(ctx, Rebind(query))
}

func (c *pgConn) Close() error { return c.inner.Close() }

func (c *pgConn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

// BeginTx begins a transaction and, on a writer's connection, takes the
// writer lock in it (writerLock).
func (c *pgConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	tx, err := c.inner.BeginTx(ctx, opts)
	if err != nil || c.lock == "" || opts.ReadOnly {
		return tx, err
	}
	if _, err := c.inner.ExecContext(ctx, writerLock, []driver.NamedValue{{Ordinal: 1, Value: c.lock}}); err != nil {
		return nil, errors.Join(fmt.Errorf("store: take the writer lock of %s: %w", c.lock, err), tx.Rollback())
	}
	return tx, nil
}

func (c *pgConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	return c.inner.ExecContext(ctx, Rebind(query), args)
}

func (c *pgConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	return c.inner.QueryContext(ctx, Rebind(query), args)
}

func (c *pgConn) Ping(ctx context.Context) error { return c.inner.Ping(ctx) }

func (c *pgConn) ResetSession(ctx context.Context) error { return c.inner.ResetSession(ctx) }

func (c *pgConn) CheckNamedValue(v *driver.NamedValue) error { return c.inner.CheckNamedValue(v) }

// rebound caches Rebind's answers: the stores run a fixed set of texts.
var rebound sync.Map // string -> string

// Rebind rewrites SQLite's parameter markers in query to PostgreSQL's: ?NNN
// becomes $NNN, and each bare ? becomes $N, N one more than the largest
// number used so far (SQLite's own numbering). Markers inside quoted
// strings, quoted identifiers and comments are left alone. A query without
// ? is returned as it is.
func Rebind(query string) string {
	if !strings.Contains(query, "?") {
		return query
	}
	if q, ok := rebound.Load(query); ok {
		return q.(string) //nolint:forcetypeassert // only strings are stored
	}
	q := rebind(query)
	rebound.Store(query, q)
	return q
}

func rebind(query string) string {
	var b strings.Builder
	b.Grow(len(query) + 16)
	highest := 0
	for i := 0; i < len(query); i++ {
		ch := query[i]
		// skip copies query[i:end] as it is and moves on to end.
		skip := func(end int) {
			if end < 0 || end > len(query) {
				end = len(query)
			}
			b.WriteString(query[i:end])
			i = end - 1
		}
		switch {
		case ch == '\'' && i > 0 && (query[i-1] == 'E' || query[i-1] == 'e') && (i < 2 || !isIdent(query[i-2])):
			skip(escapedStringEnd(query, i))
		case ch == '\'' || ch == '"':
			end := strings.IndexByte(query[i+1:], ch)
			if end < 0 {
				skip(-1)
				continue
			}
			skip(i + end + 2)
		case ch == '-' && i+1 < len(query) && query[i+1] == '-':
			end := strings.IndexByte(query[i:], '\n')
			if end < 0 {
				skip(-1)
				continue
			}
			skip(i + end + 1)
		case ch == '/' && i+1 < len(query) && query[i+1] == '*':
			skip(blockCommentEnd(query, i))
		case ch == '$' && (i == 0 || !isIdent(query[i-1])):
			// A dollar-quoted string, $$...$$ or $tag$...$tag$.
			tagEnd := i + 1
			// A tag is an identifier: it does not start with a digit ($1 is
			// a parameter).
			for tagEnd < len(query) && isIdent(query[tagEnd]) && (tagEnd > i+1 || query[tagEnd] < '0' || query[tagEnd] > '9') {
				tagEnd++
			}
			if tagEnd >= len(query) || query[tagEnd] != '$' {
				b.WriteByte(ch)
				continue
			}
			tag := query[i : tagEnd+1]
			end := strings.Index(query[tagEnd+1:], tag)
			if end < 0 {
				skip(-1)
				continue
			}
			skip(tagEnd + 1 + end + len(tag))
		case ch == '?':
			j := i + 1
			for j < len(query) && query[j] >= '0' && query[j] <= '9' {
				j++
			}
			n := highest + 1
			if j > i+1 {
				fmt.Sscan(query[i+1:j], &n) //nolint:errcheck // digits only: it cannot fail
			}
			highest = max(highest, n)
			fmt.Fprintf(&b, "$%d", n)
			i = j - 1
		default:
			b.WriteByte(ch)
		}
	}
	return b.String()
}

// isIdent reports a byte of an SQL identifier.
func isIdent(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// escapedStringEnd is the index just after the E'...' string whose quote
// is at query[open]: a backslash escapes the next byte, ” is a quote.
func escapedStringEnd(query string, open int) int {
	for j := open + 1; j < len(query); j++ {
		switch query[j] {
		case '\\':
			j++
		case '\'':
			if j+1 < len(query) && query[j+1] == '\'' {
				j++
				continue
			}
			return j + 1
		}
	}
	return len(query)
}

// blockCommentEnd is the index just after the /* ... */ comment that opens
// at query[open]; PostgreSQL's block comments nest.
func blockCommentEnd(query string, open int) int {
	depth := 0
	for j := open; j+1 < len(query); j++ {
		switch {
		case query[j] == '/' && query[j+1] == '*':
			depth++
			j++
		case query[j] == '*' && query[j+1] == '/':
			depth--
			j++
			if depth == 0 {
				return j + 1
			}
		}
	}
	return len(query)
}
