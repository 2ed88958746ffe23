package gateway

import (
	"context"
	"sync"
	"testing"
	"time"
)

// A bank that answers a batch with fewer or more results than items gives
// every caller of that batch an error (no answer), never a result meant for
// another item.
func TestBatcherResultCountMismatch(t *testing.T) {
	for _, extra := range []int{-1, +1} {
		release := make(chan struct{})
		var once sync.Once
		b := &batcher[int, int]{
			unary: func(_ context.Context, r int) (int, error) {
				<-release // hold every sender's batch of one
				return r, nil
			},
			batch: func(_ context.Context, reqs []int) ([]int, []error, error) {
				n := len(reqs) + extra
				return make([]int, n), make([]error, n), nil
			},
		}
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		var wg sync.WaitGroup
		for i := range maxInFlight {
			wg.Go(func() { _, _ = b.do(ctx, i) })
		}
		for {
			b.mu.Lock()
			busy := b.senders == maxInFlight && len(b.queue) == 0
			b.mu.Unlock()
			if busy {
				break
			}
			time.Sleep(time.Millisecond)
		}
		errs := make([]error, 3)
		for i := range errs {
			wg.Go(func() { _, errs[i] = b.do(ctx, 100+i) })
		}
		for {
			b.mu.Lock()
			q := len(b.queue)
			b.mu.Unlock()
			if q == 3 {
				break
			}
			time.Sleep(time.Millisecond)
		}
		once.Do(func() { close(release) })
		wg.Wait()
		cancel()
		for i, err := range errs {
			if err == nil {
				t.Errorf("extra %d: item %d got a result from a batch with %d results", extra, i, 3+extra)
			}
		}
	}
}
