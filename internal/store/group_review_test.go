package store_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/remitpay/remit/internal/store"
	"github.com/remitpay/remit/internal/store/storetest"
)

// checkAnswers: every write's answer matches the database: nil iff its row
// is there.
func checkAnswers(t *testing.T, db *sql.DB, errs map[string]error) {
	t.Helper()
	got := rows(t, db)
	for k, err := range errs {
		_, there := got[k]
		if (err == nil) != there {
			t.Errorf("write %s: err = %v, row committed = %v", k, err, there)
		}
	}
}

func batchWith(t *testing.T, g *store.Group, bad func(context.Context, *sql.Tx) error) map[string]error {
	t.Helper()
	release, waitHeld := hold(t, g)
	var mu sync.Mutex
	errs := map[string]error{}
	var wg sync.WaitGroup
	for i := range 6 {
		k := fmt.Sprint("k", i)
		wg.Go(func() {
			var err error
			if i == 3 {
				err = g.Do(context.Background(), func(ctx context.Context, tx *sql.Tx) error {
					if err := insert(k, i)(ctx, tx); err != nil {
						return err
					}
					return bad(ctx, tx)
				})
			} else {
				err = g.Do(context.Background(), insert(k, i))
			}
			mu.Lock()
			errs[k] = err
			mu.Unlock()
		})
	}
	waitQueued(t, g, 7)
	release()
	wg.Wait()
	waitHeld()
	return errs
}

// A statement that makes SQLite roll back the whole transaction (here a
// RAISE(ROLLBACK) trigger; SQLITE_FULL/IOERR/NOMEM may do the same).
func TestReviewGroupTransactionLevelRollback(t *testing.T) {
	sqliteOnly(t, "a RAISE(ROLLBACK) trigger")
	db, g := openGroupDB(t)
	if _, err := db.Exec(`CREATE TABLE boom (x INTEGER);
		CREATE TRIGGER boom_rb BEFORE INSERT ON boom BEGIN SELECT RAISE(ROLLBACK, 'boom'); END`); err != nil {
		t.Fatal(err)
	}
	errs := batchWith(t, g, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO boom VALUES (1)`)
		return err
	})
	t.Logf("answers: %v", errs)
	checkAnswers(t, db, errs)
	// The writer must still work afterwards.
	if err := g.Do(context.Background(), insert("after", 1)); err != nil {
		t.Fatalf("write after: %v", err)
	}
}

// SQLITE_FULL from max_page_count.
func TestReviewGroupFull(t *testing.T) {
	sqliteOnly(t, "max_page_count")
	db, g := openGroupDB(t)
	var pages int
	if err := db.QueryRow(`PRAGMA page_count`).Scan(&pages); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(fmt.Sprintf(`PRAGMA max_page_count = %d`, pages+2)); err != nil {
		t.Fatal(err)
	}
	errs := batchWith(t, g, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO t (k, v) VALUES (?, 0)`, strings.Repeat("x", 64*1024))
		return err
	})
	t.Logf("answers: %v", errs)
	checkAnswers(t, db, errs)
	if _, err := db.Exec(`PRAGMA max_page_count = 1000000`); err != nil {
		t.Fatal(err)
	}
	if err := g.Do(context.Background(), insert("after", 1)); err != nil {
		t.Fatalf("write after: %v", err)
	}
}

// A write function that ends its goroutine with runtime.Goexit (t.FailNow,
// t.Fatal, t.SkipNow called inside it) is neither an error nor a panic: run
// does not see it, commit's deferred close answers the caller with op.err
// still nil, and nothing was committed. The committing goroutine is gone:
// every later Do waits for ever (here: until its context ends). Fixed in
// group.go: the batch is rolled back and answered with an error, and a new
// committer starts.
func TestReviewGroupGoexitAnswersNilWithoutCommit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db.sqlite")
	db, err := store.OpenSQLite(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	g := store.NewGroup(db, store.GroupOptions{})
	err = g.Do(context.Background(), func(ctx context.Context, tx *sql.Tx) error {
		if err := insert("ghost", 1)(ctx, tx); err != nil {
			return err
		}
		runtime.Goexit()
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	later := g.Do(ctx, insert("later", 2))
	rdb, oerr := store.OpenSQLiteReader(context.Background(), path)
	if oerr != nil {
		t.Fatal(oerr)
	}
	defer func() {
		if err := rdb.Close(); err != nil {
			t.Error(err)
		}
	}()
	var n int
	if qerr := rdb.QueryRow(`SELECT COUNT(*) FROM t WHERE k = 'ghost'`).Scan(&n); qerr != nil {
		t.Fatal(qerr)
	}
	if err == nil && n == 0 {
		t.Errorf("Do returned nil but the write is not committed")
	}
	if err == nil || n != 0 {
		t.Errorf("Do = %v with %d ghost rows, want an error and none", err, n)
	}
	if later != nil {
		t.Errorf("a later write: %v (the committer is gone)", later)
	}
	g.Close()
	if err := db.Close(); err != nil {
		t.Error(err)
	}
}

// sqliteOnly skips a test of an SQLite behaviour on a PostgreSQL run.
func sqliteOnly(t *testing.T, what string) {
	t.Helper()
	if storetest.Backend() != "sqlite" {
		t.Skipf("%s is SQLite's; this run is on %s", what, storetest.Backend())
	}
}
