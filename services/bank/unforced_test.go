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
// and abort records: the machine loses power after the bank answered a
// COMMIT (or ABORT) and before anything fsynced that record. The disk then
// holds what it held at the last fsync, the forced YES vote: the ledger is
// copied right after the votes to stand for it. Reopened from that copy,
// the bank holds both transactions prepared with their funds held and
// nothing applied; once they expire, its resolver asks the gateway, which
// keeps every decision, and applies each exactly once: the money moves,
// the holds are released, and no journal entry is doubled or missing.
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
		commitMe, abortMe := newID(), newID()
		for _, id := range []string{commitMe, abortMe} {
			if v, err := l.Prepare(ctx, id, []bank.Leg{debit("alice", 10), credit("bob", 10)}, expire); err != nil || !v.Yes {
				t.Fatalf("prepare %s: %+v, %v", id, v, err)
			}
		}
		copyFiles(t, live, lost) // the last fsync: the votes
		if st, err := l.Commit(ctx, commitMe, true); err != nil || st != bank.StateCommitted {
			t.Fatalf("commit: %s, %v", st, err)
		}
		if st, err := l.Commit(ctx, abortMe, false); err != nil || st != bank.StateAborted {
			t.Fatalf("abort: %s, %v", st, err)
		}
		if st := l.CommitStats(); st.Unforced < 2 {
			t.Fatalf("the commit and the abort were forced (%d unforced transactions): this test's premise is gone", st.Unforced)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}

		l = openLedger(t, lost)
		wantState(t, l, commitMe, bank.StatePrepared)
		wantState(t, l, abortMe, bank.StatePrepared)
		wantBalances(t, l, "alice", balances{100, 20, 0})
		wantBalances(t, l, "bob", balances{50, 0, 20})

		gw := &fakeGateway{outcomes: map[string]bool{commitMe: true, abortMe: false}}
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
		wantState(t, l, abortMe, bank.StateAborted)
		wantBalances(t, l, "alice", balances{90, 0, 0})
		wantBalances(t, l, "bob", balances{60, 0, 0})
		for id, want := range map[string]int{commitMe: 2, abortMe: 0} {
			es, err := l.Entries(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if len(es) != want {
				t.Errorf("%s has %d journal entries, want %d: %+v", id, len(es), want, es)
			}
		}
	})
}
