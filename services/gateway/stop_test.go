package gateway

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/uuid"
)

// Stop waits for a payment still in phase one (its request already gone)
// to be decided and written, so the store can be closed after it; once
// stopped, a new payment is claimed but not run, as after a crash.
func TestStopWaitsForRunningPayments(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		h.b.mu.Lock()
		h.b.block = make(chan struct{}) // bank-b never answers prepare
		h.b.mu.Unlock()
		id := uuid.NewString()
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Millisecond)
		defer cancel()
		if _, err := h.coord.Pay(ctx, payment(id)); !errors.Is(err, ErrInProgress) {
			t.Fatalf("Pay with a hung bank and a short deadline: %v, want ErrInProgress", err)
		}
		start := time.Now()
		if !h.coord.Stop(time.Minute) {
			t.Fatal("Stop timed out")
		}
		if waited := time.Since(start); waited < testTiming.PrepareCall-10*time.Millisecond {
			t.Errorf("Stop returned after %v, before the payment's prepare call could end", waited)
		}
		got, err := h.store.Get(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if got.Decision != DecisionAbort {
			t.Errorf("after Stop the payment has decision %q, want abort written", got.Decision)
		}

		late := uuid.NewString()
		if _, err := h.coord.Pay(t.Context(), payment(late)); !errors.Is(err, ErrInProgress) {
			t.Errorf("Pay after Stop: %v, want ErrInProgress", err)
		}
		if n, _ := h.a.counts(late); n != 0 {
			t.Errorf("a payment after Stop reached a bank (%d prepares)", n)
		}
	})
}

// Stop gives up after its timeout and says so.
func TestStopTimesOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		release := make(chan struct{})
		h.coord.background(func() { <-release })
		if h.coord.Stop(time.Second) {
			t.Error("Stop reported everything finished while work still ran")
		}
		close(release)
		synctest.Wait()
	})
}
