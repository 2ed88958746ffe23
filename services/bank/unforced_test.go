package bank_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"github.com/remitpay/remit/services/bank"
)

// copyFiles copies the ledger at from (with its WAL) to to, as the disk
// holds it now.
func copyFiles(t *testing.T, from, to string) {
	t.Helper()
	for _, suffix := range []string{"", "-wal"} {
		src, err := os.Open(from + suffix)
		if err != nil {
			t.Fatal(err)
		}
		dst, err := os.OpenFile(to+suffix, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(dst, src); err != nil {
			t.Fatal(err)
		}
		if err := errors.Join(src.Close(), dst.Close()); err != nil {
			t.Fatal(err)
		}
	}
}

// TestLostCommitRecord is the crash point of the bank's unforced commit
// record: the machine loses power after the bank answered a COMMIT and
// before anything fsynced that record. The disk then holds what it held at
// the last fsync, the forced YES vote: the ledger is copied right after the
// vote to stand for it. Reopened from that copy, the bank holds the
// transaction prepared with its funds held and nothing applied; once it
// expires, its resolver asks the gateway, which keeps every decision, and
// applies it exactly once: the money moves, the holds are released, and no
// journal entry is doubled or missing. An ABORT, by contrast, is forced (a
// tombstone must survive), which the test checks too.
func TestLostCommitRecord(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		live, lost := filepath.Join(dir, "ledger.db"), filepath.Join(dir, "after-power-loss.db")
		l, err := bank.OpenLedger(t.Context(), live)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range defaultSeeds {
			if _, err := l.EnsureAccount(t.Context(), s); err != nil {
				t.Fatal(err)
			}
		}
		ctx := t.Context()
		expire := time.Now().Add(10 * time.Second)
		commitMe := newID()
		if v, err := l.Prepare(ctx, commitMe, []bank.Leg{debit("alice", 10), credit("bob", 10)}, expire); err != nil || !v.Yes {
			t.Fatalf("prepare: %+v, %v", v, err)
		}
		copyFiles(t, live, lost) // the last fsync: the vote
		before := l.CommitStats().Unforced
		if st, err := l.Commit(ctx, commitMe, true); err != nil || st != bank.StateCommitted {
			t.Fatalf("commit: %s, %v", st, err)
		}
		if n := l.CommitStats().Unforced - before; n != 1 {
			t.Fatalf("the commit made %d unforced transactions, want 1: this test's premise is gone", n)
		}
		if st, err := l.Commit(ctx, newID(), false); err != nil || st != bank.StateAborted {
			t.Fatalf("abort of an unknown id: %s, %v", st, err)
		}
		if n := l.CommitStats().Unforced - before; n != 1 {
			t.Errorf("an abort (its tombstone) was not forced: %d unforced transactions, want still 1", n)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}

		l = openLedger(t, lost)
		wantState(t, l, commitMe, bank.StatePrepared)
		wantBalances(t, l, "alice", balances{100, 10, 0})
		wantBalances(t, l, "bob", balances{50, 0, 10})

		gw := &fakeGateway{outcomes: map[string]bool{commitMe: true}}
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			(&bank.Resolver{Ledger: l, Coordinator: gw, Interval: time.Second, Retention: 24 * time.Hour, Logger: discardLogger()}).Run(runCtx)
		}()
		time.Sleep(12 * time.Second)
		synctest.Wait()
		stop()
		<-done

		wantState(t, l, commitMe, bank.StateCommitted)
		wantBalances(t, l, "alice", balances{90, 0, 0})
		wantBalances(t, l, "bob", balances{60, 0, 0})
		es, err := l.Entries(ctx, commitMe)
		if err != nil {
			t.Fatal(err)
		}
		if len(es) != 2 {
			t.Errorf("%s has %d journal entries, want 2: %+v", commitMe, len(es), es)
		}
	})
}
