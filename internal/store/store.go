// Package store opens Remit's embedded SQLite databases and applies their
// schema migrations.
//
// # Durability
//
// Every database is opened in WAL mode with synchronous=FULL, so a
// transaction that Commit reported as done survives a crash or power loss of
// the process or machine. Money code relies on this: a bank's YES vote and the
// gateway's decision are written in a committed transaction before anybody is
// told about them. Group.DoUnforced is the one exception, for writes whose
// loss with the machine the protocol repairs: their transaction commits with
// synchronous=NORMAL, which a crash of the process survives.
//
// # Concurrency
//
// SQLite allows one writer at a time. Write transactions start with BEGIN
// IMMEDIATE (the _txlock=immediate DSN option), so two writers never both read
// and then fail to upgrade their lock; waiters queue on busy_timeout instead of
// failing. The writer is one connection and Group (group commit) gives it
// many callers' writes per transaction; reads outside a transaction go to a
// separate read-only pool (OpenSQLiteReader), which WAL lets run beside the
// writer.
//
// # Migrations
//
// Migrate applies numbered SQL files (001_init.sql, 002_x.sql, ...) from an
// fs.FS in order, each in its own transaction, and records them in
// schema_migrations, in the manner of pressly/goose. Each store keeps two
// sets, one per dialect (MigrationsFor): the SQLite files, and beside them
// a postgres directory with the same versions for PostgreSQL.
//
// # PostgreSQL
//
// A service whose database setting is a postgres:// URL keeps its tables
// in that PostgreSQL database instead (Open, OpenReader; pgx through
// database/sql). The stores keep one SQL text per statement, written in the
// common subset of the two dialects; the driver layer rewrites SQLite's
// parameter markers to PostgreSQL's (Rebind). The writer is one connection
// there too, so Group and the stores' reasoning about one writer hold
// unchanged, and a COMMIT returns once it is flushed (synchronous_commit
// on). See docs/scaling.md.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver (pure Go, no cgo)
)

// OpenSQLite opens (creating if needed) the SQLite database at path with the
// pragmas Remit's durability depends on. The parent directory is created
// with mode 0700 and the database file with mode 0600, because ledgers,
// sessions and payment logs are private (see [Private]). The pool has one
// connection, the only writer.
func OpenSQLite(ctx context.Context, path string) (*sql.DB, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("store: create data directory: %w", err)
	}
	if err := Private(path); err != nil {
		return nil, err
	}
	q := pragmas()
	q.Set("_txlock", "immediate")
	// One connection: SQLite serialises writers anyway, and a single
	// connection keeps BEGIN IMMEDIATE from spinning on busy_timeout.
	return open(ctx, path, q, 1)
}

// ReaderConns is the size of the pool OpenSQLiteReader opens.
const ReaderConns = 4

// OpenSQLiteReader opens a read-only pool of ReaderConns connections on the
// database at path, which OpenSQLite must have created (and migrated).
// In WAL mode readers do not wait for the writer nor it for them: a read
// outside a transaction sees every transaction committed before it began,
// and never one in progress, so the reads of many callers no longer queue
// for the writer's one connection (nor it behind them). Writes through it
// fail (query_only).
func OpenSQLiteReader(ctx context.Context, path string) (*sql.DB, error) {
	q := pragmas()
	q.Add("_pragma", "query_only(1)")
	return open(ctx, path, q, ReaderConns)
}

// FileMode is the mode of every database file: only the owning process's
// user reads balances, sessions or payment logs.
const FileMode os.FileMode = 0o600

// Private makes the database at path, and any -wal, -shm or -journal file
// beside it, readable by its owner only. A database that does not exist
// yet is created empty with [FileMode] first: SQLite creates its -wal,
// -shm and -journal files with the mode of the database file, so they are
// private from their first byte too, whatever the umask. Existing files
// from before this rule (0644) are tightened in place.
func Private(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, FileMode)
	switch {
	case err == nil:
		if err := f.Close(); err != nil {
			return fmt.Errorf("store: create %s: %w", path, err)
		}
	case !errors.Is(err, fs.ErrExist):
		return fmt.Errorf("store: create %s: %w", path, err)
	}
	for _, name := range []string{path, path + "-wal", path + "-shm", path + "-journal"} {
		info, err := os.Stat(name)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("store: %w", err)
		}
		if info.Mode().Perm()&^FileMode == 0 {
			continue
		}
		if err := os.Chmod(name, FileMode); err != nil {
			return fmt.Errorf("store: make %s private: %w", name, err)
		}
	}
	return nil
}

func pragmas() url.Values {
	q := url.Values{}
	for _, p := range []string{
		"journal_mode(WAL)",
		"synchronous(FULL)",
		"busy_timeout(10000)",
		"foreign_keys(1)",
	} {
		q.Add("_pragma", p)
	}
	return q
}

func open(ctx context.Context, path string, q url.Values, conns int) (*sql.DB, error) {
	// The path is URL-escaped: SQLite reads the DSN as a URI filename, where
	// a raw '?' or '#' would cut the path short.
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	db.SetConnMaxLifetime(0)
	if err := db.PingContext(ctx); err != nil {
		return nil, errors.Join(fmt.Errorf("store: open %s: %w", path, err), db.Close())
	}
	return db, nil
}

// MigrationsFor is the directory of migrations, within files, for db's
// dialect: dir itself for SQLite, dir/postgres for PostgreSQL.
func MigrationsFor(db *sql.DB, files fs.FS, dir string) (fs.FS, error) {
	if DialectOf(db) == Postgres {
		dir += "/postgres"
	}
	return fs.Sub(files, dir)
}

// Migrate applies, in order, every NNN_*.sql file in migrations that is not
// yet recorded in schema_migrations. Each file runs in one transaction.
// component names the store the migrations belong to: on PostgreSQL
// several stores (the gateway's log and its sessions) may share one
// database, and schema_migrations keeps their versions apart. Each
// migration runs in one transaction under a lock of the schema, so that two
// processes starting at once (two gateway replicas) apply it once.
func Migrate(ctx context.Context, db *sql.DB, component string, migrations fs.FS) error {
	pg := DialectOf(db) == Postgres
	files, err := fs.Glob(migrations, "*.sql")
	if err != nil {
		return err
	}
	type mig struct {
		version int
		name    string
	}
	var all []mig
	for _, f := range files {
		num, _, ok := strings.Cut(f, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil {
			return fmt.Errorf("store: migration %q is not named NNN_name.sql", f)
		}
		all = append(all, mig{v, f})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].version < all[j].version })
	for i := 1; i < len(all); i++ {
		if all[i].version == all[i-1].version {
			return fmt.Errorf("store: two migrations numbered %d", all[i].version)
		}
	}
	create := `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY,
		name TEXT NOT NULL,
		applied_at TEXT NOT NULL
	)`
	seenQ := `SELECT 1 FROM schema_migrations WHERE version = ?`
	record := `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`
	args := func(v ...any) []any { return v }
	if pg {
		create = `CREATE TABLE IF NOT EXISTS schema_migrations (
			component TEXT NOT NULL,
			version INTEGER NOT NULL,
			name TEXT NOT NULL,
			applied_at TEXT NOT NULL,
			PRIMARY KEY (component, version)
		)`
		seenQ = `SELECT 1 FROM schema_migrations WHERE version = ? AND component = ?`
		record = `INSERT INTO schema_migrations (version, name, applied_at, component) VALUES (?, ?, ?, ?)`
		args = func(v ...any) []any { return append(v, component) }
	}
	// On PostgreSQL the stores sharing a schema share schema_migrations:
	// their migrations take one more lock, the schema's, so that two
	// processes starting at once never both create it.
	lock := func(tx *sql.Tx) error {
		if !pg {
			return nil
		}
		_, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(728, hashtext(current_schema()))`)
		return err
	}
	if err := InTx(ctx, db, func(tx *sql.Tx) error {
		if err := lock(tx); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, create)
		return err
	}); err != nil {
		return fmt.Errorf("store: create schema_migrations: %w", err)
	}
	for _, m := range all {
		body, err := fs.ReadFile(migrations, m.name)
		if err != nil {
			return err
		}
		err = InTx(ctx, db, func(tx *sql.Tx) error {
			if err := lock(tx); err != nil {
				return err
			}
			var seen int
			err := tx.QueryRowContext(ctx, seenQ, args(m.version)...).Scan(&seen)
			if err == nil {
				return nil
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("store: read schema_migrations: %w", err)
			}
			if _, err := tx.ExecContext(ctx, string(body)); err != nil {
				return fmt.Errorf("store: apply %s: %w", m.name, err)
			}
			_, err = tx.ExecContext(ctx, record, args(m.version, m.name, time.Now().UTC().Format(time.RFC3339Nano))...)
			return err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// InTx runs fn in a write transaction and commits it, or rolls back if fn
// returns an error. The commit is durable when InTx returns nil. On
// PostgreSQL the transaction holds its store's writer lock (see
// writerLock).
func InTx(ctx context.Context, db *sql.DB, fn func(*sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: begin: %w", err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: commit: %w", err)
	}
	return nil
}
