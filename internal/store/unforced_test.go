package store_test

import (
	"context"
	"database/sql"
	"sync"
	"testing"
	"time"

	"github.com/remitpay/remit/internal/store/storetest"
)

// syncSetting is the durability of commits in tx: 1 for SQLite's
// synchronous=NORMAL or PostgreSQL's synchronous_commit=off (a commit that
// is not flushed), 2 for FULL or on.
func syncSetting(ctx context.Context, tx *sql.Tx, into *int) error {
	return readSync(tx.QueryRowContext(ctx, syncQuery()), into)
}

func syncQuery() string {
	if storetest.Backend() == "postgres" {
		return `SHOW synchronous_commit`
	}
	return `PRAGMA synchronous`
}

func readSync(row *sql.Row, into *int) error {
	var v string
	if err := row.Scan(&v); err != nil {
		return err
	}
	switch v {
	case "1", "off", "local":
		*into = 1
	case "2", "on", "remote_write", "remote_apply":
		*into = 2
	default:
		*into = -1
	}
	return nil
}

// writerSync is syncSetting outside any transaction, on db's writer.
func writerSync(db *sql.DB, into *int) error {
	return readSync(db.QueryRowContext(context.Background(), syncQuery()), into)
}

// TestDoUnforced: a transaction of unforced writes only commits with
// synchronous=NORMAL; one that carries a forced write beside them, and
// every transaction after, commits FULL; the writes are there either way.
func TestDoUnforced(t *testing.T) {
	db, g := openGroupDB(t)
	ctx := context.Background()

	var alone int
	if err := g.DoUnforced(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if err := syncSetting(ctx, tx, &alone); err != nil {
			return err
		}
		return insert("lazy", 1)(ctx, tx)
	}); err != nil {
		t.Fatal(err)
	}
	if alone != 1 {
		t.Errorf("an unforced write alone ran with synchronous=%d, want 1 (NORMAL)", alone)
	}
	if st := g.Stats(); st.Unforced != 1 || st.Transactions != 1 {
		t.Errorf("after one unforced write: %d transactions, %d unforced; want 1, 1", st.Transactions, st.Unforced)
	}

	var after int
	if err := g.Do(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if err := syncSetting(ctx, tx, &after); err != nil {
			return err
		}
		return insert("forced", 2)(ctx, tx)
	}); err != nil {
		t.Fatal(err)
	}
	if after != 2 {
		t.Errorf("a forced write after an unforced one ran with synchronous=%d, want 2 (FULL)", after)
	}

	// A transaction with both: hold the committer in a first write while
	// an unforced and a forced one queue, so that they share the next.
	started, hold := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := g.Do(ctx, func(ctx context.Context, tx *sql.Tx) error {
			close(started)
			<-hold
			return insert("first", 3)(ctx, tx)
		}); err != nil {
			t.Error(err)
		}
	})
	<-started
	settings := make([]int, 2)
	for i, do := range []func(context.Context, func(context.Context, *sql.Tx) error) error{g.DoUnforced, g.Do} {
		wg.Go(func() {
			if err := do(ctx, func(ctx context.Context, tx *sql.Tx) error {
				if err := syncSetting(ctx, tx, &settings[i]); err != nil {
					return err
				}
				return insert([]string{"mixed-lazy", "mixed-forced"}[i], 4+i)(ctx, tx)
			}); err != nil {
				t.Error(err)
			}
		})
	}
	for g.Stats().Waiting < 3 {
		time.Sleep(time.Millisecond)
	}
	// Inside Do, they are a channel send from the queue: let them reach it.
	time.Sleep(20 * time.Millisecond)
	close(hold)
	wg.Wait()
	if settings[0] != 2 || settings[1] != 2 {
		t.Errorf("a transaction with a forced write ran with synchronous=%v, want FULL (2) for both", settings)
	}
	st := g.Stats()
	if st.Unforced != 1 {
		t.Errorf("unforced transactions = %d, want still 1", st.Unforced)
	}
	if st.Transactions != 4 || st.Writes != 5 {
		t.Errorf("%d transactions carrying %d writes, want 4 and 5 (the mixed ones together)", st.Transactions, st.Writes)
	}
	got := rows(t, db)
	for _, k := range []string{"lazy", "forced", "first", "mixed-lazy", "mixed-forced"} {
		if _, ok := got[k]; !ok {
			t.Errorf("row %q missing: %v", k, got)
		}
	}
	// Outside the group the writer is FULL again.
	var outside int
	if err := writerSync(db, &outside); err != nil || outside != 2 {
		t.Errorf("the writer outside the group: synchronous=%d (%v), want 2", outside, err)
	}
}

// TestDoUnforcedFailedWrite: an unforced write that fails is undone like a
// forced one, and leaves the writer FULL.
func TestDoUnforcedFailedWrite(t *testing.T) {
	db, g := openGroupDB(t)
	ctx := context.Background()
	if err := g.Do(ctx, insert("k", 1)); err != nil {
		t.Fatal(err)
	}
	if err := g.DoUnforced(ctx, insert("k", 2)); err == nil {
		t.Fatal("a duplicate key was accepted")
	}
	var s int
	if err := writerSync(db, &s); err != nil || s != 2 {
		t.Errorf("after a failed unforced write: synchronous=%d (%v), want 2", s, err)
	}
	if got := rows(t, db); got["k"] != 1 || len(got) != 1 {
		t.Errorf("rows = %v, want k=1 only", got)
	}
}
