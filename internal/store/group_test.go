package store_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/remitpay/remit/internal/store"
	"github.com/remitpay/remit/internal/store/storetest"
)

// openGroupDB is a fresh database with table t (k unique) and a Group on
// it: an SQLite file, or a PostgreSQL schema when the run selects it
// (storetest).
func openGroupDB(t *testing.T) (*sql.DB, *store.Group) {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, storetest.Target(t, t.TempDir(), "db"), "test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	g := store.NewGroup(db, store.GroupOptions{})
	t.Cleanup(func() {
		g.Close()
		if err := db.Close(); err != nil {
			t.Error(err)
		}
	})
	return db, g
}

func insert(k string, v int) func(context.Context, *sql.Tx) error {
	return func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO t (k, v) VALUES (?, ?)`, k, v)
		return err
	}
}

func rows(t *testing.T, db *sql.DB) map[string]int {
	t.Helper()
	r, err := db.Query(`SELECT k, v FROM t`)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	out := map[string]int{}
	for r.Next() {
		var k string
		var v int
		if err := r.Scan(&k, &v); err != nil {
			t.Fatal(err)
		}
		out[k] = v
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// hold queues a write that blocks the committer until release is closed,
// so that the writes queued meanwhile form one transaction after it.
func hold(t *testing.T, g *store.Group) (release func(), wait func()) {
	t.Helper()
	started, unblock := make(chan struct{}), make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		errc <- g.Do(context.Background(), func(ctx context.Context, tx *sql.Tx) error {
			close(started)
			<-unblock
			return insert("hold", 0)(ctx, tx)
		})
	}()
	<-started
	return func() { close(unblock) }, func() {
		if err := <-errc; err != nil {
			t.Errorf("held write: %v", err)
		}
	}
}

// waitQueued waits until n callers are inside g.Do (the held write
// included), then gives the last of them a moment to reach the queue. Only
// the batch sizes below depend on it, and they are checked as a lower
// bound of what a slow machine could show.
func waitQueued(t *testing.T, g *store.Group, n int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for g.Stats().Waiting < n {
		if time.Now().After(deadline) {
			t.Fatalf("waited 10 s for %d callers in Do, have %d", n, g.Stats().Waiting)
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(5 * time.Millisecond)
}

func TestGroupSharesOneTransactionAndIsolatesFailures(t *testing.T) {
	db, g := openGroupDB(t)
	release, waitHeld := hold(t, g)

	var wg sync.WaitGroup
	errs := make([]error, 10)
	for i := range errs {
		wg.Go(func() {
			switch i {
			case 3: // fails after writing: its row must be undone, no one else's
				errs[i] = g.Do(context.Background(), func(ctx context.Context, tx *sql.Tx) error {
					if err := insert("bad", 3)(ctx, tx); err != nil {
						return err
					}
					return errors.New("refused")
				})
			case 5: // violates the key of the held write: a statement error
				errs[i] = g.Do(context.Background(), insert("hold", 5))
			default:
				errs[i] = g.Do(context.Background(), insert(fmt.Sprint("k", i), i))
			}
		})
	}
	waitQueued(t, g, 11)
	release()
	wg.Wait()
	waitHeld()

	for i, err := range errs {
		switch i {
		case 3:
			if err == nil || err.Error() != "refused" {
				t.Errorf("write 3: err = %v, want its own error", err)
			}
		case 5:
			if err == nil {
				t.Errorf("write 5 (duplicate key): err = nil")
			}
		default:
			if err != nil {
				t.Errorf("write %d: %v", i, err)
			}
		}
	}
	got := rows(t, db)
	want := map[string]int{"hold": 0}
	for i := range errs {
		if i != 3 && i != 5 {
			want[fmt.Sprint("k", i)] = i
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("rows = %v, want %v", got, want)
	}
	st := g.Stats()
	if st.Writes != 11 {
		t.Errorf("transactions carried %d writes, want 11", st.Writes)
	}
	if st.Transactions < 2 || st.Transactions > 10 || st.Batches[1] == st.Transactions {
		t.Errorf("%d transactions, %d of one write: nothing was grouped", st.Transactions, st.Batches[1])
	}
	if st.Batches[256] != st.Transactions || st.Commits[1] > st.Transactions || st.CommitSeconds <= 0 {
		t.Errorf("inconsistent stats %+v", st)
	}
}

func TestGroupWritesSeeEarlierWritesOfTheirTransaction(t *testing.T) {
	db, g := openGroupDB(t)
	if err := g.Do(context.Background(), insert("n", 0)); err != nil {
		t.Fatal(err)
	}
	release, waitHeld := hold(t, g)
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			err := g.Do(context.Background(), func(ctx context.Context, tx *sql.Tx) error {
				var v int
				if err := tx.QueryRowContext(ctx, `SELECT v FROM t WHERE k = 'n'`).Scan(&v); err != nil {
					return err
				}
				_, err := tx.ExecContext(ctx, `UPDATE t SET v = ? WHERE k = 'n'`, v+1)
				return err
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	waitQueued(t, g, 21)
	release()
	wg.Wait()
	waitHeld()
	if got := rows(t, db)["n"]; got != 20 {
		t.Fatalf("counter = %d, want 20 (a read-modify-write lost an update)", got)
	}
}

func TestGroupPanicIsRaisedInItsCaller(t *testing.T) {
	db, g := openGroupDB(t)
	release, waitHeld := hold(t, g)
	var wg sync.WaitGroup
	var recovered any
	wg.Go(func() {
		defer func() { recovered = recover() }()
		err := g.Do(context.Background(), func(ctx context.Context, tx *sql.Tx) error {
			if err := insert("panicked", 1)(ctx, tx); err != nil {
				return err
			}
			panic("boom")
		})
		t.Errorf("Do returned %v instead of panicking", err)
	})
	var okErr error
	wg.Go(func() { okErr = g.Do(context.Background(), insert("ok", 2)) })
	waitQueued(t, g, 3)
	release()
	wg.Wait()
	waitHeld()
	if recovered != "boom" {
		t.Errorf("recovered %v, want the panic of the write", recovered)
	}
	if okErr != nil {
		t.Errorf("other write: %v", okErr)
	}
	got := rows(t, db)
	if _, ok := got["panicked"]; ok || got["ok"] != 2 {
		t.Fatalf("rows = %v, want the panicking write undone and the other kept", got)
	}
}

func TestGroupCancelledBeforeStartNeverRuns(t *testing.T) {
	db, g := openGroupDB(t)
	release, waitHeld := hold(t, g)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- g.Do(ctx, insert("late", 1)) }()
	waitQueued(t, g, 2)
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	release()
	waitHeld()
	if err := g.Do(context.Background(), insert("after", 2)); err != nil {
		t.Fatal(err)
	}
	if got := rows(t, db); len(got) != 2 || got["after"] != 2 {
		t.Fatalf("rows = %v: the cancelled write ran", got)
	}
}

func TestGroupStartedWriteIsWaitedForDespiteCancel(t *testing.T) {
	db, g := openGroupDB(t)
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		errc <- g.Do(ctx, func(c context.Context, tx *sql.Tx) error {
			close(started)
			cancel() // the caller gives up while its write runs
			if c.Err() != nil {
				return errors.New("the write's context was cancelled")
			}
			return insert("x", 1)(c, tx)
		})
	}()
	<-started
	if err := <-errc; err != nil {
		t.Fatalf("err = %v, want nil: the write had started and committed", err)
	}
	if rows(t, db)["x"] != 1 {
		t.Fatal("the started write is not committed")
	}
}

func TestGroupClose(t *testing.T) {
	_, g := openGroupDB(t)
	if err := g.Do(context.Background(), insert("a", 1)); err != nil {
		t.Fatal(err)
	}
	g.Close()
	if err := g.Do(context.Background(), insert("b", 2)); !errors.Is(err, store.ErrGroupClosed) {
		t.Fatalf("after Close: err = %v, want ErrGroupClosed", err)
	}
}

func BenchmarkGroupInsert(b *testing.B) {
	ctx := context.Background()
	db, err := store.OpenSQLite(ctx, filepath.Join(b.TempDir(), "db.sqlite"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := db.Close(); err != nil {
			b.Error(err)
		}
	})
	if _, err := db.Exec(`CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER NOT NULL)`); err != nil {
		b.Fatal(err)
	}
	var mu sync.Mutex
	n := 0
	key := func() string {
		mu.Lock()
		defer mu.Unlock()
		n++
		return strconv.Itoa(n)
	}
	b.Run("InTx-parallel-16", func(b *testing.B) {
		b.SetParallelism(8)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				k := key()
				if err := store.InTx(ctx, db, func(tx *sql.Tx) error { return insert(k, 1)(ctx, tx) }); err != nil {
					b.Error(err)
				}
			}
		})
	})
	b.Run("Group-parallel-16", func(b *testing.B) {
		g := store.NewGroup(db, store.GroupOptions{}) //nolint:contextcheck // the committer outlives any caller's context
		defer g.Close()
		b.SetParallelism(8)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := g.Do(ctx, insert(key(), 1)); err != nil {
					b.Error(err)
				}
			}
		})
	})
}
