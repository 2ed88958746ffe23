package gateway

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"

	bankv1 "github.com/remitpay/remit/gen/remit/bank/v1"
	"github.com/remitpay/remit/internal/rpcerr"
)

// Batching of prepares and commits to one bank (docs/protocol.md, "Batched
// delivery").
const (
	// maxBatch is the most items one batch RPC carries. The proto allows
	// 256; 64 is as many as the bank runs at once (batchParallelism in
	// services/bank), and every caller of a batch waits for its last item,
	// so a longer batch would only make its first items wait longer.
	maxBatch = 64
	// maxInFlight is the most RPCs a batcher has outstanding to its bank at
	// once, so that one slow batch does not stall the next. Two, not more:
	// with four, at 64 payments in flight most items went as batches of
	// one, and throughput was about a fifth lower (docs/performance.md,
	// "Fewer statements, fewer forced writes, fuller batches").
	maxInFlight = 2
	// maxBatchWait bounds a batch RPC whose items have no deadline, or a
	// later one.
	maxBatchWait = time.Minute
	// unimplementedRetry is how long a batcher uses the unary RPCs after its
	// bank answered a batch RPC with unimplemented, before it tries a batch
	// again (the bank may have been upgraded).
	unimplementedRetry = time.Minute
)

// batcher sends the calls of many callers to one bank: each caller queues its
// request and waits; a sender takes everything queued (up to maxBatch) and
// sends it as one batch RPC, and hands each caller its own result. Senders
// exist only while there is work: the first caller when fewer than
// maxInFlight are running starts one, and a sender stops when it finds the
// queue empty. There is no timer: while maxInFlight batches are in flight
// the next ones form in the queue; an idle bank gets batches of one, which
// go as the unary RPC, exactly as without batching.
//
// A caller whose ctx ends stops waiting and gets ctx.Err(); its item may
// still be applied by the bank, exactly as when a unary call times out.
type batcher[Req, Res any] struct {
	// unary is the single-item RPC, also the fallback for a bank that does
	// not know batch.
	unary func(context.Context, Req) (Res, error)
	// batch sends items as one batch RPC and returns one result per item,
	// in order: a response or the error the unary RPC would have returned.
	batch func(context.Context, []Req) ([]Res, []error, error)

	// unaryUntil (unix nanoseconds) is when batch may next be tried after
	// the bank answered it with unimplemented.
	unaryUntil atomic.Int64

	mu      sync.Mutex
	queue   []*batchCall[Req, Res]
	senders int
}

type batchCall[Req, Res any] struct {
	ctx  context.Context //nolint:containedctx // the caller's, read by the sender: skip a caller that gave up, bound the batch
	req  Req
	done chan struct{} // closed when res and err are set
	res  Res
	err  error
}

// do sends req to the bank, batched with other callers' requests, and
// returns its own result.
func (b *batcher[Req, Res]) do(ctx context.Context, req Req) (Res, error) {
	if time.Now().UnixNano() < b.unaryUntil.Load() {
		return b.unary(ctx, req)
	}
	c := &batchCall[Req, Res]{ctx: ctx, req: req, done: make(chan struct{})}
	b.mu.Lock()
	b.queue = append(b.queue, c)
	if b.senders < maxInFlight {
		b.senders++
		go b.send()
	}
	b.mu.Unlock()
	select {
	case <-c.done:
		return c.res, c.err
	case <-ctx.Done():
		var zero Res
		return zero, ctx.Err()
	}
}

// send delivers batches until the queue is empty.
func (b *batcher[Req, Res]) send() {
	for {
		b.mu.Lock()
		n := min(len(b.queue), maxBatch)
		if n == 0 {
			b.senders--
			b.mu.Unlock()
			return
		}
		calls := make([]*batchCall[Req, Res], 0, n)
		for _, c := range b.queue[:n] {
			// A caller that gave up has its answer (ctx.Err()); sending its
			// item would only do work nobody waits for.
			if c.ctx.Err() == nil {
				calls = append(calls, c)
			}
		}
		b.queue = append(b.queue[:0:0], b.queue[n:]...)
		b.mu.Unlock()
		b.deliver(calls)
	}
}

// deliver sends calls to the bank and gives each its result.
func (b *batcher[Req, Res]) deliver(calls []*batchCall[Req, Res]) {
	switch {
	case len(calls) == 0:
		return
	case len(calls) == 1:
		c := calls[0]
		c.res, c.err = b.unary(c.ctx, c.req)
		close(c.done)
		return
	}
	ctx, cancel := batchContext(calls)
	defer cancel()
	reqs := make([]Req, len(calls))
	for i, c := range calls {
		reqs[i] = c.req
	}
	res, errs, err := b.batch(ctx, reqs)
	if connect.CodeOf(err) == connect.CodeUnimplemented {
		// The bank predates the batch RPCs, which it therefore never
		// applied: each item goes as its own unary call instead.
		b.unaryUntil.Store(time.Now().Add(unimplementedRetry).UnixNano())
		var wg sync.WaitGroup
		for _, c := range calls {
			wg.Go(func() {
				c.res, c.err = b.unary(c.ctx, c.req)
				close(c.done)
			})
		}
		wg.Wait()
		return
	}
	if err == nil && (len(res) != len(calls) || len(errs) != len(calls)) {
		err = fmt.Errorf("bank sent %d results for %d items", len(res), len(calls))
	}
	for i, c := range calls {
		if err != nil {
			c.err = err
		} else {
			c.res, c.err = res[i], errs[i]
		}
		close(c.done)
	}
}

// batchContext is the context of one batch RPC: its deadline is the latest
// of its items' deadlines (at most maxBatchWait away), and it ends early
// once every caller has stopped waiting.
func batchContext[Req, Res any](calls []*batchCall[Req, Res]) (context.Context, context.CancelFunc) {
	deadline := time.Now().Add(maxBatchWait)
	latest, all := time.Time{}, true
	for _, c := range calls {
		d, ok := c.ctx.Deadline()
		if !ok {
			all = false
			break
		}
		if d.After(latest) {
			latest = d
		}
	}
	if all && latest.Before(deadline) {
		deadline = latest
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	var waiting atomic.Int64
	waiting.Store(int64(len(calls)))
	stops := make([]func() bool, len(calls))
	for i, c := range calls {
		stops[i] = context.AfterFunc(c.ctx, func() {
			if waiting.Add(-1) == 0 {
				cancel()
			}
		})
	}
	return ctx, func() {
		for _, stop := range stops {
			stop()
		}
		cancel()
	}
}

// itemError is a batch item's error as the *connect.Error the unary RPC
// would have returned: the same code, ErrorInfo reason and message, so that
// refusal, definitive and refusalOf read it as they read a unary error.
func itemError(e *bankv1.BatchItemError) error {
	var code connect.Code
	if err := code.UnmarshalText([]byte(e.GetCode())); err != nil || code == 0 {
		code = connect.CodeUnknown
	}
	if e.GetReason() == "" {
		return connect.NewError(code, errors.New(e.GetMessage()))
	}
	return rpcerr.New(code, e.GetReason(), e.GetMessage(), nil)
}
