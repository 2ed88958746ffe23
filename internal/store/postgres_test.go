package store_test

import (
	"context"
	"database/sql"
	"errors"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/remitpay/remit/internal/store"
	"github.com/remitpay/remit/internal/store/storetest"
)

func TestRebind(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`SELECT 1`, `SELECT 1`},
		{`SELECT a FROM t WHERE a = ? AND b = ?`, `SELECT a FROM t WHERE a = $1 AND b = $2`},
		{`UPDATE t SET v = v - ?1, w = w - ?1 WHERE k = ?2`, `UPDATE t SET v = v - $1, w = w - $1 WHERE k = $2`},
		{`SELECT 1 WHERE ?2 = '' OR k = ?2 OR j = ?1`, `SELECT 1 WHERE $2 = '' OR k = $2 OR j = $1`},
		// After a numbered marker a bare one takes the next number, as SQLite numbers it.
		{`VALUES (?3, ?)`, `VALUES ($3, $4)`},
		{`SELECT '?', "a?b", ? -- is it?` + "\n" + `, ?`, `SELECT '?', "a?b", $1 -- is it?` + "\n" + `, $2`},
		{`SELECT 'it''s ?', ?`, `SELECT 'it''s ?', $1`},
		{`SELECT 'open ?`, `SELECT 'open ?`},
		// Found by an outside review: comments, escaped strings and
		// dollar quotes hide their ? too.
		{`SELECT /* it's ? */ ?`, `SELECT /* it's ? */ $1`},
		{`SELECT /* a /* b */ ? */ ?`, `SELECT /* a /* b */ ? */ $1`},
		{`SELECT E'\'?', ?`, `SELECT E'\'?', $1`},
		{`SELECT $$?$$, ?`, `SELECT $$?$$, $1`},
		{`SELECT $f$ a ? $f$, ?`, `SELECT $f$ a ? $f$, $1`},
		{`SELECT col$1, ?`, `SELECT col$1, $1`},
	} {
		if got := store.Rebind(c.in); got != c.want {
			t.Errorf("Rebind(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestIsPostgresAndRedact(t *testing.T) {
	for target, want := range map[string]bool{
		"postgres://u@h/db":        true,
		"postgresql://u@h/db":      true,
		"/var/lib/remit/ledger.db": false,
		"postgres.db":              false,
	} {
		if got := store.IsPostgres(target); got != want {
			t.Errorf("IsPostgres(%q) = %v", target, got)
		}
	}
	if got := store.Redact("postgres://remit:s3cret@db:5432/remit"); got != "postgres://remit:xxxxx@db:5432/remit" {
		t.Errorf("Redact = %q", got)
	}
}

// TestMigrateConcurrently: two processes (here two pools) that start at
// once on the same database apply each migration once, and two stores
// sharing a PostgreSQL database keep their versions apart.
func TestMigrateConcurrently(t *testing.T) {
	ctx := context.Background()
	target := storetest.Target(t, t.TempDir(), "db")
	migs := fstest.MapFS{
		"001_init.sql": {Data: []byte(`CREATE TABLE t (v TEXT NOT NULL);`)},
		"002_add.sql":  {Data: []byte(`INSERT INTO t (v) VALUES ('once');`)},
	}
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			db, err := store.Open(ctx, target, "test")
			if err != nil {
				errs[i] = err
				return
			}
			errs[i] = errors.Join(store.Migrate(ctx, db, "one", migs), db.Close())
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(ctx, target, "test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeDB(t, db) })
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM t`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("rows = %d (%v), want 1: each migration applied once", n, err)
	}
	if store.DialectOf(db) != store.Postgres {
		return // one store per SQLite file: components never share one
	}
	other := fstest.MapFS{"001_other.sql": {Data: []byte(`CREATE TABLE u (v TEXT);`)}}
	if err := store.Migrate(ctx, db, "two", other); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`SELECT v FROM u`); err != nil {
		t.Errorf("component two's 001 was not applied beside one's: %v", err)
	}
}

// TestGroupLosesItsConnection: on PostgreSQL, the writer's server process
// ends in the middle of a group transaction (a server restart, an
// administrator's pg_terminate_backend). Every write of that transaction
// is answered with an error and none of it is in the database; the group
// works again on a new connection.
func TestGroupLosesItsConnection(t *testing.T) {
	if storetest.Backend() != "postgres" {
		t.Skip("the PostgreSQL writer's connection; this run is on sqlite (REMIT_TEST_POSTGRES)")
	}
	db, g := openGroupDB(t)
	ctx := context.Background()
	var pid int
	if err := db.QueryRow(`SELECT pg_backend_pid()`).Scan(&pid); err != nil {
		t.Fatal(err)
	}
	admin, err := store.OpenReader(ctx, storetest.Postgres())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeDB(t, admin) })
	errs := batchWith(t, g, func(ctx context.Context, tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO t (k, v) VALUES ('killer', 1)`); err != nil {
			return err
		}
		var ok bool
		if err := admin.QueryRowContext(ctx, `SELECT pg_terminate_backend(?)`, pid).Scan(&ok); err != nil || !ok {
			t.Errorf("pg_terminate_backend(%d) = %v, %v", pid, ok, err)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO t (k, v) VALUES ('after-kill', 1)`)
		return err
	})
	t.Logf("answers: %v", errs)
	checkAnswers(t, db, errs)
	for k, err := range errs {
		if err == nil {
			t.Errorf("write %s of the lost transaction was answered nil", k)
		}
	}
	if err := g.Do(ctx, insert("after", 1)); err != nil {
		t.Fatalf("write after: %v", err)
	}
}

// TestWritersTakeTurns: write transactions from several pools (several
// processes) that read a value and write it back changed never lose an
// update, as with SQLite's one writer: on PostgreSQL the writer lock
// orders them.
func TestWritersTakeTurns(t *testing.T) {
	ctx := context.Background()
	target := storetest.Target(t, t.TempDir(), "db")
	db, err := store.Open(ctx, target, "test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeDB(t, db) })
	if _, err := db.Exec(`CREATE TABLE n (id INTEGER PRIMARY KEY, v INTEGER NOT NULL); INSERT INTO n VALUES (1, 0)`); err != nil {
		t.Fatal(err)
	}
	const writers, each = 4, 25
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for i := range writers {
		wg.Go(func() {
			w, err := store.Open(ctx, target, "test")
			if err != nil {
				errs[i] = err
				return
			}
			defer func() { errs[i] = errors.Join(errs[i], w.Close()) }()
			for range each {
				if err := store.InTx(ctx, w, func(tx *sql.Tx) error {
					var v int
					if err := tx.QueryRowContext(ctx, `SELECT v FROM n WHERE id = 1`).Scan(&v); err != nil {
						return err
					}
					_, err := tx.ExecContext(ctx, `UPDATE n SET v = ? WHERE id = 1`, v+1)
					return err
				}); err != nil {
					errs[i] = err
					return
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	var v int
	if err := db.QueryRow(`SELECT v FROM n WHERE id = 1`).Scan(&v); err != nil {
		t.Fatal(err)
	}
	if v != writers*each {
		t.Errorf("v = %d after %d read-and-write transactions: updates were lost", v, writers*each)
	}
}

func closeDB(t *testing.T, db *sql.DB) {
	t.Helper()
	if err := db.Close(); err != nil {
		t.Error(err)
	}
}

// TestBus: a notice published by one process reaches the subscribers of
// every process on the same schema, and only those; a listener that
// loses its connection resyncs on reconnecting.
func TestBus(t *testing.T) {
	if storetest.Backend() != "postgres" {
		t.Skip("LISTEN/NOTIFY is PostgreSQL's; this run is on sqlite (REMIT_TEST_POSTGRES)")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	target, other := storetest.Target(t, t.TempDir(), "a"), storetest.Target(t, t.TempDir(), "b")
	open := func(target string) (*store.Bus, chan string, chan struct{}) {
		bus, err := store.OpenBus(ctx, target, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = bus.Close() })
		got, resynced := make(chan string, 16), make(chan struct{}, 16)
		bus.Subscribe("sessions", func(p string) { got <- p }, func() { resynced <- struct{}{} })
		go bus.Run(ctx)
		select {
		case <-bus.Ready():
		case <-ctx.Done():
			t.Fatal("the bus never listened")
		}
		return bus, got, resynced
	}
	a, gotA, resyncA := open(target)
	_, gotB, _ := open(target)
	_, gotOther, _ := open(other)
	<-resyncA
	if err := a.Publish(ctx, "sessions", "token:abc"); err != nil {
		t.Fatal(err)
	}
	for name, ch := range map[string]chan string{"the publisher": gotA, "another process": gotB} {
		select {
		case p := <-ch:
			if p != "token:abc" {
				t.Errorf("%s received %q", name, p)
			}
		case <-ctx.Done():
			t.Fatalf("%s never received the notice", name)
		}
	}
	if err := a.Publish(ctx, "users", "x"); err != nil { // a topic nobody here listens on
		t.Fatal(err)
	}
	select {
	case p := <-gotOther:
		t.Errorf("another schema's subscriber received %q", p)
	case <-time.After(300 * time.Millisecond):
	}
	// Cut a's listener: it reconnects and resyncs.
	admin, err := store.OpenReader(ctx, storetest.Postgres())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = admin.Close() }()
	if _, err := admin.ExecContext(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE pid <> pg_backend_pid() AND query LIKE 'LISTEN %' AND state = 'idle'`); err != nil {
		t.Fatal(err)
	}
	select {
	case <-resyncA:
	case <-ctx.Done():
		t.Fatal("the listener did not resync after losing its connection")
	}
}

// TestStoppedWriterLosesTheLock: a writer that holds the writer lock in a
// transaction and then sends nothing (a paused process) does not hold it
// for ever: the server ends its session after WriterIdleTimeout. Here the
// setting is read back, as waiting 30 s is too long for a unit test.
func TestStoppedWriterLosesTheLock(t *testing.T) {
	if storetest.Backend() != "postgres" {
		t.Skip("PostgreSQL's session settings; this run is on sqlite (REMIT_TEST_POSTGRES)")
	}
	ctx := context.Background()
	db, err := store.Open(ctx, storetest.Target(t, t.TempDir(), "db"), "test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeDB(t, db) })
	var v string
	if err := db.QueryRowContext(ctx, `SHOW idle_in_transaction_session_timeout`).Scan(&v); err != nil {
		t.Fatal(err)
	}
	if v != store.WriterIdleTimeout {
		t.Errorf("idle_in_transaction_session_timeout = %q, want %q", v, store.WriterIdleTimeout)
	}
}
