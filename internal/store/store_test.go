package store_test

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"testing/fstest"

	"github.com/remitpay/remit/internal/store"
)

func TestMigrateAppliesInOrderOnce(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "x", "db.sqlite")
	migs := fstest.MapFS{
		"002_add.sql":  {Data: []byte(`INSERT INTO t (v) VALUES ('second');`)},
		"001_init.sql": {Data: []byte(`CREATE TABLE t (v TEXT NOT NULL);`)},
	}
	for range 2 { // reopening must not re-apply
		db, err := store.OpenSQLite(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		if err := store.Migrate(ctx, db, "test", migs); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := db.QueryRow(`SELECT count(*) FROM t`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Fatalf("rows = %d, want 1 (migrations applied once, in order)", n)
		}
		var mode string
		if err := db.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil {
			t.Fatal(err)
		}
		if mode != "wal" {
			t.Fatalf("journal_mode = %q, want wal", mode)
		}
		var sync int
		if err := db.QueryRow(`PRAGMA synchronous`).Scan(&sync); err != nil {
			t.Fatal(err)
		}
		if sync != 2 {
			t.Fatalf("synchronous = %d, want 2 (FULL)", sync)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestMigrateRejectsBadNamesAndFailedSQL(t *testing.T) {
	ctx := context.Background()
	db, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "db.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	if err := store.Migrate(ctx, db, "test", fstest.MapFS{"init.sql": {Data: []byte(`SELECT 1;`)}}); err == nil {
		t.Fatal("unnumbered migration accepted")
	}
	bad := fstest.MapFS{"001_bad.sql": {Data: []byte(`CREATE TABLE t (v TEXT); THIS IS NOT SQL;`)}}
	if err := store.Migrate(ctx, db, "test", bad); err == nil {
		t.Fatal("broken migration accepted")
	}
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("a failed migration was recorded")
	}
}

func TestOpenSQLiteKeepsOddPathsWhole(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "we#ird?x %41")
	path := filepath.Join(dir, "db.sqlite")
	db, err := store.OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE t (v INTEGER)`); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("database not at the path asked for: %v", err)
	}
}

func TestStatementsReusedInAndOutOfTransactions(t *testing.T) {
	ctx := context.Background()
	db, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "db.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	if _, err := db.Exec(`CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Prepare(ctx, db, []string{`SELECT v FROM t`, `NOT SQL`}); err == nil {
		t.Fatal("a statement that does not parse was prepared")
	}
	const (
		insert = iota
		get
	)
	st, err := store.Prepare(ctx, db, []string{
		insert: `INSERT INTO t (k, v) VALUES (?, ?)`,
		get:    `SELECT v FROM t WHERE k = ?`,
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 { // every statement used again in a later transaction
		if err := store.InTx(ctx, db, func(tx *sql.Tx) error {
			_, err := st.Exec(ctx, tx, insert, strconv.Itoa(i), i)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		var v int
		if err := st.QueryRow(ctx, nil, get, strconv.Itoa(i)).Scan(&v); err != nil || v != i {
			t.Fatalf("read back %d: %d, %v", i, v, err)
		}
	}
	// A rolled-back transaction leaves nothing, and the statements usable.
	boom := errors.New("boom")
	if err := store.InTx(ctx, db, func(tx *sql.Tx) error {
		if _, err := st.Exec(ctx, tx, insert, "x", 9); err != nil {
			return err
		}
		return boom
	}); !errors.Is(err, boom) {
		t.Fatalf("InTx = %v, want boom", err)
	}
	var v int
	if err := st.QueryRow(ctx, nil, get, "x").Scan(&v); !errors.Is(err, sql.ErrNoRows) {
		t.Fatalf("rolled-back row read: %d, %v", v, err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO t (k, v) VALUES ('after', 1)`); err != nil {
		t.Fatalf("database unusable after closing the statements: %v", err)
	}
	// A late caller (a goroutine still finishing at shutdown) never panics:
	// outside a transaction a closed statement answers with an error; in
	// one, database/sql prepares its SQL again on the transaction's
	// connection, so the write still lands inside that transaction.
	if err := st.QueryRow(ctx, nil, get, "after").Scan(&v); err == nil {
		t.Error("a closed statement answered outside a transaction")
	}
	if err := store.InTx(ctx, db, func(tx *sql.Tx) error {
		if _, err := st.Exec(ctx, tx, insert, "late", 1); err != nil {
			return err
		}
		return boom
	}); !errors.Is(err, boom) {
		t.Fatalf("InTx with a closed statement = %v, want boom", err)
	}
	if err := db.QueryRow(`SELECT v FROM t WHERE k = 'late'`).Scan(&v); !errors.Is(err, sql.ErrNoRows) {
		t.Errorf("the closed statement's write escaped its rolled-back transaction: %d, %v", v, err)
	}
	if err := st.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestDatabaseFilesArePrivate: a new database and the -wal and -shm files
// SQLite creates beside it are readable by their owner only, and files
// left 0644 by an older version are tightened when opened.
func TestDatabaseFilesArePrivate(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	check := func(t *testing.T, path string) {
		t.Helper()
		for _, name := range []string{path, path + "-wal", path + "-shm"} {
			info, err := os.Stat(name)
			if err != nil {
				t.Fatal(err)
			}
			if got := info.Mode().Perm(); got != store.FileMode {
				t.Errorf("%s: mode %v, want %v", filepath.Base(name), got, store.FileMode)
			}
		}
	}
	write := func(t *testing.T, path string) {
		t.Helper()
		db, err := store.OpenSQLite(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = db.Close() })
		if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS t (v TEXT)`); err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, `INSERT INTO t VALUES ('x')`); err != nil {
			t.Fatal(err)
		}
		r, err := store.OpenSQLiteReader(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = r.Close() })
		var n int
		if err := r.QueryRowContext(ctx, `SELECT count(*) FROM t`).Scan(&n); err != nil || n == 0 {
			t.Fatalf("read back: %d, %v", n, err)
		}
	}
	t.Run("new", func(t *testing.T) {
		path := filepath.Join(dir, "new.db")
		write(t, path)
		check(t, path)
	})
	t.Run("existing 0644", func(t *testing.T) {
		path := filepath.Join(dir, "old.db")
		for _, name := range []string{path, path + "-wal", path + "-shm"} {
			if err := os.WriteFile(name, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(name, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		write(t, path)
		check(t, path)
	})
}
