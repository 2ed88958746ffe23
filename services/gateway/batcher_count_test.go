package gateway

import (
	"context"
	"sync"
	"testing"
	"time"
)

// waitBatcher waits (at most 10 s) until cond holds of b's queue length and
// sender count.
func waitBatcher(t *testing.T, b *batcher[int, int], what string, cond func(queued, senders int) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b.mu.Lock()
		ok := cond(len(b.queue), b.senders)
		b.mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited 10 s for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// A bank that answers a batch with fewer or more results than items gives
// every caller of that batch an error (no answer), never a result meant for
// another item.
func TestBatcherResultCountMismatch(t *testing.T) {
	for _, extra := range []int{-1, +1} {
		// Items 0 .. maxInFlight-1 go one per sender, as unary calls, and
		// each holds its sender until its gate opens.
		gates := make([]chan struct{}, maxInFlight)
		for i := range gates {
			gates[i] = make(chan struct{})
		}
		b := &batcher[int, int]{
			unary: func(_ context.Context, r int) (int, error) {
				if r < len(gates) {
					<-gates[r]
				}
				return r, nil
			},
			batch: func(_ context.Context, reqs []int) ([]int, []error, error) {
				n := len(reqs) + extra
				return make([]int, n), make([]error, n), nil
			},
		}
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		var held sync.WaitGroup
		for i := range maxInFlight {
			held.Go(func() { _, _ = b.do(ctx, i) })
			waitBatcher(t, b, "a sender to take its item", func(q, s int) bool { return q == 0 && s == i+1 })
		}
		// Every sender is busy: these three queue, and the first sender
		// freed takes all three as one batch.
		errs := make([]error, 3)
		var queued sync.WaitGroup
		for i := range errs {
			queued.Go(func() { _, errs[i] = b.do(ctx, 100+i) })
		}
		waitBatcher(t, b, "three queued items", func(q, _ int) bool { return q == 3 })
		close(gates[0])
		queued.Wait()
		for _, g := range gates[1:] {
			close(g)
		}
		held.Wait()
		cancel()
		for i, err := range errs {
			if err == nil {
				t.Errorf("extra %d: item %d got a result from a batch with %d results", extra, i, 3+extra)
			}
		}
	}
}
